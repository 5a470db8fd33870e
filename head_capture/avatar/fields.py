"""
Radiance fields: the paper's NeRF MLP and a multi-resolution grid for speed, both coarse-to-fine.

BARF's insight: a field that can already express fine detail gives pose gradients that point
anywhere, so high frequencies are faded in as training progresses. For the MLP the faded bands
are the positional encoding's frequencies; for the grid they are its finer levels (the coarsest
level is always on). Both take points and unit view directions and return colour in [0, 1] and
a non-negative density, zero outside their cube and, when given one, outside a support
ellipsoid (a session's head volume: see ``head_capture.capture.head_volume``).
"""

import math

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


def coarse_to_fine(progress, bands, start, end):
    """
    Return the BARF weights (bands,) of frequency bands at training ``progress`` in [0, 1].

    Band k fades in (a raised cosine) while (progress - start) / (end - start) * bands goes
    from k to k + 1; ``end <= start`` switches the schedule off (all ones).
    """
    if end <= start:
        return torch.ones(bands)
    alpha = min(max((progress - start) / (end - start), 0.0), 1.0) * bands
    k = torch.arange(bands, dtype=torch.float32)
    return (1.0 - torch.cos(math.pi * (alpha - k).clamp(0.0, 1.0))) / 2.0


def positional_encoding(x, bands, weights=None):
    """Return [x, sin(2^k pi x), cos(2^k pi x) for k < bands], band k scaled by weights[k]."""
    frequencies = (2.0 ** torch.arange(bands, dtype=x.dtype, device=x.device)) * math.pi
    angles = x[..., None, :] * frequencies[:, None]  # (..., bands, D)
    encoded = torch.stack([torch.sin(angles), torch.cos(angles)], -2)  # (..., bands, 2, D)
    if weights is not None:
        encoded = encoded * weights.to(x)[:, None, None]
    return torch.cat([x, encoded.flatten(-3)], -1)


def _density(raw, scale):
    """
    Return density per unit length from a raw output, in units of the scene's size.

    Fields hold no density outside the cube of half-side ``scale``. A raw 0 gives a ray
    through the whole scene an opacity of about 0.1, so a new field starts nearly transparent
    (an opaque start traps the MLP); large raw values stay linear.
    """
    return F.softplus(raw - 3.0) / scale


class BoundedField(nn.Module):
    """
    A field's support: the cube of half-side ``scale``, cut to an ellipsoid when one is given.

    ``support`` is (centre, semi_axes) in scene units, or (centre, semi_axes, left_out) with
    ``left_out`` a function marking the points (..., 3) of the ellipsoid it leaves out. It is
    not part of the state dict: it comes with the data the field is trained on.
    """

    def __init__(self, scale, support=None):
        super().__init__()
        self.scale = scale
        self.register_buffer('support_centre', torch.zeros(3), persistent=False)
        self.register_buffer('support_axes', torch.zeros(3), persistent=False)
        self.bound_to(support)

    def bound_to(self, support):
        """Move the support to ``support`` (see the class; None for the cube alone)."""
        centre, axes, *left_out = (support if support is not None
                                   else (np.zeros(3), np.full(3, np.inf)))
        self.support_centre.copy_(torch.as_tensor(centre, dtype=torch.float32))
        self.support_axes.copy_(torch.as_tensor(axes, dtype=torch.float32))
        self.left_out = left_out[0] if left_out else None

    def inside(self, points):
        """Return where ``points`` (..., 3) may hold density."""
        in_cube = ((points / self.scale).abs() <= 1.0).all(-1)
        radius = (((points - self.support_centre) / self.support_axes) ** 2).sum(-1)
        inside = in_cube & (radius <= 1.0)
        return inside if self.left_out is None else inside & ~self.left_out(points)

    def crossed_by(self, origins, directions, near, far):
        """
        Return which rays (R,) pass through the support ellipsoid between ``near`` and ``far``.

        A ray that misses it gets no density from this field, so a renderer may skip it:
        about two fifths of a square view round a head miss the head's volume.
        """
        if not torch.isfinite(self.support_axes).all():
            return torch.ones(len(origins), dtype=torch.bool, device=origins.device)
        # In the ellipsoid's unit-sphere frame: |o + s d|^2 = 1, with a hair of slack.
        o = (origins - self.support_centre) / self.support_axes
        d = directions / self.support_axes
        a, b = (d * d).sum(-1), (o * d).sum(-1)
        reach = b * b - a * ((o * o).sum(-1) - 1.0 - 1e-4)
        root = reach.clamp_min(0.0).sqrt()
        return (reach >= 0) & ((-b + root) / a >= near) & ((-b - root) / a <= far)


