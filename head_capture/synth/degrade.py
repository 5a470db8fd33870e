"""Camera degradations applied to clean renders, so tests and training see phone-like frames."""

import cv2
import numpy as np


def blur_runs(count, share, longest, rng):
    """
    Mark runs of 1..``longest`` consecutive frames until ``share`` of ``count`` is marked.

    Motion blur in hand-held video comes in runs (a quick turn, a step), not frame by frame.
    """
    marked = np.zeros(count, bool)
    while marked.mean() < share:
        start = int(rng.integers(0, count))
        marked[start:start + int(rng.integers(1, longest + 1))] = True
    return marked


def motion_blur(image, length_px, angle_rad):
    """
    Blur ``image`` along a straight line of ``length_px`` pixels at ``angle_rad``.

    The kernel is a rasterised, antialiased line segment normalised to unit sum: what a
    camera moving at constant speed during the exposure records.
    """
    if length_px < 1.0:
        return image
    half = int(np.ceil(length_px / 2.0)) + 1
    size = 2 * half + 1
    supersample = 8
    kernel = np.zeros((size * supersample, size * supersample), np.float32)
    centre = (size * supersample - 1) / 2.0
    dx, dy = np.cos(angle_rad), np.sin(angle_rad)
    reach = 0.5 * length_px * supersample
    start = (round(centre - reach * dx), round(centre - reach * dy))
    end = (round(centre + reach * dx), round(centre + reach * dy))
    cv2.line(kernel, start, end, 1.0, thickness=supersample)
    kernel = cv2.resize(kernel, (size, size), interpolation=cv2.INTER_AREA)
    kernel /= kernel.sum()
    return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT)
