"""
Landmark accuracy on held-out synthetic identities, by viewing direction, and CPU latency.

Two settings. "crop": the network alone on the 256² views of the set (the second pass's
input). "frame": the full two-pass detector on 1280x720 frames made by pasting each view,
enlarged 1.5-2.5x, at a random place on a textured background, as a phone frame would show a
head; no box is given, so the first pass must find the head. Errors are normalised by the
diagonal of the head box (all true landmarks within the view) and broken down by 30° azimuth
bins and by elevation band. Views where most of the head is outside the image are left out
(counted in the result).
Latency: a 1280x720 frame from scratch and tracked (box from the previous frame),
onnxruntime, 2 threads.

    python bench/landmarks.py --set HELD_OUT_SET --out bench/results/landmarks.json
"""

import argparse
import time

from common import save
import cv2
from head_capture.landmarks.dataset import read_samples
from head_capture.landmarks.detector import default_model_path, LandmarkDetector
from head_capture.landmarks.metrics import (accuracy_report, azimuth_edges,
                                            binned_view_angles, by_bins, head_in_view,
                                            in_window, sigma_error_correlation)
from head_capture.synth.sample_clip import textured_scene
import numpy as np

FRAME = (1280, 720)


def paste(image, rng, background):
    """Return a 1280x720 frame holding ``image`` enlarged, and the crop->frame (scale, offset)."""
    scale = rng.uniform(1.5, 2.5)
    side = int(round(image.shape[0] * scale))
    scale = side / image.shape[0]
    offset = np.array([rng.integers(0, FRAME[0] - side), rng.integers(0, FRAME[1] - side)])
    frame = background.copy()
    frame[offset[1]:offset[1] + side, offset[0]:offset[0] + side] = cv2.resize(
        image, (side, side), interpolation=cv2.INTER_LINEAR)
    return frame, scale, offset


def usable_by_azimuth(usable, samples):
    """Share of usable detections per 30° azimuth bin."""
    azimuth, _ = binned_view_angles(samples['rotations'], samples['translations'])
    bins = by_bins(usable.astype(float), azimuth, azimuth_edges())
    return [{'from': b['from'], 'to': b['to'], 'usable': b['mean']} for b in bins]


def latency_ms(detector, frame, repeats):
    """Median and 90th percentile of detection from scratch and tracked (one pass)."""
    result = {}
    for name, box in (('from_scratch', None), ('tracked', detector.detect(frame).box)):
        times = []
        for _ in range(repeats + 3):
            start = time.perf_counter()
            detector.detect(frame, box)
            times.append(1000 * (time.perf_counter() - start))
        times = np.array(times[3:])
        result[name] = {'median': round(float(np.median(times)), 2),
                        'p90': round(float(np.percentile(times, 90)), 2)}
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--set', required=True, help='held-out landmark set')
    parser.add_argument('--model', default=None, help='ONNX model (default: the shipped one)')
    parser.add_argument('--limit', type=int, default=None)
    parser.add_argument('--repeats', type=int, default=50)
    parser.add_argument('--out', default='bench/results/landmarks.json')
    args = parser.parse_args()
    model = args.model or default_model_path()
    detector = LandmarkDetector(model, threads=2)
    samples = read_samples(args.set, args.limit)
    # Views cropped so hard that most of the head is outside are not detection tasks.
    size = samples['images'].shape[1]
    keep = head_in_view(samples['landmarks'], size)
    excluded = int((~keep).sum())
    samples = {key: value[keep] for key, value in samples.items()}
    images, truth = samples['images'], samples['landmarks']
    started = time.perf_counter()

    outputs = [detector.run_crops(images[i:i + 32]) for i in range(0, len(images), 32)]
    crop_marks = np.concatenate([o[0] for o in outputs])
    crop_sigma = np.exp(np.concatenate([o[1] for o in outputs]))
    crop = accuracy_report(crop_marks, truth, samples['rotations'], samples['translations'],
                           size)
    valid = in_window(truth, size)
    errors = np.linalg.norm(crop_marks - truth, axis=-1)
    crop['sigma_error_spearman'] = sigma_error_correlation(crop_sigma[valid], errors[valid])

    rng = np.random.default_rng(0)
    background = textured_scene(FRAME[0], FRAME[1], rng).astype(np.uint8)
    frame_marks, usable = [], []
    for image in images:
        frame, scale, offset = paste(image, rng, background)
        detection = detector.detect(frame)
        # Back to crop pixels, where the truth lives.
        frame_marks.append((detection.landmarks - offset + 0.5) / scale - 0.5)
        usable.append(detection.usable)
    frame_marks, usable = np.array(frame_marks), np.array(usable)
    full = accuracy_report(frame_marks, truth, samples['rotations'], samples['translations'],
                           size)
    full['usable_share'] = float(usable.mean())
    full['usable_by_azimuth'] = usable_by_azimuth(usable, samples)
    seconds = time.perf_counter() - started

    frame, _, _ = paste(images[0], np.random.default_rng(1), background)
    result = {'benchmark': 'head landmarks on held-out synthetic identities',
              'model': str(model), 'set': args.set, 'views': len(images),
              'excluded_views_head_mostly_outside': excluded,
              'providers': detector.providers, 'crop': crop, 'frame_two_pass': full,
              'latency_ms_1280x720_2_threads': latency_ms(detector, frame, args.repeats),
              'seconds': round(seconds, 1)}
    table = [f"{b['from']:>6.0f}..{b['to']:<4.0f} crop NME {b['mean']:.4f}  frame NME "
             f"{f['mean']:.4f} (median {f['median']:.4f})  usable {u['usable']:.2f}"
             for b, f, u in zip(crop['by_azimuth'], full['by_azimuth'],
                                full['usable_by_azimuth'])]
    print('\n'.join(table))
    print({k: result[k] for k in ('latency_ms_1280x720_2_threads', 'seconds')},
          'crop NME', round(crop['nme'], 4), 'frame NME', round(full['nme'], 4),
          'frame median NME', round(full['median_nme'], 4),
          'usable', round(full['usable_share'], 3), 'sigma spearman',
          round(crop['sigma_error_spearman'], 3))
    save(args.out, result)


if __name__ == '__main__':
    main()
