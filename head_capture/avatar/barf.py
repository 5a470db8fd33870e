"""
Per-frame camera corrections optimised with the field (BARF), and the BARF test protocol.

As in BARF's code (``compose([pose_refine, pose])``), a correction is an se(3) motion of the
world applied before the starting world-to-camera pose, (R0, t0) exp(xi): its rotation turns
the camera about the scene's origin, which keeps the scene in view, rather than about the
camera's own centre, where a few degrees throw the scene out of the picture. BARF's pose noise
is applied the same way, so the protocol's starting errors match its paper. The first frame's
correction is held at zero: the field and all other cameras are then expressed relative to it,
and the solution cannot drift as a whole (the gauge freedom of joint pose and scene recovery).
"""

from head_capture.lie_groups import se3_exp
import torch
from torch import nn


def compose(xi, rotations, translations):
    """Return (R, t) exp(xi): world motions (N, 6) applied before poses (N, 3, 3), (N, 3)."""
    motion = se3_exp(xi)
    rotation = rotations @ motion[..., :3, :3]
    translation = (rotations @ motion[..., :3, 3:])[..., 0] + translations
    return rotation, translation


class PoseCorrections(nn.Module):
    """
    Learnable se(3) corrections of N starting poses, with the gauge held.

    ``translation_unit`` is the length one unit of a learned translation stands for.
    ``gauge`` 'first' holds the first frame's correction at zero; 'mean' holds the mean
    correction at zero (each step's update is projected so), which keeps the scene where the
    starting poses put it on average instead of where one noisy camera does; 'none' holds
    nothing (a single camera's test-time optimisation).
    """

    GAUGES = ('first', 'mean', 'none')

    def __init__(self, rotations, translations, gauge='first', translation_unit=1.0):
        super().__init__()
        if gauge not in self.GAUGES:
            raise ValueError(f'gauge must be one of {self.GAUGES}, got {gauge!r}')
        self.register_buffer('rotations', rotations.clone().float())
        self.register_buffer('translations', translations.clone().float())
        self.xi = nn.Parameter(torch.zeros(len(rotations), 6))
        mask = torch.ones(len(rotations), 1)
        if gauge == 'first':
            mask[0] = 0.0
        self.register_buffer('mask', mask)
        # Scene units per unit of the learned translation: the optimiser's steps then mean the
        # same share of the scene whether it is metres round a head or BARF's lego units.
        self.register_buffer('unit', torch.tensor([1.0, 1.0, 1.0] + [translation_unit] * 3))
        self.gauge = gauge

    def corrections(self):
        """Return every frame's correction (N, 6) with the gauge applied."""
        xi = self.xi * self.mask * self.unit
        return xi - xi.mean(0, keepdim=True) if self.gauge == 'mean' else xi

    def forward(self, index=None):
        """Return corrected (R, t) of frames ``index`` (all when None)."""
        index = slice(None) if index is None else index
        return compose(self.corrections()[index], self.rotations[index],
                       self.translations[index])

    def update_norms(self):
        """Return each frame's correction so far: rotation (degrees) and translation."""
        xi = self.corrections().detach()
        return torch.rad2deg(xi[:, :3].norm(dim=-1)), xi[:, 3:].norm(dim=-1)


def perturb(rotations, translations, sigma, generator):
    """Return poses with BARF's noise: (R, t) exp(xi), xi ~ N(0, sigma^2) per component."""
    xi = torch.randn((len(rotations), 6), generator=generator) * sigma
    return compose(xi, rotations.float(), translations.float())
