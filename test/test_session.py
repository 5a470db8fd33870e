"""Session directory and transforms.json: round trips, Blender files, and refusals."""

import json
import math

from head_capture.camera import Intrinsics
from head_capture.files import write_bytes_atomic
from head_capture.session import (keyframe_file, keyframe_stamp, keyframe_stamps, read_image,
                                  read_transforms, resolve_inside, Session, SessionError,
                                  TRANSFORMS_FILE)
import numpy as np
import pytest


@pytest.fixture
def camera():
    return Intrinsics(300.0, 310.0, 63.5, 47.0, 128, 96, (0.01, -0.002, 0.0005, 0.0))


def test_session_round_trip(tmp_path, camera, rng):
    session = Session.create(tmp_path / 's', camera, meta={'note': 'x'})
    images = [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(3)]
    for n, image in enumerate(images):
        session.add_frame(image, {'timestamp': n / 30})
    session.write_mask(1, np.full((96, 128), 255, np.uint8))
    c2w = np.eye(4)
    c2w[:3, 3] = (0.1, 0.2, 0.9)
    session.frames[2].c2w = c2w
    session.save()

    loaded = Session.load(tmp_path / 's')
    assert loaded.transforms.intrinsics == camera
    assert loaded.transforms.meta == {'note': 'x'}
    assert [f.meta['timestamp'] for f in loaded.frames] == [0, 1 / 30, 2 / 30]
    assert loaded.frames[1].mask_path == 'masks/000001.png'
    assert loaded.frames[0].c2w is None
    np.testing.assert_array_equal(loaded.frames[2].c2w, c2w)
    np.testing.assert_array_equal(loaded.image(2), images[2])


def test_nerfstudio_layout_on_disk(tmp_path, camera):
    session = Session.create(tmp_path, camera)
    session.add_frame(np.zeros((96, 128, 3), np.uint8))
    session.save()
    data = json.loads((tmp_path / TRANSFORMS_FILE).read_text())
    # nerfstudio puts the top-left pixel centre at (0.5, 0.5); OpenCV at (0, 0).
    assert (data['cx'], data['cy'], data['w'], data['h']) == (64.0, 47.5, 128, 96)
    assert data['camera_model'] == 'OPENCV' and data['k1'] == 0.01
    assert 'k3' not in data  # written only for a lens that has it
    # Without a pose a frame is not among "frames": nerfstudio needs a transform_matrix there.
    assert data['frames'] == []
    assert data['unregistered_frames'] == [{'file_path': 'frames/000000.png'}]


def test_k3_is_written_and_read_back(tmp_path, camera):
    from dataclasses import replace

    lens = replace(camera, distortion=(*camera.distortion[:4], -0.004))
    Session.create(tmp_path, lens)
    data = json.loads((tmp_path / TRANSFORMS_FILE).read_text())
    assert data['k3'] == -0.004  # nerfstudio's OPENCV camera reads it
    assert read_transforms(tmp_path / TRANSFORMS_FILE).intrinsics == lens


def test_reads_blender_style_files(tmp_path, rng):
    import cv2
    (tmp_path / 'train').mkdir()
    cv2.imwrite(str(tmp_path / 'train' / 'r_0.png'), np.zeros((50, 80, 3), np.uint8))
    pose = np.eye(4).tolist()
    (tmp_path / 'transforms_train.json').write_text(json.dumps(
        {'camera_angle_x': 0.6911, 'frames': [{'file_path': './train/r_0', 'rotation': 0.1,
                                               'transform_matrix': pose}]}))
    loaded = read_transforms(tmp_path / 'transforms_train.json')
    cam = loaded.intrinsics
    assert (cam.width, cam.height) == (80, 50)
    assert cam.fx == pytest.approx(40 / math.tan(0.6911 / 2))
    assert (cam.cx, cam.cy) == (39.5, 24.5)
    assert loaded.frames[0].file_path == './train/r_0.png'
    assert loaded.frames[0].meta == {'rotation': 0.1}


def test_reads_the_shared_lego_scene(lego_dir):
    loaded = read_transforms(lego_dir / 'transforms_train.json')
    assert len(loaded.frames) == 100
    assert loaded.intrinsics.fx == pytest.approx(277.78, abs=0.01)
    centres = np.stack([f.c2w[:3, 3] for f in loaded.frames])
    np.testing.assert_allclose(np.linalg.norm(centres, axis=1), 4.03, atol=0.05)
    image = read_image(resolve_inside(lego_dir, loaded.frames[0].file_path))
    assert image.shape == (200, 200, 3)


