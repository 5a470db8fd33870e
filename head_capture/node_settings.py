"""
The settings of each node beyond its ROS-free module's own config: topics, files, rates.

Kept apart from the rclpy nodes so the offline CLI can read the same parameters file without
ROS: ``config.load_node_config`` knows these keys belong to the node, not to the module.
"""

import dataclasses
from dataclasses import dataclass

from head_capture.avatar.config import load_avatar_config, parse_overrides
from head_capture.camera import check_fov, DEFAULT_FOV_DEG
from head_capture.capture.coverage import CoverageConfig
from head_capture.capture.keyframes import KeyframeConfig
from head_capture.capture.pose import PoseConfig
from head_capture.config import build, ConfigError

# pose_estimator's tf_child: the frame its transform makes the child (see tf_frames).
TF_CHILDREN = ('head', 'camera')


@dataclass
class CameraSourceConfig:
    """Parameters of camera_source."""

    # Video file, image folder, rosbag2 (MCAP) or URL (MJPEG/RTSP/HTTP snapshots).
    source: str = ''
    # Raw images go here, JPEG to image_topic + '/compressed'.
    image_topic: str = '/camera/image_raw'
    camera_info_topic: str = '/camera/camera_info'
    # Playback speed: 1 is the source's own frame rate, 2 twice as fast, 0 as fast as frames
    # decode (a subscriber that cannot keep up then drops frames).
    speed: float = 1.0
    # Start again at the end (replayable sources only).
    loop: bool = False
    frame_id: str = 'camera_optical'
    # The camera: a transforms.json whose intrinsics describe the source, else a field of view.
    intrinsics_file: str = ''
    fov_deg: float = DEFAULT_FOV_DEG
    publish_raw: bool = True
    publish_compressed: bool = True
    jpeg_quality: int = 90
    # Frame rate to assume for sources that do not say (folders, URLs).
    default_fps: float = 30.0
    # Stamps are this time (s) plus the frame's time in the source; 0: the clock at start.
    # A fixed origin makes a replay's stamps name its frames (tests, benchmarks).
    stamp_origin_s: float = 0.0
    # A file (video, folder, bag) starts once these nodes (space-separated names) subscribe to
    # its images or camera_info, or after subscriber_wait_s: a frame sent before a node
    # subscribed never reaches it. ``up`` and the launch files name the graph's image nodes.
    wait_for_subscribers: str = ''
    subscriber_wait_s: float = 60.0

    def __post_init__(self):
        if not self.source:
            raise ValueError('source is required: a video, image folder, MCAP bag or URL')
        if not (self.publish_raw or self.publish_compressed):
            raise ValueError('publish_raw and publish_compressed are both off: nothing to do')
        if not 0 <= self.jpeg_quality <= 100 or self.default_fps <= 0 or self.speed < 0:
            raise ValueError('jpeg_quality must be within 0-100, default_fps > 0, speed >= 0')
        if self.stamp_origin_s < 0 or self.subscriber_wait_s < 0:
            raise ValueError('stamp_origin_s and subscriber_wait_s must be >= 0')
        check_fov(self.fov_deg)


@dataclass
class KeyframeNodeConfig:
    """Topics and storage of keyframe_selector."""

    image_topic: str = '/camera/image_raw'
    # Subscribe to image_topic + '/compressed' (JPEG from a phone) instead of raw images.
    compressed: bool = False
    session_dir: str = ''


@dataclass
class PoseNodeConfig:
    """Inputs, model, rates and outputs of pose_estimator."""

    image_topic: str = '/camera/image_raw'
    compressed: bool = False
    camera_info_topic: str = '/camera/camera_info'
    session_dir: str = ''
    # The landmark model (ONNX); empty: the shipped one.
    model_path: str = ''
    threads: int = 2
    # Live poses per second on the newest frame (0: keyframes only).
    live_rate_hz: float = 15.0
    # Field of view assumed until a usable camera_info arrives.
    fov_deg: float = DEFAULT_FOV_DEG
    frame_id: str = 'head'
    # The camera's frame where an image names none (its header.frame_id wins).
    camera_frame_id: str = 'camera_optical'
    publish_tf: bool = True
    # The child of the published transform: 'head' (camera frame -> head: a driver's optical
    # frame keeps its one parent) or 'camera' (head -> camera frame).
    tf_child: str = 'head'

    def __post_init__(self):
        if self.threads < 1 or self.live_rate_hz < 0:
            raise ValueError('threads must be >= 1 and live_rate_hz >= 0')
        if self.tf_child not in TF_CHILDREN:
            raise ValueError(f'tf_child must be one of {", ".join(TF_CHILDREN)}, got '
                             f'{self.tf_child!r}')
        check_fov(self.fov_deg)


@dataclass
class GuideNodeConfig:
    """Rates and outputs of coverage_guide."""

    # Call /head_capture/train when the coverage target is met.
    auto_train: bool = True
    publish_rate_hz: float = 2.0
    dome_radius_m: float = 0.6
    frame_id: str = 'head'

    def __post_init__(self):
        if self.publish_rate_hz <= 0 or self.dome_radius_m <= 0:
            raise ValueError('publish_rate_hz and dome_radius_m must be > 0')


@dataclass
class TrainerNodeConfig:
    """What to train and how."""

    session_dir: str = ''
    # paper, fast, cpu_preview, or a YAML path.
    config: str = 'cpu_preview'
    # KEY=VALUE overrides of the avatar config, space-separated: 'stage1_steps=500 rays=256'.
    overrides: str = ''
    # Refuse to train on fewer registered keyframes.
    min_keyframes: int = 8
    poll_s: float = 1.0
    frame_id: str = 'head'

    def __post_init__(self):
        if self.min_keyframes < 2 or self.poll_s <= 0:
            raise ValueError('min_keyframes must be >= 2 and poll_s > 0')
        if any('=' not in o for o in self.overrides.split()):
            raise ValueError(f'overrides must be KEY=VALUE words, got {self.overrides!r}')
        # Checked now, not when training starts after minutes of capture.
        load_avatar_config(self.config, parse_overrides(self.overrides.split()))


@dataclass
class FoxgloveConfig:
    """Where to serve and how."""

    host: str = '127.0.0.1'
    port: int = 8765
    jpeg_quality: int = 80
    frame_id: str = 'head'
    camera_frame_id: str = 'camera_optical'

    def __post_init__(self):
        if not 0 <= self.port <= 65535 or not 0 <= self.jpeg_quality <= 100:
            raise ValueError('port must be within 0-65535 and jpeg_quality within 0-100')


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
