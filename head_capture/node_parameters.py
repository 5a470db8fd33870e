"""
The settings of each node beyond its ROS-free module's own config: topics, files, rates.

Kept apart from the rclpy nodes so the offline CLI can read the same parameters file without
ROS: ``node_graph.load_node_config`` knows these keys belong to the node, not to the module. Each
field says in its metadata what it means, its range and whether a running node takes a change
(``setting``): the nodes declare their ROS parameters from it and the dataclasses validate
against it, so a range is written once.
"""

import dataclasses
from dataclasses import dataclass

from head_capture.avatar.training_config import load_avatar_config
from head_capture.camera import check_fov, DEFAULT_FOV_DEG
from head_capture.capture.coverage import CoverageConfig
from head_capture.capture.keyframes import KeyframeConfig
from head_capture.capture.pose import PoseConfig
from head_capture.config_files import build, ConfigError, parse_overrides

# pose_estimator's tf_child: the frame its transform makes the child (see tf_frames).
TF_CHILDREN = ('head', 'camera')
INF = float('inf')
# The fields of the ROS-free modules' configs a running node takes a change of (the node
# swaps the module's config): the thresholds and the coverage target. Everything else of
# theirs shapes state built at start (bins, model, image size) and is read-only.
MODULE_RUNTIME = {KeyframeConfig: ('min_interval_s', 'min_motion', 'sharpness_ratio',
                                   'max_keyframes'),
                  CoverageConfig: ('min_quality', 'target_share'),
                  PoseConfig: ()}
MODULE_SECTIONS = {KeyframeConfig: 'keyframes', CoverageConfig: 'coverage', PoseConfig: 'pose'}


def setting(default, description, low=None, high=None, runtime=False):
    """Return a dataclass field with its description, inclusive range and run-time flag."""
    return dataclasses.field(default=default, metadata={
        'description': description, 'range': (low, high), 'runtime': runtime})


def check_ranges(config):
    """Raise ValueError naming every field of ``config`` outside its declared range."""
    failed = []
    for field in dataclasses.fields(config):
        low, high = field.metadata.get('range', (None, None))
        value = getattr(config, field.name)
        if (low is not None and value < low) or (high is not None and value > high):
            failed.append(f'{field.name} must be within [{low:g}, {high:g}], got {value!r}')
    if failed:
        raise ValueError('; '.join(failed))


@dataclass(frozen=True)
class ParameterInfo:
    """What a ROS parameter declaration says about one setting."""

    description: str
    low: object = None
    high: object = None
    runtime: bool = False


def parameter_info(cls, name):
    """Return the description, range and run-time flag of field ``name`` of ``cls``."""
    field = {f.name: f for f in dataclasses.fields(cls)}[name]
    if 'description' in field.metadata:
        low, high = field.metadata['range']
        return ParameterInfo(field.metadata['description'], low, high, field.metadata['runtime'])
    section = MODULE_SECTIONS.get(cls, cls.__name__)
    return ParameterInfo(f'{section} setting {name} (see config/head_capture.yaml); its '
                         f'checks: {cls.__module__}.{cls.__name__}',
                         runtime=name in MODULE_RUNTIME.get(cls, ()))


def changed_configs(configs, changes, where='parameters'):
    """
    Return ``configs`` with ``changes`` ({name: value}) applied and validated.

    Raise ConfigError with the reason when a name is unknown, a setting cannot change while
    the node runs, or a value does not fit: what ``ros2 param set`` answers.
    """
    owners = {f.name: i for i, config in enumerate(configs) for f in dataclasses.fields(config)}
    for name in changes:
        if name not in owners:
            raise ConfigError(f'{where}: unknown parameter {name!r}')
        if not parameter_info(type(configs[owners[name]]), name).runtime:
            raise ConfigError(f'{name} cannot change while the node runs: restart it with the '
                              'new value')
    result = []
    for i, config in enumerate(configs):
        mine = {k: v for k, v in changes.items() if owners[k] == i}
        values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
        result.append(build(type(config), {**values, **mine}, where) if mine else config)
    return tuple(result)


@dataclass
class CameraSourceConfig:
    """Parameters of camera_source."""

    source: str = setting('', 'video file, image folder, rosbag2 (MCAP) or URL (MJPEG/RTSP/'
                          'HTTP snapshots)')
    image_topic: str = setting('camera/image_raw', 'raw images go here, JPEG to image_topic + '
                               '"/compressed" (relative: under the node namespace)')
    camera_info_topic: str = setting('camera/camera_info', 'the CameraInfo of the images')
    speed: float = setting(1.0, "playback speed: 1 is the source's own frame rate, 0 as fast "
                           'as frames decode', 0.0, INF)
    loop: bool = setting(False, 'start again at the end (replayable sources only)')
    frame_id: str = setting('camera_optical', 'header.frame_id of the images')
    intrinsics_file: str = setting('', 'a transforms.json whose intrinsics describe the '
                                   'source; empty: fov_deg')
    fov_deg: float = setting(DEFAULT_FOV_DEG, 'horizontal field of view without intrinsics_file')
    publish_raw: bool = setting(True, 'publish raw images on image_topic')
    publish_compressed: bool = setting(True, 'publish JPEG on image_topic/compressed')
    jpeg_quality: int = setting(90, 'JPEG quality of the compressed images', 0, 100)
    default_fps: float = setting(30.0, 'frame rate to assume for sources that do not say '
                                 '(folders, URLs)', 1e-3, INF)
    stamp_origin_s: float = setting(0.0, "stamps are this time (s) plus the frame's time in "
                                    'the source; 0: the clock at start', 0.0, INF)
    wait_for_subscribers: str = setting('', 'a file starts once these nodes (space-separated '
                                        'names) subscribe, or after subscriber_wait_s')
    subscriber_wait_s: float = setting(60.0, 'the longest wait for wait_for_subscribers (s)',
                                       0.0, INF)

    def __post_init__(self):
        if not self.source:
            raise ValueError('source is required: a video, image folder, MCAP bag or URL')
        if not (self.publish_raw or self.publish_compressed):
            raise ValueError('publish_raw and publish_compressed are both off: nothing to do')
        check_ranges(self)
        check_fov(self.fov_deg)


