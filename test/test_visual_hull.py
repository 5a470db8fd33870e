"""The visual hull of the training views: a ball seen from a ring of cameras."""

from head_capture.avatar.rays import Views
from head_capture.avatar.visual_hull import VisualHull
from head_capture.camera import Intrinsics
from head_capture.geometry import look_at_w2c
import numpy as np
import torch

RADIUS = 0.3


def ball_views(count=12, size=64):
    """Return ``count`` views round a ball of ``RADIUS`` at the origin, masks exact."""
    camera = Intrinsics.from_fov(size, size, 40.0)
    v, u = np.mgrid[0:size, 0:size]
    directions = camera.rays(u, v)
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    rotations, translations, masks = [], [], []
    for n in range(count):
        azimuth, elevation = 2 * np.pi * n / count, np.radians(25 * np.sin(3 * n))
        centre = 2.0 * np.array([np.cos(elevation) * np.cos(azimuth),
                                 np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])
        rotation, translation = look_at_w2c(centre, np.zeros(3))
        # A ray hits the ball when it passes within RADIUS of the centre.
        to_centre = -(rotation @ centre)  # the centre in the camera's frame
        along = directions @ to_centre
        miss = np.linalg.norm(to_centre) ** 2 - along ** 2
        masks.append((miss <= RADIUS ** 2).astype(np.float32))
        rotations.append(rotation)
        translations.append(translation)
    masks = torch.from_numpy(np.stack(masks))
    return Views(torch.zeros(count, size, size, 3), masks, camera,
                 torch.tensor(np.stack(rotations)).float(),
                 torch.tensor(np.stack(translations)).float(), [''] * count, None)


def hull_of(views, min_views=1, margin=0.0):
    return VisualHull.of_views(views, range(len(views)), views.rotations, views.translations,
                               [-0.5] * 3, [0.5] * 3, min_views, margin, cells=49)


def test_the_hull_keeps_the_ball_and_empties_the_space_round_it():
    hull = hull_of(ball_views())
    rng = np.random.default_rng(3)
    points = rng.uniform(-0.5, 0.5, (4000, 3))
    distance = np.linalg.norm(points, axis=1)
    outside = hull.outside(points)
    assert isinstance(outside, np.ndarray)
    # A 49-cell grid over 1 m: cells of about 2 cm, so only points clear of that band count.
    assert not outside[distance < RADIUS - 0.03].any()
    assert outside[distance > RADIUS + 0.1].mean() > 0.95
    # Torch in, torch out; points beyond the box are not the hull's to judge.
    far = torch.tensor([[0.0, 0.0, 0.0], [0.45, 0.45, 0.0], [2.0, 0.0, 0.0]])
    assert hull.outside(far).tolist() == [False, True, False]


def test_a_margin_keeps_space_next_to_the_silhouette_and_votes_are_counted():
    views = ball_views()
    just_outside = torch.tensor([[RADIUS + 0.04, 0.0, 0.0], [0.0, -RADIUS - 0.04, 0.0]])
    assert hull_of(views).outside(just_outside).all()
    assert not hull_of(views, margin=0.06).outside(just_outside).any()
    # A corner of the box is seen as background by some views, never by all twelve.
    corner = torch.tensor([[0.45, 0.45, 0.45]])
    assert hull_of(views, min_views=2).outside(corner).all()
    assert not hull_of(views, min_views=12).outside(corner).any()


def test_background_a_mask_is_unsure_of_empties_nothing():
    views = ball_views()
    views.weights = torch.zeros_like(views.masks)  # every pixel unsure
    assert not hull_of(views).empty.any()
    views.weights[:, :, :32] = 1.0  # the left half of every view sure again
    half = hull_of(views)
    assert half.empty.any() and not half.empty.all()
