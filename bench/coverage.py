"""
Coverage guidance on a synthetic phone capture, through the live path: fill and trigger.

The capture video is streamed frame by frame through the online keyframe selector; each
keyframe gets landmarks + PnP, and its pose and confidence go into the coverage map, as the
live nodes do. Recorded: the coverage score and each orbit's share over time, the guidance
given, when the training trigger fired and where the phone truly was then (which orbit, how far
round it), the pose errors of the keyframes, and a picture strip of the coverage ring.

    python bench/coverage.py --capture CAPTURE --out bench/results/coverage_capture.json
"""

import argparse
from pathlib import Path
import time

from common import save
import cv2
from head_capture.capture.coverage import Coverage, coverage_image, guidance, View
from head_capture.capture.keyframes import OnlineKeyframeSelector
from head_capture.capture.pose import PoseConfig
from head_capture.capture.registration import NO_HEAD, pose_of_frame
from head_capture.capture.sources import open_source
from head_capture.geometry import c2w_opengl_to_w2c
from head_capture.landmarks.detector import LandmarkDetector
from head_capture.landmarks.template import HeadTemplate
from head_capture.session import read_transforms
import numpy as np


def panel(coverage, view, caption, size=220):
    """One coverage ring with a caption under it."""
    ring = coverage_image(coverage, size, view)
    text = np.full((36, size, 3), 255, np.uint8)
    for line, words in enumerate(caption.split('\n')[:2]):
        cv2.putText(text, words, (4, 14 + 16 * line), cv2.FONT_HERSHEY_SIMPLEX, 0.38,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([ring, text])


def main():
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--capture', type=Path, required=True)
    parser.add_argument('--out', type=Path, default=Path('bench/results/coverage_capture.json'))
    args = parser.parse_args()
    truth = read_transforms(args.capture / 'ground_truth.json')
    detector = LandmarkDetector(threads=2)
    template = HeadTemplate.load().positions
    selector, coverage = OnlineKeyframeSelector(), Coverage()
    timeline, panels, errors, fired, last_view = [], [], [], None, None
    frames = len(truth.frames)
    moments = {int(frames * share) for share in (0.25, 0.5, 0.75)}
    started = time.monotonic()
    with open_source(args.capture / 'capture.mp4') as source:
        for frame in source:
            decision = selector.update(frame)
            keyframe = decision.keyframe
            view, problem = None, 'blurred' if decision.status == 'blurred' else None
            if keyframe is not None:
                estimate = pose_of_frame(keyframe.frame.image, truth.intrinsics, detector,
                                         template, PoseConfig())
                index = keyframe.frame.index
                rotation, translation = c2w_opengl_to_w2c(truth.frames[index].c2w)
                if estimate.registered:
                    view = View.of_pose(estimate.rotation, estimate.translation)
                    true_view = View.of_pose(rotation, translation)
                    errors.append((view.azimuth_deg - true_view.azimuth_deg + 180) % 360 - 180)
                    last_view = view
                    if coverage.add(view, estimate.confidence, index):
                        fired = index
                        orbit = int(3 * index / frames) + 1
                        panels.append(panel(coverage, view, f'trigger at {frame.time_s:.1f} s:'
                                            f' {coverage.score:.0%}\n(frame {index}, orbit '
                                            f'{orbit})'))
                else:
                    problem = 'no_head' if estimate.reason == NO_HEAD else 'no_pose'
                timeline.append({'frame': index, 'time_s': round(keyframe.frame.time_s, 3),
                                 'registered': estimate.registered,
                                 'confidence': round(estimate.confidence, 3),
                                 'score': round(coverage.score, 4),
                                 'band_shares': np.round(coverage.band_shares, 3).tolist(),
                                 'guidance': guidance(coverage, view, problem)})
            if frame.index in moments:
                panels.append(panel(coverage, last_view, f'{frame.time_s:.1f} s: '
                                    f'{coverage.score:.0%} covered\n'
                                    f'{timeline[-1]["guidance"] if timeline else ""}'))
    panels.append(panel(coverage, None, f'end: {coverage.score:.0%} covered\n'
                        f'bands {" / ".join(f"{s:.0%}" for s in coverage.band_shares)}'))
    strip = np.hstack(panels)
    picture = args.out.with_suffix('.png')
    picture.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(picture), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))
    lap = frames / 3
    result = {'benchmark': 'coverage', 'capture': str(args.capture), 'frames': frames,
              'keyframes': len(timeline),
              'registered_share': float(np.mean([t['registered'] for t in timeline])),
              'trigger_frame': fired,
              'trigger_at': (None if fired is None else
                             {'orbit': int(fired // lap) + 1,
                              'share_of_orbit_walked': round(float(fired / lap % 1), 3),
                              'time_s': truth.frames[fired].meta.get('time_s')}),
              'final': coverage.to_json(),
              # In the template's frame, unaligned: what the coverage bins see.
              'azimuth_error_deg_median_abs': float(np.median(np.abs(errors))),
              'seconds': round(time.monotonic() - started, 1), 'picture': str(picture),
              'timeline': timeline}
    print(f'{len(timeline)} keyframes, trigger at frame {fired} '
          f'({result["trigger_at"]}), final {coverage.score:.0%}')
    save(args.out, result)


if __name__ == '__main__':
    main()
