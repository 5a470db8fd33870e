"""
``head-capture demo``: the whole live system on the built-in synthetic capture, from pip.

A phone video walking three orbits round a seated synthetic head is rendered once, then
streamed in real time through the ROS 2 graph, one process per node as ``head-capture up``
runs it, with the CPU preview avatar config; the graph stops when the avatar is published.
The capture's ground truth is matched to the keyframes by their stamps, so the report and the
summary say how right the poses were, live and after refinement, and how much memory the demo
and every process it started held at most (sampled once a second).

The output folder is the demo's: it writes a record there (``demo.json``) on its first run, and
a rerun replaces only the session it streamed before. A folder that holds other files and no
record is refused unless ``overwrite``; a user's files are never deleted unasked.
"""

import json
from pathlib import Path
import shutil
import time

from head_capture.avatar import TrainingError
from head_capture.files import output_folder, write_bytes_atomic
from head_capture.memory import PeakMemory
from head_capture.pose_evaluation import evaluate
from head_capture.session import (FrameRecord, read_transforms, SessionError, Transforms,
                                  TRANSFORMS_FILE, write_transforms)
import numpy as np

# The graph gets this long to stream the 40 s capture and train the avatar.
GRAPH_TIMEOUT_S = 1800.0
KEYFRAME_TRUTH = 'keyframe_truth.json'
# Written into the output folder first: it is a demo's, whose session a rerun may replace.
DEMO_RECORD = 'demo.json'


def keyframe_truth(session, truth, origin_s):
    """
    Return the true pose of each keyframe of a live ``session`` (Transforms), by stamp.

    camera_source stamps frame k at ``origin_s`` + its time in the video; the nearest
    ground-truth frame in time is the keyframe's.
    """
    times = np.array([f.meta['time_s'] for f in truth.frames])
    frames = []
    for frame in session.frames:
        at = frame.meta['stamp_ns'] * 1e-9 - origin_s
        nearest = int(np.abs(times - at).argmin())
        frames.append(FrameRecord(frame.file_path, truth.frames[nearest].c2w,
                                  meta={'video_frame': nearest}))
    return Transforms(truth.intrinsics, frames, {'head_capture': {
        'ground_truth': 'synthetic capture, matched to the keyframes by stamp'}})


def pose_accuracy(predicted_path, truth):
    """
    Mean rotation (°) and translation (cm) errors after Sim(3) alignment, or None.

    Frames the trainer held out keep their starting pose and are left out.
    """
    if not Path(predicted_path).is_file():
        return None
    predicted = read_transforms(predicted_path)
    predicted.frames = [f for f in predicted.frames if not f.meta.get('held_out')]
    report = evaluate(predicted, truth)
    if report['rotation_deg'] is None:
        return None
    return {'frames': report['registered'], 'rotation_deg': report['rotation_deg']['mean'],
            'translation_cm': report['translation_cm']['mean']}


def claim_output(out, overwrite=False):
    """
    Make ``out`` the demo's folder and clear the session an earlier demo streamed there.

    A folder that holds files but no demo record is refused unless ``overwrite``: the demo
    deletes only what a demo wrote, or what it was told it may replace.
    """
    out = output_folder(out)
    record = out / DEMO_RECORD
    if out.is_dir() and not record.is_file() and not overwrite:
        found = sorted(p.name for p in out.iterdir())
        if found:
            more = len(found) - 4
            shown = ', '.join(found[:4]) + (f' and {more} more' if more > 0 else '')
            raise SessionError(f'--out {out} holds files a demo did not write ({shown}); the '
                               'demo would replace its session/ folder: choose a new or empty '
                               'folder, or pass --overwrite')
    session = out / 'session'
    if session.is_symlink():
        raise SessionError(f'{session} is a symbolic link to {session.resolve()}: the demo '
                           'replaces that folder and deletes nothing through a link; remove '
                           'the link')
    write_bytes_atomic(record, (json.dumps({
        'written_by': 'head-capture demo', 'replaced_on_rerun': ['session']}) + '\n').encode())
    if session.exists():
        shutil.rmtree(session)  # an earlier demo's: the demo always streams afresh
    return out


def run_demo(out_dir, progress, log=print, capture_seconds=40.0, graph_overrides=None,
             overwrite=False):
    """
    Render the capture (once), run the graph to the avatar, write the report; summary.

    ``graph_overrides`` ({node: {key: value}}) change node parameters (tests shrink the run);
    ``overwrite``: use an ``out_dir`` that is not an earlier demo's (see ``claim_output``).
    """
    with PeakMemory() as memory:
        out, summary = _run_demo(out_dir, progress, log, capture_seconds, graph_overrides,
                                 overwrite)
    summary['peak_memory_mib'] = memory.peaks()
    write_bytes_atomic(out / 'summary.json', (json.dumps(summary, indent=2) + '\n').encode())
    return summary


