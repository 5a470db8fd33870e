"""
Keyframe precision and spread on lego_200 sequences with synthetic motion blur.

Each sequence walks the 100 lego views in a nearest-neighbour tour of their cameras, three
jittered frames per view (a 30 fps video of 10 s), then motion-blurs 30-50% of the frames
with random linear kernels, as single frames or in bursts. Both selectors pick keyframes and
are scored on precision (share of picks that are unblurred) and spread (every tenth of the
sequence holds a pick, and the largest gap between picks against the ideal gap).

    python bench/keyframes.py --out bench/results/keyframes.json
"""

import argparse
from pathlib import Path

from common import save
import cv2
from head_capture.capture.keyframes import KeyframeConfig, OnlineKeyframeSelector, select_spread
from head_capture.capture.sharpness import assess_frame
from head_capture.capture.sources import Frame
from head_capture.session import read_transforms, resolve_inside
from head_capture.synth.degrade import blur_runs, motion_blur
import numpy as np

LEGO = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'lego_200'
FPS = 30.0


def load_views(root):
    """Return the lego views composited on white, in a nearest-neighbour camera tour."""
    transforms = read_transforms(root / 'transforms_train.json')
    images, centres = [], []
    for frame in transforms.frames:
        rgba = cv2.imread(str(resolve_inside(root, frame.file_path)), cv2.IMREAD_UNCHANGED)
        alpha = rgba[:, :, 3:4].astype(np.float32) / 255.0
        rgb = cv2.cvtColor(rgba[:, :, :3], cv2.COLOR_BGR2RGB).astype(np.float32)
        images.append((rgb * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8))
        centres.append(frame.c2w[:3, 3])
    centres = np.array(centres)
    tour, left = [0], set(range(1, len(images)))
    while left:
        rest = np.array(sorted(left))
        nearest = rest[np.argmin(np.linalg.norm(centres[rest] - centres[tour[-1]], axis=1))]
        tour.append(int(nearest))
        left.remove(int(nearest))
    return [images[i] for i in tour]


def make_sequence(views, blur_share, bursts, rng, copies=3):
    """Return frames and a blurred flag per frame."""
    frames = []
    for view in views:
        for _ in range(copies):
            shift = np.float32([[1, 0, rng.uniform(-1.5, 1.5)], [0, 1, rng.uniform(-1.5, 1.5)]])
            moved = cv2.warpAffine(view, shift, view.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
            noisy = moved.astype(np.float32) + rng.normal(0.0, 2.0, moved.shape)
            frames.append(np.clip(noisy, 0, 255).astype(np.uint8))
    blurred = blur_runs(len(frames), blur_share, 6 if bursts else 1, rng)
    for n in np.flatnonzero(blurred):
        frames[n] = motion_blur(frames[n], rng.uniform(4.0, 16.0), rng.uniform(0.0, np.pi))
    return frames, blurred


def spread(picks, total, count):
    """Return the share of sequence tenths holding a pick and the worst gap / ideal gap."""
    picks = np.sort(np.asarray(picks))
    tenths = np.unique(picks * 10 // total).size / 10.0
    gaps = np.diff(np.r_[0, picks, total - 1])
    return tenths, float(gaps.max() / (total / count))


def run_offline(frames, count, config):
    qualities = [assess_frame(f, config.method, config.long_side) for f in frames]
    times = np.arange(len(frames)) / FPS
    return select_spread(times, [q.sharpness for q in qualities],
                         [q.exposure_ok for q in qualities], count, config.sharpness_ratio)


def run_online(frames, config):
    selector = OnlineKeyframeSelector(config)
    picks = [d.keyframe.frame.index for d in
             (selector.update(Frame(n, n / FPS, f)) for n, f in enumerate(frames)) if d.keyframe]
    last = selector.flush()
    return picks + ([last.frame.index] if last else [])


def score(picks, blurred, count):
    picks = np.asarray(picks, int)
    tenths, worst_gap = spread(picks, len(blurred), count)
    return {'selected': int(picks.size),
            'precision': float((~blurred[picks]).mean()) if picks.size else 0.0,
            'tenths_covered': tenths, 'worst_gap_over_ideal': round(worst_gap, 3)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default='bench/results/keyframes.json')
    parser.add_argument('--count', type=int, default=50)
    parser.add_argument('--seeds', type=int, default=5)
    args = parser.parse_args()
    views = load_views(LEGO)
    config = KeyframeConfig()
    online_config = KeyframeConfig(min_interval_s=len(views) * 3 / FPS / args.count)
    runs = []
    for blur_share in (0.3, 0.4, 0.5):
        for bursts in (False, True):
            for seed in range(args.seeds):
                rng = np.random.default_rng(seed)
                frames, blurred = make_sequence(views, blur_share, bursts, rng)
                row = {'blur_share': blur_share, 'bursts': bursts, 'seed': seed,
                       'frames': len(frames), 'blurred': int(blurred.sum())}
                row['offline'] = score(run_offline(frames, args.count, config), blurred,
                                       args.count)
                row['online'] = score(run_online(frames, online_config), blurred, args.count)
                runs.append(row)
                print(f'blur {blur_share:.0%} bursts={bursts} seed {seed}: '
                      f'offline {row["offline"]}  online {row["online"]}')
    summary = {mode: {
        'precision_min': min(r[mode]['precision'] for r in runs),
        'precision_mean': float(np.mean([r[mode]['precision'] for r in runs])),
        'tenths_covered_min': min(r[mode]['tenths_covered'] for r in runs),
        'worst_gap_over_ideal_max': max(r[mode]['worst_gap_over_ideal'] for r in runs),
        'selected_min': min(r[mode]['selected'] for r in runs)} for mode in ('offline', 'online')}
    print(summary)
    save(args.out, {'benchmark': 'keyframe precision on blurred lego_200 sequences',
                    'count': args.count, 'online_min_interval_s': online_config.min_interval_s,
                    'summary': summary, 'runs': runs})


if __name__ == '__main__':
    main()
