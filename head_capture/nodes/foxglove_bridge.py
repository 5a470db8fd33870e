"""
foxglove_bridge: the live view for users without rviz, in Foxglove (app or browser).

Serves the capture over Foxglove's WebSocket protocol (foxglove-sdk, localhost by default):
the annotated guidance image, the live camera pose and its transform, the keyframe poses, the
3D scene (frustums, template landmarks, coverage dome, avatar mesh) and the guidance text.
Connect Foxglove to ``ws://localhost:8765``.
"""


from geometry_msgs.msg import PoseArray, PoseStamped
from head_capture.capture.image_encoding import encode_compressed, ImageDecodeError
from head_capture.node_parameters import NODE_SETTINGS
from head_capture.nodes.ros_image import to_rgb
from head_capture.nodes.support import (AVATAR_MESH_TOPIC, declare_config, HeadCaptureNode,
                                        LATCHED_QOS, run_node, StartupError)
from sensor_msgs.msg import Image
from std_msgs.msg import String
from visualization_msgs.msg import Marker, MarkerArray

try:
    import foxglove
    from foxglove import messages as fox
    from foxglove.channels import (CompressedImageChannel, FrameTransformChannel, LogChannel,
                                   PoseInFrameChannel, PosesInFrameChannel, SceneUpdateChannel)
except ImportError:  # an optional viewer: the rest of the graph does not need it
    foxglove = None


def _time(stamp):
    return fox.Timestamp(sec=stamp.sec, nsec=stamp.nanosec)


def _vector(p):
    return fox.Vector3(x=p.x, y=p.y, z=p.z)


def _quaternion(q):
    return fox.Quaternion(x=q.x, y=q.y, z=q.z, w=q.w)


def _pose(pose):
    return fox.Pose(position=_vector(pose.position), orientation=_quaternion(pose.orientation))


def _points(marker):
    return [fox.Point3(x=p.x, y=p.y, z=p.z) for p in marker.points]


def _colour(c):
    return fox.Color(r=c.r, g=c.g, b=c.b, a=c.a)


def scene_entity(marker):
    """Return the Foxglove SceneEntity of an rviz marker (line and triangle lists, spheres)."""
    common = {'timestamp': _time(marker.header.stamp), 'frame_id': marker.header.frame_id,
              'id': f'{marker.ns}/{marker.id}'}
    if marker.type == Marker.LINE_LIST:
        return fox.SceneEntity(**common, lines=[fox.LinePrimitive(
            type=fox.LinePrimitiveLineType.LineList, thickness=marker.scale.x,
            points=_points(marker), color=_colour(marker.color))])
    if marker.type == Marker.TRIANGLE_LIST:
        colours = [_colour(c) for c in marker.colors] or None
        return fox.SceneEntity(**common, triangles=[fox.TriangleListPrimitive(
            points=_points(marker), colors=colours, color=_colour(marker.color))])
    if marker.type == Marker.SPHERE_LIST:
        size = fox.Vector3(x=marker.scale.x, y=marker.scale.y, z=marker.scale.z)
        return fox.SceneEntity(**common, spheres=[fox.SpherePrimitive(
            pose=fox.Pose(position=_vector(p),
                          orientation=fox.Quaternion(x=0.0, y=0.0, z=0.0, w=1.0)),
            size=size, color=_colour(marker.color)) for p in marker.points])
    return None


class FoxgloveBridge(HeadCaptureNode):
    """Republish the capture's view on a Foxglove WebSocket server."""

    NAME = 'foxglove_bridge'

    def __init__(self, **kwargs):
        super().__init__(self.NAME, **kwargs)
        cfg = self.config = declare_config(self, *NODE_SETTINGS[self.NAME])
        if foxglove is None:
            raise StartupError('foxglove-sdk is not installed (pip install foxglove-sdk)')
        try:
            self.server = foxglove.start_server(name='head_capture', host=cfg.host,
                                                port=cfg.port)
        except Exception as exc:  # the SDK raises its own error types for a busy port
            raise StartupError(f'cannot serve Foxglove on {cfg.host}:{cfg.port}: {exc}') \
                from exc
        self.channels = {
            'image': CompressedImageChannel('/head_capture/guidance_image'),
            'pose': PoseInFrameChannel('/head_capture/camera_pose'),
            'tf': FrameTransformChannel('/tf'),
            'poses': PosesInFrameChannel('/head_capture/keyframe_poses'),
            'scene': SceneUpdateChannel('/head_capture/scene'),
            'log': LogChannel('/head_capture/guidance'),
        }
        self.create_subscription(Image, 'head_capture/guidance_image', self.on_image, 2)
        self.create_subscription(PoseStamped, 'head_capture/camera_pose', self.on_pose, 10)
        self.create_subscription(PoseArray, 'head_capture/keyframe_poses', self.on_poses,
                                 LATCHED_QOS)
        self.create_subscription(MarkerArray, 'head_capture/markers', self.on_markers, 10)
        self.create_subscription(MarkerArray, AVATAR_MESH_TOPIC, self.on_markers, LATCHED_QOS)
        self.create_subscription(String, 'head_capture/guidance', self.on_text, 10)
        self.create_subscription(String, 'head_capture/avatar', self.on_text, LATCHED_QOS)
        self.get_logger().info(f'Foxglove: connect to ws://{cfg.host}:{self.server.port}')

    def on_image(self, message):
        """Send the guidance image as JPEG."""
        try:
            data = encode_compressed(to_rgb(message), 'jpeg', self.config.jpeg_quality)
        except (ImageDecodeError, ValueError) as exc:
            self.drop('undecodable image', exc)
            return
        self.channels['image'].log(fox.CompressedImage(
            timestamp=_time(message.header.stamp), frame_id=message.header.frame_id,
            data=data, format='jpeg'))
        self.health.ok()

    def on_pose(self, message):
        """Send the live pose and the head -> camera transform."""
        self.channels['pose'].log(fox.PoseInFrame(timestamp=_time(message.header.stamp),
                                                  frame_id=message.header.frame_id,
                                                  pose=_pose(message.pose)))
        self.channels['tf'].log(fox.FrameTransform(
            timestamp=_time(message.header.stamp), parent_frame_id=message.header.frame_id,
            child_frame_id=self.config.camera_frame_id,
            translation=_vector(message.pose.position),
            rotation=_quaternion(message.pose.orientation)))
        self.health.ok()

    def on_poses(self, message):
        """Send the keyframe poses."""
        self.channels['poses'].log(fox.PosesInFrame(
            timestamp=_time(message.header.stamp), frame_id=message.header.frame_id,
            poses=[_pose(p) for p in message.poses]))
        self.health.ok()

    def on_markers(self, message):
        """Send the markers as one scene update."""
        entities = [e for e in (scene_entity(m) for m in message.markers) if e is not None]
        if entities:
            self.channels['scene'].log(fox.SceneUpdate(entities=entities))
        self.health.ok()

    def on_text(self, message):
        """Send guidance and the avatar's description as log lines."""
        self.channels['log'].log(fox.Log(level=fox.LogLevel.Info, message=message.data,
                                         name='head_capture'))
        self.health.ok()

    def close(self):
        """Stop serving."""
        self.server.stop()


def main(args=None):
    """Run foxglove_bridge."""
    return run_node(FoxgloveBridge, args)


if __name__ == '__main__':
    raise SystemExit(main())
