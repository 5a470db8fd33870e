"""Blur and exposure scores: blur lowers them, resolution does not move them."""

import cv2
from head_capture.capture.sharpness import assess_frame, blur_score, working_gray
from head_capture.synth.degrade import motion_blur
from head_capture.synth.sample_clip import textured_scene
import numpy as np
import pytest


@pytest.fixture(scope='module')
def scene():
    return textured_scene(1280, 720, np.random.default_rng(0))


@pytest.mark.parametrize('method', ['laplacian', 'tenengrad'])
def test_more_blur_means_a_lower_score(scene, method):
    scores = [assess_frame(motion_blur(scene, length, 0.3), method).sharpness
              for length in (0, 4, 10, 24)]
    assert all(a > b for a, b in zip(scores, scores[1:]))


@pytest.mark.parametrize('method', ['laplacian', 'tenengrad'])
def test_score_does_not_depend_on_resolution(scene, method):
    full = assess_frame(scene, method).sharpness
    small = assess_frame(cv2.resize(scene, (640, 360), interpolation=cv2.INTER_AREA),
                         method).sharpness
    assert small == pytest.approx(full, rel=0.1)


def test_exposure_classes(scene):
    assert assess_frame(scene).exposure == 'ok'
    assert assess_frame((scene * 0.08).astype(np.uint8)).exposure == 'dark'
    assert assess_frame(np.clip(scene.astype(int) + 240, 0, 255).astype(np.uint8)).exposure \
        == 'bright'
    # A bright wall behind a subject is correctly exposed, not washed out.
    wall = scene.copy()
    wall[:, :900] = 255
    assert assess_frame(wall).exposure_ok


def test_bad_inputs_are_refused(scene):
    with pytest.raises(ValueError, match='RGB uint8'):
        working_gray(scene[:, :, 0])
    with pytest.raises(ValueError, match='unknown blur method'):
        blur_score(working_gray(scene), 'fft')
