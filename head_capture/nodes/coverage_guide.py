"""
coverage_guide: which views the capture has, what to do next, and when to start training.

Registered keyframes fill the azimuth x elevation map (``capture.coverage``); the live pose
says where the phone is now. Published a few times a second: the map (Float32MultiArray, its
layout in the dimension labels), a coverage dome for rviz, and one instruction. When every
orbit is nearly full it calls ``/head_capture/train`` once, the same service a user calls.
"""

from collections import deque
import json
import time

from geometry_msgs.msg import PoseStamped
from head_capture.capture.coverage import Coverage, guidance, View
from head_capture.capture.visuals import dome_triangles
from head_capture.geometry import ros_pose_to_w2c
from head_capture.node_parameters import NODE_SETTINGS
from head_capture.nodes.markers import list_marker
from head_capture.nodes.support import declare_config, HeadCaptureNode, RELIABLE_QOS, run_node
import numpy as np
from std_msgs.msg import Float32MultiArray, MultiArrayDimension, MultiArrayLayout, String
from std_srvs.srv import Trigger
from visualization_msgs.msg import Marker, MarkerArray

# The live pose is "now" for this long; after it, the latest problem speaks.
LIVE_POSE_FRESH_S = 1.0
# "Hold still" when most frames of the last second were blurred.
BLUR_WINDOW_S, BLUR_SHARE = 1.0, 0.7


def coverage_message(coverage):
    """Return the /head_capture/coverage message of a coverage map."""
    fill, labels = coverage.grid()
    bands, sectors = fill.shape
    layout = MultiArrayLayout(dim=[
        MultiArrayDimension(label=labels[0], size=bands, stride=bands * sectors),
        MultiArrayDimension(label=labels[1], size=sectors, stride=sectors)])
    return Float32MultiArray(layout=layout, data=fill.astype(np.float32).reshape(-1).tolist())


def dome_marker(coverage, radius, frame_id, stamp):
    """Return the coverage dome as an rviz TRIANGLE_LIST marker, coloured per bin."""
    triangles, colours = dome_triangles(coverage, radius)
    return list_marker(Marker.TRIANGLE_LIST, triangles, 'coverage_dome', frame_id, stamp,
                       colours=np.repeat(colours, 3, 0))


class CoverageGuide(HeadCaptureNode):
    """Coverage map, guidance, dome and the training trigger."""

    NAME = 'coverage_guide'

    def __init__(self, **kwargs):
        super().__init__(self.NAME, **kwargs)
        self.config, coverage = declare_config(self, *NODE_SETTINGS[self.NAME])
        self.coverage = Coverage(coverage)
        self.view, self._view_time = None, 0.0
        self.problem = None
        self._frames = deque()
        self.text = ''
        self.trigger_requested, self._train_pending, self._waiting_logged = False, False, False
        self._coverage = self.create_publisher(Float32MultiArray, 'head_capture/coverage', 10)
        self._guidance = self.create_publisher(String, 'head_capture/guidance', 10)
        self._markers = self.create_publisher(MarkerArray, 'head_capture/markers', 10)
        self._train = self.create_client(Trigger, 'head_capture/train')
        self.create_subscription(String, 'head_capture/keyframe_report', self.on_report,
                                 RELIABLE_QOS)
        self.create_subscription(PoseStamped, 'head_capture/camera_pose', self.on_pose, 10)
        self.create_subscription(String, 'head_capture/frame_status', self.on_status, 50)
        self._timer = self.create_timer(1.0 / self.config.publish_rate_hz, self.publish)

    def reconfigure(self, settings):
        """Take a new rate, dome, coverage target or quality at once."""
        self.config, self.coverage.config = settings
        self._timer.timer_period_ns = int(1e9 / self.config.publish_rate_hz)

    def on_report(self, message):
        """Add a registered keyframe to the map; remember why one was not."""
        try:
            report = json.loads(message.data)
            registered = bool(report['registered'])
            if registered:
                view = View.of_pose(np.array(report['rotation'], float),
                                    np.array(report['translation'], float))
        except (ValueError, KeyError, TypeError) as exc:
            self.drop('unreadable keyframe report', exc)
            return
        self.health.ok()
        self.problem = None if registered else report.get('problem') or 'no_pose'
        if registered and self.coverage.add(view, float(report['confidence']),
                                            report.get('stamp_ns', -1)):
            self.get_logger().info(f'coverage target met ({self.coverage.score:.0%} of the '
                                   'views): starting the avatar training')
            if self.config.auto_train:
                self.request_training()

    def on_pose(self, message):
        """Where the phone is now."""
        p, q = message.pose.position, message.pose.orientation
        rotation, translation = ros_pose_to_w2c([p.x, p.y, p.z], [q.x, q.y, q.z, q.w])
        self.view, self._view_time = View.of_pose(rotation, translation), time.monotonic()

    def on_status(self, message):
        """Keep the last second of frame verdicts, to tell a shaking hand."""
        now = time.monotonic()
        self._frames.append((now, message.data == 'blurred'))
        while self._frames and now - self._frames[0][0] > BLUR_WINDOW_S:
            self._frames.popleft()

    def current_problem(self):
        """Return the problem to speak about now, if any."""
        if self._frames and np.mean([b for _, b in self._frames]) >= BLUR_SHARE:
            return 'blurred'
        if time.monotonic() - self._view_time > LIVE_POSE_FRESH_S:
            return self.problem
        return None

    def request_training(self):
        """Ask for training once; the call goes out as soon as the trainer's service is up."""
        if not self.trigger_requested:
            self.trigger_requested, self._train_pending = True, True
            self._call_train()

    def _call_train(self):
        if not self._train.service_is_ready():
            if not self._waiting_logged:
                self._waiting_logged = True
                self.get_logger().warning(f'waiting for {self._train.srv_name} (is '
                                          'avatar_trainer running?)')
            return
        self._train_pending = False
        self._train.call_async(Trigger.Request()).add_done_callback(self._trained)

    def _trained(self, future):
        response = future.result()
        self.get_logger().info(f'{self._train.srv_name}: {response.message}')

    def publish(self):
        """Publish the map, the dome and the instruction; send a pending training request."""
        if self._train_pending:
            self._call_train()
        fresh = time.monotonic() - self._view_time <= LIVE_POSE_FRESH_S
        self.text = guidance(self.coverage, self.view if fresh else None,
                             self.current_problem())
        self._guidance.publish(String(data=self.text))
        self._coverage.publish(coverage_message(self.coverage))
        self._markers.publish(MarkerArray(markers=[dome_marker(
            self.coverage, self.config.dome_radius_m, self.config.frame_id,
            self.get_clock().now().to_msg())]))

    def status_values(self):
        """Coverage for /diagnostics."""
        return {'coverage': f'{self.coverage.score:.3f}',
                'band_shares': ' / '.join(f'{s:.2f}' for s in self.coverage.band_shares),
                'complete': self.coverage.complete, 'guidance': self.text}

    def status_message(self):
        """One-line summary."""
        return f'{self.coverage.score:.0%} covered: {self.text}'


def main(args=None):
    """Run coverage_guide."""
    return run_node(CoverageGuide, args)


if __name__ == '__main__':
    raise SystemExit(main())
