"""
Bad input, as a hostile but ordinary user gives it, against the command line and the graph.

Issue 39's matrix: every case makes its input in a folder of its own beside a user's files
(``notes.txt``, photos, earlier results), runs ``head-capture ...`` in a subprocess and records
the exit code, the last line on stderr, and every file that was there before and is now gone
or changed (hashed before and after; only what a case hands over with ``--overwrite`` may
change). A case is ``ok`` when the exit code is the one wanted, the message says what it
should, no traceback was printed and no file was lost.

    python bench/bad_inputs.py --out bench/results/bad_inputs.json [--only TEXT] [--no-graph]

Exit status 1 when a case fails. Each case takes seconds; the three graph cases (``up``) about
half a minute each on 2 cores.
"""

import argparse
from dataclasses import dataclass, field
import hashlib
import json
import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import save  # noqa: E402
import cv2  # noqa: E402
from head_capture.memory import descendants  # noqa: E402
import numpy as np  # noqa: E402

# Avatar settings that train in seconds (a smoke run, not an avatar).
QUICK_TRAINING = ['--set=stage1.steps=2', '--set=stage2.steps=0',
                  '--set=outputs.test_pose_steps=0', '--set=outputs.turntable_frames=0',
                  '--set=outputs.mesh_views=0', '--set=data.image_size=0']
USER_NOTE = b'a note the user keeps here\n'


class Unavailable(Exception):
    """The case cannot be made on this machine (a package or a data set is missing)."""


@dataclass
class Case:
    """One bad input: how to make it, what the command should answer, what it may replace."""

    name: str
    item: str  # issue 39's item
    make: object  # (folder) -> the command's arguments; may run setup commands
    codes: tuple = (2,)  # exit codes that are right
    says: str = ''  # text the last line on stderr must hold (the reason comes last)
    anywhere: bool = False  # ``says`` may be on any line (a warning before a summary)
    never: tuple = ('Errno', 'codec')  # text the last line must not hold
    replaceable: tuple = ()  # paths (relative) the command is allowed to change
    check: object = None  # (folder, result) -> a problem, or None
    timeout_s: float = 120.0
    terminate_after_s: float = None  # send SIGTERM after this long (a run meant to be stopped)
    graph: bool = False


@dataclass
class Result:
    """What one run of the command did."""

    code: object
    stderr: str
    seconds: float
    left_running: list = field(default_factory=list)

    @property
    def message(self):
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else ''


def environment():
    """Return the environment of every command: this checkout first, ROS on this machine."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get('PYTHONPATH')) if p)
    return dict(os.environ, PYTHONPATH=path, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
                ROS_DOMAIN_ID=os.environ.get('ROS_DOMAIN_ID', str(60 + os.getpid() % 40)))


def run_command(args, folder, timeout_s=120.0, terminate_after_s=None):
    """Run ``head-capture ARGS`` in ``folder``; return its Result (code 'timeout' if killed)."""
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, '-m', 'head_capture.cli', *map(str, args)],
                               cwd=folder, env=environment(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    below = []
    try:
        if terminate_after_s is not None:
            try:
                stderr = process.communicate(timeout=terminate_after_s)[1]
            except subprocess.TimeoutExpired:
                below = descendants(process.pid)
                process.send_signal(signal.SIGTERM)  # as kill, docker stop and systemd do
        stderr = process.communicate(timeout=timeout_s)[1]
        code = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stderr, code = process.communicate()[1], 'timeout'
    left = [pid for pid in below if _alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return Result(code, stderr, round(time.monotonic() - started, 1), left)


def _alive(pid):
    try:
        state = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != 'Z'


def setup(args, folder, codes=(0,)):
    """Run a command a case builds on; stop the case when it does not end as wanted."""
    result = run_command(args, folder)
    if result.code not in codes:
        raise RuntimeError(f'setup `head-capture {" ".join(map(str, args))}` exited '
                           f'{result.code}: {result.message}')


def fingerprints(folder, replaceable=()):
    """Hash every file under ``folder`` (links not followed) but those it may replace."""
    found = {}
    for path in sorted(Path(folder).rglob('*')):
        relative = path.relative_to(folder).as_posix()
        if any(relative == r or relative.startswith(r.rstrip('/') + '/') for r in replaceable):
            continue
        if path.is_file() and not path.is_symlink():
            found[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


# ---- inputs --------------------------------------------------------------------------------

def sample_video(path, seed=3, frames=45):
    """Write the built-in sample clip (a textured pan, no head) as a video; return its path."""
    from head_capture.video_writer import write_video
    from head_capture.synth.sample_clip import make_sample_clip

    sample = make_sample_clip(frames=frames, size=(240, 160), blur_share=0.3, seed=seed)
    write_video(path, sample.frames, sample.fps)
    return path


def noise_images(folder, count=3, seed=0):
    """Write ``count`` images with no head in them; return the folder."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        cv2.imwrite(str(folder / f'{n}.png'), rng.integers(0, 256, (48, 64, 3), np.uint8))
    return folder


