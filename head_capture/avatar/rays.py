"""
Views and rays for the avatar: images, masks and cameras in, batches of rays out.

A view is an RGB image, its foreground mask (the alpha of a segmented view; all ones when the
image has none), and its world-to-camera pose in OpenCV axes. Rays are cast through pixel
centres; a direction has camera depth 1, so distances along it are depths and the renderer
scales by the direction's length for metric spacing.
"""

from dataclasses import dataclass
from pathlib import Path

import cv2
from head_capture.capture.head_volume import HeadVolume, META_KEY as HEAD_VOLUME
from head_capture.capture.preprocess import undistort
from head_capture.geometry import c2w_opengl_to_w2c
from head_capture.session import MASK_UNSURE, read_transforms, resolve_inside, SessionError
import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class Views:
    """
    Images (N, H, W, 3) and masks (N, H, W) in [0, 1], the shared camera, initial poses.

    ``volume`` is the head volume the source's masks were cut to (a ``HeadVolume``), if any.
    ``weights`` (N, H, W) is the share of each pixel its mask is sure of (None: all of
    every pixel); what a mask marks ``MASK_UNSURE`` is neither trained on nor scored.
    """

    images: torch.Tensor
    masks: torch.Tensor
    intrinsics: object
    rotations: torch.Tensor
    translations: torch.Tensor
    names: list
    transforms: object
    volume: object = None
    weights: torch.Tensor = None

    def __len__(self):
        return len(self.names)


def load_views(transforms_path, long_side=0):
    """
    Read every frame a transforms.json lists, optionally shrunk to ``long_side`` pixels.

    Frames without a pose are refused: the trainer needs a starting pose for each. When the
    source keeps a head volume (a capture session), every frame is first cut to the square
    round the pixels that can show the head (``HeadVolume.square_window``): a phone's 16:9
    frame shrunk whole would spend most of its pixels on the room. A camera with lens
    distortion has its frames and masks undistorted first, since rays are cast as a pinhole's.
    """
    transforms_path = Path(transforms_path)
    transforms = read_transforms(transforms_path)
    if not transforms.frames:
        raise SessionError(f'{transforms_path} lists no frames')
    missing = [f.file_path for f in transforms.frames if f.c2w is None]
    if missing:
        raise SessionError(f'{len(missing)} frame(s) of {transforms_path} have no pose, e.g. '
                           f'{missing[0]}: run head-capture poses first')
    rotations, translations = c2w_opengl_to_w2c(np.stack([f.c2w for f in transforms.frames]))
    lens = transforms.intrinsics
    camera = lens.without_distortion()
    volume = _head_volume(transforms, transforms_path)
    window = (volume.square_window(camera, rotations, translations) if volume is not None
              else None)
    if window is not None:
        camera = camera.cropped(window[0], window[1], window[2], window[2])
    scale = 1.0 if long_side <= 0 else min(1.0, long_side / max(camera.width, camera.height))
    size = (max(1, round(camera.width * scale)), max(1, round(camera.height * scale)))
    images, masks, weights = [], [], []
    for frame in transforms.frames:
        path = resolve_inside(transforms_path.parent, frame.file_path)
        pixels = _cut(_read(path, cv2.IMREAD_UNCHANGED, 'image', lens), window)
        if pixels.ndim == 2:
            pixels = cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
        pixels = _shrink(pixels.astype(np.float32) / (
            65535.0 if pixels.dtype == np.uint16 else 255.0), size)
        images.append(pixels[..., 2::-1])
        mask = pixels[..., 3] if pixels.shape[2] == 4 else None
        weight = None
        if mask is None and frame.training_mask:
            mask, weight = _sure_mask(_cut(_read(
                resolve_inside(transforms_path.parent, frame.training_mask),
                cv2.IMREAD_GRAYSCALE, 'mask', lens), window), size)
        masks.append(np.ones(pixels.shape[:2], np.float32) if mask is None else mask)
        weights.append(weight)
    return Views(torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(masks)),
                 camera.resized(*size) if size != (camera.width, camera.height) else camera,
                 torch.from_numpy(rotations).float(), torch.from_numpy(translations).float(),
                 [f.file_path for f in transforms.frames], transforms, volume,
                 _stack_weights(weights, masks))


