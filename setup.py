"""ament_python build of head_capture (also installable with pip)."""

from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE = 'head_capture'


def _share(folder, pattern='*'):
    """Install every file of a data folder under share/head_capture/<folder>."""
    files = [path for path in glob(os.path.join(folder, pattern)) if os.path.isfile(path)]
    return (os.path.join('share', PACKAGE, folder), files)


setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'bench']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        _share('launch', '*.launch.py'),
        _share('config'),
        _share('models'),
        _share('rviz', '*.rviz'),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='head_capture maintainers',
    maintainer_email='maintainers@users.noreply.github.com',
    description='360-degree head capture from a phone stream and NeRF head avatars.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'head-capture = head_capture.cli:main',
            # The nodes, one executable each (ros2 run head_capture <node>; the launch files).
            'camera_source = head_capture.nodes.camera_source:main',
            'keyframe_selector = head_capture.nodes.keyframe_selector:main',
            'pose_estimator = head_capture.nodes.pose_estimator:main',
            'coverage_guide = head_capture.nodes.coverage_guide:main',
            'avatar_trainer = head_capture.nodes.avatar_trainer:main',
            'foxglove_bridge = head_capture.nodes.foxglove_bridge:main',
        ],
    },
)
