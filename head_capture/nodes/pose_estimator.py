"""
pose_estimator: landmarks and a camera pose for every keyframe, and live at a set rate.

The ROS side of ``capture.live_session``. Published: the live pose, TF (the image's camera frame
-> ``head`` by default, see ``tf_frames``), the keyframe poses (PnP, and once the trainer has
bundle-adjusted them, refined), the path, frustum and landmark markers, a per-keyframe JSON
report for the coverage guide, and the annotated guidance image.
"""

from collections import deque
import json
import time

from geometry_msgs.msg import PoseArray, PoseStamped
from head_capture.capture.coverage import Coverage, View
from head_capture.capture.live_session import LiveSession, PERIODIC_SHARE, SESSION_PERIOD_S
from head_capture.capture.visuals import frustum_segments, guidance_image
from head_capture.geometry import c2w_opengl_to_w2c
from head_capture.landmarks.detector import LandmarkDetector, ModelError
from head_capture.landmarks.template import HeadTemplate
from head_capture.node_parameters import NODE_SETTINGS
from head_capture.nodes.markers import (head_transform, KeyframeMarkers, line_marker,
                                        pose_array, ros_pose, TransformBroadcaster)
from head_capture.nodes.ros_image import to_image, to_rgb
from head_capture.nodes.support import (declare_config, HeadCaptureNode, header, image_input,
                                        LATCHED_QOS, NEWEST_QOS, published_unless_shut_down,
                                        RELIABLE_QOS, run_node, SENSOR_QOS, session_root,
                                        stamp_ns, StartupError)
from head_capture.pacing import Pacer
from head_capture.session import SessionError
from head_capture.tf_frames import camera_frame
from nav_msgs.msg import Path as PathMsg
import numpy as np
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Float32MultiArray, String
from visualization_msgs.msg import MarkerArray

KEYFRAMES = 'head_capture/keyframes'
PATH_LENGTH = 2000
PATH_PERIOD_S = 0.5


