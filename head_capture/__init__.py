"""head_capture: 360-degree head avatars from a phone stream, live in ROS 2."""

__version__ = '0.1.0'
