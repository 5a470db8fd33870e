"""
keyframe_selector: sharp, spread-out keyframes from the live stream, kept in the session.

Every frame is scored (``capture.keyframes``); the best frame of each slot is written to
``SESSION/keyframes/<stamp>.png`` before it is published, so a keyframe that reached the pose
estimator is already safe on disk. The verdict on every frame (sharp, blurred, dark, ...) goes
to ``frame_status`` for the guidance.
"""


from head_capture.capture.image_encoding import ImageDecodeError
from head_capture.capture.keyframes import OnlineKeyframeSelector
from head_capture.capture.sources import Frame
from head_capture.files import write_image_atomic
from head_capture.node_parameters import NODE_SETTINGS
from head_capture.nodes.ros_image import to_image, to_rgb
from head_capture.nodes.support import (declare_config, HeadCaptureNode, header, image_input,
                                        published_unless_shut_down, RELIABLE_QOS, run_node,
                                        SENSOR_QOS, session_root, stamp_msg, stamp_ns)
from head_capture.session import keyframe_file, SessionError
from sensor_msgs.msg import Image
from std_msgs.msg import String


class KeyframeSelector(HeadCaptureNode):
    """Score frames, keep and publish keyframes."""

    NAME = 'keyframe_selector'

    def __init__(self, **kwargs):
        super().__init__(self.NAME, **kwargs)
        self.config, keyframes = declare_config(self, *NODE_SETTINGS[self.NAME])
        self.root = session_root(self.config.session_dir)
        self.selector = OnlineKeyframeSelector(keyframes)
        self.keyframes = 0
        self._frame_id = ''
        self._publisher = self.create_publisher(Image, 'head_capture/keyframes', RELIABLE_QOS)
        self._status = self.create_publisher(String, 'head_capture/frame_status', 10)
        kind, topic = image_input(self.config.image_topic, self.config.compressed)
        images = self.create_subscription(kind, topic, self.on_image, SENSOR_QOS)
        self.get_logger().info(f'keyframes from {images.topic_name} into {self.root}')

    def reconfigure(self, settings):
        """Take new thresholds from the next frame on."""
        self.config, self.selector.config = settings

    def on_image(self, message):
        """Score one frame; keep and publish the keyframe a closed slot releases."""
        try:
            image = to_rgb(message)
        except ImageDecodeError as exc:
            self.drop('undecodable image', exc)
            return
        stamp = stamp_ns(message.header.stamp)
        decision = self.selector.update(Frame(stamp, stamp * 1e-9, image))
        self._status.publish(String(data=decision.status))
        self.health.ok()
        if decision.keyframe is not None:
            self._keep(decision.keyframe)
        self._frame_id = message.header.frame_id

    def _keep(self, keyframe):
        frame = keyframe.frame
        try:
            write_image_atomic(self.root / keyframe_file(frame.index), frame.image)
        except (OSError, SessionError) as exc:
            # A full disk: the keyframe cannot be kept, so it is not handed on either.
            self.drop('keyframe not written', exc)
            return
        self.keyframes += 1
        published_unless_shut_down(self, lambda: self._publisher.publish(
            to_image(frame.image, header(stamp_msg(frame.index), self._frame_id))))

    def status_values(self):
        """Keyframe count for /diagnostics."""
        return {'keyframes': self.keyframes, 'session_dir': str(self.root)}

    def status_message(self):
        """One-line summary."""
        return f'{self.keyframes} keyframes from {self.health.handled} frames'

    def close(self):
        """Keep the best frame of the slot still open (published if ROS is still up)."""
        keyframe = self.selector.flush()
        if keyframe is not None:
            self._keep(keyframe)


def main(args=None):
    """Run keyframe_selector."""
    return run_node(KeyframeSelector, args)


if __name__ == '__main__':
    raise SystemExit(main())
