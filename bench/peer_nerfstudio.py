"""
A head_capture session read by nerfstudio's own dataparser, in a venv of its own.

``ns-train nerfacto --data SESSION`` (or splatfacto) starts with nerfstudio's
``NerfstudioDataParser`` on ``SESSION/transforms.json``. This script runs that parser
(nerfstudio 1.1.5) on a session, in ``--nerfstudio-worker`` mode as a subprocess of the
nerfstudio venv (``make peer-nerfstudio-venv`` -> ``.venv-peer-nerfstudio``; nerfstudio pins
numpy, protobuf and viser apart from ours), and checks what it made of the session against
the session as head_capture reads it: every posed frame with its image and mask, none of the
unposed ones, the camera (focal lengths, principal point, every distortion term), the poses
(once the parser's own orientation, centring and scaling are undone) and the masks (nerfstudio
trains where they are not 0: the head). Exit status 1 when anything differs.

    python bench/peer_nerfstudio.py --session SESSION --out bench/results/peer_nerfstudio.json
    python bench/peer_nerfstudio.py --synthetic WORK   # a synthetic capture, registered first
"""

import argparse
import json
from pathlib import Path
import subprocess
import sys
import tempfile

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PEER_PYTHON = ROOT / '.venv-peer-nerfstudio' / 'bin' / 'python'
# nerfstudio's distortion parameters, in the order of its Cameras.distortion_params.
NERFSTUDIO_DISTORTION = ('k1', 'k2', 'k3', 'k4', 'p1', 'p2')
# Agreement asked for: float32 inside nerfstudio.
POSE_TOLERANCE = 1e-4
CAMERA_TOLERANCE = 1e-3


def nerfstudio_worker(session, out_path):
    """Parse ``session`` as ns-train does and save what came out (nerfstudio's venv only)."""
    import nerfstudio
    from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
    from nerfstudio.data.utils.data_utils import get_image_mask_tensor_from_path
    import torch

    # Every frame in one split: the checks below want them all, not a train/eval share.
    parser = NerfstudioDataParserConfig(data=Path(session), eval_mode='all').setup()
    outputs = parser.get_dataparser_outputs(split='train')
    cameras = outputs.cameras
    masks = outputs.mask_filenames or []
    heads = [float(get_image_mask_tensor_from_path(path).float().mean()) for path in masks]
    np.savez(out_path, images=[str(p) for p in outputs.image_filenames],
             masks=[str(p) for p in masks], mask_share=np.array(heads),
             c2w=cameras.camera_to_worlds.numpy(),
             intrinsics=torch.cat([cameras.fx, cameras.fy, cameras.cx, cameras.cy,
                                   cameras.width, cameras.height], 1).double().numpy(),
             distortion=cameras.distortion_params.numpy(),
             transform=outputs.dataparser_transform.numpy(),
             scale=float(outputs.dataparser_scale), version=nerfstudio.__version__
             if hasattr(nerfstudio, '__version__') else _version('nerfstudio'))


def _version(package):
    from importlib.metadata import version

    return version(package)


def parse_with_nerfstudio(session, peer_python):
    """Return what nerfstudio's dataparser made of ``session``, via the nerfstudio venv."""
    if not Path(peer_python).is_file():
        raise SystemExit(f'{peer_python} not found: run make peer-nerfstudio-venv first')
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / 'nerfstudio.npz'
        done = subprocess.run([str(peer_python), __file__, '--nerfstudio-worker', str(session),
                               str(out)], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f'nerfstudio could not read {session} ({done.returncode}):\n'
                             + done.stderr[-3000:])
        with np.load(out) as parsed:
            return {key: parsed[key] for key in parsed.files}


