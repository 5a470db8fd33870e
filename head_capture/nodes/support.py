"""
What every head_capture node shares: validated parameters, drop counting, /diagnostics, main().

A node's settings are a dataclass; each field is declared as a ROS parameter (any type, so a
params file may write 1 for 1.0) and the whole set is built and validated once at start. A
node that cannot start (bad parameter, missing model) says why in one line and exits.
"""

import array
import dataclasses
from functools import partial
import os
from pathlib import Path
import sys

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from head_capture.config_files import build, ConfigError
from head_capture.health import Health
from head_capture.image_buffers import reuse_image_buffers
from head_capture.node_parameters import changed_configs, parameter_info
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import (DurabilityPolicy, qos_profile_sensor_data, QoSProfile,
                       ReliabilityPolicy)
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

# What our image and camera_info subscribers take: best effort, so they match any publisher.
SENSOR_QOS = qos_profile_sensor_data
# What a source publishes images and camera_info with (REP 2003: the system default, reliable):
# a reliable subscriber (ros2 topic echo, image_view, most nodes) gets nothing from a
# best-effort publisher, while a best-effort one (ours) takes a reliable publisher's frames.
SOURCE_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)
# Best effort, and only the newest message waits: what a node that drops all but the newest
# frame subscribes with. With the sensor profile's five, a frame taken after a callback that
# ran long (a keyframe through the detector) was the oldest of five, up to 170 ms stale at
# 30 frames/s.
NEWEST_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT,
                        durability=DurabilityPolicy.VOLATILE)
# Late joiners (rviz started after the avatar was made) still get the last message.
LATCHED_QOS = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                         reliability=ReliabilityPolicy.RELIABLE)
RELIABLE_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# The avatar's mesh marker, latched (LATCHED_QOS) apart from the live markers.
AVATAR_MESH_TOPIC = 'head_capture/avatar_mesh'
INT64_LIMIT = 2 ** 63 - 1


class StartupError(RuntimeError):
    """A node cannot start: bad parameters, a missing model, an unusable session directory."""


def parameter_descriptor(cls, name, default):
    """Return the ROS descriptor of setting ``name``: its description, range and read-only."""
    info = parameter_info(cls, name)
    descriptor = ParameterDescriptor(description=info.description, read_only=not info.runtime,
                                     dynamic_typing=True)  # a params file may write 1 for 1.0
    if isinstance(default, bool) or (info.low is None and info.high is None):
        return descriptor
    if isinstance(default, int):
        descriptor.integer_range = [IntegerRange(
            from_value=int(-INT64_LIMIT if info.low is None else info.low),
            to_value=int(INT64_LIMIT if info.high is None else info.high), step=0)]
    elif isinstance(default, float):
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=float('-inf') if info.low is None else float(info.low),
            to_value=float('inf') if info.high is None else float(info.high), step=0.0)]
    return descriptor


def plain(value):
    """Return a parameter value as the Python value a config takes (arrays become lists)."""
    return list(value) if isinstance(value, (array.array, tuple)) else value


def declare_config(node, *classes):
    """
    Declare the fields of each dataclass as parameters; return the validated configs.

    Each comes with its descriptor (``node_parameters``: description, range, read-only unless a
    running node takes it), and ``ros2 param set`` goes through ``node.reconfigure``: a change
    the node cannot take is refused with the reason, one it can take is in effect on success.
    """
    configs = []
    for cls in classes:
        values = {}
        for field in dataclasses.fields(cls):
            default = (field.default if field.default is not dataclasses.MISSING
                       else field.default_factory())
            default = list(default) if isinstance(default, tuple) else default
            node.declare_parameter(field.name, default,
                                   parameter_descriptor(cls, field.name, default))
            values[field.name] = plain(node.get_parameter(field.name).value)
        try:
            configs.append(build(cls, values, f'{node.get_name()} parameters'))
        except ConfigError as exc:
            raise StartupError(str(exc)) from exc
    node.settings = tuple(configs)
    node.add_on_set_parameters_callback(partial(_on_set_parameters, node))
    return configs[0] if len(configs) == 1 else tuple(configs)


def _on_set_parameters(node, parameters):
    """Validate a parameter change and hand it to the running node, or refuse it with why."""
    try:
        settings = changed_configs(node.settings, {p.name: plain(p.value) for p in parameters},
                                   f'{node.get_name()} parameters')
        node.reconfigure(settings)
    except ValueError as exc:  # ConfigError too
        return SetParametersResult(successful=False, reason=str(exc))
    node.settings = settings
    names = ', '.join(f'{p.name}={p.value!r}' for p in parameters)
    node.get_logger().info(f'parameters changed: {names}')
    return SetParametersResult(successful=True)


