"""
Register a set of images: landmarks, then a PnP pose for each, into a transforms.json.

Shared by ``head-capture poses``, the pose benchmark and the offline pipeline. Input is a
folder of images or a transforms.json (a session, a sequence); output is a nerfstudio-style
transforms.json in the head frame that the avatar trainer reads directly, with every frame
that got no pose listed with the reason. Its paths resolve from its own folder wherever it is
written: an image outside that folder is linked (or copied) beside it. A file this module wrote
is never taken for the image set: read again, it gives every image it was made from.
"""

from dataclasses import dataclass
import os
from pathlib import Path

from head_capture.camera import DEFAULT_FOV_DEG, image_intrinsics, Intrinsics
from head_capture.capture.pose import PoseConfig, refused, solve_pose
from head_capture.files import list_images, output_file, write_bytes_atomic
from head_capture.geometry import w2c_to_c2w_opengl
from head_capture.landmarks.template import mirrored
from head_capture.session import (FrameRecord, read_image, read_transforms, resolve_inside,
                                  SessionError, Transforms, TRANSFORMS_FILE, write_transforms)
import numpy as np

# Segmented views (RGBA) are seen over this grey, as the detector's plainest background.
ALPHA_BACKGROUND = 128
NO_HEAD = 'no head found (landmarks too unsure or no head mask)'


@dataclass
class ImageSet:
    """Images to register: absolute paths, the names they go by, and their camera."""

    paths: list
    names: list
    intrinsics: Intrinsics
    intrinsics_source: str


def find_images(source, intrinsics_file=None, fov_deg=None):
    """
    Return the ImageSet of a transforms.json, a folder holding one, or a folder of images.

    Intrinsics come from the transforms file, else ``intrinsics_file``, else ``fov_deg``, else
    the stated default field of view of a phone camera. A folder's transforms.json that
    ``poses`` wrote (into the image folder) is an output, not the input: the folder's images
    are.
    """
    source = Path(source)
    if source.is_dir() and (source / TRANSFORMS_FILE).is_file():
        transforms = read_transforms(source / TRANSFORMS_FILE)
        if not written_by_poses(transforms):
            return _listed_images(source / TRANSFORMS_FILE, transforms)
    elif source.is_file():
        return _listed_images(source, read_transforms(source))
    if not source.is_dir():
        raise FileNotFoundError(f'no image folder or transforms.json at {source}')
    paths = list_images(source)
    if not paths:
        ours = (source / TRANSFORMS_FILE).is_file()
        raise FileNotFoundError(f'no images in {source}' + (
            f' (its {TRANSFORMS_FILE} was written by poses: give the file itself to register '
            'its frames again)' if ours else ''))
    # The camera's size from the first image that reads: an unreadable one is skipped later.
    first = next((image for _, image, _ in read_images(paths) if image is not None), None)
    if first is None:
        raise FileNotFoundError(f'none of the {len(paths)} images in {source} can be read')
    fov = DEFAULT_FOV_DEG if fov_deg is None else fov_deg
    if intrinsics_file is not None:
        known, origin = read_transforms(intrinsics_file).intrinsics, str(intrinsics_file)
    else:
        known = None
        origin = f'{fov:g}° horizontal field of view' + (' (default)' if fov_deg is None else '')
    return ImageSet(paths, [p.name for p in paths], image_intrinsics(first, known, fov), origin)


def written_by_poses(transforms):
    """Return whether ``transforms`` is a file ``poses`` wrote (it lists its misses apart)."""
    info = transforms.meta.get('head_capture')
    return isinstance(info, dict) and 'unregistered' in info and 'registered' in info


def _listed_images(path, transforms):
    """Return the images a transforms file lists; a poses file's unregistered ones as well."""
    names = [f.file_path for f in transforms.frames]
    if written_by_poses(transforms):
        names += [miss['file_path'] for miss in transforms.meta['head_capture']['unregistered']]
    if not names:
        raise FileNotFoundError(f'{path} lists no frames')
    return ImageSet([resolve_inside(path.parent, name) for name in names], names,
                    transforms.intrinsics, path.name)