class MLPField(BoundedField):
    """Vanilla NeRF: ``depth`` x ``width`` ReLU MLP, input skip, view-dependent colour."""

    def __init__(self, depth=8, width=256, skip=4, pe_xyz=10, pe_dir=4, scale=1.0,
                 support=None):
        super().__init__(scale, support)
        self.pe_xyz, self.pe_dir, self.skip = pe_xyz, pe_dir, skip
        xyz_dim, dir_dim = 3 + 6 * pe_xyz, 3 + 6 * pe_dir
        self.layers = nn.ModuleList(
            nn.Linear(xyz_dim if i == 0 else width + (xyz_dim if i == skip else 0), width)
            for i in range(depth))
        self.density = nn.Linear(width, 1)
        self.feature = nn.Linear(width, width)
        self.colour = nn.Sequential(nn.Linear(width + dir_dim, width // 2), nn.ReLU(),
                                    nn.Linear(width // 2, 3))

    def forward(self, points, directions, progress=1.0, c2f=(0.0, 0.0)):
        """Return colour (..., 3) and density (...) at ``points`` seen along ``directions``."""
        encoded = positional_encoding(points / self.scale, self.pe_xyz,
                                      coarse_to_fine(progress, self.pe_xyz, *c2f))
        h = encoded
        for i, layer in enumerate(self.layers):
            if i == self.skip and i > 0:
                h = torch.cat([h, encoded], -1)
            h = F.relu(layer(h))
        density = _density(self.density(h)[..., 0], self.scale) * self.inside(points)
        view = positional_encoding(directions, self.pe_dir)
        colour = torch.sigmoid(self.colour(torch.cat([self.feature(h), view], -1)))
        return colour, density


class GridField(BoundedField):
    """
    Dense multi-resolution feature grids (trilinear, ``grid_sample``) and two small MLPs.

    Plain PyTorch, no CUDA extension: the grids cover the cube of half-side ``scale`` around
    the origin; resolutions grow geometrically from ``base`` to ``top``.
    """

    def __init__(self, levels=6, base=16, top=128, features=4, hidden=64, pe_dir=4, scale=1.0,
                 support=None):
        super().__init__(scale, support)
        self.pe_dir, self.levels = pe_dir, levels
        growth = (top / base) ** (1.0 / max(levels - 1, 1))
        sizes = [int(round(base * growth ** k)) for k in range(levels)]
        self.grids = nn.ParameterList(
            nn.Parameter(torch.empty(1, features, s, s, s).uniform_(-1e-2, 1e-2)) for s in sizes)
        self.density = nn.Sequential(nn.Linear(levels * features, hidden), nn.ReLU(),
                                     nn.Linear(hidden, 1 + hidden))
        self.colour = nn.Sequential(nn.Linear(hidden + 3 + 6 * pe_dir, hidden), nn.ReLU(),
                                    nn.Linear(hidden, 3))

    def forward(self, points, directions, progress=1.0, c2f=(0.0, 0.0)):
        """Return colour (..., 3) and density (...) at ``points`` seen along ``directions``."""
        shape = points.shape[:-1]
        coords = (points / self.scale).reshape(1, -1, 1, 1, 3)
        weights = torch.cat([torch.ones(1), coarse_to_fine(progress, self.levels - 1, *c2f)])
        features = torch.cat([
            F.grid_sample(grid, coords, mode='bilinear', padding_mode='border',
                          align_corners=True).reshape(grid.shape[1], -1).T * weight
            for grid, weight in zip(self.grids, weights.to(points))], -1)
        h = self.density(features)
        density = _density(h[:, 0], self.scale) * self.inside(points.reshape(-1, 3))
        view = positional_encoding(directions.reshape(-1, 3), self.pe_dir)
        colour = torch.sigmoid(self.colour(torch.cat([F.relu(h[:, 1:]), view], -1)))
        return colour.reshape(*shape, 3), density.reshape(shape)


def make_field(config, support=None):
    """Build the field a config names ('mlp' or 'grid'), within ``support`` when given."""
    if config.field.kind == 'mlp':
        return MLPField(config.mlp.depth, config.mlp.width, config.mlp.skip, config.mlp.pe_xyz,
                        config.field.pe_dir, config.scene.radius, support)
    return GridField(config.grid.levels, config.grid.base, config.grid.top,
                     config.grid.features, config.grid.hidden, config.field.pe_dir,
                     config.scene.radius, support)
