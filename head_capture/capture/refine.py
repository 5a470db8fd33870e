"""
Camera poses within a degree: the landmark PnP cameras seed a feature bundle adjustment.

Landmarks register every view, the back of the head too, and say where the head is; but each
frame's detector noise leaves PnP a few degrees off. Features are precise where the head has
texture and hold nothing where it has none. So COLMAP (through ``pycolmap``) finds SIFT
features inside each keyframe's head-and-shoulders mask only (a room behind the person is
never matched), matches each keyframe with its neighbours by PnP viewing direction,
triangulates tracks from the PnP cameras, and a Ceres bundle adjustment moves cameras and
points together. The landmarks are in the adjustment too: each is a 3D point, started on the
template, that the subject's own shape may move, observed in every view where the detector
saw it clearly. They hold the views features cannot (a bald back of the head). Rounds of
triangulate + adjust follow, as the cameras improve. A similarity that maps the adjusted
landmarks back onto the template then returns the cameras to the head frame, metric scale.

A frame whose refined pose explains its own landmarks much worse than PnP did is rejected:
it keeps its PnP pose, and is counted. Where the features hold nothing at all (a blank wall,
one keyframe), every frame keeps its PnP pose, and the result says why.
"""

from dataclasses import dataclass, field, replace
import os
from pathlib import Path
import tempfile
import time

import cv2
from head_capture.geometry import (c2w_opengl_to_w2c, camera_center, umeyama,
                                   w2c_to_c2w_opengl)
from head_capture.landmarks.template import HeadTemplate
from head_capture.session import (LANDMARKS_DIR, read_image, read_landmarks, read_transforms,
                                  resolve_inside, write_transforms)
from head_capture.supervisor import one_line
import numpy as np

# COLMAP puts the centre of the top-left pixel at (0.5, 0.5); our pixels have it at (0, 0).
COLMAP_PIXEL = 0.5
# Landmark points and the virtual images that see them have ids far above COLMAP's own.
LANDMARK_ID0 = 10_000_000
LANDMARK_IMAGE0 = 10_000_000
# A landmark's residual is counted in units of the nearest of these sigmas (pixels).
SIGMA_BANDS_PX = 0.75 * 2.0 ** np.arange(9)


@dataclass(frozen=True)
class RefineConfig:
    """Features, pairs and adjustment settings of the pose refinement."""

    # SIFT features per keyframe, found inside its mask; a low peak threshold finds them on
    # skin and hair, which the default (0.0067) leaves nearly blank.
    max_features: int = 8192
    peak_threshold: float = 0.001
    # Keyframes are shrunk to this long side for SIFT (keypoints come back at full size), and
    # SIFT's first octave is doubled (-1) or not (0): small images need it, large ones less.
    max_image_size: int = 1024
    first_octave: int = -1
    # Each keyframe is matched with this many neighbours by viewing direction, within the angle.
    neighbours: int = 12
    max_pair_angle_deg: float = 60.0
    # Rounds of triangulate + bundle adjustment.
    rounds: int = 3
    # Robust (Cauchy) loss scale of every reprojection residual, in pixels.
    loss_scale_px: float = 1.0
    # Landmarks enter the adjustment where the detector saw them (visible) with sigma below
    # this, in pixels of the keyframe.
    landmark_max_sigma_px: float = 8.0
    # The detector's sigma is scaled by this before it weighs a landmark against features:
    # a frame's landmark errors are not independent (a whole detection shifts), so 703 of them
    # hold much less than 703 independent measurements would.
    landmark_sigma_scale: float = 4.0
    # A frame whose refined landmark error exceeds PnP's by this factor keeps its PnP pose.
    reject_factor: float = 3.0
    threads: int = 2

    def __post_init__(self):
        if self.max_features < 64 or self.neighbours < 1 or self.rounds < 1:
            raise ValueError('need max_features >= 64, neighbours >= 1 and rounds >= 1')
        if self.max_image_size < 64 or self.first_octave < -1:
            raise ValueError('need max_image_size >= 64 and first_octave >= -1')
        if not 0 < self.peak_threshold < 1 or not 0 < self.max_pair_angle_deg <= 180:
            raise ValueError('peak_threshold must be in (0, 1), max_pair_angle_deg in (0, 180]')
        if self.loss_scale_px <= 0 or self.landmark_max_sigma_px <= 0 or self.reject_factor < 1:
            raise ValueError('loss_scale_px and landmark_max_sigma_px must be > 0, '
                             'reject_factor >= 1')


