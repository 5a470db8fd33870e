"""
COLMAP's camera poses (pycolmap incremental SfM), scored like our landmark+PnP poses.

The baseline for the pose table: the paper and BARF measure structure-from-motion with COLMAP,
so COLMAP runs on the same images our PnP method sees and is judged by the same protocol
(``head_capture.pose_evaluation``: share of frames registered, Sim(3)-aligned rotation and
translation errors, by azimuth). COLMAP is given what PnP is given: the true intrinsics (one
shared PINHOLE camera), held fixed in bundle adjustment. SIFT, exhaustive matching and
incremental mapping run on the CPU with 2 threads; the model with most registered images is
kept when mapping splits the views into several.

Two inputs. ``--sequences DIR``: paper-protocol synthetic sequences (``subject_NN`` folders,
RGBA views plus ``transforms_train/test.json``); all views of a subject, train and test
together, are put on a flat mid-grey background, as our method sees them. ``--capture DIR``: a
synthetic phone video (``capture.mp4``, ``ground_truth.json``); N frames spread evenly over the
frames not flagged as motion-blurred.

    python bench/colmap_baseline.py --sequences SEQ_DIR --out bench/results/colmap_sequences.json
    python bench/colmap_baseline.py --capture CAPTURE_DIR --out bench/results/colmap_capture.json
"""

import argparse
from contextlib import nullcontext
from pathlib import Path
import sys
import tempfile
import time

from common import capture_frames, pooled_errors, save
from head_capture.files import write_image_atomic
from head_capture.geometry import w2c_to_c2w_opengl
from head_capture.pose_evaluation import evaluate
from head_capture.session import (FrameRecord, read_image, read_transforms, Transforms,
                                  write_transforms)
import numpy as np
import pycolmap

BACKGROUND = 128
THREADS = 2
SEED = 0


def colmap_options(max_features, peak_threshold=None):
    """Return the extraction, matching and mapping options (CPU, 2 threads, fixed camera)."""
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads = THREADS
    extraction.use_gpu = False
    extraction.sift.max_num_features = max_features
    if peak_threshold is not None:
        extraction.sift.peak_threshold = peak_threshold
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = THREADS
    matching.use_gpu = False
    mapping = pycolmap.IncrementalPipelineOptions()
    mapping.num_threads = THREADS
    mapping.random_seed = SEED
    mapping.ba_refine_focal_length = False
    mapping.ba_refine_principal_point = False
    mapping.ba_refine_extra_params = False
    mapping.mapper.abs_pose_refine_focal_length = False
    mapping.mapper.abs_pose_refine_extra_params = False
    return extraction, matching, mapping


def settings(max_features, peak_threshold=None):
    """Describe the COLMAP run for the JSON output."""
    extraction, matching, mapping = colmap_options(max_features, peak_threshold)
    return {
        'camera': 'one shared camera (CameraMode.SINGLE), PINHOLE, true fx fy cx cy given '
                  'as the prior and held fixed (ba_refine_focal_length, '
                  'ba_refine_principal_point, ba_refine_extra_params, '
                  'abs_pose_refine_focal_length, abs_pose_refine_extra_params all False)',
        'features': f'SIFT on CPU, max_num_features {extraction.sift.max_num_features}, '
                    f'peak_threshold {extraction.sift.peak_threshold:.5g}, otherwise pycolmap '
                    'defaults',
        'matching': 'exhaustive, SIFT brute force on CPU, default ratio test, cross check '
                    'and two-view geometric verification',
        'mapping': f'incremental (multiple_models {mapping.multiple_models}, min_model_size '
                   f'{mapping.min_model_size}, init_min_num_inliers '
                   f'{mapping.mapper.init_min_num_inliers}, abs_pose_min_num_inliers '
                   f'{mapping.mapper.abs_pose_min_num_inliers}); the model with most '
                   'registered images is scored',
        'threads': THREADS,
        'random_seed': f'{SEED} (COLMAP is not bit-reproducible with several threads)',
        'device': 'cpu',
    }


