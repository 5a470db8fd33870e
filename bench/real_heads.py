r"""
The landmark detector on real photographs of heads, from the front round to the back.

The images are public photographs listed in ``bench/real_heads/manifest.json`` (repository,
commit, path, sha256, licence), each with a hand-checked head box and a view class; none is
committed here, and the package never downloads anything. ``fetch`` materialises them into a
folder, from local git snapshots when given, else from GitHub's raw file URLs, and checks
every sha256. ``run`` detects each head as a user's frame would be (the whole image, or the
entry's crop of a multi-person frame) and scores, per view class and per split:

- found: the detection's head box (its landmarks' 2nd-98th percentile extent) overlaps the
  hand-checked box with IoU >= 0.5;
- usable: the detector's own flag, what gates a pose;
- found and usable: a head the pose step would get, at the right place.

A third of the source groups (by a hash of the group name) is held out from every tuning
decision and reported apart. See ``bench/REAL.md`` for where every image comes from.

    python bench/real_heads.py fetch --images bench/real_heads/images [--mirrors /work/.mirror]
    python bench/real_heads.py run --images bench/real_heads/images \\
        --out bench/results/real_heads.json --picture bench/results/real_heads.jpg
    python bench/real_heads.py sheet --images bench/real_heads/images --set LANDMARK_SET \\
        --picture bench/results/synth_vs_real.jpg

``sheet`` shows, per view class, tuning-split photographs beside synthetic training views
of the same class, to see what the renders still lack. The pictures show the photographs, so
they stay out of the repository like the images themselves.
"""

import argparse
import hashlib
import json
from pathlib import Path
import subprocess
import urllib.request

from common import save
import cv2
from head_capture.landmarks.detector import (crop_square, default_model_path, landmark_extent,
                                             LandmarkDetector, square_warp)
from head_capture.landmarks.overlay import draw_detection
import numpy as np

MANIFEST = Path(__file__).parent / 'real_heads' / 'manifest.json'
VIEWS = ('front', 'three_quarter', 'profile', 'back', 'above', 'below')
IOU_FOUND = 0.5
HELD_OUT_SHARE = 3  # one group in this many is held out


def split_of(group):
    """Return 'held_out' for a third of the source groups (stable hash), else 'tuning'."""
    digest = hashlib.sha256(group.encode()).digest()
    return 'held_out' if digest[0] % HELD_OUT_SHARE == 0 else 'tuning'


def load_manifest(path):
    """Read and check the manifest: unique ids, known views, boxes inside their crops."""
    entries = json.loads(Path(path).read_text())
    ids = [entry['id'] for entry in entries]
    if len(set(ids)) != len(ids):
        raise ValueError(f'{path}: an id is listed twice')
    for entry in entries:
        if entry['view'] not in VIEWS:
            raise ValueError(f"{entry['id']}: unknown view {entry['view']!r}")
        x0, y0, x1, y1 = entry['box']
        if not (x1 > x0 and y1 > y0):
            raise ValueError(f"{entry['id']}: empty box {entry['box']}")
        entry['split'] = split_of(entry['group'])
    return entries


def image_name(entry):
    """Return the file name an entry's image has in the images folder."""
    return f"{entry['id']}{Path(entry['path']).suffix.lower()}"


def file_bytes(entry, mirrors):
    """
    Return the file's bytes from a local git snapshot of its repository, else from GitHub.

    ``mirrors`` holds one git directory per repository, named ``owner+name``.
    """
    if mirrors is not None:
        folder = Path(mirrors) / entry['repo'].replace('/', '+')
        for git_dir in (folder, folder / 'repo', folder / 'repo' / '.git'):
            found = subprocess.run(['git', '--git-dir', str(git_dir), 'show',
                                    f"{entry['commit']}:{entry['path']}"], capture_output=True)
            if found.returncode == 0:
                return found.stdout
    url = (f"https://raw.githubusercontent.com/{entry['repo']}/{entry['commit']}/"
           f"{urllib.request.quote(entry['path'])}")
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def fetch(entries, images, mirrors):
    """Write every entry's image into ``images``, checking its sha256; say what failed."""
    images.mkdir(parents=True, exist_ok=True)
    failed = []
    for entry in entries:
        target = images / image_name(entry)
        if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == entry['sha256']:
            continue
        try:
            data = file_bytes(entry, mirrors)
        except OSError as exc:
            failed.append(f"{entry['id']}: {exc}")
            continue
        if hashlib.sha256(data).hexdigest() != entry['sha256']:
            failed.append(f"{entry['id']}: sha256 differs from the manifest")
            continue
        target.write_bytes(data)
    print(f'{len(entries) - len(failed)} of {len(entries)} images in {images}')
    for line in failed:
        print('  not fetched:', line)
    return not failed


