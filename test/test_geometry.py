"""Property tests of the rotations, pose conventions, Sim(3) alignment and pose errors."""

import json

from head_capture.geometry import (c2w_opengl_to_w2c, camera_center, look_at_w2c,
                                   matrix_to_quat, pose_errors, quat_to_matrix, rigid_matrix,
                                   ros_pose_to_w2c, rotation_angle_deg, sphere_point, umeyama,
                                   view_angles, w2c_to_c2w_opengl, w2c_to_ros_pose)
from head_capture.lie_groups import hat, se3_exp, se3_log, so3_exp, so3_log
from hypothesis import assume, given, settings, strategies as st
from hypothesis.extra.numpy import arrays
import numpy as np
import pytest
from scipy.linalg import expm
from scipy.spatial.transform import Rotation
import torch

fast = settings(max_examples=60, deadline=None)
unit_cube = arrays(np.float64, 3, elements=st.floats(-1.0, 1.0))
# Angles from 0 through the Taylor switch (θ = 0.01) to just below π, in log scale near 0.
angles = st.one_of(st.floats(0.0, np.pi - 1e-3), st.floats(-12.0, -1.0).map(lambda e: 10 ** e),
                   st.floats(1e-9, 1e-3).map(lambda d: np.pi - d))
AXIS = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])


def axis_angle(direction, angle):
    """Return the rotation vector of ``angle`` about a direction of length > 0.1."""
    norm = np.linalg.norm(direction)
    assume(norm > 0.1)
    return direction / norm * angle


def random_rotations(rng, n):
    """Return n rotations, uniform on SO(3)."""
    return Rotation.random(n, random_state=rng).as_matrix()