@dataclass
class RefineView:
    """One registered keyframe: its image, PnP pose, head mask and landmarks."""

    # The image's path relative to the image folder, as COLMAP names it.
    name: str
    rotation: np.ndarray
    translation: np.ndarray
    # uint8, > 0 where the head or shoulders may be; None: the whole image.
    mask: np.ndarray
    # (N, 2) pixels of the template's N landmarks, their sigma (N,) and visibility (N,).
    landmarks: np.ndarray
    sigma: np.ndarray
    visible: np.ndarray


@dataclass
class Refinement:
    """Refined poses (world-to-camera, head frame, metres) and what the refinement did."""

    rotations: list
    translations: list
    # Per view: True where the pose is the bundle-adjusted one, False where PnP's is kept.
    refined: np.ndarray
    # Why no frame was refined, None when some were.
    fallback: str = None
    stats: dict = field(default_factory=dict)

    def summary(self):
        """Return what the refinement did, as transforms files record it."""
        return {'method': 'SIFT in the head masks + landmarks, COLMAP triangulation and Ceres '
                          'bundle adjustment from the PnP cameras',
                'views': len(self.refined), 'refined': int(self.refined.sum()),
                'fallback': self.fallback,
                **{k: v for k, v in self.stats.items() if k != 'per_view'}}

    def describe(self):
        """Return one line for a person: how many poses were refined, or why none."""
        if self.fallback:
            return f'pose refinement: every pose kept from PnP ({self.fallback})'
        return (f'pose refinement: {int(self.refined.sum())} of {len(self.refined)} poses '
                f'bundle-adjusted ({self.stats["feature_points"]} feature points, '
                f'{self.stats["rejected"]} rejected for their landmarks) in '
                f'{self.stats["seconds"]:.0f} s')

    @classmethod
    def merged(cls, views, kept, part):
        """Return ``part`` (the refinement of the ``kept`` views) with the others unchanged."""
        whole = cls.unchanged(views, part.fallback, {**part.stats, 'unreadable': int(
            len(kept) - sum(kept))})
        for index, (rotation, translation, refined) in zip(
                np.flatnonzero(kept), zip(part.rotations, part.translations, part.refined)):
            whole.rotations[index], whole.translations[index] = rotation, translation
            whole.refined[index] = refined
        return whole

    @classmethod
    def unchanged(cls, views, reason, stats=None):
        """Every view keeps its PnP pose, for ``reason``."""
        return cls([v.rotation for v in views], [v.translation for v in views],
                   np.zeros(len(views), bool), reason, stats or {})


def refine_poses(views, image_dir, intrinsics, template, work_dir, config=RefineConfig(),
                 log=None):
    """
    Return the refined poses of ``views`` (``RefineView``), the PnP ones where features fail.

    ``image_dir``: the folder the views' names are relative to. ``template``: the (N, 3)
    landmark positions the PnP poses were solved against. ``work_dir``: a new or empty folder
    for COLMAP's database and masks (the caller removes it).
    """
    import pycolmap

    log = log or (lambda message: None)
    if len(views) < 3:
        return Refinement.unchanged(views, f'{len(views)} registered keyframe(s): bundle '
                                    'adjustment needs at least 3')
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    pycolmap.logging.minloglevel = pycolmap.logging.ERROR
    pycolmap.set_random_seed(0)
    try:
        return _refine(pycolmap, views, image_dir, intrinsics, template, work_dir, config, log)
    except RuntimeError as exc:  # COLMAP's checks: an image it cannot read, a broken model
        return Refinement.unchanged(views, f'COLMAP failed: {one_line(exc)}')


