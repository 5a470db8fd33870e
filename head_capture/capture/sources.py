"""
Frame sources: every way a phone video arrives, as one iterator of timestamped RGB frames.

A video file (anything FFmpeg decodes, through PyAV), an image folder, a stream URL (RTSP,
HTTP MJPEG as phone IP-camera apps serve it, through OpenCV's FFmpeg backend) and a rosbag2
bag (MCAP or sqlite3, read without ROS through ``rosbags``). Whatever the source:

- a missing path or an unreadable input raises a ``SourceError`` saying what was tried;
- a corrupt frame is skipped, counted in ``stats`` and logged once per cause, never fatal;
- a stream that stops before the frames it promised raises ``StreamEndedEarly`` after the
  last good frame, so a consumer keeps everything it received and can still say why it ended.
"""

from dataclasses import dataclass
import logging
from pathlib import Path
import re
import time

import av
import cv2
from head_capture.capture.image_encoding import decode_compressed, decode_raw, ImageDecodeError
import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.typesys import get_typestore, Stores

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
BAG_SUFFIXES = ('.mcap', '.db3')
URL_SCHEMES = ('rtsp', 'rtsps', 'http', 'https', 'rtmp', 'udp', 'tcp')
RAW_IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'


class SourceError(RuntimeError):
    """A frame source that cannot deliver, with the reason."""


class SourceNotFoundError(SourceError):
    """The file or folder given as input does not exist."""


class SourceOpenError(SourceError):
    """The input exists but cannot be read as frames."""


class StreamEndedEarly(SourceError):
    """The stream stopped before the frames it promised; the frames before were delivered."""


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its position in the source, its time in seconds, RGB uint8 pixels."""

    index: int
    time_s: float
    image: np.ndarray


@dataclass
class SourceStats:
    """Counters of one pass over a source."""

    frames_read: int = 0
    frames_corrupt: int = 0


class FrameSource:
    """Base of all sources: iterate for frames; ``stats`` counts the current pass."""

    replayable = True

    def __init__(self, name):
        self.name = str(name)
        self.stats = SourceStats()
        self.expected_frames = None
        self._warned = set()

    def __iter__(self):
        self.stats = SourceStats()
        for frame in self._frames():
            self.stats.frames_read += 1
            yield frame

    def _frames(self):
        raise NotImplementedError

    def _skip(self, cause, detail):
        """Count a corrupt frame; log each cause once, not once per frame."""
        self.stats.frames_corrupt += 1
        if cause not in self._warned:
            self._warned.add(cause)
            log.warning('%s: skipping corrupt frames (%s): %s', self.name, cause, detail)

    def _check_complete(self, what):
        """Raise ``StreamEndedEarly`` when fewer frames came than the source promised."""
        expected = self.expected_frames
        seen = self.stats.frames_read + self.stats.frames_corrupt
        if expected and seen < expected - max(2, 0.02 * expected):
            raise StreamEndedEarly(f'{self.name}: {what} ended after {seen} of {expected} '
                                   'frames (truncated or damaged file?)')

    def close(self):
        """Release what the source holds open."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class VideoSource(FrameSource):
    """A video file decoded with PyAV; timestamps from the stream's presentation times."""

    def __init__(self, path):
        super().__init__(path)
        self.path = _existing(path)
        with self._open() as container:
            stream = container.streams.video[0]
            self.fps = float(stream.average_rate) if stream.average_rate else None
            self.expected_frames = stream.frames or self._frames_from_duration(stream, container)

    def _open(self):
        try:
            container = av.open(str(self.path))
        except av.FFmpegError as exc:
            raise SourceOpenError(f'{self.path} is not a readable video: {exc}') from exc
        if not container.streams.video:
            container.close()
            raise SourceOpenError(f'{self.path} holds no video stream')
        return container

    def _frames_from_duration(self, stream, container):
        if stream.duration is not None:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            seconds = container.duration / av.time_base
        else:
            return None
        return int(round(seconds * self.fps)) if self.fps else None

    def _frames(self):
        with self._open() as container:
            stream = container.streams.video[0]
            stream.thread_type = 'AUTO'
            index, start = 0, None
            for packet in container.demux(stream):
                try:
                    decoded = packet.decode()
                except av.FFmpegError as exc:
                    self._skip('undecodable packet', exc)
                    index += 1
                    continue
                for frame in decoded:
                    time_s = frame.time if frame.time is not None else index / (self.fps or 30.0)
                    # Times count from the first frame: some muxers (AVI) start at one frame.
                    start = time_s if start is None else start
                    yield Frame(index, float(time_s - start), frame.to_ndarray(format='rgb24'))
                    index += 1
        self._check_complete('video')


class ImageFolderSource(FrameSource):
    """Images in a folder, in natural order (frame2 before frame10), at a nominal rate."""

    def __init__(self, path, fps=30.0):
        super().__init__(path)
        if fps <= 0:
            raise ValueError(f'fps must be positive, got {fps}')
        self.fps = float(fps)
        folder = _existing(path)
        self.files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
                            key=_natural_key)
        if not self.files:
            raise SourceOpenError(f'no images ({", ".join(IMAGE_SUFFIXES)}) in {folder}')
        self.expected_frames = len(self.files)

    def _frames(self):
        for index, path in enumerate(self.files):
            pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if pixels is None:
                self._skip('unreadable image file', path.name)
                continue
            yield Frame(index, index / self.fps, cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB))


