"""The head volume: which pixels of a posed camera can see the head."""

import json

import cv2

from head_capture.camera import Intrinsics
from head_capture.capture import head_volume
from head_capture.capture.head_volume import HeadVolume
from head_capture.capture.pose import PoseEstimate, refused
from head_capture.capture.registration import keyframe_mask
from head_capture.geometry import look_at_w2c
from head_capture.landmarks.detector import Detection
from head_capture.landmarks.template import HeadTemplate
from head_capture.session import MASK_UNSURE
import numpy as np
import pytest


@pytest.fixture(scope='module')
def template():
    return HeadTemplate.load().positions


@pytest.fixture(scope='module')
def volume():
    # The volume sessions keep: round the template, with its neck.
    return HeadVolume.of_template(HeadTemplate.load())


def front_camera(elevation_deg=30.0, distance=0.6, size=(80, 60), fov_deg=40.0):
    elevation = np.radians(elevation_deg)
    centre = distance * np.array([np.cos(elevation), 0.0, np.sin(elevation)])
    rotation, translation = look_at_w2c(centre, np.zeros(3))
    return Intrinsics.from_fov(*size, fov_deg), rotation, translation


def project(camera, rotation, translation, points):
    local = points @ rotation.T + translation
    return np.stack([camera.fx * local[:, 0] / local[:, 2] + camera.cx,
                     camera.fy * local[:, 1] / local[:, 2] + camera.cy], -1)


def test_the_volume_holds_every_landmark_with_the_margin(template):
    volume = HeadVolume.around(template, margin=0.0)
    radius = np.linalg.norm((template - volume.centre) / volume.semi_axes, axis=1)
    assert radius.max() == pytest.approx(1.0)
    wider = HeadVolume.around(template, margin=0.05)
    np.testing.assert_allclose(wider.semi_axes - volume.semi_axes, 0.05)


@pytest.mark.parametrize('elevation_deg', [30.0, -20.0, 0.0])
def test_seen_pixels_are_those_whose_ray_meets_the_ellipsoid(volume, elevation_deg):
    camera, rotation, translation = front_camera(elevation_deg)
    seen, body = volume.crossing(camera, rotation, translation)
    np.testing.assert_array_equal(volume.seen(camera, rotation, translation), seen)
    # Brute force: march every pixel's ray in 1 mm steps and look for a point inside, and
    # for one inside below the neck.
    rows, cols = np.indices((camera.height, camera.width))
    directions = camera.rays(cols, rows) @ rotation
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    origin = -rotation.T @ translation
    steps = np.arange(0.0, 1.2, 0.001)
    inside, below = np.zeros(seen.shape, bool), np.zeros(seen.shape, bool)
    for chunk in np.array_split(steps, 40):
        points = origin + directions[..., None, :] * chunk[:, None]
        radius = np.linalg.norm((points - volume.centre) / volume.semi_axes, axis=-1)
        inside |= (radius <= 1.0).any(-1)
        below |= ((radius <= 1.0) & (points[..., 2] < volume.neck.base)).any(-1)
    assert 0.1 < seen.mean() < 0.9 and 0.02 < body.mean() < 0.5 * seen.mean()
    assert (seen != inside).sum() <= 2  # rays that only graze the surface
    assert (body != below).sum() <= 6  # rays that graze the neck's base, at 1 mm steps


def test_the_body_s_part_lies_below_the_head_and_round_the_neck(volume, template):
    neck = volume.neck
    assert neck.base < neck.top < volume.centre[2]
    assert not neck.holds_body(template).any()  # no landmark, the neck's included
    beside_the_neck = np.array([[0.0, 0.12, -0.11], [-0.1, 0.0, -0.11]])
    in_the_neck = np.array([[0.01, 0.0, -0.11], [0.01, 0.0, -0.13]])
    assert neck.holds_body(beside_the_neck).all()
    assert neck.holds_body(in_the_neck).tolist() == [False, True]


