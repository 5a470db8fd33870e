"""
The avatar trainer's settings: one validated dataclass per YAML file in ``config/``.

The settings come in groups, one per part of the method, as nerfstudio's method configs do:
``field`` (which field, its view-direction encoding and learning rate), ``mlp`` and ``grid``
(the two fields), ``c2f`` (coarse-to-fine over their bands or levels), ``data``, ``sampling``,
``stage1`` and ``stage2``, ``poses`` (the refined cameras), ``scene``, ``hull``, ``outputs`` and
``trainer``. YAML files nest them (``stage1: {steps: 3000}``); overrides and error messages
name a setting by its dotted key (``--set stage1.steps=3000``).
"""

from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path

from head_capture.config_files import build, ConfigError, flatten, load_yaml, set_dotted
from head_capture.resources import share_path

NAMES = ('paper', 'fast', 'cpu_preview')


@dataclass(frozen=True)
class FieldSettings:
    """Which field ('mlp' or 'grid'), its view-direction encoding bands, its learning rate."""

    kind: str = 'mlp'
    pe_dir: int = 4
    # Learning rate of the network weights (all but a grid's features), decaying exponentially
    # over a stage from the first to the second; so are the others.
    lr: tuple = (5e-4, 1e-4)


@dataclass(frozen=True)
class MLPSettings:
    """The paper's MLP field: depth x width, input skip, positional encoding bands."""

    depth: int = 8
    width: int = 256
    skip: int = 4
    pe_xyz: int = 10


@dataclass(frozen=True)
class GridSettings:
    """The grid field: levels from base to top resolution, features per level, MLP width."""

    levels: int = 6
    base: int = 16
    top: int = 128
    features: int = 4
    hidden: int = 64
    lr: tuple = (1e-2, 1e-3)  # of the grid features


@dataclass(frozen=True)
class CoarseToFine:
    """Coarse-to-fine over frequency bands (or grid levels), as shares of a stage."""

    start: float = 0.1
    end: float = 0.5
    stage2: bool = False  # stage 2 too


@dataclass(frozen=True)
class DataSettings:
    """The training images: their size, and which are held out."""

    # Training images are shrunk to this long side (0: as they are).
    image_size: int = 400
    # Every this many-th view is held out and scored (0: none).
    holdout_every: int = 10


@dataclass(frozen=True)
class Sampling:
    """Rays per step and samples per ray (coarse, and fine: 0 trains no fine field)."""

    rays: int = 1024
    # Share of each batch drawn near the foreground (within focus_margin pixels of a mask):
    # rays far out in the empty background tell the cameras nothing.
    focus_share: float = 0.0
    focus_margin: int = 2
    coarse: int = 64
    fine: int = 128


@dataclass(frozen=True)
class Stage:
    """A stage's length and the learning rate of the cameras in it."""

    steps: int = 200000
    pose_lr: tuple = (1e-3, 1e-5)


@dataclass(frozen=True)
class PoseSettings:
    """Refining the cameras (BARF)."""

    # Off only to train on poses known to be right.
    refine: bool = True
    # What holds the gauge of the refined cameras: the first one, or their mean correction.
    gauge: str = 'first'
    # Share of each stage the cameras are held while a new field takes shape: moved by the
    # gradients of a blank field, Adam's normalised steps walk them about at the full rate.
    # The learning rate's schedule then runs over the rest of the stage.
    warmup: float = 0.0
    # Scene units per unit of a learned camera translation. BARF's learning rates were set on
    # scenes 1.5 units in radius; heads are 0.3 m, so 0.2 keeps each step the same share.
    translation_unit: float = 0.2


@dataclass(frozen=True)
class SceneSettings:
    """
    The scene: a ball of ``radius`` around the origin (metres for heads), and the background.

    Data the field clearly cannot hold (cameras 4 units from a Blender scene) get the radius,
    near, far and the lengths in scene units derived from their cameras, unless the user set
    them (avatar/scene.py). near = far = 0: from each camera's distance.
    """

    radius: float = 0.3
    near: float = 0.0
    far: float = 0.0
    # A session's fields train in its head volume scaled by this about its centre; renders
    # (held-out views, turntable, mesh) are cut to the volume itself. A mask keeps collar and
    # shoulder pixels whose rays cross the volume though they lie outside it: held to the
    # volume, the field can only smear them into a haze round the head.
    support_scale: float = 1.0
    # Behind segmented views: random (so the field cannot learn it), white, black.
    background: str = 'random'


