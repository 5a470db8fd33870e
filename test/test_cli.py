"""The ``head-capture`` command line, run in-process as a user would call it."""


from head_capture.cli import main
from head_capture.session import read_transforms
from head_capture.synth.recordings import write_video
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
    assert message in capsys.readouterr().err


def test_an_existing_session_needs_overwrite(tmp_path, clip_video, capsys):
    out = str(tmp_path / 's')
    base = ['keyframes', str(clip_video), '--out', out, '--count', '3', '--size', '32']
    assert main(base) == 0
    assert main(base) == 2
    assert 'already holds a session' in capsys.readouterr().err
    assert main(base + ['--overwrite']) == 0


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