@dataclass
class KeyframeNodeConfig:
    """Topics and storage of keyframe_selector."""

    image_topic: str = setting('camera/image_raw', 'the images to select keyframes from')
    compressed: bool = setting(False, "subscribe to image_topic + '/compressed' (JPEG from a "
                               'phone) instead of raw images')
    session_dir: str = setting('', 'the directory this capture is kept in')


@dataclass
class PoseNodeConfig:
    """Inputs, model, rates and outputs of pose_estimator."""

    image_topic: str = setting('camera/image_raw', 'the live images')
    compressed: bool = setting(False, "subscribe to image_topic + '/compressed' instead")
    camera_info_topic: str = setting('camera/camera_info', 'the CameraInfo of the images')
    session_dir: str = setting('', 'the directory this capture is kept in')
    model_path: str = setting('', 'the landmark model (ONNX); empty: the shipped one')
    threads: int = setting(2, 'threads of the landmark detector', 1, 256)
    live_rate_hz: float = setting(15.0, 'live poses per second on the newest frame (0: '
                                  'keyframes only; at run time it changes between rates > 0)',
                                  0.0, 1000.0, runtime=True)
    fov_deg: float = setting(DEFAULT_FOV_DEG, 'field of view assumed until a usable '
                             'camera_info arrives')
    frame_id: str = setting('head', 'the frame of the poses and markers')
    camera_frame_id: str = setting('camera_optical', "the camera's frame where an image names "
                                   'none (its header.frame_id wins)')
    publish_tf: bool = setting(True, 'publish the camera-head transform (needs tf2_ros)')
    tf_child: str = setting('head', "the child of the published transform: 'head' (camera "
                            "frame -> head) or 'camera' (head -> camera frame)")

    def __post_init__(self):
        check_ranges(self)
        if self.tf_child not in TF_CHILDREN:
            raise ValueError(f'tf_child must be one of {", ".join(TF_CHILDREN)}, got '
                             f'{self.tf_child!r}')
        check_fov(self.fov_deg)


@dataclass
class GuideNodeConfig:
    """Rates and outputs of coverage_guide."""

    auto_train: bool = setting(True, 'call head_capture/train when the coverage target is met',
                               runtime=True)
    publish_rate_hz: float = setting(2.0, 'map, guidance and dome messages per second', 0.01,
                                     100.0, runtime=True)
    dome_radius_m: float = setting(0.6, 'radius of the coverage dome marker (m)', 0.01, 100.0,
                                   runtime=True)
    frame_id: str = setting('head', 'the frame of the dome marker')

    def __post_init__(self):
        check_ranges(self)


@dataclass
class TrainerNodeConfig:
    """What to train and how."""

    session_dir: str = setting('', 'the directory this capture is kept in')
    config: str = setting('cpu_preview', 'avatar config: paper, fast, cpu_preview or a YAML '
                          'path')
    overrides: str = setting('', 'GROUP.KEY=VALUE overrides of the avatar config, '
                             "space-separated: 'stage1.steps=500 sampling.rays=256'")
    min_keyframes: int = setting(8, 'refuse to train on fewer registered keyframes', 2, 100000)
    poll_s: float = setting(1.0, 'how often the training child is checked (s)', 1e-3, 3600.0)
    frame_id: str = setting('head', 'the frame of the avatar mesh marker')

    def __post_init__(self):
        check_ranges(self)
        if any('=' not in o for o in self.overrides.split()):
            raise ValueError(f'overrides must be GROUP.KEY=VALUE words, got {self.overrides!r}')
        # Checked now, not when training starts after minutes of capture.
        load_avatar_config(self.config, parse_overrides(self.overrides.split()))


@dataclass
class FoxgloveConfig:
    """Where to serve and how."""

    host: str = setting('127.0.0.1', 'the address the Foxglove WebSocket server listens on')
    port: int = setting(8765, 'its port (0: any free one)', 0, 65535)
    jpeg_quality: int = setting(80, 'JPEG quality of the guidance image', 0, 100, runtime=True)
    frame_id: str = setting('head', 'the head frame')
    camera_frame_id: str = setting('camera_optical', "the camera's frame")

    def __post_init__(self):
        check_ranges(self)


# Node name (its parameters section) -> the settings it declares as parameters: its own
# first, then the config of the ROS-free module it wraps.
NODE_SETTINGS = {'camera_source': (CameraSourceConfig,),
                 'keyframe_selector': (KeyframeNodeConfig, KeyframeConfig),
                 'pose_estimator': (PoseNodeConfig, PoseConfig),
                 'coverage_guide': (GuideNodeConfig, CoverageConfig),
                 'avatar_trainer': (TrainerNodeConfig,),
                 'foxglove_bridge': (FoxgloveConfig,)}


def check_parameters(node, parameters):
    """Validate a node's parameters without ROS: unknown names and bad values raise ConfigError."""
    names = {cls: {f.name for f in dataclasses.fields(cls)} for cls in NODE_SETTINGS[node]}
    unknown = sorted(set(parameters).difference(*names.values()))
    if unknown:
        raise ConfigError(f'{node}: unknown parameter(s) {unknown}')
    for cls, fields in names.items():
        build(cls, {k: v for k, v in parameters.items() if k in fields}, f'{node} parameters')
