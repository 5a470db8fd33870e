"""
The capture session directory and its nerfstudio-layout ``transforms.json``.

A session is one folder: ``frames/`` (keyframes as PNG), ``trimaps/`` (the trainer's masks:
255 head, 0 background, ``MASK_UNSURE`` where the segmentation cannot tell), ``masks/`` (the
same in nerfstudio's meaning, where 0 is ignored: 255 on the sure head, 0 elsewhere),
``landmarks/`` (each registered frame's landmarks, for the pose refinement) and
``transforms.json``, which lists every frame with its metadata and, once known, its pose. The
file is what the avatar trainer reads and what nerfstudio, instant-ngp and other tools read, so
poses are stored the way they expect: camera-to-world 4x4 in OpenGL camera axes, principal
point with the top-left pixel centre at (0.5, 0.5), and ``frames`` lists posed frames only
(every reader needs a ``transform_matrix`` there); frames without a pose (yet) are listed
apart, under ``unregistered_frames``, and read back with the others, in file order.
Blender-style files (``camera_angle_x``, file paths without extension, as in the NeRF
synthetic scenes) are read as well. Sessions written before trimaps existed keep their
three-level masks under ``mask_path``; the trainer reads ``trimap_path`` where there is one,
else ``mask_path``.

Every write is atomic (``files``: temporary file + rename), so a killed process or a full disk
leaves the previous ``transforms.json`` and every finished frame intact. A session written in
one go (the offline keyframes) is marked unfinished until it is complete, so a rerun after a
failure replaces it without asking. Every path is resolved before anything is written or
deleted: a symbolic link that leads out of the session is refused.
"""

from dataclasses import dataclass, field
import json
import math
import os
from pathlib import Path, PurePosixPath

import cv2
from head_capture.camera import DISTORTION_TERMS, Intrinsics
from head_capture.files import (IMAGE_SUFFIXES, output_folder, SessionError, write_bytes_atomic,
                                write_image_atomic, write_npz_atomic)
import numpy as np

TRANSFORMS_FILE = 'transforms.json'
FRAMES_DIR = 'frames'
# nerfstudio's masks (``mask_path``): 255 where the head is sure, 0 (ignored) elsewhere.
MASKS_DIR = 'masks'
# The trainer's masks (``trimap_path``): head, background and unsure apart.
TRIMAPS_DIR = 'trimaps'
# A trimap's grey: neither head nor background, so the avatar trains on neither there.
MASK_UNSURE = 128
# Where transforms.json lists the frames without a pose, apart from ``frames``.
UNPOSED_KEY = 'unregistered_frames'
# Live captures: every keyframe as taken, named by its stamp (the nodes' shared key).
KEYFRAMES_DIR = 'keyframes'
# The keyframes a training run was given (frozen from transforms.json, cameras refined).
TRAINING_TRANSFORMS = 'training_transforms.json'
# Each registered frame's landmarks (pixels, sigma, visibility): what pose refinement reads.
LANDMARKS_DIR = 'landmarks'
# Present while a session written in one go is incomplete: a rerun may replace it unasked.
UNFINISHED_FILE = '.unfinished'
# Keys of transforms.json that describe the camera; everything else at the top level is kept.
_CAMERA_KEYS = ('fl_x', 'fl_y', 'cx', 'cy', 'w', 'h', *DISTORTION_TERMS, 'camera_model',
                'camera_angle_x', 'camera_angle_y')


@dataclass
class FrameRecord:
    """One frame of a session: image path relative to the session, optional pose and mask."""

    file_path: str
    c2w: np.ndarray = None
    mask_path: str = None
    meta: dict = field(default_factory=dict)
    trimap_path: str = None

    @property
    def training_mask(self):
        """Return the mask the avatar trains on: the trimap, else (older files) the mask."""
        return self.trimap_path or self.mask_path


@dataclass
class Transforms:
    """The content of a ``transforms.json``: one shared camera and the frames."""

    intrinsics: Intrinsics
    frames: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)


