"""
Frame sources: every way a phone video arrives, as one iterator of timestamped RGB frames.

A video file (anything FFmpeg decodes, through PyAV), an image folder, a stream URL (HTTP
MJPEG as phone IP-camera apps serve it, snapshot URLs, RTSP and other streams through
OpenCV's FFmpeg backend) and a rosbag2 bag (MCAP or sqlite3, read without ROS through
``rosbags``). Whatever the source:

- a missing path raises ``SourceNotFoundError``, an unreadable input ``SourceOpenError``
  saying what was tried;
- a corrupt frame is skipped, counted in ``stats`` and logged once per cause, never fatal;
- a stream that stops before the frames it promised raises ``StreamEndedEarly`` after the
  last good frame, so a consumer keeps everything it received and can still say why it ended.
"""

from abc import ABC, abstractmethod
import base64
from contextlib import contextmanager
from dataclasses import dataclass
import http.client
import logging
from pathlib import Path
import re
import time
from urllib.parse import unquote, urlsplit, urlunsplit

import av
import cv2
from head_capture.capture.image_encoding import decode_compressed, decode_raw, ImageDecodeError
from head_capture.files import IMAGE_SUFFIXES, list_images
import numpy as np
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.rosbag2 import ReaderError
from rosbags.typesys import get_typestore, Stores

log = logging.getLogger(__name__)

BAG_SUFFIXES = ('.mcap', '.db3')
URL_SCHEMES = ('rtsp', 'rtsps', 'http', 'https', 'rtmp', 'udp', 'tcp')
RAW_IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'
# Longest header line and largest picture an MJPEG stream may send before it counts as garbage.
_MAX_LINE = 8192
_MAX_PART_BYTES = 64 * 2**20
# What a network stream raises when the connection drops, stalls or answers nonsense.
_DROPPED = (OSError, http.client.HTTPException)


class SourceError(RuntimeError):
    """A frame source that cannot deliver, with the reason."""


class SourceNotFoundError(SourceError):
    """The file or folder given as input does not exist."""


class SourceOpenError(SourceError):
    """The input exists (or the URL is well formed) but cannot be read as frames."""


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
    """Live counters of the pass under way, readable during and after iteration."""

    frames_read: int = 0
    frames_corrupt: int = 0
    expected_frames: int | None = None
    reconnects: int = 0