@fast
@given(unit_cube, angles)
def test_so3_log_inverts_exp_at_any_angle(direction, angle):
    """Round trip ω → R → ω for angles from 0 to just below π, with the right axis near π."""
    omega = axis_angle(direction, angle)
    rotation = so3_exp(omega)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-14)
    assert np.linalg.det(rotation) == pytest.approx(1.0, abs=1e-14)
    np.testing.assert_allclose(rotation, Rotation.from_rotvec(omega).as_matrix(), atol=1e-14)
    np.testing.assert_allclose(so3_log(rotation), omega, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize('axis', [AXIS, np.array([0.0, 0.0, 1.0]), np.array([-1.0, 0.0, 0.0])])
def test_so3_log_at_exactly_pi(axis):
    """A half turn has two logs, ±π·axis; either must be returned, not a wrong axis."""
    omega = so3_log(so3_exp(np.pi * axis))
    assert np.linalg.norm(omega) == pytest.approx(np.pi, abs=1e-12)
    assert abs(omega @ axis) == pytest.approx(np.pi, abs=1e-12)


def test_float32_round_trip_keeps_dtype():
    """Float32 tensors stay float32 and round trip to single precision near 0 and near π."""
    omega = torch.tensor(np.outer([0.0, 1e-6, 1e-2, 1.0, 3.0, np.pi - 1e-3], AXIS),
                         dtype=torch.float32)
    rotation = so3_exp(omega)
    assert rotation.dtype == torch.float32 and so3_log(rotation).dtype == torch.float32
    np.testing.assert_allclose(so3_log(rotation).numpy(), omega.numpy(), atol=1e-6)


def test_known_rotations_and_translation():
    """A quarter turn about z maps x to y; a twist with ω = 0 is a pure translation."""
    quarter = so3_exp(np.array([0.0, 0.0, np.pi / 2]))
    np.testing.assert_allclose(quarter @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(so3_exp(np.array([np.pi / 2, 0.0, 0.0])) @ [0.0, 1.0, 0.0],
                               [0.0, 0.0, 1.0], atol=1e-15)
    np.testing.assert_array_equal(hat(np.array([1.0, 2.0, 3.0])) @ [4.0, 5.0, 6.0],
                                  np.cross([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]))
    shift = se3_exp(np.array([0.0, 0.0, 0.0, 0.1, -0.2, 0.3]))
    expected = np.eye(4)
    expected[:3, 3] = (0.1, -0.2, 0.3)
    np.testing.assert_allclose(shift, expected, atol=1e-16)


@fast
@given(unit_cube, angles, arrays(np.float64, 3, elements=st.floats(-2.0, 2.0)))
def test_se3_exp_matches_matrix_exponential_and_log_inverts_it(direction, angle, v):
    """se3_exp equals expm of the 4x4 twist matrix, and se3_log recovers ξ = (ω, v)."""
    xi = np.concatenate([axis_angle(direction, angle), v])
    twist = np.zeros((4, 4))
    twist[:3, :3], twist[:3, 3] = hat(xi[:3]), xi[3:]
    transform = se3_exp(xi)
    np.testing.assert_allclose(transform, expm(twist), atol=1e-12)
    np.testing.assert_allclose(se3_log(transform), xi, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize('angle', [1e-8, 1e-3, 0.0099, 0.0101, 0.05, 3.0])
def test_se3_exp_is_exact_across_the_taylor_switch(angle):
    """Series and closed forms meet at θ = 0.01 without a seam: exp matches expm to 1e-15."""
    xi = np.concatenate([AXIS * angle, [0.7, -1.1, 0.4]])
    twist = np.zeros((4, 4))
    twist[:3, :3], twist[:3, 3] = hat(xi[:3]), xi[3:]
    np.testing.assert_allclose(se3_exp(xi), expm(twist), rtol=0, atol=2e-15)


def test_batched_numpy_and_torch_agree(rng):
    """Leading dimensions broadcast, and numpy, float64 and float32 torch give the same maps."""
    xi = rng.normal(size=(4, 5, 6))
    transforms = se3_exp(xi)
    assert isinstance(transforms, np.ndarray) and transforms.shape == (4, 5, 4, 4)
    np.testing.assert_allclose(transforms[2, 3], se3_exp(xi[2, 3]), atol=1e-15)
    np.testing.assert_allclose(se3_exp(torch.from_numpy(xi)).numpy(), transforms, atol=1e-15)
    as_float32 = se3_exp(torch.tensor(xi, dtype=torch.float32))
    assert as_float32.dtype == torch.float32
    np.testing.assert_allclose(as_float32.numpy(), transforms, atol=1e-5)
    np.testing.assert_allclose(se3_log(transforms)[1, 4], se3_log(transforms[1, 4]), atol=1e-15)
    rotations = so3_exp(xi[..., :3])
    np.testing.assert_allclose(so3_log(torch.from_numpy(rotations)).numpy(), so3_log(rotations))


def test_exp_gradients_finite_at_zero_and_match_finite_differences():
    """Gradients of exp and log are finite at ξ = 0 and agree with finite differences."""
    zero = torch.zeros(2, 6, dtype=torch.float64, requires_grad=True)
    se3_exp(zero).sum().backward()
    assert torch.isfinite(zero.grad).all()
    generator = torch.Generator().manual_seed(0)
    random = torch.randn(3, 6, dtype=torch.float64, generator=generator)
    # At zero, inside the Taylor region, across its switch (θ = 0.01) and at general twists.
    for xi in (torch.zeros(1, 6), torch.full((1, 6), 1e-4), 0.01 * AXIS.repeat(2)[None],
               random):
        xi = torch.as_tensor(xi, dtype=torch.float64).requires_grad_(True)
        assert torch.autograd.gradcheck(se3_exp, (xi,))
        assert torch.autograd.gradcheck(lambda x: se3_log(se3_exp(x)), (xi,))


@pytest.mark.parametrize('angle', [0.0, 1e-7, 0.01, 1.0, 2.8, np.pi - 1e-3])
def test_log_gradients_match_finite_differences(angle):
    """so3_log is differentiable on matrices near any angle below π (both branches)."""
    rotation = torch.from_numpy(so3_exp(AXIS * angle)).requires_grad_(True)
    assert torch.autograd.gradcheck(so3_log, (rotation,))


@pytest.mark.parametrize('angle', [0.0, np.pi])
def test_log_gradient_finite_at_identity_and_half_turn(angle):
    """The log's singular points give finite gradients (no NaN for an optimiser)."""
    rotation = torch.from_numpy(so3_exp(AXIS * angle)).requires_grad_(True)
    so3_log(rotation).sum().backward()
    assert torch.isfinite(rotation.grad).all()


def test_quaternions_round_trip_with_w_nonnegative(rng):
    """Quaternions are unit, w >= 0, and ±q of any norm give the same matrix; batched."""
    rotations = random_rotations(rng, 60).reshape(3, 20, 3, 3)
    quats = matrix_to_quat(rotations)
    assert quats.shape == (3, 20, 4) and (quats[..., 3] >= 0).all()
    np.testing.assert_allclose(np.linalg.norm(quats, axis=-1), 1.0, atol=1e-15)
    np.testing.assert_allclose(quat_to_matrix(quats), rotations, atol=1e-14)
    np.testing.assert_allclose(quat_to_matrix(-2.5 * quats), rotations, atol=1e-14)
    half = np.sqrt(0.5)
    np.testing.assert_allclose(matrix_to_quat(so3_exp(np.array([0.0, 0.0, -np.pi / 2]))),
                               [0.0, 0.0, -half, half], atol=1e-15)


def test_opengl_and_ros_poses_round_trip(rng):
    """w2c → c2w (OpenGL) → w2c and w2c → ROS Pose → w2c return the pose, batched."""
    rotations, translations = random_rotations(rng, 8), rng.normal(size=(8, 3))
    c2w = w2c_to_c2w_opengl(rotations, translations)
    np.testing.assert_array_equal(c2w[:, 3], np.tile([0.0, 0.0, 0.0, 1.0], (8, 1)))
    np.testing.assert_allclose(c2w[:, :3, :3], np.swapaxes(rotations, 1, 2) * [1, -1, -1])
    back = c2w_opengl_to_w2c(c2w)
    np.testing.assert_allclose(back[0], rotations, atol=1e-15)
    np.testing.assert_allclose(back[1], translations, atol=1e-14)
    position, quat = w2c_to_ros_pose(rotations, translations)
    np.testing.assert_allclose(position, camera_center(rotations, translations))
    np.testing.assert_allclose(quat_to_matrix(quat), np.swapaxes(rotations, 1, 2), atol=1e-14)
    again = ros_pose_to_w2c(position, quat)
    np.testing.assert_allclose(again[0], rotations, atol=1e-14)
    np.testing.assert_allclose(again[1], translations, atol=1e-14)


def test_camera_center_is_mapped_to_the_camera_origin(rng):
    """The centre -Rᵀt is the world point at camera coordinates 0."""
    rotations, translations = random_rotations(rng, 5), rng.normal(size=(5, 3))
    centres = camera_center(rotations, translations)
    in_camera = np.einsum('nij,nj->ni', rotations, centres) + translations
    np.testing.assert_allclose(in_camera, 0.0, atol=1e-14)
    w2c = rigid_matrix(rotations, translations)
    np.testing.assert_allclose(np.linalg.inv(w2c)[:, :3, 3], centres, atol=1e-14)


def test_view_angles_invert_sphere_points(rng):
    """A camera put at an azimuth, elevation and distance is seen there from the head."""
    azimuth, elevation = rng.uniform(-3.1, 3.1, 20), rng.uniform(-1.5, 1.5, 20)
    distance = rng.uniform(0.3, 2.0, 20)
    rotations, translations = look_at_w2c(sphere_point(distance, azimuth, elevation), np.zeros(3))
    seen = view_angles(rotations, translations)
    np.testing.assert_allclose(seen, np.degrees([azimuth, elevation]), atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(camera_center(rotations, translations), axis=-1),
                               distance)


def test_importing_geometry_leaves_torch_out():
    """The nodes that only convert poses must not pay torch's second and 200 MB to import."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, '-c', 'import sys, head_capture.geometry; '
                             'print("torch" in sys.modules)'], capture_output=True, text=True,
                            timeout=120)
    assert result.stdout.strip() == 'False', result.stderr


def test_look_at_in_opencv_and_opengl_axes():
    """A look-at camera sees its target on +z with world up image-up; OpenGL -z looks ahead."""
    center = np.array([0.2, -0.6, 0.1])
    rotation, translation = look_at_w2c(center, np.zeros(3))
    np.testing.assert_allclose(camera_center(rotation, translation), center, atol=1e-15)
    np.testing.assert_allclose(translation, [0, 0, np.linalg.norm(center)], atol=1e-15)
    assert (rotation @ [0.0, 0.0, 1.0])[1] < 0  # world up points to image up, -y
    assert abs((rotation @ [0.0, 0.0, 1.0])[0]) < 1e-15  # and the horizon is level
    c2w = w2c_to_c2w_opengl(rotation, translation)
    # OpenGL cameras look down -z: the third column points from the target to the camera.
    np.testing.assert_allclose(c2w[:3, 2], center / np.linalg.norm(center), atol=1e-15)
    assert c2w[2, 1] > 0  # camera +y (image up) has a world-up component


def test_look_at_broadcasts_and_refuses_undefined_views():
    """Centres broadcast against one target, and undefined views raise ValueError."""
    centres = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.5], [-1.0, -1.0, -1.0]])
    rotations, translations = look_at_w2c(centres, [0.0, 0.0, 0.2])
    for i, centre in enumerate(centres):
        single = look_at_w2c(centre, [0.0, 0.0, 0.2])
        np.testing.assert_allclose(rotations[i], single[0])
        np.testing.assert_allclose(translations[i], single[1])
    with pytest.raises(ValueError, match='parallel'):
        look_at_w2c([0.0, 0.0, 1.0], np.zeros(3))
    with pytest.raises(ValueError, match='coincides'):
        look_at_w2c(np.ones(3), np.ones(3))


@fast
@given(st.floats(0.1, 10.0), arrays(np.float64, 3, elements=st.floats(-3.0, 3.0)),
       st.integers(0, 2 ** 32 - 1))
def test_umeyama_recovers_a_similarity_exactly(scale, translation, seed):
    """Noiseless points under a random similarity give back its scale, R and t."""
    rng = np.random.default_rng(seed)
    rotation = random_rotations(rng, 1)[0]
    src = rng.normal(size=(12, 3))
    dst = scale * src @ rotation.T + translation
    found = umeyama(src, dst)
    assert found.scale == pytest.approx(scale, rel=1e-9)
    np.testing.assert_allclose(found.rotation, rotation, atol=1e-9)
    np.testing.assert_allclose(found.translation, translation, atol=1e-9)
    np.testing.assert_allclose(found.apply(src), dst, atol=1e-9)
    rigid = umeyama(src, src @ rotation.T + translation, with_scale=False)
    assert rigid.scale == 1.0
    np.testing.assert_allclose(rigid.rotation, rotation, atol=1e-9)


def test_umeyama_returns_a_rotation_for_mirrored_points(rng):
    """A mirror image gets the best rotation (det +1) and, for it, the least-squares s and t."""
    src = rng.normal(size=(10, 3))
    dst = src * [1.0, 1.0, -1.0]
    found = umeyama(src, dst)
    assert np.linalg.det(found.rotation) == pytest.approx(1.0)
    src_centred, dst_centred = src - src.mean(0), dst - dst.mean(0)
    best_scale = np.sum(dst_centred * (src_centred @ found.rotation.T)) / np.sum(src_centred ** 2)
    assert found.scale == pytest.approx(best_scale, rel=1e-12)
    np.testing.assert_allclose(found.apply(src).mean(0), dst.mean(0), atol=1e-15)


def test_umeyama_refuses_degenerate_points():
    """Collinear points, too few points and wrong shapes raise ValueError."""
    line = np.outer(np.arange(5.0), [1.0, 2.0, 3.0]) + [0.5, 0.0, -1.0]
    with pytest.raises(ValueError, match='on one line'):
        umeyama(line, line)
    with pytest.raises(ValueError, match='N >= 3'):
        umeyama(line[:2], line[:2])
    with pytest.raises(ValueError, match='\\(N, 3\\)'):
        umeyama(np.zeros((4, 2)), np.zeros((4, 2)))


def orbit(n=12):
    """Return world-to-camera poses of n cameras on a wavy ring, all facing the origin."""
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return look_at_w2c(np.stack([0.6 * np.cos(a), 0.6 * np.sin(a), 0.1 * np.sin(3 * a)], -1),
                       np.zeros(3))


def test_pose_errors_vanish_under_a_similarity():
    """Cameras in another frame and scale (as BARF or COLMAP return them) have no error."""
    rotations, translations = orbit()
    rotation, scale, shift = so3_exp(np.array([0.3, -1.0, 0.5])), 2.5, np.array([1.0, 2, 3])
    centres = scale * camera_center(rotations, translations) @ rotation.T + shift
    moved = rotations @ rotation.T
    errors = pose_errors(moved, -np.einsum('nij,nj->ni', moved, centres), rotations,
                         translations)
    summary = errors.summary()
    assert summary['rotation_deg_max'] < 1e-6 and summary['translation_cm_max'] < 1e-9
    assert summary['frames'] == 12 and errors.alignment.scale == pytest.approx(1 / scale)
    assert json.loads(json.dumps(summary)) == summary


def test_pose_errors_report_a_known_rotation_error():
    """A camera rolled 5° about its own optical axis has a 5° error and moves nothing else."""
    rotations, translations = orbit()
    centres = camera_center(rotations, translations)
    turned = rotations.copy()
    turned[4] = so3_exp(np.array([0.0, 0.0, np.radians(5.0)])) @ rotations[4]
    errors = pose_errors(turned, -np.einsum('nij,nj->ni', turned, centres), rotations,
                         translations)
    assert errors.rotation_deg[4] == pytest.approx(5.0, abs=1e-9)
    np.testing.assert_allclose(np.delete(errors.rotation_deg, 4), 0.0, atol=1e-9)
    np.testing.assert_allclose(errors.translation_cm, 0.0, atol=1e-9)
    summary = errors.summary()
    assert summary['rotation_deg_mean'] == pytest.approx(5.0 / 12)
    assert summary['rotation_deg_median'] == pytest.approx(0.0, abs=1e-9)
    assert summary['rotation_deg_max'] == pytest.approx(5.0)


def test_pose_errors_report_a_known_translation_error():
    """Ring cameras alternately lifted ±δ: R = I, s = r²/(r²+δ²), each error rδ/√(r²+δ²)."""
    radius, lift = 0.6, 0.01
    a = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    ring = np.stack([radius * np.cos(a), radius * np.sin(a), np.zeros(12)], -1)
    rotations, translations = look_at_w2c(ring, np.zeros(3))
    lifted = ring + np.outer(np.tile([1.0, -1.0], 6), [0.0, 0.0, lift])
    errors = pose_errors(rotations, -np.einsum('nij,nj->ni', rotations, lifted), rotations,
                         translations)
    expected_cm = 100.0 * radius * lift / np.hypot(radius, lift)
    np.testing.assert_allclose(errors.translation_cm, expected_cm, rtol=1e-9)
    np.testing.assert_allclose(errors.rotation_deg, 0.0, atol=1e-9)
    assert errors.alignment.scale == pytest.approx(radius ** 2 / (radius ** 2 + lift ** 2))
    np.testing.assert_allclose(errors.alignment.rotation, np.eye(3), atol=1e-12)


def test_rotation_angle_is_precise_for_tiny_and_large_angles():
    """The geodesic angle is exact down to micro-degrees and up to a half turn."""
    degrees = np.array([1e-7, 1e-3, 5.0, 90.0, 179.0, 180.0])
    turned = so3_exp(np.radians(degrees)[:, None] * AXIS)
    np.testing.assert_allclose(rotation_angle_deg(turned, np.eye(3)), degrees, rtol=1e-7)


def test_pose_errors_refuse_cameras_on_a_line():
    """Cameras whose centres are collinear cannot be aligned: ValueError."""
    rotations, _ = orbit(4)
    translations = -np.einsum('nij,nj->ni', rotations, np.outer(np.arange(4.0), [1.0, 0, 0]))
    with pytest.raises(ValueError, match='on one line'):
        pose_errors(rotations, translations, rotations, translations)