def _refine(pycolmap, views, image_dir, intrinsics, template, work_dir, config, log):
    """``refine_poses`` once its input is checked."""
    started = time.perf_counter()
    work_dir.mkdir(parents=True, exist_ok=True)
    database = work_dir / 'database.db'
    _write_masks(views, work_dir / 'masks')
    _extract(pycolmap, views, image_dir, intrinsics, database, work_dir / 'masks', config)
    with pycolmap.Database.open(database) as db:
        read = {image.name for image in db.read_all_images()}
    if len(read) < len(views):  # COLMAP skips an image it cannot read: refine the others
        kept = [view.name in read for view in views]
        if sum(kept) < 3:
            return Refinement.unchanged(views, f'COLMAP could read {sum(kept)} of '
                                        f'{len(views)} keyframes')
        return Refinement.merged(views, kept, _refine(
            pycolmap, [v for v, ok in zip(views, kept) if ok], image_dir, intrinsics, template,
            work_dir / 'readable', config, log))
    pairs = view_pairs(views, config)
    _match(pycolmap, database, [v.name for v in views], pairs, work_dir / 'pairs.txt', config)
    stats = {'pairs': len(pairs), 'seconds_features': round(time.perf_counter() - started, 2)}
    reconstruction, ids = _posed_reconstruction(pycolmap, database, views)
    for round_index in range(config.rounds):
        reconstruction = pycolmap.triangulate_points(
            reconstruction, database, image_dir, work_dir / 'triangulated', clear_points=True,
            options=_triangulation_options(pycolmap, config))
        features = reconstruction.num_points3D()
        if round_index == 0:
            stats['feature_points_first_round'] = features
        if features == 0:
            return Refinement.unchanged(views, 'no feature track could be triangulated inside '
                                        'the head masks (textureless head or no overlap)',
                                        stats)
        adjusted, landmark_ids = _with_landmarks(pycolmap, reconstruction, views, ids, template,
                                                 config)
        _adjust(pycolmap, adjusted, config)
        for view_id in ids:
            reconstruction.frame(reconstruction.image(view_id).frame_id).rig_from_world = \
                adjusted.image(view_id).cam_from_world()
        log(f'pose refinement round {round_index + 1}/{config.rounds}: {features} feature '
            f'points, reprojection {adjusted.compute_mean_reprojection_error():.2f} px')
    rotations, translations, shape = _to_head_frame(adjusted, views, ids, landmark_ids,
                                                    template)
    per_frame = _feature_observations(reconstruction, ids)
    refined, errors = _accept(views, rotations, translations, shape, template, intrinsics,
                              config)
    stats.update({
        'feature_points': reconstruction.num_points3D(),
        'feature_observations_per_frame_median': float(np.median(per_frame)),
        'mean_reprojection_px': round(adjusted.compute_mean_reprojection_error(), 3),
        'landmark_error_px_pnp_median': round(float(np.median(errors[0])), 3),
        'landmark_error_px_refined_median': round(float(np.median(errors[1])), 3),
        'rejected': int((~refined).sum()),
        'per_view': {'feature_observations': per_frame.tolist(),
                     'landmark_error_px_pnp': np.round(errors[0], 3).tolist(),
                     'landmark_error_px_refined': np.round(errors[1], 3).tolist()},
        'seconds': round(time.perf_counter() - started, 2)})
    return Refinement([r if ok else v.rotation for r, ok, v in zip(rotations, refined, views)],
                      [t if ok else v.translation
                       for t, ok, v in zip(translations, refined, views)],
                      refined, None, stats)


