"""Contact sheets: a grid of samples with their visible landmarks drawn on, by region."""

import cv2
from head_capture.geometry import view_angles
from head_capture.landmarks.overlay import REGION_COLOURS
from head_capture.synth.appearance import HAIR_STYLES, SKIN_TONES
import numpy as np


def contact_sheet(images, landmarks, visible, regions, columns=8, labels=None):
    """Tile ``images`` (N, H, W, 3) with each one's visible landmarks as coloured dots."""
    colours = np.array([REGION_COLOURS.get(r, (255, 255, 255)) for r in regions])
    tiles = []
    for n, image in enumerate(images):
        tile = np.ascontiguousarray(image).copy()
        for (u, v), colour in zip(np.round(landmarks[n][visible[n]]).astype(int),
                                  colours[visible[n]]):
            cv2.circle(tile, (int(u), int(v)), 1, tuple(int(c) for c in colour), -1)
        if labels is not None:
            cv2.putText(tile, str(labels[n]), (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                        (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % columns)
    rows = [np.hstack(tiles[i:i + columns]) for i in range(0, len(tiles), columns)]
    return np.vstack(rows)


def variety_chart(rotations, translations, skin_rgb, hair_styles, width=900):
    """
    Draw histograms of what a landmark set covers.

    Camera azimuth and elevation around the head, skin tone (the nearest Monk swatch) and
    hair style, one panel each.
    """
    azimuth, elevation = view_angles(rotations, translations)
    tone = np.argmin(np.linalg.norm(skin_rgb[:, None] - SKIN_TONES[None], axis=2), axis=1)
    panels = [
        ('camera azimuth (deg)', np.histogram(azimuth, 36, (-180, 180))[0], '-180', '180'),
        ('camera elevation (deg)', np.histogram(elevation, 24, (-90, 90))[0], '-90', '90'),
        ('skin tone (Monk 1-10)', np.bincount(tone, minlength=10), '1', '10'),
        ('hair style: ' + ' / '.join(HAIR_STYLES),
         np.array([(np.asarray(hair_styles) == s).sum() for s in HAIR_STYLES]), '', ''),
    ]
    return np.vstack([_bar_panel(title, counts, low, high, width)
                      for title, counts, low, high in panels])


def _bar_panel(title, counts, low, high, width, height=170):
    panel = np.full((height, width, 3), 255, np.uint8)
    top, bottom, left, right = 30, height - 22, 40, width - 20
    step = (right - left) / len(counts)
    scale = (bottom - top) / max(1, counts.max())
    for n, count in enumerate(counts):
        x0, x1 = int(left + n * step + 1), int(left + (n + 1) * step - 1)
        cv2.rectangle(panel, (x0, int(bottom - count * scale)), (x1, bottom), (200, 110, 70), -1)
    cv2.line(panel, (left, bottom), (right, bottom), (0, 0, 0), 1)
    text = (cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(panel, f'{title}   (n = {int(counts.sum())}, max bin {int(counts.max())})',
                (left, 20), *text)
    cv2.putText(panel, low, (left, height - 6), *text)
    cv2.putText(panel, high, (right - 30, height - 6), *text)
    return panel
