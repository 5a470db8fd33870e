"""
Detector overlays on the real photographs that installed packages ship.

scikit-image carries two photographs with people: the astronaut (Eileen Collins, a frontal
portrait) and the cameraman (a man behind a camera, seen from his side, in grey). Each is
shown as is, rotated by 30° and mirrored, with landmarks drawn by region (faint: predicted
hidden), the mask outline and the head box. What they show must be looked at, not scored:
there is no ground truth.

    python bench/real_photos.py --out bench/results/real_photos.png
"""

import argparse

from common import save
import cv2
from head_capture.landmarks.detector import default_model_path, LandmarkDetector
from head_capture.landmarks.overlay import draw_detection
import numpy as np


def variants(image):
    """Return the photo as is, rotated 30° about its centre, and mirrored."""
    height, width = image.shape[:2]
    turn = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), 30, 1.0)
    return [image, cv2.warpAffine(image, turn, (width, height), borderMode=cv2.BORDER_REFLECT),
            np.ascontiguousarray(image[:, ::-1])]


def main():
    from skimage import data

    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', default=None)
    parser.add_argument('--out', default='bench/results/real_photos.png')
    args = parser.parse_args()
    detector = LandmarkDetector(args.model, threads=2)
    photos = {'astronaut': data.astronaut(),
              'cameraman': cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2RGB)}
    tiles, summary = [], {}
    for name, photo in photos.items():
        for label, image in zip(('upright', 'rotated 30', 'mirrored'), variants(photo)):
            detection = detector.detect(image)
            tile = cv2.resize(draw_detection(image, detection), (384, 384))
            cv2.putText(tile, f'{name}, {label}', (8, 372), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (255, 255, 0), 1, cv2.LINE_AA)
            tiles.append(tile)
            summary[f'{name} {label}'] = {
                'usable': detection.usable, 'box': [round(v, 1) for v in detection.box],
                'median_sigma_px': round(float(np.median(detection.sigma)), 2),
                'visible_share': round(float(detection.visible.mean()), 3)}
    sheet = np.vstack([np.hstack(tiles[:3]), np.hstack(tiles[3:])])
    cv2.imwrite(args.out, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(summary)
    save(args.out.replace('.png', '.json'), {'benchmark': 'detector on real photographs',
                                             'model': str(args.model or default_model_path()),
                                             'photos': summary})


if __name__ == '__main__':
    main()
