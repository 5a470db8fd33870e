"""
Avatar sequences by the paper's protocol: per subject, train and test views all around.

Each subject stands still under fixed light (a static scene, as a NeRF needs) and is seen
from cameras over the whole azimuth range and elevation -25..45°, looking at the head from
arm's length. Views are RGBA PNGs whose alpha is the subject's mask cut to a cube of
``volume_m`` half-size round the head: the paper trains on segmented heads, and an avatar's
field holds only its scene cube (``scene.radius`` 0.3 m in the avatar configs; the default
0.25 m leaves room for the PnP frame's scale error, up to 11% measured). The chest and arms
below stay in the RGB but are background in the mask: no field could fit them, and trying
smears them into the head's volume. Cameras go to ``transforms_train.json`` /
``transforms_test.json`` in the nerfstudio layout (camera-to-world, head frame, metres),
ground-truth landmarks to ``landmarks_train.npz`` / ``landmarks_test.npz``. A subject is
complete once its test transforms exist; a re-run skips complete subjects and redoes the rest
identically.
"""

from dataclasses import dataclass
from pathlib import Path

import cv2
from head_capture.camera import Intrinsics
from head_capture.files import write_image_atomic, write_npz_atomic
from head_capture.geometry import look_at_w2c, sphere_point, w2c_to_c2w_opengl
from head_capture.session import FrameRecord, read_transforms, Transforms, write_transforms
import numpy as np

SPLITS = ('train', 'test')


@dataclass(frozen=True)
class SequenceConfig:
    """The paper's capture: 90 + 10 views at 400², elevation -25..45°."""

    subjects: int = 3
    train: int = 90
    test: int = 10
    size: int = 400
    fov_deg: float = 40.0
    elevation_deg: tuple = (-25.0, 45.0)
    distance_m: tuple = (0.55, 0.7)
    volume_m: float = 0.25
    seed: int = 0

    def __post_init__(self):
        if self.subjects < 1 or self.train < 1 or self.test < 0 or self.size < 32:
            raise ValueError('need subjects >= 1, train >= 1, test >= 0 and size >= 32')
        if not 0 < self.volume_m < min(self.distance_m):
            raise ValueError('volume_m must be > 0 and leave the cameras outside the volume')


def orbit_poses(rng, count, cfg):
    """Return ``count`` world-to-camera poses spread over all azimuths, random elevations."""
    # Stratified azimuths (one per equal sector, jittered, shuffled) cover the circle evenly.
    azimuth = (np.arange(count) + rng.uniform(0, 1, count)) * (2 * np.pi / max(count, 1))
    azimuth = rng.permutation(azimuth)
    elevation = np.radians(rng.uniform(*cfg.elevation_deg, count))
    distance = rng.uniform(*cfg.distance_m, count)
    return [look_at_w2c(centre, np.zeros(3))
            for centre in sphere_point(distance, azimuth, elevation)]


def write_sequences(out_dir, cfg, progress=None):
    """Write every subject of ``cfg`` under ``out_dir``/subject_<k>; return their paths."""
    out_dir = Path(out_dir)
    camera = Intrinsics.from_fov(cfg.size, cfg.size, cfg.fov_deg)
    studio = None
    paths = []
    for number in range(cfg.subjects):
        folder = out_dir / f'subject_{number:02d}'
        paths.append(folder)
        if (folder / 'transforms_test.json').exists():
            if progress is not None:
                progress(cfg.train + cfg.test)
            continue
        if studio is None:
            # The rendering rig (anny, OpenGL) only once something is left to render: reading
            # finished sequences, as bench/fig4.py does on a GPU machine, needs none of it.
            from head_capture.synth.landmark_set import sample_lighting
            from head_capture.synth.studio import HeadStudio
            studio = HeadStudio(cfg.size, cfg.size)
        rng = np.random.default_rng([cfg.seed, number])
        subject = studio.subjects(rng, 1)[0]
        lighting = sample_lighting(rng, varied=False)
        meta = {'head_capture': {'synthetic_subject': number, 'seed': cfg.seed,
                                 'mask_volume_m': cfg.volume_m,
                                 'phenotypes': [round(float(p), 4) for p in subject.phenotypes],
                                 'hair_style': subject.appearance.hair_style}}
        for split, count in zip(SPLITS, (cfg.train, cfg.test)):
            _write_split(studio, subject, camera, lighting, orbit_poses(rng, count, cfg),
                         folder, split, meta, cfg.volume_m, progress)
    return paths


def outside_volume(depth, camera, rotation, translation, half_size):
    """Return the pixels whose rendered surface lies outside the cube round the origin."""
    rows, cols = np.indices(depth.shape, dtype=np.float64)
    points = camera.rays(cols, rows) * depth[..., None]
    world = (points - translation) @ rotation  # camera -> world: R^T (x - t), row-wise
    return (depth > 0) & (np.abs(world) > half_size).any(-1)


def _write_split(studio, subject, camera, lighting, poses, folder, split, meta, volume_m,
                 progress):
    frames, pixels, visible = [], [], []
    for index, (rotation, translation) in enumerate(poses):
        view = studio.view(subject, camera, rotation, translation, lighting)
        relative = f'{split}/r_{index:03d}.png'
        alpha = np.where(outside_volume(view.depth, camera, rotation, translation, volume_m),
                         0.0, view.alpha)
        rgba = np.dstack([view.rgb, (alpha * 255).astype(np.uint8)])
        write_image_atomic(folder / relative, rgba)
        frames.append(FrameRecord(relative, w2c_to_c2w_opengl(rotation, translation)))
        pixels.append(view.landmarks)
        visible.append(view.visible)
        if progress is not None:
            progress(1)
    points = len(subject.landmarks)
    write_npz_atomic(folder / f'landmarks_{split}.npz',
                     landmarks=np.stack(pixels) if pixels else np.zeros((0, points, 2)),
                     visible=np.stack(visible) if visible else np.zeros((0, points), bool),
                     points=subject.landmarks)
    write_transforms(folder / f'transforms_{split}.json', Transforms(camera, frames, meta))


def read_sequence_views(folder, split='train', limit=None, background=128):
    """Return a subject's views over a grey background with their landmarks, for previews."""
    folder = Path(folder)
    transforms = read_transforms(folder / f'transforms_{split}.json')
    with np.load(folder / f'landmarks_{split}.npz') as truth:
        landmarks, visible = truth['landmarks'][:limit], truth['visible'][:limit]
    images = []
    for frame in transforms.frames[:limit]:
        rgba = cv2.imread(str(folder / frame.file_path), cv2.IMREAD_UNCHANGED)
        if rgba is None:
            raise FileNotFoundError(f'unreadable view {folder / frame.file_path}')
        alpha = rgba[..., 3:] / 255.0
        images.append((alpha * rgba[..., 2::-1] + (1 - alpha) * background).astype(np.uint8))
    return {'images': np.stack(images), 'landmarks': landmarks, 'visible': visible}
