"""
The TF link a camera pose is published as: which frame is the camera's, which way it points.

A camera driver (or a phone's ROS app) names its optical frame in every image header, and a
robot's TF tree already gives that frame a parent: a ``head -> camera`` transform would give
it a second one, which TF refuses. So by default the head hangs off the camera's frame
(``camera -> head``, ``tf_child: head``). With no tree of a driver's (a video file, a bag),
``tf_child: camera`` puts the camera under ``head`` instead. rviz shows either the same way.
"""

from head_capture.geometry import matrix_to_quat, w2c_to_ros_pose
import numpy as np


def camera_frame(image_frame_id, fallback):
    """Return the camera's frame: the one the image names, else the configured one."""
    return image_frame_id or fallback


def head_link(rotation, translation, head_frame, camera_frame_id, child='head'):
    """
    Return (parent, child, translation (3,), quaternion xyzw (4,)) of a pose's transform.

    ``rotation``, ``translation``: the world-to-camera pose, world being the head frame;
    ``child``: the ``tf_child`` parameter, 'head' or 'camera' (checked with the parameters).
    """
    rotation = np.asarray(rotation, float)
    if child == 'head':  # the head in the camera's frame: the world-to-camera pose itself
        return (camera_frame_id, head_frame, np.asarray(translation, float),
                matrix_to_quat(rotation))
    position, quaternion = w2c_to_ros_pose(rotation, translation)
    return head_frame, camera_frame_id, position, quaternion
