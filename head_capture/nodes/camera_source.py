"""
camera_source: a video file, image folder, IP-camera URL or MCAP bag as a ROS camera.

For users whose phone is not a ROS topic yet, and for replaying captures. Frames are read in
a thread (the executor never waits on a decoder or a network) and published as Image,
CompressedImage and CameraInfo, stamped at the source's own timeline, paced in real time or as
fast as they decode.
"""

import threading

from head_capture.camera import Intrinsics
from head_capture.capture.sources import open_source, SourceError
from head_capture.node_settings import NODE_SETTINGS
from head_capture.nodes.ros_image import to_compressed, to_image
from head_capture.nodes.support import (declare_config, HeadCaptureNode, header,
                                        published_unless_shut_down, run_node, SENSOR_QOS,
                                        StartupError)
from head_capture.session import read_transforms, SessionError
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image


def camera_info(intrinsics, stamp, frame_id):
    """Return the CameraInfo of pinhole intrinsics (plumb_bob distortion)."""
    k = intrinsics.matrix.reshape(-1).tolist()
    p = [k[0], 0.0, k[2], 0.0, 0.0, k[4], k[5], 0.0, 0.0, 0.0, 1.0, 0.0]
    return CameraInfo(header=header(stamp, frame_id), width=intrinsics.width,
                      height=intrinsics.height, distortion_model='plumb_bob',
                      d=list(intrinsics.distortion) + [0.0], k=k,
                      r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], p=p)


class CameraSource(HeadCaptureNode):
    """Publish a frame source as raw and compressed images and camera_info."""

    NAME = 'camera_source'

    def __init__(self, **kwargs):
        super().__init__(self.NAME, **kwargs)
        self.config = declare_config(self, *NODE_SETTINGS[self.NAME])
        try:
            self.source = open_source(self.config.source)
            self._camera = (read_transforms(self.config.intrinsics_file).intrinsics
                            if self.config.intrinsics_file else None)
        except (SourceError, SessionError, OSError) as exc:
            raise StartupError(str(exc)) from exc
        cfg = self.config
        self._raw = self.create_publisher(Image, cfg.image_topic, SENSOR_QOS)
        self._compressed = self.create_publisher(CompressedImage, cfg.image_topic + '/compressed',
                                                 SENSOR_QOS)
        self._info = self.create_publisher(CameraInfo, cfg.camera_info_topic, SENSOR_QOS)
        self.finished = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._publish_all, daemon=True)
        self._thread.start()

    def _intrinsics(self, image):
        height, width = image.shape[:2]
        if self._camera is None:
            return Intrinsics.from_fov(width, height, self.config.fov_deg)
        if (self._camera.width, self._camera.height) != (width, height):
            return self._camera.resized(width, height)
        return self._camera

    def _publish_all(self):
        cfg, log = self.config, self.get_logger()
        fps = self.source.fps or cfg.default_fps
        start_ns = self.get_clock().now().nanoseconds
        origin_ns = int(cfg.stamp_origin_s * 1e9) or start_ns
        offset = 0.0
        try:
            while not self._stop.is_set():
                last = offset
                for frame in self.source:
                    if self._stop.is_set():
                        return
                    at = offset + frame.time_s
                    if cfg.speed > 0:
                        delay = (start_ns * 1e-9 + at / cfg.speed
                                 - self.get_clock().now().nanoseconds * 1e-9)
                        if delay > 0 and self._stop.wait(delay):
                            return
                    stamp = Time(nanoseconds=origin_ns + int(round(at * 1e9)))
                    if not published_unless_shut_down(
                            self, lambda: self._publish(frame.image, stamp)):
                        return  # ROS shut down (Ctrl-C) while a frame was going out
                    last = at
                if not (cfg.loop and self.source.replayable):
                    break
                offset = last + 1.0 / fps
            log.info(f'{self.source.name}: end of source after {self.health.handled} frames')
        except SourceError as exc:
            log.error(f'{self.source.name}: {exc}')
            self.drop('source error', exc)
        finally:
            self.finished.set()

    def _publish(self, image, stamp):
        cfg = self.config
        msg_header = header(stamp.to_msg(), cfg.frame_id)
        self._info.publish(camera_info(self._intrinsics(image), msg_header.stamp, cfg.frame_id))
        if cfg.publish_raw:
            self._raw.publish(to_image(image, msg_header))
        if cfg.publish_compressed:
            self._compressed.publish(to_compressed(image, msg_header, quality=cfg.jpeg_quality))
        self.health.ok()

    def status_values(self):
        """Source counters for /diagnostics."""
        stats = self.source.stats
        return {'source': self.source.name, 'frames_read': stats.frames_read,
                'frames_corrupt': stats.frames_corrupt, 'finished': self.finished.is_set()}

    def close(self):
        """Stop reading and release the source."""
        self._stop.set()
        self._thread.join(timeout=5.0)
        self.source.close()


def main(args=None):
    """Run camera_source."""
    return run_node(CameraSource, args)


if __name__ == '__main__':
    raise SystemExit(main())
