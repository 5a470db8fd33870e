"""
A synthetic phone capture: someone walks three orbits round a seated synthetic head.

The project's built-in demo input. The phone circles the head at three heights (as the
paper's captures do), at arm's length, with hand shake, stretches of motion blur, a slow
exposure drift, and a room around the subject (a panorama, so it turns with the camera).
Writes ``capture.mp4`` and ``ground_truth.json``: the intrinsics and every frame's true pose
in the nerfstudio layout (file_path ``capture.mp4#<frame>``, plus time and a blur flag).
"""

from dataclasses import dataclass
from pathlib import Path

import cv2
from head_capture.camera import DEFAULT_FOV_DEG, Intrinsics
from head_capture.geometry import look_at_w2c, so3_exp, w2c_to_c2w_opengl
from head_capture.session import FrameRecord, Transforms, write_transforms
from head_capture.synth.degrade import blur_runs, motion_blur
from head_capture.synth.landmark_set import sample_lighting
from head_capture.synth.recordings import write_video
from head_capture.synth.studio import HeadStudio
import numpy as np

GROUND_TRUTH = 'ground_truth.json'


@dataclass(frozen=True)
class CaptureConfig:
    """Length, frame rate and size of the clip, and how the phone moves."""

    seconds: float = 40.0
    fps: float = 30.0
    width: int = 1280
    height: int = 720
    orbit_elevations_deg: tuple = (-15.0, 15.0, 40.0)
    distance_m: float = 0.6
    blur_share: float = 0.2
    seed: int = 0

    def __post_init__(self):
        if self.seconds <= 0 or self.fps <= 0 or min(self.width, self.height) < 32:
            raise ValueError('seconds and fps must be positive, the frame at least 32 px')
        if not 0 <= self.blur_share < 1:
            raise ValueError(f'blur_share must be in [0, 1), got {self.blur_share}')


def phone_path(cfg, rng):
    """Return per-frame world-to-camera poses: three orbits with sway and hand shake."""
    count = int(round(cfg.seconds * cfg.fps))
    progress = np.linspace(0.0, len(cfg.orbit_elevations_deg), count, endpoint=False)
    orbit = progress.astype(int)
    azimuth = 2 * np.pi * (progress - orbit) + rng.uniform(0, 2 * np.pi)
    # Climb smoothly between orbits during the last tenth of each lap.
    ramp = np.clip((progress - orbit - 0.9) / 0.1, 0.0, 1.0)
    heights = np.radians(np.array(cfg.orbit_elevations_deg + cfg.orbit_elevations_deg[-1:]))
    elevation = heights[orbit] + ramp * (heights[orbit + 1] - heights[orbit])
    t = np.arange(count) / cfg.fps
    distance = cfg.distance_m * (1 + 0.06 * np.sin(2 * np.pi * 0.13 * t + rng.uniform(0, 6)))
    centres = distance[:, None] * np.stack([np.cos(elevation) * np.cos(azimuth),
                                            np.cos(elevation) * np.sin(azimuth),
                                            np.sin(elevation)], 1)
    shake = _smooth_noise(rng, count, 3, cfg.fps / 4) * np.radians(1.5)
    poses = []
    for centre, wobble in zip(centres, shake):
        rotation, _ = look_at_w2c(centre, [0.0, 0.0, 0.02])
        rotation = so3_exp(wobble) @ rotation
        poses.append((rotation, -rotation @ centre))
    return poses


def _smooth_noise(rng, count, channels, width):
    """Gaussian-smoothed noise with unit standard deviation, ``width`` frames wide."""
    raw = rng.normal(size=(count + 6 * int(width), channels)).astype(np.float32)
    smooth = cv2.GaussianBlur(raw, (1, 0), sigmaX=0.1, sigmaY=width)
    smooth = smooth[3 * int(width):3 * int(width) + count]
    return smooth / max(float(smooth.std()), 1e-6)


