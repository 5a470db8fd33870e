"""
Reading landmark sets for training, with no renderer installed (a GPU box needs only torch).

A set is a folder of shards listed in ``manifest.json``. A shard holds its images either as
arrays (``images``, what the writer makes) or JPEG-encoded (``images_jpeg`` + ``jpeg_ends``,
what ``compact_copy`` makes: about a sixth of the size, to carry a set to another machine).
"""

import json
from pathlib import Path

import cv2
from head_capture.files import write_bytes_atomic, write_npz_atomic
import numpy as np

MANIFEST = 'manifest.json'


def _decode_shard(shard):
    data = {key: shard[key] for key in shard.files}
    if 'images_jpeg' in data:
        ends = data.pop('jpeg_ends')
        blob = data.pop('images_jpeg')
        starts = np.concatenate([[0], ends[:-1]])
        data['images'] = np.stack([cv2.imdecode(blob[a:b], cv2.IMREAD_COLOR)[..., ::-1]
                                   for a, b in zip(starts, ends)])
    data['landmarks'] = data['landmarks'].astype(np.float32)
    return data


def read_samples(set_dir, limit=None):
    """Return the first ``limit`` samples of a landmark set as one dict of arrays."""
    set_dir = Path(set_dir)
    manifest_path = set_dir / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f'no landmark set in {set_dir} (missing {MANIFEST})')
    parts, total = [], 0
    for name in json.loads(manifest_path.read_text())['shards']:
        if (limit is not None and total >= limit) or not (set_dir / name).exists():
            break
        with np.load(set_dir / name) as shard:
            parts.append(_decode_shard(shard))
        total += len(parts[-1]['images'])
    if not parts:
        raise FileNotFoundError(f'{set_dir} has no finished shard yet')
    return {key: np.concatenate([p[key] for p in parts])[:limit] for key in parts[0]}


def compact_copy(set_dir, out_dir, quality=90):
    """Copy a set with JPEG images and float16 landmarks; return the bytes written."""
    set_dir, out_dir = Path(set_dir), Path(out_dir)
    manifest = json.loads((set_dir / MANIFEST).read_text())
    names = [n for n in manifest['shards'] if (set_dir / n).exists()]
    written = 0
    for name in names:
        with np.load(set_dir / name) as shard:
            data = {key: shard[key] for key in shard.files}
        encoded = [cv2.imencode('.jpg', image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
                   for image in data.pop('images')]
        data['images_jpeg'] = np.concatenate(encoded)
        data['jpeg_ends'] = np.cumsum([len(e) for e in encoded])
        # float16 tops out at 65504; points that far off the image carry no information.
        data['landmarks'] = np.clip(data['landmarks'], -6e4, 6e4).astype(np.float16)
        write_npz_atomic(out_dir / name, **data)
        written += (out_dir / name).stat().st_size
    count = len(names) * manifest['config']['shard_size']
    manifest = {**manifest, 'shards': names, 'count': count,
                'compacted': {'jpeg_quality': quality, 'landmarks': 'float16'}}
    write_bytes_atomic(out_dir / MANIFEST, (json.dumps(manifest, indent=1) + '\n').encode())
    return written
