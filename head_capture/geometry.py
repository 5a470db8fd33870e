"""
Rotations, rigid and similarity transforms, camera pose conventions and pose errors.

Conventions (DESIGN.md): units are metres and radians; the head/world frame is REP 103. A pose
is world-to-camera ``R, t`` in the OpenCV optical frame (x right, y down, z forward), so
``x_cam = R x_world + t`` and the camera centre is ``-Rᵀt``. se(3) vectors are ``ξ = (ω, v)``,
rotation first; BARF refines poses by left composition, ``exp(ξ) @ T_w2c``. ``transforms.json``
holds camera-to-world 4x4s in OpenGL camera axes (x right, y up, looking down -z). A ROS
``Pose`` of a camera holds its centre and the quaternion (x, y, z, w) of its camera-to-world
rotation.

The Lie-group maps (SO(3), SE(3) exp and log) are in ``lie_groups``: they need torch, and
importing this module must not.
"""

import dataclasses

import numpy as np
from scipy.spatial.transform import Rotation

_FLIP_YZ = np.diag([1.0, -1.0, -1.0])


def rigid_matrix(rotation, translation):
    """Return 4x4 homogeneous transforms (..., 4, 4) of rotations (..., 3, 3) and (..., 3)."""
    rotation, translation = np.asarray(rotation, float), np.asarray(translation, float)
    matrix = np.zeros(np.broadcast_shapes(rotation.shape[:-2], translation.shape[:-1]) + (4, 4))
    matrix[..., :3, :3], matrix[..., :3, 3], matrix[..., 3, 3] = rotation, translation, 1.0
    return matrix


def quat_to_matrix(quat_xyzw):
    """Return rotation matrices (..., 3, 3) of quaternions (x, y, z, w) (..., 4) of any norm."""
    return Rotation.from_quat(np.asarray(quat_xyzw, dtype=float)).as_matrix()


def matrix_to_quat(rotation):
    """Return unit quaternions (x, y, z, w) (..., 4) with w >= 0 of rotation matrices."""
    return Rotation.from_matrix(np.asarray(rotation, dtype=float)).as_quat(canonical=True)


def camera_center(rotation, translation):
    """Return the camera centres ``-Rᵀt`` (..., 3) of world-to-camera poses."""
    return -np.einsum('...ji,...j->...i', rotation, translation)


def w2c_from_center(rotation, center):
    """Return the world-to-camera ``(R, t)`` of cameras turned by ``R`` with centres ``center``."""
    return rotation, -np.einsum('...ij,...j->...i', rotation, center)


def view_angles(rotation, translation):
    """
    Return the azimuth and elevation (degrees) of cameras seen from the head; 0 = in front.

    Azimuth is counter-clockwise from the head's +x seen from above, in [-180, 180].
    """
    centre = camera_center(rotation, translation)
    azimuth = np.degrees(np.arctan2(centre[..., 1], centre[..., 0]))
    elevation = np.degrees(np.arcsin(centre[..., 2] / np.linalg.norm(centre, axis=-1)))
    return azimuth, elevation


def sphere_point(distance, azimuth, elevation):
    """Return the points (..., 3) at ``distance`` from the head in the directions given (rad)."""
    cos_elevation = np.cos(elevation)
    return np.asarray(distance)[..., None] * np.stack(
        [cos_elevation * np.cos(azimuth), cos_elevation * np.sin(azimuth), np.sin(elevation)], -1)


def w2c_to_c2w_opengl(rotation, translation):
    """Return OpenGL-axes camera-to-world 4x4s (transforms.json) of OpenCV world-to-camera."""
    rotation = np.asarray(rotation, dtype=float)
    return rigid_matrix(np.swapaxes(rotation, -1, -2) @ _FLIP_YZ,
                        camera_center(rotation, translation))


def c2w_opengl_to_w2c(c2w):
    """Return OpenCV world-to-camera ``(R, t)`` of OpenGL-axes camera-to-world 4x4s."""
    c2w = np.asarray(c2w, dtype=float)
    return w2c_from_center(np.swapaxes(c2w[..., :3, :3] @ _FLIP_YZ, -1, -2), c2w[..., :3, 3])


def w2c_to_ros_pose(rotation, translation):
    """Return a camera's ROS Pose as (position (..., 3), quaternion xyzw (..., 4))."""
    rotation = np.asarray(rotation, dtype=float)
    return camera_center(rotation, translation), matrix_to_quat(np.swapaxes(rotation, -1, -2))


def ros_pose_to_w2c(position, quat_xyzw):
    """Return the world-to-camera ``(R, t)`` of a camera's ROS Pose."""
    return w2c_from_center(np.swapaxes(quat_to_matrix(quat_xyzw), -1, -2),
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
    return w2c_from_center(np.stack([np.cross(down, forward), down, forward], -2), center)


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
