"""``head-capture``: the command line of the offline tools."""

import argparse
from contextlib import contextmanager
import json
from pathlib import Path
import re
import sys
import time

from head_capture.avatar import TrainingError
from head_capture.camera import DEFAULT_FOV_DEG, FOV_RANGE_DEG
from head_capture.capture.keyframes import KeyframeConfig
from head_capture.capture.sources import is_url, open_source, SourceError
from head_capture.config_files import ConfigError, parse_overrides
from head_capture.files import output_file, output_folder
from head_capture.image_buffers import reuse_image_buffers
from head_capture.landmarks.detector import ModelError
from head_capture.node_graph import load_node_config
from head_capture.session import read_transforms, SessionError
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

console = Console(stderr=True, soft_wrap=True)
# Errors a user can fix (bad path, bad config, unreadable input): one clear line, exit 2.
USER_ERRORS = (SourceError, ConfigError, SessionError, ModelError, TrainingError, ValueError,
               OSError)
# The name of a landmark overlay: IMAGE_STEM + this.
OVERLAY_SUFFIX = '_landmarks.png'


def _within(kind, low, high=float('inf'), above=False):
    """
    Return an argparse type: a ``kind`` in [low, high] (``above``: low itself excluded).

    Numbers are checked where they come in, so a zero field of view or an 8-pixel keyframe
    is refused with the range named instead of failing (or being quietly replaced) later.
    """
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'not {"an integer" if kind is int else "a number"}'
                                             f': {text!r}') from None
        if not (low < value if above else low <= value) or value > high:
            bounds = f'{"above" if above else "at least"} {low:g}'
            raise argparse.ArgumentTypeError(
                f'{value:g} is out of range: must be {bounds}'
                + (f' and at most {high:g}' if high < float('inf') else ''))
        return value

    parse.__name__ = kind.__name__
    return parse


POSITIVE = _within(int, 1)
NON_NEGATIVE = _within(int, 0)
SECONDS = _within(float, 0.0, above=True)
FOV_DEG = _within(float, *FOV_RANGE_DEG)  # its ends are left to Intrinsics.from_fov