def run_colmap(image_dir, names, intrinsics, work, max_features, peak_threshold=None):
    """
    Run SIFT, exhaustive matching and incremental mapping on ``names`` under ``image_dir``.

    Return (the largest reconstruction or None, number of models, seconds per stage,
    database counts).
    """
    extraction, matching, mapping = colmap_options(max_features, peak_threshold)
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = 'PINHOLE'
    # COLMAP puts the centre of the top-left pixel at (0.5, 0.5); Intrinsics at (0, 0).
    reader.camera_params = ','.join(repr(float(v)) for v in (
        intrinsics.fx, intrinsics.fy, intrinsics.cx + 0.5, intrinsics.cy + 0.5))
    database = work / 'database.db'
    database.unlink(missing_ok=True)
    seconds = {}
    pycolmap.set_random_seed(SEED)
    start = time.perf_counter()
    pycolmap.extract_features(database, image_dir, image_names=names,
                              camera_mode=pycolmap.CameraMode.SINGLE, reader_options=reader,
                              extraction_options=extraction, device=pycolmap.Device.cpu)
    seconds['extraction'] = time.perf_counter() - start
    start = time.perf_counter()
    pycolmap.match_exhaustive(database, matching_options=matching, device=pycolmap.Device.cpu)
    seconds['matching'] = time.perf_counter() - start
    db = pycolmap.Database.open(database)
    cameras = db.read_all_cameras()
    inliers = np.array([len(g.inlier_matches) for g in db.read_two_view_geometries()[1]] or [0])
    counts = {'cameras': len(cameras), 'images': db.num_images(),
              'keypoints_mean': db.num_keypoints() / max(db.num_images(), 1),
              'pairs_verified_min_num_matches': int(np.sum(inliers >= mapping.min_num_matches)),
              'pairs_100_inliers': int(np.sum(inliers >= 100)),
              'pair_inliers_max': int(inliers.max()),
              'prior_focal_length': all(c.has_prior_focal_length for c in cameras)}
    db.close()
    start = time.perf_counter()
    models = pycolmap.incremental_mapping(database, image_dir, work / 'sparse', options=mapping)
    seconds['mapping'] = time.perf_counter() - start
    best = max(models.values(), key=lambda m: m.num_reg_images(), default=None)
    return best, len(models), seconds, counts


def predicted_transforms(reconstruction, intrinsics, file_path):
    """Return the registered images of ``reconstruction`` as Transforms (OpenGL c2w)."""
    frames = []
    if reconstruction is not None:
        for image in reconstruction.images.values():
            if not image.has_pose:
                continue
            pose = image.cam_from_world()
            c2w = w2c_to_c2w_opengl(pose.rotation.matrix(), np.asarray(pose.translation))
            frames.append(FrameRecord(file_path(image.name), c2w))
    frames.sort(key=lambda frame: frame.file_path)
    return Transforms(intrinsics, frames, {'colmap': True})


def score(reconstruction, models, seconds, counts, intrinsics, truth, file_path):
    """Evaluate a COLMAP result against ``truth``; return (report, predicted transforms)."""
    predicted = predicted_transforms(reconstruction, intrinsics, file_path)
    report = evaluate(predicted, truth)
    camera = None
    if reconstruction is not None:
        camera = next(iter(reconstruction.cameras.values()))
        report['model'] = {
            'points3D': reconstruction.num_points3D(),
            'mean_reprojection_error_px': reconstruction.compute_mean_reprojection_error(),
            'mean_track_length': reconstruction.compute_mean_track_length(),
            'camera_params_after': [float(v) for v in camera.params]}
    given = [intrinsics.fx, intrinsics.fy, intrinsics.cx + 0.5, intrinsics.cy + 0.5]
    return {'models': models, 'database': counts,
            'camera_params_given': given,
            'seconds': {k: round(v, 2) for k, v in seconds.items()}, **report}, predicted


def sequence_subject(folder, work, max_features, peak_threshold=None):
    """Run COLMAP on all views of one subject and score them; return (report, prediction)."""
    train = read_transforms(folder / 'transforms_train.json')
    test = read_transforms(folder / 'transforms_test.json')
    if train.intrinsics != test.intrinsics:
        raise SystemExit(f'{folder}: train and test cameras differ')
    truth = Transforms(train.intrinsics, train.frames + test.frames, train.meta)
    image_dir = work / 'images'
    names = []
    for frame in truth.frames:
        name = Path(frame.file_path).as_posix()
        (image_dir / name).parent.mkdir(parents=True, exist_ok=True)
        write_image_atomic(image_dir / name, read_image(folder / frame.file_path,
                                                        background=BACKGROUND))
        names.append(name)
    result = run_colmap(image_dir, names, truth.intrinsics, work, max_features, peak_threshold)
    return score(*result, truth.intrinsics, truth, lambda name: name)


