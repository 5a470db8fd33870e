"""Intrinsics: construction, validation, and how crops and resizes move the camera."""

import math

from head_capture.camera import DEFAULT_FOV_DEG, image_intrinsics, Intrinsics
import numpy as np
import pytest


def project(cam, points):
    uv = (cam.matrix @ points.T).T
    return uv[:, :2] / uv[:, 2:]


def test_from_fov_spans_the_long_side():
    cam = Intrinsics.from_fov(1280, 720)
    assert cam.fov_x_deg == pytest.approx(DEFAULT_FOV_DEG)
    assert (cam.cx, cam.cy) == (639.5, 359.5)
    portrait = Intrinsics.from_fov(720, 1280, 60.0)
    assert 2 * math.degrees(math.atan(640 / portrait.fy)) == pytest.approx(60.0)


@pytest.mark.parametrize('kwargs', [
    {'fx': -1.0}, {'width': 0}, {'cx': float('nan')}, {'distortion': (0.1, 0.0)}])
def test_invalid_intrinsics_are_refused(kwargs):
    values = {'fx': 500.0, 'fy': 500.0, 'cx': 320.0, 'cy': 240.0, 'width': 640,
              'height': 480, **kwargs}
    with pytest.raises(ValueError):
        Intrinsics(**values)


def test_crop_and_resize_keep_projections_consistent(rng):
    cam = Intrinsics(800.0, 790.0, 650.2, 350.7, 1280, 720)
    points = np.c_[rng.uniform(-0.3, 0.3, (20, 2)), rng.uniform(1.0, 3.0, 20)]
    uv = project(cam, points)
    cropped = cam.cropped(280, 0, 720, 720)
    np.testing.assert_allclose(project(cropped, points), uv - [280, 0])
    half = cropped.resized(360, 360)
    # With pixel centres at integers, x maps to (x + 0.5) * s - 0.5.
    np.testing.assert_allclose(project(half, points), (uv - [280, 0] + 0.5) * 0.5 - 0.5)


def test_intrinsics_from_camera_info_fields():
    k = [500.0, 0.0, 319.5, 0.0, 505.0, 239.5, 0.0, 0.0, 1.0]
    camera = Intrinsics.from_camera_info(640, 480, k, [0.1, -0.02, 0.001, 0.0, 0.0])
    assert (camera.fx, camera.fy, camera.cx, camera.cy) == (500.0, 505.0, 319.5, 239.5)
    assert camera.distortion == (0.1, -0.02, 0.001, 0.0, 0.0)
    assert Intrinsics.from_camera_info(640, 480, k).distortion == (0.0,) * 5
    assert Intrinsics.from_camera_info(640, 480, [0.0] * 9) is None  # uncalibrated
    # plumb_bob's k3 is kept (a real calibration's usually is not zero).
    assert Intrinsics.from_camera_info(640, 480, k, [0.1, 0.0, 0.0, 0.0, 0.3]).distortion[4] \
        == 0.3
    rational = [0.1, 0.0, 0.0, 0.0, 0.3, 0.0, 0.0, 0.0]
    assert Intrinsics.from_camera_info(640, 480, k, rational, 'rational_polynomial') \
        .distortion == (0.1, 0.0, 0.0, 0.0, 0.3)
    with pytest.raises(ValueError, match='k1 k2 p1 p2 k3'):
        Intrinsics.from_camera_info(640, 480, k, rational[:5] + [0.01, 0.0, 0.0],
                                    'rational_polynomial')
    # Four terms are five with k3 = 0: the same camera however it was given.
    assert Intrinsics(500.0, 505.0, 319.5, 239.5, 640, 480, (0.1, 0.0, 0.0, 0.0)) == \
        Intrinsics(500.0, 505.0, 319.5, 239.5, 640, 480, (0.1, 0.0, 0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match='equidistant'):
        Intrinsics.from_camera_info(640, 480, k, [0.1, 0.0, 0.0, 0.0], 'equidistant')


def test_an_image_s_camera_is_the_known_one_resized_or_a_field_of_view():
    image = np.zeros((360, 640, 3), np.uint8)
    known = Intrinsics(910.0, 905.0, 639.5, 359.5, 1280, 720, (0.1, 0.0, 0.0, 0.0))
    assert image_intrinsics(image, known, 40.0) == known.resized(640, 360)
    same = np.zeros((720, 1280), np.uint8)
    assert image_intrinsics(same, known) is known  # not rescaled by 1: compared as is
    assert image_intrinsics(image, None, 40.0) == Intrinsics.from_fov(640, 360, 40.0)
    assert image_intrinsics(image).fov_x_deg == pytest.approx(DEFAULT_FOV_DEG)
