"""
A real calibrated 360° capture of a head: 21 RenderMe-360 rig views with their true cameras.

RenderMe-360 (subject 0026, a person in a blonde wig and face paint, in a white studio full
of cameras, lights and cables) is distributed behind a licence agreement; one public
repository holds a figure of 21 of its 60 synchronised views (7 directions round the head,
3 heights) and the rig's calibration. This cuts the figure's panels back into views (inside
each panel's frame, so nothing drawn over the images remains), maps every panel onto one
shared pinhole camera (a pure change of intrinsics, under 1.5 px), and writes the true
cameras as ``truth_transforms.json`` beside ``images/``. Nothing of it is committed: the
frames may not be redistributed.

    python bench/renderme360_views.py --out DIR [--mirrors /work/.mirror]
    python bench/registered_poses.py DIR/truth_transforms.json --out bench/results/...
"""

import argparse
import hashlib
import json
from pathlib import Path

import cv2
from head_capture.camera import Intrinsics
from head_capture.geometry import w2c_to_c2w_opengl
from head_capture.session import FrameRecord, Transforms, write_transforms
import numpy as np
from real_heads import file_bytes

SOURCE = {'repo': 'ZhuoyuanJiang/RenderMe360_extraction',
          'commit': '8e94a858ad546e4f8a6876bfce3449dbaa969ba0'}
FIGURE = ('test_download/visualizations/camera_selection/sample_frames_21_cameras_360.png',
          '29ac0c773e26f0f47b2111fa9b69df97ed37fdd38066a5fb60f17f934f94c39e')
CALIBRATION = ('test_download/visualizations/camera_analysis/ALL_raw_calibration_data.json',
               '6d6deff5720a89367695b784343b2f1e8871722bbf2f4f4ac97b7e37e65882ba')
CAMERAS = (1, 2, 15, 16, 17, 21, 22, 23, 24, 26, 28, 30, 31, 32, 36, 37, 38, 45, 47, 49, 51)
# Each panel's frame in the figure, (top, left, width, height), in camera order: three rows
# of seven.
PANELS = tuple((top, left, 409, 344 if top == 324 else 343) for top in (324, 966, 1607)
               for left in (12, 437, 863, 1288, 1713, 2139, 2564))
FRAME_SIZE = (2448, 2048)  # the rig's full frames, which the panels shrink
SPINE = 3.0  # half the panel frame's line width: the image edge is the line's centre
INSET = 7  # pixels cut inside the frame's outer edge


def _checked(path_and_sha, mirrors):
    path, sha256 = path_and_sha
    data = file_bytes({**SOURCE, 'path': path}, mirrors)
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f'{path}: sha256 differs from the one this script was written for')
    return data


def panel_camera(matrix, box):
    """Return the intrinsics matrix of a panel cut INSET inside a frame of the figure."""
    _, _, width, height = box
    scale = np.array([(width - 2 * SPINE) / FRAME_SIZE[0], (height - 2 * SPINE) / FRAME_SIZE[1]])
    panel = np.eye(3)
    panel[[0, 1], [0, 1]] = np.diag(matrix)[:2] * scale
    # Frame pixel centre u maps to panel pixel (u + 0.5) * scale - (INSET - SPINE) - 0.5.
    panel[:2, 2] = (matrix[:2, 2] + 0.5) * scale - (INSET - SPINE) - 0.5
    return panel


def build(out, mirrors):
    """Write ``out``/images/camNN.png and ``out``/truth_transforms.json."""
    figure = cv2.imdecode(np.frombuffer(_checked(FIGURE, mirrors), np.uint8), cv2.IMREAD_COLOR)
    calibration = json.loads(_checked(CALIBRATION, mirrors))
    views = []
    for camera, box in zip(CAMERAS, PANELS):
        top, left, width, height = box
        entry = calibration[f'{camera:02d}']
        if any(entry['D']):
            raise ValueError(f'camera {camera}: lens distortion not expected')
        views.append((camera, figure[top + INSET:top + height - INSET,
                                     left + INSET:left + width - INSET],
                      panel_camera(np.array(entry['K'], float), box),
                      np.array(entry['RT'], float)))
    height = min(view[1].shape[0] for view in views)
    width = min(view[1].shape[1] for view in views)
    shared = np.median(np.stack([view[2] for view in views]), axis=0)
    (out / 'images').mkdir(parents=True, exist_ok=True)
    frames = []
    for camera, panel, matrix, camera_to_world in views:
        name = f'images/cam{camera:02d}.png'
        cv2.imwrite(str(out / name), cv2.warpPerspective(
            panel, shared @ np.linalg.inv(matrix), (width, height), flags=cv2.INTER_LANCZOS4,
            borderMode=cv2.BORDER_REPLICATE))
        # The rig's RT is camera-to-world with OpenCV axes.
        rotation = camera_to_world[:3, :3].T
        frames.append(FrameRecord(name, w2c_to_c2w_opengl(rotation,
                                                          -rotation @ camera_to_world[:3, 3])))
    intrinsics = Intrinsics(shared[0, 0], shared[1, 1], shared[0, 2], shared[1, 2], width,
                            height, (0.0, 0.0, 0.0, 0.0))
    write_transforms(out / 'truth_transforms.json', Transforms(
        intrinsics, frames, {'source': f"RenderMe-360 subject 0026, {SOURCE['repo']}"}))
    print(f'{len(frames)} views of {width}x{height} -> {out}')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', type=Path, required=True)
    parser.add_argument('--mirrors', type=Path, help='folder of local git snapshots')
    args = parser.parse_args()
    build(args.out, args.mirrors)


if __name__ == '__main__':
    main()
