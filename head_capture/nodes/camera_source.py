"""
camera_source: a video file, image folder, IP-camera URL or MCAP bag as a ROS camera.

For users whose phone is not a ROS topic yet, and for replaying captures. Frames are read in
a thread (the executor never waits on a decoder or a network) and published as Image,
CompressedImage and CameraInfo, stamped at the source's own timeline, paced in real time or as
fast as they decode. A file starts once the nodes named in ``wait_for_subscribers`` subscribed
(``up`` names the graph's camera readers), so a clip is not over before the graph is up.
"""

import threading
import time

from head_capture.camera import image_intrinsics
from head_capture.capture.sources import open_source, SourceError
from head_capture.node_graph import not_subscribed
from head_capture.node_parameters import NODE_SETTINGS
from head_capture.nodes.ros_image import to_compressed, to_image
from head_capture.nodes.support import (declare_config, HeadCaptureNode, header,
                                        published_unless_shut_down, run_node, SOURCE_QOS,
                                        StartupError)
from head_capture.session import read_transforms, SessionError
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image


def camera_info(intrinsics, stamp, frame_id):
    """Return the CameraInfo of pinhole intrinsics (plumb_bob: D is k1 k2 p1 p2 k3)."""
    k = intrinsics.matrix.reshape(-1).tolist()
    p = [k[0], 0.0, k[2], 0.0, 0.0, k[4], k[5], 0.0, 0.0, 0.0, 1.0, 0.0]
    return CameraInfo(header=header(stamp, frame_id), width=intrinsics.width,
                      height=intrinsics.height, distortion_model='plumb_bob',
                      d=list(intrinsics.distortion), k=k,
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
        self._raw = self.create_publisher(Image, cfg.image_topic, SOURCE_QOS)
        self._compressed = self.create_publisher(CompressedImage, cfg.image_topic + '/compressed',
                                                 SOURCE_QOS)
        self._info = self.create_publisher(CameraInfo, cfg.camera_info_topic, SOURCE_QOS)
        self.finished = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._publish_all, daemon=True)
        self._thread.start()

    def _topics(self):
        """Return {topic: publisher} of what goes out."""
        return {publisher.topic_name: publisher
                for publisher in (self._raw, self._compressed, self._info)}

    def missing_readers(self):
        """Return the nodes of ``wait_for_subscribers`` not yet subscribed (not_subscribed)."""
        topics = self._topics()
        return not_subscribed(self.config.wait_for_subscribers.split(),
                              {topic: [info.node_name for info in
                                       self.get_subscriptions_info_by_topic(topic)]
                               for topic in topics},
                              {topic: publisher.get_subscription_count()
                               for topic, publisher in topics.items()})

    def _wait_for_subscribers(self, poll_s=0.05):
        """
        Hold a file back until the graph's camera readers subscribed; False: stopped meanwhile.

        A live stream goes on without anyone, so it is not held. After ``subscriber_wait_s``
        the file plays anyway, with a warning naming who is missing.
        """
        cfg, log = self.config, self.get_logger()
        started = time.monotonic()
        missing = self.missing_readers() if self.source.replayable else []
        if missing:
            log.info(f'waiting up to {cfg.subscriber_wait_s:g} s for {", ".join(missing)} to '
                     f'subscribe before playing {self.source.name}')
        while missing and time.monotonic() - started < cfg.subscriber_wait_s:
            if self._stop.wait(poll_s):
                return False
            try:
                missing = self.missing_readers()
            except Exception:  # noqa: B902 - rclpy's RCLError is private
                if self.context.ok():
                    raise
                return False  # ROS shut down (Ctrl-C) while it waited
        if missing:
            log.warning(f'{", ".join(missing)} did not subscribe within '
                        f'{cfg.subscriber_wait_s:g} s: playing {self.source.name} anyway')
        elif cfg.wait_for_subscribers and self.source.replayable:
            log.info(f'{cfg.wait_for_subscribers.replace(" ", ", ")} subscribed after '
                     f'{time.monotonic() - started:.1f} s: playing {self.source.name}')
        return True

    def _publish_all(self):
        cfg, log = self.config, self.get_logger()
        fps = self.source.fps or cfg.default_fps
        try:
            if not self._wait_for_subscribers():
                return
            start_ns = self.get_clock().now().nanoseconds
            origin_ns = int(cfg.stamp_origin_s * 1e9) or start_ns
            offset = 0.0
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
        self._info.publish(camera_info(image_intrinsics(image, self._camera, cfg.fov_deg),
                                       msg_header.stamp, cfg.frame_id))
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