def detection_box(detection):
    """Return the detection's head box [x0, y0, x1, y1]: its landmarks' extent."""
    low, high = landmark_extent(detection.landmarks)
    return [float(low[0]), float(low[1]), float(high[0]), float(high[1])]


def thumbnail(frame, box, side, size):
    """Return a size² cut of ``frame``, ``side`` wide, round the centre of ``box``."""
    centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    return crop_square(frame, square_warp(centre, side, size), size)


def iou(a, b):
    """Intersection over union of two [x0, y0, x1, y1] boxes."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def frame_of(entry, images):
    """Return the RGB frame the detector sees (the crop, if any) and the box in it."""
    image = cv2.imread(str(images / image_name(entry)), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f'{images / image_name(entry)} is missing or unreadable; '
                                "run 'bench/real_heads.py fetch' first")
    box = np.asarray(entry['box'], float)
    if entry.get('crop'):
        x0, y0, x1, y1 = (int(v) for v in entry['crop'])
        image = image[max(y0, 0):y1, max(x0, 0):x1]
        box = box - [max(x0, 0), max(y0, 0)] * 2
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), box.tolist()


def score(entries, images, detector):
    """Detect every entry's head; return one row per entry and the drawn tiles."""
    rows, tiles = [], {}
    for entry in entries:
        frame, truth = frame_of(entry, images)
        detection = detector.detect(frame)
        found = detection_box(detection)
        overlap = iou(found, truth)
        rows.append({'id': entry['id'], 'view': entry['view'], 'split': entry['split'],
                     'group': entry['group'], 'iou': round(overlap, 3),
                     'found': overlap >= IOU_FOUND, 'usable': bool(detection.usable),
                     'head_px': round(float(truth[3] - truth[1]), 1),
                     'box': [round(v, 1) for v in found]})
        tiles[entry['id']] = _tile(frame, detection, truth, found, rows[-1])
    return rows, tiles


