"""
pose_estimator: landmarks and a camera pose for every keyframe, and live at a set rate.

Keyframes (reliable, none skipped) get the detector, RANSAC PnP and, when registered, a line in
``SESSION/transforms.json`` with their head mask: that file is what the trainer reads. The
selector keeps every keyframe in the session before it publishes it, so the session, not the
topic, is the record: every second or so the node also queues the kept keyframes it never got
a message for (sent before it had started, say: importing torch and loading the model takes
seconds, while the camera streams from the first). Live frames (best effort) are processed at
``live_rate_hz`` on the newest frame only, so a slow machine lowers the rate instead of
building a queue. Keyframes run on a thread of their own, so a live pose never waits for one.
Published: the live pose, TF (when tf2 is installed: the image's camera frame -> ``head`` by
default, see ``tf_frames``), the keyframe poses, the path, frustum and landmark markers, a
per-keyframe JSON report for the coverage guide, and the annotated guidance image.
"""

from collections import deque
import json
import threading
import time
import traceback

from geometry_msgs.msg import Point, Pose, PoseArray, PoseStamped, Quaternion, TransformStamped
from head_capture.camera import image_intrinsics, Intrinsics
from head_capture.capture.coverage import Coverage, View
from head_capture.capture.head_volume import HeadVolume, keep_in_session, META_KEY as HEAD_VOLUME
from head_capture.capture.image_encoding import ImageDecodeError
from head_capture.capture.registration import detect_and_solve, keyframe_mask, pose_record
from head_capture.capture.visuals import frustum_segments, guidance_image
from head_capture.geometry import c2w_opengl_to_w2c, w2c_to_ros_pose
from head_capture.landmarks.detector import default_model_path, LandmarkDetector, ModelError
from head_capture.landmarks.template import HeadTemplate
from head_capture.node_settings import NODE_SETTINGS
from head_capture.nodes.markers import list_marker, ros_points
from head_capture.nodes.ros_image import to_image, to_rgb
from head_capture.nodes.support import (declare_config, HeadCaptureNode, header, image_input,
                                        LATCHED_QOS, NEWEST_QOS, published_unless_shut_down,
                                        RELIABLE_QOS, run_node,
                                        SENSOR_QOS, session_root, stamp_msg, stamp_ns,
                                        StartupError)
from head_capture.pacing import Pacer
from head_capture.resources import share_path
from head_capture.session import keyframe_file, keyframe_stamp, keyframe_stamps, read_image, \
    Session, SessionError, TRANSFORMS_FILE
from head_capture.tf_frames import camera_frame, head_link
from nav_msgs.msg import Path as PathMsg
import numpy as np
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Float32MultiArray, String
from visualization_msgs.msg import Marker, MarkerArray

try:  # a real ROS install
    from tf2_ros import TransformBroadcaster
except ImportError:  # pip-installed rclpy: no TF, poses are still on their topics
    TransformBroadcaster = None

PATH_LENGTH = 2000
PATH_PERIOD_S = 0.5
SESSION_PERIOD_S = 1.0
# The most of its thread's time that periodic writes and sends may take (see Pacer).
PERIODIC_SHARE = 0.05
# Keyframes waiting for the detector with their pixels in memory; the rest wait as stamps.
QUEUED_IMAGES = 8
# Keyframes wait this long after the first image came for camera_info before the field of view
# is assumed: a backlog read from the session must not be registered with a guess. Counted from
# the first image, not from the node's start: camera_info comes with every frame, and under load
# discovery between the processes has taken longer than this (`make demo`).
CAMERA_INFO_WAIT_S = 3.0
# With no image at all (a session's backlog, its camera gone) the field of view is assumed then.
NO_STREAM_WAIT_S = 15.0
# The keyframe thread looks at the clock this often while nothing comes (the pacer, the wait
# for camera_info).
KEYFRAME_IDLE_S = 0.1


def ros_pose(rotation, translation):
    """Return the geometry_msgs/Pose of a world-to-camera pose (the camera in the head frame)."""
    position, quat = w2c_to_ros_pose(rotation, translation)
    return Pose(position=Point(x=float(position[0]), y=float(position[1]),
                               z=float(position[2])),
                orientation=Quaternion(x=float(quat[0]), y=float(quat[1]), z=float(quat[2]),
                                       w=float(quat[3])))


