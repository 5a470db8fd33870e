"""Pictures of detections: landmarks by region (faint where hidden), mask outline, head box."""

import cv2
from head_capture.landmarks.template import HeadTemplate
import numpy as np

# The colour of each template region's landmarks, in every picture of them.
REGION_COLOURS = {'face': (235, 70, 70), 'ear_left': (70, 220, 70), 'ear_right': (70, 220, 70),
                  'scalp': (80, 120, 255), 'back': (250, 220, 60), 'neck': (230, 80, 230)}
_REGIONS = None


def _region_colours(count):
    global _REGIONS
    if _REGIONS is None:
        regions = HeadTemplate.load().regions
        _REGIONS = np.array([REGION_COLOURS[r] for r in regions], np.uint8)
    return _REGIONS if len(_REGIONS) == count else np.full((count, 3), 255, np.uint8)


def draw_detection(frame, detection, visible_threshold=0.5):
    """Return a copy of an RGB frame with ``detection`` drawn on it."""
    canvas = np.ascontiguousarray(frame).copy()
    scale = max(1, round(max(frame.shape[:2]) / 400))
    contours, _ = cv2.findContours((detection.mask > 0.5).astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(canvas, contours, -1, (255, 255, 255), scale)
    x, y, side = detection.box
    half = side / 2
    cv2.rectangle(canvas, (int(x - half), int(y - half)), (int(x + half), int(y + half)),
                  (255, 200, 0), scale)
    colours = _region_colours(len(detection.landmarks))
    points = np.round(detection.landmarks).astype(int)
    seen = detection.visibility > visible_threshold
    # Hidden landmarks at a third of their strength: blending with a copy changes only them.
    faint = canvas.copy()
    for (u, v), colour in zip(points[~seen], colours[~seen]):
        cv2.circle(faint, (int(u), int(v)), scale, tuple(int(c) for c in colour), -1)
    canvas = cv2.addWeighted(canvas, 0.65, faint, 0.35, 0.0)
    for (u, v), colour in zip(points[seen], colours[seen]):
        cv2.circle(canvas, (int(u), int(v)), scale + 1, tuple(int(c) for c in colour), -1)
    label = (f'not usable: {detection.problem}' if detection.problem else
             f'{"usable" if detection.usable else "not usable"}, median sigma '
             f'{np.median(detection.sigma):.1f} px')
    cv2.putText(canvas, label, (8, 20 * scale), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale,
                (255, 255, 255), scale, cv2.LINE_AA)
    return canvas
