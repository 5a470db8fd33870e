"""
Estimated camera poses against the truth, by the paper's (and BARF's) protocol.

Frames are matched by image path; a frame of the truth that the estimate lacks, or has without
a pose, counts as unregistered. Registered camera centres are aligned to the true ones by a
similarity, so any reconstruction frame and scale (PnP's head frame, COLMAP's arbitrary one)
is judged the same way.
"""

import os

from head_capture.geometry import c2w_opengl_to_w2c, pose_errors
from head_capture.landmarks.metrics import azimuth_edges, binned_view_angles, by_bins
from head_capture.session import read_transforms
import numpy as np


def frame_key(file_path):
    """Return the part of a frame path both files agree on: its last two components."""
    parts = os.path.normpath(str(file_path)).replace(os.sep, '/').split('/')
    return '/'.join(parts[-2:])


def _poses(transforms):
    """Return {frame key: (R, t)} for the frames that have a pose."""
    poses = {}
    for frame in transforms.frames:
        if frame.c2w is not None:
            poses[frame_key(frame.file_path)] = c2w_opengl_to_w2c(frame.c2w)
    return poses


def _stats(values):
    return {'mean': float(np.mean(values)), 'median': float(np.median(values)),
            'max': float(np.max(values))}


def evaluate(predicted, truth):
    """
    Return registered share and Sim(3)-aligned rotation (°) / translation (cm) errors.

    ``predicted`` and ``truth`` are ``session.Transforms``. Errors cover the registered frames
    and need at least three of them, not all on one line; otherwise they are None. Per-frame
    errors and a breakdown by the true camera's azimuth (30° bins, 0 = in front of the face)
    come with the summary.
    """
    estimate = _poses(predicted)
    keys = [frame_key(frame.file_path) for frame in truth.frames]
    if not keys:
        raise ValueError('the true transforms list no frames')
    if len(set(keys)) != len(keys):
        raise ValueError('the true transforms name some frame twice')
    true_poses = _poses(truth)
    missing = [key for key in keys if key not in true_poses]
    if missing:
        raise ValueError(f'the true transforms lack a pose for {len(missing)} frame(s), '
                         f'e.g. {missing[0]}')
    registered = [key for key in keys if key in estimate]
    report = {'frames': len(keys), 'registered': len(registered),
              'registered_share': len(registered) / max(len(keys), 1),
              'unregistered': [key for key in keys if key not in estimate],
              'rotation_deg': None, 'translation_cm': None}
    rotations_true = np.array([true_poses[k][0] for k in keys])
    translations_true = np.array([true_poses[k][1] for k in keys])
    azimuth, elevation = binned_view_angles(rotations_true, translations_true)
    rotation_error = np.full(len(keys), np.nan)
    translation_error = np.full(len(keys), np.nan)
    if len(registered) >= 3:
        index = np.array([keys.index(k) for k in registered])
        try:
            errors = pose_errors(np.array([estimate[k][0] for k in registered]),
                                 np.array([estimate[k][1] for k in registered]),
                                 rotations_true[index], translations_true[index])
        except ValueError:  # collinear centres: no alignment, no errors
            errors = None
        if errors is not None:
            rotation_error[index] = errors.rotation_deg
            translation_error[index] = errors.translation_cm
            report.update(rotation_deg=_stats(errors.rotation_deg),
                          translation_cm=_stats(errors.translation_cm),
                          alignment_scale=errors.alignment.scale)
    found = ~np.isnan(rotation_error)
    edges = azimuth_edges()
    report['by_azimuth'] = [
        {**{k: b[k] for k in ('from', 'to', 'count')},
         'registered_share': (float(np.mean(found[(azimuth >= b['from']) & (azimuth < b['to'])]))
                              if b['count'] else None),
         'rotation_deg_mean': r['mean'], 'translation_cm_mean': t['mean']}
        for b, r, t in zip(by_bins(found.astype(float), azimuth, edges),
                           by_bins(rotation_error[found], azimuth[found], edges),
                           by_bins(translation_error[found], azimuth[found], edges))]
    report['per_frame'] = [
        {'frame': key, 'azimuth_deg': round(float(a), 2), 'elevation_deg': round(float(e), 2),
         'rotation_deg': None if np.isnan(r) else round(float(r), 4),
         'translation_cm': None if np.isnan(t) else round(float(t), 4)}
        for key, a, e, r, t in zip(keys, azimuth, elevation, rotation_error, translation_error)]
    return report


def evaluate_files(predicted_path, truth_path):
    """``evaluate`` on two transforms.json files; a problem with the truth names its file."""
    predicted, truth = read_transforms(predicted_path), read_transforms(truth_path)
    try:
        return evaluate(predicted, truth)
    except ValueError as exc:
        raise ValueError(f'{truth_path}: {exc}') from exc