class UrlSource(FrameSource):
    """A live stream URL (RTSP, HTTP MJPEG, ...) read through OpenCV's FFmpeg backend."""

    replayable = False

    def __init__(self, url, open_timeout_s=5.0, read_timeout_s=5.0, reconnects=3):
        super().__init__(url)
        if open_timeout_s <= 0 or read_timeout_s <= 0 or reconnects < 0:
            raise ValueError('timeouts must be positive and reconnects >= 0')
        self.url = url
        self.timeouts = (open_timeout_s, read_timeout_s)
        self.reconnects = reconnects
        self.fps = None
        self._capture = self._connect()

    def _connect(self):
        open_ms, read_ms = (int(1000 * t) for t in self.timeouts)
        capture = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG,
                                   [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, open_ms,
                                    cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_ms])
        if not capture.isOpened():
            raise SourceOpenError(f'cannot open stream {self.url} (refused, unreachable or not '
                                  f'a video stream; waited up to {self.timeouts[0]:g} s)')
        return capture

    def _frames(self):
        start, index, retries = time.monotonic(), 0, 0
        while True:
            ok, pixels = self._capture.read() if self._capture is not None else (False, None)
            if ok:
                retries = 0
                yield Frame(index, time.monotonic() - start,
                            cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB))
                index += 1
                continue
            if retries >= self.reconnects:
                raise StreamEndedEarly(f'{self.url}: stream stopped after {index} frames and '
                                       f'did not come back after {retries} reconnects')
            retries += 1
            log.warning('%s: stream interrupted, reconnecting (%d/%d)', self.url, retries,
                        self.reconnects)
            self.close()
            try:
                self._capture = self._connect()
            except SourceOpenError:
                self._capture = None

    def close(self):
        """Release the connection."""
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class RosbagSource(FrameSource):
    """Image messages of one topic from a rosbag2 bag (directory, .mcap or .db3)."""

    def __init__(self, path, topic=None):
        super().__init__(path)
        self.path = _existing(path)
        with self._open() as reader:
            self.topic, self.msgtype = _image_topic(reader, topic, self.path)
            self.expected_frames = sum(c.msgcount for c in reader.connections
                                       if c.topic == self.topic)
        self.fps = None

    def _open(self):
        try:
            return AnyReader([self.path], default_typestore=get_typestore(Stores.ROS2_KILTED))
        except Exception as exc:  # rosbags raises several unrelated types for a bad bag.
            raise SourceOpenError(f'{self.path} is not a readable rosbag2 bag: {exc}') from exc

    def _frames(self):
        with self._open() as reader:
            connections = [c for c in reader.connections if c.topic == self.topic]
            for index, (connection, bag_time, raw) in enumerate(
                    reader.messages(connections=connections)):
                try:
                    message = reader.deserialize(raw, connection.msgtype)
                    image = _message_image(message, connection.msgtype)
                except (ImageDecodeError, ValueError, KeyError) as exc:
                    self._skip('bad image message', exc)
                    continue
                stamp = message.header.stamp
                time_ns = (stamp.sec * 10**9 + stamp.nanosec) or bag_time
                yield Frame(index, time_ns * 1e-9, image)
        self._check_complete('bag')


def open_source(spec, **options):
    """Open the right source for ``spec``: URL, bag, image folder or video file."""
    text = str(spec)
    scheme = re.match(r'^([a-zA-Z][a-zA-Z0-9+.-]*)://', text)
    if scheme:
        if scheme.group(1).lower() not in URL_SCHEMES:
            raise SourceOpenError(f'unsupported URL scheme in {text!r}; use one of '
                                  f'{", ".join(URL_SCHEMES)}')
        return UrlSource(text, **options)
    path = _existing(text)
    if path.suffix.lower() in BAG_SUFFIXES or (path / 'metadata.yaml').is_file():
        return RosbagSource(path, **options)
    if path.is_dir():
        return ImageFolderSource(path, **options)
    return VideoSource(path, **options)


def _existing(path):
    path = Path(path)
    if not path.exists():
        raise SourceNotFoundError(f'input not found: {path}')
    return path


def _natural_key(path):
    return [int(part) if part.isdigit() else part.lower()
            for part in re.split(r'(\d+)', path.name)]


def _image_topic(reader, topic, path):
    """Pick the topic to read: the one asked for, or the bag's only image topic."""
    images = {c.topic: c.msgtype for c in reader.connections
              if c.msgtype in (RAW_IMAGE, COMPRESSED_IMAGE)}
    if topic is not None:
        if topic not in images:
            raise SourceOpenError(f'{path} has no image topic {topic!r}; image topics: '
                                  f'{sorted(images) or "none"}')
        return topic, images[topic]
    # A camera often records raw and compressed side by side: the same frames, take raw.
    distinct = {t for t in images if not (t.endswith('/compressed')
                                          and t[:-len('/compressed')] in images)}
    if len(distinct) != 1:
        raise SourceOpenError(f'{path}: pick one image topic with topic=...; found '
                              f'{sorted(images) or "none"}')
    chosen = distinct.pop()
    return chosen, images[chosen]


def _message_image(message, msgtype):
    if msgtype == COMPRESSED_IMAGE:
        return decode_compressed(message.format, bytes(message.data))
    return decode_raw(message.encoding, message.height, message.width, message.step,
                      bytes(message.data), bool(message.is_bigendian))
