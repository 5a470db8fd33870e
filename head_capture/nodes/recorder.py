"""
recorder: the camera topics into a rosbag2 MCAP bag (``head-capture record``).

Subscribes raw (serialized) so nothing is decoded or re-encoded; messages are stamped with
their receive time, as ``ros2 bag record`` does.
"""

from dataclasses import dataclass

from head_capture.capture.bag_writer import BagRecorder, CAMERA_INFO, RecordingError
from head_capture.capture.sources import COMPRESSED_IMAGE, RAW_IMAGE
from head_capture.nodes.support import declare_config, HeadCaptureNode, image_input, SENSOR_QOS, \
    StartupError
from sensor_msgs.msg import CameraInfo


@dataclass
class RecorderConfig:
    """What to record and where."""

    bag: str = ''
    image_topic: str = '/camera/image_raw'
    # Record image_topic + '/compressed' (smaller) instead of the raw images.
    compressed: bool = False
    camera_info_topic: str = '/camera/camera_info'

    def __post_init__(self):
        if not self.bag:
            raise ValueError('bag is required: the directory of the new bag')


class Recorder(HeadCaptureNode):
    """Write images and camera_info to a bag."""

    NAME = 'recorder'

    def __init__(self, **kwargs):
        super().__init__(self.NAME, **kwargs)
        cfg = self.config = declare_config(self, RecorderConfig)
        kind, image = image_input(cfg.image_topic, cfg.compressed)
        kinds = {image: (kind, COMPRESSED_IMAGE if cfg.compressed else RAW_IMAGE),
                 cfg.camera_info_topic: (CameraInfo, CAMERA_INFO)}
        try:
            self.bag = BagRecorder(cfg.bag, {t: name for t, (_, name) in kinds.items()})
        except RecordingError as exc:
            raise StartupError(str(exc)) from exc
        self.image_topic = image
        for topic, (kind, _) in kinds.items():
            self.create_subscription(kind, topic, self._writer(topic), SENSOR_QOS, raw=True)

    def _writer(self, topic):
        def write(data):
            try:
                self.bag.write(topic, self.get_clock().now().nanoseconds, data)
            except OSError as exc:  # a full disk: what is written stays readable
                self.drop('not written', exc)
                return
            self.health.ok()
        return write

    @property
    def images(self):
        """Return how many images were recorded."""
        return self.bag.counts[self.image_topic]

    def close(self):
        """Finish the bag."""
        self.bag.close()
