"""Capture, live poses and coverage, and the avatar trainer (with rviz)."""

from head_capture.launch_description import describe


def generate_launch_description():
    """Return the full graph."""
    return describe(with_trainer=True)
