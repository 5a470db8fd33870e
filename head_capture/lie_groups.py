"""
The Lie-group maps of rotations and rigid transforms: SO(3) and SE(3) exp and log, in torch.

One implementation, batched over leading dimensions and differentiable everywhere, including
at zero angle where BARF's pose corrections start. Called with numpy arrays they compute in
float64 and return numpy. se(3) vectors are ``ξ = (ω, v)``, rotation first (the conventions
of ``geometry``). Apart from ``geometry`` so that the nodes that only convert poses do not
import torch.
"""

import functools

import numpy as np
import torch

# Below this θ² the exp/log coefficients use their Taylor series (error below float64 eps)
# instead of closed forms that are 0/0 at zero and lose digits to cancellation near it.
_TAYLOR_BELOW_SQ = 1e-4
# Beyond this angle (cos θ < -0.9, θ > 154°) log takes the axis from the symmetric part of R.
_NEAR_PI_COS = -0.9


def _numpy_or_torch(fn):
    """Let a torch function take numpy: non-tensor arguments run as float64, return numpy."""
    @functools.wraps(fn)
    def wrapper(*args):
        if all(isinstance(a, torch.Tensor) for a in args):
            return fn(*args)
        tensors = (torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64)) for a in args)
        return fn(*tensors).numpy()
    return wrapper


def _safe_norm(x):
    """Return ‖x‖ over the last axis, floored at eps so that its gradient stays finite at 0."""
    floor = torch.finfo(x.dtype).eps ** 2
    return torch.sqrt((x * x).sum(-1).clamp_min(floor))


def _taylor_or(theta_sq, closed_form, coefficients):
    """Return ``closed_form(θ, θ²)``, or for small θ its series Σ cₖ θ²ᵏ, with finite gradients."""
    small = theta_sq < _TAYLOR_BELOW_SQ
    safe_sq = torch.where(small, torch.ones_like(theta_sq), theta_sq)
    series = functools.reduce(lambda acc, c: acc * theta_sq + c, reversed(coefficients))
    return torch.where(small, series, closed_form(torch.sqrt(safe_sq), safe_sq))


def _eye(like):
    return torch.eye(3, dtype=like.dtype, device=like.device)


def _vee(matrix):
    """Return 2 sin θ · axis for a rotation: the vector of the antisymmetric part, doubled."""
    return torch.stack([matrix[..., 2, 1] - matrix[..., 1, 2],
                        matrix[..., 0, 2] - matrix[..., 2, 0],
                        matrix[..., 1, 0] - matrix[..., 0, 1]], -1)


@_numpy_or_torch
def hat(omega):
    """Return the skew-symmetric matrices [ω]× (..., 3, 3) of vectors (..., 3)."""
    x, y, z = omega.unbind(-1)
    zero = torch.zeros_like(x)
    rows = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1)
    return rows.reshape(*omega.shape[:-1], 3, 3)


def _rodrigues(omega):
    """Return exp([ω]×) and the SO(3) left Jacobian V that maps v to the SE(3) translation."""
    theta_sq = (omega * omega).sum(-1)
    sin_over = _taylor_or(theta_sq, lambda t, t2: torch.sin(t) / t, (1.0, -1 / 6, 1 / 120))
    cos_over = _taylor_or(theta_sq, lambda t, t2: 2 * (torch.sin(t / 2) / t) ** 2,
                          (1 / 2, -1 / 24, 1 / 720))
    sin_rest = _taylor_or(theta_sq, lambda t, t2: (t - torch.sin(t)) / (t * t2),
                          (1 / 6, -1 / 120, 1 / 5040))
    k = hat(omega)
    k2 = k @ k
    eye = _eye(omega)
    rotation = eye + sin_over[..., None, None] * k + cos_over[..., None, None] * k2
    jacobian = eye + cos_over[..., None, None] * k + sin_rest[..., None, None] * k2
    return rotation, jacobian


def _rigid_matrix(rotation, translation):
    top = torch.cat([rotation, translation[..., None]], -1)
    bottom = torch.zeros_like(top[..., :1, :])
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], -2)


@_numpy_or_torch
def so3_exp(omega):
    """Return the rotation matrices (..., 3, 3) of axis-angle vectors (..., 3)."""
    return _rodrigues(omega)[0]


@_numpy_or_torch
def so3_log(rotation):
    """Return the axis-angle vectors (..., 3), angle in [0, π], of rotation matrices."""
    skew = _vee(rotation)
    cos = ((rotation.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1.0, 1.0)
    theta = torch.atan2(_safe_norm(skew) / 2, cos)
    # Up to ~154°: ω = θ / (2 sin θ) · skew, whose coefficient tends to 1/2 at zero angle.
    near_pi = cos < _NEAR_PI_COS
    theta_sq = torch.where(near_pi, torch.zeros_like(theta), theta) ** 2
    ratio = _taylor_or(theta_sq, lambda t, t2: t / (2 * torch.sin(t)), (1 / 2, 1 / 12, 7 / 720))
    # Near π skew vanishes. The symmetric part, cos θ I + (1 - cos θ) a aᵀ, still gives the
    # axis a (its column with the largest diagonal entry is a multiple of a); skew its sign.
    outer = (rotation + rotation.transpose(-1, -2)) / 2 - cos[..., None, None] * _eye(rotation)
    column = outer.diagonal(dim1=-2, dim2=-1).argmax(-1)
    axis = torch.take_along_dim(outer, column[..., None, None], dim=-1)[..., 0]
    axis = axis / _safe_norm(axis)[..., None]
    axis = torch.where((axis * skew).sum(-1, keepdim=True) < 0, -axis, axis)
    return torch.where(near_pi[..., None], theta[..., None] * axis, ratio[..., None] * skew)


@_numpy_or_torch
def se3_exp(xi):
    """Return the rigid transforms (..., 4, 4) of twists ξ = (ω, v) (..., 6)."""
    rotation, jacobian = _rodrigues(xi[..., :3])
    return _rigid_matrix(rotation, (jacobian @ xi[..., 3:, None])[..., 0])


@_numpy_or_torch
def se3_log(transform):
    """Return the twists ξ = (ω, v) (..., 6), angle in [0, π], of rigid transforms (..., 4, 4)."""
    omega = so3_log(transform[..., :3, :3])
    jacobian = _rodrigues(omega)[1]
    v = torch.linalg.solve(jacobian, transform[..., :3, 3:])[..., 0]
    return torch.cat([omega, v], -1)
