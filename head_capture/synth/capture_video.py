"""
A synthetic phone capture: someone walks three orbits round a seated synthetic head.

The project's built-in demo input. The phone circles the head at three heights (as the
paper's captures do), at arm's length, with hand shake, stretches of motion blur, a slow
exposure drift, and a room around the subject (a panorama, so it turns with the camera).
Writes ``capture.mp4`` and ``ground_truth.json``: the intrinsics and every frame's true pose
in the nerfstudio layout (file_path ``capture.mp4#<frame>``, plus time and a blur flag).

Everything random is drawn first, from the seed, into a ``CapturePlan``; worker processes
render the frames from it (``synth/workers.py``: OSMesa keeps part of every render) and this
process only encodes them, so nothing holds the thousand renders of a capture.
"""

from dataclasses import dataclass
from pathlib import Path

import cv2
from head_capture.camera import DEFAULT_FOV_DEG, Intrinsics
from head_capture.geometry import look_at_w2c, sphere_point, w2c_from_center, w2c_to_c2w_opengl
from head_capture.lie_groups import so3_exp
from head_capture.session import FrameRecord, Transforms, write_transforms
from head_capture.synth.degrade import blur_runs, motion_blur
from head_capture.synth.workers import run_tasks
from head_capture.video_writer import write_video
import numpy as np

GROUND_TRUTH = 'ground_truth.json'
# Frames a render worker makes before it is replaced, and in one hand-back. OSMesa keeps
# 7-8 MB of every frame, so a worker (about 450 MB when it starts) stays near 1.2 GB.
FRAMES_PER_WORKER = 100
FRAMES_PER_TASK = 10


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
    centres = sphere_point(distance, azimuth, elevation)
    shake = _smooth_noise(rng, count, 3, cfg.fps / 4) * np.radians(1.5)
    poses = []
    for centre, wobble in zip(centres, shake):
        rotation, _ = look_at_w2c(centre, [0.0, 0.0, 0.02])
        poses.append(w2c_from_center(so3_exp(wobble) @ rotation, centre))
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


@dataclass(frozen=True)
class CapturePlan:
    """Everything a capture draws from its seed: any process renders any frame from it."""

    # Plain arrays, not a Subject or a Lighting: unpickled in the encoding process, it imports
    # neither the head model nor pyrender there.
    camera: Intrinsics
    vertices: np.ndarray  # the subject's render mesh, its texture and the meshes round it
    faces: np.ndarray
    uv: np.ndarray
    texture: np.ndarray
    extras: tuple
    hair_style: str
    phenotypes: np.ndarray
    ambient: np.ndarray  # the lighting, as ``Lighting``'s fields
    lights: tuple
    panorama: np.ndarray
    poses: list  # world-to-camera (rotation, translation) of every frame
    blurred: np.ndarray
    gain: np.ndarray
    streaks: tuple  # every frame's motion blur (length px, angle rad), or None


def plan_capture(cfg):
    """
    Draw the whole capture from ``cfg.seed``, in the order it always was drawn.

    The subject, light, room, phone path, blur runs and gain come from one generator, then
    each blurred frame's streak in frame order, as the frames once drew them while rendering.
    """
    from head_capture.synth.landmark_set import sample_lighting
    from head_capture.synth.studio import HeadStudio

    rng = np.random.default_rng(cfg.seed)
    studio = HeadStudio(cfg.width, cfg.height)
    studio.renderer.close()  # the subject is rendered elsewhere
    subject = studio.subjects(rng, 1)[0]
    lighting = sample_lighting(rng, varied=False)
    panorama = room_panorama(rng)
    poses = phone_path(cfg, rng)
    blurred = blur_runs(len(poses), cfg.blur_share, 15, rng)
    gain = 1.0 + 0.12 * _smooth_noise(rng, len(poses), 1, cfg.fps * 3)[:, 0]
    streaks = tuple((rng.uniform(8.0, 25.0), rng.uniform(-0.3, 0.3)) if blur else None
                    for blur in blurred)
    return CapturePlan(Intrinsics.from_fov(cfg.width, cfg.height, DEFAULT_FOV_DEG),
                       subject.vertices, studio.atlas.render_faces, studio.atlas.render_uv,
                       subject.texture, subject.extras, subject.appearance.hair_style,
                       subject.phenotypes, lighting.ambient, lighting.lights, panorama, poses,
                       blurred, gain, streaks)


def render_frame(plan, renderer, index):
    """Render frame ``index`` of a planned capture with a ``HeadRenderer`` of its size."""
    from head_capture.synth.render import Lighting

    rotation, translation = plan.poses[index]
    view = renderer.render(plan.vertices, plan.faces, plan.camera, rotation, translation,
                           texture=plan.texture, uv=plan.uv,
                           lighting=Lighting(plan.ambient, plan.lights), extras=plan.extras)
    background = sample_panorama(plan.panorama, plan.camera, rotation)
    image = np.where(view.alpha[..., None] > 0, view.rgb, background)
    image = cv2.convertScaleAbs(image, alpha=float(plan.gain[index]))
    if plan.streaks[index] is not None:
        image = motion_blur(image, *plan.streaks[index])
    return image


_RENDERING = None  # this process's (plan, renderer), set by ``_start_rendering``


def _start_rendering(plan):
    """Hold a plan and a renderer for the frames this process will be asked for."""
    global _RENDERING
    from head_capture.synth.render import HeadRenderer

    _RENDERING = (plan, HeadRenderer(plan.camera.width, plan.camera.height))


def _render_frames(span):
    """Render frames [start, stop) of the plan this process holds."""
    plan, renderer = _RENDERING
    return [render_frame(plan, renderer, index) for index in range(*span)]


def write_capture(out_dir, cfg, progress=None, workers=1):
    """
    Render the clip to ``out_dir``/capture.mp4 with its ground truth; return the count.

    With ``workers`` > 0 the capture is planned in a process of its own and rendered by that
    many processes, each replaced after ``FRAMES_PER_WORKER`` frames, while this one encodes
    them in order; ``workers`` 0 does it all here (and keeps what OSMesa keeps).
    """
    global _RENDERING
    out_dir = Path(out_dir)
    [plan] = run_tasks(plan_capture, [cfg], min(workers, 1))
    count = len(plan.poses)
    spans = [(start, min(start + FRAMES_PER_TASK, count))
             for start in range(0, count, FRAMES_PER_TASK)]

    def frames():
        for images in run_tasks(_render_frames, spans, workers,
                                max(FRAMES_PER_WORKER // FRAMES_PER_TASK, 1),
                                setup=_start_rendering, setup_args=(plan,)):
            for image in images:
                if progress is not None:
                    progress(1)
                yield image

    try:
        count = write_video(out_dir / 'capture.mp4', frames(), cfg.fps)
    finally:
        if workers == 0 and _RENDERING is not None:
            _RENDERING[1].close()
            _RENDERING = None
    records = [FrameRecord(f'capture.mp4#{n}', w2c_to_c2w_opengl(rotation, translation),
                           meta={'time_s': round(n / cfg.fps, 6),
                                 'blurred': bool(plan.blurred[n])})
               for n, (rotation, translation) in enumerate(plan.poses)]
    meta = {'head_capture': {'synthetic_capture': True, 'seed': cfg.seed,
                             'hair_style': plan.hair_style,
                             'phenotypes': [round(float(p), 4) for p in plan.phenotypes]}}
    write_transforms(out_dir / GROUND_TRUTH, Transforms(plan.camera, records, meta))
    return count
