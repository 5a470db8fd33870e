"""
Where the scene is, from its cameras, and whether the avatar's field holds it.

The fields live in a cube of half-side ``scene.radius`` round the origin: 0.3 m in the shipped
configs, a head. Data of another size, a Blender scene whose cameras stand 4 units from it,
trains garbage in that cube without a word. The cameras say where the scene is: round the
point closest to all their optical axes (least squares), reaching as far as the head volume
where the data keep one, else as the views' silhouettes (their masks), else as the views
themselves. When the field clearly cannot hold that, the bounds are derived from it if the
user left them to the config, and refused with the numbers and the settings to use if the
user chose them.
"""

from dataclasses import dataclass
import math

from head_capture.avatar import TrainingError
from head_capture.config_files import flatten
from head_capture.geometry import camera_center
import numpy as np

# The field is clearly too small when the scene reaches past this many times its half-side,
# clearly too large when a camera stands nearer its centre than this share of it.
TOO_SMALL = 2.0
TOO_LARGE = 0.5
# A derived field holds the scene with this much to spare.
MARGIN = 1.1
# Lengths in scene units that follow scene.radius when it is derived (their ratios to it are
# what the shipped configs were tuned with).
SCENE_LENGTHS = ('poses.translation_unit', 'hull.margin')
# Optical axes this close to parallel (smallest eigenvalue of the mean of I - d d^T) meet
# nowhere in particular: a forward-facing capture, whose bounds the cameras cannot tell.
PARALLEL = 0.01
# Silhouettes are measured on views shrunk to about this many pixels a side.
SILHOUETTE_SIDE = 64


@dataclass(frozen=True)
class SceneBounds:
    """The region the cameras look at: a ball (centre, radius), the cameras' depths to it."""

    centre: np.ndarray
    radius: float
    depths: tuple
    # Nearest camera to the origin (the field's centre).
    nearest: float
    # What the radius comes from: 'head volume', 'masks' or 'views'.
    source: str
    # The half-extents (x, y, z) round the centre: the radius in each, or a volume's axes.
    extent: np.ndarray = None

    @property
    def half_side(self):
        """Return the half-side of the cube round the origin that holds the region."""
        extent = np.full(3, self.radius) if self.extent is None else self.extent
        return float((np.abs(self.centre) + extent).max())

    def describe(self):
        """Return the region in words, for the notes and refusals."""
        centre = ', '.join(f'{v:.2f}' for v in np.round(self.centre, 2) + 0.0)
        near, far = (f'{depth:.3g}' for depth in self.depths)
        return (f'the cameras look at a scene {self.radius:.3g} units in radius round '
                f'({centre}) from {near if near == far else f"{near}-{far}"} units away '
                f'(its size from the {self.source})')


def look_at_point(rotations, translations):
    """
    Return the point closest to every camera's optical axis, None where there is none.

    ``rotations`` (N, 3, 3), ``translations`` (N, 3): world-to-camera poses (OpenCV axes).
    None when the axes are near parallel or the point lies behind most cameras.
    """
    rotations, translations = np.asarray(rotations, float), np.asarray(translations, float)
    centres = camera_center(rotations, translations)
    axes = rotations[:, 2]  # each camera's +z in the world
    square = np.eye(3) - axes[:, :, None] * axes[:, None, :]
    system = square.mean(0)
    if np.linalg.eigvalsh(system)[0] < PARALLEL:
        return None
    point = np.linalg.solve(system, np.einsum('nij,nj->i', square, centres) / len(centres))
    if np.mean(np.einsum('ni,ni->n', point - centres, axes) > 0) <= 0.5:
        return None
    return point


