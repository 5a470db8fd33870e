r"""
Landmark PnP on every view of posed image sets, against their true cameras.

Each argument is a transforms.json with the true cameras (a synthetic sequence's
``subject_NN/transforms_train.json``, or a real calibrated capture's truth): its views are
registered one by one as ``head-capture poses`` would, then scored by ``pose_evaluation``
(Sim(3) on camera centres; rotation in degrees, translation in the truth's units x 100).
Per set and pooled: registered share, mean / median / max errors, 30° azimuth bins.

    python bench/registered_poses.py SEQ/subject_*/transforms_train.json \\
        [--model M] --out bench/results/registered_poses_SEED.json
"""

import argparse
from pathlib import Path

from common import pooled_errors, save
from head_capture.capture.pose import PoseConfig
from head_capture.capture.registration import (find_images, register_images,
                                               registered_transforms)
from head_capture.landmarks.detector import default_model_path, LandmarkDetector
from head_capture.landmarks.template import HeadTemplate
from head_capture.pose_evaluation import evaluate
from head_capture.session import read_transforms


def register_and_score(truth_path, detector, template):
    """Register the views of one truth file; return pose_evaluation's report."""
    truth_path = Path(truth_path)
    images = find_images(truth_path)
    estimates = register_images(images, detector, template, PoseConfig())
    predicted = registered_transforms(images, estimates, truth_path.parent / 'estimated.json')
    return evaluate(predicted, read_transforms(truth_path))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('truth', nargs='+', type=Path, help='transforms.json with true cameras')
    parser.add_argument('--model', type=Path, default=None)
    parser.add_argument('--out', required=True)
    args = parser.parse_args()
    model = args.model or default_model_path()
    detector = LandmarkDetector(model, threads=2)
    template = HeadTemplate.load().positions
    reports = {}
    for path in args.truth:
        report = register_and_score(path, detector, template)
        reports[str(path)] = report
        rotation = report['rotation_deg'] or {}
        print(f"{path}: {report['registered']}/{report['frames']} registered, rotation "
              f"{rotation.get('mean', float('nan')):.2f}° mean, "
              f"{rotation.get('median', float('nan')):.2f}° median")
    summary, table = pooled_errors(list(reports.values()))
    print('pooled:', summary)
    save(args.out, {'benchmark': 'landmark PnP on posed image sets', 'model': str(model),
                    'pooled': summary, 'by_azimuth': table,
                    'sets': {name: {key: report[key] for key in (
                        'frames', 'registered', 'registered_share', 'rotation_deg',
                        'translation_cm', 'unregistered')} for name, report in reports.items()}})


if __name__ == '__main__':
    main()
