"""
Camera poses from landmarks + RANSAC PnP against the truth, by the paper's protocol.

Sequences: every subject of a paper-protocol set (90 train + 10 test views, 400², elevation
-25..45°, held-out identities), all 100 views registered independently, each seen over a flat
grey background. Capture: evenly spaced unblurred frames of a synthetic phone video, full
size, room around the head. Errors after Sim(3) alignment on camera centres (DESIGN.md):
rotation in degrees, translation in cm, registered share, per 30° azimuth bin, pooled over
subjects. The PnP minimal solvers (SQPnP, EPnP, iterative) are compared with and without the
sigma-weighted refinement, on the same detections, for accuracy and solve time per frame (the
landmark network's time is ``bench/landmarks.py``'s), and the chosen solver without the mirror
pass (``PoseConfig.mirror_pass``) beside it. Spearman correlation of the pose
confidence with the rotation error says whether the confidence can rank frames.

    python bench/poses.py --sequences SEQ [--capture CAPTURE] --out bench/results/poses.json
"""

import argparse
import dataclasses
from pathlib import Path
import tempfile
import time

from common import capture_frames, pooled_errors, save
import cv2
from head_capture.capture.pose import PoseConfig, solve_pose, SOLVERS
from head_capture.capture.registration import ALPHA_BACKGROUND, find_images, observations
from head_capture.geometry import w2c_to_c2w_opengl
from head_capture.landmarks.detector import default_model_path, LandmarkDetector
from head_capture.landmarks.metrics import sigma_error_correlation
from head_capture.landmarks.template import HeadTemplate
from head_capture.pose_evaluation import evaluate, frame_key
from head_capture.session import FrameRecord, read_image, read_transforms, Transforms
import numpy as np


def detect(detector, paths, template):
    """
    Run the detector on every image, with and without the mirror pass.

    Returns the detections, what PnP solves from per frame (keyed by mirror: False, True;
    None where no head was found), and the milliseconds per frame of the detection and of the
    mirror pass.
    """
    detections, solvable, times = [], {False: [], True: []}, {False: [], True: []}
    for path in paths:
        frame = read_image(path, background=ALPHA_BACKGROUND)
        start = time.perf_counter()
        detection = detector.detect(frame)
        for mirror in (False, True):
            solvable[mirror].append(observations(frame, detection, detector, template, mirror)
                                    if detection.usable else None)
            times[mirror].append(1000 * (time.perf_counter() - start))
            start = time.perf_counter()
        detections.append(detection)
    return detections, solvable, times


def solve(observed_frames, names, intrinsics, config):
    """
    Return the predicted Transforms, the estimates and the solve milliseconds per frame.

    ``observed_frames`` holds (pixels, sigma, template points) per frame, None where no head
    was found.
    """
    frames, estimates, times = [], [], []
    for name, observed in zip(names, observed_frames):
        start = time.perf_counter()
        estimate = None if observed is None else solve_pose(*observed, intrinsics, config)
        times.append(1000 * (time.perf_counter() - start))
        estimates.append(estimate)
        if estimate is not None and estimate.registered:
            frames.append(FrameRecord(name, w2c_to_c2w_opengl(estimate.rotation,
                                                              estimate.translation)))
    return Transforms(intrinsics, frames), estimates, times


def run_set(name, images, truth, detector, template, config, true_landmarks=None):
    """
    Detect once, then solve with every solver, with and without refinement.

    With ``true_landmarks`` (views, N, 2), also solve from them (sigma 1 px, all landmarks):
    what is left is the template's own error, the gap between the average head and this one.
    """
    detections, solvable, detect_ms = detect(detector, images.paths, template)
    keys = [frame_key(n) for n in images.names]
    variants = {}
    if true_landmarks is not None:
        oracle = [(marks, np.ones(len(marks)), template) for marks in true_landmarks]
        predicted, _, solve_ms = solve(oracle, keys, images.intrinsics,
                                       dataclasses.replace(config, sample_share=1.0))
        variants['true_landmarks'] = {'report': evaluate(predicted, truth), 'solve_ms': solve_ms}
    runs = [(f'{solver}_refine{refine}', config.mirror_pass, solver, refine)
            for solver in SOLVERS for refine in (0, config.refine_iterations)]
    runs.append((f'{config.solver}_refine{config.refine_iterations}_single_pass', False,
                 config.solver, config.refine_iterations))
    for label, mirror, solver, refine in runs:
        variant = dataclasses.replace(config, solver=solver, refine_iterations=refine)
        predicted, estimates, solve_ms = solve(solvable[mirror], keys, images.intrinsics,
                                               variant)
        variants[label] = {'report': evaluate(predicted, truth), 'solve_ms': solve_ms,
                           'estimates': estimates}
    chosen = variants[f'{config.solver}_refine{config.refine_iterations}']
    errors = {row['frame']: row['rotation_deg'] for row in chosen['report']['per_frame']}
    scored = [(e.confidence, errors[k]) for e, k in zip(chosen['estimates'], keys)
              if e is not None and e.registered and errors.get(k) is not None]
    spearman = (sigma_error_correlation(*np.array(scored).T) if len(scored) > 2 else None)
    print(f'{name}: registered {chosen["report"]["registered_share"]:.2f}, rotation '
          f'{_fmt(chosen["report"]["rotation_deg"])}°, translation '
          f'{_fmt(chosen["report"]["translation_cm"])} cm')
    return {'name': name, 'views': len(images.paths),
            'usable_detections': float(np.mean([d.usable for d in detections])),
            'detect_ms_median': float(np.median(detect_ms[False])),
            'mirror_pass_ms_median': float(np.median(detect_ms[True])),
            'confidence_vs_rotation_error_spearman': spearman,
            'variants': {k: {**{m: v['report'][m]
                                for m in ('registered_share', 'rotation_deg', 'translation_cm')},
                             'solve_ms_median': float(np.median(v['solve_ms'])),
                             'solve_ms_p90': float(np.percentile(v['solve_ms'], 90))}
                         for k, v in variants.items()},
            'report': chosen['report']}


