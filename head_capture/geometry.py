"""
Rotations, rigid and similarity transforms, camera pose conventions and pose errors.

Conventions (DESIGN.md): a pose is world-to-camera ``R, t`` in the OpenCV optical frame
(x right, y down, z forward), so ``x_cam = R x_world + t`` and the camera centre is ``-Rᵀt``.
se(3) vectors are ``ξ = (ω, v)``, rotation first. ``transforms.json`` holds camera-to-world
4x4 matrices in OpenGL camera axes (x right, y up, looking down -z). A ROS ``Pose`` of a camera
holds its centre and the quaternion (x, y, z, w) of its camera-to-world rotation.

The Lie-group maps have one implementation, in torch (batched, differentiable, also at zero
angle, where BARF's pose corrections start); called with numpy arrays they compute in float64
and return numpy.
"""

from dataclasses import dataclass
import functools

import numpy as np
from scipy.spatial.transform import Rotation
import torch

# Below this squared angle the closed forms lose precision: use their Taylor series.
_SMALL_ANGLE_SQ = 1e-6
# Above this angle log(R) takes the rotation axis from the symmetric part of R.
_NEAR_PI_COS = -0.9
_FLIP_YZ = np.diag([1.0, -1.0, -1.0])


def _numpy_or_torch(fn):
    """Run the torch implementation; numpy arguments go in as float64 and come back numpy."""
    @functools.wraps(fn)
    def wrapper(*args):
        if not any(isinstance(a, np.ndarray) for a in args):
            return fn(*args)
        result = fn(*(torch.as_tensor(np.asarray(a, dtype=np.float64)) for a in args))
        if isinstance(result, tuple):
            return tuple(r.numpy() for r in result)
        return result.numpy()
    return wrapper


def hat(omega):
    """Return the skew-symmetric matrices [ω]× of (..., 3) vectors."""
    x, y, z = omega.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(
        *omega.shape[:-1], 3, 3)


def _vee(matrix):
    return torch.stack([matrix[..., 2, 1] - matrix[..., 1, 2],
                        matrix[..., 0, 2] - matrix[..., 2, 0],
                        matrix[..., 1, 0] - matrix[..., 0, 1]], -1)


def _series(theta_sq, closed_form, taylor):
    """Evaluate ``closed_form(θ)`` or, for tiny θ, its Taylor polynomial in θ²."""
    small = theta_sq < _SMALL_ANGLE_SQ
    safe_sq = torch.where(small, torch.ones_like(theta_sq), theta_sq)
    poly = sum(c * theta_sq ** k for k, c in enumerate(taylor))
    return torch.where(small, poly, closed_form(torch.sqrt(safe_sq), safe_sq))


def _exp_coefficients(theta_sq):
    """Return sin θ/θ, (1 - cos θ)/θ², (θ - sin θ)/θ³ (Rodrigues and the SE(3) V matrix)."""
    a = _series(theta_sq, lambda t, t2: torch.sin(t) / t, (1.0, -1 / 6, 1 / 120))
    b = _series(theta_sq, lambda t, t2: (1 - torch.cos(t)) / t2, (0.5, -1 / 24, 1 / 720))
    c = _series(theta_sq, lambda t, t2: (t - torch.sin(t)) / (t2 * t),
                (1 / 6, -1 / 120, 1 / 5040))
    return a, b, c


@_numpy_or_torch
def so3_exp(omega):
    """Return the rotation matrices (..., 3, 3) of axis-angle vectors (..., 3)."""
    a, b, _ = _exp_coefficients((omega * omega).sum(-1))
    k = hat(omega)
    eye = torch.eye(3, dtype=omega.dtype, device=omega.device)
    return eye + a[..., None, None] * k + b[..., None, None] * (k @ k)


