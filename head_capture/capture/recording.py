"""
Recording a capture as a rosbag2 bag in MCAP storage, without a ROS install.

Messages arrive already serialized (CDR, as rclpy hands them to a raw subscription), so they
are written byte for byte: ``ros2 bag info``, Foxglove and our own ``RosbagSource`` read the
result, and ``camera_source`` replays it. The bag is a directory (metadata.yaml plus one .mcap
file), as rosbag2 writes it; the metadata is only complete once the recorder is closed.
"""

from pathlib import Path

from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
from rosbags.typesys import get_typestore, Stores

CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'


class RecordingError(RuntimeError):
    """The bag cannot be created or written, with the reason."""


class BagRecorder:
    """Write serialized messages of a fixed set of topics into a new MCAP bag."""

    def __init__(self, path, topics):
        self.path = Path(path)
        if self.path.exists():
            raise RecordingError(f'{self.path} already exists: choose a new bag name')
        self._typestore = get_typestore(Stores.ROS2_KILTED)
        try:
            self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
            self._writer.open()
            self._connections = {topic: self._writer.add_connection(
                topic, msgtype, typestore=self._typestore) for topic, msgtype in topics.items()}
        except (WriterError, OSError) as exc:
            raise RecordingError(f'cannot record to {self.path}: {exc}') from exc
        self.counts = dict.fromkeys(topics, 0)

    def write(self, topic, stamp_ns, data):
        """Append one serialized message of ``topic`` received at ``stamp_ns``."""
        self._writer.write(self._connections[topic], int(stamp_ns), bytes(data))
        self.counts[topic] += 1

    def close(self):
        """Finish the bag (writes its index and metadata)."""
        self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