def test_the_head_is_kept_and_the_shoulders_and_room_are_cut(template):
    volume = HeadVolume.around(template)
    camera, rotation, translation = front_camera(10.0, size=(120, 120), fov_deg=60.0)
    seen = volume.seen(camera, rotation, translation)
    head = np.round(project(camera, rotation, translation, template)).astype(int)
    assert seen[head[:, 1], head[:, 0]].all()
    shoulders = np.array([[0.0, 0.2, -0.22], [0.0, -0.2, -0.22]])
    for u, v in np.round(project(camera, rotation, translation, shoulders)).astype(int):
        assert 0 <= v < camera.height and 0 <= u < camera.width and not seen[v, u]
    assert not seen[0].any() and not seen[:, 0].any()  # image border: the room


def test_a_camera_facing_away_sees_nothing(template):
    camera, rotation, translation = front_camera()
    centre = -rotation.T @ translation
    away, shift = look_at_w2c(centre, 2 * centre)
    assert not HeadVolume.around(template).seen(camera, away, shift).any()


def test_the_training_window_is_the_square_round_every_camera_s_view_of_the_head(template):
    volume = HeadVolume.around(template)
    # A 16:9 frame, the head left of its middle in one view and right of it in the other.
    camera, rotation, translation = front_camera(10.0, distance=1.0, size=(160, 90))
    seen = [volume.seen(camera, rotation, translation + shift)
            for shift in ([0.06, 0.0, 0.0], [-0.04, 0.0, 0.0])]
    x0, y0, side = volume.square_window(camera, [rotation] * 2,
                                        [translation + [0.06, 0, 0], translation - [0.04, 0, 0]])
    assert 0 <= x0 and x0 + side <= 160 and 0 <= y0 and y0 + side <= 90
    either = seen[0] | seen[1]
    inside = np.zeros_like(either)
    inside[y0:y0 + side, x0:x0 + side] = True
    assert either.any() and not (either & ~inside).any()
    columns = np.flatnonzero(either.any(0))
    assert side == max(columns[-1] - columns[0] + 1, np.ptp(np.flatnonzero(either.any(1))) + 1)
    assert abs((x0 + side / 2) - (columns[0] + columns[-1] + 1) / 2) <= 1
    # A head larger than the frame: the window keeps the frame's short side.
    near_camera, near_rotation, near_translation = front_camera(10.0, 0.25, (160, 90))
    assert volume.square_window(near_camera, [near_rotation], [near_translation])[2] == 90
    centre = -rotation.T @ translation
    away, shift = look_at_w2c(centre, 2 * centre)
    assert volume.square_window(camera, [away], [shift]) is None


def test_a_keyframe_trains_on_the_detector_mask_cut_to_the_head(template):
    camera, rotation, translation = front_camera()
    detection = Detection(np.zeros((len(template), 2)), np.ones(len(template)),
                          np.ones(len(template)), np.ones((camera.height, camera.width)),
                          (40.0, 30.0, 40.0), 1)
    volume = HeadVolume.around(template)
    seen = volume.seen(camera, rotation, translation)
    posed = PoseEstimate(rotation, translation)
    np.testing.assert_array_equal(keyframe_mask(detection, posed, camera, volume), seen * 255)
    unposed = keyframe_mask(detection, refused('no head'), camera, volume)
    assert (unposed == 255).all()


def test_background_whose_ray_crosses_the_volume_below_the_neck_is_unsure(volume):
    # Seen from above, the detector calls the shoulders background; from the side, head.
    camera, rotation, translation = front_camera(40.0)
    seen, body = volume.crossing(camera, rotation, translation)
    assert body.any()
    posed = PoseEstimate(rotation, translation)

    def mask_called(probability):
        detection = Detection(np.zeros((1, 2)), np.ones(1), np.ones(1),
                              np.full((camera.height, camera.width), probability),
                              (40.0, 30.0, 40.0), 1)
        return keyframe_mask(detection, posed, camera, volume)

    np.testing.assert_array_equal(mask_called(0.0), np.where(body, MASK_UNSURE, 0))
    np.testing.assert_array_equal(mask_called(1.0), seen * 255)
    # A volume stored before sessions kept the neck marks no body.
    old = HeadVolume(volume.centre, volume.semi_axes)
    assert not old.crossing(camera, rotation, translation)[1].any()