def line_marker(points, namespace, colour, frame_id, stamp, width=0.003, marker_id=0):
    """Return a LINE_LIST marker through consecutive point pairs (N, 3)."""
    return list_marker(Marker.LINE_LIST, points, namespace, frame_id, stamp, width,
                       (*colour, 1.0), marker_id=marker_id)


class PoseEstimator(HeadCaptureNode):
    """Landmarks + PnP on keyframes and live frames."""

    NAME = 'pose_estimator'

    def __init__(self, **kwargs):
        super().__init__(self.NAME, **kwargs)
        self.config, self.pose_config = declare_config(self, *NODE_SETTINGS[self.NAME])
        cfg = self.config
        self.root = session_root(cfg.session_dir)
        try:
            self.detector = LandmarkDetector(cfg.model_path or default_model_path(),
                                             threads=cfg.threads)
        except ModelError as exc:
            raise StartupError(str(exc)) from exc
        template = HeadTemplate.load(share_path('models', 'head_template.json'))
        self.template, self.volume = template.positions, HeadVolume.of_template(template)
        self.session = self._open_session()
        self.camera, self._fov_warned = None, False
        self.coverage, self.guidance = None, 'point the phone at the head to start'
        self.keyframe_poses = [ros_pose(*c2w_opengl_to_w2c(f.c2w))
                               for f in (self.session.frames if self.session else [])]
        # Grows by one frustum per registered keyframe; sent whole at each flush.
        self._frustums = line_marker(np.zeros((0, 3)), 'keyframe_frustums', (0.2, 0.6, 1.0),
                                     cfg.frame_id, self.get_clock().now().to_msg())
        self.path = deque(maxlen=PATH_LENGTH)
        self._latest, self._lock, self._box = None, threading.Lock(), None
        self._live_due = 0.0
        self._path_pacer = Pacer(PATH_PERIOD_S, PERIODIC_SHARE, cost_clock=time.thread_time)
        self._started, self._first_image = time.monotonic(), None
        self.registered, self.keyframes = len(self.keyframe_poses), 0
        self.live_frames, self.live_posed = 0, 0
        self._tf = (TransformBroadcaster(self) if cfg.publish_tf and TransformBroadcaster
                    else None)
        if cfg.publish_tf and self._tf is None:
            self.get_logger().warning('no TF: tf2_ros is not installed (rclpy from pip has '
                                      'none); the camera pose is on head_capture/camera_pose')
        self._waiting = deque()  # keyframes received, not yet through the detector
        # Every keyframe stamp queued once, whether its message came or the session had it.
        self._queued = {keyframe_stamp(f.file_path) for f in
                        (self.session.frames if self.session else [])}
        self.read_from_session = 0
        self._pose = self.create_publisher(PoseStamped, 'head_capture/camera_pose', 10)
        self._poses = self.create_publisher(PoseArray, 'head_capture/keyframe_poses',
                                            LATCHED_QOS)
        self._path = self.create_publisher(PathMsg, 'head_capture/camera_path', 10)
        self._markers = self.create_publisher(MarkerArray, 'head_capture/markers', 10)
        self._report = self.create_publisher(String, 'head_capture/keyframe_report',
                                             RELIABLE_QOS)
        self._image = self.create_publisher(Image, 'head_capture/guidance_image', 2)
        self.create_subscription(CameraInfo, cfg.camera_info_topic, self.on_camera_info,
                                 SENSOR_QOS)
        self.create_subscription(Image, 'head_capture/keyframes', self.on_keyframe,
                                 RELIABLE_QOS)
        self.create_subscription(Float32MultiArray, 'head_capture/coverage', self.on_coverage,
                                 10)
        self.create_subscription(String, 'head_capture/guidance', self.on_guidance, 10)
        if cfg.live_rate_hz > 0:
            kind, topic = image_input(cfg.image_topic, cfg.compressed)
            self.create_subscription(kind, topic, self.on_live, NEWEST_QOS)
        # Live frames on the executor's thread: the timer ticks at 3x the live rate, so a live
        # frame waits at most a third of a period to start.
        self._live_timer = (self.create_timer(1.0 / (3 * cfg.live_rate_hz),
                                              self.process_live_if_due)
                            if cfg.live_rate_hz > 0 else None)
        # What grows with the session (transforms.json, all keyframe poses and frustums, the
        # keyframe folder's listing) is written and sent once a second, not per keyframe, and
        # less often once it takes more than PERIODIC_SHARE of the time: a keyframe costs the
        # same at 1000, and the live rate holds however long the session. The keyframe thread
        # does it between keyframes, so the session is only ever touched by that thread.
        self._session_changed = False
        self._session_pacer = Pacer(SESSION_PERIOD_S, PERIODIC_SHARE, cost_clock=time.thread_time)
        self._template_marker = self._make_template_marker()
        self._markers.publish(MarkerArray(markers=[self._template_marker]))
        # Keyframes (the detector twice, PnP, the mask written) on a thread of their own, in
        # arrival order: onnxruntime, OpenCV and numpy let go of the GIL, so a live frame runs
        # beside a keyframe instead of after it.
        self._keyframe_ready, self._stopping = threading.Condition(self._lock), False
        self._keyframe_thread = threading.Thread(target=self._work_keyframes,
                                                 name='keyframes', daemon=True)
        self._keyframe_thread.start()
        keyframes = self.resolve_topic_name('head_capture/keyframes')
        self.get_logger().info(f'landmarks + PnP on {keyframes} into {self.root} '
                               f'(onnxruntime: {self.detector.provider})')

    # -- inputs ------------------------------------------------------------------------------

    def on_camera_info(self, message):
        """Keep the newest usable intrinsics."""
        try:
            camera = Intrinsics.from_camera_info(message.width, message.height, message.k,
                                                 message.d, message.distortion_model)
        except ValueError as exc:
            self.drop('unusable camera_info', exc)
            return
        self.camera = camera

    def on_keyframe(self, message):
        """Queue a keyframe for the detector: none is skipped."""
        self._image_came()
        self._queue(stamp_ns(message.header.stamp), message)

    def _image_came(self):
        if self._first_image is None:
            self._first_image = time.monotonic()

    def catch_up(self):
        """Queue the keyframes kept in the session whose message never came."""
        missed = [stamp for stamp in keyframe_stamps(self.root) if stamp not in self._queued]
        for stamp in missed:
            self._queue(stamp)
        if missed and not self.read_from_session:
            self.get_logger().info(f'{len(missed)} keyframe(s) in the session came without a '
                                   'message (sent before this node subscribed?): read from '
                                   'disk; later ones are counted in /diagnostics')
        self.read_from_session += len(missed)

    def _queue(self, stamp, message=None):
        """
        Queue keyframe ``stamp`` once; its message's pixels ride along while only a few wait.

        The rest wait as stamps: the selector wrote the pixels to the session before
        publishing, so a detector that falls behind costs no memory.
        """
        with self._lock:
            if stamp in self._queued:
                return
            self._queued.add(stamp)
            self._waiting.append(message if message is not None
                                 and len(self._waiting) < QUEUED_IMAGES else stamp)
            self._keyframe_ready.notify()

    def on_live(self, message):
        """Keep only the newest frame: the live timer takes it when the detector is free."""
        self._image_came()
        with self._lock:
            self._latest = message

    def on_coverage(self, message):
        """Keep the coverage map, to draw its ring on the guidance image."""
        try:
            fill = np.asarray(message.data, float).reshape(
                [d.size for d in message.layout.dim])
            self.coverage = Coverage.from_grid(fill, [d.label for d in message.layout.dim])
        except ValueError as exc:
            self.drop('unreadable coverage message', exc)

    def on_guidance(self, message):
        """Keep the latest instruction, to write it on the guidance image."""
        self.guidance = message.data

    # -- work --------------------------------------------------------------------------------

    def process_live_if_due(self):
        """Pose the newest live frame once the live rate allows another."""
        if self._latest is not None and time.monotonic() >= self._live_due:
            self.process_live()

    def _work_keyframes(self):
        """Run keyframes in arrival order, and the session's periodic work (keyframe thread)."""
        while True:
            with self._keyframe_ready:
                self._keyframe_ready.wait_for(lambda: self._stopping or self._keyframe_waits(),
                                              KEYFRAME_IDLE_S)
                if self._stopping:
                    return
                keyframe = self._waiting.popleft() if self._keyframe_waits() else None
            try:
                if keyframe is not None:
                    self.process_keyframe(keyframe)
                self._session_pacer.run_if_due(self._keep_session)
            except Exception as exc:  # noqa: B902 - a bug must not silently end the thread
                self.drop('keyframe failed', exc)
                self.get_logger().error(f'keyframe failed: {traceback.format_exc()}')

    def _keyframe_waits(self):
        """Say whether a keyframe can run: one waits, and the camera is known or assumed."""
        return bool(self._waiting) and self._camera_settled()

    def _camera_settled(self):
        """Say whether camera_info came, or images came long enough without it."""
        if self.camera is not None:
            return True
        now = time.monotonic()
        if self._first_image is None:
            return now - self._started > NO_STREAM_WAIT_S
        return now - self._first_image > CAMERA_INFO_WAIT_S

    def process_live(self):
        """Pose of the newest live frame; publishes pose, TF, path and the guidance image."""
        now = time.monotonic()
        with self._lock:
            message, self._latest = self._latest, None
        if message is None:
            return
        # Keep the cadence (the timer's own jitter averages out), without a burst to catch up.
        self._live_due = max(self._live_due + 1.0 / self.config.live_rate_hz, now)
        image = self._decode(message)
        if image is None:
            return
        detection, estimate, camera = self._estimate(image, self._box)
        self._box = detection.box if detection.usable else None
        stamp = message.header.stamp
        frame = camera_frame(message.header.frame_id, self.config.camera_frame_id)
        view = None
        self.live_frames += 1
        if estimate.registered:
            self.live_posed += 1
            pose = ros_pose(estimate.rotation, estimate.translation)
            self._pose.publish(PoseStamped(header=header(stamp, self.config.frame_id), pose=pose))
            self.path.append(PoseStamped(header=header(stamp, self.config.frame_id), pose=pose))
            self._path_pacer.run_if_due(lambda: self._path.publish(  # a long trail
                PathMsg(header=header(stamp, self.config.frame_id), poses=list(self.path))))
            self._broadcast(stamp, frame, estimate)
            view = View.of_pose(estimate.rotation, estimate.translation)
            live = line_marker(frustum_segments(estimate.rotation, estimate.translation, camera,
                                                0.08), 'live_camera', (1.0, 0.6, 0.0),
                               self.config.frame_id, stamp, 0.004)
            self._markers.publish(MarkerArray(markers=[live]))
        if self._image.get_subscription_count():
            picture = guidance_image(image, self.guidance, detection, estimate, camera,
                                     self.coverage, view)
            self._image.publish(to_image(picture, header(stamp, frame)))

    def process_keyframe(self, keyframe):
        """Pose of a keyframe (message or stamp): into the session when registered, reported."""
        self.keyframes += 1
        from_disk = isinstance(keyframe, int)  # a stamp: its pixels are in the session
        stamp = keyframe if from_disk else stamp_ns(keyframe.header.stamp)
        relative = keyframe_file(stamp)
        if from_disk:
            try:
                image = read_image(self.root / relative)
            except (OSError, SessionError) as exc:
                self.drop('keyframe not readable', exc)
                return
        else:
            image = self._decode(keyframe)
            if image is None:
                return
        # Seeded by the live head box: the frame is searched only when the head is not there.
        detection, estimate, camera = self._estimate(image, self._box, refine=True,
                                                     mirror=True)
        report = {'stamp_ns': stamp, 'file_path': relative, **estimate.to_json(),
                  'problem': None if estimate.registered else
                  ('no_head' if not detection.usable else 'no_pose')}
        if estimate.registered and self._record(relative, detection, estimate, camera, stamp):
            self.registered += 1
            self.keyframe_poses.append(ros_pose(estimate.rotation, estimate.translation))
            self._frustums.points.extend(ros_points(frustum_segments(
                estimate.rotation, estimate.translation, camera)))
            self._session_changed = True
        published_unless_shut_down(
            self, lambda: self._report.publish(String(data=json.dumps(report))))

    def _keep_session(self):
        self.flush_session()
        self.catch_up()

    def flush_session(self):
        """Write transforms.json and send the keyframe poses and frustums, if they changed."""
        if not self._session_changed:
            return
        self._session_changed = False
        try:
            self.session.save()
        except (OSError, SessionError) as exc:
            self._session_changed = True  # kept in memory: the next flush tries again
            self.drop('transforms.json not written', exc)
        published_unless_shut_down(self, self._send_keyframe_poses)

    def _send_keyframe_poses(self):
        stamp = self.get_clock().now().to_msg()
        self._poses.publish(PoseArray(header=header(stamp, self.config.frame_id),
                                      poses=self.keyframe_poses))
        self._frustums.header.stamp = stamp
        self._markers.publish(MarkerArray(markers=[self._template_marker, self._frustums]))

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
        with self._keyframe_ready:
            self._stopping = True
            self._keyframe_ready.notify()
        self._keyframe_thread.join()
        self.flush_session()

    def _decode(self, message):
        """Return the message's RGB pixels, or None (counted) when they cannot be read."""
        try:
            return to_rgb(message)
        except ImageDecodeError as exc:
            self.drop('undecodable image', exc)
            return None

    def _estimate(self, image, box, refine=False, mirror=False):
        camera = self._camera_for(image)
        detection, estimate = detect_and_solve(image, camera, self.detector, self.template,
                                               self.pose_config, box, refine, mirror)
        self.health.ok()
        return detection, estimate, camera

    def _camera_for(self, image):
        camera = self.camera
        if camera is None and not self._fov_warned:
            self._fov_warned = True
            info = self.resolve_topic_name(self.config.camera_info_topic)
            self.get_logger().warning(f'no camera_info on {info}: assuming'
                                      f' a {self.config.fov_deg:g}° field of view')
        return image_intrinsics(image, camera, self.config.fov_deg)

    # -- the session -------------------------------------------------------------------------

    def _open_session(self):
        if (self.root / TRANSFORMS_FILE).is_file():
            try:
                session = Session.load(self.root)
            except SessionError as exc:
                raise StartupError(f'{self.root} holds an unreadable session ({exc}); choose '
                                   'another session_dir') from exc
            self.get_logger().info(f'continuing the session in {self.root}: '
                                   f'{len(session.frames)} registered keyframes')
            if keep_in_session(session, self.volume):
                self.get_logger().info('the session had no head volume: it now holds the '
                                       'one its keyframes are cut to')
            return session
        return None

    def _record(self, relative, detection, estimate, camera, stamp):
        """
        Add a registered keyframe to the session; False (counted) if it cannot be.

        Its mask is written now, transforms.json at the next flush.
        """
        try:
            if not (self.root / relative).is_file():  # the selector writes before publishing
                raise SessionError(f'{relative} is not in the session: is keyframe_selector '
                                   'writing to the same session_dir?')
            if self.session is None:
                self.session = Session.create(self.root, camera, meta={
                    'head_capture': {'poses': 'head landmarks + RANSAC PnP, live'},
                    HEAD_VOLUME: self.volume.as_meta()})
            elif self.session.transforms.intrinsics != camera:
                self.drop('keyframe from another camera', f"{camera} vs the session's")
                return False
            c2w, pose = pose_record(estimate)
            self.session.add_record(relative, c2w,
                                    keyframe_mask(detection, estimate, camera, self.volume),
                                    {'stamp_ns': stamp, **pose})
        except (OSError, SessionError) as exc:
            self.drop('keyframe not recorded', exc)
            return False
        return True

    # -- outputs -----------------------------------------------------------------------------

    def _broadcast(self, stamp, frame, estimate):
        """Send the live pose on TF, between the image's camera frame and the head."""
        if self._tf is None:
            return
        parent, child, (x, y, z), (qx, qy, qz, qw) = head_link(
            estimate.rotation, estimate.translation, self.config.frame_id, frame,
            self.config.tf_child)
        transform = TransformStamped(header=header(stamp, parent), child_frame_id=child)
        transform.transform.translation.x, transform.transform.translation.y = x, y
        transform.transform.translation.z = z
        transform.transform.rotation = Quaternion(x=qx, y=qy, z=qz, w=qw)
        self._tf.sendTransform(transform)

    def _make_template_marker(self):
        return list_marker(Marker.SPHERE_LIST, self.template, 'template',
                           self.config.frame_id, stamp_msg(0), 0.004, (0.9, 0.9, 0.9, 0.8))

    def status_values(self):
        """Return the counts for /diagnostics."""
        return {'keyframes': self.keyframes, 'registered': self.registered,
                'waiting': len(self._waiting), 'read_from_session': self.read_from_session,
                'live_frames': self.live_frames, 'live_posed': self.live_posed,
                'camera': 'camera_info' if self.camera else f'assumed {self.config.fov_deg:g}°',
                'tf': self._tf_status(), 'onnxruntime': self.detector.provider}

    def _tf_status(self):
        if self._tf is not None:
            return f'on ({self.config.tf_child} is the child)'
        return 'off (tf2_ros not installed)' if self.config.publish_tf else 'off (publish_tf)'

    def status_message(self):
        """One-line summary."""
        return f'{self.registered} of {self.keyframes} keyframes registered'


def main(args=None):
    """Run pose_estimator."""
    return run_node(PoseEstimator, args)


if __name__ == '__main__':
    raise SystemExit(main())