def read_transforms(path):
    """Read a nerfstudio or Blender-style ``transforms.json``; frame paths stay relative."""
    path = Path(path)
    if not path.is_file():
        raise SessionError(f'no transforms file at {path}')
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not text at all
        raise SessionError(f'{path} is not readable JSON: {exc}') from exc
    raw_frames = data.get('frames') if isinstance(data, dict) else None
    if not isinstance(raw_frames, list):
        raise SessionError(f'{path} has no "frames" list')
    unposed = data.get(UNPOSED_KEY, [])
    if not isinstance(unposed, list):
        raise SessionError(f'{path}: "{UNPOSED_KEY}" is not a list')
    frames = [_frame_from_json(path.parent, entry, n, path)
              for n, entry in enumerate(raw_frames + unposed)]
    if unposed:  # back in one list, in file order: the order our sessions took them in
        frames.sort(key=lambda frame: frame.file_path)
    intrinsics = _intrinsics_from_json(data, path.parent, frames, path)
    meta = {k: v for k, v in data.items()
            if k not in _CAMERA_KEYS and k not in ('frames', UNPOSED_KEY)}
    return Transforms(intrinsics, frames, meta)


def write_transforms(path, transforms):
    """Write ``transforms`` atomically in the nerfstudio layout (OPENCV camera model)."""
    cam = transforms.intrinsics
    # k3 only where a lens has it: nerfstudio's OPENCV model reads it, most other readers
    # (instant-ngp, COLMAP's OPENCV) know k1 k2 p1 p2 alone.
    lens = {name: value for name, value in zip(DISTORTION_TERMS, cam.distortion)
            if name != 'k3' or value != 0.0}
    head = json.dumps({
        'camera_model': 'OPENCV',
        'fl_x': cam.fx, 'fl_y': cam.fy, 'cx': cam.cx + 0.5, 'cy': cam.cy + 0.5,
        'w': cam.width, 'h': cam.height, **lens, **transforms.meta}, indent=2)
    # Posed frames only under "frames": nerfstudio and instant-ngp need a transform_matrix for
    # each. One frame per line: json's C encoder (no indent) is ten times faster than its
    # indented Python one, and a live session of thousands of keyframes is rewritten every
    # second.
    lists = {'frames': [f for f in transforms.frames if f.c2w is not None],
             UNPOSED_KEY: [f for f in transforms.frames if f.c2w is None]}
    text = head[:-2]
    for key, frames in lists.items():
        if frames or key == 'frames':
            lines = ',\n'.join('    ' + json.dumps(_frame_to_json(f)) for f in frames)
            text += f',\n  "{key}": [\n{lines}\n  ]'
    write_bytes_atomic(Path(path), (text + '\n}\n').encode())


def read_image(path, background=None):
    """
    Read an image file as uint8 RGB.

    Alpha, when present, is dropped, or composited over the grey level ``background`` (the
    segmented views of the synthetic sequences hide nothing useful under alpha 0).
    """
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if pixels is not None and pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    if pixels is None or pixels.dtype != np.uint8:
        raise SessionError(f'cannot read image {path}')
    if pixels.ndim == 2:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
    rgb = cv2.cvtColor(pixels[..., :3], cv2.COLOR_BGR2RGB)
    if pixels.shape[2] == 4 and background is not None:
        alpha = pixels[..., 3:] / 255.0
        rgb = (alpha * rgb + (1.0 - alpha) * background + 0.5).astype(np.uint8)
    return rgb


