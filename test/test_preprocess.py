"""Keyframe pixels: undistortion and shrinking, with the cameras that describe them."""

import cv2
from head_capture.camera import Intrinsics
from head_capture.capture.preprocess import shrink_keyframe, undistort
import numpy as np
import pytest


def dot_centres(image):
    _, _, _, centres = cv2.connectedComponentsWithStats((image[:, :, 0] > 128).astype(np.uint8))
    return centres[1:]


@pytest.mark.parametrize('distortion', [(-0.3, 0.08, 0.0, 0.0), (-0.3, 0.08, 0.0, 0.0, -0.4)])
def test_undistort_straightens_a_distorted_line(distortion):
    cam = Intrinsics(300.0, 300.0, 159.5, 119.5, 320, 240, distortion)
    # Dots on a straight line in space (y = 0.3 z), seen through the distorting lens.
    line = np.stack([np.linspace(-0.45, 0.45, 7), np.full(7, 0.3), np.ones(7)], 1)
    pixels, _ = cv2.projectPoints(line, np.zeros(3), np.zeros(3), cam.matrix,
                                  np.array(cam.distortion))
    image = np.zeros((240, 320, 3), np.uint8)
    for u, v in pixels[:, 0]:
        cv2.circle(image, (round(u), round(v)), 3, (255, 255, 255), -1)
    straight, clean = undistort(image, cam)
    assert not clean.has_distortion
    expected_row = cam.cy + cam.fy * 0.3
    assert np.ptp(dot_centres(image)[:, 1]) > 4.0
    np.testing.assert_allclose(dot_centres(straight)[:, 1], expected_row, atol=0.75)


def test_a_keyframe_is_the_whole_frame_shrunk_with_a_point_on_its_pixel():
    for width, height in ((1280, 720), (720, 1280)):
        cam = Intrinsics.from_fov(width, height, 65.0)
        point = np.array([0.05, -0.02, 1.0])
        image = np.zeros((height, width, 3), np.uint8)
        u, v = (cam.matrix @ point)[:2]
        cv2.circle(image, (round(u), round(v)), 6, (255, 255, 255), -1)
        view, view_cam = shrink_keyframe(image, cam, 640)
        assert view.shape[:2] == (height // 2, width // 2)
        assert (view_cam.width, view_cam.height) == (width // 2, height // 2)
        expected = (view_cam.matrix @ point)[:2]
        ys, xs = np.nonzero(view[:, :, 0] > 128)
        np.testing.assert_allclose([xs.mean(), ys.mean()], expected, atol=0.5)
    # Never enlarged.
    assert shrink_keyframe(image, cam, 4000)[0] is image


def test_shrink_keyframe_refuses_a_camera_of_another_size_and_a_tiny_side():
    with pytest.raises(ValueError, match='but the camera is'):
        shrink_keyframe(np.zeros((100, 100, 3), np.uint8), Intrinsics.from_fov(200, 100), 64)
    with pytest.raises(ValueError, match='at least 8'):
        shrink_keyframe(np.zeros((100, 200, 3), np.uint8), Intrinsics.from_fov(200, 100), 4)
