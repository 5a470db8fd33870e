"""Contact sheets: a grid of samples with their visible landmarks drawn on, by region."""

import cv2
import numpy as np

REGION_COLOURS = {'face': (235, 70, 70), 'ear_left': (70, 220, 70), 'ear_right': (70, 220, 70),
                  'scalp': (80, 120, 255), 'back': (250, 220, 60), 'neck': (230, 80, 230)}


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
