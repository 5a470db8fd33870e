"""
avatar_trainer: the two-stage trainer behind a Trigger service, in a child process.

``/head_capture/train`` (called by a user or by coverage_guide's auto-trigger) freezes the
session's registered keyframes and starts ``head-capture train`` as a child process, so the
executor never blocks. Its event log becomes /diagnostics and log lines (the device it trains
on included), its preview render ``avatar_preview``; when it ends the avatar's files and metrics
go out on ``avatar`` (the run folder's every file, by name) and the mesh as a marker on
``avatar_mesh``, both transient local: rviz or a script started later still gets them.

Progress goes out on ``training_progress`` as numbers a plot takes (``job.PROGRESS_FIELDS``,
named in the layout). ``/head_capture/cancel_training`` asks the child to checkpoint and exit:
the state goes cancelling, then cancelled; stopping the node does the same. The next train
request resumes from the checkpoint. Not a ROS action: its interface package cannot be built
from pip, and the Trigger services plus a topic work with any ROS 2 install.
"""

import json

import cv2
from diagnostic_msgs.msg import DiagnosticStatus
from head_capture.avatar import TrainingError
from head_capture.avatar.export import mesh_triangles
from head_capture.avatar.job import LOG, PROGRESS_FIELDS, progress_values, TrainingJob
from head_capture.avatar.trainer import PREVIEW
from head_capture.node_parameters import NODE_SETTINGS
from head_capture.nodes.markers import list_marker
from head_capture.nodes.ros_image import to_image
from head_capture.nodes.support import (AVATAR_MESH_TOPIC, declare_config, HeadCaptureNode,
                                        header, LATCHED_QOS, RELIABLE_QOS, run_node,
                                        session_root)
from sensor_msgs.msg import Image
from std_msgs.msg import Float32MultiArray, MultiArrayDimension, MultiArrayLayout, String
from std_srvs.srv import Trigger
from visualization_msgs.msg import Marker, MarkerArray


def mesh_marker(path, frame_id, stamp):
    """Return the avatar mesh as an rviz TRIANGLE_LIST marker with vertex colours."""
    triangles, colours = mesh_triangles(path)
    return list_marker(Marker.TRIANGLE_LIST, triangles, 'avatar_mesh', frame_id, stamp,
                       colours=colours)


def progress_message(values):
    """Return training progress as one Float32MultiArray, its fields named in the layout."""
    layout = MultiArrayLayout(dim=[MultiArrayDimension(
        label=','.join(PROGRESS_FIELDS), size=len(PROGRESS_FIELDS), stride=len(PROGRESS_FIELDS))])
    return Float32MultiArray(layout=layout, data=values)