def _run_demo(out_dir, progress, log, capture_seconds, graph_overrides, overwrite):
    """Do the demo's work (see ``run_demo``); return its folder and summary."""
    from head_capture.node_graph import graph
    from head_capture.nodes.up import run_processes
    from head_capture.report import write_report
    from head_capture.synth.capture_video import CaptureConfig, GROUND_TRUTH, write_capture

    started = time.monotonic()
    out = claim_output(Path(out_dir).resolve(), overwrite)
    capture, session = out / 'capture', out / 'session'
    if not (capture / GROUND_TRUTH).is_file():
        config = CaptureConfig(seconds=capture_seconds)
        with progress('rendering the synthetic capture',
                      int(round(config.seconds * config.fps))) as advance:
            write_capture(capture, config, lambda n: [advance() for _ in range(n)])
    log(f'capture: {capture / "capture.mp4"} (a phone walking three orbits round a seated '
        'synthetic head)')

    origin_s = float(int(time.time()))
    overrides = {node: dict(values) for node, values in (graph_overrides or {}).items()}
    overrides.setdefault('camera_source', {}).update(
        intrinsics_file=str(capture / GROUND_TRUTH), stamp_origin_s=origin_s)
    nodes = graph(settings={'source': str(capture / 'capture.mp4'), 'session_dir': str(session),
                            'config': 'cpu_preview'}, overrides=overrides)
    log(f'streaming it through the live graph ({", ".join(s.name for s, _ in nodes)}), one '
        'process per node; the avatar trains when the coverage target is met')
    code = run_processes(nodes, session / 'graph_parameters.yaml', True, GRAPH_TIMEOUT_S, log)
    avatar = session / 'avatar'
    if code != 0 or not (avatar / 'metrics.json').is_file():
        raise TrainingError(f'the graph ended without an avatar (exit {code}); the session, '
                            f'its logs and avatar/trainer.log are in {session}')

    truth = keyframe_truth(read_transforms(session / TRANSFORMS_FILE),
                           read_transforms(capture / GROUND_TRUTH), origin_s)
    write_transforms(out / KEYFRAME_TRUTH, truth)
    metrics = json.loads((avatar / 'metrics.json').read_text())
    live = pose_accuracy(session / TRANSFORMS_FILE, truth)
    refined = pose_accuracy(avatar / 'transforms.json', truth)
    summary = {'seconds': round(time.monotonic() - started, 1),
               'keyframes': len(list((session / 'keyframes').glob('*.png'))),
               'registered': len(truth.frames), 'training_frames': metrics['training_frames'],
               'live_poses_vs_truth': live, 'refined_poses_vs_truth': refined,
               'held_out_psnr': metrics.get('held_out_psnr'),
               'held_out_ssim': metrics.get('held_out_ssim'),
               'train_seconds': metrics['seconds'], 'avatar': str(avatar),
               'report': str(out / 'report.html'), 'session': str(session)}
    write_report(session, avatar, out / 'report.html', truth=out / KEYFRAME_TRUTH,
                 title='head_capture demo: the built-in synthetic capture')
    return out, summary


def summary_line(summary):
    """One line a user reads at the end of the demo."""
    def accuracy(errors):
        return ('n/a' if errors is None else
                f'{errors["rotation_deg"]:.2f}° / {errors["translation_cm"]:.2f} cm')

    memory = summary.get('peak_memory_mib') or {}
    peak = ('' if memory.get('tree_pss_mib') is None else
            f'; peak memory {memory["tree_pss_mib"] / 1024:.1f} GiB in all (PSS; this process '
            f'{memory["process_rss_mib"] / 1024:.1f} GiB)')
    return (f'demo done in {summary["seconds"] / 60:.1f} min: {summary["keyframes"]} keyframes, '
            f'{summary["registered"]} registered live (pose error vs truth '
            f'{accuracy(summary["live_poses_vs_truth"])}; after BARF '
            f'{accuracy(summary["refined_poses_vs_truth"])}), avatar held-out PSNR '
            f'{summary["held_out_psnr"]:.2f} dB / SSIM {summary["held_out_ssim"]:.3f}{peak}; '
            f'report {summary["report"]}; avatar {summary["avatar"]}')
