"""
A real posed capture of a face: Instruct-NeRF2NeRF's "face" scene with its COLMAP cameras.

65 phone frames (512², one person seated, the camera swept over the front half of the head)
and their nerfstudio ``transforms.json`` (COLMAP poses, OPENCV lens), as the GaussCtrl
repository ships them. The truth is COLMAP's, so errors under a degree or two are within its
own. Nothing of it is committed: the frames are research data of the Instruct-NeRF2NeRF
authors. This copies them out of a local snapshot (or GitHub), checks them against the
digests this script was written for, and undistorts them (same camera matrix, no distortion
left), since the views are registered as a pinhole's.

    python bench/in2n_face_views.py --out DIR [--mirrors /work/.mirror]
    python bench/registered_poses.py DIR/truth_transforms.json --out bench/results/...
"""

import argparse
import hashlib
import json
from pathlib import Path

import cv2
from head_capture.camera import Intrinsics
from head_capture.session import FrameRecord, read_transforms, Transforms, write_transforms
import numpy as np
from real_heads import file_bytes

SOURCE = {'repo': 'ActiveVisionLab/gaussctrl',
          'commit': '31a758ff5fc2fc831c62f661f2edc10eb2687a5c'}
FOLDER = 'data/face'
TRANSFORMS_SHA256 = '12adc8f288a87071faa09b2fd2ac1b2369c33f62893dc6754fc2b81b30215282'
# sha256 over the frames' own sha256 digests, in the transforms file's order.
IMAGES_DIGEST = 'fe758315c9954c8088da013f49602593af8a908b2c89cc28e365bd7bd058d93a'


def build(out, mirrors):
    """Write ``out``/images/*.jpg and ``out``/truth_transforms.json."""
    fetch = (lambda path: file_bytes({**SOURCE, 'path': f'{FOLDER}/{path}'}, mirrors))
    text = fetch('transforms.json')
    if hashlib.sha256(text).hexdigest() != TRANSFORMS_SHA256:
        raise ValueError('transforms.json differs from the one this script was written for')
    transforms = json.loads(text)
    digest = hashlib.sha256()
    frames = {}
    for frame in transforms['frames']:
        frames[frame['file_path']] = fetch(frame['file_path'])
        digest.update(hashlib.sha256(frames[frame['file_path']]).digest())
    if digest.hexdigest() != IMAGES_DIGEST:
        raise ValueError('the frames differ from the ones this script was written for')
    out.mkdir(parents=True, exist_ok=True)
    (out / 'source_transforms.json').write_bytes(text)
    source = read_transforms(out / 'source_transforms.json')
    camera = source.intrinsics
    matrix = np.array([[camera.fx, 0, camera.cx], [0, camera.fy, camera.cy], [0, 0, 1]])
    pinhole = Intrinsics(camera.fx, camera.fy, camera.cx, camera.cy, camera.width,
                         camera.height, (0.0, 0.0, 0.0, 0.0))
    records = []
    (out / 'images').mkdir(exist_ok=True)
    for frame in sorted(source.frames, key=lambda f: f.file_path):
        image = cv2.imdecode(np.frombuffer(frames[frame.file_path], np.uint8), cv2.IMREAD_COLOR)
        name = f'images/{Path(frame.file_path).stem}.png'
        cv2.imwrite(str(out / name), cv2.undistort(image, matrix,
                                                   np.array(camera.distortion)))
        records.append(FrameRecord(name, frame.c2w))
    write_transforms(out / 'truth_transforms.json', Transforms(pinhole, records, {
        'source': f"Instruct-NeRF2NeRF face, {SOURCE['repo']} {FOLDER} (COLMAP poses)"}))
    print(f'{len(records)} views of {camera.width}x{camera.height} -> {out}')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', type=Path, required=True)
    parser.add_argument('--mirrors', type=Path, help='folder of local git snapshots')
    args = parser.parse_args()
    build(args.out, args.mirrors)


if __name__ == '__main__':
    main()
