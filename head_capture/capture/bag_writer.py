"""
Writing rosbag2 bags in MCAP storage without a ROS install: a recording, or frames as a bag.

The recorder's messages arrive already serialized (CDR, as rclpy hands them to a raw
subscription), so they are written byte for byte: ``ros2 bag info``, Foxglove and our own
``RosbagSource`` read the result, and ``camera_source`` replays it. ``write_image_bag`` turns
frames (synthetic captures, test clips) into the image bag a phone capture would arrive as.
The bag is a directory (metadata.yaml plus one .mcap file), as rosbag2 writes it; the metadata
is only complete once the recorder is closed.
"""

from pathlib import Path

from head_capture.capture.image_encoding import encode_compressed, encode_raw
import numpy as np
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
        self.typestore = get_typestore(Stores.ROS2_KILTED)
        try:
            self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
            self._writer.open()
            self._connections = {topic: self._writer.add_connection(
                topic, msgtype, typestore=self.typestore) for topic, msgtype in topics.items()}
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


def write_image_bag(path, frames, topic='/camera/image_raw', compressed=False,
                    frame_id='camera_optical'):
    """
    Write ``(time_s, rgb_image)`` pairs as a rosbag2 MCAP bag in directory ``path``.

    Raw frames go out as ``sensor_msgs/msg/Image`` rgb8, compressed ones as
    ``sensor_msgs/msg/CompressedImage`` JPEG (then ``/compressed`` is appended to the topic,
    as image_transport names it). Returns the number of messages.
    """
    msgtype = 'sensor_msgs/msg/CompressedImage' if compressed else 'sensor_msgs/msg/Image'
    topic += '/compressed' if compressed else ''
    with BagRecorder(path, {topic: msgtype}) as bag:
        store = bag.typestore
        types = store.types
        for time_s, image in frames:
            stamp_ns = int(round(time_s * 1e9))
            stamp = types['builtin_interfaces/msg/Time'](sec=stamp_ns // 10**9,
                                                         nanosec=stamp_ns % 10**9)
            header = types['std_msgs/msg/Header'](stamp=stamp, frame_id=frame_id)
            if compressed:
                data = np.frombuffer(encode_compressed(image), np.uint8)
                message = types[msgtype](header=header, format='rgb8; jpeg compressed bgr8',
                                         data=data)
            else:
                encoding, height, width, step, payload = encode_raw(image)
                message = types[msgtype](header=header, height=height, width=width,
                                         encoding=encoding, is_bigendian=0, step=step,
                                         data=np.frombuffer(payload, np.uint8))
            bag.write(topic, stamp_ns, store.serialize_cdr(message, msgtype))
    return bag.counts[topic]
