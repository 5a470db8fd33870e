"""
Blur and exposure scores of a frame, comparable across resolutions.

Scores are measured on a grey copy scaled (area averaging) to a fixed long side, so the same
view gives about the same score from a 4K and a 720p stream and a threshold tuned once holds
for every phone. The absolute value still depends on the scene's texture; the keyframe
selectors therefore judge a frame against its neighbours, not against a constant.
"""

from dataclasses import dataclass

import cv2
import numpy as np

BLUR_METHODS = ('laplacian', 'tenengrad')
# A light Gaussian before differentiating: detail right at the working Nyquist limit depends
# on how the frame was downscaled, so without it a 720p and a 4K stream score 15-30% apart.
PRE_SMOOTH_SIGMA = 0.8


@dataclass(frozen=True)
class FrameQuality:
    """How usable a frame is: sharpness (higher is sharper) and exposure."""

    sharpness: float
    brightness: float
    exposure: str

    @property
    def exposure_ok(self):
        """Say whether the frame is neither too dark nor washed out."""
        return self.exposure == 'ok'


def working_gray(image, long_side=360):
    """Return the frame as float32 grey in [0, 1], scaled so its long side is ``long_side``."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f'expected an RGB uint8 image, got {image.dtype} {image.shape}')
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    scale = long_side / max(gray.shape)
    if scale < 1.0:
        size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return gray.astype(np.float32) * np.float32(1.0 / 255.0)


def blur_score(gray, method='laplacian'):
    """Return the sharpness of a working grey image: variance of Laplacian or Tenengrad."""
    gray = cv2.GaussianBlur(gray, (0, 0), PRE_SMOOTH_SIGMA)
    if method == 'laplacian':
        return float(cv2.Laplacian(gray, cv2.CV_32F, ksize=3).var())
    if method == 'tenengrad':
        gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
        return float(np.mean(gx * gx + gy * gy))
    raise ValueError(f'unknown blur method {method!r}; choose one of {BLUR_METHODS}')


def exposure_of(gray, dark=0.15, bright=0.90):
    """
    Classify exposure from luminance percentiles: 'dark', 'bright' or 'ok'.

    Percentiles rather than clipped-pixel counts, so a white wall or a black sweater in a
    correctly exposed frame does not fail the check: a frame is dark only when even its
    brightest 5% is dim, and washed out only when even its darkest 5% is bright.
    """
    low, high = np.percentile(gray[::2, ::2], (5.0, 95.0))
    if high < dark:
        return 'dark', float(gray.mean())
    if low > bright:
        return 'bright', float(gray.mean())
    return 'ok', float(gray.mean())


def assess_frame(image, method='laplacian', long_side=360):
    """Score one RGB frame's sharpness and exposure."""
    gray = working_gray(image, long_side)
    exposure, brightness = exposure_of(gray)
    return FrameQuality(blur_score(gray, method), brightness, exposure)
