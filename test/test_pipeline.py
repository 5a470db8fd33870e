"""``head-capture reconstruct``: a synthetic phone video to an avatar and its report, resumable."""

import json
import shutil

import cv2
from head_capture.avatar import TrainingError
from head_capture.avatar.job import registered_keyframes
from head_capture.avatar.training_config import load_avatar_config
from head_capture.camera import Intrinsics
from head_capture.capture.head_volume import HeadVolume, META_KEY as HEAD_VOLUME
from head_capture.capture.sources import open_source
from head_capture.cli import main
from head_capture.geometry import c2w_opengl_to_w2c
from head_capture.landmarks.detector import LandmarkDetector
from head_capture.landmarks.template import HeadTemplate
from head_capture.pipeline import extract_keyframes, register_session
from head_capture.pose_evaluation import evaluate
from head_capture.session import FrameRecord, read_transforms, Transforms, write_transforms
from head_capture.video_writer import write_video
import numpy as np
import pytest


def test_reconstruct_runs_every_step_then_resumes_and_skips(capture, tmp_path, tiny_avatar,
                                                            capsys):
    out = tmp_path / 'out'
    command = ['reconstruct', str(capture / 'capture.mp4'), '--out', str(out), '--count', '12',
               '--size', '256', '--intrinsics', str(capture / 'ground_truth.json')]
    command += [f'--set={item}' for item in tiny_avatar.split()]
    assert main(command) == 0
    state = json.loads((out / 'reconstruction.json').read_text())
    assert set(state['steps']) == {'keyframes', 'poses', 'refine', 'avatar'}

    # Keyframes with masks and PnP poses close to the video's ground truth.
    session = read_transforms(out / 'session' / 'transforms.json')
    assert len(session.frames) == 12
    posed = [f for f in session.frames if f.c2w is not None]
    assert len(posed) >= 8 and all((out / 'session' / f.mask_path).is_file() for f in posed)
    truth = read_transforms(capture / 'ground_truth.json')
    matched = Transforms(truth.intrinsics, [
        FrameRecord(f.file_path, truth.frames[f.meta['source_index']].c2w) for f in posed])
    assert evaluate(session, matched)['rotation_deg']['mean'] < 10.0
    # The volume the masks were cut to goes with them: the avatar's fields keep within it,
    # and its turntable and mesh end at the neck.
    assert set(session.meta[HEAD_VOLUME]) == {'centre', 'semi_axes', 'neck'}

    # The avatar and its report.
    avatar = out / 'session' / 'avatar'
    assert (avatar / 'metrics.json').is_file() and (avatar / 'turntable.mp4').is_file()
    assert (out / 'report.html').stat().st_size > 10_000
    said = capsys.readouterr().err
    assert 'avatar ready' in said and 'of the view bins covered' in said
    # Twelve keyframes cannot cover 90% of the 36 view bins: the user is told before training.
    assert 'views are missing round the head' in said
    assert said.index('views are missing') < said.index('stage 1 done')

    # A re-run skips every finished step; training cut short resumes from its checkpoint.
    checkpoint = (avatar / 'checkpoint.pt').stat().st_mtime_ns
    assert main(command) == 0
    assert (avatar / 'checkpoint.pt').stat().st_mtime_ns == checkpoint
    del state['steps']['avatar']
    (out / 'reconstruction.json').write_text(json.dumps(state))
    (avatar / 'metrics.json').unlink()
    assert main(command) == 0
    events = [json.loads(line) for line in (avatar / 'events.jsonl').read_text().splitlines()]
    assert events[-1]['event'] != 'resumed' and any(e['event'] == 'resumed' for e in events)
    assert (avatar / 'metrics.json').is_file()

    # A job registered before sessions kept their head volume gets it when it goes on, so
    # the avatar it has yet to train is bounded as a new job's would be.
    transforms = read_transforms(out / 'session' / 'transforms.json')
    del transforms.meta[HEAD_VOLUME]
    write_transforms(out / 'session' / 'transforms.json', transforms)
    shutil.rmtree(avatar)
    state = json.loads((out / 'reconstruction.json').read_text())
    del state['steps']['avatar']
    (out / 'reconstruction.json').write_text(json.dumps(state))
    assert main(command) == 0
    assert 'had no head volume' in capsys.readouterr().err
    for name in ('transforms.json', 'training_transforms.json'):
        assert read_transforms(out / 'session' / name).meta[HEAD_VOLUME] == \
            session.meta[HEAD_VOLUME]

    # Another request into the same folder is refused, nothing touched.
    assert main(command[:4] + ['--count', '10'] + command[6:]) == 2
    assert 'another request' in capsys.readouterr().err


