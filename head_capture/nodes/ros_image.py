"""
sensor_msgs Image / CompressedImage <-> RGB uint8 numpy, for the nodes.

The pixel work is ``capture.image_encoding`` (shared with the rosbag reader); cv_bridge is
used for raw images when a ROS install provides it, so encodings it knows and we do not still
work there. Every failure is an ``ImageDecodeError`` saying why, so a node can count and drop.
"""

from head_capture.capture.image_encoding import (decode_compressed, decode_raw, encode_compressed,
                                                 encode_raw, ImageDecodeError)
import numpy as np
from sensor_msgs.msg import CompressedImage, Image

try:  # a real ROS install
    from cv_bridge import CvBridge, CvBridgeError
except ImportError:  # pip-installed rclpy: our own decoders
    CvBridge = None

_BRIDGE = CvBridge() if CvBridge is not None else None


def to_rgb(message):
    """Return the RGB uint8 HxWx3 pixels of an Image or CompressedImage message."""
    if isinstance(message, CompressedImage):
        return decode_compressed(message.format, bytes(message.data))
    if _BRIDGE is not None and message.encoding not in ('yuv422_yuy2', 'yuyv'):
        try:
            pixels = _BRIDGE.imgmsg_to_cv2(message, desired_encoding='rgb8')
        except (CvBridgeError, TypeError, ValueError) as exc:
            raise ImageDecodeError(f'cv_bridge: {exc}') from exc
        if pixels.size == 0:
            raise ImageDecodeError(f'empty image ({message.width}x{message.height})')
        return np.ascontiguousarray(pixels)
    return decode_raw(message.encoding, message.height, message.width, message.step,
                      bytes(message.data), bool(message.is_bigendian))


def to_image(rgb, header, encoding='rgb8'):
    """Return an Image message of an RGB uint8 array (rgb8, bgr8 or mono8)."""
    encoding, height, width, step, data = encode_raw(rgb, encoding)
    return Image(header=header, height=height, width=width, encoding=encoding,
                 is_bigendian=0, step=step, data=data)


def to_compressed(rgb, header, image_format='jpeg', quality=90):
    """Return a CompressedImage message (JPEG or PNG) of an RGB uint8 array."""
    return CompressedImage(header=header, format=image_format,
                           data=encode_compressed(rgb, image_format, quality))
