"""The ``head-capture`` command line, run in-process as a user would call it."""

import json

import cv2
from head_capture.cli import main
from head_capture.session import read_transforms, resolve_inside
from head_capture.video_writer import write_video
import numpy as np
import pytest


@pytest.fixture
def clip_video(tmp_path, sample_clip):
    path = tmp_path / 'clip.mp4'
    write_video(path, sample_clip.frames, sample_clip.fps)
    return path


def test_keyframes_writes_a_session(tmp_path, clip_video, sample_clip, capsys):
    out = tmp_path / 'session'
    assert main(['keyframes', str(clip_video), '--out', str(out), '--count', '12',
                 '--size', '96', '--fov', '60']) == 0
    transforms = read_transforms(out / 'transforms.json')
    cam = transforms.intrinsics
    assert (cam.width, cam.height) == (96, 64)
    # 60 degrees across the 240 px long side, the whole frame scaled to 96 px.
    assert cam.fx == pytest.approx(120 / 0.57735 * 96 / 240, rel=1e-3)
    assert 10 <= len(transforms.frames) <= 12
    assert all((out / f.file_path).is_file() and f.c2w is None for f in transforms.frames)
    sources = [f.meta['source_index'] for f in transforms.frames]
    assert not set(sources) & set(sample_clip.blurred.tolist())
    assert 'keyframes' in capsys.readouterr().err


def test_keyframes_warns_when_the_fov_is_assumed(tmp_path, clip_video, capsys):
    assert main(['keyframes', str(clip_video), '--out', str(tmp_path / 's'), '--count', '3',
                 '--size', '32']) == 0
    assert 'assumed a 69 degree field of view' in capsys.readouterr().err


