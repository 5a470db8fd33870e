"""
Files written so that a crash leaves them whole, output paths checked before the work, images.

Every write goes through a temporary file and a rename, so a killed process or a full disk
leaves the previous file intact and a reader never sees half of one. Sessions, models,
reports and datasets all write this way; ``SessionError`` is the one error any of them
raises for a file or folder that cannot be used.
"""

import errno
import io
import os
from pathlib import Path
import tempfile

import cv2
import numpy as np

# What a folder of images may hold, in the formats OpenCV reads.
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


class SessionError(ValueError):
    """A session, or a file or folder a command reads or writes, that cannot be used: why."""


def list_images(folder, key=None):
    """Return the image files of ``folder`` sorted by ``key``; hidden ones (macOS ``._``) not."""
    return sorted((p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
                   and not p.name.startswith('.') and p.is_file()), key=key)


def write_bytes_atomic(path, payload):
    """Write ``payload`` to ``path`` through a temporary file, so readers never see half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide outputs from the user's other tools
        with os.fdopen(fd, 'wb') as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise SessionError(f'disk full while writing {path}; earlier files are '
                               'intact') from exc
        raise


def write_image_atomic(path, image):
    """Encode an RGB, RGBA or single-channel uint8 image as PNG and write it atomically."""
    if image.ndim == 2:
        pixels = image
    else:
        pixels = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA if image.shape[2] == 4
                              else cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode('.png', pixels)
    if not ok:
        raise SessionError(f'could not encode an image of shape {image.shape} for {path}')
    write_bytes_atomic(Path(path), encoded.tobytes())


def write_npz_atomic(path, **arrays):
    """Write arrays as a compressed ``.npz`` atomically."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_bytes_atomic(Path(path), buffer.getvalue())


def output_folder(path, flag='--out'):
    """
    Return ``path`` as a folder to write in; refuse one that is (or lies under) a file.

    Said in one line naming the flag, where creating it would fail with "[Errno 17] File
    exists" or "Not a directory".
    """
    path = Path(path)
    for folder in (path, *path.parents):
        if folder.exists() or folder.is_symlink():
            if not folder.is_dir():
                what = 'is a file' if folder == path else f'lies under {folder}, a file'
                raise SessionError(f'{flag} {path} {what}; give a folder for the outputs')
            break
    return path


def output_file(path, overwrite=False, flag='--out'):
    """Return ``path`` as a file to write; refuse a folder, or an existing file unless asked."""
    path = Path(path)
    output_folder(path.parent, f'{flag} {path}: its folder')
    if path.is_dir():
        raise SessionError(f'{flag} {path} is a folder; give a file name')
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise SessionError(f'{flag} {path} exists; pass --overwrite to replace it, or choose '
                           'another file')
    return path
