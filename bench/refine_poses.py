"""
Camera poses before and after the feature bundle adjustment, against the truth.

For each input the same detections give the landmark + RANSAC PnP cameras, then
``capture.refine`` bundle-adjusts them (SIFT inside the head masks, COLMAP triangulation,
Ceres, the landmarks held in); both are judged by the paper's protocol
(``head_capture.pose_evaluation``: registered share, Sim(3)-aligned rotation and translation
errors). Sequences: the train views of every subject of a paper-protocol set (90 views at
400², RGBA over flat grey). Capture: N evenly spaced unblurred frames of a synthetic phone
video, full size, the room behind the head; its refinement time is the "100 keyframes at
1280x720" figure.

    python bench/refine_poses.py --sequences SEQ [SEQ ...] --out bench/results/refine_poses.json
    python bench/refine_poses.py --capture CAPTURE --frames 100 --out ...
"""

import argparse
from pathlib import Path
import sys
import tempfile
import time

from common import capture_frames, save
from head_capture.capture.pose import PoseConfig
from head_capture.capture.refine import refine_registered, RefineConfig
from head_capture.capture.registration import (find_images, register_images,
                                               registered_transforms)
from head_capture.landmarks.detector import LandmarkDetector
from head_capture.landmarks.template import HeadTemplate
from head_capture.pose_evaluation import evaluate
from head_capture.session import read_transforms
import numpy as np


def headline(report):
    """Return the registered share and mean/median errors of an ``evaluate`` report."""
    rotation, translation = report['rotation_deg'], report['translation_cm']
    return {'registered': report['registered'], 'frames': report['frames'],
            'rotation_deg_mean': round(rotation['mean'], 3),
            'rotation_deg_median': round(rotation['median'], 3),
            'translation_cm_mean': round(translation['mean'], 3),
            'translation_cm_median': round(translation['median'], 3)}


def measure(images, truth, detector, template, work):
    """Return PnP and refined headlines, with the seconds each took, for one image set."""
    started = time.perf_counter()
    estimates, observations = register_images(images, detector, template, PoseConfig())
    pnp_seconds = time.perf_counter() - started
    out = Path(work) / 'poses.json'
    pnp = evaluate(registered_transforms(images, estimates, out), truth)
    refined, refinement = refine_registered(images, estimates, observations, template, work,
                                            RefineConfig())
    after = evaluate(registered_transforms(images, refined, out, refinement=refinement), truth)
    return {'pnp': {**headline(pnp), 'seconds': round(pnp_seconds, 1)},
            'refined': {**headline(after), 'seconds': refinement.stats.get('seconds')},
            'refinement': refinement.summary(),
            'per_view_rotation_deg': {
                'pnp': [f['rotation_deg'] for f in pnp['per_frame']],
                'refined': [f['rotation_deg'] for f in after['per_frame']]}}


def main():
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sequences', type=Path, nargs='*', default=[],
                        help='folders of subject_NN sequences')
    parser.add_argument('--capture', type=Path, help='folder with capture.mp4, ground_truth.json')
    parser.add_argument('--frames', type=int, default=100, help='capture frames to use')
    parser.add_argument('--out', type=Path, required=True)
    args = parser.parse_args()
    detector, template = LandmarkDetector(), HeadTemplate.load().positions
    results = {}
    with tempfile.TemporaryDirectory(prefix='refine_bench_') as work:
        for folder in args.sequences:
            for subject in sorted(folder.glob('subject_*')):
                path = subject / 'transforms_train.json'
                name = f'{folder.name}/{subject.name}'
                results[name] = measure(find_images(path), read_transforms(path), detector,
                                        template, work)
                print(name, results[name]['pnp'], '->', results[name]['refined'], flush=True)
        if args.capture:
            images, truth = capture_frames(args.capture, args.frames, work)
            results[args.capture.name] = measure(images, truth, detector, template, work)
            print(args.capture.name, results[args.capture.name]['pnp'], '->',
                  results[args.capture.name]['refined'], flush=True)
    save(args.out, {
        'benchmark': 'refine_poses: landmark PnP, then the feature bundle adjustment',
        'command': ' '.join(['python', *sys.argv]),
        'config': RefineConfig().__dict__,
        'summary': {
            'rotation_deg_mean': {k: float(np.mean([r[k]['rotation_deg_mean']
                                                    for r in results.values()]))
                                  for k in ('pnp', 'refined')},
            'worst_subject_rotation_deg_mean': max(r['refined']['rotation_deg_mean']
                                                   for r in results.values())},
        'results': results,
    })


if __name__ == '__main__':
    main()
