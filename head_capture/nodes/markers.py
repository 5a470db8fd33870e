"""rviz markers from numpy arrays: one builder for every list marker the nodes publish."""

from geometry_msgs.msg import Point
from head_capture.nodes.support import header
import numpy as np
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker


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
