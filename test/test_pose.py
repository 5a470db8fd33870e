"""Camera poses from landmarks: RANSAC PnP, the weighted refinement, refusals, the CLI."""

import json

import cv2
from head_capture.camera import Intrinsics
from head_capture.capture.pose import (_twist_jacobian, implausible, PoseConfig, refine_pose,
                                       solve_pose)
from head_capture.geometry import look_at_w2c, rotation_angle_deg
from head_capture.landmarks.template import HeadTemplate, mirrored
from head_capture.lie_groups import se3_exp
from head_capture.node_graph import load_node_config
import numpy as np
import pytest

CAMERA = Intrinsics.from_fov(640, 480, 60.0)


@pytest.fixture(scope='module')
def template():
    return HeadTemplate.load().positions.astype(float)


def _view(azimuth_deg, elevation_deg=10.0, distance=0.6):
    a, e = np.radians(azimuth_deg), np.radians(elevation_deg)
    centre = distance * np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])
    return look_at_w2c(centre, np.zeros(3))


def _project(template, rotation, translation, camera=CAMERA):
    pixels, _ = cv2.projectPoints(template, cv2.Rodrigues(rotation)[0], translation,
                                  camera.matrix, np.array(camera.distortion))
    return pixels[:, 0]


def test_twist_jacobian_matches_finite_differences(rng):
    cam = rng.uniform([-0.1, -0.1, 0.4], [0.1, 0.1, 0.8], (5, 3))
    focal = np.array([500.0, 520.0])

    def pixels(points):
        return points[:, :2] / points[:, 2:] * focal

    numeric = np.zeros((5, 2, 6))
    for k in range(6):
        step = np.zeros(6)
        step[k] = 1e-6
        moved = cam @ se3_exp(step)[:3, :3].T + se3_exp(step)[:3, 3]
        numeric[:, :, k] = (pixels(moved) - pixels(cam)) / 1e-6
    np.testing.assert_allclose(_twist_jacobian(cam, focal), numeric, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize('azimuth', [0.0, 90.0, 180.0, -120.0])
def test_pose_from_noisy_landmarks_with_outliers(template, rng, azimuth):
    rotation, translation = _view(azimuth)
    pixels = _project(template, rotation, translation) + rng.normal(0, 1.0, (len(template), 2))
    wrong = rng.random(len(template)) < 0.2
    pixels[wrong] += rng.uniform(-80, 80, (int(wrong.sum()), 2))
    sigma = np.where(wrong, 8.0, 1.0)  # the detector is unsure where it is wrong
    estimate = solve_pose(pixels, sigma, template, CAMERA)
    assert estimate.registered, estimate.reason
    assert rotation_angle_deg(estimate.rotation, rotation) < 0.5
    assert np.linalg.norm(estimate.centre - (-rotation.T @ translation)) < 0.01
    assert 0.7 < estimate.inlier_share < 0.9
    assert estimate.reprojection_px < 3 and 0 < estimate.confidence <= 1


@pytest.mark.parametrize('distortion', [(-0.2, 0.05, 0.001, -0.001),
                                        (-0.2, 0.05, 0.001, -0.001, -0.3)])  # with plumb_bob k3
def test_distorted_camera_is_undistorted_first(template, distortion):
    camera = Intrinsics(500.0, 500.0, 320.0, 240.0, 640, 480, distortion)
    # The head off to one side of the picture, where the lens bends most.
    rotation, translation = look_at_w2c(np.array([0.5, 0.3, 0.1]), np.array([0.0, -0.15, 0.1]))
    pixels = _project(template, rotation, translation, camera)
    centre = -rotation.T @ translation
    estimate = solve_pose(pixels, np.ones(len(template)), template, camera)
    assert rotation_angle_deg(estimate.rotation, rotation) < 0.05
    assert np.linalg.norm(estimate.centre - centre) < 0.001
    ignored = solve_pose(pixels, np.ones(len(template)), template, camera.without_distortion())
    assert np.linalg.norm(ignored.centre - centre) > 10 * np.linalg.norm(estimate.centre - centre)
    if distortion[4:]:  # k3 counts too
        without_k3 = solve_pose(pixels, np.ones(len(template)), template,
                                Intrinsics(500.0, 500.0, 320.0, 240.0, 640, 480, distortion[:4]))
        assert np.linalg.norm(without_k3.centre - centre) > \
            10 * np.linalg.norm(estimate.centre - centre)


def test_refinement_recovers_from_a_perturbed_start(template):
    rotation, translation = _view(30.0)
    pixels = _project(template, rotation, translation)
    start = se3_exp(np.array([0.05, -0.03, 0.02, 0.01, 0.02, -0.03]))
    refined, moved = refine_pose(start[:3, :3] @ rotation, start[:3, :3] @ translation
                                 + start[:3, 3], template, pixels, np.ones(len(template)),
                                 CAMERA.matrix, PoseConfig(refine_iterations=10))
    assert rotation_angle_deg(refined, rotation) < 0.01
    assert np.linalg.norm(moved - translation) < 1e-4


def test_random_landmarks_are_refused(template, rng):
    pixels = rng.uniform(0, 640, (len(template), 2))
    estimate = solve_pose(pixels, np.ones(len(template)), template, CAMERA)
    assert not estimate.registered
    assert 'agree' in estimate.reason or 'RANSAC' in estimate.reason or 'head' in estimate.reason


def test_non_finite_landmarks_are_refused_and_shapes_checked(template):
    pixels = np.full((len(template), 2), np.nan)
    assert 'finite' in solve_pose(pixels, np.ones(len(template)), template, CAMERA).reason
    with pytest.raises(ValueError, match='landmarks'):
        solve_pose(np.zeros((5, 2)), np.ones(5), template, CAMERA)


@pytest.mark.parametrize('centre, words', [((0.05, 0.0, 0.0), 'inside the head'),
                                           ((12.0, 0.0, 0.0), 'implausible')])
def test_implausible_distances(centre, words):
    rotation, translation = look_at_w2c(np.array(centre), np.zeros(3))
    reason = implausible(rotation, translation, np.ones(100, bool), 1.0, PoseConfig())
    assert words in reason


def test_head_behind_the_camera_and_too_few_inliers():
    rotation, translation = look_at_w2c(np.array([0.6, 0.0, 0.0]), np.array([1.0, 0.0, 0.0]))
    assert 'behind' in implausible(rotation, translation, np.ones(100, bool), 1.0, PoseConfig())
    rotation, translation = _view(0.0)
    few = np.arange(100) < 10
    assert 'agree' in implausible(rotation, translation, few, 0.1, PoseConfig())
    assert implausible(rotation, translation, np.ones(100, bool), 1.0, PoseConfig()) is None


def test_config_from_the_shipped_parameters_and_validation():
    assert load_node_config(PoseConfig, 'pose_estimator') == PoseConfig()
    with pytest.raises(ValueError, match='solver'):
        PoseConfig(solver='p3p')
    with pytest.raises(ValueError, match='distance'):
        PoseConfig(distance_m=(1.0, 0.5))


def test_poses_cli_registers_rendered_views(tmp_path):
    from head_capture.cli import main
    from head_capture.synth.sequence import SequenceConfig, write_sequences

    folder, = write_sequences(tmp_path / 'seq', SequenceConfig(subjects=1, train=8, test=0,
                                                               size=256, seed=11))
    truth = folder / 'transforms_train.json'
    out = tmp_path / 'out' / 'poses.json'
    assert main(['poses', str(truth), '--out', str(out)]) == 0
    written = json.loads(out.read_text())
    info = written['head_capture']
    assert info['frames'] == 8 and info['registered'] >= 6
    assert len(written['frames']) + len(info['unregistered']) == 8
    assert (out.parent / written['frames'][0]['file_path']).resolve().is_file()
    report_path = tmp_path / 'out' / 'errors.json'
    assert main(['evaluate-poses', str(out), str(truth), '--out', str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    assert report['registered'] == info['registered']
    assert report['rotation_deg']['mean'] < 15 and report['translation_cm']['mean'] < 10


def test_poses_cli_explains_a_missing_input(tmp_path, capsys):
    from head_capture.cli import main

    assert main(['poses', str(tmp_path / 'nothing'), '--out', str(tmp_path / 'p.json')]) == 2
    assert 'no image folder' in capsys.readouterr().err


def test_the_template_mirrors_onto_itself_across_the_head_midplane(template):
    # Mirrored landmarks are the template's own points of the other side, so the detector's
    # pass on a mirrored frame marks points that exist on the head.
    distance = np.linalg.norm(mirrored(template)[:, None] - template[None], axis=-1).min(1)
    assert np.median(distance) < 0.004 and np.percentile(distance, 95) < 0.01


def test_kept_images_add_the_mirror_pass_and_live_frames_do_not(capture, template):
    from head_capture.capture.registration import detect_and_solve
    from head_capture.landmarks.detector import LandmarkDetector
    from head_capture.session import read_transforms

    camera = read_transforms(capture / 'ground_truth.json').intrinsics
    video = cv2.VideoCapture(str(capture / 'capture.mp4'))
    ok, frame = video.read()
    video.release()
    assert ok
    frame = np.ascontiguousarray(frame[..., ::-1])
    detector = LandmarkDetector(threads=1)
    runs = []
    network = detector.run_crops
    detector.run_crops = lambda crops: runs.append(len(crops)) or network(crops)
    detection, single = detect_and_solve(frame, camera, detector, template)
    assert detection.usable and single.registered
    passes = {}
    for name, config, box, refine, mirror in (
            ('offline', PoseConfig(), None, False, True),
            ('offline, mirror pass off', PoseConfig(mirror_pass=False), None, False, True),
            ('keyframe', PoseConfig(), detection.box, True, True),
            ('keyframe, mirror pass off', PoseConfig(mirror_pass=False), detection.box, True,
             True),
            ('live frame', PoseConfig(), detection.box, False, False)):
        runs.clear()
        _, estimate = detect_and_solve(frame, camera, detector, template, config, box, refine,
                                       mirror)
        assert estimate.registered
        passes[name] = len(runs)
        # Same camera, within the detector's few degrees.
        assert rotation_angle_deg(estimate.rotation, single.rotation) < 5.0
    assert passes['offline'] == detection.passes + 1
    assert passes['offline, mirror pass off'] == detection.passes
    assert passes['keyframe'] == passes['keyframe, mirror pass off'] + 1
    assert passes['live frame'] <= detection.passes