def test_keyframes_from_a_truncated_video_keeps_what_it_read(tmp_path, clip_video, capsys):
    data = clip_video.read_bytes()
    cut = tmp_path / 'cut.mp4'
    cut.write_bytes(data[:len(data) // 2])
    assert main(['keyframes', str(cut), '--out', str(tmp_path / 's'), '--count', '10',
                 '--size', '32']) == 0
    assert 'warning' in capsys.readouterr().err
    assert len(read_transforms(tmp_path / 's' / 'transforms.json').frames) >= 3


@pytest.mark.parametrize('args, message', [
    (['keyframes', 'missing.mp4', '--out', 'o'], 'missing.mp4'),
    (['keyframes', '{video}', '--out', '{tmp}/o', '--count', '0'],
     'argument --count: 0 is out of range: must be at least 1'),
    (['keyframes', '{video}', '--out', '{tmp}/o', '--fov', '0'], 'argument --fov: 0 is out'),
    (['keyframes', '{video}', '--out', '{tmp}/o', '--size', '8'], 'argument --size: 8 is out'),
    (['reconstruct', '{video}', '--out', '{video}'], 'is a file; give a folder'),
    (['up', '--timeout', '-1'], 'argument --timeout: -1 is out of range: must be above 0'),
    (['keyframes', '{video}', '--out', '{tmp}/o', '--config', '{tmp}/none.yaml'], 'not found'),
    # An --out that is a file: one line naming it, not "[Errno 17] File exists".
    (['synth', 'landmarks', '--out', '{video}', '--count', '1'], 'is a file; give a folder'),
    (['synth', 'sequence', '--out', '{video}/sub'], 'lies under {video}, a file'),
    # A video where a command reads transforms: what it takes, and what to run instead.
    (['poses', '{video}', '--out', '{tmp}/p.json'], 'clip.mp4 is not a .json file: this '
     'command takes a folder of images, or a transforms.json (or a folder holding one). For a '
     'video: head-capture keyframes'),
    (['train', '{video}', '--out', '{tmp}/run'], 'clip.mp4 is not a .json file: this command '
     'takes a transforms.json with poses (or a folder holding one). For a video: head-capture '
     'reconstruct'),
])
def test_bad_input_is_one_clear_error(tmp_path, clip_video, capsys, args, message):
    args = [a.format(video=clip_video, tmp=tmp_path) for a in args]
    assert main(args) == 2
    said = capsys.readouterr().err
    assert message.format(video=clip_video, tmp=tmp_path) in said and 'Errno' not in said


def test_an_existing_session_needs_overwrite(tmp_path, clip_video, capsys):
    out = str(tmp_path / 's')
    base = ['keyframes', str(clip_video), '--out', out, '--count', '3', '--size', '32']
    assert main(base) == 0
    assert main(base) == 2
    assert 'already holds a session' in capsys.readouterr().err
    assert main(base + ['--overwrite']) == 0


def test_a_keyframes_run_cut_short_is_replaced_by_the_rerun(tmp_path, clip_video, capsys,
                                                            monkeypatch):
    from head_capture.session import Session, SessionError

    out = tmp_path / 's'
    base = ['keyframes', str(clip_video), '--out', str(out), '--count', '6', '--size', '32']
    add_frame = Session.add_frame

    def full_disk_at_the_third(session, image, meta=None):
        if len(session.frames) == 2:
            raise SessionError('disk full while writing a keyframe')
        return add_frame(session, image, meta)

    monkeypatch.setattr(Session, 'add_frame', full_disk_at_the_third)
    assert main(base) == 2
    monkeypatch.setattr(Session, 'add_frame', add_frame)
    # The half-written session was this program's: the same command finishes it, no --overwrite.
    assert main(base) == 0, capsys.readouterr().err
    frames = read_transforms(out / 'transforms.json').frames
    assert len(frames) >= 5 and all((out / f.file_path).is_file() for f in frames)
    assert sorted(p.name for p in (out / 'frames').iterdir()) == \
        sorted(f.file_path.split('/')[1] for f in frames)
    # Finished, it is the user's: replacing it needs --overwrite again.
    assert main(base) == 2
    assert 'already holds a session' in capsys.readouterr().err


def test_keyframes_overwrite_deletes_nothing_through_a_link(tmp_path, clip_video, capsys):
    out, elsewhere = tmp_path / 's', tmp_path / 'photos'
    base = ['keyframes', str(clip_video), '--out', str(out), '--count', '3', '--size', '32']
    assert main(base) == 0
    elsewhere.mkdir()
    (elsewhere / 'holiday.png').write_bytes(b'a user photo')
    for png in (out / 'frames').iterdir():
        png.unlink()
    (out / 'frames').rmdir()
    (out / 'frames').symlink_to(elsewhere)
    assert main(base + ['--overwrite']) == 2
    said = capsys.readouterr().err
    assert f'{out / "frames"} is a symbolic link to {elsewhere}, outside the session' in said
    assert [p.name for p in elsewhere.iterdir()] == ['holiday.png']


def test_landmarks_skips_an_unreadable_image_and_says_so(tmp_path, rng, capsys):
    images, out = tmp_path / 'images', tmp_path / 'out'
    images.mkdir()
    for name in ('a.png', 'c.png'):
        cv2.imwrite(str(images / name), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    (images / 'b.png').write_bytes(b'not a png')
    assert main(['landmarks', str(images), '--out', str(images / 'a.png')]) == 2
    said = capsys.readouterr().err
    assert f'--out {images / "a.png"} is a file; give a folder' in said and 'Errno' not in said
    assert main(['landmarks', str(images), '--out', str(out)]) == 0
    said = capsys.readouterr().err
    assert '1 unreadable image skipped' in said and 'b.png: unreadable image' in said
    assert sorted(json.loads((out / 'landmarks.json').read_text())) == ['a.png', 'c.png']
    assert sorted(p.name for p in out.glob('*.png')) == ['a_landmarks.png', 'c_landmarks.png']
    # Into the image folder itself: a rerun does not take its own overlays for images.
    for _ in range(2):
        assert main(['landmarks', str(images), '--out', str(images)]) == 0
    assert sorted(json.loads((images / 'landmarks.json').read_text())) == ['a.png', 'c.png']


@pytest.fixture
def noise_images(tmp_path, rng):
    """Three images with no head in them: every frame stays unregistered, with its reason."""
    folder = tmp_path / 'images'
    folder.mkdir()
    for n in range(3):
        cv2.imwrite(str(folder / f'{n}.png'), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    return folder


def test_poses_skips_an_unreadable_first_image(noise_images, capsys):
    (noise_images / '0.png').write_bytes(b'not a png')
    assert main(['poses', str(noise_images), '--out', str(noise_images / 'p.json')]) == 0
    said = capsys.readouterr().err
    assert '0 of 3 frames registered' in said and '0.png: unreadable image' in said


def test_poses_written_into_the_image_folder_does_not_read_itself(noise_images, capsys):
    out = noise_images / 'transforms.json'
    command = ['poses', str(noise_images), '--out', str(out), '--fov', '60']
    assert main(command) == 0
    before = out.read_bytes()
    assert main(command) == 2
    assert f'--out {out} exists; pass --overwrite' in capsys.readouterr().err
    assert out.read_bytes() == before
    # The rerun registers the folder's three images again, not the (empty) list it wrote.
    assert main(command + ['--overwrite']) == 0
    assert '0 of 3 frames registered' in capsys.readouterr().err
    assert len(read_transforms(out).meta['head_capture']['unregistered']) == 3


def test_poses_written_elsewhere_lists_paths_that_resolve(noise_images, tmp_path, capsys):
    out = tmp_path / 'elsewhere' / 'poses.json'
    assert main(['poses', str(noise_images), '--out', str(out), '--fov', '60']) == 0
    misses = read_transforms(out).meta['head_capture']['unregistered']
    for miss in misses:  # beside the file, readable wherever it goes, the originals untouched
        assert resolve_inside(out.parent, miss['file_path']).read_bytes() == \
            (noise_images / miss['file_path'].split('/')[-1]).read_bytes()
    assert len(list(noise_images.iterdir())) == 3
    # Read again, it is the three images it was made from, not only the registered ones.
    again = out.parent / 'again.json'
    assert main(['poses', str(out), '--out', str(again)]) == 0
    assert '0 of 3 frames registered' in capsys.readouterr().err


def test_demo_refuses_a_folder_it_did_not_make(tmp_path, capsys, monkeypatch):
    import head_capture.synth.capture_video as capture_video

    def render(*args, **kwargs):
        raise AssertionError('the demo started work in a folder it was refused')

    monkeypatch.setattr(capture_video, 'write_capture', render)
    (tmp_path / 'session').mkdir()
    (tmp_path / 'session' / 'my_scan.png').write_bytes(b'a user file')
    (tmp_path / 'notes.txt').write_text('mine')
    assert main(['demo', '--out', str(tmp_path)]) == 2
    said = capsys.readouterr().err
    assert 'holds files a demo did not write (notes.txt, session)' in said
    assert '--overwrite' in said
    assert (tmp_path / 'session' / 'my_scan.png').read_bytes() == b'a user file'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['notes.txt', 'session']


def test_a_demo_folder_is_reused_and_only_its_session_replaced(tmp_path):
    from head_capture.demo import claim_output, DEMO_RECORD
    from head_capture.session import SessionError

    out = tmp_path / 'demo'
    claim_output(out)
    assert (out / DEMO_RECORD).is_file()
    (out / 'session').mkdir()
    (out / 'session' / 'transforms.json').write_text('{}')
    (out / 'notes.txt').write_text('mine')
    claim_output(out)  # an earlier demo's folder: its session goes, nothing else does
    assert sorted(p.name for p in out.iterdir()) == [DEMO_RECORD, 'notes.txt']

    other = tmp_path / 'other'
    (other / 'session').mkdir(parents=True)
    claim_output(other, overwrite=True)
    assert sorted(p.name for p in other.iterdir()) == [DEMO_RECORD]

    scans = tmp_path / 'scans'
    scans.mkdir()
    (scans / 'scan.png').write_bytes(b'a user file')
    (out / 'session').symlink_to(scans)
    with pytest.raises(SessionError, match='symbolic link'):
        claim_output(out)
    assert (scans / 'scan.png').read_bytes() == b'a user file'


@pytest.mark.parametrize('content, message', [
    (b'\x00\x00\x00\x18ftypmp42\xff\xfe', 'is not readable JSON'),
    (b'[1, 2]', 'has no "frames" list'),
])
def test_a_json_file_that_is_no_transforms_is_named(tmp_path, capsys, content, message):
    path = tmp_path / 'transforms.json'
    path.write_bytes(content)
    for command in (['poses', str(path), '--out', str(tmp_path / 'p.json')],
                    ['train', str(path), '--out', str(tmp_path / 'run')]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert f'{path.name} {message}' in err and 'Traceback' not in err