class FrameSource(ABC):
    """
    Base of all sources: iterate for frames; ``stats`` counts the pass under way.

    A ``replayable`` source (file, folder, bag) starts again from its first frame on every
    iteration; a live one goes on from where the stream is. ``fps`` and ``expected_frames``
    are None when the source cannot know them. ``Frame.index`` counts corrupt frames too, so
    it stays the position in the source.
    """

    replayable = True

    def __init__(self, name):
        self.name = str(name)
        self.fps = None
        self.expected_frames = None
        self.stats = SourceStats()
        self._warned = set()

    def __iter__(self):
        self.stats = SourceStats(expected_frames=self.expected_frames)
        for frame in self._frames():
            self.stats.frames_read += 1
            yield frame

    @abstractmethod
    def _frames(self):
        """Yield the frames of one pass; count corrupt ones with ``_skip``."""

    def _skip(self, cause, detail):
        """Count a corrupt frame; log each cause once, not once per frame."""
        self.stats.frames_corrupt += 1
        if cause not in self._warned:
            self._warned.add(cause)
            log.warning('%s: skipping corrupt frames (%s): %s', self.name, cause, detail)

    def _check_complete(self, what):
        """Raise ``StreamEndedEarly`` when clearly fewer frames came than were promised."""
        expected = self.expected_frames
        seen = self.stats.frames_read + self.stats.frames_corrupt
        # Frame counts from durations are approximate: allow 2 frames or 2 %.
        if expected and seen < expected - max(2, 0.02 * expected):
            raise StreamEndedEarly(f'{self.name}: {what} ended after {seen} of {expected} '
                                   'frames (truncated or damaged file?)')

    def close(self):
        """Release what the source holds open; iterating again reopens it."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class VideoSource(FrameSource):
    """
    A video file decoded with PyAV: whatever FFmpeg reads, with the phone's rotation applied.

    Times are presentation times (pts x time_base) counted from the first frame, so
    containers that start late (AVI at one frame, MP4 edit lists) still start at 0. The
    container's frame count (or its duration x frame rate) is the promise behind
    ``StreamEndedEarly``; a packet that does not decode is skipped and counted.
    """

    def __init__(self, path):
        self.path = _existing(path)
        super().__init__(self.path)
        with self._open() as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            self.fps = float(rate) if rate else None
            self.expected_frames = stream.frames or self._frames_from_duration(stream, container)

    def _open(self):
        try:
            container = av.open(str(self.path))
        except av.FFmpegError as exc:
            # An MP4/MOV cut off while recording has no index and lands here too.
            # FFmpeg's own words without its errno ("[Errno 1094995529] ...").
            reason = getattr(exc, 'strerror', None) or exc
            raise SourceOpenError(f'{self.path} is not a readable video (not a video, or '
                                  f'damaged): {reason}') from exc
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
        return round(seconds * self.fps) if self.fps else None

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
                    start = time_s if start is None else start
                    yield Frame(index, float(time_s - start), _upright(frame))
                    index += 1
        self._check_complete('video')


class ImageFolderSource(FrameSource):
    """
    Images in a folder, in natural order (frame2 before frame10), timed at ``fps``.

    Hidden files (such as the ``._frame1.jpg`` copies macOS leaves) are not frames. EXIF
    orientation is applied, as the phone's gallery shows the picture.
    """

    def __init__(self, path, fps=30.0):
        if not fps > 0:
            raise ValueError(f'fps must be positive, got {fps}')
        folder = _existing(path)
        super().__init__(folder)
        self.fps = float(fps)
        self.files = list_images(folder, _natural_key)
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
    """
    A live stream URL; frame times are wall-clock (monotonic) seconds since iteration began.

    An ``http(s)`` URL is asked first: a ``multipart/x-mixed-replace`` answer (MJPEG, as phone
    IP-camera apps serve it) is read part by part here, so a corrupt JPEG is skipped and
    counted where OpenCV would report the end of the stream; an ``image/*`` answer is a
    snapshot URL (one picture per GET, e.g. IP Webcam's /shot.jpg), polled at
    ``snapshot_fps``. Anything else (RTSP, video over HTTP) goes to OpenCV's FFmpeg backend.
    A dropped, stalled or refused connection is retried ``reconnects`` times in a row,
    ``reconnect_delay_s`` apart, then iteration ends with ``StreamEndedEarly``. A finite video
    served over HTTP (OpenCV knows its frame count) is not reconnected: it ends normally, or
    with ``StreamEndedEarly`` if frames are missing. Credentials in the URL
    (``http://user:pass@host/``) go out as HTTP basic auth and stay out of messages.
    """

    replayable = False

    def __init__(self, url, open_timeout_s=5.0, read_timeout_s=5.0, reconnects=3,
                 reconnect_delay_s=1.0, snapshot_fps=10.0):
        parts = urlsplit(url)
        if parts.scheme.lower() not in URL_SCHEMES:
            raise SourceOpenError(f'unsupported URL scheme in {_redacted(parts)!r}; use one of '
                                  f'{", ".join(URL_SCHEMES)}')
        for name, value in (('open_timeout_s', open_timeout_s),
                            ('read_timeout_s', read_timeout_s), ('snapshot_fps', snapshot_fps)):
            if not value > 0:
                raise ValueError(f'{name} must be positive, got {value}')
        if reconnects < 0 or reconnect_delay_s < 0:
            raise ValueError('reconnects and reconnect_delay_s must not be negative, got '
                             f'{reconnects} and {reconnect_delay_s}')
        super().__init__(_redacted(parts))
        self._http = parts.scheme.lower() in ('http', 'https')
        try:
            self._host, self._port = parts.hostname, parts.port
        except ValueError as exc:
            raise SourceOpenError(f'bad port in URL {self.name!r}') from exc
        if self._http and not self._host:
            raise SourceOpenError(f'no host in URL {self.name!r}')
        self.url = url
        self.open_timeout_s = float(open_timeout_s)
        self.read_timeout_s = float(read_timeout_s)
        self.reconnects = int(reconnects)
        self.reconnect_delay_s = float(reconnect_delay_s)
        self.snapshot_fps = float(snapshot_fps)
        self._parts = parts
        self._stream = self._connect()
        self.expected_frames = self._stream.expected_frames

    def _connect(self):
        """Open the stream in the way its server answers; raise SourceOpenError if it cannot."""
        answer = 'refused, unreachable or not a video stream'
        if self._http:
            connection, response = self._get()
            kind = response.headers.get_content_type()
            if kind.startswith('multipart/'):
                boundary = response.headers.get_param('boundary')
                if not boundary:
                    connection.close()
                    raise SourceOpenError(f'{self.name} answers {kind} without a boundary')
                return _MjpegStream(connection, response, boundary)
            if kind.startswith('image/'):
                return _SnapshotStream(self._fetch, self._body(connection, response),
                                       self.snapshot_fps)
            connection.close()
            answer = f'the server answers {kind}'
        open_ms, read_ms = int(1000 * self.open_timeout_s), int(1000 * self.read_timeout_s)
        capture = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG,
                                   [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, open_ms,
                                    cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_ms])
        if not capture.isOpened():
            raise SourceOpenError(f'cannot open stream {self.name} with OpenCV/FFmpeg ({answer}; '
                                  f'open timeout {self.open_timeout_s:g} s)')
        return _FfmpegStream(capture)

    def _get(self):
        """Send a GET; return the connection and its 200 response, headers read."""
        parts = self._parts
        kind = (http.client.HTTPSConnection if parts.scheme.lower() == 'https'
                else http.client.HTTPConnection)
        connection = kind(self._host, self._port, timeout=self.open_timeout_s)
        headers = {}
        if parts.username is not None:
            user = f'{unquote(parts.username)}:{unquote(parts.password or "")}'
            headers['Authorization'] = 'Basic ' + base64.b64encode(user.encode()).decode()
        target = urlunsplit(('', '', parts.path or '/', parts.query, ''))
        try:
            connection.request('GET', target, headers=headers)
            # The response takes the socket over from the connection: keep it to set its timeout.
            sock = connection.sock
            response = connection.getresponse()
        except _DROPPED as exc:
            connection.close()
            raise SourceOpenError(f'cannot open stream {self.name}: HTTP GET failed: '
                                  f'{exc or type(exc).__name__} (open timeout '
                                  f'{self.open_timeout_s:g} s)') from exc
        if response.status != 200:
            connection.close()
            raise SourceOpenError(f'cannot open stream {self.name}: HTTP {response.status} '
                                  f'{response.reason}')
        sock.settimeout(self.read_timeout_s)
        return connection, response

    def _body(self, connection, response):
        """Read a whole answer (a snapshot picture) and hang up."""
        try:
            return response.read()
        except _DROPPED as exc:
            raise SourceOpenError(f'{self.name}: the answer broke off ({exc})') from exc
        finally:
            connection.close()

    def _fetch(self):
        """Return the next picture of a snapshot URL: the body of one more GET."""
        return self._body(*self._get())

    def _frames(self):
        start = time.monotonic()
        index = failures = 0
        while True:
            try:
                if self._stream is None:
                    self._stream = self._connect()
                image = self._stream.read()
            except ImageDecodeError as exc:
                self._skip('undecodable picture in the stream', exc)
                index += 1
                continue
            except (*_DROPPED, SourceOpenError) as exc:
                self.close()
                if self.expected_frames is not None:
                    self._check_complete('stream')
                    return
                if failures == self.reconnects:
                    raise StreamEndedEarly(f'{self.name}: stream stopped after {index} frames and '
                                           f'did not come back after {failures} reconnects '
                                           f'({exc or type(exc).__name__})') from exc
                failures += 1
                self.stats.reconnects += 1
                log.warning('%s: stream interrupted (%s), reconnecting (%d/%d)', self.name,
                            exc or type(exc).__name__, failures, self.reconnects)
                time.sleep(self.reconnect_delay_s)
                continue
            failures = 0
            yield Frame(index, time.monotonic() - start, image)
            index += 1

    def close(self):
        """Drop the connection; iterating again reconnects."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None


class _MjpegStream:
    """
    The parts of a ``multipart/x-mixed-replace`` HTTP answer, one JPEG each.

    Parts with a Content-Length are read by length, parts without up to the next boundary.
    Boundaries are matched without their leading dashes, since apps disagree on whether the
    header's boundary already carries them.
    """

    expected_frames = None

    def __init__(self, connection, response, boundary):
        self._connection = connection
        self._response = response
        self._boundary = boundary.strip('-').encode('latin-1')
        self._at_part = False

    def read(self):
        """Return the next picture as RGB; raise ImageDecodeError for a corrupt one."""
        if not self._at_part:
            self._skip_to_boundary()
        self._at_part = False
        headers = {}
        for _ in range(64):
            line = self._readline()
            if not line.strip():
                break
            name, _, value = line.decode('latin-1').partition(':')
            headers[name.strip().lower()] = value.strip()
        else:
            raise ConnectionError('no end to the part headers of the MJPEG stream')
        length = headers.get('content-length')
        if length is None:
            data, self._at_part = self._read_to_boundary(), True
        elif not (length.isdigit() and int(length) <= _MAX_PART_BYTES):
            raise ImageDecodeError(f'part with Content-Length {length!r}')
        else:
            data = self._response.read(int(length))
            if len(data) < int(length):
                raise ConnectionError('the stream broke off inside a picture')
        return decode_compressed(headers.get('content-type', 'jpeg'), data)

    def _readline(self):
        line = self._response.readline(_MAX_LINE)
        if not line:
            raise ConnectionError('the server closed the stream')
        return line

    def _is_boundary(self, line):
        text = line.strip()
        return text.startswith(b'--') and text.strip(b'-') == self._boundary

    def _skip_to_boundary(self):
        skipped = 0
        while not self._is_boundary(line := self._readline()):
            skipped += len(line)
            if skipped > _MAX_PART_BYTES:
                raise ConnectionError(f'no multipart boundary in {skipped} bytes')

    def _read_to_boundary(self):
        lines, size = [], 0
        while not self._is_boundary(line := self._readline()):
            lines.append(line)
            size += len(line)
            if size > _MAX_PART_BYTES:
                raise ConnectionError(f'no multipart boundary in {size} bytes')
        # The CRLF before a boundary belongs to the boundary, not to the picture.
        return b''.join(lines).removesuffix(b'\r\n')

    def close(self):
        self._response.close()
        self._connection.close()


class _SnapshotStream:
    """A URL that answers one picture per GET, polled at ``fps``; the first answer is given."""

    expected_frames = None

    def __init__(self, fetch, first, fps):
        self._fetch = fetch
        self._pending = first
        self._period = 1.0 / fps
        self._due = time.monotonic() + self._period

    def read(self):
        """Return the next picture as RGB; wait for its turn first."""
        if self._pending is not None:
            body, self._pending = self._pending, None
        else:
            time.sleep(max(0.0, self._due - time.monotonic()))
            # A late poll does not make the next ones hurry.
            self._due = max(self._due, time.monotonic()) + self._period
            body = self._fetch()
        return decode_compressed('snapshot', body)

    def close(self):
        """Forget a picture fetched but not read yet; there is no connection to close."""
        self._pending = None


class _FfmpegStream:
    """
    An OpenCV FFmpeg capture; a failed read is taken as a dropped stream.

    OpenCV cannot tell a corrupt frame from the end of the stream, so for RTSP a corrupt
    frame costs a reconnect.
    """

    def __init__(self, capture):
        self._capture = capture
        count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        self.expected_frames = int(count) if count > 0 else None

    def read(self):
        """Return the next frame as RGB."""
        ok, pixels = self._capture.read()
        if not ok:
            raise ConnectionError('OpenCV/FFmpeg returned no frame')
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)

    def close(self):
        self._capture.release()


class RosbagSource(FrameSource):
    """
    Image messages of one topic of a rosbag2 bag, read without ROS through ``rosbags``.

    ``path`` is a bag directory (with metadata.yaml) or a bare .mcap or .db3 file.
    ``topic=None`` takes the bag's one camera: a raw topic and its image_transport
    ``/compressed`` twin count as one camera, and the raw one is read (lossless, no JPEG
    decoding); a bag with several cameras needs ``topic``. Frame times are header stamps,
    or the bag's receive times for messages stamped zero. ``expected_frames`` is the topic's
    message count; a bag that breaks mid-way ends with ``StreamEndedEarly`` after its
    readable frames.
    """

    def __init__(self, path, topic=None):
        self.path = _existing(path)
        super().__init__(self.path)
        # Only used for bags without embedded definitions (sqlite3 bags before iron).
        self._typestore = get_typestore(Stores.ROS2_KILTED)
        with self._reader() as reader:
            self.topic, self.msgtype = _image_topic(reader, topic, self.path)
            self.expected_frames = sum(c.msgcount for c in reader.connections
                                       if c.topic == self.topic)

    @contextmanager
    def _reader(self):
        try:
            reader = AnyReader([self.path], default_typestore=self._typestore)
            reader.open()
        except (AnyReaderError, OSError) as exc:
            raise SourceOpenError(f'{self.path} is not a readable rosbag2 bag ({exc}); a '
                                  'recording that did not end cleanly needs `mcap recover` '
                                  '(MCAP) or `ros2 bag reindex` (sqlite3) first') from exc
        try:
            yield reader
        finally:
            reader.close()

    def _frames(self):
        with self._reader() as reader:
            connections = [c for c in reader.connections if c.topic == self.topic]
            index = 0
            try:
                for connection, bag_time, raw in reader.messages(connections=connections):
                    try:
                        message = reader.deserialize(raw, connection.msgtype)
                        image = _message_image(message, connection.msgtype)
                    except AnyReaderError as exc:
                        self._skip('message that does not deserialize', exc)
                    except ImageDecodeError as exc:
                        self._skip('bad image message', exc)
                    else:
                        stamp = message.header.stamp
                        time_ns = (stamp.sec * 10**9 + stamp.nanosec) or bag_time
                        yield Frame(index, time_ns * 1e-9, image)
                    index += 1
            except ReaderError as exc:
                raise StreamEndedEarly(f'{self.name}: bag unreadable after {index} of '
                                       f'{self.expected_frames} messages ({exc})') from exc
        self._check_complete('bag')


def open_source(spec, **options):
    """
    Open the frame source ``spec`` names; ``options`` go to that source's constructor.

    A URL (``scheme://...``) gives a UrlSource; a directory with metadata.yaml or a .mcap or
    .db3 file a RosbagSource; any other directory an ImageFolderSource; any other file a
    VideoSource. A local path that does not exist raises SourceNotFoundError.
    """
    text = str(spec)
    if is_url(text):
        return UrlSource(text, **options)
    path = _existing(text)
    if path.suffix.lower() in BAG_SUFFIXES or (path / 'metadata.yaml').is_file():
        return RosbagSource(path, **options)
    if path.is_dir():
        return ImageFolderSource(path, **options)
    return VideoSource(path, **options)


def is_url(spec):
    """Whether ``spec`` names a stream (``scheme://...``) rather than a local path."""
    return re.match(r'[a-zA-Z][a-zA-Z0-9+.-]*://', str(spec)) is not None


def _existing(path):
    path = Path(path)
    if not path.exists():
        raise SourceNotFoundError(f'input not found: {path}')
    return path


def _natural_key(path):
    return [int(part) if part.isdigit() else part.lower()
            for part in re.split(r'(\d+)', path.name)]


def _upright(frame):
    """Return a decoded video frame as RGB, turned as its display matrix (phones) asks."""
    pixels = frame.to_ndarray(format='rgb24')
    quarter_turns = round(frame.rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(pixels, quarter_turns)) if quarter_turns else pixels


def _redacted(parts):
    """Return a URL for messages: the password replaced by ***."""
    if parts.password is None:
        return urlunsplit(parts)
    host = parts.netloc.rpartition('@')[2]
    return urlunsplit(parts._replace(netloc=f'{parts.username}:***@{host}'))


def _image_topic(reader, topic, path):
    """Pick the topic to read: the one asked for, or the bag's only camera."""
    images = {c.topic: c.msgtype for c in reader.connections
              if c.msgtype in (RAW_IMAGE, COMPRESSED_IMAGE)}
    if topic is not None:
        if topic not in images:
            raise SourceOpenError(f'{path} has no image topic {topic!r}; image topics: '
                                  f'{sorted(images) or "none"}')
        return topic, images[topic]
    cameras = {t for t in images if t.removesuffix('/compressed') == t or
               t.removesuffix('/compressed') not in images}
    if len(cameras) != 1:
        raise SourceOpenError(f'{path}: pick one image topic with topic=...; found '
                              f'{sorted(images) or "none"}')
    chosen = cameras.pop()
    return chosen, images[chosen]


def _message_image(message, msgtype):
    if msgtype == COMPRESSED_IMAGE:
        return decode_compressed(message.format, message.data)
    return decode_raw(message.encoding, message.height, message.width, message.step,
                      message.data, bool(message.is_bigendian))