def read_images(paths, background=None):
    """
    Yield ``(path, RGB image, None)``, or ``(path, None, reason)`` for an unreadable image.

    One unreadable image among many is skipped, never fatal: the caller counts it and says
    which (``poses`` lists it unregistered, ``landmarks`` reports it).
    """
    for path in paths:
        try:
            image = read_image(path, background)
        except (OSError, ValueError) as exc:
            yield path, None, f'unreadable image: {exc}'
        else:
            yield path, image, None


def register_images(images, detector, template, config=PoseConfig(), progress=None):
    """
    Return a PoseEstimate per image, in order, and what refinement needs of its landmarks.

    Unreadable images are refused, not fatal. The second list holds an ``Observation`` per
    registered image, None for the others.
    """
    estimates, observations = [], []
    camera = images.intrinsics
    for _, frame, unreadable in read_images(images.paths, ALPHA_BACKGROUND):
        detection = None
        if unreadable:
            estimates.append(refused(unreadable))
        elif frame.shape[:2] != (camera.height, camera.width):
            estimates.append(refused(f'image is {frame.shape[1]}x{frame.shape[0]}, the camera '
                                     f'{camera.width}x{camera.height}'))
        else:
            detection, estimate = detect_and_solve(frame, camera, detector, template, config,
                                                   mirror=True)
            estimates.append(estimate)
        observations.append(Observation.of(detection) if estimates[-1].registered else None)
        if progress is not None:
            progress()
    return estimates, observations


@dataclass
class Observation:
    """A registered frame's landmarks, their sigma (px) and visibility, and its head mask."""

    landmarks: np.ndarray
    sigma: np.ndarray
    visible: np.ndarray
    # uint8 as sessions store it (255 head, MASK_UNSURE, 0 background).
    mask: np.ndarray

    @classmethod
    def of(cls, detection):
        """Return what a detection tells the pose refinement (its float mask is dropped)."""
        return cls(detection.landmarks, detection.sigma, detection.visible,
                   detection.head_mask())


def pose_of_frame(frame, intrinsics, detector, template, config=PoseConfig()):
    """Landmarks, then the pose, of one RGB frame; refused when no head is found."""
    return detect_and_solve(frame, intrinsics, detector, template, config, mirror=True)[1]


def detect_and_solve(frame, intrinsics, detector, template, config=PoseConfig(), box=None,
                     refine=False, mirror=False):
    """
    Return the detection and the pose of one RGB frame (refused when no head is found).

    ``box`` is the head box of the previous frame of a stream: it saves the detector the
    search (``refine``: see ``LandmarkDetector.detect``). ``mirror``: an image that is kept
    (offline, or a keyframe, not a live frame), which also gets the mirror pass when
    ``config.mirror_pass`` asks for it.
    """
    detection = detector.detect(frame, box, refine)
    if not detection.usable:
        return detection, refused(detection.problem or NO_HEAD)
    return detection, solve_pose(*observations(frame, detection, detector, template,
                                               mirror and config.mirror_pass),
                                 intrinsics, config)


def observations(frame, detection, detector, template, mirror):
    """
    Return what PnP solves from: pixels (M, 2), sigma (M,) and their template points (M, 3).

    The detection's landmarks, and with ``mirror`` the mirror pass's after them: they mark the
    template's points mirrored across the head's midplane.
    """
    if not mirror:
        return detection.landmarks, detection.sigma, template
    pixels, sigma = detector.detect_mirrored(frame, detection.box)
    return (np.concatenate([detection.landmarks, pixels]),
            np.concatenate([detection.sigma, sigma]),
            np.concatenate([template, mirrored(template)]))


def keyframe_mask(detection, estimate, camera, volume):
    """
    Return the mask a keyframe trains on: the detector's, cut to the rays through the head.

    ``volume``: the ``HeadVolume`` in the head frame the pose is in; background whose ray
    crosses it below the neck is unsure. Without a pose the detector's mask is kept as it is
    (the frame does not train).
    """
    if not estimate.registered:
        return detection.head_mask()
    return detection.head_mask(*volume.crossing(camera, estimate.rotation, estimate.translation))


