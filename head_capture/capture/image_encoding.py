"""
ROS image messages <-> RGB numpy arrays, without ROS.

Works on the fields of ``sensor_msgs/Image`` and ``sensor_msgs/CompressedImage``, so the
rosbag reader (messages decoded by ``rosbags``) and the rclpy nodes (live messages) share one
implementation. Every decoder returns RGB uint8 HxWx3 or raises ``ImageDecodeError``.
"""

import cv2
import numpy as np


class ImageDecodeError(ValueError):
    """An image message whose pixels cannot be turned into an RGB image, with the reason."""


# encoding -> (channels, dtype, conversion of the HxWxC array to RGB, or None if already RGB)
_RAW = {
    'rgb8': (3, np.uint8, None),
    'bgr8': (3, np.uint8, cv2.COLOR_BGR2RGB),
    'rgba8': (4, np.uint8, cv2.COLOR_RGBA2RGB),
    'bgra8': (4, np.uint8, cv2.COLOR_BGRA2RGB),
    'mono8': (1, np.uint8, cv2.COLOR_GRAY2RGB),
    '8UC1': (1, np.uint8, cv2.COLOR_GRAY2RGB),
    '8UC3': (3, np.uint8, cv2.COLOR_BGR2RGB),
    'rgb16': (3, np.uint16, None),
    'bgr16': (3, np.uint16, cv2.COLOR_BGR2RGB),
    'rgba16': (4, np.uint16, cv2.COLOR_RGBA2RGB),
    'bgra16': (4, np.uint16, cv2.COLOR_BGRA2RGB),
    'mono16': (1, np.uint16, cv2.COLOR_GRAY2RGB),
    '16UC1': (1, np.uint16, cv2.COLOR_GRAY2RGB),
    'yuv422': (2, np.uint8, cv2.COLOR_YUV2RGB_UYVY),
    'uyvy': (2, np.uint8, cv2.COLOR_YUV2RGB_UYVY),
    'yuv422_yuy2': (2, np.uint8, cv2.COLOR_YUV2RGB_YUY2),
    'yuyv': (2, np.uint8, cv2.COLOR_YUV2RGB_YUY2),
}
RAW_ENCODINGS = tuple(_RAW)
_ENCODE = {'rgb8': None, 'bgr8': cv2.COLOR_RGB2BGR, 'mono8': cv2.COLOR_RGB2GRAY}


def decode_raw(encoding, height, width, step, data, is_bigendian=False):
    """Turn the fields of a ``sensor_msgs/Image`` into an RGB uint8 array."""
    if encoding not in _RAW:
        raise ImageDecodeError(f'unsupported image encoding {encoding!r}; supported: '
                               f'{", ".join(RAW_ENCODINGS)}')
    channels, dtype, conversion = _RAW[encoding]
    itemsize = np.dtype(dtype).itemsize
    row_bytes = width * channels * itemsize
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f'empty image ({width}x{height})')
    if step < row_bytes or len(data) < step * (height - 1) + row_bytes:
        raise ImageDecodeError(f'{encoding} image of {width}x{height} needs rows of '
                               f'{row_bytes} bytes; got step {step} and {len(data)} bytes')
    buffer = np.frombuffer(data, np.uint8, count=step * (height - 1) + row_bytes)
    rows = np.lib.stride_tricks.as_strided(buffer, (height, row_bytes), (step, 1))
    byteorder = '>' if is_bigendian else '<'
    pixels = rows.copy().view(np.dtype(dtype).newbyteorder(byteorder))
    pixels = pixels.reshape(height, width, channels)
    if itemsize == 2:
        pixels = (pixels >> 8).astype(np.uint8)
    if conversion is None:
        return np.ascontiguousarray(pixels)
    return cv2.cvtColor(pixels if channels > 1 else pixels[:, :, 0], conversion)


def encode_raw(image, encoding='rgb8'):
    """Return ``(encoding, height, width, step, data)`` of an RGB uint8 image for publishing."""
    if encoding not in _ENCODE:
        raise ValueError(f'cannot encode to {encoding!r}; choose one of {", ".join(_ENCODE)}')
    conversion = _ENCODE[encoding]
    pixels = image if conversion is None else cv2.cvtColor(image, conversion)
    pixels = np.ascontiguousarray(pixels)
    height, width = pixels.shape[:2]
    return encoding, height, width, pixels.strides[0], pixels.tobytes()


def decode_compressed(format_text, data):
    """Decode a ``sensor_msgs/CompressedImage`` (JPEG or PNG, any ROS format string)."""
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if pixels is None:
        raise ImageDecodeError(f'compressed image ({format_text or "no format"}, {len(data)} '
                               'bytes) does not decode')
    return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)


def encode_compressed(image, image_format='jpeg', quality=90):
    """Compress an RGB uint8 image to JPEG or PNG bytes."""
    suffix = {'jpeg': '.jpg', 'jpg': '.jpg', 'png': '.png'}.get(image_format)
    if suffix is None:
        raise ValueError(f'cannot compress to {image_format!r}; choose jpeg or png')
    ok, encoded = cv2.imencode(suffix, cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f'could not compress an image of shape {image.shape}')
    return encoded.tobytes()
