"""View-sphere coverage: filling, the trigger, next-best view, guidance text, the picture."""

from head_capture.capture.coverage import (Coverage, coverage_image, CoverageConfig, guidance,
                                           session_coverage, View)
from head_capture.geometry import w2c_to_c2w_opengl
from head_capture.node_graph import load_node_config
from head_capture.session import FrameRecord
from head_capture.synth.capture_video import CaptureConfig, phone_path
import numpy as np
import pytest


def _fill(coverage, band_elevation, azimuths, quality=0.9):
    for azimuth in azimuths:
        coverage.add(View(azimuth, band_elevation, 0.6), quality)


def test_bins_and_quality():
    coverage = Coverage()
    assert coverage.bin_of(View(0.0, -10.0, 0.6)) == (0, 0)
    assert coverage.bin_of(View(14.0, 10.0, 0.6)) == (1, 0)
    assert coverage.bin_of(View(16.0, 40.0, 0.6)) == (2, 1)
    assert coverage.bin_of(View(-170.0, 10.0, 0.6)) == (1, 6)
    assert coverage.bin_of(View(0.0, 70.0, 0.6)) is None
    coverage.add(View(0.0, -10.0, 0.6), 0.2)
    assert coverage.score == 0  # seen, but not good enough
    coverage.add(View(5.0, -10.0, 0.6), 0.8, keyframe=7)
    coverage.add(View(-5.0, -10.0, 0.6), 0.5, keyframe=8)  # worse: the best one stays
    assert coverage.keyframe[0, 0] == 7 and coverage.quality[0, 0] == 0.8
    assert coverage.score == pytest.approx(1 / 36)


def test_trigger_fires_once_when_the_last_orbit_fills():
    cfg = CaptureConfig(seconds=30.0, fps=10.0)
    poses = phone_path(cfg, np.random.default_rng(5))
    coverage = Coverage()
    fired, scores, top_sectors = [], [], []
    for index, (rotation, translation) in enumerate(poses):
        if index % 3 == 0:  # keyframes
            view = View.of_pose(rotation, translation)
            if coverage.add(view, 0.9, index):
                fired.append(index)
            scores.append(coverage.score)
            if view.elevation_deg >= 25:
                top_sectors.append(int(np.floor(view.azimuth_deg / 30 + 0.5)) % 12)
            if not fired:
                sectors_before = len(set(top_sectors))
    assert len(fired) == 1
    assert np.all(np.diff(scores) >= 0)
    # It fires on the third (top) orbit, on the keyframe that reaches its 11th of 12 sectors.
    assert fired[0] >= 2.6 * len(poses) / 3
    assert sectors_before == 10 and len(set(top_sectors)) == 12
    assert coverage.complete and coverage.triggered
    assert not coverage.add(View(0.0, 40.0, 0.6), 1.0)  # never again


def test_a_session_s_coverage_names_the_orbits_still_short():
    poses = phone_path(CaptureConfig(seconds=30.0, fps=10.0), np.random.default_rng(5))
    frames = [FrameRecord(f'{index}.png', w2c_to_c2w_opengl(rotation, translation),
                          meta={'pose_quality': {'confidence': 0.9}})
              for index, (rotation, translation) in enumerate(poses) if index % 3 == 0]
    unposed = FrameRecord('no_pose.png')
    whole, views = session_coverage(frames + [unposed])
    assert whole.complete and whole.shortfall() == '' and len(views) == len(frames)
    # The walk starts on the low orbit: a capture cut after a third of it lacks the other two.
    cut, _ = session_coverage(frames[:len(frames) // 3])
    shares = cut.band_shares
    assert not cut.complete and shares[0] > 0.5 and shares[2] == 0
    assert cut.summary() == (f'{cut.score:.0%} of the view bins covered (bands low to high: '
                             f'{shares[0]:.0%}, {shares[1]:.0%}, 0%)')
    assert cut.shortfall().endswith('25..55° elevation 0%')
    assert ('-30..0° elevation' in cut.shortfall()) == (shares[0] < 0.9)
    # Frames that their pose is less sure of count less, as keyframes do in the live guide.
    for frame in frames:
        frame.meta['pose_quality']['confidence'] = 0.1
    assert session_coverage(frames)[0].score == 0


def test_guidance_for_each_case():
    coverage = Coverage()
    assert guidance(coverage) == 'point the phone at the head to start'
    assert guidance(coverage, View(0, -10, 0.6), 'blurred') == 'hold still: blurred'
    assert guidance(coverage, None, 'no_head').startswith('head not visible')
    assert guidance(coverage, View(0, -10, 0.6), 'no_pose') == 'keep the whole head in view'
    assert guidance(coverage, View(0, -10, 0.2)) == 'step back: too close'
    assert guidance(coverage, View(0, -10, 2.5)) == 'come closer'
    assert guidance(coverage, View(0, -60, 0.6)) == 'raise the phone'
    assert guidance(coverage, View(0, 80, 0.6)) == 'lower the phone'
    assert guidance(coverage, View(0, -10, 0.6)) == 'slowly here: this view is still missing'
    _fill(coverage, -10, [-30, 0, 30])
    # Walking right (increasing azimuth): keep going right, not back.
    assert guidance(coverage, View(32, -10, 0.6)) == 'move right 30°'
    coverage.add(View(-29, -10, 0.6), 0.9)  # now walking left
    assert guidance(coverage, View(-29, -10, 0.6)) == 'move left 30°'
    _fill(coverage, -10, range(-150, 181, 30))
    assert coverage.band_shares[0] == 1.0
    assert guidance(coverage, View(0, -10, 0.6)) == 'raise the phone'
    _fill(coverage, 10, range(-150, 181, 30))
    _fill(coverage, 40, range(-150, 151, 30))  # 11 of 12: enough
    assert guidance(coverage, View(0, 40, 0.6)).startswith('coverage complete')


def test_lower_the_phone_for_a_missing_lower_orbit():
    coverage = Coverage()
    _fill(coverage, 40, range(-150, 181, 30))
    _fill(coverage, 10, range(-150, 181, 30))
    assert guidance(coverage, View(0, 40, 0.6)) == 'lower the phone'


def test_coverage_image_shows_bins_and_the_phone():
    coverage = Coverage()
    coverage.add(View(0.0, -10.0, 0.6), 0.9)  # front, lowest orbit: outer ring, top
    coverage.add(View(90.0, 40.0, 0.6), 0.1)  # left side, top orbit: inner ring, seen only
    image = coverage_image(coverage, 256, View(180.0, 10.0, 0.6))
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8
    assert image[12, 128].tolist() == [70, 200, 90]  # green
    assert image[128, 128 - 40].tolist() == [230, 170, 40]  # amber, left of centre
    assert image[128 + 70, 128].tolist() == [255, 255, 255]  # the phone, behind the head
    assert image[128 - 70, 128].tolist() == [60, 60, 60]  # empty


def test_config_from_the_shipped_parameters_and_validation():
    assert load_node_config(CoverageConfig, 'coverage_guide') == CoverageConfig()
    with pytest.raises(ValueError, match='increasing'):
        CoverageConfig(elevation_edges_deg=(0.0, -10.0))
    with pytest.raises(ValueError, match='target_share'):
        CoverageConfig(target_share=1.5)