def ball_scene(folder, distance, radius, count=12, size=16):
    """Write segmented views of a ball at the origin from cameras ``distance`` off."""
    from head_capture.camera import Intrinsics
    from head_capture.geometry import look_at_w2c, w2c_to_c2w_opengl
    from head_capture.session import FrameRecord, Transforms, write_transforms

    folder.mkdir(parents=True, exist_ok=True)
    camera = Intrinsics.from_fov(size, size, 40.0)
    u, v = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32))
    frames = []
    for n in range(count):
        azimuth, elevation = 2 * np.pi * n / count, np.radians(25 * np.sin(n))
        centre = distance * np.array([np.cos(elevation) * np.cos(azimuth),
                                      np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])
        rotation, translation = look_at_w2c(centre, np.zeros(3))
        rays = camera.rays(u, v) @ rotation.astype(np.float32)
        rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
        image = np.full((size, size, 4), 200, np.uint8)
        image[..., 3] = np.where(np.linalg.norm(np.cross(rays, -centre), axis=-1) < radius,
                                 255, 0)
        cv2.imwrite(str(folder / f'v{n:02d}.png'), image)
        frames.append(FrameRecord(f'v{n:02d}.png', w2c_to_c2w_opengl(rotation, translation)))
    write_transforms(folder / 'transforms.json', Transforms(camera, frames))
    return folder / 'transforms.json'


