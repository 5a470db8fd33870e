"""
The landmark training set: synthetic heads seen from anywhere on the sphere.

Each sample is a random identity with a random appearance, under random light (two to four
lights of mixed colour), in front of a room, a studio or a real photograph, from a camera
anywhere around the head (every azimuth, elevation -60..60°, roll, distance, field of view,
off-centre and partly cropped heads), with the 2D position and visibility of all template
landmarks. Samples go into shards of ``shard_size`` (compressed npz, written atomically).
Shard ``k`` depends only on (seed, k), so an interrupted run resumes by skipping the shards
on disk and gives the same files as an uninterrupted one.
"""

from dataclasses import asdict, dataclass
import json
from pathlib import Path

from head_capture.camera import Intrinsics
from head_capture.files import write_bytes_atomic, write_npz_atomic
from head_capture.geometry import look_at_w2c
from head_capture.landmarks.dataset import MANIFEST
from head_capture.lie_groups import so3_exp
from head_capture.synth.backdrops import sample_backdrop
from head_capture.synth.render import Lighting
from head_capture.synth.studio import HeadStudio
from head_capture.synth.workers import run_tasks
import numpy as np

HEAD_SIZE_M = 0.25
SHARDS_PER_WORKER = 4


@dataclass(frozen=True)
class LandmarkSetConfig:
    """What varies across the set, and how it is cut into shards."""

    size: int = 256
    shard_size: int = 128
    views_per_appearance: int = 8
    elevation_deg: tuple = (-60.0, 60.0)
    head_fill: tuple = (0.3, 0.75)
    fov_deg: tuple = (40.0, 75.0)
    roll_deg: float = 25.0
    off_centre_m: float = 0.04
    cropped_share: float = 0.15
    atlas_size: int = 512
    figure: bool = True  # closed shoulders, collars, hoods, hanging hair (synth/figure.py)
    seed: int = 0

    def __post_init__(self):
        if self.size < 32 or self.shard_size < 1 or self.views_per_appearance < 1:
            raise ValueError('size must be >= 32, shard_size and views_per_appearance >= 1')
        if not -90 <= self.elevation_deg[0] < self.elevation_deg[1] <= 90:
            raise ValueError(f'bad elevation range {self.elevation_deg}')
        if not 0 < self.head_fill[0] < self.head_fill[1] <= 2:
            raise ValueError(f'bad head_fill range {self.head_fill}')


def sample_camera(rng, cfg):
    """Return intrinsics and a world-to-camera pose looking roughly at the head."""
    azimuth = rng.uniform(0.0, 2 * np.pi)
    elevation = np.radians(rng.uniform(*cfg.elevation_deg))
    fov = rng.uniform(*cfg.fov_deg)
    camera = Intrinsics.from_fov(cfg.size, cfg.size, fov)
    # The detector's second pass sees a crop around the head: the head (about 25 cm) fills
    # ``head_fill`` of the view, whatever the field of view, so the distance follows.
    fill = rng.uniform(*cfg.head_fill)
    distance = HEAD_SIZE_M / (fill * 2 * np.tan(np.radians(fov) / 2))
    centre = distance * np.array([np.cos(elevation) * np.cos(azimuth),
                                  np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])
    # Off-centre heads, and now and then one partly out of the frame.
    spread = cfg.off_centre_m * (3.0 if rng.random() < cfg.cropped_share else 1.0) * fill
    target = rng.normal(0.0, spread, 3)
    rotation, _ = look_at_w2c(centre, target)
    roll = so3_exp(np.array([0.0, 0.0, np.radians(rng.uniform(-1, 1) * cfg.roll_deg)]))
    rotation = roll @ rotation
    return camera, rotation, -rotation @ centre


def sample_lighting(rng, varied=True):
    """
    Return ambient light, a key light and a fill; with ``varied``, up to two more lights.

    Sometimes harsh light with deep shadows. ``varied`` (the landmark set) also tints every
    light between tungsten and daylight, adds a rim light from behind as studios and windows
    give, and now and then blows the key out to a studio white; sequences and the capture
    keep the plain draws they were made with.
    """
    harsh = rng.random() < 0.15
    ambient = rng.uniform(0.15, 0.3) if harsh else rng.uniform(0.35, 0.75)
    tint = (lambda: _temperature(rng)) if varied else (lambda: rng.uniform(0.9, 1.1, 3))
    key = (_unit(rng), tint(), rng.uniform(2.5, 5.0) if harsh else rng.uniform(1.0, 3.0))
    fill = (_unit(rng), rng.uniform(0.6, 1.2, 3) * (tint() if varied else 1.0),
            rng.uniform(0.0, 1.5))
    if not varied:
        return Lighting(np.full(3, ambient), (key, fill))
    if rng.random() < 0.08:  # blown-out studio white
        key = (key[0], key[1], rng.uniform(5.0, 8.0))
    lights = [key, fill] + [(_unit(rng), tint(), rng.uniform(0.5, 2.5))
                            for _ in range(rng.choice(3, p=[0.5, 0.35, 0.15]))]
    return Lighting(np.full(3, ambient) * tint(), tuple(lights))