def main(argv=None):
    """Run the ``head-capture`` command line."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help, or an argument refused: argparse has said which
        return exc.code
    reuse_image_buffers()
    try:
        return args.run(args)
    except USER_ERRORS as exc:
        console.print(f'[bold red]error:[/] {exc}')
        return 2
    except KeyboardInterrupt:
        console.print('[yellow]interrupted[/]: everything written so far is kept')
        return 130


def _parser():
    parser = argparse.ArgumentParser(
        prog='head-capture', description='360-degree head avatars from a phone video.')
    commands = parser.add_subparsers(dest='command', required=True)

    keyframes = commands.add_parser(
        'keyframes', help='pick sharp, evenly spread keyframes into a session directory')
    keyframes.add_argument('input', help='video file, image folder, rosbag2 (MCAP) or URL')
    keyframes.add_argument('--out', type=Path, required=True, help='session directory to write')
    _add_keyframe_options(keyframes)
    keyframes.add_argument('--config', type=Path, help='parameters file (default: the shipped '
                           'config/head_capture.yaml)')
    keyframes.add_argument('--overwrite', action='store_true',
                           help='replace a session already in --out')
    keyframes.set_defaults(run=_run_keyframes)

    synth = commands.add_parser('synth', help='synthetic 360-degree heads')
    synth_commands = synth.add_subparsers(dest='synth_command', required=True)
    template = synth_commands.add_parser(
        'template', help='choose the 703 template landmarks on the average head')
    template.add_argument('--out', type=Path, required=True, help='head_template.json to write')
    template.set_defaults(run=_run_synth_template)
    landmarks = synth_commands.add_parser(
        'landmarks', help='render the landmark training set (sharded, resumable)')
    landmarks.add_argument('--out', type=Path, required=True, help='directory of shards')
    landmarks.add_argument('--count', type=POSITIVE, required=True,
                           help='samples (whole shards)')
    landmarks.add_argument('--size', type=_within(int, 32), default=256,
                           help='image side in pixels')
    landmarks.add_argument('--seed', type=int, default=0)
    landmarks.add_argument('--shard-size', type=POSITIVE, default=128)
    landmarks.add_argument('--workers', type=NON_NEGATIVE, default=2,
                           help='rendering processes (0: render in this process)')
    landmarks.set_defaults(run=_run_synth_landmarks)
    sequence = synth_commands.add_parser(
        'sequence', help="avatar sequences by the paper's protocol (train + test views)")
    sequence.add_argument('--out', type=Path, required=True)
    sequence.add_argument('--subjects', type=POSITIVE, default=3)
    sequence.add_argument('--train', type=POSITIVE, default=90)
    sequence.add_argument('--test', type=NON_NEGATIVE, default=10)
    sequence.add_argument('--size', type=_within(int, 32), default=400)
    sequence.add_argument('--seed', type=int, default=0)
    sequence.set_defaults(run=_run_synth_sequence)
    capture = synth_commands.add_parser(
        'capture', help='a phone video walking three orbits round a seated synthetic head')
    capture.add_argument('--out', type=Path, required=True)
    capture.add_argument('--seconds', type=SECONDS, default=40.0)
    capture.add_argument('--fps', type=SECONDS, default=30.0)
    capture.add_argument('--size', default='1280x720', help='WIDTHxHEIGHT')
    capture.add_argument('--seed', type=int, default=0)
    capture.set_defaults(run=_run_synth_capture)
    preview = synth_commands.add_parser(
        'preview', help='contact sheet of a landmark set (or one sequence subject) with '
        'landmark overlays')
    preview.add_argument('set_dir', type=Path, help='landmark set, or a sequence subject_NN')
    preview.add_argument('--out', type=Path, required=True, help='PNG to write')
    preview.add_argument('--count', type=POSITIVE, default=64)
    preview.add_argument('--variety', type=Path,
                         help='also write histograms of views, skin tones and hair styles')
    preview.set_defaults(run=_run_synth_preview)

    landmarks = commands.add_parser(
        'landmarks', help='detect head landmarks in images: JSON + overlay PNGs')
    landmarks.add_argument('input', type=Path, help='image file or folder of images')
    landmarks.add_argument('--out', type=Path, required=True, help='output folder')
    landmarks.add_argument('--model', type=Path, help='ONNX model (default: the shipped one)')
    landmarks.add_argument('--threads', type=POSITIVE, default=2)
    landmarks.set_defaults(run=_run_landmarks)
    train = commands.add_parser(
        'train-landmarks', help='train the landmark network on landmark sets, then export ONNX')
    train.add_argument('config', type=Path, help='YAML, e.g. config/landmarks_cpu.yaml')
    train.add_argument('out', type=Path, help='run folder (resumes from its checkpoint)')
    train.add_argument('--set', action='append', dest='sets', help='landmark set (repeatable)')
    train.add_argument('--validation-set', help='held-out identities (default: last shard)')
    train.add_argument('--init-model', help='exported ONNX model to fine-tune from')
    train.add_argument('--steps', type=POSITIVE)
    train.add_argument('--device', choices=('auto', 'cpu', 'cuda'))
    train.set_defaults(run=_run_train_landmarks)

    poses = commands.add_parser(
        'poses', help='camera poses from head landmarks (RANSAC PnP) -> transforms.json')
    poses.add_argument('input', type=Path,
                       help='folder of images, or a transforms.json (or a folder holding one)')
    poses.add_argument('--out', type=Path, required=True,
                       help='transforms.json to write; images outside its folder are linked '
                       '(or copied) beside it, into OUT_STEM_images/, so its paths resolve')
    poses.add_argument('--model', type=Path, help='ONNX model (default: the shipped one)')
    camera = poses.add_mutually_exclusive_group()
    camera.add_argument('--fov', type=FOV_DEG,
                        help=f'horizontal field of view in degrees (default {DEFAULT_FOV_DEG:g})')
    camera.add_argument('--intrinsics', type=Path,
                        help='transforms.json whose camera describes the images')
    poses.add_argument('--config', type=Path,
                       help='parameters file (default: the shipped config/head_capture.yaml)')
    poses.add_argument('--threads', type=POSITIVE, default=2)
    _add_refine_option(poses)
    poses.add_argument('--overwrite', action='store_true',
                       help='replace an existing --out (and images put beside it)')
    poses.set_defaults(run=_run_poses)
    evaluate = commands.add_parser(
        'evaluate-poses', help='pose errors after Sim(3) alignment, as JSON')
    evaluate.add_argument('predicted', type=Path, help='transforms.json with estimated poses')
    evaluate.add_argument('truth', type=Path, help='transforms.json with the true poses')
    evaluate.add_argument('--out', type=Path, help='JSON to write (default: print only)')
    evaluate.set_defaults(run=_run_evaluate_poses)

    avatar = commands.add_parser(
        'train', help='train the avatar: stage 1 BARF (coarse field + poses), stage 2 NeRF')
    avatar.add_argument('data', type=Path,
                        help='transforms.json, or a folder holding transforms.json or '
                        'transforms_train.json')
    avatar.add_argument('--config', default='cpu_preview',
                        help='paper, fast, cpu_preview, or a YAML path (default cpu_preview)')
    avatar.add_argument('--out', type=Path, required=True, help='avatar directory')
    avatar.add_argument('--perturb', type=_within(float, 0.0), default=0.0,
                        help='BARF protocol: se(3) noise N(0, SIGMA^2) on the starting poses')
    avatar.add_argument('--seed', type=int, default=0)
    avatar.add_argument('--resume', action='store_true', help='continue the run in --out')
    avatar.add_argument('--refine', action='store_true',
                        help="first bundle-adjust the cameras of a session's transforms file "
                        '(frames with landmarks in the session), in place; not on --resume')
    avatar.add_argument('--set', action='append', default=[], dest='overrides',
                        metavar='GROUP.KEY=VALUE',
                        help='override one config key, e.g. stage1.steps=3000 (YAML value)')
    avatar.set_defaults(run=_run_train_avatar)

    scores = commands.add_parser(
        'evaluate', help="a trained avatar's PSNR/SSIM on held-out views and its pose errors")
    scores.add_argument('avatar', type=Path, help='avatar directory (written by train)')
    scores.add_argument('--test', type=Path,
                        help="transforms.json of test views (default: the run's held-out views)")
    scores.add_argument('--pose-steps', type=NON_NEGATIVE, default=100,
                        help='test-time pose optimisation steps per view (0: none)')
    scores.add_argument('--out', type=Path, help='JSON to write (default AVATAR/evaluation.json)')
    scores.set_defaults(run=_run_evaluate_avatar)

    whole = commands.add_parser(
        'reconstruct', help='the whole job offline: keyframes, poses, avatar, report '
        '(re-run to resume)')
    whole.add_argument('input', help='video file, image folder, rosbag2 (MCAP) or URL')
    whole.add_argument('--out', type=Path, required=True, help='output folder')
    whole.add_argument('--config', default='cpu_preview',
                       help='avatar config: paper, fast, cpu_preview or a YAML path')
    whole.add_argument('--set', action='append', default=[], dest='overrides',
                       metavar='GROUP.KEY=VALUE',
                       help='override one avatar config key, e.g. stage1.steps=3000 (YAML value)')
    _add_keyframe_options(whole)
    whole.add_argument('--params', type=Path,
                       help='parameters file (default: the shipped config/head_capture.yaml)')
    _add_refine_option(whole)
    whole.set_defaults(run=_run_reconstruct)

    up = commands.add_parser(
        'up', help='run the live capture graph from pip (one process per node)')
    up.add_argument('--source', help='stream this in: video, image folder, MCAP bag or URL '
                    '(default: images arrive on a ROS topic)')
    up.add_argument('--image-topic', help='raw image topic (default camera/image_raw, under '
                    'the namespace)')
    up.add_argument('--namespace', default='',
                    help='run the nodes under this ROS namespace: topics, services and '
                    'parameter sections become /NS/... (default: the root)')
    up.add_argument('--compressed', action='store_true', default=None,
                    help='subscribe to IMAGE_TOPIC/compressed (JPEG) instead of raw images')
    up.add_argument('--session', type=Path,
                    help='session directory (default ./capture_<date>_<time>)')
    up.add_argument('--avatar-config', help='paper, fast, cpu_preview or a YAML path')
    up.add_argument('--params', type=Path,
                    help='ROS parameters file (default: the shipped config/head_capture.yaml)')
    up.add_argument('--set', action='append', default=[], dest='overrides',
                    metavar='NODE.KEY=VALUE', help='override one node parameter (YAML value)')
    up.add_argument('--foxglove', action='store_true',
                    help='serve the live view to Foxglove on ws://localhost:8765 (no rviz needed)')
    up.add_argument('--until', choices=('forever', 'avatar'), default='forever',
                    help='stop when the avatar is published (or training fails); a source '
                    'that ends before the coverage target starts training on the keyframes '
                    'there are; exits 0 only with an avatar, else non-zero with the reason '
                    'last on stderr')
    up.add_argument('--timeout', type=SECONDS, help='stop after this many seconds')
    up.add_argument('--one-process', action='store_true',
                    help='run every node in this process (one multithreaded executor)')
    up.set_defaults(run=_run_up)

    record = commands.add_parser(
        'record', help='record the camera topics to a rosbag2 MCAP bag (replay: up --source)')
    record.add_argument('bag', type=Path, help='new bag directory (rosbag2 layout, MCAP)')
    record.add_argument('--image-topic', default='/camera/image_raw')
    record.add_argument('--compressed', action='store_true',
                        help='record IMAGE_TOPIC/compressed instead of raw images')
    record.add_argument('--seconds', type=SECONDS, help='stop after this long')
    record.add_argument('--frames', type=POSITIVE, help='stop after this many images')
    record.set_defaults(run=_run_record)

    demo = commands.add_parser(
        'demo', help='the built-in synthetic capture through the live graph to an avatar and '
        'its report')
    demo.add_argument('--out', type=Path, default=Path('demo_out'), help='output directory')
    demo.add_argument('--overwrite', action='store_true',
                      help='use an --out that holds other files: its session/ is replaced')
    demo.set_defaults(run=_run_demo)
    return parser


def _add_keyframe_options(parser):
    """How many keyframes, their size, and the source camera: keyframes and reconstruct."""
    parser.add_argument('--count', type=POSITIVE, default=100, help='keyframes to keep (100)')
    parser.add_argument('--size', type=_within(int, 32), default=1280,
                        help='long side of the stored keyframes in pixels (1280); training '
                        "cuts the head's square out of them")
    camera = parser.add_mutually_exclusive_group()
    camera.add_argument('--fov', type=FOV_DEG,
                        help='horizontal field of view of the source camera in degrees')
    camera.add_argument('--intrinsics', type=Path,
                        help='transforms.json whose camera describes the source frames')


def _run_keyframes(args):
    from head_capture.pipeline import extract_keyframes

    config = load_node_config(KeyframeConfig, 'keyframe_selector', args.config)
    output_folder(args.out)
    with open_source(args.input) as source:
        intrinsics = read_transforms(args.intrinsics).intrinsics if args.intrinsics else None
        expected = source.expected_frames
        total = 2 * expected if (expected and source.replayable) else expected
        with _progress('selecting keyframes', total) as advance:
            report = extract_keyframes(source, args.out, args.count, args.size, intrinsics,
                                       args.fov, config, args.overwrite, advance)
    _print_keyframe_report(report)
    return 0


def _print_keyframe_report(report):
    stats, selection = report.source_stats, report.selection
    console.print(
        f'[green]{len(selection.keyframes)} keyframes[/] from {selection.frames_scored} frames '
        f'({stats.frames_corrupt} corrupt skipped, {selection.frames_unusable} badly exposed) '
        f'-> {report.session.root / "transforms.json"}')
    for note in report.notes:
        console.print(f'[yellow]warning:[/] {note}')


def _run_synth_template(args):
    from head_capture.landmarks.template import template_from_model
    from head_capture.synth.heads import HeadModel

    output_file(args.out, overwrite=True)
    with console.status('building the anny head model (about a minute the first time)'):
        template = template_from_model(HeadModel())
    template.save(args.out)
    counts = ', '.join(f'{r} {int(template.region_mask(r).sum())}'
                       for r in dict.fromkeys(template.regions))
    console.print(f'[green]{len(template)} landmarks[/] ({counts}) -> {args.out}')
    return 0


def _run_synth_landmarks(args):
    from head_capture.synth.landmark_set import LandmarkSetConfig, write_landmark_set

    if args.count < 1:
        raise ValueError(f'count must be >= 1, got {args.count}')
    output_folder(args.out)
    cfg = LandmarkSetConfig(size=args.size, shard_size=args.shard_size, seed=args.seed)
    total = -(-args.count // cfg.shard_size) * cfg.shard_size
    started = time.monotonic()
    with _progress('rendering landmark set', total) as advance:
        manifest = write_landmark_set(args.out, args.count, cfg,
                                      lambda n: [advance() for _ in range(n)], args.workers)
    seconds = time.monotonic() - started
    console.print(f'[green]{manifest["count"]} samples[/] in {len(manifest["shards"])} shards '
                  f'-> {args.out} ({seconds:.0f} s)')
    return 0


def _run_synth_sequence(args):
    from head_capture.synth.sequence import SequenceConfig, write_sequences

    output_folder(args.out)
    cfg = SequenceConfig(subjects=args.subjects, train=args.train, test=args.test,
                         size=args.size, seed=args.seed)
    with _progress('rendering sequences', cfg.subjects * (cfg.train + cfg.test)) as advance:
        paths = write_sequences(args.out, cfg, lambda n: [advance() for _ in range(n)])
    console.print(f'[green]{len(paths)} subjects[/] ({cfg.train} train + {cfg.test} test views '
                  f'at {cfg.size}²) -> {args.out}')
    return 0


def _run_synth_capture(args):
    from head_capture.synth.capture_video import CaptureConfig, write_capture

    size = re.fullmatch(r'(\d+)x(\d+)', args.size)
    if size is None:
        raise ValueError(f'--size must look like 1280x720, got {args.size!r}')
    output_folder(args.out)
    cfg = CaptureConfig(seconds=args.seconds, fps=args.fps, width=int(size.group(1)),
                        height=int(size.group(2)), seed=args.seed)
    with _progress('rendering capture', int(round(cfg.seconds * cfg.fps))) as advance:
        count = write_capture(args.out, cfg, lambda n: [advance() for _ in range(n)])
    console.print(f'[green]{count} frames[/] -> {args.out / "capture.mp4"} and '
                  f'{args.out / "ground_truth.json"}')
    return 0


def _run_synth_preview(args):
    import cv2
    from head_capture.landmarks.dataset import read_samples
    from head_capture.landmarks.template import HeadTemplate
    from head_capture.synth.preview import contact_sheet, variety_chart
    from head_capture.synth.sequence import read_sequence_views

    output_file(args.out, overwrite=True)
    if args.variety is not None:
        output_file(args.variety, overwrite=True, flag='--variety')
    if (args.set_dir / 'transforms_train.json').is_file():  # one subject of a sequence
        samples = read_sequence_views(args.set_dir, limit=args.count)
        samples['hair_styles'] = [f'r_{n:03d}' for n in range(len(samples['images']))]
        if args.variety is not None:
            raise ValueError('--variety needs a landmark set, not a sequence')
    else:
        samples = read_samples(args.set_dir, args.count)
    regions = HeadTemplate.load().regions
    sheet = contact_sheet(samples['images'], samples['landmarks'], samples['visible'], regions,
                          labels=samples['hair_styles'])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    console.print(f'contact sheet of {len(samples["images"])} samples -> {args.out}')
    if args.variety is not None:
        everything = read_samples(args.set_dir)
        chart = variety_chart(everything['rotations'], everything['translations'],
                              everything['skin_rgb'], everything['hair_styles'])
        cv2.imwrite(str(args.variety), chart)
        console.print(f'variety of {len(everything["images"])} samples -> {args.variety}')
    return 0


def _run_landmarks(args):
    from head_capture.capture.registration import read_images
    from head_capture.files import list_images
    from head_capture.landmarks.detector import LandmarkDetector
    from head_capture.landmarks.overlay import draw_detection
    from head_capture.files import write_bytes_atomic, write_image_atomic

    output_folder(args.out)
    if args.input.is_dir():
        # Overlays an earlier run left in the input folder are outputs, not images to read.
        ours = args.out.resolve() == args.input.resolve()
        images = [p for p in list_images(args.input)
                  if not (ours and p.name.endswith(OVERLAY_SUFFIX))]
    elif args.input.is_file():
        images = [args.input]
    else:
        raise FileNotFoundError(f'no image or folder at {args.input}')
    if not images:
        raise FileNotFoundError(f'no images in {args.input}')
    detector = LandmarkDetector(args.model, threads=args.threads)
    results, unreadable = {}, {}
    with _progress('detecting landmarks', len(images)) as advance:
        for path, frame, reason in read_images(images):
            if reason:
                unreadable[path.name] = reason
            else:
                detection = detector.detect(frame)
                results[path.name] = detection.to_json()
                write_image_atomic(args.out / f'{path.stem}{OVERLAY_SUFFIX}',
                                   draw_detection(frame, detection))
            advance()
    _report_unreadable(unreadable)
    if not results:
        raise SessionError(f'none of the {len(images)} images in {args.input} could be read')
    write_bytes_atomic(args.out / 'landmarks.json', json.dumps(results).encode())
    usable = sum(r['usable'] for r in results.values())
    console.print(f'{usable} of {len(results)} readable images with a usable detection '
                  f'-> {args.out}')
    return 0


def _report_unreadable(unreadable):
    """Say how many images were skipped as unreadable, and which, with the reason."""
    if unreadable:
        console.print(f'[yellow]warning:[/] {len(unreadable)} unreadable image'
                      f'{"s" if len(unreadable) > 1 else ""} skipped:')
        for name, reason in unreadable.items():
            console.print(f'  {name}: {reason}')


def _add_refine_option(parser):
    parser.add_argument('--refine', action=argparse.BooleanOptionalAction, default=True,
                        help='bundle-adjust the landmark cameras with SIFT features inside the '
                        'head masks, landmarks held in (default; --no-refine keeps PnP)')


def _run_poses(args):
    from head_capture.capture.pose import PoseConfig
    from head_capture.capture.refine import refine_registered, RefineConfig
    from head_capture.capture.registration import (check_poses_output, find_images,
                                                   register_images, registered_transforms,
                                                   write_registered)
    from head_capture.landmarks.detector import LandmarkDetector
    from head_capture.landmarks.template import HeadTemplate

    if args.out.suffix != '.json':
        raise ValueError(f'--out must name a .json file, got {args.out}')
    _refuse_other_files(args.input, 'a folder of images, or a transforms.json (or a folder '
                        'holding one)', f'head-capture keyframes {args.input} --out SESSION '
                        'picks its keyframes into a session; then head-capture poses SESSION')
    config = load_node_config(PoseConfig, 'pose_estimator', args.config)
    refine_config = load_node_config(RefineConfig, 'pose_refinement', args.config)
    images = find_images(args.input, args.intrinsics, args.fov)
    check_poses_output(images, args.out, args.overwrite)
    detector = LandmarkDetector(args.model, threads=args.threads)
    template = HeadTemplate.load().positions
    with _progress('landmarks + PnP', len(images.paths)) as advance:
        estimates, observations = register_images(images, detector, template, config,
                                                  advance)
    refinement = None
    if args.refine:
        args.out.resolve().parent.mkdir(parents=True, exist_ok=True)
        with console.status('refining the cameras (features + landmarks, bundle adjustment)'):
            estimates, refinement = refine_registered(
                images, estimates, observations, template, args.out.resolve().parent,
                refine_config, console.print)
    transforms = registered_transforms(images, estimates, args.out, refinement=refinement)
    write_registered(images, transforms, args.out)
    info = transforms.meta['head_capture']
    console.print(f'[green]{info["registered"]} of {info["frames"]} frames registered[/] '
                  f'(camera: {images.intrinsics_source}) -> {args.out}')
    for miss in info['unregistered']:
        console.print(f'  [yellow]not registered[/] {miss["file_path"]}: {miss["reason"]}')
    if refinement is not None:
        console.print(refinement.describe())
    return 0


def _refuse_other_files(path, takes, video):
    """Refuse a file that is not JSON (a video, an image) where a command reads transforms."""
    if path.is_file() and path.suffix.lower() != '.json':
        raise ValueError(f'{path} is not a .json file: this command takes {takes}. For a '
                         f'video: {video}')


def _run_evaluate_poses(args):
    from head_capture.pose_evaluation import evaluate_files
    from head_capture.files import output_file, write_bytes_atomic

    if args.out is not None:  # a report: replaced when it exists, but never a folder
        output_file(args.out, overwrite=True)
    report = evaluate_files(args.predicted, args.truth)
    summary = {k: v for k, v in report.items() if k not in ('per_frame', 'by_azimuth')}
    print(json.dumps(summary, indent=2))
    if args.out is not None:
        write_bytes_atomic(args.out, (json.dumps(report, indent=2) + '\n').encode())
    return 0


def _run_train_avatar(args):
    from head_capture.avatar.trainer import CHECKPOINT
    from head_capture.avatar.training_config import chosen_keys, load_avatar_config
    from head_capture.pipeline import train_avatar
    from head_capture.supervisor import signal_name, stop_signals

    data = args.data
    _refuse_other_files(data, 'a transforms.json with poses (or a folder holding one)',
                        f'head-capture reconstruct {data} --out DIR does the whole job')
    if data.is_dir():
        found = [data / n for n in ('transforms.json', 'transforms_train.json')
                 if (data / n).is_file()]
        if not found:
            raise FileNotFoundError(f'no transforms.json or transforms_train.json in {data}')
        data = found[0]
    overrides = parse_overrides(args.overrides)
    if args.perturb < 0:
        raise ValueError(f'--perturb must be >= 0, got {args.perturb}')
    config = load_avatar_config(args.config, overrides)
    # SIGTERM (a node cancelling, ``kill``) or Ctrl-C: checkpoint at the next step and stop.
    with stop_signals() as stop:
        if args.refine and not args.resume:
            from head_capture.capture.refine import refine_transforms, RefineConfig

            with console.status('refining the cameras (features + landmarks, bundle '
                                'adjustment)'):
                refine_config = load_node_config(RefineConfig, 'pose_refinement')
                console.print(refine_transforms(data, config=refine_config,
                                                log=console.print).describe())
        metrics = None if stop.signal else train_avatar(
            data, args.out, config, args.perturb, args.seed, args.resume, _progress,
            console.print, chosen_keys(args.config, overrides), lambda: stop.signal is not None)
    if metrics is None:
        kept = (f'the checkpoint in {args.out} keeps it; --resume continues it'
                if (args.out / CHECKPOINT).is_file() else 'before its first checkpoint')
        console.print(f'[yellow]training stopped[/] ({signal_name(stop.signal)}): {kept}')
        return 128 + stop.signal
    console.print(f'[green]avatar trained[/] in {metrics["seconds"]:.0f} s -> {args.out}')
    return 0


def _run_evaluate_avatar(args):
    from head_capture.avatar.evaluate import evaluate_held_out, evaluate_test_set
    from head_capture.avatar.trainer import AvatarTrainer
    from head_capture.files import write_bytes_atomic

    if args.pose_steps < 0:
        raise ValueError(f'--pose-steps must be >= 0, got {args.pose_steps}')
    trainer = AvatarTrainer.reopen(args.avatar)
    with console.status('rendering the test views'):
        if args.test is not None:
            result = evaluate_test_set(trainer, args.test, args.pose_steps)
        else:
            result = evaluate_held_out(trainer, args.pose_steps)
    per_view = [{k: v for k, v in view.items() if k not in ('image', 'truth')}
                for view in result.pop('per_view', [])]
    report = {**result, **trainer.pose_report(), 'per_view': per_view,
              'test': str(args.test) if args.test else 'held-out views of the run'}
    out = args.out or args.avatar / 'evaluation.json'
    write_bytes_atomic(out, (json.dumps(report, indent=2) + '\n').encode())
    print(json.dumps({k: v for k, v in report.items() if k != 'per_view'}, indent=2))
    return 0


def _run_train_landmarks(args):
    from head_capture.landmarks.train import main as train_main

    argv = [str(args.config), str(args.out)]
    for path in args.sets or ():
        argv += ['--set', path]
    for flag, value in (('--validation-set', args.validation_set), ('--steps', args.steps),
                        ('--init-model', args.init_model), ('--device', args.device)):
        if value is not None:
            argv += [flag, str(value)]
    return train_main(argv)


def _run_reconstruct(args):
    from head_capture.pipeline import reconstruct

    intrinsics = read_transforms(args.intrinsics).intrinsics if args.intrinsics else None
    summary = reconstruct(args.input, args.out, args.config, parse_overrides(args.overrides),
                          args.count, args.size, intrinsics, args.fov, args.params,
                          refine=args.refine, progress=_progress, log=console.print)
    console.print(f'[bold green]avatar ready[/] in {summary["seconds"]:.0f} s: '
                  f'{summary["registered"]} of {summary["keyframes"]} keyframes registered, '
                  f'{summary["coverage"]["score"]:.0%} of the view bins covered, held-out '
                  f'PSNR {summary["held_out_psnr"]:.2f} dB; report {summary["report"]}')
    return 0


def _run_up(args):
    from head_capture.node_graph import check_namespace, graph, node_overrides
    from head_capture.nodes.up import run_graph, run_processes

    namespace = check_namespace(args.namespace)
    overrides = node_overrides(args.overrides)
    if args.source is not None and not is_url(args.source):
        # A missing or unreadable file is refused here, before five processes start for it.
        open_source(args.source).close()
    session = (args.session or Path(time.strftime('capture_%Y%m%d_%H%M%S'))).resolve()
    settings = {'source': args.source, 'image_topic': args.image_topic,
                'compressed': args.compressed, 'session_dir': str(session),
                'config': args.avatar_config}
    nodes = graph(args.params, settings, overrides, foxglove=args.foxglove,
                  namespace=namespace)
    layout = 'one process' if args.one_process else 'one process per node'
    console.print(f'head_capture up ({layout}{", namespace " + namespace if namespace else ""}'
                  f'): {", ".join(spec.name for spec, _ in nodes)}; '
                  f'session {session}')

    if args.one_process:
        code = run_graph(nodes, timeout_s=args.timeout, report=console.print,
                         until_avatar=args.until == 'avatar', namespace=namespace)
    else:
        # The parameters each node ran with stay with the session.
        code = run_processes(nodes, session / 'graph_parameters.yaml', args.until == 'avatar',
                             args.timeout, console.print, namespace)
    if code == 0:  # else the reason stays the last line
        console.print(f'session kept in {session}')
    return code


def _run_record(args):
    from head_capture.node_graph import NodeSpec
    from head_capture.nodes.up import run_graph

    spec = NodeSpec('recorder', 'head_capture.nodes.recorder', 'Recorder', ())
    parameters = {'bag': str(args.bag), 'image_topic': args.image_topic,
                  'compressed': args.compressed}
    console.print(f'recording {args.image_topic}{"/compressed" if args.compressed else ""} '
                  f'and camera_info to {args.bag} (Ctrl-C to stop)')

    def enough(built):
        return args.frames is not None and built[0].images >= args.frames

    code = run_graph([(spec, parameters)], enough, args.seconds,
                     report=console.print)
    if code == 0:
        console.print(f'bag written: {args.bag} (replay: head-capture up --source {args.bag})')
    return code


def _run_demo(args):
    from head_capture.demo import run_demo, summary_line

    summary = run_demo(args.out, _progress, console.print, overwrite=args.overwrite)
    console.print(f'[bold green]{summary_line(summary)}[/]')
    return 0


@contextmanager
def _progress(description, total):
    """Yield a callable that advances a progress bar by one frame."""
    columns = (TextColumn('{task.description}'), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn('left'), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda: progress.advance(task)


if __name__ == '__main__':
    sys.exit(main())