def test_the_volume_travels_in_a_transforms_entry_and_a_bad_entry_is_refused(volume):
    again = HeadVolume.from_meta(json.loads(json.dumps(volume.as_meta())))
    np.testing.assert_allclose(again.semi_axes, volume.semi_axes, atol=5e-5)
    np.testing.assert_allclose(again.centre, volume.centre, atol=5e-5)
    np.testing.assert_allclose(np.r_[again.neck.centre, again.neck.semi_axes],
                               np.r_[volume.neck.centre, volume.neck.semi_axes], atol=5e-5)
    assert (again.neck.top, again.neck.base) == pytest.approx(
        (volume.neck.top, volume.neck.base), abs=5e-5)
    older = HeadVolume.from_meta({'centre': [0, 0, 0], 'semi_axes': [1, 1, 1]})
    assert older.neck is None and 'neck' not in older.as_meta()
    neck = volume.neck.as_meta()
    for bad in ({'centre': [0, 0, 0]}, {'centre': [0, 0], 'semi_axes': [1, 1, 1]},
                {'centre': [0, 0, 0], 'semi_axes': [1, 0, 1]}, [1, 2, 3],
                {'centre': [0, 0, 'x'], 'semi_axes': [1, 1, 1]},
                {'centre': [0, 0, 0], 'semi_axes': [1, 1, 1], 'neck': 'low'},
                {'centre': [0, 0, 0], 'semi_axes': [1, 1, 1], 'neck': {**neck, 'top': 'x'}},
                {'centre': [0, 0, 0], 'semi_axes': [1, 1, 1],
                 'neck': {**neck, 'centre': [0, 0, 0]}},
                {'centre': [0, 0, 0], 'semi_axes': [1, 1, 1],
                 'neck': {**neck, 'base': neck['top'] + 0.01}}):
        with pytest.raises(ValueError, match='head_volume'):
            HeadVolume.from_meta(bad)


