"""Capture only: keyframes, live poses and coverage guidance, no training (with rviz)."""

from head_capture.launch_description import describe


def generate_launch_description():
    """Return the capture graph without the trainer."""
    return describe(with_trainer=False)