def test_reconstruct_refuses_a_bad_config_before_any_work(capture, tmp_path, capsys):
    out = tmp_path / 'out'
    assert main(['reconstruct', str(capture / 'capture.mp4'), '--out', str(out),
                 '--set', 'stage1.steps=0']) == 2
    assert 'stage1.steps' in capsys.readouterr().err
    assert not out.exists()


def test_reconstruct_says_when_the_input_is_missing(tmp_path, capsys):
    assert main(['reconstruct', str(tmp_path / 'nothing.mp4'), '--out',
                 str(tmp_path / 'out')]) == 2
    assert 'nothing.mp4' in capsys.readouterr().err


def test_a_head_far_from_the_frame_s_centre_is_kept_whole(capture, tmp_path):
    # The capture's frames pasted at the left of a canvas half as wide again: a centre square
    # would cut the head in two, as it would a portrait video framed high. Keyframes keep the
    # whole frame, and the trainer's square follows the head the poses found.
    folder = tmp_path / 'frames'
    folder.mkdir()
    with open_source(capture / 'capture.mp4') as frames:
        for frame in frames:
            canvas = np.full((360, 1000, 3), 128, np.uint8)
            canvas[:, :640] = frame.image[..., ::-1]
            cv2.imwrite(str(folder / f'{frame.index:03d}.png'), canvas)
    truth = read_transforms(capture / 'ground_truth.json')
    camera = truth.intrinsics.cropped(0, 0, 1000, 360)
    with open_source(folder, fps=10.0) as frames:
        report = extract_keyframes(frames, tmp_path / 'session', 10, 500, camera)
    session = report.session
    assert session.transforms.intrinsics.width == 500
    assert session.image(0).shape[:2] == (180, 500)
    template = HeadTemplate.load()
    registered = register_session(session, LandmarkDetector(), template)
    assert registered >= 8
    posed = [f for f in session.frames if f.c2w is not None]
    matched = Transforms(truth.intrinsics, [
        FrameRecord(f.file_path, truth.frames[f.meta['source_index']].c2w) for f in posed])
    assert evaluate(session.transforms, matched)['rotation_deg']['mean'] < 10.0
    # The square the avatar trains on lies in the canvas's left part, where the head is.
    rotations, translations = c2w_opengl_to_w2c(np.stack([f.c2w for f in posed]))
    volume = HeadVolume.from_meta(session.transforms.meta[HEAD_VOLUME])
    x0, _, side = volume.square_window(session.transforms.intrinsics, rotations, translations)
    assert x0 + side <= 330 and side >= 120


def test_too_few_registered_keyframes_are_refused_with_the_reasons(tmp_path):
    posed = [FrameRecord(f'{i}.png', np.eye(4)) for i in range(2)]
    refused = [FrameRecord(f'r{i}.png', meta={'unregistered': 'no head found'}) for i in range(3)]
    write_transforms(tmp_path / 'transforms.json',
                     Transforms(Intrinsics.from_fov(64, 48, 60.0), posed + refused))
    with pytest.raises(TrainingError, match=r'2 registered .* at least 8 .*3 x no head found'):
        registered_keyframes(tmp_path, 8)
    assert len(registered_keyframes(tmp_path, 2).frames) == 2