def test_a_bounded_field_holds_density_only_inside_the_volume(volume):
    import torch

    from head_capture.avatar.fields import GridField, MLPField

    points = (torch.rand(4000, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1) * 0.3
    directions = torch.nn.functional.normalize(torch.ones_like(points), dim=-1)
    inside = (((points.double().numpy() - volume.centre) / volume.semi_axes) ** 2).sum(-1) <= 1
    assert 0.05 < inside.mean() < 0.5
    head = ~volume.neck.holds_body(points.numpy())
    assert (inside & ~head).sum() > 10
    for kind in (GridField, MLPField):
        torch.manual_seed(1)
        free = kind(scale=0.3)
        bounded = kind(scale=0.3, support=(volume.centre, volume.semi_axes))
        bounded.load_state_dict(free.state_dict())  # the support is not in the state dict
        colour, density = bounded(points, directions)
        expected = free(points, directions)[1] * torch.as_tensor(inside)
        torch.testing.assert_close(density, expected)
        assert (density[torch.as_tensor(inside)] > 0).all()
        bounded.bound_to((volume.centre, volume.semi_axes, volume.neck.holds_body))  # bust
        torch.testing.assert_close(bounded(points, directions)[1],
                                   expected * torch.as_tensor(head))


def test_a_keyframe_mask_leaves_out_what_the_detector_is_unsure_of():
    # A sharp head (its edge a band of middling values narrower than three mask cells), a wide
    # region the network is unsure of below it (the body), and a column it never saw.
    rows, columns = np.mgrid[0:120, 0:160]
    radius = np.hypot(columns - 80, rows - 45)
    probability = 1 / (1 + np.exp(-(30 - radius) / 0.6))
    probability[85:, 20:140] = 0.3
    probability[:, :10] = 0.5
    detection = Detection(np.zeros((1, 2)), np.ones(1), np.ones(1), probability,
                          (80.0, 45.0, 60.0), 1)
    within = np.ones((120, 160), bool)
    within[:, 150:] = False
    mask = detection.head_mask(within)
    assert set(np.unique(mask)) == {0, MASK_UNSURE, 255}
    assert (mask[85:, 30:130] == MASK_UNSURE).all() and (mask[:, :10] == MASK_UNSURE).all()
    # The head's edge is split at 0.5 as before, not left out.
    near_edge = (np.abs(radius - 30) < 3) & (rows < 80)
    np.testing.assert_array_equal(mask[near_edge], np.where(radius[near_edge] < 30, 255, 0))
    assert (mask[:, 150:] == 0).all()


def test_only_the_outline_s_window_is_worked_out_and_nothing_outside_it_is_lost(volume,
                                                                                monkeypatch):
    # A 1280x720 frame with the head small and off-centre, large, beside the camera, and the
    # camera inside the volume: the same pixels as working out the whole frame.
    camera = Intrinsics.from_fov(1280, 720, 65.0)
    cases = [look_at_w2c(np.array([1.2, 0.3, 0.4]), np.array([0.0, 0.1, -0.05])),
             look_at_w2c(np.array([0.25, -0.05, -0.1]), np.zeros(3)),
             look_at_w2c(np.array([0.0, 0.3, 0.05]), np.array([1.0, 0.3, 0.0])),
             look_at_w2c(volume.centre + [0.02, 0.0, 0.0], np.array([1.0, 0.0, 0.0])),
             look_at_w2c(np.array([2.0, 0.0, 0.0]), np.array([3.0, 0.0, 0.0]))]
    windowed = [volume.crossing(camera, *pose) for pose in cases]
    monkeypatch.setattr(head_volume, '_outline_window', lambda dot, camera: (
        slice(0, camera.height), slice(0, camera.width)))
    for (seen, body), pose in zip(windowed, cases):
        whole_seen, whole_body = volume.crossing(camera, *pose)
        np.testing.assert_array_equal(seen, whole_seen)
        np.testing.assert_array_equal(body, whole_body)
    shares = [seen.mean() for seen, _ in windowed]
    assert 0.0 < shares[0] < 0.1 and shares[1] > 0.3 and shares[3] == 1.0 and shares[4] == 0.0


def test_a_keyframe_mask_worked_out_round_the_head_alone_is_the_whole_frame_s_cut(volume):
    # Unsure patches of every size, some across the edge of the pixels that can show the
    # head: the mask opened round those pixels alone is the whole frame's, cut.
    camera, rotation, translation = front_camera(40.0, distance=1.2, size=(320, 240))
    seen, body = volume.crossing(camera, rotation, translation)
    assert 0.02 < seen.mean() < 0.3
    noise = np.random.default_rng(3).random((24, 32)).astype(np.float32)
    noise = cv2.resize(noise, (320, 240), interpolation=cv2.INTER_CUBIC)
    # Sure almost everywhere, unsure in bands a few pixels wide, some narrower than the
    # opening (dropped), some wider (kept), and in one wide patch.
    probability = 1 / (1 + np.exp(-(noise - 0.5) * np.linspace(8, 30, 320)))
    probability[100:140, 100:220] = 0.5
    detection = Detection(np.zeros((1, 2)), np.ones(1), np.ones(1), probability,
                          (160.0, 120.0, 60.0), 1)
    whole = detection.head_mask(None, body)
    whole[~seen] = 0
    cut = detection.head_mask(seen, body)
    assert (cut == MASK_UNSURE).any() and (cut == 255).any()
    np.testing.assert_array_equal(cut, whole)
    assert not detection.head_mask(np.zeros_like(seen), body).any()