def view_pairs(views, config):
    """Return the (i, j) pairs to match: each view's nearest neighbours by direction."""
    centres = np.array([camera_center(v.rotation, v.translation) for v in views])
    directions = centres / np.linalg.norm(centres, axis=1, keepdims=True)
    angles = np.degrees(np.arccos(np.clip(directions @ directions.T, -1.0, 1.0)))
    np.fill_diagonal(angles, np.inf)
    order = np.argsort(angles, axis=1)[:, :config.neighbours]
    rows = np.repeat(np.arange(len(views)), order.shape[1])
    cols = order.reshape(-1)
    near = angles[rows, cols] <= config.max_pair_angle_deg
    pairs = np.sort(np.stack([rows[near], cols[near]], 1), axis=1)
    return [tuple(p) for p in np.unique(pairs, axis=0)]


def _write_masks(views, folder):
    """Write each view's mask where COLMAP looks for it: ``folder/<name>.png``, 0 = ignore."""
    for view in views:
        if view.mask is None:
            continue
        path = folder / f'{view.name}.png'
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), np.where(view.mask > 0, 255, 0).astype(np.uint8)):
            raise OSError(f'could not write {path}')


def _colmap_camera(intrinsics):
    """Return COLMAP's model name and parameters for ``intrinsics``."""
    centre = (intrinsics.cx + COLMAP_PIXEL, intrinsics.cy + COLMAP_PIXEL)
    if not intrinsics.has_distortion:
        return 'PINHOLE', (intrinsics.fx, intrinsics.fy, *centre)
    k1, k2, p1, p2, k3 = intrinsics.distortion
    return 'FULL_OPENCV', (intrinsics.fx, intrinsics.fy, *centre, k1, k2, p1, p2, k3, 0, 0, 0)


def _extract(pycolmap, views, image_dir, intrinsics, database, mask_dir, config):
    """SIFT inside the masks, one shared camera whose intrinsics are known and kept."""
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model, params = _colmap_camera(intrinsics)
    reader.camera_params = ','.join(repr(float(p)) for p in params)
    if any(v.mask is not None for v in views):
        reader.mask_path = mask_dir
    options = pycolmap.FeatureExtractionOptions()
    options.num_threads = config.threads
    options.use_gpu = False
    options.max_image_size = config.max_image_size
    options.sift.max_num_features = config.max_features
    options.sift.peak_threshold = config.peak_threshold
    options.sift.first_octave = config.first_octave
    pycolmap.extract_features(database, image_dir, image_names=[v.name for v in views],
                              camera_mode=pycolmap.CameraMode.SINGLE, reader_options=reader,
                              extraction_options=options, device=pycolmap.Device.cpu)


def _match(pycolmap, database, names, pairs, pairs_file, config):
    """Match and verify the chosen pairs (indices into ``names``) only."""
    pairs_file.write_text(''.join(f'{names[i]} {names[j]}\n' for i, j in pairs))
    options = pycolmap.FeatureMatchingOptions()
    options.num_threads = config.threads
    options.use_gpu = False
    pairing = pycolmap.ImportedPairingOptions()
    pairing.match_list_path = pairs_file
    pycolmap.match_image_pairs(database, matching_options=options, pairing_options=pairing,
                               device=pycolmap.Device.cpu)


def _posed_reconstruction(pycolmap, database, views):
    """Return a reconstruction of the database's camera and images at their PnP poses."""
    with pycolmap.Database.open(database) as db:
        camera = db.read_all_cameras()[0]
        images = {image.name: image for image in db.read_all_images()}
        keypoints = {image.image_id: db.read_keypoints(image.image_id)
                     for image in images.values()}
    reconstruction = pycolmap.Reconstruction()
    reconstruction.add_camera_with_trivial_rig(camera)
    ids = []
    for view in views:
        stored = images[view.name]
        image = pycolmap.Image(name=view.name, camera_id=camera.camera_id,
                               image_id=stored.image_id)
        image.points2D = pycolmap.Point2DList(
            [pycolmap.Point2D(xy) for xy in keypoints[stored.image_id][:, :2]])
        reconstruction.add_image_with_trivial_frame(image, _rigid(pycolmap, view.rotation,
                                                                  view.translation))
        ids.append(stored.image_id)
    return reconstruction, ids


