"""
Rotations, rigid and similarity transforms, camera pose conventions and pose errors.

Conventions (DESIGN.md): units are metres and radians; the head/world frame is REP 103. A pose
is world-to-camera ``R, t`` in the OpenCV optical frame (x right, y down, z forward), so
``x_cam = R x_world + t`` and the camera centre is ``-Rᵀt``. se(3) vectors are ``ξ = (ω, v)``,
rotation first; BARF refines poses by left composition, ``exp(ξ) @ T_w2c``. ``transforms.json``
holds camera-to-world 4x4s in OpenGL camera axes (x right, y up, looking down -z). A ROS
``Pose`` of a camera holds its centre and the quaternion (x, y, z, w) of its camera-to-world
rotation.

The Lie-group maps have one implementation, in torch: batched over leading dimensions and
differentiable everywhere, including at zero angle where BARF's pose corrections start. Called
with numpy arrays they compute in float64 and return numpy.
"""

import dataclasses
import functools

import numpy as np
from scipy.spatial.transform import Rotation
import torch

# Below this θ² the exp/log coefficients use their Taylor series (error below float64 eps)
# instead of closed forms that are 0/0 at zero and lose digits to cancellation near it.
_TAYLOR_BELOW_SQ = 1e-4
# Beyond this angle (cos θ < -0.9, θ > 154°) log takes the axis from the symmetric part of R.
_NEAR_PI_COS = -0.9
_FLIP_YZ = np.diag([1.0, -1.0, -1.0])


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


@_numpy_or_torch
def rigid_matrix(rotation, translation):
    """Return 4x4 homogeneous transforms (..., 4, 4) of rotations (..., 3, 3) and (..., 3)."""
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
    return rigid_matrix(rotation, (jacobian @ xi[..., 3:, None])[..., 0])


@_numpy_or_torch
def se3_log(transform):
    """Return the twists ξ = (ω, v) (..., 6), angle in [0, π], of rigid transforms (..., 4, 4)."""
    omega = so3_log(transform[..., :3, :3])
    jacobian = _rodrigues(omega)[1]
    v = torch.linalg.solve(jacobian, transform[..., :3, 3:])[..., 0]
    return torch.cat([omega, v], -1)


def quat_to_matrix(quat_xyzw):
    """Return rotation matrices (..., 3, 3) of quaternions (x, y, z, w) (..., 4) of any norm."""
    return Rotation.from_quat(np.asarray(quat_xyzw, dtype=float)).as_matrix()


def matrix_to_quat(rotation):
    """Return unit quaternions (x, y, z, w) (..., 4) with w >= 0 of rotation matrices."""
    return Rotation.from_matrix(np.asarray(rotation, dtype=float)).as_quat(canonical=True)


def camera_center(rotation, translation):
    """Return the camera centres ``-Rᵀt`` (..., 3) of world-to-camera poses."""
    return -np.einsum('...ji,...j->...i', rotation, translation)


def _w2c_from_center(rotation, center):
    return rotation, -np.einsum('...ij,...j->...i', rotation, center)


def w2c_to_c2w_opengl(rotation, translation):
    """Return OpenGL-axes camera-to-world 4x4s (transforms.json) of OpenCV world-to-camera."""
    rotation = np.asarray(rotation, dtype=float)
    return rigid_matrix(np.swapaxes(rotation, -1, -2) @ _FLIP_YZ,
                        camera_center(rotation, translation))


def c2w_opengl_to_w2c(c2w):
    """Return OpenCV world-to-camera ``(R, t)`` of OpenGL-axes camera-to-world 4x4s."""
    c2w = np.asarray(c2w, dtype=float)
    return _w2c_from_center(np.swapaxes(c2w[..., :3, :3] @ _FLIP_YZ, -1, -2), c2w[..., :3, 3])


def w2c_to_ros_pose(rotation, translation):
    """Return a camera's ROS Pose as (position (..., 3), quaternion xyzw (..., 4))."""
    rotation = np.asarray(rotation, dtype=float)
    return camera_center(rotation, translation), matrix_to_quat(np.swapaxes(rotation, -1, -2))


def ros_pose_to_w2c(position, quat_xyzw):
    """Return the world-to-camera ``(R, t)`` of a camera's ROS Pose."""
    return _w2c_from_center(np.swapaxes(quat_to_matrix(quat_xyzw), -1, -2),
                            np.asarray(position, dtype=float))


