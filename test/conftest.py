"""Shared fixtures: small real inputs made on the fly, and the shared lego scene when present."""

from dataclasses import dataclass
import os
from pathlib import Path

import numpy as np
import pytest

# Tests that start ROS nodes stay on this machine, apart from any other graph running on it.
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
os.environ.setdefault('ROS_DOMAIN_ID', str(40 + os.getpid() % 50))

ROOT = Path(__file__).resolve().parents[1]
LEGO = ROOT.parent / 'shared' / 'data' / 'lego_200'


@pytest.fixture(scope='session')
def lego_dir():
    """Return the NeRF-synthetic lego scene at 200 px (../shared/data/lego_200)."""
    if not (LEGO / 'transforms_train.json').is_file():
        pytest.skip(f'the shared lego scene is not at {LEGO}')
    return LEGO


@pytest.fixture(scope='session')
def sample_clip():
    """Return a short built-in sample clip with known blurred frames."""
    from head_capture.synth.sample_clip import make_sample_clip
    return make_sample_clip(frames=90, size=(240, 160), blur_share=0.4, seed=3)


@dataclass
class BlobViews:
    """Views of the toy scene: one camera, RGB uint8 images and their world-to-camera poses."""

    camera: object
    images: list
    rotations: list
    translations: list


@pytest.fixture(scope='session')
def blob_views():
    """Render 30 views (48²) of three coloured Gaussian blobs from an orbit around them."""
    import torch

    from head_capture.avatar.rays import near_far, pixel_rays
    from head_capture.avatar.render import render_rays
    from head_capture.camera import Intrinsics
    from head_capture.geometry import look_at_w2c

    class Blobs(torch.nn.Module):
        """An analytic scene: three coloured Gaussian blobs."""

        centres = torch.tensor([[0.3, 0.0, 0.0], [-0.2, 0.3, 0.1], [0.0, -0.3, -0.2]])
        colours = torch.tensor([[0.9, 0.2, 0.1], [0.1, 0.7, 0.2], [0.2, 0.3, 0.9]])

        def forward(self, points, directions, progress=1.0, c2f=(0.0, 0.0)):
            weights = torch.exp(-((points[..., None, :] - self.centres) ** 2).sum(-1) / 0.02)
            density = 30.0 * weights.sum(-1)
            colour = (weights[..., None] * self.colours).sum(-2) / (
                weights.sum(-1, keepdim=True) + 1e-6)
            return colour, density

    camera = Intrinsics.from_fov(48, 48, 50.0)
    views = BlobViews(camera, [], [], [])
    v, u = torch.meshgrid(torch.arange(48.0), torch.arange(48.0), indexing='ij')
    for n in range(30):
        azimuth, elevation = 2 * np.pi * n / 30, np.radians(20 + 15 * np.sin(n))
        centre = 2.6 * np.array([np.cos(elevation) * np.cos(azimuth),
                                 np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])
        rotation, translation = look_at_w2c(centre, np.zeros(3))
        r = torch.tensor(rotation, dtype=torch.float32).expand(48 * 48, 3, 3)
        t = torch.tensor(translation, dtype=torch.float32).expand(48 * 48, 3)
        origins, directions = pixel_rays(camera, r, t, u.reshape(-1), v.reshape(-1))
        near, far = near_far(origins, 1.0, 1.5, 4.0)
        with torch.no_grad():
            (rgb, _, _), = render_rays([Blobs()], origins, directions, near, far, (128, 0),
                                       torch.ones(3))
        views.images.append((rgb.reshape(48, 48, 3).numpy() * 255).round().astype(np.uint8))
        views.rotations.append(rotation)
        views.translations.append(translation)
    return views


@pytest.fixture(scope='module')
def toy_scene(tmp_path_factory, blob_views):
    """Write the 30 views of the blobs (48²) with their true poses as a transforms.json."""
    import cv2

    from head_capture.geometry import w2c_to_c2w_opengl
    from head_capture.session import FrameRecord, Transforms, write_transforms

    folder = tmp_path_factory.mktemp('toy')
    frames = []
    for n, (image, rotation, translation) in enumerate(zip(
            blob_views.images, blob_views.rotations, blob_views.translations)):
        cv2.imwrite(str(folder / f'v{n:02d}.png'), image[..., ::-1])
        frames.append(FrameRecord(f'v{n:02d}.png', w2c_to_c2w_opengl(rotation, translation)))
    write_transforms(folder / 'transforms.json', Transforms(blob_views.camera, frames))
    return folder / 'transforms.json'


@pytest.fixture
def rng():
    """Return a seeded generator, so every test run sees the same data."""
    return np.random.default_rng(1234)


@pytest.fixture
def ros_context():
    """Return a fresh rclpy context (its own graph participants), shut down afterwards."""
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)


@pytest.fixture(scope='session')
def tiny_avatar():
    """Avatar config overrides (KEY=VALUE, space-separated) that train in seconds."""
    return ('stage1.steps=30 stage2.steps=10 sampling.rays=128 data.image_size=48 '
            'sampling.coarse=16 sampling.fine=16 outputs.turntable_frames=3 '
            'outputs.mesh_views=4 outputs.mesh_resolution=32 outputs.test_pose_steps=2 '
            'trainer.checkpoint_every=20 trainer.log_every=10')


@pytest.fixture(scope='session')
def capture(tmp_path_factory):
    """Render a short synthetic phone capture: 8 s at 10 frames/s, 640x360."""
    from head_capture.synth.capture_video import CaptureConfig, write_capture

    folder = tmp_path_factory.mktemp('capture')
    write_capture(folder, CaptureConfig(seconds=8.0, fps=10.0, width=640, height=360,
                                        blur_share=0.1, seed=3))
    return folder
