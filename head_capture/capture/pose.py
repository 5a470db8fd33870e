"""
A camera pose from one frame's landmarks: RANSAC PnP against the 3D head template.

Landmarks are 2D predictions of the template's 703 points, so every frame is a PnP problem with
known correspondences and a few bad ones (a landmark on the hidden side can be far off). RANSAC
(OpenCV, with SQPnP on each minimal sample: see ``bench/poses.py`` for the solver comparison)
finds the consensus among the surest landmarks; a sigma-weighted, Huber-robust Gauss-Newton
refinement over all landmarks then lets each one count by how sure the detector was. Poses
are world-to-camera in the head frame, metres, because the template is metric. A pose that
cannot be right (too few landmarks agree, camera inside the head or behind it, absurd
distance) is refused with the reason, so one bad frame never reaches the trainer.
"""

from dataclasses import dataclass

import cv2
from head_capture.geometry import camera_center
import numpy as np

SOLVERS = {'epnp': cv2.SOLVEPNP_EPNP, 'sqpnp': cv2.SOLVEPNP_SQPNP,
           'iterative': cv2.SOLVEPNP_ITERATIVE}


@dataclass(frozen=True)
class PoseConfig:
    """RANSAC, refinement and plausibility settings of the pose solver."""

    # Minimal solver inside RANSAC: sqpnp, epnp or iterative.
    solver: str = 'sqpnp'
    # A landmark agrees with a pose when it reprojects within this share of the head box side.
    inlier_share_of_box: float = 0.05
    ransac_iterations: int = 100
    # Hypotheses come from this share of the landmarks, the ones with the smallest sigma.
    sample_share: float = 0.5
    refine_iterations: int = 8
    # Residuals (in sigmas) beyond which Huber weights start to fall.
    huber: float = 2.0
    # How far a real head may be from the average template (m): a sigma floor in 3D.
    template_sigma_m: float = 0.004
    # Refuse poses with fewer agreeing landmarks than this share or count.
    min_inlier_share: float = 0.4
    min_inliers: int = 30
    # Plausible camera distances from the head centre (m): inside the head below, absurd above.
    distance_m: tuple = (0.15, 4.0)
    # Images that are kept (offline registration, live keyframes) also get their mirror
    # image read, a second detector pass whose landmarks mark the template's mirrored points:
    # bench/fig4.py's PnP 3.98° -> 3.68°. Live frames, which run at a rate, do not.
    mirror_pass: bool = True

    def __post_init__(self):
        if self.solver not in SOLVERS:
            raise ValueError(f'solver must be one of {sorted(SOLVERS)}, got {self.solver!r}')
        if not 0 < self.inlier_share_of_box < 1 or not 0 < self.sample_share <= 1:
            raise ValueError('inlier_share_of_box must be in (0, 1), sample_share in (0, 1]')
        if self.ransac_iterations < 1 or self.refine_iterations < 0 or self.min_inliers < 4:
            raise ValueError('need ransac_iterations >= 1, refine_iterations >= 0 and '
                             'min_inliers >= 4')
        if not 0 < self.distance_m[0] < self.distance_m[1]:
            raise ValueError(f'distance_m must be (near, far) with 0 < near < far, '
                             f'got {self.distance_m}')


@dataclass(frozen=True)
class PoseEstimate:
    """A world-to-camera pose (head frame, metres) with its quality, or the reason it is not."""

    rotation: np.ndarray = None
    translation: np.ndarray = None
    inlier_share: float = 0.0
    reprojection_px: float = float('nan')
    confidence: float = 0.0
    reason: str = None

    @property
    def registered(self):
        """Whether the frame got a pose."""
        return self.reason is None

    @property
    def centre(self):
        """Return the camera centre in the head frame (metres)."""
        return camera_center(self.rotation, self.translation)

    def to_json(self):
        """Plain dict for JSON files and ROS String messages."""
        out = {'registered': self.registered, 'reason': self.reason,
               'inlier_share': round(float(self.inlier_share), 4),
               'reprojection_px': (round(float(self.reprojection_px), 3)
                                   if np.isfinite(self.reprojection_px) else None),
               'confidence': round(float(self.confidence), 4)}
        if self.registered:
            out.update(rotation=np.round(self.rotation, 8).tolist(),
                       translation=np.round(self.translation, 8).tolist())
        return out


def refused(reason, inlier_share=0.0, reprojection_px=float('nan')):
    """Return the estimate of a frame that gets no pose, saying why."""
    return PoseEstimate(inlier_share=inlier_share, reprojection_px=reprojection_px,
                        reason=reason)


def _project(rotation, translation, points, camera_matrix):
    cam = points @ rotation.T + translation
    return cam, cam[:, :2] / cam[:, 2:3] * camera_matrix[[0, 1], [0, 1]] + camera_matrix[:2, 2]


