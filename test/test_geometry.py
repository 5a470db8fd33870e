"""Property tests of the rotations, pose conventions, Sim(3) alignment and pose errors."""

from head_capture.geometry import (c2w_opengl_to_w2c, camera_center, look_at_w2c,
                                   matrix_to_quat, pose_errors, quat_to_matrix,
                                   ros_pose_to_w2c, rotation_angle_deg, se3_exp, se3_log,
                                   so3_exp, so3_log, umeyama, w2c_to_c2w_opengl,
                                   w2c_to_ros_pose)
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays
import numpy as np
import pytest
import torch

vectors = arrays(np.float64, 3, elements=st.floats(-1.0, 1.0))
settings.register_profile('fast', max_examples=60, deadline=None)
settings.load_profile('fast')


def random_rotations(rng, n):
    return so3_exp(rng.normal(size=(n, 3)))


@given(vectors, st.floats(0.0, np.pi - 1e-3))
def test_so3_log_inverts_exp(direction, angle):
    norm = np.linalg.norm(direction)
    omega = direction / norm * angle if norm > 1e-3 else direction * 1e-3
    rotation = so3_exp(omega)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    np.testing.assert_allclose(so3_log(rotation), omega, atol=1e-9)


@pytest.mark.parametrize('angle', [0.0, 1e-9, 1e-5, 1e-3, np.pi - 1e-6, np.pi])
def test_so3_log_at_the_edges(angle):
    axis = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    rotation = so3_exp(axis * angle)
    omega = so3_log(rotation)
    np.testing.assert_allclose(so3_exp(omega), rotation, atol=1e-9)
    assert np.linalg.norm(omega) == pytest.approx(angle, abs=1e-9)


def test_known_rotation_and_translation():
    quarter = so3_exp(np.array([0.0, 0.0, np.pi / 2]))
    np.testing.assert_allclose(quarter @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-12)
    shift = se3_exp(np.array([0, 0, 0, 0.1, -0.2, 0.3]))
    expected = np.eye(4)
    expected[:3, 3] = (0.1, -0.2, 0.3)
    np.testing.assert_allclose(shift, expected)


@given(arrays(np.float64, 6, elements=st.floats(-2.0, 2.0)))
def test_se3_log_inverts_exp(xi):
    if np.linalg.norm(xi[:3]) > np.pi - 1e-3:
        xi[:3] *= (np.pi - 1e-3) / np.linalg.norm(xi[:3])
    np.testing.assert_allclose(se3_log(se3_exp(xi)), xi, atol=1e-8)


def test_batched_and_torch_match_numpy(rng):
    xi = rng.normal(size=(4, 5, 6))
    transforms = se3_exp(xi)
    assert transforms.shape == (4, 5, 4, 4)
    np.testing.assert_allclose(transforms[2, 3], se3_exp(xi[2, 3]))
    as_torch = se3_exp(torch.tensor(xi, dtype=torch.float32))
    assert as_torch.dtype == torch.float32
    np.testing.assert_allclose(as_torch.numpy(), transforms, atol=1e-5)


