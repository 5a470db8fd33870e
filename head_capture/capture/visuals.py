"""
What the live view draws, as plain arrays: camera frustums, the coverage dome, the annotated frame.

The nodes turn these into rviz markers and images; keeping the geometry here lets it be tested
and reused (the report draws the same dome) without ROS.
"""

import cv2
from head_capture.capture.coverage import BAND_COLOURS, coverage_image
from head_capture.geometry import camera_center, sphere_point
from head_capture.landmarks.overlay import draw_detection
import numpy as np

# Bins of the dome: seen-but-not-enough and covered, with the empty ones faint.
_DOME_ALPHA = np.array([0.15, 0.55, 0.7])


def frustum_segments(rotation, translation, intrinsics, depth=0.06):
    """
    Return the 8 line segments (16, 3) of a camera's frustum in the world (head) frame.

    Four edges from the centre to the image corners at ``depth`` metres and the four sides of
    the image rectangle there: an rviz LINE_LIST.
    """
    w, h = intrinsics.width, intrinsics.height
    corners = np.array([[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]])
    rays = intrinsics.rays(corners[:, 0], corners[:, 1])
    rotation = np.asarray(rotation, float)
    centre = camera_center(rotation, translation)
    far = (rays * depth) @ rotation + centre  # camera -> world: R^T x + centre
    apex = np.repeat(centre[None], 4, 0)
    sides = np.stack([far, np.roll(far, -1, 0)], 1).reshape(-1, 3)
    return np.vstack([np.stack([apex, far], 1).reshape(-1, 3), sides])


def dome_triangles(coverage, radius=0.5, steps=3):
    """
    Return the coverage dome as triangles (M, 3, 3) and RGBA colours (M, 4) in [0, 1].

    Each azimuth x elevation bin is a patch of the sphere of ``radius`` around the head,
    ``steps`` x ``steps`` quads, coloured as the coverage ring colours it.
    """
    centres = coverage.centres()
    half = coverage.sector_deg / 2
    state = np.where(coverage.covered, 2, np.where(coverage.quality > 0, 1, 0))
    t = np.linspace(0.0, 1.0, steps + 1)
    triangles, colours = [], []
    for band in range(len(coverage.edges) - 1):
        low, high = coverage.edges[band], coverage.edges[band + 1]
        for sector in range(coverage.quality.shape[1]):
            azimuth = np.radians(centres[band, sector, 0] - half + 2 * half * t)
            elevation = np.radians(low + (high - low) * t)
            grid = sphere_point(radius, *np.meshgrid(azimuth, elevation))
            a, b = grid[:-1, :-1].reshape(-1, 3), grid[:-1, 1:].reshape(-1, 3)
            c, d = grid[1:, 1:].reshape(-1, 3), grid[1:, :-1].reshape(-1, 3)
            quads = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
            triangles.append(quads)
            rgba = np.append(BAND_COLOURS[state[band, sector]] / 255.0,
                             _DOME_ALPHA[state[band, sector]])
            colours.append(np.repeat(rgba[None], len(quads), 0))
    return np.concatenate(triangles), np.concatenate(colours)


def project_axes(rotation, translation, intrinsics, length=0.1):
    """Return the head origin and its x, y, z axis tips in pixels (4, 2), or None if behind."""
    points = np.vstack([np.zeros(3), np.eye(3) * length])
    camera = points @ np.asarray(rotation, float).T + np.asarray(translation, float)
    if np.any(camera[:, 2] <= 1e-3):
        return None
    pixels, _ = cv2.projectPoints(points, cv2.Rodrigues(np.asarray(rotation, float))[0],
                                  np.asarray(translation, float), intrinsics.matrix,
                                  np.array(intrinsics.distortion, float))
    return pixels[:, 0]


def guidance_image(frame, text, detection=None, estimate=None, intrinsics=None,
                   coverage=None, view=None, ring_share=0.28):
    """
    Return the frame with landmarks, the head axes, the coverage ring and the instruction.

    Any of ``detection``, ``estimate`` (with ``intrinsics``) and ``coverage`` may be missing:
    what is known is drawn.
    """
    canvas = draw_detection(frame, detection) if detection is not None else frame.copy()
    height, width = canvas.shape[:2]
    scale = max(1, round(max(height, width) / 400))
    if estimate is not None and estimate.registered and intrinsics is not None:
        axes = project_axes(estimate.rotation, estimate.translation, intrinsics)
        if axes is not None:
            origin = tuple(int(v) for v in np.round(axes[0]))
            for tip, colour in zip(axes[1:], ((255, 0, 0), (0, 255, 0), (0, 0, 255))):
                cv2.line(canvas, origin, tuple(int(v) for v in np.round(tip)), colour,
                         2 * scale, cv2.LINE_AA)
    if coverage is not None:
        side = max(32, int(ring_share * min(height, width)))
        ring = coverage_image(coverage, side, view)
        canvas[:side, width - side:] = ring
    bar = max(24, 14 * scale + 10)
    canvas[height - bar:] = (canvas[height - bar:] * 0.35).astype(np.uint8)
    cv2.putText(canvas, text, (8, height - bar // 3), cv2.FONT_HERSHEY_SIMPLEX,
                0.45 * scale + 0.15, (255, 255, 255), scale, cv2.LINE_AA)
    return canvas