def session_root(path):
    """Return the session directory a node writes into, created; refuse an unusable one."""
    if not path:
        raise StartupError('session_dir is required: the directory this capture is kept in')
    root = Path(path).expanduser().resolve()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(f'cannot create session_dir {root}: {exc}') from exc
    if not os.access(root, os.W_OK):
        raise StartupError(f'session_dir {root} is not writable')
    return root


def image_input(image_topic, compressed):
    """Return the message type and topic of a camera: raw, or image_transport's JPEG twin."""
    return (CompressedImage, image_topic + '/compressed') if compressed else (Image, image_topic)


def stamp_ns(stamp):
    """Return a builtin_interfaces/Time as integer nanoseconds."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def stamp_msg(nanoseconds):
    """Return integer nanoseconds as a builtin_interfaces/Time."""
    return Time(sec=int(nanoseconds) // 1_000_000_000, nanosec=int(nanoseconds) % 1_000_000_000)


def header(stamp, frame_id):
    """Return a Header."""
    return Header(stamp=stamp, frame_id=frame_id)


class HeadCaptureNode(Node):
    """A node with a Health counter published on /diagnostics every ``period_s``."""

    def __init__(self, name, period_s=1.0, **kwargs):
        super().__init__(name, **kwargs)
        self.health = Health()
        self._diagnostics = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_timer(period_s, self.publish_diagnostics)

    def drop(self, cause, detail=''):
        """Count a dropped input; log each cause once, not once per frame."""
        if self.health.drop(cause, detail):
            self.get_logger().warning(f'dropping input: {cause}{f" ({detail})" if detail else ""}'
                                      '; further drops of this kind are only counted in '
                                      '/diagnostics')

    def close(self):
        """Stop background work and flush what is kept (override in nodes)."""

    def reconfigure(self, settings):
        """
        Take validated settings (only run-time fields changed), or raise ValueError to refuse.

        ``settings`` are the node's configs in ``declare_config`` order; nodes whose configs
        live elsewhere (a module's selector, a timer's period) override this.
        """
        self.config = settings[0]

    def status_values(self):
        """Return extra key/values for the diagnostics status (override in nodes)."""
        return {}

    def status_message(self):
        """Return the one-line summary of the diagnostics status (override in nodes)."""
        return f'{self.health.handled} handled, {sum(self.health.dropped.values())} dropped'

    def status_level(self):
        """Return a DiagnosticStatus level that overrides the drop-based one, or None."""
        return None

    def publish_diagnostics(self):
        """Publish this node's status."""
        level = self.status_level()
        if level is None:
            level = DiagnosticStatus.WARN if self.health.warning else DiagnosticStatus.OK
        values = {**self.health.values(), **self.status_values()}
        status = DiagnosticStatus(level=level, name=f'head_capture: {self.get_name()}',
                                  message=self.status_message(), hardware_id='head_capture',
                                  values=[KeyValue(key=k, value=str(v))
                                          for k, v in values.items()])
        self._diagnostics.publish(DiagnosticArray(header=header(self.get_clock().now().to_msg(),
                                                                ''), status=[status]))


def published_unless_shut_down(node, send):
    """
    Run ``send`` (publishing); return False when ROS shut down and it could not go out.

    A signal (Ctrl-C) shuts the context down from another thread at any moment, so a node
    that publishes while it closes, or from a thread of its own, may find it gone mid-call.
    """
    if not node.context.ok():
        return False
    try:
        send()
    except Exception:  # noqa: B902 - rclpy's RCLError is private
        if node.context.ok():
            raise
        return False
    return True


def run_node(cls, args=None):
    """Entry point of a node executable: start, spin until shut down, exit 2 if it cannot start."""
    reuse_image_buffers()
    try:
        rclpy.init(args=args)
        node = cls()
    except StartupError as exc:
        print(f'[{cls.NAME}] cannot start: {exc}', file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    except Exception as exc:  # noqa: B902 - rclpy's RCLError is private
        # Stopped while starting (the graph going down, or Ctrl-C): rclpy's handler shuts the
        # context, and creating the node then fails. Anything else is a real error.
        if rclpy.ok():
            raise
        print(f'[{cls.NAME}] stopped while starting ({type(exc).__name__})', file=sys.stderr)
        return 0
    except KeyboardInterrupt:  # the signal came before rclpy's handler was in place
        rclpy.try_shutdown()
        return 0
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.close()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