def _temperature(rng):
    """Return an RGB tint between warm tungsten and cool daylight shade."""
    warmth = rng.uniform(-1.0, 1.0)
    return np.clip(1.0 + 0.18 * warmth * np.array([1.0, 0.1, -1.0]), 0.6, 1.3)


def _unit(rng):
    vector = rng.normal(size=3)
    return vector / np.linalg.norm(vector)


class LandmarkSetWriter:
    """Renders shards of the landmark set."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.studio = HeadStudio(cfg.size, cfg.size, cfg.atlas_size, cfg.figure)

    def shard(self, index, progress=None):
        """Render shard ``index``: a dict of arrays, identical for identical (seed, index)."""
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, index])
        subjects = self.studio.subjects(rng, -(-cfg.shard_size // cfg.views_per_appearance))
        rows = []
        for number in range(cfg.shard_size):
            subject = subjects[number // cfg.views_per_appearance]
            camera, rotation, translation = sample_camera(rng, cfg)
            view = self.studio.view(subject, camera, rotation, translation,
                                    sample_lighting(rng))
            alpha = view.alpha[..., None]
            image = alpha * view.rgb + (1 - alpha) * sample_backdrop(rng, cfg.size)
            rows.append((image.astype(np.uint8), (view.alpha > 0).astype(np.uint8) * 255,
                         view.landmarks, view.visible, camera.matrix.astype(np.float32),
                         rotation.astype(np.float32), translation.astype(np.float32),
                         subject.phenotypes, subject.appearance.hair_style,
                         subject.appearance.skin.astype(np.float32)))
            if progress is not None:
                progress()
        keys = ('images', 'masks', 'landmarks', 'visible', 'intrinsics', 'rotations',
                'translations', 'phenotypes', 'hair_styles', 'skin_rgb')
        return {key: np.stack(column) for key, column in zip(keys, zip(*rows))}


def _render_shard(task):
    """Render one shard (config, index, path) and write it, in a worker or in this process."""
    global _WRITER
    cfg, index, path = task
    if _WRITER is None or _WRITER.cfg != cfg:
        _WRITER = LandmarkSetWriter(cfg)
    write_npz_atomic(path, **_WRITER.shard(index))
    return index


_WRITER = None


def write_landmark_set(out_dir, count, cfg, progress=None, workers=0):
    """
    Write ``count`` samples as shards in ``out_dir``; existing shards are kept (resume).

    With ``workers`` > 0, shards are rendered by that many worker processes, each replaced
    after ``SHARDS_PER_WORKER`` shards (``synth/workers.py``: OSMesa never gives back what a
    render took). ``progress(n)`` is told of every finished shard.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / MANIFEST
    names = [f'shard_{index:05d}.npz' for index in range(-(-count // cfg.shard_size))]
    # Through JSON once, so tuples compare equal to the lists read back from disk.
    manifest = {'count': len(names) * cfg.shard_size,
                'config': json.loads(json.dumps(asdict(cfg))),
                'template': 'head_template.json', 'shards': names}
    if manifest_path.exists():
        previous = json.loads(manifest_path.read_text())
        if previous['config'] != manifest['config']:
            raise ValueError(f'{out_dir} holds a set made with another config; use a new '
                             'directory')
    write_bytes_atomic(manifest_path, (json.dumps(manifest, indent=1) + '\n').encode())
    todo = [(cfg, index, out_dir / name) for index, name in enumerate(names)
            if not (out_dir / name).exists()]
    if progress is not None:
        progress((len(names) - len(todo)) * cfg.shard_size)
    for _ in run_tasks(_render_shard, todo, workers, SHARDS_PER_WORKER, ordered=False):
        if progress is not None:
            progress(cfg.shard_size)
    return manifest
