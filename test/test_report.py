"""The HTML report of a real (toy-sized) reconstruction, checked as text and in Chromium."""

import json
import os
import re
import shutil
import subprocess

import cv2
from head_capture.avatar.trainer import AvatarTrainer, STAGE1_TRANSFORMS
from head_capture.avatar.training_config import AvatarConfig
from head_capture.geometry import w2c_to_c2w_opengl
from head_capture.lie_groups import so3_exp
from head_capture.report import write_report
from head_capture.session import FrameRecord, Transforms, write_transforms
import numpy as np
import pytest
from test_avatar import TOY

SECTION_IDS = ('summary', 'keyframes', 'poses', 'coverage', 'training', 'held-out',
               'turntable', 'files')
REFUSED = {3: 'no head found', 17: 'blurred'}


@pytest.fixture(scope='module')
def reconstruction(tmp_path_factory, blob_views):
    """Return (session, avatar, truth): a session with noisy poses, its avatar, the truth."""
    root = tmp_path_factory.mktemp('report')
    session, truth_dir = root / 'session', root / 'truth'
    (session / 'frames').mkdir(parents=True)
    rng = np.random.default_rng(5)
    frames, truth_frames, refused = [], [], []
    for n, (image, rotation, translation) in enumerate(zip(
            blob_views.images, blob_views.rotations, blob_views.translations)):
        name = f'frames/{n:06d}.png'
        cv2.imwrite(str(session / name), image[..., ::-1])
        truth_frames.append(FrameRecord(f'../session/{name}',
                                        w2c_to_c2w_opengl(rotation, translation)))
        if n in REFUSED:
            refused.append({'file_path': name, 'reason': REFUSED[n]})
            continue
        noisy = so3_exp(rng.normal(scale=0.02, size=3)) @ rotation
        frames.append(FrameRecord(name, w2c_to_c2w_opengl(
            noisy, translation + rng.normal(scale=0.03, size=3)),
            meta={'pose_quality': {'confidence': 0.9}}))
    write_transforms(session / 'transforms.json', Transforms(
        blob_views.camera, frames, {'head_capture': {'unregistered': refused}}))
    write_transforms(truth_dir / 'transforms.json', Transforms(blob_views.camera, truth_frames))
    config = AvatarConfig().updated({
        **TOY, 'stage1.steps': 12, 'stage2.steps': 6, 'trainer.log_every': 2,
        'trainer.checkpoint_every': 1000, 'outputs.test_pose_steps': 0,
        'outputs.turntable_frames': 3})
    AvatarTrainer(session / 'transforms.json', session / 'avatar', config).run()
    return session, session / 'avatar', truth_dir / 'transforms.json'


@pytest.fixture(scope='module')
def report(reconstruction, tmp_path_factory):
    """Write the report of the reconstruction, with the truth and one extra metric."""
    session, avatar, truth = reconstruction
    out = tmp_path_factory.mktemp('html') / 'report.html'
    assert write_report(session, avatar, out, truth=truth, title='toy blobs',
                        extra_metrics={'capture fps': 30.0}) == out
    return out


def test_the_trainer_keeps_the_poses_stage_1_ended_with(reconstruction):
    stage1 = json.loads((reconstruction[1] / STAGE1_TRANSFORMS).read_text())
    final = json.loads((reconstruction[1] / 'transforms.json').read_text())
    assert len(stage1['frames']) == len(final['frames']) == 28
    assert [f['held_out'] for f in stage1['frames']] == [f['held_out'] for f in final['frames']]
    assert stage1['frames'] != final['frames']  # stage 2 refined them further


def test_the_report_is_one_file_with_every_section(report, reconstruction):
    page = report.read_text()
    links = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', page)
    assert links and not [link for link in links
                          if link.startswith(('http:', 'https:', '/', 'file:', '//'))]
    assert '<link' not in page and 'url(' not in page
    for section in SECTION_IDS:
        assert f'<section id="{section}">' in page
    assert (reconstruction[1] / 'turntable.mp4').is_file()
    assert '<video' in page and 'src="data:video/mp4;base64,' in page
    assert page.count('class="unregistered"') == len(REFUSED)
    assert 'blurred' in page and 'capture fps' in page and 'ground truth' in page
    assert 'PnP (session): rotation' in page and 'after stage 2: rotation' in page
    assert page.count('<polyline') == 6  # loss, PSNR, rotation error; stage 1 and 2 each
    assert 'not available' not in page.split('id="files"')[0]
    assert 'evaluation.json' not in page  # written by `head-capture evaluate`, not run here
    assert page.count('render | truth') == 6 and page.count('<img') == 30 + 6 + 1