def stand_in_model(path, image_type='UINT8', outputs=None, log_sigma=0.0, size=64):
    """
    Write an ONNX model shaped as the landmark network, with constant outputs, or broken.

    ``image_type`` is its input's element type, ``outputs`` the outputs it has (all four by
    default), ``log_sigma`` every landmark's log sigma (NaN: a network gone bad).
    """
    try:
        import onnx
        from onnx import helper, TensorProto
    except ImportError:
        raise Unavailable('the onnx package is not installed') from None
    from head_capture.landmarks.template import LANDMARK_COUNT

    count, floats = LANDMARK_COUNT, TensorProto.FLOAT
    angles = np.linspace(0, 2 * np.pi, count, endpoint=False)
    values = {'landmarks': size / 2 + size / 4 * np.stack([np.cos(angles), np.sin(angles)], 1),
              'log_sigma': np.full(count, log_sigma), 'visibility_logit': np.full(count, 2.0),
              'mask_logit': np.full((1, size // 4, size // 4), 3.0)}
    # Every output is its value plus 0 x the image's mean, so it has the batch's size.
    nodes = [helper.make_node('Cast', ['image'], ['pixels'], to=floats),
             helper.make_node('ReduceMean', ['pixels'], ['mean'], axes=[1, 2, 3]),
             helper.make_node('Mul', ['mean', 'zero'], ['nothing'])]
    constants = [helper.make_tensor('zero', floats, [], [0.0])]
    results = []
    for name in outputs or list(values):
        value = values[name][None]
        nodes += [helper.make_node('Reshape', ['nothing', f'{name}_rank'], [f'{name}_zero']),
                  helper.make_node('Add', [f'{name}_zero', f'{name}_value'], [name])]
        constants += [helper.make_tensor(f'{name}_rank', TensorProto.INT64, [value.ndim],
                                         [-1] + [1] * (value.ndim - 1)),
                      helper.make_tensor(f'{name}_value', floats, value.shape,
                                         value.ravel().tolist())]
        results.append(helper.make_tensor_value_info(name, floats,
                                                     ['batch', *value.shape[1:]]))
    image = helper.make_tensor_value_info('image', getattr(TensorProto, image_type),
                                          ['batch', size, size, 3])
    model = helper.make_model(helper.make_graph(nodes, 'stand_in', [image], results, constants),
                              opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    model.metadata_props.add(key='model_config',
                             value=json.dumps({'input_size': size, 'landmarks': count}))
    onnx.save(model, str(path))
    return path


def needs_ros():
    """Refuse a graph case where ROS 2 (rclpy) is not importable."""
    try:
        import rclpy  # noqa: F401
    except ImportError:
        raise Unavailable('ROS 2 (rclpy) is not installed') from None


# ---- the cases -----------------------------------------------------------------------------

def _up_short_source(*extra):
    def make(folder):
        needs_ros()
        short = sample_video(folder / 'short.mp4')
        return ['up', *extra, '--until', 'avatar', '--source', short, '--session', 'session',
                '--timeout', '150']
    return make


def _up_stopped(folder):
    needs_ros()
    return ['up', '--session', 'session']


def _demo_foreign(folder):
    (folder / 'out' / 'session').mkdir(parents=True)
    (folder / 'out' / 'session' / 'my_scan.png').write_bytes(b'a user scan')
    (folder / 'out' / 'notes.txt').write_bytes(USER_NOTE)
    return ['demo', '--out', 'out']


def _nothing_new_in(relative):
    def check(folder, result):
        made = sorted(p.name for p in (folder / relative).iterdir())
        return None if made == ['notes.txt', 'session'] else f'the demo wrote {made}'
    return check


def _reconstruct_then(change):
    def make(folder):
        sample_video(folder / 'clip.mp4')
        base = ['reconstruct', 'clip.mp4', '--out', 'rec', '--count', '4', '--size', '64']
        # No head in the clip: the first run stops at training, its request recorded.
        setup(base + ['--fov', '60'], folder, codes=(2,))
        return base + change(folder)
    return make


def _new_content(folder):
    sample_video(folder / 'clip.mp4', seed=4)
    return ['--fov', '60']


def _keyframes_through_link(folder):
    sample_video(folder / 'clip.mp4')
    base = ['keyframes', 'clip.mp4', '--out', 'session', '--count', '3', '--size', '32']
    setup(base, folder)
    photos = folder / 'photos'
    photos.mkdir()
    (photos / 'holiday.png').write_bytes(b'a user photo')
    for frame in (folder / 'session' / 'frames').iterdir():
        frame.unlink()
    (folder / 'session' / 'frames').rmdir()
    (folder / 'session' / 'frames').symlink_to(photos)
    return base + ['--overwrite']


def _poses_elsewhere(folder):
    noise_images(folder / 'images')
    return ['poses', 'images', '--out', 'elsewhere/poses.json', '--fov', '60']


def _paths_resolve(folder, result):
    out = folder / 'elsewhere' / 'poses.json'
    if not out.is_file():
        return 'no poses.json'
    written = json.loads(out.read_text())
    paths = [f['file_path'] for f in written.get('frames', [])] + [
        m['file_path'] for m in written.get('head_capture', {}).get('unregistered', [])]
    broken = [p for p in paths if not (out.parent / p).is_file()]
    return f'paths that do not resolve: {broken}' if broken or not paths else None


def _poses_again(*extra):
    def make(folder):
        noise_images(folder / 'images')
        command = ['poses', 'images', '--out', 'images/transforms.json', '--fov', '60']
        setup(command, folder)
        return command + list(extra)
    return make


def _model(**broken):
    def make(folder):
        noise_images(folder / 'images', count=1)
        stand_in_model(folder / 'model.onnx', **broken)
        return ['landmarks', 'images', '--out', 'out', '--model', 'model.onnx']
    return make


def _train_resume_other(folder):
    scene = ball_scene(folder / 'scene', 0.6, 0.12)
    setup(['train', scene, '--out', 'run', *QUICK_TRAINING], folder)
    views = json.loads(scene.read_text())
    views['frames'] = views['frames'][:6]
    (scene.parent / 'other.json').write_text(json.dumps(views))
    return ['train', 'scene/other.json', '--out', 'run', '--resume', *QUICK_TRAINING]


def _landmarks_unreadable(folder):
    noise_images(folder / 'images', count=2)
    (folder / 'images' / 'broken.png').write_bytes(b'not a png')
    return ['landmarks', 'images', '--out', 'out']


def _corrupt_video(folder):
    data = bytearray(sample_video(folder / 'source.mp4').read_bytes())
    rng = np.random.default_rng(1)
    for start in np.linspace(len(data) * 0.4, len(data) * 0.7, 4).astype(int):
        data[start:start + 512] = rng.integers(0, 256, 512, np.uint8).tobytes()
    (folder / 'corrupt.mp4').write_bytes(bytes(data))
    (folder / 'source.mp4').unlink()
    return ['keyframes', 'corrupt.mp4', '--out', 'session', '--count', '5', '--size', '32',
            '--fov', '60']


def _corrupt_counted(folder, result):
    counted = re.search(r'\((\d+) corrupt skipped', result.stderr)
    return None if counted and int(counted[1]) > 0 else 'no corrupt frame counted'


def _truncated_video(folder):
    data = sample_video(folder / 'source.mp4').read_bytes()
    (folder / 'cut.mp4').write_bytes(data[:len(data) // 2])
    (folder / 'source.mp4').unlink()
    return ['keyframes', 'cut.mp4', '--out', 'session', '--count', '5', '--size', '32',
            '--fov', '60']


def _with(make_input, *args):
    """Make an input with ``make_input(folder)`` (None: nothing to make), then run ``args``."""
    def make(folder):
        if make_input is not None:
            make_input(folder)
        return list(args)
    return make


def _text_as_video(folder):
    (folder / 'notes.mp4').write_bytes(USER_NOTE)


def _empty_folder(folder):
    (folder / 'empty').mkdir()


def _clip_and_images(folder):
    sample_video(folder / 'clip.mp4')
    noise_images(folder / 'images')


def _unregistered_poses(folder):
    noise_images(folder / 'images')
    setup(['poses', 'images', '--out', 'poses.json', '--fov', '60'], folder)


def _scene_and_folder(folder):
    ball_scene(folder / 'scene', 0.6, 0.12)
    (folder / 'a_folder').mkdir()


CASES = [
    # 1: up --until avatar exits non-zero without an avatar; SIGTERM stops the graph.
    Case('up --until avatar, source too short to register', '1', _up_short_source(),
         codes=(1,), says='no avatar:', replaceable=('session',), timeout_s=240, graph=True),
    Case('up --one-process --until avatar, source too short', '1',
         _up_short_source('--one-process'), codes=(1,), says='no avatar:',
         replaceable=('session',), timeout_s=240, graph=True),
    Case('up stopped by SIGTERM (kill PID)', '1', _up_stopped, codes=(0,),
         replaceable=('session',), terminate_after_s=12.0, timeout_s=60, graph=True),
    Case('up --source a missing file', '1', _with(None, 'up', '--source', 'missing.mp4'),
         says='missing.mp4'),
    # 2: the demo never deletes what it did not write.
    Case('demo --out a non-empty folder it did not make', '2', _demo_foreign,
         says='holds files a demo did not write', check=_nothing_new_in('out')),
    # 3: a changed request is refused, not answered with the old avatar.
    Case('reconstruct resumed with another --fov', '3',
         _reconstruct_then(lambda folder: ['--fov', '50']), says='--fov: 60 -> 50'),
    Case('reconstruct resumed, same path, new content', '3', _reconstruct_then(_new_content),
         says='input content'),
    # 4: nothing is deleted through a link.
    Case('keyframes --overwrite, frames/ a link to photos', '4', _keyframes_through_link,
         says='symbolic link', replaceable=('session',)),
    # 5: poses output.
    Case('poses --out outside the image folder', '5', _poses_elsewhere, codes=(0,),
         check=_paths_resolve, replaceable=('elsewhere',)),
    Case('poses --out an existing file, no --overwrite', '5', _poses_again(),
         says='pass --overwrite'),
    Case('poses --out inside the image folder, rerun', '5', _poses_again('--overwrite'),
         codes=(0,), says='0 of 3 frames registered', anywhere=True,
         replaceable=('images/transforms.json',)),
    # 6: one line for a bad model, a resume on other data, a video for a transforms file.
    Case('landmarks --model with a float input', '6', _model(image_type='FLOAT'),
         says='image'),
    Case('landmarks --model without mask_logit', '6',
         _model(outputs=['landmarks', 'log_sigma', 'visibility_logit']), says='mask_logit'),
    Case('landmarks --model with non-finite sigmas', '6', _model(log_sigma=float('nan')),
         codes=(0,), replaceable=('out',)),
    Case('landmarks --model a missing file', '6',
         _with(lambda folder: noise_images(folder / 'images'), 'landmarks', 'images', '--out',
               'out', '--model', 'missing.onnx'), says='not found'),
    Case('train OTHER.json --out RUN --resume', '6', _train_resume_other),
    Case('poses good.mp4', '6', _with(_clip_and_images, 'poses', 'clip.mp4', '--out', 'p.json')),
    Case('train good.mp4', '6', _with(_clip_and_images, 'train', 'clip.mp4', '--out', 'run')),
    # 7: an unreadable image is skipped, counted and named.
    Case('landmarks with an unreadable image', '7', _landmarks_unreadable, codes=(0,),
         says='broken.png: unreadable image', anywhere=True, replaceable=('out',)),
    # 9: a scene that is not head-sized is fitted with bounds, or refused with them.
    Case('train a far-away scene (cameras 4 units off)', '9',
         _with(lambda folder: ball_scene(folder / 'far', 4.0, 1.2), 'train', 'far', '--out',
               'run', *QUICK_TRAINING), codes=(0, 2), says='scene.radius', anywhere=True,
         replaceable=('run',)),
    # 10 and the rest: outputs that are files, unreadable sources.
    Case('keyframes --out a file', '10', _with(_clip_and_images, 'keyframes', 'clip.mp4',
                                               '--out', 'notes.txt'), says='is a file'),
    Case('reconstruct --out a file', '10', _with(_clip_and_images, 'reconstruct', 'clip.mp4',
                                                 '--out', 'notes.txt'), says='is a file'),
    Case('landmarks --out a file', '10', _with(_clip_and_images, 'landmarks', 'images',
                                               '--out', 'notes.txt'), says='is a file'),
    Case('synth landmarks --out a file', '10',
         _with(None, 'synth', 'landmarks', '--out', 'notes.txt', '--count', '1'),
         says='is a file'),
    Case('synth capture --out a file', '10',
         _with(None, 'synth', 'capture', '--out', 'notes.txt', '--seconds', '0.1'),
         says='is a file'),
    Case('evaluate-poses --out a folder', '10',
         _with(_scene_and_folder, 'evaluate-poses', 'scene/transforms.json',
               'scene/transforms.json', '--out', 'a_folder'), says='a_folder'),
    Case('evaluate-poses, no frame registered', '10',
         _with(_unregistered_poses, 'evaluate-poses', 'poses.json', 'poses.json'),
         says='poses.json', never=('Errno', 'einstein')),
    Case('keyframes from a video with corrupt frames', '10', _corrupt_video, codes=(0,),
         check=_corrupt_counted, replaceable=('session',)),
    Case('keyframes from a video that ends early', '10', _truncated_video, codes=(0,),
         says='warning', anywhere=True, replaceable=('session',)),
    Case('keyframes from a text file named .mp4', '10',
         _with(_text_as_video, 'keyframes', 'notes.mp4', '--out', 'session'),
         says='notes.mp4'),
    Case('keyframes from an empty folder', '10',
         _with(_empty_folder, 'keyframes', 'empty', '--out', 'session'), says='empty'),
    Case('landmarks on a folder without images', '10',
         _with(_empty_folder, 'landmarks', 'empty', '--out', 'out'), says='no images'),
]


def run_case(case, root):
    """Make the case's input, run it, and judge it; return its row."""
    folder = root / ''.join(c if c.isalnum() else '_' for c in case.name)[:60]
    folder.mkdir()
    (folder / 'notes.txt').write_bytes(USER_NOTE)
    row = {'case': case.name, 'item': case.item}
    try:
        args = case.make(folder)
    except Unavailable as exc:
        return {**row, 'verdict': f'not available: {exc}'}
    except Exception as exc:  # a setup command that failed: the case says so, the run goes on
        return {**row, 'verdict': 'FAIL', 'problems': [f'setup: {exc}']}
    before = fingerprints(folder, case.replaceable)
    result = run_command(args, folder, case.timeout_s, case.terminate_after_s)
    after = fingerprints(folder, case.replaceable)
    lost = sorted(set(before) - set(after))
    changed = sorted(name for name in set(before) & set(after) if before[name] != after[name])
    problems = []
    if result.code not in case.codes:
        problems.append(f'exit {result.code}, wanted {" or ".join(map(str, case.codes))}')
    if 'Traceback' in result.stderr:
        problems.append('a traceback')
    if case.says and case.says not in (result.stderr if case.anywhere else result.message):
        problems.append(f'does not say "{case.says}"' + ('' if case.anywhere else ' last'))
    problems += [f'says "{text}"' for text in case.never if text in result.message]
    if lost or changed:
        problems.append('user files lost or changed')
    if result.left_running:
        problems.append(f'{len(result.left_running)} processes left running')
    if case.check is not None and result.code != 'timeout':
        problem = case.check(folder, result)
        if problem:
            problems.append(problem)
    verdict = 'ok' if not problems else 'FAIL'
    files = 'none' if not (lost or changed) else '; '.join(
        part for part in (f'lost {", ".join(lost)}' if lost else '',
                          f'changed {", ".join(changed)}' if changed else '') if part)
    return {**row, 'command': 'head-capture ' + ' '.join(map(str, args)), 'exit': result.code,
            'message': result.message, 'files_lost': files, 'seconds': result.seconds,
            'verdict': verdict, 'problems': problems}


def print_table(rows):
    """Print the rows as a table (rich when it is there)."""
    columns = ('case', 'item', 'exit', 'message', 'files_lost', 'verdict')
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        for row in rows:
            print(' | '.join(str(row.get(c, '')) for c in columns))
        return
    table = Table(*('files lost' if c == 'files_lost' else c for c in columns),
                  title='head-capture against bad input (issue 39)', show_lines=True)
    for row in rows:
        verdict = row['verdict']
        style = 'green' if verdict == 'ok' else 'yellow' if verdict.startswith('not') else 'red'
        problems = '; '.join(row.get('problems', []))
        table.add_row(*(str(row.get(c, '')) for c in columns[:-1]),
                      f'[{style}]{verdict}[/]' + (f'\n{problems}' if problems else ''))
    Console(width=200).print(table)


def main():
    """Run the cases, print the table, write the JSON; exit 1 when a case failed."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', type=Path, default=ROOT / 'bench' / 'results' /
                        'bad_inputs.json')
    parser.add_argument('--only', help='run the cases whose name holds this text')
    parser.add_argument('--no-graph', action='store_true',
                        help='leave out the cases that start the ROS graph (up)')
    args = parser.parse_args()
    cases = [c for c in CASES if (args.only is None or args.only in c.name)
             and not (args.no_graph and c.graph)]
    rows = []
    with tempfile.TemporaryDirectory(prefix='bad_inputs_') as root:
        for case in cases:
            rows.append(run_case(case, Path(root)))
            print(f'{rows[-1]["verdict"][:40]:40s} {case.name}', flush=True)
    print_table(rows)
    failed = [row['case'] for row in rows if row['verdict'] == 'FAIL']
    save(args.out, {'cases': rows, 'failed': failed})
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