def _fmt(stats):
    return 'n/a' if stats is None else f'{stats["mean"]:.2f} mean / {stats["median"]:.2f} median'


def sequence_subject(folder):
    """Return the train+test views of one subject as one ImageSet and its truth."""
    train = find_images(folder / 'transforms_train.json')
    test = find_images(folder / 'transforms_test.json')
    train.paths += test.paths
    train.names += test.names
    frames = (read_transforms(folder / 'transforms_train.json').frames
              + read_transforms(folder / 'transforms_test.json').frames)
    marks = []
    for split in ('train', 'test'):
        with np.load(folder / f'landmarks_{split}.npz') as truth:
            marks.append(truth['landmarks'])
    return train, Transforms(train.intrinsics, frames), np.concatenate(marks)


def summarise(results):
    """Pooled summary and azimuth table of the chosen variant, plus every variant's pool."""
    summary, table = pooled_errors([r['report'] for r in results])
    variants = {}
    for key in results[0]['variants']:
        rows = [r['variants'][key] for r in results]
        variants[key] = {
            'registered_share': float(np.mean([v['registered_share'] for v in rows])),
            'rotation_deg_mean': _mean_of(rows, 'rotation_deg'),
            'translation_cm_mean': _mean_of(rows, 'translation_cm'),
            'solve_ms_median': float(np.median([v['solve_ms_median'] for v in rows]))}
    return {'summary': summary, 'by_azimuth': table, 'variants': variants}


def _mean_of(rows, key):
    values = [v[key]['mean'] for v in rows if v[key] is not None]
    return float(np.mean(values)) if values else None


def main():
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--sequences', type=Path, help='folder of subject_NN sequences')
    parser.add_argument('--capture', type=Path, help='synthetic capture (capture.mp4 + truth)')
    parser.add_argument('--capture-frames', type=int, default=100)
    parser.add_argument('--model', type=Path, help='ONNX model (default: the shipped one)')
    parser.add_argument('--out', type=Path, default=Path('bench/results/poses.json'))
    args = parser.parse_args()
    if args.sequences is None and args.capture is None:
        parser.error('give --sequences and/or --capture')
    cv2.setNumThreads(2)
    detector = LandmarkDetector(args.model, threads=2)
    template = HeadTemplate.load().positions
    config = PoseConfig()
    result = {'benchmark': 'poses', 'model': str(args.model or default_model_path()),
              'config': dataclasses.asdict(config),
              'paper': {'rotation_deg': 2.60, 'translation_cm': 7.66}}
    if args.sequences is not None:
        subjects = sorted(p for p in args.sequences.iterdir() if p.name.startswith('subject_'))
        if not subjects:
            raise SystemExit(f'no subject_NN folders in {args.sequences}')
        runs = []
        for folder in subjects:
            images, truth, true_landmarks = sequence_subject(folder)
            runs.append(run_set(folder.name, images, truth, detector, template, config,
                                true_landmarks))
        result['sequences'] = {'folder': str(args.sequences), 'subjects': runs,
                               **summarise(runs)}
    if args.capture is not None:
        with tempfile.TemporaryDirectory() as work:
            images, truth = capture_frames(args.capture, args.capture_frames, Path(work))
            run = run_set('capture', images, truth, detector, template, config)
        result['capture'] = {'folder': str(args.capture), **run, **summarise([run])}
    save(args.out, result)


if __name__ == '__main__':
    main()
