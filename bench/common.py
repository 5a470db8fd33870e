"""Helpers shared by the benchmarks: machine facts, JSON output, capture frames."""

import json
import os
from pathlib import Path
import platform
import time

import cv2
import numpy as np


def machine():
    """Describe the machine a number was measured on."""
    return {'cpu_count': os.cpu_count(), 'cv2_threads': cv2.getNumThreads(),
            'platform': platform.platform(), 'python': platform.python_version(),
            'date': time.strftime('%Y-%m-%d')}


def save(path, result):
    """Write ``result`` (plus the machine description) as JSON and print where."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**result, 'machine': machine()}, indent=2) + '\n')
    print(f'wrote {path}')


def capture_frames(capture_dir, count, work_dir):
    """
    Write ``count`` evenly spaced unblurred frames of a synthetic capture as PNGs.

    Returns the ImageSet of those frames and their true Transforms, so every pose method is
    judged on the same images. Frames flagged blurred in the ground truth are skipped: a
    keyframe selector would skip them too (``bench/keyframes.py`` measures that part).
    """
    from head_capture.capture.registration import ImageSet
    from head_capture.capture.sources import open_source
    from head_capture.session import FrameRecord, read_transforms, Transforms
    from head_capture.files import write_image_atomic

    truth = read_transforms(Path(capture_dir) / 'ground_truth.json')
    sharp = [n for n, f in enumerate(truth.frames) if not f.meta.get('blurred')]
    if len(sharp) < count:
        raise ValueError(f'{capture_dir} has {len(sharp)} unblurred frames, {count} wanted')
    chosen = {sharp[i]: None for i in np.linspace(0, len(sharp) - 1, count).round().astype(int)}
    folder = Path(work_dir) / 'frames'
    with open_source(Path(capture_dir) / 'capture.mp4') as source:
        for frame in source:
            if frame.index in chosen:
                chosen[frame.index] = folder / f'frame_{frame.index:05d}.png'
                write_image_atomic(chosen[frame.index], frame.image)
    missing = [n for n, path in chosen.items() if path is None]
    if missing:
        raise ValueError(f'the video ended before frame {missing[0]}')
    paths = list(chosen.values())
    records = [FrameRecord(f'frames/{p.name}', truth.frames[n].c2w) for n, p in chosen.items()]
    return (ImageSet(paths, [f'frames/{p.name}' for p in paths], truth.intrinsics,
                     'ground_truth.json'), Transforms(truth.intrinsics, records))


def pooled_errors(reports):
    """Pool per-frame errors of several evaluations: summary and 30° azimuth table."""
    from head_capture.landmarks.metrics import azimuth_edges, by_bins

    rows = [row for report in reports for row in report['per_frame']]
    azimuth = np.array([row['azimuth_deg'] for row in rows])
    found = np.array([row['rotation_deg'] is not None for row in rows])
    rotation = np.array([row['rotation_deg'] for row in rows if row['rotation_deg'] is not None])
    translation = np.array([row['translation_cm'] for row in rows
                            if row['translation_cm'] is not None])
    edges = azimuth_edges()
    table = [{'from': s['from'], 'to': s['to'], 'frames': s['count'],
              'registered_share': s['mean'], 'rotation_deg_mean': r['mean'],
              'translation_cm_mean': t['mean']}
             for s, r, t in zip(by_bins(found.astype(float), azimuth, edges),
                                by_bins(rotation, azimuth[found], edges),
                                by_bins(translation, azimuth[found], edges))]
    summary = {'frames': len(rows), 'registered_share': float(found.mean())}
    for name, values in (('rotation_deg', rotation), ('translation_cm', translation)):
        summary[name] = ({'mean': float(values.mean()), 'median': float(np.median(values)),
                          'max': float(values.max())} if len(values) else None)
    return summary, table
