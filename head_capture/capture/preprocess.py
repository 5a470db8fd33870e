"""
Keyframe pixels and the cameras that describe them: shrink a frame, undistort it.

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


def shrink_keyframe(image, intrinsics, long_side):
    """
    Scale the whole frame down so its long side is at most ``long_side`` (never up).

    The frame keeps its aspect and its lens: like the live graph's keyframes, it is cut to
    the square round the head (and undistorted) only when the avatar trains, from the poses.
    """
    if long_side < 8:
        raise ValueError(f'keyframe size must be at least 8 pixels, got {long_side}')
    height, width = image.shape[:2]
    if (height, width) != (intrinsics.height, intrinsics.width):
        raise ValueError(f'image is {width}x{height} but the camera is '
                         f'{intrinsics.width}x{intrinsics.height}')
    scale = long_side / max(width, height)
    if scale >= 1.0:
        return image, intrinsics
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return (cv2.resize(image, size, interpolation=cv2.INTER_AREA),
            intrinsics.resized(*size))