class Session:
    """A capture session directory; nothing is ever written outside ``root``."""

    def __init__(self, root, transforms):
        self.root = Path(root).resolve()
        self.transforms = transforms

    @classmethod
    def create(cls, root, intrinsics, meta=None, overwrite=False, partial=False):
        """
        Start a new session in ``root``; refuse to replace one unless ``overwrite``.

        ``partial``: the session is marked unfinished until ``finish``, so a rerun after a
        failure replaces it without ``overwrite``; it was this program's, and incomplete.
        """
        root = output_folder(root, 'session folder')
        for name in (TRANSFORMS_FILE, UNFINISHED_FILE, FRAMES_DIR, MASKS_DIR, TRIMAPS_DIR,
                     LANDMARKS_DIR):
            resolve_inside(root, name)  # no link out of the session, before anything is touched
        unfinished = (root / UNFINISHED_FILE).is_file()
        if (root / TRANSFORMS_FILE).exists() and not (overwrite or unfinished):
            raise SessionError(f'{root} already holds a session; choose another directory '
                               'or overwrite it explicitly (--overwrite)')
        if (root / TRANSFORMS_FILE).exists() or unfinished:
            for folder, suffix in ((FRAMES_DIR, 'png'), (MASKS_DIR, 'png'), (TRIMAPS_DIR, 'png'),
                                   (LANDMARKS_DIR, 'npz')):
                for image in resolve_inside(root, folder).glob(f'*.{suffix}'):
                    image.unlink()
        root.mkdir(parents=True, exist_ok=True)
        session = cls(root, Transforms(intrinsics, [], dict(meta or {})))
        if partial:
            write_bytes_atomic(session.path_of(UNFINISHED_FILE),
                               b'head-capture is writing this session; a rerun replaces it\n')
            session.save()
        else:
            session.finish()
        return session

    @classmethod
    def load(cls, root):
        """Open an existing session directory."""
        return cls(root, read_transforms(Path(root) / TRANSFORMS_FILE))

    @property
    def frames(self):
        """Return the frame records in order."""
        return self.transforms.frames

    def add_frame(self, image, meta=None):
        """Store a keyframe image and return its record (saved by the next ``save``)."""
        cam = self.transforms.intrinsics
        if image.shape[:2] != (cam.height, cam.width):
            raise SessionError(f'frame of size {image.shape[1]}x{image.shape[0]} does not match '
                               f'the session camera {cam.width}x{cam.height}')
        relative = f'{FRAMES_DIR}/{len(self.frames):06d}.png'
        write_image_atomic(self.path_of(relative), image)
        record = FrameRecord(relative, meta=dict(meta or {}))
        self.frames.append(record)
        return record

    def add_record(self, file_path, c2w=None, mask=None, meta=None):
        """List an image already in the session (a live keyframe), with its pose and mask."""
        self.path_of(file_path)
        record = FrameRecord(file_path, c2w, meta=dict(meta or {}))
        if mask is not None:
            self._store_mask(record, mask)
        self.frames.append(record)
        return record

    def write_mask(self, index, mask):
        """Store the trimap (uint8: 255 head, 0 background, MASK_UNSURE) of frame ``index``."""
        self._store_mask(self.frames[index], mask)

    def write_landmarks(self, index, landmarks, sigma, visible):
        """Store frame ``index``'s landmarks (N, 2) px, their sigma (N,) px and visibility."""
        write_npz_atomic(self.path_of(landmarks_path(self.frames[index].file_path)),
                         landmarks=landmarks, sigma=sigma, visible=visible)

    def _store_mask(self, record, trimap):
        """Write a frame's trimap and its nerfstudio mask, named after the frame's image."""
        name = f'{Path(record.file_path).stem}.png'
        record.trimap_path, record.mask_path = f'{TRIMAPS_DIR}/{name}', f'{MASKS_DIR}/{name}'
        write_image_atomic(self.path_of(record.trimap_path), trimap)
        write_image_atomic(self.path_of(record.mask_path), nerfstudio_mask(trimap))

    def image(self, index):
        """Load frame ``index`` as RGB uint8."""
        return read_image(self.path_of(self.frames[index].file_path))

    def path_of(self, relative):
        """Resolve a path stored in the session; refuse one that leaves the session."""
        return resolve_inside(self.root, relative)

    def save(self):
        """Write ``transforms.json`` atomically."""
        write_transforms(self.path_of(TRANSFORMS_FILE), self.transforms)

    def finish(self):
        """Save, then drop the unfinished mark: the session is complete."""
        self.save()
        self.path_of(UNFINISHED_FILE).unlink(missing_ok=True)


def landmarks_path(file_path):
    """Return where a session keeps the landmarks of the frame at ``file_path``."""
    return f'{LANDMARKS_DIR}/{Path(file_path).stem}.npz'


def read_landmarks(root, file_path):
    """Return (landmarks, sigma, visible) of a frame of the session at ``root``, or None."""
    path = resolve_inside(root, landmarks_path(file_path))
    if not path.is_file():
        return None
    with np.load(path) as stored:
        return stored['landmarks'], stored['sigma'], stored['visible'].astype(bool)


def nerfstudio_mask(trimap):
    """
    Return the mask nerfstudio reads from a trimap: 255 on the sure head, 0 (ignore) elsewhere.

    nerfstudio trains on every non-zero pixel and has no "background, train it empty": a
    trimap's grey would be trained on, its background would have to be modelled. Keeping the
    head alone gives it what our avatar is.
    """
    return np.where(np.asarray(trimap) > MASK_UNSURE, 255, 0).astype(np.uint8)


def keyframe_file(stamp_ns):
    """Return the session-relative path of the live keyframe stamped ``stamp_ns``."""
    return f'{KEYFRAMES_DIR}/{int(stamp_ns):020d}.png'


def keyframe_stamp(relative):
    """Return the stamp of a live keyframe's session-relative path, or None for any other."""
    path = PurePosixPath(relative)
    return _stamp_of_name(path.name) if path.parent.as_posix() == KEYFRAMES_DIR else None


