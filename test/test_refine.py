"""The feature bundle adjustment that refines the landmark PnP cameras (capture/refine.py)."""

import json

from head_capture.camera import Intrinsics
from head_capture.capture.refine import refine_poses, RefineConfig, RefineView
from head_capture.geometry import look_at_w2c
from head_capture.landmarks.template import HeadTemplate
import numpy as np
import pytest


@pytest.fixture(scope='module')
def sequence(tmp_path_factory):
    from head_capture.synth.sequence import SequenceConfig, write_sequences

    folder, = write_sequences(tmp_path_factory.mktemp('seq'),
                              SequenceConfig(subjects=1, train=36, test=0, size=400, seed=11))
    return folder


def test_refined_cameras_are_closer_to_the_truth_and_say_so(sequence, tmp_path):
    from head_capture.cli import main

    truth = sequence / 'transforms_train.json'
    errors = {}
    for flag in ('--refine', '--no-refine'):
        out = tmp_path / flag / 'poses.json'
        assert main(['poses', str(truth), '--out', str(out), flag]) == 0
        written = json.loads(out.read_text())
        refined = [f.get('pose_refined') for f in written['frames']]
        if flag == '--refine':
            info = written['head_capture']['pose_refinement']
            assert info['fallback'] is None and info['feature_points'] > 100
            assert sum(refined) == info['refined'] >= 0.8 * len(refined)
        else:
            assert 'pose_refinement' not in written['head_capture'] and not any(refined)
        report = tmp_path / flag / 'errors.json'
        assert main(['evaluate-poses', str(out), str(truth), '--out', str(report)]) == 0
        errors[flag] = json.loads(report.read_text())
    refined, pnp = errors['--refine'], errors['--no-refine']
    assert refined['registered'] == pnp['registered'] >= 33
    # Every registered view keeps a pose, and the adjustment takes off a good part of the
    # error even on this subject of little texture (about 570 feature points).
    assert refined['rotation_deg']['mean'] < 0.85 * pnp['rotation_deg']['mean']
    assert refined['translation_cm']['mean'] < pnp['translation_cm']['mean']


def test_a_textureless_capture_keeps_its_landmark_poses_and_says_why(tmp_path):
    import cv2

    camera = Intrinsics.from_fov(160, 160, 50.0)
    template = HeadTemplate.load().positions
    image_dir = tmp_path / 'frames'
    image_dir.mkdir()
    views = []
    for index, azimuth in enumerate(np.radians(np.arange(0, 360, 30))):
        centre = 0.6 * np.array([np.cos(azimuth), np.sin(azimuth), 0.1])
        rotation, translation = look_at_w2c(centre, np.zeros(3))
        pixels = cv2.projectPoints(template, cv2.Rodrigues(rotation)[0], translation,
                                   camera.matrix, None)[0][:, 0]
        name = f'{index:02d}.png'
        cv2.imwrite(str(image_dir / name), np.full((160, 160, 3), 128, np.uint8))
        views.append(RefineView(name, rotation, translation, None, pixels,
                                np.full(len(template), 1.0), np.ones(len(template), bool)))
    refinement = refine_poses(views, image_dir, camera, template, tmp_path / 'work')
    assert 'no feature track' in refinement.fallback
    assert not refinement.refined.any()
    assert all(np.array_equal(r, v.rotation) for r, v in zip(refinement.rotations, views))
    assert 'every pose kept from PnP' in refinement.describe()
    two = refine_poses(views[:2], image_dir, camera, template, tmp_path / 'work2')
    assert 'at least 3' in two.fallback


def test_refine_config_comes_from_the_parameters_file_and_refuses_what_cannot_work(tmp_path):
    from head_capture.node_graph import load_node_config

    assert load_node_config(RefineConfig, 'pose_refinement') == RefineConfig()
    params = tmp_path / 'params.yaml'
    params.write_text('pose_refinement:\n  rounds: 5\n')
    assert load_node_config(RefineConfig, 'pose_refinement', params).rounds == 5
    params.write_text('pose_refinement:\n  round: 5\n')
    with pytest.raises(ValueError, match='round'):
        load_node_config(RefineConfig, 'pose_refinement', params)
    with pytest.raises(ValueError, match='rounds'):
        RefineConfig(rounds=0)
    with pytest.raises(ValueError, match='reject_factor'):
        RefineConfig(reject_factor=0.5)


def test_an_image_colmap_cannot_read_keeps_the_landmark_poses_and_says_why(tmp_path):
    camera = Intrinsics.from_fov(160, 160, 50.0)
    template = HeadTemplate.load().positions
    views = [RefineView(f'{index}.png', *look_at_w2c(np.array([0.6, 0.1 * index, 0.1]),
                                                     np.zeros(3)), None,
                        np.zeros((len(template), 2)), np.ones(len(template)),
                        np.ones(len(template), bool))
             for index in range(4)]
    for view in views:
        (tmp_path / view.name).write_bytes(b'not a png')
    refinement = refine_poses(views, tmp_path, camera, template, tmp_path / 'work')
    assert refinement.fallback and not refinement.refined.any()
    assert all(np.array_equal(t, v.translation) for t, v in zip(refinement.translations, views))


def test_a_keyframe_colmap_cannot_read_keeps_its_pose_and_the_others_are_refined(sequence,
                                                                                 tmp_path):
    from head_capture.capture.pose import PoseConfig
    from head_capture.capture.refine import refine_registered
    from head_capture.capture.registration import find_images, register_images
    from head_capture.landmarks.detector import LandmarkDetector
    import shutil

    views = tmp_path / 'views'
    shutil.copytree(sequence, views)
    images = find_images(views / 'transforms_train.json')
    template = HeadTemplate.load().positions
    estimates, observations = register_images(images, LandmarkDetector(), template,
                                              PoseConfig())
    images.paths[0].write_bytes(b'not a png any more')
    refined, refinement = refine_registered(images, estimates, observations, template,
                                            tmp_path)
    assert refinement.stats['unreadable'] == 1 and not refinement.refined[0]
    assert np.array_equal(refined[0].rotation, estimates[0].rotation)
    assert refinement.refined[1:].mean() > 0.8