def _rigid(pycolmap, rotation, translation):
    """Return a world-to-camera pose as COLMAP's Rigid3d."""
    return pycolmap.Rigid3d(pycolmap.Rotation3d(np.asarray(rotation, float)),
                            np.asarray(translation, float))


def _triangulation_options(pycolmap, config):
    """Options of COLMAP's point triangulator: poses held, seeded."""
    options = pycolmap.IncrementalPipelineOptions()
    options.num_threads = config.threads
    options.random_seed = 0
    options.ba_refine_focal_length = False
    options.ba_refine_principal_point = False
    options.ba_refine_extra_params = False
    return options


def _with_landmarks(pycolmap, reconstruction, views, ids, template, config):
    """
    Return ``reconstruction``'s cameras and feature points with the landmarks added as points.

    A landmark enters where it was seen (visible, sigma below the bound); each starts at its
    template position, which is where the PnP cameras put it. COLMAP weighs every residual
    alike, so a landmark's weight comes from the camera that sees it: each keyframe is a rig
    of its own camera and one virtual camera per sigma band, the same camera shrunk by that
    sigma, so a landmark's residual is counted in sigmas where a feature's is in pixels.
    Returns the new reconstruction and the point id of each landmark (by template index).
    """
    adjusted = pycolmap.Reconstruction()
    camera = next(iter(reconstruction.cameras.values()))
    adjusted.add_camera(camera)
    rig = pycolmap.Rig(rig_id=1)
    rig.add_ref_sensor(camera.sensor_id)
    bands = []
    for band, sigma in enumerate(SIGMA_BANDS_PX):
        shrunk = pycolmap.Camera.create_from_model_id(
            band + 2, camera.model, 1.0, max(1, round(camera.width / sigma)),
            max(1, round(camera.height / sigma)))
        params = np.array(camera.params, float)
        params[list(camera.focal_length_idxs()) + list(camera.principal_point_idxs())] /= sigma
        shrunk.params = params
        adjusted.add_camera(shrunk)
        rig.add_sensor(shrunk.sensor_id, pycolmap.Rigid3d())
        bands.append(shrunk)
    adjusted.add_rig(rig)
    observed = {}
    for view, view_id in zip(views, ids):
        source = reconstruction.image(view_id)
        frame = pycolmap.Frame()
        frame.frame_id = view_id
        frame.rig_id = rig.rig_id
        frame.rig_from_world = source.cam_from_world()
        images = [_image(pycolmap, source.name, camera, view_id, frame,
                         [p.xy for p in source.points2D])]
        seen = (view.visible & np.isfinite(view.landmarks).all(1)
                & (view.sigma < config.landmark_max_sigma_px))
        sigma = view.sigma * config.landmark_sigma_scale
        band_of = np.abs(np.log(sigma[:, None] / SIGMA_BANDS_PX)).argmin(1)
        for band, shrunk in enumerate(bands):
            landmarks = np.flatnonzero(seen & (band_of == band))
            image_id = LANDMARK_IMAGE0 + view_id * len(bands) + band
            images.append(_image(pycolmap, f'{source.name}#sigma{band}', shrunk, image_id, frame,
                                 (view.landmarks[landmarks] + COLMAP_PIXEL)
                                 / SIGMA_BANDS_PX[band]))
            for index, landmark in enumerate(landmarks):
                observed.setdefault(int(landmark), []).append(
                    pycolmap.TrackElement(image_id, index))
        adjusted.add_frame(frame)
        for image in images:
            adjusted.add_image(image)
        adjusted.register_frame(frame.frame_id)
    for point_id, point in reconstruction.points3D.items():
        adjusted.add_point3D_with_id(point_id, point)
    landmark_ids = {}
    for landmark, elements in observed.items():
        if len(elements) < 2:
            continue
        point = pycolmap.Point3D()
        point.xyz = template[landmark]
        point.track = pycolmap.Track(elements)
        adjusted.add_point3D_with_id(LANDMARK_ID0 + landmark, point)
        landmark_ids[landmark] = LANDMARK_ID0 + landmark
    return adjusted, landmark_ids