def refine_pose(rotation, translation, points, pixels, sigma_px, camera_matrix, config):
    """
    Gauss-Newton on sigma-weighted reprojection error, Huber-robust, updates on the left.

    ``sigma_px`` already includes the template's own uncertainty; the returned pose has the
    smallest robust cost found, so a step that makes things worse is never kept.
    """
    focal = camera_matrix[[0, 1], [0, 1]]
    best = (np.inf, rotation, translation)
    for _ in range(config.refine_iterations + 1):
        cam, projected = _project(rotation, translation, points, camera_matrix)
        residual = (projected - pixels) / sigma_px[:, None]
        norm = np.linalg.norm(residual, axis=1)
        huber = np.where(norm <= config.huber, 0.5 * norm ** 2,
                         config.huber * (norm - 0.5 * config.huber))
        cost = float(huber.sum())
        if cost >= best[0]:
            break
        best = (cost, rotation, translation)
        weight = np.where(norm <= config.huber, 1.0, config.huber / np.maximum(norm, 1e-12))
        jacobian = _twist_jacobian(cam, focal) / sigma_px[:, None, None]
        rows = jacobian.reshape(-1, 6)
        weighted = rows * np.repeat(weight, 2)[:, None]
        hessian = weighted.T @ rows
        gradient = weighted.T @ residual.reshape(-1)
        try:
            step = -np.linalg.solve(hessian + 1e-9 * np.trace(hessian) * np.eye(6), gradient)
        except np.linalg.LinAlgError:
            break
        # Retraction R <- exp(w) R, t <- exp(w) t + v: first-order the same as SE(3)'s exp,
        # for which the Jacobian above is taken, and a tenth of its cost per step.
        turn = cv2.Rodrigues(step[:3])[0]
        rotation = turn @ rotation
        translation = turn @ translation + step[3:]
        if np.linalg.norm(step) < 1e-9:
            break
    return best[1], best[2]


def _twist_jacobian(cam, focal):
    """d(pixel)/d(twist (w, v) applied on the left) at camera-frame points, (N, 2, 6)."""
    x, y, inv_z = cam[:, 0], cam[:, 1], 1.0 / cam[:, 2]
    u, v = x * inv_z, y * inv_z
    zero = np.zeros_like(u)
    du = focal[0] * np.stack([-u * v, 1 + u * u, -v, inv_z, zero, -u * inv_z], 1)
    dv = focal[1] * np.stack([-(1 + v * v), u * v, u, zero, inv_z, -v * inv_z], 1)
    return np.stack([du, dv], 1)


def solve_pose(pixels, sigma_px, template, intrinsics, config=PoseConfig(), rng_seed=0):
    """
    Return the camera pose that maps ``template`` (N, 3) onto landmark ``pixels`` (N, 2).

    ``sigma_px`` (N,) is the detector's per-landmark uncertainty in pixels. Distorted
    intrinsics are handled by undistorting the landmarks first.
    """
    pixels = np.asarray(pixels, np.float64)
    sigma_px = np.asarray(sigma_px, np.float64)
    template = np.asarray(template, np.float64)
    if pixels.shape != (len(template), 2) or sigma_px.shape != (len(template),):
        raise ValueError(f'need {len(template)} landmarks (N, 2) and sigmas (N,), got '
                         f'{pixels.shape} and {sigma_px.shape}')
    finite = np.isfinite(pixels).all(1) & np.isfinite(sigma_px) & (sigma_px > 0)
    if finite.sum() < config.min_inliers:
        return refused(f'only {int(finite.sum())} finite landmarks')
    pixels, sigma_px, template = pixels[finite], sigma_px[finite], template[finite]
    camera_matrix = intrinsics.matrix
    if intrinsics.has_distortion:
        pixels = cv2.undistortPoints(pixels[:, None], camera_matrix,
                                     np.array(intrinsics.distortion), P=camera_matrix)[:, 0]
    span = np.percentile(pixels, 98, axis=0) - np.percentile(pixels, 2, axis=0)
    threshold = max(config.inlier_share_of_box * float(span.max()), 1.0)
    keep = max(config.min_inliers, int(config.sample_share * len(sigma_px)))
    surest = np.argsort(sigma_px)[:keep]
    cv2.setRNGSeed(rng_seed)
    found, rvec, tvec, consensus = cv2.solvePnPRansac(
        template[surest], pixels[surest], camera_matrix, None,
        iterationsCount=config.ransac_iterations, reprojectionError=threshold,
        confidence=0.999, flags=SOLVERS[config.solver])
    if not found or not np.isfinite(rvec).all() or not np.isfinite(tvec).all():
        return refused('RANSAC found no pose the landmarks agree on')
    rotation, translation = cv2.Rodrigues(rvec)[0], tvec[:, 0]
    # The detector's sigma plus how far this head may differ from the template, in pixels.
    depth = np.maximum((template @ rotation.T + translation)[:, 2], 1e-3)
    sigma_total = np.hypot(sigma_px, config.template_sigma_m * intrinsics.fx / depth)
    # Refit on the surest landmarks RANSAC kept: measured, the unsure half only adds noise.
    kept = surest[consensus[:, 0]] if consensus is not None else surest
    rotation, translation = refine_pose(rotation, translation, template[kept], pixels[kept],
                                        sigma_total[kept], camera_matrix, config)
    _, projected = _project(rotation, translation, template, camera_matrix)
    error = np.linalg.norm(projected - pixels, axis=1)
    inliers = error < threshold
    share = float(inliers.mean())
    median_error = float(np.median(error[inliers])) if inliers.any() else float('nan')
    reason = implausible(rotation, translation, inliers, share, config)
    if reason:
        return refused(reason, share, median_error)
    confidence = share * max(0.0, 1.0 - median_error / threshold)
    return PoseEstimate(rotation, translation, share, median_error, confidence)


def implausible(rotation, translation, inliers, share, config):
    """Return why a pose cannot be right, or None when it may be."""
    if inliers.sum() < config.min_inliers or share < config.min_inlier_share:
        return (f'only {int(inliers.sum())} of {len(inliers)} landmarks agree with the '
                f'template (needs {config.min_inlier_share:.0%} and {config.min_inliers})')
    if translation[2] <= 0:
        return 'the head would be behind the camera'
    distance = float(np.linalg.norm(camera_center(rotation, translation)))
    near, far = config.distance_m
    if distance < near:
        return f'the camera would be inside the head ({distance * 100:.0f} cm from its centre)'
    if distance > far:
        return f'the camera would be {distance:.1f} m from the head: implausible'
    return None