def test_reconstruct_refuses_to_resume_another_request_and_names_what_changed(
        tmp_path, sample_clip, capsys):
    video, out = tmp_path / 'clip.mp4', tmp_path / 'out'
    write_video(video, sample_clip.frames, sample_clip.fps)
    command = ['reconstruct', str(video), '--out', str(out), '--count', '3', '--size', '32']
    # Three keyframes are too few to train: the job stops there, its steps so far recorded.
    assert main(command + ['--fov', '60']) == 2
    assert 'at least 8' in capsys.readouterr().err
    assert set(json.loads((out / 'reconstruction.json').read_text())['steps']) == \
        {'keyframes', 'poses', 'refine'}
    recorded = (out / 'reconstruction.json').read_bytes()

    params = tmp_path / 'params.yaml'
    params.write_text('keyframe_selector:\n  ros__parameters:\n    min_interval_s: 0.5\n')
    write_transforms(tmp_path / 'camera.json', Transforms(Intrinsics.from_fov(240, 160, 50.0)))
    rays = load_avatar_config('cpu_preview').sampling.rays
    for options, change in [
            (['--fov', '70'], '--fov: 60 -> 70'),
            (['--intrinsics', str(tmp_path / 'camera.json')], '--intrinsics: none -> {fx '),
            (['--fov', '60', '--params', str(params)],
             '--params keyframe_selector.min_interval_s: 0.25 -> 0.5'),
            (['--fov', '60', '--set', 'sampling.rays=64'],
             f'--config/--set sampling.rays: {rays} -> 64')]:
        assert main(command + options) == 2
        said = capsys.readouterr().err
        assert 'holds a reconstruction of another request' in said and change in said, said
    # The same path with other content (a new recording saved over the old one).
    write_video(video, sample_clip.frames[::-1], sample_clip.fps)
    assert main(command + ['--fov', '60']) == 2
    assert 'input content: ' in capsys.readouterr().err
    assert (out / 'reconstruction.json').read_bytes() == recorded
    # A folder that holds other files and no reconstruction is not taken over.
    (tmp_path / 'mine').mkdir()
    (tmp_path / 'mine' / 'notes.txt').write_text('mine')
    assert main(command[:3] + [str(tmp_path / 'mine')] + command[4:]) == 2
    assert 'holds files but no reconstruction' in capsys.readouterr().err


def test_a_registered_session_is_laid_out_as_nerfstudio_reads_it(capture, tmp_path, rng):
    # nerfstudio's dataparser reads a transform_matrix for every entry of "frames", and a
    # mask_path for all or none; a mask's 0 is "ignore". Frames without a pose are listed apart.
    from head_capture.session import MASK_UNSURE, Session

    with open_source(capture / 'capture.mp4') as frames:
        heads = [f.image for f in frames][:30:6]
    noise = [rng.integers(0, 256, heads[0].shape, dtype=np.uint8) for _ in range(2)]
    session = Session.create(tmp_path / 'session', read_transforms(
        capture / 'ground_truth.json').intrinsics)
    for image in heads[:2] + noise + heads[2:]:  # no head in the middle two
        session.add_frame(image)
    template = HeadTemplate.load()
    registered = register_session(session, LandmarkDetector(), template)
    assert registered >= 3

    root = tmp_path / 'session'
    data = json.loads((root / 'transforms.json').read_text())
    assert len(data['frames']) == registered
    assert all('transform_matrix' in f and (root / f['mask_path']).is_file()
               for f in data['frames'])
    unposed = data['unregistered_frames']
    assert len(unposed) == len(heads) + len(noise) - registered
    assert {'frames/000002.png', 'frames/000003.png'} <= {f['file_path'] for f in unposed}
    assert not any('transform_matrix' in f for f in unposed)
    for frame in data['frames']:
        # nerfstudio trains where the mask is not 0: the sure head; its trimap keeps the rest.
        mask = cv2.imread(str(root / frame['mask_path']), cv2.IMREAD_UNCHANGED)
        trimap = cv2.imread(str(root / frame['trimap_path']), cv2.IMREAD_UNCHANGED)
        assert mask.ndim == 2 and set(np.unique(mask)) <= {0, 255}
        assert np.array_equal(mask == 255, trimap == 255) and (mask == 255).any()
        assert set(np.unique(trimap)) <= {0, MASK_UNSURE, 255}

    # Read back, every frame is there again in its place; the trainer gets the posed ones and
    # their trimaps.
    again = read_transforms(root / 'transforms.json')
    listed = [f'frames/{n:06d}.png' for n in range(len(heads) + len(noise))]
    assert [f.file_path for f in again.frames] == listed
    training = registered_keyframes(root, 2)
    assert len(training.frames) == registered
    assert all(f.training_mask.startswith('trimaps/') for f in training.frames)


def test_a_finished_avatar_s_result_lists_every_file_of_its_run(tmp_path):
    from head_capture.avatar.job import TrainingJob

    job = TrainingJob(tmp_path)
    job.out = tmp_path / 'avatar'
    for name in ('metrics.json', 'avatar.ply', 'checkpoint.pt', 'events.jsonl',
                 'held_out/v05.png'):
        (job.out / name).parent.mkdir(parents=True, exist_ok=True)
        (job.out / name).write_text('{"held_out_psnr": 20.0}')
    result = job.result()
    assert result['metrics'] == {'held_out_psnr': 20.0}
    assert result['files']['held_out/v05.png'] == str(job.out / 'held_out' / 'v05.png')
    assert sorted(result['files']) == ['avatar.ply', 'checkpoint.pt', 'events.jsonl',
                                       'held_out/v05.png', 'metrics.json']