def room_panorama(rng, width=2048):
    """
    Paint an equirectangular room: walls with pictures, shelves, a door and a window, a floor.

    Plain walls with a few strong shapes, as in a real room, so the background neither
    dominates the frame nor gives a feature matcher an unrealistically easy time.
    """
    height = width // 2
    horizon, floor = height // 2, height * 5 // 8
    wall = rng.uniform(150, 235, 3)
    shading = 1.0 + 0.05 * cv2.resize(rng.normal(size=(4, 8)).astype(np.float32),
                                      (width, height), interpolation=cv2.INTER_CUBIC)
    room = np.clip(wall * shading[..., None], 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(6, 12))):
        w, h = int(rng.integers(width // 40, width // 10)), int(rng.integers(height // 20,
                                                                             height // 5))
        x = int(rng.integers(0, width - w))
        y = int(rng.integers(height // 6, floor - h))
        colour = tuple(int(c) for c in rng.uniform(20, 240, 3))
        cv2.rectangle(room, (x, y), (x + w, y + h), colour, -1)
        cv2.rectangle(room, (x, y), (x + w, y + h), (40, 35, 30), 2)
    window = int(rng.integers(0, width - width // 8))
    room[height // 4:horizon, window:window + width // 8] = (235, 240, 250)
    door = int(rng.integers(0, width - width // 14))
    room[height // 5:floor, door:door + width // 14] = (wall * 0.6).astype(np.uint8)
    boards = 0.85 + 0.15 * np.sin(np.arange(width) * 2 * np.pi / (width / 64))
    wood = rng.uniform(60, 150, 3) * boards[:, None]
    room[floor:] = np.clip(wood[None] * rng.uniform(0.9, 1.1, (height - floor, 1, 1)), 0,
                           255).astype(np.uint8)
    room[:height // 8] = np.clip(wall * 1.08, 0, 255).astype(np.uint8)
    return cv2.GaussianBlur(room, (0, 0), 1.2)


def sample_panorama(panorama, camera, rotation):
    """
    Return what the camera sees of a panorama at infinity (rotation only).

    Looked up at half the frame's size and scaled up: a 2,048 px panorama holds under 6 px per
    degree, a 1,280 px phone frame 18, so a full-size lookup would only cost time.
    """
    small = camera.resized(max(camera.width // 2, 1), max(camera.height // 2, 1))
    u, v = np.meshgrid(np.arange(small.width, dtype=np.float32),
                       np.arange(small.height, dtype=np.float32))
    rays = small.rays(u, v) @ rotation.astype(np.float32)
    longitude = np.arctan2(rays[..., 1], rays[..., 0])
    latitude = np.arctan2(rays[..., 2], np.hypot(rays[..., 0], rays[..., 1]))
    height, width = panorama.shape[:2]
    map_x = ((longitude / (2 * np.pi) + 0.5) * width).astype(np.float32)
    map_y = ((0.5 - latitude / np.pi) * height).astype(np.float32)
    seen = cv2.remap(panorama, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    return cv2.resize(seen, (camera.width, camera.height), interpolation=cv2.INTER_LINEAR)


def write_capture(out_dir, cfg, progress=None):
    """Render the clip to ``out_dir``/capture.mp4 with its ground truth; return the count."""
    out_dir = Path(out_dir)
    rng = np.random.default_rng(cfg.seed)
    camera = Intrinsics.from_fov(cfg.width, cfg.height, DEFAULT_FOV_DEG)
    studio = HeadStudio(cfg.width, cfg.height)
    subject = studio.subjects(rng, 1)[0]
    lighting = sample_lighting(rng, varied=False)
    panorama = room_panorama(rng)
    poses = phone_path(cfg, rng)
    blurred = blur_runs(len(poses), cfg.blur_share, 15, rng)
    gain = 1.0 + 0.12 * _smooth_noise(rng, len(poses), 1, cfg.fps * 3)[:, 0]

    def frames():
        for index, (rotation, translation) in enumerate(poses):
            view = studio.view(subject, camera, rotation, translation, lighting)
            background = sample_panorama(panorama, camera, rotation)
            image = np.where(view.alpha[..., None] > 0, view.rgb, background)
            image = cv2.convertScaleAbs(image, alpha=float(gain[index]))
            if blurred[index]:
                image = motion_blur(image, rng.uniform(8.0, 25.0), rng.uniform(-0.3, 0.3))
            if progress is not None:
                progress(1)
            yield image

    count = write_video(out_dir / 'capture.mp4', frames(), cfg.fps)
    records = [FrameRecord(f'capture.mp4#{n}', w2c_to_c2w_opengl(rotation, translation),
                           meta={'time_s': round(n / cfg.fps, 6), 'blurred': bool(blurred[n])})
               for n, (rotation, translation) in enumerate(poses)]
    meta = {'head_capture': {'synthetic_capture': True, 'seed': cfg.seed,
                             'hair_style': subject.appearance.hair_style,
                             'phenotypes': [round(float(p), 4) for p in subject.phenotypes]}}
    write_transforms(out_dir / GROUND_TRUTH, Transforms(camera, records, meta))
    return count