class AvatarTrainerNode(HeadCaptureNode):
    """Start, follow and publish avatar training."""

    NAME = 'avatar_trainer'

    def __init__(self, **kwargs):
        super().__init__(self.NAME, **kwargs)
        self.config = declare_config(self, *NODE_SETTINGS[self.NAME])
        cfg = self.config
        self.root = session_root(cfg.session_dir)
        self.job = TrainingJob(self.root, cfg.config, cfg.overrides.split(), cfg.min_keyframes)
        self.state, self.message, self._preview_time = 'idle', 'waiting for a train request', 0
        self.device = None  # what the child trains on, once it said
        self._avatar = self.create_publisher(String, 'head_capture/avatar', LATCHED_QOS)
        self._preview = self.create_publisher(Image, 'head_capture/avatar_preview', 2)
        # Latched apart from the live markers (volatile): a late rviz gets the mesh.
        self._mesh = self.create_publisher(MarkerArray, AVATAR_MESH_TOPIC, LATCHED_QOS)
        self._progress = self.create_publisher(Float32MultiArray,
                                               'head_capture/training_progress', RELIABLE_QOS)
        self.create_service(Trigger, 'head_capture/train', self.on_train)
        self.create_service(Trigger, 'head_capture/cancel_training', self.on_cancel)
        self.create_timer(cfg.poll_s, self.follow)

    def on_train(self, request, response):
        """Start training now, or say why not."""
        try:
            response.message = self.job.start()
        except (TrainingError, OSError) as exc:
            response.success, response.message = False, str(exc)
            self.get_logger().warning(f'train request refused: {exc}')
            return response
        response.success = True
        self.state, self.message = 'training', response.message
        self.get_logger().info(response.message)
        return response

    def on_cancel(self, request, response):
        """Ask the trainer to checkpoint and stop; the state says when it has."""
        response.success = self.job.cancel()
        if not response.success:
            response.message = f'nothing to cancel: {self.state}'
            return response
        self.state = 'cancelling'
        response.message = (f'stopping the training in {self.job.out}: it checkpoints and exits; '
                            'a train request resumes it')
        self.get_logger().info(response.message)
        return response

    def follow(self):
        """Read the child's new events; publish the result when it ends."""
        if self.state not in ('training', 'cancelling'):
            return
        code = self.job.returncode  # before the poll: every event of an ended child is read
        for event in self.job.poll():
            self.health.ok()
            values = progress_values(event)
            if values is not None:
                self._progress.publish(progress_message(values))
            if event['event'] == 'device':
                self.device = event['device']
                self.get_logger().info(f'avatar training on {self.device}')
            if event['event'] in ('stage_end', 'rollback', 'resumed', 'stopped'):
                self.get_logger().info(f'avatar training: {json.dumps(event)}')
        self._publish_preview()
        if code is None:
            event = self.job.last_event or {}
            self.message = (f'stage {event.get("stage", 1)} step {event.get("step", 0)}, '
                            f'PSNR {event.get("psnr", float("nan")):.2f}')
            return
        self.job.stop()
        if self.job.cancelled and code != 0:  # 0: it was past training, the avatar is made
            self.state, self.message = 'cancelled', self.job.stopped_summary()
            self.get_logger().info(self.message)
            return
        if code != 0:
            self.state = 'failed'
            tail = self.job.log_tail()
            # One line for /diagnostics and ``up``'s exit reason: the log's last says why.
            last = [line.strip() for line in tail.splitlines() if line.strip()] or ['no output']
            self.message = f'trainer exited with {code}: {last[-1]} (log: {self.job.out / LOG})'
            self.get_logger().error(f'{self.message}; its last lines:\n{tail}')
            return
        self.state = 'done'
        result = self.job.result()
        self._avatar.publish(String(data=json.dumps(result)))
        self.message = f'avatar ready in {result["avatar_dir"]}'
        self.get_logger().info(self.message)
        mesh = result['files'].get('avatar.ply')
        if mesh:
            try:
                self._mesh.publish(MarkerArray(markers=[mesh_marker(
                    mesh, self.config.frame_id, self.get_clock().now().to_msg())]))
            except (OSError, ValueError, RuntimeError) as exc:
                self.drop('mesh not readable', exc)

    def _publish_preview(self):
        path = self.job.out / PREVIEW if self.job.out else None
        if path is None or not path.exists() or path.stat().st_mtime_ns == self._preview_time:
            return
        self._preview_time = path.stat().st_mtime_ns
        pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if pixels is not None:
            self._preview.publish(to_image(cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB),
                                           header(self.get_clock().now().to_msg(),
                                                  self.config.frame_id)))

    def status_values(self):
        """Training progress for /diagnostics."""
        event = self.job.last_event or {}
        return {'state': self.state, 'avatar_dir': str(self.job.out or ''),
                'device': self.device or 'not training yet',
                **{k: event[k] for k in ('stage', 'step', 'steps', 'psnr', 'eta_s',
                                         'rotation_error_deg', 'pose_update_deg')
                   if event.get(k) is not None}}

    def status_message(self):
        """One-line summary."""
        return f'{self.state}: {self.message}'

    def status_level(self):
        """Error when the trainer failed."""
        return DiagnosticStatus.ERROR if self.state == 'failed' else None

    def close(self):
        """Stop the child (it checkpoints first); the next request resumes it."""
        self.job.stop()


def main(args=None):
    """Run avatar_trainer."""
    return run_node(AvatarTrainerNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
