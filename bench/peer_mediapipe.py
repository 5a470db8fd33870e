"""
Our 360° head landmarks against MediaPipe Face Mesh, per camera azimuth, on held-out views.

The paper's claim is that a face-only detector fails once the face turns away while ours keeps
the head all the way round. Both run on the same held-out synthetic views and are scored on a
shared handful of semantic points (nose tip, eye and mouth corners, chin, forehead, face
sides), normalised by the head-box diagonal. The MediaPipe point -> template landmark
correspondence is learnt on near-frontal views of half the identities (MediaPipe's best case)
and those calibration views are left out of the error figures.

MediaPipe 0.10.21 (the last release with the legacy ``solutions`` API and bundled models)
needs numpy<2, so it runs in its own venv (``make peer-venv``) as a subprocess of this script
in ``--mediapipe-worker`` mode, which imports only numpy and mediapipe.

    python bench/peer_mediapipe.py --set DIR --out bench/results/peer_mediapipe.json
"""

import argparse
import os
from pathlib import Path
import subprocess
import tempfile
import time

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PEER_PYTHON = ROOT / '.venv-peer' / 'bin' / 'python'
# MediaPipe Face Mesh index -> name of the semantic point it marks (subject's left/right).
MEDIAPIPE_POINTS = {1: 'nose tip', 33: 'right eye outer corner', 133: 'right eye inner corner',
                    362: 'left eye inner corner', 263: 'left eye outer corner',
                    61: 'right mouth corner', 291: 'left mouth corner', 152: 'chin',
                    10: 'forehead top', 234: 'right face side', 454: 'left face side'}
MEDIAPIPE_LANDMARKS = 468
CALIBRATION_AZIMUTH_DEG = 20.0
FACE_ON_AZIMUTH_DEG = 45.0


def mediapipe_worker(images_path, out_path):
    """Run Face Mesh on every image; only numpy and mediapipe exist in the peer venv."""
    import mediapipe as mp

    images = np.load(images_path, mmap_mode='r')
    landmarks = np.full((len(images), MEDIAPIPE_LANDMARKS, 2), np.nan, np.float32)
    found = np.zeros(len(images), bool)
    start = time.perf_counter()
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                         refine_landmarks=False,
                                         min_detection_confidence=0.5) as mesh:
        for n, image in enumerate(images):
            faces = mesh.process(np.ascontiguousarray(image)).multi_face_landmarks
            if not faces:
                continue
            points = np.array([(p.x, p.y) for p in faces[0].landmark], np.float32)
            # Normalised coordinates have pixel i spanning [i, i+1); ours put its centre at i.
            landmarks[n] = points[:MEDIAPIPE_LANDMARKS] * image.shape[1::-1] - 0.5
            found[n] = True
    np.savez(out_path, landmarks=landmarks, found=found, version=mp.__version__,
             seconds=time.perf_counter() - start)