class PoseEstimator(HeadCaptureNode):
    """Landmarks + PnP on keyframes and live frames."""

    NAME = 'pose_estimator'

    def __init__(self, **kwargs):
        super().__init__(self.NAME, **kwargs)
        self.config, pose_config = declare_config(self, *NODE_SETTINGS[self.NAME])
        cfg, self.root = self.config, session_root(self.config.session_dir)
        try:
            self.detector = LandmarkDetector(cfg.model_path, threads=cfg.threads)
            self.live = LiveSession(
                self.root, self.detector, HeadTemplate.load(), pose_config, fov_deg=cfg.fov_deg,
                decode=to_rgb, logger=self.get_logger(), drop=self.drop,
                camera_info_topic=self.resolve_topic_name(cfg.camera_info_topic))
        except (ModelError, SessionError) as exc:
            raise StartupError(str(exc)) from exc
        self.coverage, self.guidance = None, 'point the phone at the head to start'
        self.keyframe_markers = KeyframeMarkers(
            self.live.template, cfg.frame_id, self.get_clock().now().to_msg(),
            [c2w_opengl_to_w2c(f.c2w) for f in self.live.frames])
        self.path = deque(maxlen=PATH_LENGTH)
        self._path_pacer = Pacer(PATH_PERIOD_S, PERIODIC_SHARE, cost_clock=time.thread_time)
        self._tf = TransformBroadcaster(self) if cfg.publish_tf and TransformBroadcaster else None
        if cfg.publish_tf and self._tf is None:
            self.get_logger().warning('no TF: tf2_ros is not installed (rclpy from pip has '
                                      'none); the camera pose is on head_capture/camera_pose')
        self._pose = self.create_publisher(PoseStamped, 'head_capture/camera_pose', 10)
        self._poses = self.create_publisher(PoseArray, 'head_capture/keyframe_poses', LATCHED_QOS)
        self._refined = self.create_publisher(PoseArray, 'head_capture/refined_keyframe_poses',
                                              LATCHED_QOS)
        self.create_timer(SESSION_PERIOD_S, self._send_refined_poses)
        self._path = self.create_publisher(PathMsg, 'head_capture/camera_path', 10)
        self._markers = self.create_publisher(MarkerArray, 'head_capture/markers', 10)
        self._report = self.create_publisher(String, 'head_capture/keyframe_report', RELIABLE_QOS)
        self._image = self.create_publisher(Image, 'head_capture/guidance_image', 2)
        self.create_subscription(CameraInfo, cfg.camera_info_topic, self.live.offer_camera_info,
                                 SENSOR_QOS)
        self.create_subscription(Image, KEYFRAMES, self.on_keyframe, RELIABLE_QOS)
        self.create_subscription(Float32MultiArray, 'head_capture/coverage', self.on_coverage, 10)
        self.create_subscription(String, 'head_capture/guidance', self.on_guidance, 10)
        self._live_timer = None
        if cfg.live_rate_hz > 0:
            self.create_subscription(*image_input(cfg.image_topic, cfg.compressed), self.on_live,
                                     NEWEST_QOS)
            # The timer ticks at 3x the live rate: a frame waits at most a third of a period.
            self._live_timer = self.create_timer(1.0 / (3 * cfg.live_rate_hz),
                                                 self.process_live_if_due)
        self._markers.publish(MarkerArray(markers=[self.keyframe_markers.template]))
        # The keyframe poses and frustums go out with each flush of transforms.json.
        self.live.start(self._keyframe_posed,
                        lambda: published_unless_shut_down(self, self._send_keyframe_poses))
        self.get_logger().info(f'landmarks + PnP on {self.resolve_topic_name(KEYFRAMES)} into '
                               f'{self.root} (onnxruntime: {self.detector.provider})')

    def on_keyframe(self, message):
        """Queue a keyframe for the detector: none is skipped."""
        self.live.offer_keyframe(stamp_ns(message.header.stamp), message)

    def on_live(self, message):
        """Keep only the newest frame: the live timer takes it when the detector is free."""
        self.live.offer_live(message)

    def on_coverage(self, message):
        """Keep the coverage map, to draw its ring on the guidance image."""
        try:
            fill = np.asarray(message.data, float).reshape([d.size for d in message.layout.dim])
            self.coverage = Coverage.from_grid(fill, [d.label for d in message.layout.dim])
        except ValueError as exc:
            self.drop('unreadable coverage message', exc)

    def on_guidance(self, message):
        """Keep the latest instruction, to write it on the guidance image."""
        self.guidance = message.data

    def process_live_if_due(self):
        """Pose the newest live frame once the live rate allows; send pose, TF, path, image."""
        live = self.live.pose_newest(self.config.live_rate_hz)
        if live is None:
            return
        self.health.ok()
        cfg, estimate, stamp, view = self.config, live.estimate, live.message.header.stamp, None
        frame = camera_frame(live.message.header.frame_id, cfg.camera_frame_id)
        if estimate.registered:
            pose = PoseStamped(header=header(stamp, cfg.frame_id),
                               pose=ros_pose(estimate.rotation, estimate.translation))
            self._pose.publish(pose)
            self.path.append(pose)
            self._path_pacer.run_if_due(lambda: self._path.publish(  # a long trail
                PathMsg(header=header(stamp, cfg.frame_id), poses=list(self.path))))
            if self._tf is not None:
                self._tf.sendTransform(head_transform(estimate.rotation, estimate.translation,
                                                      cfg.frame_id, frame, cfg.tf_child, stamp))
            view = View.of_pose(estimate.rotation, estimate.translation)
            self._markers.publish(MarkerArray(markers=[line_marker(
                frustum_segments(estimate.rotation, estimate.translation, live.camera, 0.08),
                'live_camera', (1.0, 0.6, 0.0), cfg.frame_id, stamp, 0.004)]))
        if self._image.get_subscription_count():
            picture = guidance_image(live.image, self.guidance, live.detection, estimate,
                                     live.camera, self.coverage, view)
            self._image.publish(to_image(picture, header(stamp, frame)))

    def _keyframe_posed(self, posed):
        """Report a keyframe the detector saw; a recorded one joins the poses and frustums."""
        self.health.ok()
        if posed.recorded:
            self.keyframe_markers.add(posed.estimate.rotation, posed.estimate.translation,
                                      posed.camera)
        published_unless_shut_down(
            self, lambda: self._report.publish(String(data=json.dumps(posed.report))))

    def _send_refined_poses(self):
        poses = self.live.refined_poses()
        if poses is not None:
            self._refined.publish(pose_array(poses, self.config.frame_id,
                                             self.get_clock().now().to_msg()))

    def _send_keyframe_poses(self):
        poses, markers = self.keyframe_markers.messages(self.get_clock().now().to_msg())
        self._poses.publish(poses)
        self._markers.publish(markers)

    def reconfigure(self, settings):
        """Take a new live rate; live poses cannot be switched on or off while running."""
        config, _ = settings
        if (config.live_rate_hz > 0) != (self._live_timer is not None):
            raise ValueError('live_rate_hz cannot switch live poses on or off while the node '
                             f'runs (they are {"on" if self._live_timer else "off"}): restart it')
        self.config = config
        if self._live_timer is not None:
            self._live_timer.timer_period_ns = int(1e9 / (3 * config.live_rate_hz))

    def close(self):
        """Stop the keyframe thread, then write what it added since the last flush."""
        self.live.close()

    def status_values(self):
        """Return the counts for /diagnostics."""
        cfg = self.config
        tf = (f'on ({cfg.tf_child} is the child)' if self._tf is not None else
              'off (tf2_ros not installed)' if cfg.publish_tf else 'off (publish_tf)')
        return {**self.live.status(), 'tf': tf, 'onnxruntime': self.detector.provider}

    def status_message(self):
        """One-line summary."""
        return f'{self.live.registered} of {self.live.keyframes} keyframes registered'


def main(args=None):
    """Run pose_estimator."""
    return run_node(PoseEstimator, args)


if __name__ == '__main__':
    raise SystemExit(main())