def _image(pycolmap, name, camera, image_id, frame, pixels):
    """Return an image of ``camera`` in ``frame`` with ``pixels`` as its points."""
    frame.add_data_id(pycolmap.data_t(camera.sensor_id, image_id))
    image = pycolmap.Image(name=name, camera_id=camera.camera_id, image_id=image_id)
    image.frame_id = frame.frame_id
    image.points2D = pycolmap.Point2DList([pycolmap.Point2D(xy) for xy in pixels])
    return image


def _adjust(pycolmap, reconstruction, config):
    """
    Ceres bundle adjustment: every camera pose and point free, the camera held, Cauchy loss.

    Two cameras fix the gauge (the head frame and scale come back from the landmarks).
    """
    options = pycolmap.BundleAdjustmentOptions()
    options.refine_focal_length = False
    options.refine_principal_point = False
    options.refine_extra_params = False
    options.refine_sensor_from_rig = False
    options.print_summary = False
    options.ceres.loss_function_type = pycolmap.LossFunctionType.CAUCHY
    options.ceres.loss_function_scale = config.loss_scale_px
    options.ceres.solver_options.num_threads = config.threads
    options.ceres.solver_options.max_num_iterations = 100
    problem = pycolmap.BundleAdjustmentConfig()
    for image_id in reconstruction.reg_image_ids():
        problem.add_image(image_id)
    for camera_id in reconstruction.cameras:
        problem.set_constant_cam_intrinsics(camera_id)
    problem.fix_gauge(pycolmap.BundleAdjustmentGauge.TWO_CAMS_FROM_WORLD)
    pycolmap.create_default_bundle_adjuster(options, problem, reconstruction).solve()


def _to_head_frame(adjusted, views, ids, landmark_ids, template):
    """
    Return the poses in the head frame and the subject's landmark shape (template indices).

    The similarity that best maps the adjusted landmarks onto the template fixes the frame
    and the scale the adjustment left free; with fewer than three landmarks, the one that
    maps the adjusted camera centres onto the PnP ones.
    """
    indices = np.array(sorted(landmark_ids), int)
    points = np.array([adjusted.point3D(landmark_ids[i]).xyz for i in indices]).reshape(-1, 3)
    poses = [adjusted.image(view_id).cam_from_world() for view_id in ids]
    if len(indices) >= 3:
        similarity = umeyama(points, template[indices])
    else:
        similarity = umeyama([camera_center(p.rotation.matrix(), p.translation) for p in poses],
                             [camera_center(v.rotation, v.translation) for v in views])
    back = similarity.rotation.T
    rotations, translations = [], []
    for pose in poses:
        rotation = pose.rotation.matrix() @ back
        rotations.append(rotation)
        translations.append(similarity.scale * np.asarray(pose.translation)
                            - rotation @ similarity.translation)
    shape = np.full(template.shape, np.nan)
    shape[indices] = similarity.apply(points)
    return rotations, translations, shape


def _feature_observations(reconstruction, ids):
    """Return the number of triangulated feature observations of each view."""
    return np.array([reconstruction.image(view_id).num_points3D for view_id in ids])


def _accept(views, rotations, translations, shape, template, intrinsics, config):
    """
    Return which refined poses to keep, and the landmark errors (px) of PnP and refined.

    A pose is judged by the median error of the view's own seen landmarks: PnP's against the
    template it was solved on, the refined pose's against the subject's adjusted shape (the
    template where the adjustment had no landmark).
    """
    shape = np.where(np.isfinite(shape), shape, template)
    pnp, refined = [], []
    for view, rotation, translation in zip(views, rotations, translations):
        seen = view.visible & np.isfinite(view.landmarks).all(1)
        pnp.append(_median_error(view.rotation, view.translation, template[seen],
                                 view.landmarks[seen], intrinsics))
        refined.append(_median_error(rotation, translation, shape[seen], view.landmarks[seen],
                                     intrinsics))
    pnp, refined = np.array(pnp), np.array(refined)
    keep = np.isfinite(refined) & (refined <= config.reject_factor * pnp + 1.0)
    return keep, (pnp, refined)