def summary(reports):
    """Mean registered share over the inputs and errors pooled over their registered frames."""
    return {'inputs': len(reports),
            'registered_share_mean': float(np.mean([r['registered_share'] for r in reports])),
            'registered_share_min': float(np.min([r['registered_share'] for r in reports])),
            'pooled': pooled_errors(reports)[0],
            'seconds_total': round(sum(sum(r['seconds'].values()) for r in reports), 1)}


def print_report(name, report):
    """Print one input's headline numbers."""
    rot, trans = report['rotation_deg'], report['translation_cm']
    errors = (f'rotation {rot["mean"]:.3f}/{rot["median"]:.3f}° mean/median, translation '
              f'{trans["mean"]:.2f}/{trans["median"]:.2f} cm' if rot else 'no errors')
    print(f'{name}: {report["registered"]}/{report["frames"]} registered in '
          f'{report["models"]} model(s), {errors}; {report["seconds"]}', flush=True)


def main():
    """Run the baseline."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument('--sequences', type=Path, help='folder of subject_NN sequences')
    group.add_argument('--capture', type=Path, help='folder with capture.mp4, ground_truth.json')
    parser.add_argument('--frames', type=int, default=100, help='capture frames to use')
    parser.add_argument('--max-features', type=int, default=8192, help='SIFT features per image')
    parser.add_argument('--peak-threshold', type=float, default=None,
                        help="SIFT peak threshold (default: COLMAP's, 0.02 / 3); lower finds more "
                        'features on weak texture')
    parser.add_argument('--workspace', type=Path, default=None,
                        help='keep COLMAP files here (default: a temporary folder, removed)')
    parser.add_argument('--verbose', action='store_true', help="show COLMAP's log")
    parser.add_argument('--out', type=Path, default=None)
    args = parser.parse_args()
    if not args.verbose:
        pycolmap.logging.minloglevel = pycolmap.logging.WARNING
    kind = 'sequences' if args.sequences else 'capture'
    out = args.out or Path(f'bench/results/colmap_{kind}.json')
    predictions = out.with_name(out.stem + '_transforms')
    if args.workspace:
        args.workspace.mkdir(parents=True, exist_ok=True)
    with (nullcontext(args.workspace) if args.workspace
          else tempfile.TemporaryDirectory(prefix='colmap_')) as temp:
        temp = Path(temp)
        reports = {}
        if args.sequences:
            subjects = sorted(p for p in args.sequences.iterdir()
                              if p.is_dir() and (p / 'transforms_train.json').is_file())
            if not subjects:
                raise SystemExit(f'no subject_NN sequences in {args.sequences}')
            for folder in subjects:
                work = temp / folder.name
                work.mkdir(exist_ok=True)
                report, predicted = sequence_subject(folder, work, args.max_features,
                                                     args.peak_threshold)
                reports[folder.name] = report
                write_transforms(predictions / f'{folder.name}.json', predicted)
                print_report(folder.name, report)
        else:
            start = time.perf_counter()
            images, truth = capture_frames(args.capture, args.frames, temp)
            names = [path.name for path in images.paths]
            prepare = time.perf_counter() - start
            result = run_colmap(temp / 'frames', names, truth.intrinsics, temp,
                                args.max_features, args.peak_threshold)
            report, predicted = score(*result, truth.intrinsics, truth,
                                      lambda name: f'frames/{name}')
            report['seconds']['frame_decoding'] = round(prepare, 2)
            report['image_size'] = [truth.intrinsics.width, truth.intrinsics.height]
            report['source_frames'] = [int(n[6:11]) for n in names]
            reports[args.capture.name] = report
            write_transforms(predictions / f'{args.capture.name}.json', predicted)
            print_report(args.capture.name, report)
    description = {
        'sequences': 'all 100 views per subject (train + test), RGBA composited on flat grey '
                     f'{BACKGROUND}, PNG',
        'capture': f'{args.frames} frames spread evenly over the unblurred frames of '
                   'capture.mp4, full size, PNG'}[kind]
    save(out, {
        'benchmark': f'colmap_baseline ({kind})',
        'command': ' '.join(['python', *sys.argv]),
        'input': str(args.sequences or args.capture),
        'images': description,
        'settings': settings(args.max_features, args.peak_threshold),
        'pycolmap_version': pycolmap.__version__,
        'predicted_transforms': str(predictions),
        'summary': summary(list(reports.values())),
        'results': reports,
    })


if __name__ == '__main__':
    main()