def test_exp_gradients_are_finite_at_zero_and_correct():
    zero = torch.zeros(2, 6, dtype=torch.float64, requires_grad=True)
    se3_exp(zero).sum().backward()
    assert torch.isfinite(zero.grad).all()
    for point in (torch.zeros(1, 6), torch.full((1, 6), 1e-4), torch.randn(3, 6)):
        xi = point.double().requires_grad_(True)
        assert torch.autograd.gradcheck(se3_exp, (xi,))
    omega = torch.tensor([[0.2, -0.4, 0.1]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w: so3_log(so3_exp(w)), (omega,))


def test_log_gradient_is_finite_at_identity():
    rotation = torch.eye(3, dtype=torch.float64, requires_grad=True)
    so3_log(rotation).sum().backward()
    assert torch.isfinite(rotation.grad).all()


def test_quaternions_round_trip_with_w_nonnegative(rng):
    rotations = random_rotations(rng, 50)
    quats = matrix_to_quat(rotations)
    assert (quats[:, 3] >= 0).all()
    np.testing.assert_allclose(np.linalg.norm(quats, axis=1), 1.0)
    np.testing.assert_allclose(quat_to_matrix(quats), rotations, atol=1e-12)
    np.testing.assert_allclose(quat_to_matrix(-quats), rotations, atol=1e-12)


def test_pose_conventions_round_trip(rng):
    rotations, translations = random_rotations(rng, 8), rng.normal(size=(8, 3))
    back = c2w_opengl_to_w2c(w2c_to_c2w_opengl(rotations, translations))
    np.testing.assert_allclose(back[0], rotations, atol=1e-12)
    np.testing.assert_allclose(back[1], translations, atol=1e-12)
    position, quat = w2c_to_ros_pose(rotations, translations)
    np.testing.assert_allclose(position, camera_center(rotations, translations))
    again = ros_pose_to_w2c(position, quat)
    np.testing.assert_allclose(again[0], rotations, atol=1e-12)
    np.testing.assert_allclose(again[1], translations, atol=1e-12)


def test_look_at_in_opencv_and_opengl_axes():
    center = np.array([0.0, -0.6, 0.1])
    rotation, translation = look_at_w2c(center, np.zeros(3))
    np.testing.assert_allclose(camera_center(rotation, translation), center, atol=1e-12)
    # The target is straight ahead (+z), world up is image up (-y), on the optical axis.
    np.testing.assert_allclose(rotation @ np.zeros(3) + translation,
                               [0, 0, np.linalg.norm(center)], atol=1e-12)
    assert (rotation @ [0, 0, 1.0])[1] < 0
    c2w = w2c_to_c2w_opengl(rotation, translation)
    # OpenGL cameras look down -z: the third column points from the target to the camera.
    np.testing.assert_allclose(c2w[:3, 2], center / np.linalg.norm(center), atol=1e-12)
    assert c2w[2, 1] > 0  # camera +y (image up) has a world-up component
    with pytest.raises(ValueError, match='parallel'):
        look_at_w2c([0, 0, 1.0], np.zeros(3))


@given(st.floats(0.1, 10.0), arrays(np.float64, 3, elements=st.floats(-3.0, 3.0)),
       st.integers(0, 2 ** 31))
def test_umeyama_recovers_a_similarity_exactly(scale, translation, seed):
    rng = np.random.default_rng(seed)
    rotation = random_rotations(rng, 1)[0]
    source = rng.normal(size=(12, 3))
    target = scale * source @ rotation.T + translation
    found = umeyama(source, target)
    assert found.scale == pytest.approx(scale, rel=1e-9)
    np.testing.assert_allclose(found.rotation, rotation, atol=1e-9)
    np.testing.assert_allclose(found.translation, translation, atol=1e-8)
    np.testing.assert_allclose(found.apply(source), target, atol=1e-8)


def test_umeyama_refuses_degenerate_points():
    line = np.outer(np.arange(5.0), [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match='not all on one line'):
        umeyama(line, line)
    with pytest.raises(ValueError, match='two \\(N, 3\\) arrays'):
        umeyama(np.zeros((4, 2)), np.zeros((4, 2)))


def orbit(n=12):
    poses = [look_at_w2c([0.6 * np.cos(a), 0.6 * np.sin(a), 0.1 * np.sin(3 * a)], np.zeros(3))
             for a in np.linspace(0, 2 * np.pi, n, endpoint=False)]
    return np.array([r for r, _ in poses]), np.array([t for _, t in poses])


def test_pose_errors_vanish_under_a_similarity():
    rotations, translations = orbit()
    # The same cameras in another frame and at another scale (as BARF or COLMAP return them).
    rotation, scale, shift = so3_exp(np.array([0.3, -1.0, 0.5])), 2.5, np.array([1.0, 2, 3])
    centres = scale * camera_center(rotations, translations) @ rotation.T + shift
    moved = rotations @ rotation.T
    errors = pose_errors(moved, -np.einsum('nij,nj->ni', moved, centres), rotations,
                         translations)
    summary = errors.summary()
    assert summary['rotation_deg_max'] < 1e-6 and summary['translation_cm_max'] < 1e-6
    assert summary['frames'] == 12 and errors.alignment.scale == pytest.approx(1 / scale)


def test_pose_errors_report_a_known_rotation_error():
    rotations, translations = orbit()
    centres = camera_center(rotations, translations)
    turned = rotations.copy()
    # Camera 4 rolls by 5 degrees about its optical axis and stays where it is.
    turned[4] = so3_exp(np.array([0.0, 0.0, np.radians(5.0)])) @ rotations[4]
    kept = -np.einsum('nij,nj->ni', turned, centres)
    errors = pose_errors(turned, kept, rotations, translations)
    assert errors.rotation_deg[4] == pytest.approx(5.0, abs=1e-6)
    np.testing.assert_allclose(np.delete(errors.rotation_deg, 4), 0.0, atol=1e-6)
    np.testing.assert_allclose(errors.translation_cm, 0.0, atol=1e-6)
    np.testing.assert_allclose(rotation_angle_deg(turned, rotations)[4], 5.0)