@dataclass(frozen=True)
class HullSettings:
    """
    Renders are also cut to the training views' visual hull (``visual_hull``).

    That is space which ``min_views`` of them see as sure background (0: no cut), less a
    ``margin`` (scene units).
    """

    min_views: int = 3
    margin: float = 0.01


@dataclass(frozen=True)
class Outputs:
    """Test-time pose steps per held-out view, turntable frames, mesh cameras, TSDF size."""

    # 0 skips that output.
    test_pose_steps: int = 100
    turntable_frames: int = 60
    mesh_views: int = 36
    mesh_resolution: int = 192


@dataclass(frozen=True)
class TrainerSettings:
    """Bookkeeping: checkpoint and log periods (steps), CPU threads, torch device."""

    checkpoint_every: int = 1000
    log_every: int = 100
    threads: int = 2
    device: str = 'auto'


@dataclass(frozen=True)
class AvatarConfig:
    """The field, its sampling, the two stages, the cameras, the scene, outputs, bookkeeping."""

    field: FieldSettings = FieldSettings()
    mlp: MLPSettings = MLPSettings()
    grid: GridSettings = GridSettings()
    c2f: CoarseToFine = CoarseToFine()
    data: DataSettings = DataSettings()
    sampling: Sampling = Sampling()
    stage1: Stage = Stage()
    # Stage 2 starts from cameras stage 1 has already refined: restarted at stage 1's pose
    # rate, the noisy steps of the fresh field walk them off again.
    stage2: Stage = Stage(pose_lr=(1e-4, 1e-5))
    poses: PoseSettings = PoseSettings()
    scene: SceneSettings = SceneSettings()
    hull: HullSettings = HullSettings()
    outputs: Outputs = Outputs()
    trainer: TrainerSettings = TrainerSettings()

    def __post_init__(self):
        field, sampling, scene, outputs = self.field, self.sampling, self.scene, self.outputs
        checks = {
            "field.kind must be 'mlp' or 'grid'": field.kind in ('mlp', 'grid'),
            "poses.gauge must be 'first' or 'mean'": self.poses.gauge in ('first', 'mean'),
            "scene.background must be 'random', 'white' or 'black'":
                scene.background in ('random', 'white', 'black'),
            'sampling.rays, sampling.coarse, stage1.steps must be >= 1':
                min(sampling.rays, sampling.coarse, self.stage1.steps) >= 1,
            'sampling.fine, stage2.steps, data.image_size, data.holdout_every and the outputs '
            'must be >= 0': min(sampling.fine, self.stage2.steps, self.data.image_size,
                                self.data.holdout_every, outputs.test_pose_steps,
                                outputs.turntable_frames, outputs.mesh_views,
                                outputs.mesh_resolution) >= 0,
            'learning rates (field.lr, grid.lr, stage1.pose_lr, stage2.pose_lr) are (start, '
            'end) pairs of positive numbers':
                all(len(lr) == 2 and min(lr) > 0 for lr in (
                    field.lr, self.grid.lr, self.stage1.pose_lr, self.stage2.pose_lr)),
            'scene.support_scale must be >= 1': scene.support_scale >= 1,
            'hull.min_views and hull.margin must be >= 0':
                self.hull.min_views >= 0 and self.hull.margin >= 0,
            'scene.radius and poses.translation_unit must be > 0':
                min(scene.radius, self.poses.translation_unit) > 0,
            'scene.near/far: both 0 (from the camera distance) or 0 < near < far':
                (scene.near == scene.far == 0) or 0 < scene.near < scene.far,
            'c2f.start, c2f.end must be in [0, 1]': 0 <= self.c2f.start <= 1
            and 0 <= self.c2f.end <= 1,
            'poses.warmup must be in [0, 1)': 0 <= self.poses.warmup < 1,
            'sampling.focus_share must be in [0, 1] and sampling.focus_margin >= 0':
                0 <= sampling.focus_share <= 1 and sampling.focus_margin >= 0,
            'trainer.checkpoint_every and trainer.log_every must be >= 1':
                min(self.trainer.checkpoint_every, self.trainer.log_every) >= 1,
        }
        failed = [text for text, ok in checks.items() if not ok]
        if failed:
            raise ValueError('; '.join(failed))

    def as_dict(self):
        """Nested plain dicts (lists for tuples), for JSON and checkpoints."""
        return _plain(self)

    def stage(self, number):
        """Return the settings of stage ``number`` (1 or 2)."""
        return self.stage1 if number == 1 else self.stage2

    def updated(self, values):
        """Return this config with the dotted keys of ``values`` (``scene.radius``) changed."""
        return build(AvatarConfig, set_dotted(self.as_dict(), values))


