"""
What pose_estimator's periodic work costs as a live session grows.

Rewriting ``transforms.json``, sending every keyframe's pose (PoseArray) and frustum
(MarkerArray) and listing ``SESSION/keyframes/`` grow with the keyframes; the live trail
(``camera_path``) stops growing at its length. Each is timed (median of 5) with the node's own
code at 100 to 2,000 keyframes, and the period the node's Pacer then keeps.

    python bench/session_growth.py
"""

import argparse
from pathlib import Path
import tempfile
import time

from common import save
from geometry_msgs.msg import PoseArray, PoseStamped
from head_capture.camera import Intrinsics
from head_capture.capture.live_session import PERIODIC_SHARE, SESSION_PERIOD_S
from head_capture.nodes.markers import KeyframeMarkers
from head_capture.nodes.pose_estimator import PATH_LENGTH
from head_capture.nodes.support import LATCHED_QOS
from head_capture.pacing import Pacer
from head_capture.session import keyframe_file, keyframe_stamps, Session
from nav_msgs.msg import Path as PathMsg
import numpy as np
import rclpy
from rclpy.node import Node
from scipy.spatial.transform import Rotation
from visualization_msgs.msg import MarkerArray


def median_ms(work, repeats=5):
    """Return the median wall time of ``work()`` in milliseconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return round(1000.0 * float(np.median(times)), 2)


def grown_session(root, count, camera, rng):
    """Return a session of ``count`` registered live keyframes (empty files, poses, meta)."""
    session = Session.create(root, camera)
    rotations = Rotation.random(count, random_state=rng).as_matrix()
    for n, rotation in enumerate(rotations):
        relative = keyframe_file(10**18 + n)
        (Path(root) / relative).parent.mkdir(exist_ok=True)
        (Path(root) / relative).touch()
        c2w = np.eye(4)
        c2w[:3, :3], c2w[:3, 3] = rotation, rotation[:, 2] * 0.5
        session.add_record(relative, c2w, meta={'stamp_ns': 10**18 + n, 'pose_quality': {
            'inlier_share': 0.8123, 'reprojection_px': 1.234, 'confidence': 0.9012}})
    return session, rotations


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--keyframes', type=int, nargs='+', default=[100, 500, 1000, 2000])
    parser.add_argument('--out', type=Path, default=Path('bench/results/session_growth.json'))
    args = parser.parse_args()
    camera = Intrinsics.from_fov(1280, 720)
    rng = np.random.default_rng(0)
    rclpy.init()
    node = Node('session_growth')
    poses_out = node.create_publisher(PoseArray, '/session_growth/keyframe_poses', LATCHED_QOS)
    markers_out = node.create_publisher(MarkerArray, '/session_growth/markers', 10)
    path_out = node.create_publisher(PathMsg, '/session_growth/camera_path', 10)
    pacer, rows = Pacer(SESSION_PERIOD_S, PERIODIC_SHARE), []
    for count in args.keyframes:
        with tempfile.TemporaryDirectory() as root:
            session, rotations = grown_session(root, count, camera, rng)
            translations = np.full((count, 3), [0.0, 0.0, 0.5])
            view = KeyframeMarkers(np.zeros((0, 3)), 'head', node.get_clock().now().to_msg())
            for rotation, translation in zip(rotations, translations):
                view.add(rotation, translation, camera)
            poses, frustums = view.poses, view.frustums
            trail = [PoseStamped(pose=p) for p in poses[:PATH_LENGTH]]
            row = {'keyframes': count,
                   'transforms_json_ms': median_ms(session.save),
                   'keyframe_poses_ms': median_ms(
                       lambda: poses_out.publish(PoseArray(poses=poses))),
                   'frustums_ms': median_ms(
                       lambda: markers_out.publish(MarkerArray(markers=[frustums]))),
                   'keyframe_listing_ms': median_ms(lambda: keyframe_stamps(root)),
                   'camera_path_ms': median_ms(
                       lambda: path_out.publish(PathMsg(poses=list(trail))))}
        periodic = sum(row[k] for k in ('transforms_json_ms', 'keyframe_poses_ms', 'frustums_ms',
                                        'keyframe_listing_ms'))
        row['periodic_ms'] = round(periodic, 2)
        row['paced_period_s'] = round(pacer.period_for(periodic / 1000), 2)
        rows.append(row)
        print(row, flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    save(args.out, {'benchmark': "pose_estimator's periodic work against session size",
                    'share': PERIODIC_SHARE, 'rows': rows})


if __name__ == '__main__':
    main()
