"""Shared fixtures: small real inputs made on the fly, and the shared lego scene when present."""

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