def _median_error(rotation, translation, points, pixels, intrinsics):
    """Return the median reprojection error (px) of ``points`` against ``pixels``."""
    if not len(points):
        return np.nan
    projected = cv2.projectPoints(points, cv2.Rodrigues(np.asarray(rotation, float))[0],
                                  np.asarray(translation, float), intrinsics.matrix,
                                  np.array(intrinsics.distortion))[0][:, 0]
    return float(np.median(np.linalg.norm(projected - pixels, axis=1)))


def refine_registered(images, estimates, observations, template, work_parent,
                      config=RefineConfig(), log=None):
    """
    Return ``estimates`` with the registered ones refined, and the ``Refinement``.

    ``images``: the ``ImageSet`` registered; ``observations``: ``register_images``'s second
    list. COLMAP works in a temporary folder under ``work_parent``, removed afterwards.
    """
    registered = [i for i, estimate in enumerate(estimates) if estimate.registered]
    paths = [Path(images.paths[i]).resolve() for i in registered]
    image_dir = Path(os.path.commonpath([p.parent for p in paths])) if paths else Path('.')
    views = [RefineView(paths[k].relative_to(image_dir).as_posix(), estimates[i].rotation,
                        estimates[i].translation, observations[i].mask,
                        observations[i].landmarks, observations[i].sigma,
                        observations[i].visible)
             for k, i in enumerate(registered)]
    with tempfile.TemporaryDirectory(prefix='.refine_', dir=work_parent) as work:
        refinement = refine_poses(views, image_dir, images.intrinsics, template, work, config,
                                  log)
    refined = list(estimates)
    for k, i in enumerate(registered):
        refined[i] = replace(estimates[i], rotation=refinement.rotations[k],
                             translation=refinement.translations[k])
    return refined, refinement


def refine_transforms(path, template=None, config=RefineConfig(), log=None):
    """
    Refine the posed frames of a session's transforms file in place; return the Refinement.

    Frames need their landmarks in the session (``landmarks/``, written at registration);
    frames without keep their pose. Each frame records whether its pose was refined
    (``pose_refined``), the file what the refinement did (``head_capture.pose_refinement``).
    """
    path = Path(path)
    transforms = read_transforms(path)
    root = path.parent
    if template is None:
        template = HeadTemplate.load().positions
    views, frames = [], []
    for frame in transforms.frames:
        stored = read_landmarks(root, frame.file_path) if frame.c2w is not None else None
        if stored is None:
            continue
        mask = frame.training_mask and read_image(resolve_inside(root, frame.training_mask))
        rotation, translation = c2w_opengl_to_w2c(frame.c2w)
        views.append(RefineView(frame.file_path, rotation, translation,
                                None if mask is None else mask[..., 0], *stored))
        frames.append(frame)
    if not views:
        return Refinement.unchanged(views, f'no posed frame of {path.name} has its landmarks '
                                    f'in {root / LANDMARKS_DIR}')
    with tempfile.TemporaryDirectory(prefix='.refine_', dir=root) as work:
        refinement = refine_poses(views, root, transforms.intrinsics, template, work, config,
                                  log)
    for frame, rotation, translation, refined in zip(frames, refinement.rotations,
                                                     refinement.translations,
                                                     refinement.refined):
        frame.c2w = w2c_to_c2w_opengl(rotation, translation)
        frame.meta['pose_refined'] = bool(refined)
    transforms.meta.setdefault('head_capture', {})['pose_refinement'] = refinement.summary()
    write_transforms(path, transforms)
    return refinement
