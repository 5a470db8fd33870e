"""
rviz markers, poses and TF from numpy arrays: one builder for each kind the nodes publish.

``TransformBroadcaster`` is None where tf2_ros is not installed (rclpy from pip has none).
"""

from geometry_msgs.msg import (Point, Pose, PoseArray, Quaternion, Transform, TransformStamped,
                               Vector3)
from head_capture.capture.visuals import frustum_segments
from head_capture.geometry import w2c_to_ros_pose
from head_capture.nodes.support import header, stamp_msg
from head_capture.tf_frames import head_link
import numpy as np
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

try:  # a real ROS install
    from tf2_ros import TransformBroadcaster
except ImportError:  # pip-installed rclpy: no TF, poses are still on their topics
    TransformBroadcaster = None


def ros_points(points):
    """Return geometry_msgs Points of an (..., 3) array, flattened in order."""
    return [Point(x=x, y=y, z=z) for x, y, z in np.asarray(points, float).reshape(-1, 3).tolist()]


def list_marker(kind, points, namespace, frame_id, stamp, scale=1.0, colour=(1.0, 1.0, 1.0, 1.0),
                colours=None, marker_id=0):
    """
    Return a list marker (LINE_LIST, TRIANGLE_LIST, SPHERE_LIST, ...) through ``points``.

    ``points`` is (..., 3) in the marker's frame, flattened in order; ``colours`` (..., 3 or 4)
    in [0, 1], one per point, overrides ``colour``.
    """
    marker = Marker(header=header(stamp, frame_id), ns=namespace, id=marker_id, type=kind,
                    action=Marker.ADD)
    marker.scale.x = marker.scale.y = marker.scale.z = float(scale)
    marker.pose.orientation.w = 1.0
    marker.color = ColorRGBA(r=float(colour[0]), g=float(colour[1]), b=float(colour[2]),
                             a=float(colour[3]))
    marker.points = ros_points(points)
    if colours is not None:
        colours = np.asarray(colours, float)
        rgba = colours.reshape(-1, colours.shape[-1])
        marker.colors = [ColorRGBA(r=float(c[0]), g=float(c[1]), b=float(c[2]),
                                   a=float(c[3]) if len(c) > 3 else 1.0) for c in rgba]
    return marker


def line_marker(points, namespace, colour, frame_id, stamp, width=0.003, marker_id=0):
    """Return a LINE_LIST marker through consecutive point pairs (N, 3)."""
    return list_marker(Marker.LINE_LIST, points, namespace, frame_id, stamp, width,
                       (*colour, 1.0), marker_id=marker_id)


def ros_pose(rotation, translation):
    """Return the geometry_msgs/Pose of a world-to-camera pose (the camera in the head frame)."""
    position, quat = w2c_to_ros_pose(rotation, translation)
    return Pose(position=Point(x=float(position[0]), y=float(position[1]),
                               z=float(position[2])),
                orientation=Quaternion(x=float(quat[0]), y=float(quat[1]), z=float(quat[2]),
                                       w=float(quat[3])))


def head_transform(rotation, translation, head_frame, camera_frame_id, tf_child, stamp):
    """Return the TF transform of a world-to-camera pose, as ``tf_frames.head_link`` links it."""
    parent, child, (x, y, z), (qx, qy, qz, qw) = head_link(
        rotation, translation, head_frame, camera_frame_id, tf_child)
    return TransformStamped(header=header(stamp, parent), child_frame_id=child,
                            transform=Transform(translation=Vector3(x=x, y=y, z=z),
                                                rotation=Quaternion(x=qx, y=qy, z=qz, w=qw)))


def pose_array(poses, frame_id, stamp):
    """Return world-to-camera ``poses`` (R, t) as a PoseArray of camera poses in the frame."""
    return PoseArray(header=header(stamp, frame_id), poses=[ros_pose(*pose) for pose in poses])


class KeyframeMarkers:
    """
    The registered keyframes as rviz shows them: their poses, a frustum each, the template.

    Grown a keyframe at a time and sent whole, so a long session converts none twice.
    """

    def __init__(self, template, frame_id, stamp, poses=()):
        self.frame_id = frame_id
        self.poses = [ros_pose(rotation, translation) for rotation, translation in poses]
        self.frustums = line_marker(np.zeros((0, 3)), 'keyframe_frustums', (0.2, 0.6, 1.0),
                                    frame_id, stamp)
        self.template = list_marker(Marker.SPHERE_LIST, template, 'template', frame_id,
                                    stamp_msg(0), 0.004, (0.9, 0.9, 0.9, 0.8))

    def add(self, rotation, translation, camera):
        """Add a registered keyframe's pose and frustum."""
        self.poses.append(ros_pose(rotation, translation))
        self.frustums.points.extend(ros_points(frustum_segments(rotation, translation, camera)))

    def messages(self, stamp):
        """Return the keyframe poses (PoseArray) and the template and frustums (MarkerArray)."""
        self.frustums.header.stamp = stamp
        return (PoseArray(header=header(stamp, self.frame_id), poses=self.poses),
                MarkerArray(markers=[self.template, self.frustums]))