def _sure_mask(mask, size):
    """
    Return a stored mask shrunk to ``size`` in [0, 1] over its sure pixels, and their share.

    The share is None when the mask is sure of every pixel (a binary mask).
    """
    unsure = mask == MASK_UNSURE
    if not unsure.any():
        return cv2.resize(mask, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255, None
    sure = (~unsure).astype(np.float32)
    weight = cv2.resize(sure, size, interpolation=cv2.INTER_AREA)
    value = cv2.resize(mask.astype(np.float32) / 255 * sure, size, interpolation=cv2.INTER_AREA)
    return value / np.maximum(weight, 1e-6), weight


def _stack_weights(weights, masks):
    """Return the (N, H, W) weights, None when every mask is sure of every pixel."""
    if all(w is None for w in weights):
        return None
    return torch.from_numpy(np.stack([np.ones_like(m) if w is None else w
                                      for w, m in zip(weights, masks)]))


def _head_volume(transforms, path):
    """Return the head volume a transforms.json keeps, None without one; refuse a bad one."""
    entry = transforms.meta.get(HEAD_VOLUME)
    if entry is None:
        return None
    try:
        return HeadVolume.from_meta(entry)
    except ValueError as exc:
        raise SessionError(f'{path}: {exc}') from exc


def _read(path, flags, what, camera):
    """Read an undistorted image or mask of the camera's size; SessionError if it is not one."""
    pixels = cv2.imread(str(path), flags)
    if pixels is None:
        raise SessionError(f'cannot read {what} {path}')
    if (pixels.shape[1], pixels.shape[0]) != (camera.width, camera.height):
        raise SessionError(f'{path} is {pixels.shape[1]}x{pixels.shape[0]}, the camera '
                           f'{camera.width}x{camera.height}')
    return undistort(pixels, camera)[0]


def _cut(pixels, window):
    """Return the (x0, y0, side) square of an image, the image itself without a window."""
    if window is None:
        return pixels
    x0, y0, side = window
    return pixels[y0:y0 + side, x0:x0 + side]


def _shrink(pixels, size):
    """
    Resize a float BGR(A) image to ``size``, averaging colour weighted by alpha.

    Averaging straight colour would mix in whatever the transparent pixels hold (black in a
    render), and the trainer's compositing would then darken every silhouette edge.
    """
    if pixels.shape[1::-1] == size:
        return pixels
    if pixels.shape[2] < 4:
        return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    alpha = pixels[..., 3:]
    shrunk = cv2.resize(np.concatenate([pixels[..., :3] * alpha, alpha], -1), size,
                        interpolation=cv2.INTER_AREA)
    shrunk[..., :3] /= np.maximum(shrunk[..., 3:], 1e-6)
    return shrunk


def holdout_split(count, every):
    """Return (train, held-out) frame indices: every ``every``-th frame is held out (0: none)."""
    held = np.arange(count)[::every] if every > 0 else np.zeros(0, int)
    return np.setdiff1d(np.arange(count), held), held


def pixel_rays(intrinsics, rotations, translations, u, v):
    """
    Return world origins and directions (camera depth 1) of rays through pixels (u, v).

    ``rotations`` (R, 3, 3) and ``translations`` (R, 3) are each ray's world-to-camera pose.
    """
    camera = torch.stack([(u - intrinsics.cx) / intrinsics.fx,
                          (v - intrinsics.cy) / intrinsics.fy, torch.ones_like(u)], -1)
    directions = torch.einsum('rji,rj->ri', rotations, camera)
    origins = -torch.einsum('rji,rj->ri', rotations, translations)
    return origins, directions


def near_far(origins, scene_radius, near=0.0, far=0.0):
    """Per-ray depth range: fixed when given, else the camera's distance to the scene ± radius."""
    if near > 0 and far > 0:
        return torch.full_like(origins[:, 0], near), torch.full_like(origins[:, 0], far)
    distance = origins.norm(dim=-1)
    return (distance - scene_radius).clamp_min(0.05 * distance), distance + scene_radius


def foreground_pixels(masks, frames, margin):
    """
    Return flat pixel indices (frame, row, column in one number) near the foreground.

    A pixel counts when a mask of ``frames`` is set within ``margin`` pixels of it, so the
    silhouette's outside edge, where a misplaced camera shows most, is included.
    """
    frames = torch.as_tensor(frames)
    near = F.max_pool2d(masks[frames][:, None], 2 * margin + 1, stride=1,
                        padding=margin)[:, 0] > 0.5
    local, rows, columns = near.nonzero(as_tuple=True)
    height, width = masks.shape[1:3]
    return (frames[local] * height + rows) * width + columns


def sample_pixels(views, frames, count, generator, focus=None, focus_share=0.0):
    """
    Return a random batch: frame index, pixel (u, v), colour, mask and weight of ``count`` rays.

    A ``focus_share`` of the rays is drawn from the flat pixel indices ``focus`` (see
    ``foreground_pixels``), the rest uniformly over ``frames``.
    """
    height, width = views.images.shape[1:3]
    which = torch.as_tensor(frames)[torch.randint(len(frames), (count,), generator=generator)]
    v = torch.randint(height, (count,), generator=generator)
    u = torch.randint(width, (count,), generator=generator)
    focused = round(count * focus_share) if focus is not None and len(focus) else 0
    if focused:
        pick = focus[torch.randint(len(focus), (focused,), generator=generator)]
        which[:focused], v[:focused], u[:focused] = (pick // (height * width),
                                                     pick // width % height, pick % width)
    weight = views.weights[which, v, u] if views.weights is not None else None
    return (which, u.float(), v.float(), views.images[which, v, u], views.masks[which, v, u],
            weight)