@pytest.mark.parametrize('content, message', [
    ('not json', 'not readable JSON'),
    ('{"fl_x": 100, "w": 10, "h": 10}', 'no "frames" list'),
    ('{"w": 10, "h": 10, "frames": []}', 'neither fl_x nor camera_angle_x'),
    ('{"fl_x": 1, "w": 4, "h": 4, "frames": [{"file_path": "a.png", '
     '"transform_matrix": [[1, 0], [0, 1]]}]}', 'not a finite 4x4'),
    ('{"fl_x": -5, "w": 4, "h": 4, "frames": []}', 'focal lengths must be positive'),
])
def test_bad_transforms_are_refused_clearly(tmp_path, content, message):
    path = tmp_path / 'transforms.json'
    path.write_text(content)
    with pytest.raises(SessionError, match=message):
        read_transforms(path)


def test_missing_transforms_file(tmp_path):
    with pytest.raises(SessionError, match='no transforms file'):
        Session.load(tmp_path)


def test_existing_session_is_not_overwritten_by_accident(tmp_path, camera):
    session = Session.create(tmp_path, camera)
    session.add_frame(np.zeros((96, 128, 3), np.uint8))
    session.save()
    with pytest.raises(SessionError, match='already holds a session'):
        Session.create(tmp_path, camera)
    assert len(Session.load(tmp_path).frames) == 1
    Session.create(tmp_path, camera, overwrite=True)
    assert Session.load(tmp_path).frames == []
    assert not list((tmp_path / 'frames').glob('*.png'))


def test_paths_cannot_leave_the_session(tmp_path):
    with pytest.raises(SessionError, match='outside the session'):
        resolve_inside(tmp_path, '../elsewhere.png')
    with pytest.raises(SessionError, match='outside the session'):
        resolve_inside(tmp_path, '/etc/passwd')


def test_live_keyframes_are_found_by_their_stamps_and_nothing_else(tmp_path):
    for stamp in (30, 10**18, 20):
        write_bytes_atomic(tmp_path / keyframe_file(stamp), b'png')
    for other in ('keyframes/.0000000005.png.x1.tmp', 'keyframes/notes.png', 'keyframes/50.PNG',
                  'keyframes/\u00b2.png', 'frames/000001.png', 'masks/00000000000000000040.png'):
        write_bytes_atomic(tmp_path / other, b'png')
    assert keyframe_stamps(tmp_path) == [20, 30, 10**18]
    assert keyframe_stamp(keyframe_file(7)) == 7
    assert keyframe_stamp('frames/000001.png') is None  # a reconstruct session's frame
    assert keyframe_stamps(tmp_path / 'no_session') == []
    assert keyframe_stamp('keyframes/\u00b2.png') is None


def test_wrong_frame_size_is_refused(tmp_path, camera):
    session = Session.create(tmp_path, camera)
    with pytest.raises(SessionError, match='does not match'):
        session.add_frame(np.zeros((10, 10, 3), np.uint8))


def test_full_disk_keeps_the_previous_transforms(tmp_path, camera, monkeypatch):
    import errno
    import os
    session = Session.create(tmp_path, camera)
    session.add_frame(np.zeros((96, 128, 3), np.uint8))
    session.save()
    before = (tmp_path / TRANSFORMS_FILE).read_bytes()

    def no_space(fd):
        raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(os, 'fsync', no_space)
    session.frames[0].meta['x'] = 1
    with pytest.raises(SessionError, match='disk full'):
        session.save()
    assert (tmp_path / TRANSFORMS_FILE).read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith('.tmp')]


def test_nothing_is_written_or_deleted_through_a_link_out_of_the_session(tmp_path, camera):
    root, elsewhere = tmp_path / 's', tmp_path / 'elsewhere'
    elsewhere.mkdir()
    (elsewhere / 'photo.png').write_bytes(b'a user photo')
    session = Session.create(root, camera)
    session.add_frame(np.zeros((96, 128, 3), np.uint8))
    (root / 'masks').symlink_to(elsewhere)
    with pytest.raises(SessionError, match='symbolic link to .*elsewhere, outside the session'):
        session.write_mask(0, np.zeros((96, 128), np.uint8))
    session.save()
    with pytest.raises(SessionError, match='outside the session'):
        Session.create(root, camera, overwrite=True)
    assert [p.name for p in elsewhere.iterdir()] == ['photo.png']
    # A link that stays inside the session is followed as any folder is.
    (root / 'masks').unlink()
    (root / 'kept').mkdir()
    (root / 'masks').symlink_to(root / 'kept')
    session.write_mask(0, np.zeros((96, 128), np.uint8))
    assert (root / 'kept' / '000000.png').is_file()


def test_an_unfinished_session_is_replaced_without_asking(tmp_path, camera):
    partial = Session.create(tmp_path, camera, partial=True)
    for _ in range(3):
        partial.add_frame(np.zeros((96, 128, 3), np.uint8))
    partial.save()  # then the process dies before finish()
    again = Session.create(tmp_path, camera, partial=True)
    assert not list((tmp_path / 'frames').glob('*.png'))
    again.add_frame(np.zeros((96, 128, 3), np.uint8))
    again.finish()
    assert len(Session.load(tmp_path).frames) == 1
    with pytest.raises(SessionError, match='already holds a session'):
        Session.create(tmp_path, camera, partial=True)
