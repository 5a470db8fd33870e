"""
ROS image messages <-> RGB numpy arrays, without ROS.

Works on the fields of ``sensor_msgs/Image`` and ``sensor_msgs/CompressedImage``, so the
rosbag reader (messages decoded by ``rosbags``) and the rclpy nodes (live messages) share one
implementation. Every decoder returns a new RGB uint8 HxWx3 array, never a view of the
message, or raises ``ImageDecodeError``; ``data`` may be anything with the buffer protocol
(bytes, bytearray, memoryview, array.array, a uint8 numpy array).
"""

import cv2
import numpy as np


class ImageDecodeError(ValueError):
    """An image message whose pixels cannot be turned into an RGB image, with the reason."""


# encoding -> (channels, dtype, conversion of the HxWxC array to RGB, or None if already RGB).
# 8UC1/8UC3 are OpenCV's generic types, taken in OpenCV's own order (grey, BGR). Depth
# encodings (16UC1, 32FC1) are left out on purpose: they are not camera pictures.
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
    'yuv422': (2, np.uint8, cv2.COLOR_YUV2RGB_UYVY),
    'uyvy': (2, np.uint8, cv2.COLOR_YUV2RGB_UYVY),
    'yuv422_yuy2': (2, np.uint8, cv2.COLOR_YUV2RGB_YUY2),
    'yuyv': (2, np.uint8, cv2.COLOR_YUV2RGB_YUY2),
}
RAW_ENCODINGS = tuple(_RAW)
_PAIRED = (cv2.COLOR_YUV2RGB_UYVY, cv2.COLOR_YUV2RGB_YUY2)
_ENCODE = {'rgb8': None, 'bgr8': cv2.COLOR_RGB2BGR, 'mono8': cv2.COLOR_RGB2GRAY}
_COMPRESS = {'jpeg': '.jpg', 'jpg': '.jpg', 'png': '.png'}


def decode_raw(encoding, height, width, step, data, is_bigendian=False):
    """
    Turn the fields of a ``sensor_msgs/Image`` into an RGB uint8 HxWx3 array.

    Rows are read ``step`` bytes apart, so padded rows work (the last row's padding may be
    missing). 16-bit encodings keep their high byte, read in the byte order ``is_bigendian``
    gives; YUV 4:2:2 goes through OpenCV's BT.601 conversion. Raise ``ImageDecodeError`` for
    an unknown encoding, an empty image or data whose length does not fit the fields.
    """
    if encoding not in _RAW:
        raise ImageDecodeError(f'unsupported image encoding {encoding!r}; supported: '
                               f'{", ".join(RAW_ENCODINGS)}')
    channels, dtype, conversion = _RAW[encoding]
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f'empty image ({width}x{height})')
    if conversion in _PAIRED and width % 2:
        raise ImageDecodeError(f'{encoding} packs pixel pairs: width {width} must be even')
    buffer = np.frombuffer(data, np.uint8)
    row_bytes = width * channels * np.dtype(dtype).itemsize
    needed = step * (height - 1) + row_bytes
    if step < row_bytes or not needed <= buffer.size <= step * height:
        raise ImageDecodeError(f'{encoding} image of {width}x{height} needs rows of {row_bytes} '
                               f'bytes and {step * height} bytes of data for step {step}; got '
                               f'step {step} and {buffer.size} bytes')
    rows = np.lib.stride_tricks.as_strided(buffer[:needed], (height, row_bytes), (step, 1))
    pixels = rows.copy()
    if dtype == np.uint16:
        wide = pixels.view(np.dtype(np.uint16).newbyteorder('>' if is_bigendian else '<'))
        pixels = (wide >> 8).astype(np.uint8)
    pixels = pixels.reshape(height, width, channels)
    if conversion is None:
        return pixels
    return cv2.cvtColor(pixels if channels > 1 else pixels[:, :, 0], conversion)


def encode_raw(image, encoding='rgb8'):
    """
    Return ``(encoding, height, width, step, data)`` of an RGB uint8 image for publishing.

    Rows are not padded (``step`` is the row length); ``encoding`` is rgb8, bgr8 or mono8.
    """
    if encoding not in _ENCODE:
        raise ValueError(f'cannot encode to {encoding!r}; choose one of {", ".join(_ENCODE)}')
    _check_rgb(image)
    conversion = _ENCODE[encoding]
    pixels = np.ascontiguousarray(image if conversion is None else cv2.cvtColor(image, conversion))
    height, width = pixels.shape[:2]
    return encoding, height, width, pixels.strides[0], pixels.tobytes()


def decode_compressed(format_str, data):
    """
    Decode a ``sensor_msgs/CompressedImage`` (JPEG or PNG) to RGB uint8.

    The codec is recognised from the bytes, so any ROS format string works ('jpeg', 'png',
    'rgb8; jpeg compressed bgr8'); it only names the picture in errors. Grey, 16-bit and
    alpha pictures come back as 8-bit RGB. Raise ``ImageDecodeError`` if the bytes do not decode.
    """
    buffer = np.frombuffer(data, np.uint8)
    pixels = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if buffer.size else None
    if pixels is None:
        raise ImageDecodeError(f'compressed image ({format_str or "no format"}, {buffer.size} '
                               'bytes) does not decode')
    return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)


def encode_compressed(image, image_format='jpeg', quality=90):
    """Compress an RGB uint8 image to JPEG (at ``quality``, 0-100) or PNG bytes."""
    if image_format not in _COMPRESS:
        raise ValueError(f'cannot compress to {image_format!r}; choose jpeg or png')
    if not 0 <= quality <= 100:
        raise ValueError(f'JPEG quality must be within 0-100, got {quality}')
    _check_rgb(image)
    suffix = _COMPRESS[image_format]
    options = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if suffix == '.jpg' else []
    ok, encoded = cv2.imencode(suffix, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), options)
    if not ok:
        raise ValueError(f'OpenCV could not compress an image of shape {image.shape}')
    return encoded.tobytes()


def _check_rgb(image):
    """Refuse anything but the pipeline's image type, before OpenCV guesses a meaning."""
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
            and image.shape[2] == 3):
        shape, dtype = getattr(image, 'shape', None), getattr(image, 'dtype', type(image))
        raise ValueError(f'expected an RGB uint8 HxWx3 array, got shape {shape} of {dtype}')
