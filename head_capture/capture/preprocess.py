"""
Turn a keyframe into a training view: undistort, centre-square crop, resize.

Each step returns the image together with the intrinsics that describe it, so poses solved
on the result and rays cast from it stay consistent with the pixels.
"""

from functools import lru_cache

import cv2
import numpy as np


def undistort(image, intrinsics):
    """Remove lens distortion, keeping the same pinhole camera matrix."""
    if not intrinsics.has_distortion:
        return image, intrinsics
    map_x, map_y = _undistort_maps(intrinsics)
    return (cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE),
            intrinsics.without_distortion())


@lru_cache(maxsize=4)
def _undistort_maps(intrinsics):
    # A stream keeps one camera, so the maps are built once and reused for every frame.
    k = intrinsics.matrix
    return cv2.initUndistortRectifyMap(k, np.array(intrinsics.distortion), None, k,
                                       (intrinsics.width, intrinsics.height), cv2.CV_32FC1)


def center_square_crop(image, intrinsics):
    """Cut the largest centred square out of the frame."""
    height, width = image.shape[:2]
    side = min(width, height)
    x0, y0 = (width - side) // 2, (height - side) // 2
    return image[y0:y0 + side, x0:x0 + side], intrinsics.cropped(x0, y0, side, side)


def resize(image, intrinsics, size):
    """Scale the frame to ``size`` x ``size`` (area filter when shrinking)."""
    if size < 8:
        raise ValueError(f'target size must be at least 8 pixels, got {size}')
    height, width = image.shape[:2]
    if (width, height) == (size, size):
        return image, intrinsics
    shrink = size < min(width, height)
    resized = cv2.resize(image, (size, size),
                         interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    return resized, intrinsics.resized(size, size)


def prepare_view(image, intrinsics, size):
    """Undistort, crop the centre square and resize to ``size``: a training view."""
    if image.shape[:2] != (intrinsics.height, intrinsics.width):
        raise ValueError(f'image is {image.shape[1]}x{image.shape[0]} but the camera is '
                         f'{intrinsics.width}x{intrinsics.height}')
    image, intrinsics = undistort(image, intrinsics)
    image, intrinsics = center_square_crop(image, intrinsics)
    return resize(image, intrinsics, size)