def look_at_w2c(center, target, up=(0.0, 0.0, 1.0)):
    """
    Return world-to-camera ``(R, t)`` of OpenCV cameras at ``center`` facing ``target``.

    Image up (-y) is the direction closest to world ``up`` that is square to the view.
    Arguments broadcast over leading dimensions; ValueError if a view is undefined.
    """
    center, target, up = np.broadcast_arrays(*(np.asarray(a, dtype=float)
                                               for a in (center, target, up)))
    forward = target - center
    distance = np.linalg.norm(forward, axis=-1, keepdims=True)
    if np.any(distance < 1e-12):
        raise ValueError('look_at_w2c: a camera centre coincides with its target')
    forward = forward / distance
    up = up / np.linalg.norm(up, axis=-1, keepdims=True)
    down = np.sum(up * forward, -1, keepdims=True) * forward - up
    length = np.linalg.norm(down, axis=-1, keepdims=True)
    if np.any(length < 1e-9):
        raise ValueError('look_at_w2c: a view direction is parallel to up')
    down = down / length
    return _w2c_from_center(np.stack([np.cross(down, forward), down, forward], -2), center)


@dataclasses.dataclass(frozen=True)
class Similarity:
    """The map x ↦ scale · R x + t, e.g. from one reconstruction's frame to another's."""

    scale: float
    rotation: np.ndarray
    translation: np.ndarray

    def apply(self, points):
        """Return the mapped points (..., 3)."""
        return self.scale * np.asarray(points) @ self.rotation.T + self.translation


def umeyama(src, dst, with_scale=True):
    """
    Return the least-squares similarity (rigid if not ``with_scale``) with dst ≈ s R src + t.

    Umeyama (1991), with the reflection fix so R is always a rotation. ValueError unless both
    are (N, 3), N >= 3, and the points fix the rotation (not all on one line).
    """
    src, dst = np.asarray(src, dtype=float), np.asarray(dst, dtype=float)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3 or len(src) < 3:
        raise ValueError(f'umeyama: needs two (N, 3) arrays with N >= 3, got {src.shape} and '
                         f'{dst.shape}')
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_centred, dst_centred = src - src_mean, dst - dst_mean
    u, sigma, vt = np.linalg.svd(dst_centred.T @ src_centred / len(src))
    if sigma[1] <= 1e-9 * sigma[0]:
        raise ValueError('umeyama: the points are all on one line (or one point), so they do '
                         'not fix a rotation; needs at least 3 non-collinear points')
    signs = np.array([1.0, 1.0, 1.0 if np.linalg.det(u) * np.linalg.det(vt) > 0 else -1.0])
    rotation = (u * signs) @ vt
    if with_scale:
        scale = float(sigma @ signs / np.mean(np.sum(src_centred ** 2, -1)))
    else:
        scale = 1.0
    return Similarity(scale, rotation, dst_mean - scale * rotation @ src_mean)


def rotation_angle_deg(rotation_a, rotation_b):
    """
    Return the geodesic angle between rotations in degrees, batched.

    Computed from the chordal distance ‖A - B‖_F = 2√2 sin(θ/2), which keeps the tiny angles
    of pose errors precise where arccos of the trace would round them to zero.
    """
    chord = np.linalg.norm(np.asarray(rotation_a) - np.asarray(rotation_b), axis=(-2, -1))
    return np.degrees(2.0 * np.arcsin(np.clip(chord / (2.0 * np.sqrt(2.0)), 0.0, 1.0)))


@dataclasses.dataclass(frozen=True)
class PoseErrors:
    """Per-frame pose errors after Sim(3) alignment, and the alignment used."""

    rotation_deg: np.ndarray
    translation_cm: np.ndarray
    alignment: Similarity

    def summary(self):
        """Return frame count and mean, median, max of both errors as plain (JSON) numbers."""
        out = {'frames': len(self.rotation_deg)}
        for name in ('rotation_deg', 'translation_cm'):
            values = getattr(self, name)
            out.update({f'{name}_mean': float(np.mean(values)),
                        f'{name}_median': float(np.median(values)),
                        f'{name}_max': float(np.max(values))})
        return out


def pose_errors(rotation_est, translation_est, rotation_true, translation_true):
    """
    Return the errors of estimated world-to-camera poses by the BARF/paper protocol.

    Estimated camera centres are aligned to the true ones by a similarity (Umeyama), which is
    applied to the estimated poses; the errors are each frame's angle between true and aligned
    rotation, and the distance between centres x100 (cm when the unit is the metre).
    ValueError for mismatched shapes or fewer than 3 non-collinear centres.
    """
    rotation_est, rotation_true = np.asarray(rotation_est), np.asarray(rotation_true)
    if rotation_est.shape != rotation_true.shape or rotation_est.shape[1:] != (3, 3):
        raise ValueError(f'pose_errors: needs two (N, 3, 3) rotation arrays, got '
                         f'{rotation_est.shape} and {rotation_true.shape}')
    centres_est = camera_center(rotation_est, translation_est)
    centres_true = camera_center(rotation_true, translation_true)
    alignment = umeyama(centres_est, centres_true)
    # x_true = s A x_est + b turns x_cam = R x_est + t into x_cam = R Aᵀ x_true / s + t'.
    rotation_error = rotation_angle_deg(rotation_true, rotation_est @ alignment.rotation.T)
    distance = np.linalg.norm(alignment.apply(centres_est) - centres_true, axis=-1)
    return PoseErrors(rotation_error, 100.0 * distance, alignment)