def _plain(settings):
    return {f.name: (_plain(v) if is_dataclass(v := getattr(settings, f.name)) else
                     list(v) if isinstance(v, tuple) else v) for f in fields(settings)}


# The flat keys of the configs before they were grouped, and their dotted keys now: named
# only to refuse them with the new spelling.
FLAT_KEYS = {
    'field': 'field.kind', 'pe_dir': 'field.pe_dir', 'field_lr': 'field.lr',
    'mlp_depth': 'mlp.depth', 'mlp_width': 'mlp.width', 'mlp_skip': 'mlp.skip',
    'pe_xyz': 'mlp.pe_xyz', 'grid_levels': 'grid.levels', 'grid_base': 'grid.base',
    'grid_top': 'grid.top', 'grid_features': 'grid.features', 'grid_hidden': 'grid.hidden',
    'grid_lr': 'grid.lr', 'c2f_start': 'c2f.start', 'c2f_end': 'c2f.end',
    'stage2_c2f': 'c2f.stage2', 'image_size': 'data.image_size',
    'holdout_every': 'data.holdout_every', 'rays': 'sampling.rays',
    'focus_share': 'sampling.focus_share', 'focus_margin': 'sampling.focus_margin',
    'coarse_samples': 'sampling.coarse', 'fine_samples': 'sampling.fine',
    'stage1_steps': 'stage1.steps', 'pose_lr': 'stage1.pose_lr', 'stage2_steps': 'stage2.steps',
    'stage2_pose_lr': 'stage2.pose_lr', 'refine_poses': 'poses.refine',
    'pose_gauge': 'poses.gauge', 'pose_warmup': 'poses.warmup',
    'pose_translation_unit': 'poses.translation_unit', 'scene_radius': 'scene.radius',
    'near': 'scene.near', 'far': 'scene.far', 'support_scale': 'scene.support_scale',
    'background': 'scene.background', 'hull_min_views': 'hull.min_views',
    'hull_margin': 'hull.margin', 'test_pose_steps': 'outputs.test_pose_steps',
    'turntable_frames': 'outputs.turntable_frames', 'mesh_views': 'outputs.mesh_views',
    'mesh_resolution': 'outputs.mesh_resolution', 'checkpoint_every': 'trainer.checkpoint_every',
    'log_every': 'trainer.log_every', 'threads': 'trainer.threads', 'device': 'trainer.device',
}


def load_avatar_config(name_or_path, overrides=None):
    """
    Load ``config/avatar_<name>.yaml`` (paper, fast, cpu_preview) or a YAML path.

    ``overrides`` maps dotted keys (``stage1.steps``) to values.
    """
    path = Path(name_or_path)
    if not path.suffix:
        if name_or_path not in NAMES:
            raise ConfigError(f'unknown avatar config {name_or_path!r}; one of {NAMES} or a '
                              'YAML path')
        path = share_path('config', f'avatar_{name_or_path}.yaml')
    data, overrides = load_yaml(path), overrides or {}
    flat = [key for key, value in {**data, **overrides}.items()
            if key in FLAT_KEYS and not isinstance(value, dict)]
    if flat:
        raise ConfigError(f'{path}: the avatar config keys are grouped now: '
                          + ', '.join(f'{key} is {FLAT_KEYS[key]}' for key in flat))
    return build(AvatarConfig, set_dotted(data, overrides), str(path))


def chosen_keys(name_or_path, overrides=None):
    """Return the dotted keys a user set: the overridden, and every key of a YAML of theirs."""
    keys = set(overrides or ())
    if Path(name_or_path).suffix:  # not one of the shipped NAMES
        keys.update(flatten(load_yaml(Path(name_or_path))))
    return frozenset(keys)
