"""The avatar trainer's settings: one validated dataclass per YAML file in ``config/``."""

from dataclasses import dataclass, fields
from pathlib import Path

from head_capture.config_files import build, ConfigError, load_yaml
from head_capture.resources import share_path

NAMES = ('paper', 'fast', 'cpu_preview')


@dataclass(frozen=True)
class AvatarConfig:
    """Field, sampling, the two stages' lengths and learning rates, bookkeeping."""

    field: str = 'mlp'
    # Training images are shrunk to this long side (0: as they are).
    image_size: int = 400
    rays: int = 1024
    # Share of each batch drawn near the foreground (within focus_margin pixels of a mask):
    # rays far out in the empty background tell the cameras nothing.
    focus_share: float = 0.0
    focus_margin: int = 2
    coarse_samples: int = 64
    fine_samples: int = 128
    stage1_steps: int = 200000
    stage2_steps: int = 200000
    # MLP field (the paper's): depth x width, input skip, positional encoding bands.
    mlp_depth: int = 8
    mlp_width: int = 256
    mlp_skip: int = 4
    pe_xyz: int = 10
    pe_dir: int = 4
    # Grid field: levels from base to top resolution, features per level, MLP width.
    grid_levels: int = 6
    grid_base: int = 16
    grid_top: int = 128
    grid_features: int = 4
    grid_hidden: int = 64
    # Coarse-to-fine over frequency bands (or grid levels), as shares of a stage.
    c2f_start: float = 0.1
    c2f_end: float = 0.5
    stage2_c2f: bool = False
    # Refine the cameras (BARF); off only to train on poses known to be right.
    refine_poses: bool = True
    # What holds the gauge of the refined cameras: the first one, or their mean correction.
    pose_gauge: str = 'first'
    # Share of each stage the cameras are held while a new field takes shape: moved by the
    # gradients of a blank field, Adam's normalised steps walk them about at the full rate.
    # The learning rate's schedule then runs over the rest of the stage.
    pose_warmup: float = 0.0
    # Scene units per unit of a learned camera translation. BARF's learning rates were set on
    # scenes 1.5 units in radius; heads are 0.3 m, so 0.2 keeps each step the same share.
    pose_translation_unit: float = 0.2
    # Learning rates, each decaying exponentially over a stage from the first to the second.
    field_lr: tuple = (5e-4, 1e-4)
    grid_lr: tuple = (1e-2, 1e-3)
    pose_lr: tuple = (1e-3, 1e-5)
    # Stage 2 starts from cameras stage 1 has already refined: restarted at pose_lr, the
    # noisy steps of the fresh field walk them off again.
    stage2_pose_lr: tuple = (1e-4, 1e-5)
    # A session's fields train in its head volume scaled by this about its centre; renders
    # (held-out views, turntable, mesh) are cut to the volume itself. A mask keeps collar and
    # shoulder pixels whose rays cross the volume though they lie outside it: held to the
    # volume, the field can only smear them into a haze round the head.
    support_scale: float = 1.0
    # Renders are also cut to the training views' visual hull (``visual_hull``): space that
    # this many of them see as sure background (0: no cut), less a margin (scene units).
    hull_min_views: int = 3
    hull_margin: float = 0.01
    # The scene: a ball of this radius around the origin (metres for heads). Data the field
    # clearly cannot hold (cameras 4 units from a Blender scene) get these three and the
    # lengths above derived from their cameras, unless the user set them (avatar/scene.py).
    scene_radius: float = 0.3
    near: float = 0.0
    far: float = 0.0
    # Background behind segmented views: random (so the field cannot learn it), white, black.
    background: str = 'random'
    holdout_every: int = 10
    # Outputs: test-time pose steps per held-out view, turntable frames, mesh cameras and
    # TSDF resolution (0 skips that output).
    test_pose_steps: int = 100
    turntable_frames: int = 60
    mesh_views: int = 36
    mesh_resolution: int = 192
    checkpoint_every: int = 1000
    log_every: int = 100
    threads: int = 2
    device: str = 'auto'

    def __post_init__(self):
        checks = {
            "field must be 'mlp' or 'grid'": self.field in ('mlp', 'grid'),
            "pose_gauge must be 'first' or 'mean'": self.pose_gauge in ('first', 'mean'),
            "background must be 'random', 'white' or 'black'":
                self.background in ('random', 'white', 'black'),
            'rays, coarse_samples, stage1_steps must be >= 1':
                min(self.rays, self.coarse_samples, self.stage1_steps) >= 1,
            'fine_samples, stage2_steps, image_size, holdout_every and the output sizes must '
            'be >= 0': min(self.fine_samples, self.stage2_steps, self.image_size,
                           self.holdout_every, self.test_pose_steps, self.turntable_frames,
                           self.mesh_views, self.mesh_resolution) >= 0,
            'learning rates are (start, end) pairs of positive numbers':
                all(len(lr) == 2 and min(lr) > 0
                    for lr in (self.field_lr, self.grid_lr, self.pose_lr, self.stage2_pose_lr)),
            'support_scale must be >= 1': self.support_scale >= 1,
            'hull_min_views and hull_margin must be >= 0':
                self.hull_min_views >= 0 and self.hull_margin >= 0,
            'scene_radius and pose_translation_unit must be > 0':
                min(self.scene_radius, self.pose_translation_unit) > 0,
            'near/far: both 0 (from the camera distance) or 0 < near < far':
                (self.near == self.far == 0) or 0 < self.near < self.far,
            'c2f_start, c2f_end must be in [0, 1]': 0 <= self.c2f_start <= 1
            and 0 <= self.c2f_end <= 1,
            'pose_warmup must be in [0, 1)': 0 <= self.pose_warmup < 1,
            'focus_share must be in [0, 1] and focus_margin >= 0':
                0 <= self.focus_share <= 1 and self.focus_margin >= 0,
            'checkpoint_every and log_every must be >= 1':
                min(self.checkpoint_every, self.log_every) >= 1,
        }
        failed = [text for text, ok in checks.items() if not ok]
        if failed:
            raise ValueError('; '.join(failed))

    def as_dict(self):
        """Plain dict (lists for tuples), for JSON and checkpoints."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in fields(self)}


def load_avatar_config(name_or_path, overrides=None):
    """Load ``config/avatar_<name>.yaml`` (paper, fast, cpu_preview) or a YAML path."""
    path = Path(name_or_path)
    if not path.suffix:
        if name_or_path not in NAMES:
            raise ConfigError(f'unknown avatar config {name_or_path!r}; one of {NAMES} or a '
                              'YAML path')
        path = share_path('config', f'avatar_{name_or_path}.yaml')
    return build(AvatarConfig, {**load_yaml(path), **(overrides or {})}, str(path))


def chosen_keys(name_or_path, overrides=None):
    """Return the keys a user set: the overridden, and every key of a YAML file of theirs."""
    keys = set(overrides or ())
    if Path(name_or_path).suffix:  # not one of the shipped NAMES
        keys.update(load_yaml(Path(name_or_path)))
    return frozenset(keys)