def run_mediapipe(images, peer_python):
    """Return MediaPipe landmarks, found flags, version and seconds, via the peer venv."""
    if not Path(peer_python).is_file():
        raise SystemExit(f'{peer_python} not found: run make peer-venv first')
    env = {**os.environ, 'GLOG_minloglevel': '2', 'TF_CPP_MIN_LOG_LEVEL': '2'}
    with tempfile.TemporaryDirectory() as folder:
        images_path, out_path = Path(folder) / 'images.npy', Path(folder) / 'mediapipe.npz'
        np.save(images_path, images)
        done = subprocess.run([str(peer_python), __file__, '--mediapipe-worker',
                               str(images_path), str(out_path)],
                              capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise SystemExit(f'MediaPipe worker failed ({done.returncode}):\n'
                             + done.stderr[-3000:])
        with np.load(out_path) as result:
            return (result['landmarks'], result['found'], str(result['version']),
                    float(result['seconds']))


def run_ours(images, model):
    """Return our landmarks (B, 703, 2), usable flags and seconds."""
    from head_capture.landmarks.detector import LandmarkDetector

    detector = LandmarkDetector(model, threads=2)
    start = time.perf_counter()
    detections = [detector.detect(image) for image in images]
    return (np.stack([d.landmarks for d in detections]),
            np.array([d.usable for d in detections]), time.perf_counter() - start)


def identity_ids(phenotypes):
    """Give identities ids by first appearance; views of one head share its phenotype."""
    _, first, inverse = np.unique(phenotypes, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inverse.ravel()]


def match_points(predicted, truth, valid, diagonal):
    """
    Template landmark nearest each MediaPipe point on average, with its normalised residual.

    predicted (C, K, 2) MediaPipe points, truth (C, L, 2) true template landmarks; landmarks
    out of the window in any calibration view cannot be matched.
    """
    distance = np.linalg.norm(predicted[:, :, None] - truth[:, None], axis=-1)
    mean = (distance / diagonal[:, None, None]).mean(0)
    mean[:, ~valid.all(0)] = np.inf
    nearest = mean.argmin(1)
    return nearest, mean[np.arange(len(nearest)), nearest]


def shared_errors(predicted, truth, valid, diagonal):
    """Per-view, per-point error over the head diagonal, (B, K); NaN where truth is off-window."""
    distance = np.linalg.norm(predicted - truth, axis=-1) / diagonal[:, None]
    return np.where(valid, distance, np.nan)


def view_means(errors):
    """Mean error per view over its in-window shared points; NaN if none is in the window."""
    count = np.isfinite(errors).sum(1)
    return np.where(count > 0, np.nansum(errors, 1) / np.maximum(count, 1), np.nan)


def summarise(rows, mp_found, ours_usable, mp_error, ours_error, evaluated):
    """Score ``rows``: detection rates over all of them, errors over the evaluated ones."""
    scored = rows & evaluated
    both = scored & mp_found

    def mean(values, where):
        return float(np.nanmean(values[where])) if where.any() else None

    return {'views': int(rows.sum()), 'error_views': int(scored.sum()),
            'mediapipe_detection_rate': float(mp_found[rows].mean()) if rows.any() else None,
            'ours_detection_rate': float(ours_usable[rows].mean()) if rows.any() else None,
            'mediapipe_error_views': int(both.sum()),
            'mediapipe_nme': mean(mp_error, both),
            'ours_nme': mean(ours_error, scored),
            'ours_nme_on_mediapipe_found': mean(ours_error, both)}


def print_table(bins, overall):
    """Print one row per bin (``from``..``to``) and the overall row if given."""
    def number(value, fmt):
        return format(value, fmt) if value is not None else '-'

    print(f'{"azimuth":>12} {"views":>5} {"MP found":>8} {"ours ok":>7} {"MP NME":>7} '
          f'{"ours NME":>8} {"ours@MP":>7}')
    for row in bins + ([overall] if overall else []):
        label = row.get('label') or f'{row["from"]:.0f}..{row["to"]:.0f}'
        print(f'{label:>12} {row["views"]:5d} {number(row["mediapipe_detection_rate"], "8.0%")} '
              f'{number(row["ours_detection_rate"], "7.0%")} '
              f'{number(row["mediapipe_nme"], "7.3f")} {number(row["ours_nme"], "8.3f")} '
              f'{number(row["ours_nme_on_mediapipe_found"], "7.3f")}')


def bench(args):
    """Run both detectors on the set, calibrate the correspondence, score per azimuth."""
    from common import save
    from head_capture.landmarks.dataset import read_samples
    from head_capture.landmarks.detector import default_model_path
    from head_capture.landmarks.metrics import (azimuth_edges, binned_view_angles,
                                                ELEVATION_BANDS_DEG, head_diagonal, in_window)
    from head_capture.landmarks.template import HeadTemplate

    start = time.perf_counter()
    samples = read_samples(args.set, args.limit)
    images, truth = samples['images'], samples['landmarks']
    # The set's own template if it carries one: its landmarks are numbered by it.
    template_path = Path(args.set) / 'head_template.json'
    if not template_path.is_file():
        template_path = ROOT / 'models' / 'head_template.json'
    template = HeadTemplate.load(template_path)
    model = args.model or default_model_path()
    print(f'{len(images)} views from {args.set}; running MediaPipe ...', flush=True)
    mp_points, mp_found, mp_version, mp_seconds = run_mediapipe(images, args.peer_python)
    print(f'MediaPipe {mp_version}: {mp_seconds:.0f} s; running ours ...', flush=True)
    ours, ours_usable, ours_seconds = run_ours(images, model)
    print(f'ours: {ours_seconds:.0f} s', flush=True)

    valid = in_window(truth, images.shape[1])
    diagonal = np.maximum(head_diagonal(truth, valid), 1e-6)
    azimuth, elevation = binned_view_angles(samples['rotations'], samples['translations'])
    # Calibrate on half the identities so the front bins still hold scored views.
    calibration = ((np.abs(azimuth) < CALIBRATION_AZIMUTH_DEG) & mp_found
                   & (identity_ids(samples['phenotypes']) % 2 == 0))
    if not calibration.any():
        raise SystemExit('no near-frontal view with a MediaPipe face to calibrate on')
    mp_index = np.array(list(MEDIAPIPE_POINTS))
    template_index, residual = match_points(mp_points[calibration][:, mp_index],
                                            truth[calibration], valid[calibration],
                                            diagonal[calibration])

    shared_truth, shared_valid = truth[:, template_index], valid[:, template_index]
    mp_errors = shared_errors(mp_points[:, mp_index], shared_truth, shared_valid, diagonal)
    ours_errors = shared_errors(ours[:, template_index], shared_truth, shared_valid, diagonal)
    mp_view, ours_view = view_means(mp_errors), view_means(ours_errors)
    evaluated = ~calibration & np.isfinite(ours_view)

    edges = azimuth_edges()
    which = np.digitize(azimuth, edges) - 1
    bins = [{'from': float(edges[i]), 'to': float(edges[i + 1]),
             **summarise(which == i, mp_found, ours_usable, mp_view, ours_view, evaluated)}
            for i in range(len(edges) - 1)]
    # Face Detection also gives up on steep elevations: split the face-on views by elevation.
    bands = np.array(ELEVATION_BANDS_DEG)
    band = np.digitize(elevation, bands) - 1
    face_on = np.abs(azimuth) < FACE_ON_AZIMUTH_DEG
    face_on_bands = [{'from': float(bands[i]), 'to': float(bands[i + 1]),
                      **summarise(face_on & (band == i), mp_found, ours_usable, mp_view,
                                  ours_view, evaluated)}
                     for i in range(len(bands) - 1)]
    everything = np.ones(len(images), bool)
    overall = {'label': 'all', **summarise(everything, mp_found, ours_usable, mp_view,
                                           ours_view, evaluated)}
    both = evaluated & mp_found
    correspondence = [
        {'mediapipe_index': int(m), 'name': MEDIAPIPE_POINTS[m], 'template_index': int(t),
         'template_region': template.regions[t],
         'calibration_residual_nme': round(float(r), 4),
         'mediapipe_nme': float(np.nanmean(mp_errors[both, k])) if both.any() else None,
         'ours_nme_on_mediapipe_found': (float(np.nanmean(ours_errors[both, k]))
                                         if both.any() else None)}
        for k, (m, t, r) in enumerate(zip(mp_index, template_index, residual))]
    print_table(bins, overall)
    print(f'face-on views (|azimuth| < {FACE_ON_AZIMUTH_DEG:.0f}) by elevation:')
    print_table(face_on_bands, None)
    for row in correspondence:
        print(f'  MP {row["mediapipe_index"]:3d} {row["name"]:<23} -> template '
              f'{row["template_index"]:3d} ({row["template_region"]}), '
              f'calibration residual {row["calibration_residual_nme"]:.3f}')
    save(args.out, {
        'benchmark': 'MediaPipe Face Mesh vs ours on held-out synthetic views, by azimuth',
        'set': str(Path(args.set).resolve()), 'model': str(Path(model).resolve()),
        'mediapipe_version': mp_version,
        'mediapipe_settings': {'static_image_mode': True, 'max_num_faces': 1,
                               'refine_landmarks': False, 'min_detection_confidence': 0.5},
        'error': 'mean over the shared points of |predicted - true| / head-box diagonal '
                 '(box of the in-window true landmarks); hidden points included',
        'calibration': {'rule': f'|azimuth| < {CALIBRATION_AZIMUTH_DEG:.0f} deg, MediaPipe '
                                'found a face, even-numbered identities',
                        'views': int(calibration.sum())},
        'correspondence': correspondence,
        'overall': overall, 'by_azimuth': bins,
        f'by_elevation_azimuth_within_{FACE_ON_AZIMUTH_DEG:.0f}_deg': face_on_bands,
        'seconds': {'mediapipe': round(mp_seconds, 1), 'ours': round(ours_seconds, 1),
                    'wall': round(time.perf_counter() - start, 1)}})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--set', help='held-out landmark set (folder with manifest.json)')
    parser.add_argument('--model', help='ONNX landmark model (default: the shipped one)')
    parser.add_argument('--limit', type=int, help='use the first N views only')
    parser.add_argument('--out', default='bench/results/peer_mediapipe.json')
    parser.add_argument('--peer-python', default=str(PEER_PYTHON),
                        help='python of the MediaPipe venv (default: .venv-peer)')
    parser.add_argument('--mediapipe-worker', nargs=2, metavar=('IN_NPY', 'OUT_NPZ'),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mediapipe_worker:
        mediapipe_worker(*args.mediapipe_worker)
    elif not args.set:
        parser.error('--set is required')
    else:
        bench(args)


if __name__ == '__main__':
    main()