def _silhouette_radius(views, centre):
    """
    Return how far round ``centre`` the views' foregrounds reach (the whole view unmasked).

    A silhouette pixel seen at angle a off the centre's ray, from a camera d away, puts scene
    at least d sin(a) from the centre; the largest over the views is kept.
    """
    camera = views.intrinsics
    masks = views.masks.numpy()
    step = max(1, max(masks.shape[1:]) // SILHOUETTE_SIDE)
    v, u = np.mgrid[0:masks.shape[1]:step, 0:masks.shape[2]:step]
    rays = np.stack([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy,
                     np.ones(u.shape)], -1)
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    radius = 0.0
    for mask, rotation, translation in zip(masks[:, ::step, ::step], views.rotations.numpy(),
                                           views.translations.numpy()):
        seen = rays[mask > 0.5]
        if not len(seen):
            continue
        towards = rotation.astype(float) @ centre + translation
        distance = float(np.linalg.norm(towards))
        cosine = np.clip(seen @ (towards / distance), -1.0, 1.0)
        radius = max(radius, distance * math.sin(min(math.acos(float(cosine.min())),
                                                     math.pi / 2)))
    return radius


def scene_bounds(views, support_scale=1.0):
    """
    Return the ``SceneBounds`` of ``views`` (``rays.Views``), None when cameras cannot tell.

    A head volume (scaled by ``support_scale``, as the fields train in it) is the scene where
    there is one; else the scene is round the cameras' look-at point, as far as they see.
    """
    rotations, translations = views.rotations.double().numpy(), views.translations.double().numpy()
    centres = camera_center(rotations, translations)
    nearest = float(np.linalg.norm(centres, axis=1).min())
    if views.volume is not None:
        centre = np.asarray(views.volume.centre, float)
        extent = np.asarray(views.volume.semi_axes, float) * support_scale
        radius, source = float(extent.max()), 'head volume'
    else:
        centre = look_at_point(rotations, translations)
        if centre is None:
            return None
        extent, radius = None, _silhouette_radius(views, centre)
        if radius <= 0:  # no view shows anything: nothing to fit
            return None
        source = 'masks' if bool((views.masks < 0.5).any()) else 'views'
    depths = np.einsum('nij,j->ni', rotations, centre)[:, 2] + translations[:, 2]
    return SceneBounds(centre, radius, (float(depths.min()), float(depths.max())), nearest,
                       source, extent)


def _round_up(value, digits=2):
    """Return ``value`` rounded up to ``digits`` significant digits (0 stays 0)."""
    if value <= 0:
        return value
    unit = 10.0 ** (math.floor(math.log10(value)) - digits + 1)
    return round(math.ceil(value / unit - 1e-9) * unit, 12)


def fit_scene(config, bounds, chosen=None):
    """
    Return the config whose field holds the scene, and a note when it was changed.

    ``bounds``: ``scene_bounds`` of the data (None: nothing is checked). ``chosen``: the
    config keys the user set (None: all of them, as a config built in code is meant as it
    is). A bound the user set that clearly misses the scene is refused with TrainingError,
    never changed; one the config left to its default is derived, and the note says so.
    """
    if bounds is None:
        return config, None
    values = flatten(config.as_dict())
    chosen = frozenset(values if chosen is None else chosen)
    scene, size = config.scene, config.scene.radius
    changes = {}
    misfit = (f'the field reaches only {size:g} round the origin (scene.radius)'
              if bounds.half_side > TOO_SMALL * size else
              f'a camera stands {bounds.nearest:.3g} from the origin, inside the field '
              f'(scene.radius {size:g})' if bounds.nearest < TOO_LARGE * size else None)
    if misfit:
        radius = _round_up(bounds.half_side * MARGIN)
        if 'scene.radius' in chosen:
            raise TrainingError(f'{bounds.describe()}, but {misfit}, as set: set '
                                f'scene.radius={radius:g}, or leave it out to have it derived '
                                'from the cameras')
        changes['scene.radius'] = radius
        changes.update({key: _round_up(values[key] * radius / size, 3)
                        for key in SCENE_LENGTHS if key not in chosen})
    if scene.near > 0 and not scene.near < bounds.depths[0] <= bounds.depths[1] < scene.far:
        if {'scene.near', 'scene.far'} & chosen:
            raise TrainingError(f'{bounds.describe()}, but near={scene.near:g}, '
                                f'far={scene.far:g} leave it out of the rays: set scene.near and '
                                'scene.far round those depths, or 0 to have them follow the '
                                'cameras')
        misfit = misfit or f'near={scene.near:g}, far={scene.far:g} leave it out of the rays'
        changes.update({'scene.near': 0.0, 'scene.far': 0.0})
    if not changes:
        return config, None
    settings = ', '.join(f'{key}={value:g}' for key, value in changes.items())
    return config.updated(changes), (f'{bounds.describe()}, but {misfit}: training with '
                                     f'{settings} (set them to choose otherwise)')
