"""
The visual hull of the training views: space their masks show to be empty.

A point that several training views see against sure background cannot hold the head, whatever
other views say; density there is a floater. A field trained with random backgrounds still
leaves faint floaters in such space, where views disagree (a detector calling the top of the
chest head in one view and room in the next) or where few rays were drawn. Cutting the fields
to the hull takes them out of what the avatar shows.
"""

import math

import numpy as np
import torch

# Cells along each side of the box the hull is worked out in (3-4 mm for a head volume).
HULL_CELLS = 96


class VisualHull:
    """Cells of a box that at least ``min_views`` views see as sure background, less a margin."""

    def __init__(self, low, high, empty):
        self.low = torch.as_tensor(low, dtype=torch.float32)
        self.high = torch.as_tensor(high, dtype=torch.float32)
        self.empty = empty

    @classmethod
    def of_views(cls, views, ids, rotations, translations, low, high, min_views, margin,
                 cells=HULL_CELLS):
        """
        Work out the hull of views ``ids`` at the given poses in the box ``low``..``high``.

        A cell is empty when ``min_views`` views see its centre on a pixel their mask is sure
        is background, and so are its neighbours within ``margin`` (scene units): masks and
        refined cameras are off by a pixel or two along the silhouette, and an empty cell there
        would bite into the head.
        """
        low, high = np.asarray(low, float), np.asarray(high, float)
        axes = [torch.linspace(float(a), float(b), cells) for a, b in zip(low, high)]
        centres = torch.stack(torch.meshgrid(*axes, indexing='ij'), -1).reshape(-1, 3)
        sure = views.weights if views.weights is not None else torch.ones_like(views.masks)
        background = (views.masks < 0.5) & (sure > 0.5)
        camera = views.intrinsics
        votes = torch.zeros(len(centres), dtype=torch.int32)
        rotations, translations = (torch.as_tensor(p).float() for p in (rotations, translations))
        for frame, rotation, translation in zip(ids, rotations, translations):
            x = centres @ rotation.T + translation
            depth = x[:, 2].clamp_min(1e-9)
            u = (camera.fx * x[:, 0] / depth + camera.cx).round().long()
            v = (camera.fy * x[:, 1] / depth + camera.cy).round().long()
            seen = (x[:, 2] > 0) & (u >= 0) & (u < camera.width) & (v >= 0) & (v < camera.height)
            votes[seen] += background[frame][v[seen], u[seen]].int()
        empty = (votes >= min_views).float().reshape(1, 1, cells, cells, cells)
        reach = math.ceil(margin / float(np.min((high - low) / (cells - 1))))
        if reach > 0:
            # Erode the empty cells: one that has a non-empty neighbour within reach is kept.
            empty = -torch.nn.functional.max_pool3d(-empty, 2 * reach + 1, 1, reach)
        return cls(low, high, empty[0, 0] > 0.5)

    def to(self, device):
        """Return the hull on ``device``, where the points it is asked about will be."""
        return VisualHull(self.low.to(device), self.high.to(device), self.empty.to(device))

    def outside(self, points):
        """Return which ``points`` (..., 3) lie in empty cells (numpy or torch, like points)."""
        as_numpy = isinstance(points, np.ndarray)
        p = torch.as_tensor(points, dtype=torch.float32, device=self.empty.device)
        cells = self.empty.shape[0]
        index = ((p - self.low) / (self.high - self.low) * (cells - 1)).round().long()
        within = ((index >= 0) & (index < cells)).all(-1)
        index = index.clamp(0, cells - 1)
        empty = self.empty[index[..., 0], index[..., 1], index[..., 2]] & within
        return empty.cpu().numpy() if as_numpy else empty