def keyframe_stamps(root):
    """
    Return the stamps of the live keyframes kept in session ``root``, oldest first.

    Names only, with no path objects: the live node lists thousands of keyframes every few
    seconds. A folder that cannot be listed has none.
    """
    try:
        names = os.listdir(Path(root) / KEYFRAMES_DIR)
    except OSError:
        return []
    return sorted(stamp for stamp in map(_stamp_of_name, names) if stamp is not None)


def _stamp_of_name(name):
    stem, dot, suffix = name.rpartition('.')
    # ASCII digits only: str.isdigit also takes superscripts, which int() refuses.
    return int(stem) if dot and suffix == 'png' and stem.isascii() and stem.isdigit() else None


def resolve_inside(root, relative):
    """
    Join ``relative`` to ``root`` and refuse a result outside ``root``.

    Symbolic links are followed first, so one that leads out of ``root`` is refused (named),
    whatever is then read, written or deleted through it.
    """
    root = Path(root).resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(root):
        link = next((p for p in _prefixes(root, relative) if p.is_symlink()), None)
        if link is not None:
            raise SessionError(f'{link} is a symbolic link to {os.path.realpath(link)}, outside '
                               f'the session at {root}: nothing is written or deleted through '
                               'it; remove the link or choose another folder')
        raise SessionError(f'path {relative!r} points outside the session at {root}')
    return target


def _prefixes(root, relative):
    """Yield ``root``/a, ``root``/a/b, ... for ``relative`` a/b/...: where a link may be."""
    path = root
    for part in Path(relative).parts:
        path = path / part
        yield path


def _frame_from_json(base, entry, number, source):
    if not isinstance(entry, dict) or 'file_path' not in entry:
        raise SessionError(f'{source}: frame {number} has no file_path')
    c2w = entry.get('transform_matrix')
    if c2w is not None:
        c2w = np.asarray(c2w, dtype=float)
        if c2w.shape != (4, 4) or not np.all(np.isfinite(c2w)):
            raise SessionError(f'{source}: frame {number} has a transform_matrix that is not a '
                               'finite 4x4 matrix')
    meta = {k: v for k, v in entry.items()
            if k not in ('file_path', 'transform_matrix', 'mask_path', 'trimap_path')}
    return FrameRecord(_with_image_suffix(base, entry['file_path']), c2w,
                       entry.get('mask_path'), meta, entry.get('trimap_path'))


def _with_image_suffix(base, file_path):
    """Blender files name images without extension ("./train/r_0"); find the file on disk."""
    if Path(file_path).suffix.lower() in IMAGE_SUFFIXES or (base / file_path).exists():
        return file_path
    for suffix in IMAGE_SUFFIXES:
        if (base / (file_path + suffix)).exists():
            return file_path + suffix
    return file_path


def _intrinsics_from_json(data, base, frames, source):
    k = tuple(float(data.get(key, 0.0)) for key in DISTORTION_TERMS)
    if 'w' in data and 'h' in data:
        width, height = int(data['w']), int(data['h'])
    elif frames:
        image = read_image(resolve_inside(base, frames[0].file_path))
        height, width = image.shape[:2]
    else:
        raise SessionError(f'{source} gives no image size and has no frames to measure')
    if 'fl_x' in data:
        fx = float(data['fl_x'])
        fy = float(data.get('fl_y', fx))
    elif 'camera_angle_x' in data:
        fx = 0.5 * width / math.tan(0.5 * float(data['camera_angle_x']))
        fy = (0.5 * height / math.tan(0.5 * float(data['camera_angle_y']))
              if 'camera_angle_y' in data else fx)
    else:
        raise SessionError(f'{source} has neither fl_x nor camera_angle_x')
    cx = float(data.get('cx', 0.5 * width)) - 0.5
    cy = float(data.get('cy', 0.5 * height)) - 0.5
    try:
        return Intrinsics(fx, fy, cx, cy, width, height, k)
    except ValueError as exc:
        raise SessionError(f'{source}: {exc}') from exc


def _frame_to_json(frame):
    entry = {'file_path': frame.file_path}
    if frame.c2w is not None:
        entry['transform_matrix'] = np.asarray(frame.c2w, dtype=float).tolist()
    if frame.mask_path is not None:
        entry['mask_path'] = frame.mask_path
    if frame.trimap_path is not None:
        entry['trimap_path'] = frame.trimap_path
    entry.update(frame.meta)
    return entry