def test_an_evaluation_is_linked_once_one_was_written(reconstruction, tmp_path):
    session, avatar, _ = reconstruction
    evaluated = tmp_path / 'avatar'
    shutil.copytree(avatar, evaluated)
    (evaluated / 'evaluation.json').write_text('{}')
    page = write_report(session, evaluated, tmp_path / 'a.html').read_text()
    assert 'href="avatar/evaluation.json"' in _section(page, 'files')


def test_the_turntable_says_where_the_avatar_ends(reconstruction, tmp_path):
    session, avatar, _ = reconstruction
    page = write_report(session, avatar, tmp_path / 'a.html').read_text()
    assert 'ends at the neck' not in _section(page, 'turntable')  # no head volume
    with_neck = tmp_path / 'session'
    shutil.copytree(session, with_neck, ignore=shutil.ignore_patterns('avatar'))
    data = json.loads((with_neck / 'transforms.json').read_text())
    data['head_volume'] = {'centre': [0, 0, 0], 'semi_axes': [1, 1, 1],
                           'neck': {'centre': [0, 0], 'semi_axes': [0.1, 0.1], 'top': -0.1,
                                    'base': -0.2}}
    (with_neck / 'transforms.json').write_text(json.dumps(data))
    page = write_report(with_neck, avatar, tmp_path / 'b.html').read_text()
    assert 'ends at the neck' in _section(page, 'turntable')


def _chromium():
    found = next((shutil.which(name) for name in ('chromium', 'chromium-browser',
                                                  'google-chrome') if shutil.which(name)), None)
    if found is None:
        if os.environ.get('CI'):
            pytest.fail('chromium is not installed')
        pytest.skip('chromium not installed: make setup installs it')
    return found


def test_chromium_shows_the_report_with_every_picture(report, tmp_path):
    chromium = _chromium()
    home = tmp_path / 'home'
    home.mkdir()
    command = [chromium, '--headless=new', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
               '--mute-audio', f'--user-data-dir={home / "profile"}', '--window-size=1280,4000',
               '--virtual-time-budget=5000']
    env = {**os.environ, 'HOME': str(home)}
    shot = tmp_path / 'report.png'
    subprocess.run(command + [f'--screenshot={shot}', report.as_uri()], env=env,
                   capture_output=True, timeout=120, check=True)
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (4000, 1280)
    assert image.std() > 20
    dom = subprocess.run(command + ['--dump-dom', report.as_uri()], env=env,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    images = report.read_text().count('<img')
    assert '<title>toy blobs</title>' in dom
    assert 'data-images-broken="0"' in dom
    assert f'data-images-loaded="{images}"' in dom


def _section(page, name):
    return re.search(f'<section id="{name}">(.*?)</section>', page, re.S).group(1)


def test_a_session_without_an_avatar_still_gets_a_report(reconstruction, tmp_path):
    page = write_report(reconstruction[0], None, tmp_path / 'a.html').read_text()
    assert 'training metrics (metrics.json): not available' in _section(page, 'summary')
    for name in ('training', 'held-out', 'turntable'):
        assert 'not available' in _section(page, name)
    assert 'PnP (session)' in _section(page, 'poses') and '<img' in _section(page, 'coverage')
    assert page.count('<img') == 30 + 1
    empty = write_report(tmp_path / 'nothing', tmp_path / 'no avatar', tmp_path / 'b.html')
    page = empty.read_text()
    for name in SECTION_IDS:
        assert 'not available' in _section(page, name)


def test_keyframes_a_live_capture_never_listed_are_outlined(blob_views, tmp_path):
    (tmp_path / 'keyframes').mkdir()
    frames = []
    for n, (image, rotation, translation) in enumerate(zip(
            blob_views.images[:4], blob_views.rotations, blob_views.translations)):
        name = f'keyframes/{n:020d}.png'
        cv2.imwrite(str(tmp_path / name), image[..., ::-1])
        if n != 2:  # a keyframe the pose estimator found no head in
            frames.append(FrameRecord(name, w2c_to_c2w_opengl(rotation, translation)))
    write_transforms(tmp_path / 'transforms.json', Transforms(blob_views.camera, frames))
    page = write_report(tmp_path, None, tmp_path / 'report.html').read_text()
    sheet = _section(page, 'keyframes')
    assert sheet.count('<img') == 4 and sheet.count('class="unregistered"') == 1
    assert f'{2:020d}.png' in sheet.split('class="unregistered"')[1].split('</figure>')[0]