def _tile(frame, detection, truth, found, row, size=256):
    """Draw a detection, the true box (green) and the found box, cut round the head."""
    canvas = draw_detection(frame, detection)
    good = row['found'] and row['usable']
    thickness = max(1, round(max(frame.shape[:2]) / 300))
    cv2.rectangle(canvas, tuple(int(v) for v in truth[:2]), tuple(int(v) for v in truth[2:]),
                  (0, 255, 0), thickness)
    cv2.rectangle(canvas, tuple(int(v) for v in found[:2]), tuple(int(v) for v in found[2:]),
                  (0, 200, 255) if good else (255, 0, 0), thickness)
    # A square round both boxes, at least two head heights wide, so the scene shows too.
    both = [min(truth[0], found[0]), min(truth[1], found[1]),
            max(truth[2], found[2]), max(truth[3], found[3])]
    tile = thumbnail(canvas, both, max(both[2] - both[0], both[3] - both[1],
                                       2.2 * (truth[3] - truth[1])), size)
    usable = 'U' if row['usable'] else '-'
    label = f"{row['view'][:5]} {row['split'][0]} iou {row['iou']:.2f} {usable}"
    cv2.rectangle(tile, (0, size - 18), (size, size), (0, 0, 0), -1)
    cv2.putText(tile, label, (4, size - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                (0, 255, 0) if good else (255, 80, 80), 1, cv2.LINE_AA)
    return tile


def summarise(rows):
    """Return {split: {view: counts and shares}} with 'all' for each, over the rows."""
    summary = {}
    for split in ('tuning', 'held_out', 'all'):
        chosen = [r for r in rows if split == 'all' or r['split'] == split]
        table = {}
        for view in (*VIEWS, 'all'):
            part = [r for r in chosen if view == 'all' or r['view'] == view]
            if not part:
                continue
            table[view] = {'images': len(part),
                           'found': round(float(np.mean([r['found'] for r in part])), 3),
                           'usable': round(float(np.mean([r['usable'] for r in part])), 3),
                           'found_and_usable': round(float(np.mean(
                               [r['found'] and r['usable'] for r in part])), 3),
                           'median_iou': round(float(np.median([r['iou'] for r in part])), 3)}
        summary[split] = table
    return summary


def picture(rows, tiles, path, per_view=8):
    """Draw a row per view class: its failures first, then successes, ``per_view`` in all."""
    lines = []
    for view in VIEWS:
        part = sorted((r for r in rows if r['view'] == view),
                      key=lambda r: (r['found'] and r['usable'], r['iou']))
        if not part:
            continue
        failures = [r for r in part if not (r['found'] and r['usable'])]
        successes = [r for r in part if r['found'] and r['usable']][::-1]
        shown = failures[:per_view // 2] + successes[:per_view // 2]
        shown += (failures[per_view // 2:] + successes[per_view // 2:])[:per_view - len(shown)]
        line = [tiles[r['id']] for r in shown]
        line += [np.zeros_like(line[0])] * (per_view - len(line))
        lines.append(np.hstack(line))
    cv2.imwrite(str(path), cv2.cvtColor(np.vstack(lines), cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 85] if str(path).endswith('.jpg') else [])
    print(f'wrote {path}')


def view_class(azimuth, elevation):
    """Return the view class of a camera at ``azimuth`` (0: in front) and ``elevation`` (°)."""
    if abs(elevation) > 35:
        return 'above' if elevation > 0 else 'below'
    turn = abs((azimuth + 180) % 360 - 180)
    return ('front' if turn < 30 else 'three_quarter' if turn < 65 else
            'profile' if turn < 115 else 'back')


def synthetic_by_view(set_dir, per_view, size):
    """Return {view: [size² RGB renders]} from a landmark set, ``per_view`` of each."""
    from head_capture.landmarks.dataset import read_samples
    from head_capture.landmarks.metrics import view_angles

    samples = read_samples(set_dir, 2048)
    azimuth, elevation = view_angles(samples['rotations'], samples['translations'])
    chosen = {view: [] for view in VIEWS}
    for image, a, e in zip(samples['images'], azimuth, elevation):
        views = chosen[view_class(a, e)]
        if len(views) < per_view:
            views.append(cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA))
    return chosen


def real_by_view(entries, images, per_view, size):
    """Return {view: [size² RGB cuts round the head]}, tuning split only."""
    chosen = {view: [] for view in VIEWS}
    for entry in entries:
        views = chosen[entry['view']]
        if entry['split'] != 'tuning' or len(views) >= per_view:
            continue
        frame, box = frame_of(entry, images)
        views.append(thumbnail(frame, box, 2.2 * max(box[2] - box[0], box[3] - box[1]), size))
    return chosen


def side_by_side(entries, images, set_dir, path, per_view=4, size=192):
    """
    Write the sheet: a row per view class, real photographs left, renders right.

    Without ``images`` only the renders are drawn, twice as many: a sheet that can be shared.
    """
    real = real_by_view(entries, images, per_view, size) if images else None
    count = per_view if real else 2 * per_view
    synthetic = synthetic_by_view(set_dir, count, size)
    blank = np.zeros((size, size, 3), np.uint8)
    rows = []
    for view in VIEWS:
        renders = (synthetic[view] + [blank] * count)[:count]
        if real:
            photos = (real[view] + [blank] * per_view)[:per_view]
            row = np.hstack([*photos, np.full((size, 8, 3), 255, np.uint8), *renders])
        else:
            row = np.hstack(renders)
        cv2.putText(row, view, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 0), 1,
                    cv2.LINE_AA)
        rows.append(row)
    cv2.imwrite(str(path), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
    print(f'wrote {path}')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('command', choices=('fetch', 'run', 'sheet'))
    parser.add_argument('--manifest', type=Path, default=MANIFEST)
    parser.add_argument('--images', type=Path, default=MANIFEST.parent / 'images')
    parser.add_argument('--mirrors', type=Path, help='folder of local git snapshots')
    parser.add_argument('--model', type=Path, default=None)
    parser.add_argument('--set', type=Path, help='landmark set (sheet): synthetic views')
    parser.add_argument('--renders-only', action='store_true',
                        help='sheet: the synthetic views alone, without the photographs')
    parser.add_argument('--out', default='bench/results/real_heads.json')
    parser.add_argument('--picture', default='bench/results/real_heads.jpg')
    args = parser.parse_args()
    entries = load_manifest(args.manifest)
    if args.command == 'fetch':
        raise SystemExit(0 if fetch(entries, args.images, args.mirrors) else 1)
    if args.command == 'sheet':
        if args.set is None:
            parser.error('sheet needs --set, a landmark set made by head-capture synth landmarks')
        side_by_side(entries, None if args.renders_only else args.images, args.set,
                     args.picture)
        return
    model = args.model or default_model_path()
    rows, tiles = score(entries, args.images, LandmarkDetector(model, threads=2))
    summary = summarise(rows)
    for split, table in summary.items():
        print(split)
        for view, counts in table.items():
            print(f'  {view:14s} {counts}')
    picture(rows, tiles, args.picture)
    save(args.out, {'benchmark': 'landmark detector on real photographs of heads',
                    'model': str(model), 'iou_found': IOU_FOUND, 'summary': summary,
                    'images': rows})


if __name__ == '__main__':
    main()