def pose_quality(estimate):
    """Return the numbers that say how far to trust a pose, as frames keep them in meta."""
    return {k: v for k, v in estimate.to_json().items()
            if k in ('inlier_share', 'reprojection_px', 'confidence')}


def pose_record(estimate):
    """
    Return what a frame's record keeps of ``estimate``: its c2w, and meta to go with it.

    The meta says how far to trust the pose, or why there is none (``unregistered``), as the
    trainer, the coverage and the report read them from every session and poses file.
    """
    meta = {'pose_quality': pose_quality(estimate)}
    if not estimate.registered:
        return None, {**meta, 'unregistered': estimate.reason}
    return w2c_to_c2w_opengl(estimate.rotation, estimate.translation), meta


def registered_transforms(images, estimates, out_path, meta=None, refinement=None):
    """
    Return the Transforms of the registered frames, paths relative to ``out_path``'s folder.

    Frames without a pose go to ``meta['head_capture']['unregistered']`` with the reason. An
    image outside that folder is listed where ``write_registered`` puts it (``placed_paths``).
    ``refinement``: the ``Refinement`` of the registered frames, in order, when they were
    refined; each frame then says whether its pose is the refined one.
    """
    frames, unregistered = [], []
    refined = iter(refinement.refined if refinement is not None else ())
    for relative, estimate in zip(placed_paths(images, out_path), estimates):
        c2w, pose = pose_record(estimate)
        if estimate.registered:
            if refinement is not None:
                pose['pose_refined'] = bool(next(refined))
            frames.append(FrameRecord(relative, c2w, meta=pose))
        else:
            unregistered.append({'file_path': relative, 'reason': pose['unregistered']})
    info = {'poses': 'head landmarks + RANSAC PnP (head frame, metres)',
            'intrinsics': images.intrinsics_source, 'frames': len(estimates),
            'registered': len(frames), 'unregistered': unregistered, **(meta or {})}
    if refinement is not None:
        info['pose_refinement'] = refinement.summary()
    return Transforms(images.intrinsics, frames, {'head_capture': info})


def placed_paths(images, out_path):
    """
    Return each image's path as the file at ``out_path`` lists it, relative to its folder.

    An image inside that folder is listed where it is; one outside (a path through ``..``
    would be refused by every reader) under ``<stem>_images/`` beside the file, by its name.
    """
    base = Path(out_path).resolve().parent
    beside = f'{Path(out_path).stem}_images'
    placed = []
    for path, name in zip(images.paths, images.names):
        path = Path(path).resolve()
        if path.is_relative_to(base):
            placed.append(path.relative_to(base).as_posix())
        else:
            placed.append(f'{beside}/{Path(os.path.normpath(name)).as_posix()}')
    return placed


def check_poses_output(images, out_path, overwrite=False):
    """
    Refuse (before any work) an ``out_path`` that would replace a file without ``overwrite``.

    That is the file itself, and any other file where an image is to be put beside it.
    """
    out_path = output_file(out_path, overwrite)
    if overwrite:
        return
    base = out_path.resolve().parent
    for path, placed in zip(images.paths, placed_paths(images, out_path)):
        target = resolve_inside(base, placed)
        if target.exists() and not target.samefile(path):
            raise SessionError(f'{target} exists; pass --overwrite to replace it, or choose '
                               'another --out')


def write_registered(images, transforms, out_path):
    """Write the poses file, first putting beside it the images outside its folder."""
    base = Path(out_path).resolve().parent
    for path, placed in zip(images.paths, placed_paths(images, out_path)):
        target = resolve_inside(base, placed)
        if not (target.exists() and target.samefile(path)):
            _link_or_copy(Path(path), target)
    write_transforms(out_path, transforms)


def _link_or_copy(source, target):
    """Put ``source`` at ``target`` atomically: a hard link (no space), else a copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.parent / f'.{target.name}.{os.getpid()}.link'
    temporary.unlink(missing_ok=True)
    try:
        os.link(source, temporary)
    except OSError:  # another file system, or one without links
        write_bytes_atomic(target, source.read_bytes())
    else:
        os.replace(temporary, target)
