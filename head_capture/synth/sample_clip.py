"""
The built-in sample clip: a hand-held pan over a textured scene with motion-blur bursts.

It stands in for a phone video wherever a test or the demo needs one with known truth: the
generator returns which frames it blurred, so keyframe precision can be measured exactly.
"""

from dataclasses import dataclass

import cv2
from head_capture.synth.degrade import blur_runs, motion_blur
import numpy as np


@dataclass(frozen=True)
class SampleClip:
    """Frames of the clip, its frame rate, its camera's field of view, the blurred frames."""

    frames: list
    fps: float
    fov_deg: float
    blurred: np.ndarray


def textured_scene(width, height, rng):
    """Paint a scene with detail at every scale (blobs, strokes, grain) for the pan."""
    scene = np.zeros((height, width, 3), np.float32)
    for scale in (64, 16, 4):
        noise = rng.random((height // scale + 2, width // scale + 2, 3)).astype(np.float32)
        scene += cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC) / 3.0
    canvas = (np.clip(scene, 0.0, 1.0) * 255).astype(np.uint8)
    for _ in range(width * height // 4000):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = (int(v) for v in rng.integers(0, (width, height)))
        if rng.random() < 0.5:
            axes = tuple(int(a) for a in rng.integers(4, 40, 2))
            cv2.ellipse(canvas, (x, y), axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
        else:
            x2, y2 = (int(v) for v in rng.integers(-60, 60, 2))
            cv2.line(canvas, (x, y), (x + x2, y + y2), colour, int(rng.integers(1, 4)))
    return canvas


def make_sample_clip(frames=240, size=(320, 240), fps=30.0, blur_share=0.35, seed=0):
    """Render the pan; about ``blur_share`` of the frames get motion blur, in bursts."""
    if not 0.0 <= blur_share < 1.0:
        raise ValueError(f'blur_share must be in [0, 1), got {blur_share}')
    rng = np.random.default_rng(seed)
    width, height = size
    scene = textured_scene(width * 3, height * 2, rng)
    t = np.linspace(0.0, 1.0, frames)
    xs = t * (scene.shape[1] - width - 1)
    ys = 0.5 * (scene.shape[0] - height) * (1.0 + 0.6 * np.sin(2.0 * np.pi * 1.5 * t))
    blurred = blur_runs(frames, blur_share, 6, rng)
    images = []
    for n in range(frames):
        shift = np.float32([[1, 0, -xs[n]], [0, 1, -ys[n]]])
        image = cv2.warpAffine(scene, shift, size, flags=cv2.INTER_LINEAR)
        if blurred[n]:
            image = motion_blur(image, rng.uniform(6.0, 20.0), rng.uniform(0.0, np.pi))
        images.append(image)
    return SampleClip(images, fps, 60.0, np.flatnonzero(blurred))