def compare(session, parsed):
    """Return the checks of nerfstudio's reading of ``session`` against ours, and the problems."""
    import cv2
    from head_capture.session import read_transforms, TRANSFORMS_FILE

    ours = read_transforms(session / TRANSFORMS_FILE)
    posed = sorted((f for f in ours.frames if f.c2w is not None), key=lambda f: f.file_path)
    problems = []
    names = [str(Path(p).resolve().relative_to(session.resolve())) for p in parsed['images']]
    if names != [f.file_path for f in posed]:
        problems.append(f'nerfstudio read {len(names)} frames, the session has {len(posed)} '
                        'posed')
    # The camera: nerfstudio keeps transforms.json's principal point (pixel centres at +0.5).
    cam = ours.intrinsics
    expected = [cam.fx, cam.fy, cam.cx + 0.5, cam.cy + 0.5, cam.width, cam.height]
    camera_error = float(np.abs(parsed['intrinsics'] - expected).max())
    terms = dict(zip(('k1', 'k2', 'p1', 'p2', 'k3'), cam.distortion))
    distortion = [terms.get(name, 0.0) for name in NERFSTUDIO_DISTORTION]
    distortion_error = float(np.abs(parsed['distortion'] - distortion).max())
    if max(camera_error, distortion_error) > CAMERA_TOLERANCE:
        problems.append(f'camera differs by {camera_error:g} (intrinsics), '
                        f'{distortion_error:g} (distortion)')
    # Poses: nerfstudio turns, centres and scales them; undone, they must be ours.
    transform, scale = parsed['transform'], float(parsed['scale'])
    pose_error = float('nan')
    if len(names) == len(posed):
        c2w = np.stack([f.c2w for f in posed])
        rotations = transform[:3, :3] @ c2w[:, :3, :3]
        centres = scale * (c2w[:, :3, 3] @ transform[:3, :3].T + transform[:3, 3])
        pose_error = float(max(np.abs(parsed['c2w'][:, :, :3] - rotations).max(),
                               np.abs(parsed['c2w'][:, :, 3] - centres).max() / scale))
        if not pose_error < POSE_TOLERANCE:
            problems.append(f'poses differ by {pose_error:g}')
    # Masks: one per frame; nerfstudio trains on their non-zero pixels, our trimap's head.
    head_share = []
    for frame in posed:
        trimap = cv2.imread(str(session / frame.training_mask), cv2.IMREAD_GRAYSCALE)
        head_share.append(float((trimap == 255).mean()))
    if len(parsed['masks']) != len(posed):
        problems.append(f'{len(parsed["masks"])} masks for {len(posed)} frames')
    elif not np.allclose(parsed['mask_share'], head_share, atol=1e-6):
        problems.append('nerfstudio trains on other pixels than the head')
    return {'nerfstudio': str(parsed['version']), 'frames_listed': len(ours.frames),
            'frames_posed': len(posed), 'frames_read_by_nerfstudio': len(names),
            'masks_read_by_nerfstudio': len(parsed['masks']),
            'camera_error': camera_error, 'distortion_error': distortion_error,
            'pose_error': pose_error, 'mask_head_share_mean': float(np.mean(head_share or [0])),
            'problems': problems}


SYNTHETIC = ('synthetic capture (8 s at 10 frames/s, 640x360, seed 3) -> 12 keyframes, '
             'registered as reconstruct does')


def synthetic_session(work, count=12):
    """Render a short synthetic capture into ``work`` and register its keyframes: a session."""
    from head_capture.capture.sources import open_source
    from head_capture.landmarks.detector import LandmarkDetector
    from head_capture.landmarks.template import HeadTemplate
    from head_capture.pipeline import extract_keyframes, register_session
    from head_capture.session import read_transforms
    from head_capture.synth.capture_video import CaptureConfig, write_capture

    capture = work / 'capture'
    write_capture(capture, CaptureConfig(seconds=8.0, fps=10.0, width=640, height=360,
                                         blur_share=0.1, seed=3))
    camera = read_transforms(capture / 'ground_truth.json').intrinsics
    with open_source(capture / 'capture.mp4') as frames:
        session = extract_keyframes(frames, work / 'session', count, 640, camera,
                                    overwrite=True).session
    template = HeadTemplate.load()
    register_session(session, LandmarkDetector(), template)
    return session.root


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--session', type=Path, help='a session folder (holding transforms.json)')
    parser.add_argument('--synthetic', type=Path, metavar='WORK',
                        help='make a session from a synthetic capture in WORK and read that')
    parser.add_argument('--out', type=Path, help='write the checks here as JSON')
    parser.add_argument('--peer-python', default=str(PEER_PYTHON),
                        help='python of the nerfstudio venv (default: .venv-peer-nerfstudio)')
    parser.add_argument('--nerfstudio-worker', nargs=2, metavar=('SESSION', 'OUT_NPZ'),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.nerfstudio_worker:
        nerfstudio_worker(*args.nerfstudio_worker)
        return 0
    if (args.session is None) == (args.synthetic is None):
        parser.error('give one of --session and --synthetic')
    sys.path.insert(0, str(ROOT))
    session = args.session or synthetic_session(args.synthetic)
    what = str(session) if args.session else SYNTHETIC
    result = {'session': what, **compare(session, parse_with_nerfstudio(session,
                                                                        args.peer_python))}
    print(json.dumps(result, indent=2))
    if args.out:
        sys.path.insert(0, str(Path(__file__).parent))
        from common import save

        save(args.out, result)
    return 1 if result['problems'] else 0


if __name__ == '__main__':
    raise SystemExit(main())