@_numpy_or_torch
def so3_log(rotation):
    """Return the axis-angle vectors (..., 3) of rotation matrices, angles in [0, π]."""
    trace = rotation.diagonal(dim1=-2, dim2=-1).sum(-1)
    cos = ((trace - 1) / 2).clamp(-1.0, 1.0)
    skew = _vee(rotation)  # 2 sin θ · axis
    # Small angles: ω ≈ (1/2 + θ²/12) skew, with θ² ≈ 3 - trace; smooth through θ = 0.
    theta_sq = (3 - trace).clamp_min(0.0)
    small = theta_sq < _SMALL_ANGLE_SQ
    series = (0.5 + theta_sq / 12)[..., None] * skew
    # Other angles: θ from atan2, on inputs kept away from the singular points.
    safe_skew = torch.where(small[..., None], torch.ones_like(skew), skew)
    sin = safe_skew.norm(dim=-1).clamp_min(1e-12) / 2
    theta = torch.atan2(sin, cos)
    generic = (theta / (2 * sin))[..., None] * safe_skew
    # Near π, sin θ vanishes; the symmetric part gives axis·axisᵀ exactly at any angle.
    near_pi = cos < _NEAR_PI_COS
    eye = torch.eye(3, dtype=rotation.dtype, device=rotation.device)
    one_minus_cos = torch.where(near_pi, 1 - cos, torch.ones_like(cos))[..., None, None]
    outer = (0.5 * (rotation + rotation.transpose(-1, -2)) - cos[..., None, None] * eye)
    outer = outer / one_minus_cos
    column = outer.diagonal(dim1=-2, dim2=-1).argmax(-1)
    axis = torch.gather(outer, -1, column[..., None, None].expand(*column.shape, 3, 1))[..., 0]
    axis = axis / axis.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    axis = torch.where((axis * skew).sum(-1, keepdim=True) < 0, -axis, axis)
    log = torch.where(near_pi[..., None], theta[..., None] * axis, generic)
    return torch.where(small[..., None], series, log)


@_numpy_or_torch
def se3_exp(xi):
    """Return the 4x4 rigid transforms (..., 4, 4) of twists ξ = (ω, v) (..., 6)."""
    omega, v = xi[..., :3], xi[..., 3:]
    a, b, c = _exp_coefficients((omega * omega).sum(-1))
    k = hat(omega)
    k2 = k @ k
    eye = torch.eye(3, dtype=xi.dtype, device=xi.device)
    rotation = eye + a[..., None, None] * k + b[..., None, None] * k2
    v_matrix = eye + b[..., None, None] * k + c[..., None, None] * k2
    return _rigid(rotation, (v_matrix @ v[..., None])[..., 0])


@_numpy_or_torch
def se3_log(transform):
    """Return the twists ξ = (ω, v) (..., 6) of 4x4 rigid transforms."""
    rotation, t = transform[..., :3, :3], transform[..., :3, 3]
    omega = so3_log(rotation)
    theta_sq = (omega * omega).sum(-1)
    a, b, _ = _exp_coefficients(theta_sq)
    # V⁻¹ = I - K/2 + (1 - a / 2b) / θ² K².
    d = _series(theta_sq, lambda th, t2: (1 - a / (2 * b)) / t2, (1 / 12, 1 / 720, 1 / 30240))
    k = hat(omega)
    eye = torch.eye(3, dtype=transform.dtype, device=transform.device)
    v_inverse = eye - 0.5 * k + d[..., None, None] * (k @ k)
    return torch.cat([omega, (v_inverse @ t[..., None])[..., 0]], -1)


def _rigid(rotation, translation):
    bottom = torch.zeros(*rotation.shape[:-2], 1, 4, dtype=rotation.dtype,
                         device=rotation.device)
    bottom[..., 0, 3] = 1.0
    return torch.cat([torch.cat([rotation, translation[..., None]], -1), bottom], -2)


def quat_to_matrix(quat_xyzw):
    """Return rotation matrices of quaternions (x, y, z, w), any norm, batched."""
    return Rotation.from_quat(np.asarray(quat_xyzw, float)).as_matrix()


def matrix_to_quat(rotation):
    """Return quaternions (x, y, z, w) with w >= 0 of rotation matrices, batched."""
    return Rotation.from_matrix(np.asarray(rotation, float)).as_quat(canonical=True)


def camera_center(rotation, translation):
    """Return camera centres ``-Rᵀt`` of world-to-camera poses, batched."""
    return -np.einsum('...ji,...j->...i', rotation, translation)


def w2c_to_c2w_opengl(rotation, translation):
    """Return camera-to-world 4x4 in OpenGL camera axes (transforms.json) of OpenCV poses."""
    rotation = np.asarray(rotation, float)
    c2w = np.zeros(rotation.shape[:-2] + (4, 4))
    c2w[..., :3, :3] = np.swapaxes(rotation, -1, -2) @ _FLIP_YZ
    c2w[..., :3, 3] = camera_center(rotation, np.asarray(translation, float))
    c2w[..., 3, 3] = 1.0
    return c2w


def c2w_opengl_to_w2c(c2w):
    """Return world-to-camera ``(R, t)`` in OpenCV axes of OpenGL camera-to-world 4x4s."""
    c2w = np.asarray(c2w, float)
    rotation = np.swapaxes(c2w[..., :3, :3] @ _FLIP_YZ, -1, -2)
    return rotation, -np.einsum('...ij,...j->...i', rotation, c2w[..., :3, 3])


def w2c_to_ros_pose(rotation, translation):
    """Return (position, quaternion xyzw) of the camera in the world, as a ROS Pose holds it."""
    rotation = np.asarray(rotation, float)
    return (camera_center(rotation, np.asarray(translation, float)),
            matrix_to_quat(np.swapaxes(rotation, -1, -2)))


