"""
Register a set of images: landmarks, then a PnP pose for each, into a transforms.json.

Shared by ``head-capture poses``, the pose benchmark and the offline pipeline. Input is a
folder of images or a transforms.json (a session, a sequence); output is a nerfstudio-style
transforms.json in the head frame that the avatar trainer reads directly, with every frame
that got no pose listed with the reason.
"""

from dataclasses import dataclass
import os
from pathlib import Path

from head_capture.camera import DEFAULT_FOV_DEG, Intrinsics
from head_capture.capture.pose import PoseConfig, refused, solve_pose
from head_capture.geometry import w2c_to_c2w_opengl
from head_capture.landmarks.template import mirrored
from head_capture.session import (FrameRecord, read_image, read_transforms, resolve_inside,
                                  Transforms, TRANSFORMS_FILE)
import numpy as np

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')
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
    the stated default field of view of a phone camera.
    """
    source = Path(source)
    if source.is_dir() and (source / TRANSFORMS_FILE).is_file():
        source = source / TRANSFORMS_FILE
    if source.is_file():
        transforms = read_transforms(source)
        if not transforms.frames:
            raise FileNotFoundError(f'{source} lists no frames')
        base = source.parent
        paths = [resolve_inside(base, f.file_path) for f in transforms.frames]
        return ImageSet(paths, [f.file_path for f in transforms.frames], transforms.intrinsics,
                        f'{source.name}')
    if not source.is_dir():
        raise FileNotFoundError(f'no image folder or transforms.json at {source}')
    paths = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f'no images in {source}')
    height, width = read_image(paths[0]).shape[:2]
    if intrinsics_file is not None:
        intrinsics = read_transforms(intrinsics_file).intrinsics
        if (intrinsics.width, intrinsics.height) != (width, height):
            intrinsics = intrinsics.resized(width, height)
        origin = str(intrinsics_file)
    else:
        fov = DEFAULT_FOV_DEG if fov_deg is None else fov_deg
        intrinsics = Intrinsics.from_fov(width, height, fov)
        origin = f'{fov:g}° horizontal field of view' + (' (default)' if fov_deg is None else '')
    return ImageSet(paths, [p.name for p in paths], intrinsics, origin)


def register_images(images, detector, template, config=PoseConfig(), progress=None):
    """Return a PoseEstimate per image, in order (unreadable images are refused, not fatal)."""
    estimates = []
    for path in images.paths:
        try:
            frame = read_image(path, background=ALPHA_BACKGROUND)
        except (OSError, ValueError) as exc:
            estimates.append(refused(f'unreadable image: {exc}'))
        else:
            if frame.shape[:2] != (images.intrinsics.height, images.intrinsics.width):
                estimates.append(refused(f'image is {frame.shape[1]}x{frame.shape[0]}, the '
                                         f'camera {images.intrinsics.width}x'
                                         f'{images.intrinsics.height}'))
            else:
                estimates.append(pose_of_frame(frame, images.intrinsics, detector, template,
                                               config))
        if progress is not None:
            progress()
    return estimates


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


def registered_transforms(images, estimates, out_path, meta=None):
    """
    Return the Transforms of the registered frames, paths relative to ``out_path``'s folder.

    Frames without a pose go to ``meta['head_capture']['unregistered']`` with the reason.
    """
    base = Path(out_path).resolve().parent
    frames, unregistered = [], []
    for path, name, estimate in zip(images.paths, images.names, estimates):
        relative = os.path.relpath(Path(path).resolve(), base)
        if estimate.registered:
            frames.append(FrameRecord(relative, w2c_to_c2w_opengl(estimate.rotation,
                                                                  estimate.translation),
                                      meta={'pose_quality': pose_quality(estimate)}))
        else:
            unregistered.append({'file_path': relative, 'reason': estimate.reason})
    info = {'poses': 'head landmarks + RANSAC PnP (head frame, metres)',
            'intrinsics': images.intrinsics_source, 'frames': len(estimates),
            'registered': len(frames), 'unregistered': unregistered, **(meta or {})}
    return Transforms(images.intrinsics, frames, {'head_capture': info})