def ros_pose_to_w2c(position, quat_xyzw):
    """Return the world-to-camera ``(R, t)`` of a camera's ROS Pose."""
    rotation = np.swapaxes(quat_to_matrix(quat_xyzw), -1, -2)
    return rotation, -np.einsum('...ij,...j->...i', rotation, np.asarray(position, float))


def look_at_w2c(center, target, up=(0.0, 0.0, 1.0)):
    """
    Return the OpenCV world-to-camera ``(R, t)`` of a camera at ``center`` facing ``target``.

    The image's up direction points as close to world ``up`` as the view allows.
    """
    center = np.asarray(center, float)
    forward = np.asarray(target, float) - center
    forward /= np.linalg.norm(forward)
    down = -(np.asarray(up, float) - np.dot(up, forward) * forward)
    norm = np.linalg.norm(down)
    if norm < 1e-9:
        raise ValueError('look_at_w2c: the view direction is parallel to up')
    down /= norm
    rotation = np.stack([np.cross(down, forward), down, forward])
    return rotation, -rotation @ center


@dataclass(frozen=True)
class Similarity:
    """x ↦ scale · R x + t: the frame change between two reconstructions."""

    scale: float
    rotation: np.ndarray
    translation: np.ndarray

    def apply(self, points):
        """Map points (..., 3)."""
        return self.scale * np.asarray(points) @ self.rotation.T + self.translation


def umeyama(source, target, with_scale=True):
    """Return the least-squares similarity mapping ``source`` points onto ``target`` points."""
    source, target = np.asarray(source, float), np.asarray(target, float)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 3:
        raise ValueError(f'umeyama needs two (N, 3) arrays, got {source.shape} and '
                         f'{target.shape}')
    src_mean, dst_mean = source.mean(0), target.mean(0)
    src, dst = source - src_mean, target - dst_mean
    spread = np.linalg.svd(src, compute_uv=False)
    if len(source) < 3 or spread[0] == 0 or spread[1] < 1e-9 * spread[0]:
        raise ValueError('umeyama needs at least 3 points that are not all on one line')
    u, sigma, vt = np.linalg.svd(dst.T @ src / len(source))
    d = np.ones(3)
    d[2] = np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0
    rotation = u @ np.diag(d) @ vt
    scale = float(sigma @ d / (src * src).sum(1).mean()) if with_scale else 1.0
    return Similarity(scale, rotation, dst_mean - scale * rotation @ src_mean)


def rotation_angle_deg(rotation_a, rotation_b):
    """
    Return the geodesic angle between rotations in degrees, batched.

    From the chordal distance, ‖A - B‖_F = 2√2 sin(θ/2), which stays precise for the tiny
    angles pose errors are made of, where arccos of the trace does not.
    """
    chord = np.linalg.norm(np.asarray(rotation_a) - np.asarray(rotation_b), axis=(-2, -1))
    return np.degrees(2.0 * np.arcsin(np.clip(chord / (2.0 * np.sqrt(2.0)), 0.0, 1.0)))


@dataclass(frozen=True)
class PoseErrors:
    """Per-frame pose errors after Sim(3) alignment, and the alignment used."""

    rotation_deg: np.ndarray
    translation_cm: np.ndarray
    alignment: Similarity

    def summary(self):
        """Return mean, median and max of both errors as plain floats (JSON-ready)."""
        out = {}
        for name, values in (('rotation_deg', self.rotation_deg),
                             ('translation_cm', self.translation_cm)):
            out.update({f'{name}_mean': float(np.mean(values)),
                        f'{name}_median': float(np.median(values)),
                        f'{name}_max': float(np.max(values))})
        out['frames'] = int(len(self.rotation_deg))
        return out


def pose_errors(rotation_est, translation_est, rotation_true, translation_true):
    """
    Compare estimated to true world-to-camera poses by the paper's and BARF's protocol.

    Estimated camera centres are aligned to the true ones by a similarity (Umeyama); the
    rotation error is the angle between each true and aligned estimated rotation, the
    translation error the distance between centres, x100 (cm when the unit is the metre).
    """
    centres_est = camera_center(rotation_est, translation_est)
    centres_true = camera_center(rotation_true, translation_true)
    alignment = umeyama(centres_est, centres_true)
    aligned_rotation = np.asarray(rotation_est) @ alignment.rotation.T
    rotation_error = rotation_angle_deg(rotation_true, aligned_rotation)
    distance = np.linalg.norm(alignment.apply(centres_est) - centres_true, axis=-1)
    return PoseErrors(rotation_error, 100.0 * distance, alignment)
