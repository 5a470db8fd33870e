"""Frame sources on real files, loopback HTTP servers and real rosbag2 bags."""

import http.server
import itertools
import logging
import socketserver
import struct
import threading
import time

import av
import cv2
from head_capture.capture.bag_writer import write_image_bag
from head_capture.capture.sources import (ImageFolderSource, open_source, RosbagSource,
                                          SourceNotFoundError, SourceOpenError, StreamEndedEarly,
                                          UrlSource, VideoSource)
from head_capture.video_writer import write_video
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores

STORE = get_typestore(Stores.ROS2_KILTED)
TYPES = STORE.types


def numbered_frames(count, size=(160, 120)):
    """Frames whose mean brightness encodes their index, so order can be checked."""
    return [np.full((size[1], size[0], 3), 20 + 5 * n, np.uint8) for n in range(count)]


def brightness(frame):
    return (float(frame.image.mean()) - 20) / 5


def read_all(source):
    """Iterate ``source`` to its end; return the frames and the early-end error, if any."""
    frames = []
    try:
        for frame in source:
            frames.append(frame)
    except StreamEndedEarly as exc:
        return frames, exc
    return frames, None


def jpeg(image):
    return cv2.imencode('.jpg', image)[1].tobytes()


def write_clip(path, frames, codec, rotation=None):
    """Encode frames with PyAV directly: a codec or a display rotation write_video lacks."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), 'w') as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height = width, height
        stream.pix_fmt = 'yuvj420p' if codec == 'mjpeg' else 'yuv420p'
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for n, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format='rgb24')
            frame.pts = n
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


@pytest.mark.parametrize('suffix', ['.mp4', '.mkv', '.avi'])
def test_video_frames_arrive_in_order_with_timestamps(tmp_path, suffix):
    path = tmp_path / f'clip{suffix}'
    write_video(path, numbered_frames(40), fps=25)
    with VideoSource(path) as source:
        frames = list(source)
        assert source.expected_frames == 40 and source.stats.frames_read == 40
        assert source.fps == pytest.approx(25) and source.replayable
    assert [f.index for f in frames] == list(range(40))
    np.testing.assert_allclose([f.time_s for f in frames], np.arange(40) / 25, atol=1e-3)
    np.testing.assert_allclose([brightness(f) for f in frames], range(40), atol=0.5)
    assert frames[0].image.shape == (120, 160, 3) and frames[0].image.dtype == np.uint8
    assert len(list(source)) == 40


def test_phone_rotation_is_applied(tmp_path):
    # A portrait phone clip: landscape pixels that the display matrix turns clockwise.
    image = np.zeros((120, 160, 3), np.uint8)
    image[:40, :40] = (255, 0, 0)
    write_clip(tmp_path / 'portrait.mp4', [image] * 3, 'mpeg4', rotation=-90)
    frame = next(iter(VideoSource(tmp_path / 'portrait.mp4')))
    assert frame.image.shape == (160, 120, 3) and frame.image.flags.c_contiguous
    np.testing.assert_allclose(frame.image[5:35, 85:115].mean(axis=(0, 1)), (255, 0, 0), atol=20)


def test_undecodable_packets_are_skipped_and_counted(tmp_path, caplog):
    frames = numbered_frames(20)
    clip = tmp_path / 'clip.avi'
    write_clip(clip, frames, 'mjpeg')
    data = bytearray(clip.read_bytes())
    with av.open(str(clip)) as container:
        packets = [bytes(p) for p in container.demux(video=0) if p.size]
    for n in (5, 6, 12):
        at = data.find(packets[n])
        data[at:at + len(packets[n])] = bytes(len(packets[n]))
    clip.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        source = VideoSource(clip)
        received = list(source)
    assert [f.index for f in received] == [n for n in range(20) if n not in (5, 6, 12)]
    np.testing.assert_allclose([brightness(f) for f in received], [f.index for f in received],
                               atol=0.5)
    assert (source.stats.frames_read, source.stats.frames_corrupt) == (17, 3)
    assert sum('undecodable packet' in r.message for r in caplog.records) == 1


def test_truncated_video_delivers_its_frames_then_says_so(tmp_path):
    path = tmp_path / 'clip.mp4'
    rng = np.random.default_rng(0)
    write_video(path, [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(60)])
    cut = tmp_path / 'cut.mp4'
    cut.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    source = VideoSource(cut)
    received, error = read_all(source)
    assert isinstance(error, StreamEndedEarly)
    assert f'ended after {len(received)} of 60 frames' in str(error)
    assert 10 < len(received) < 60 and source.stats.frames_read == len(received)


def test_unreadable_inputs(tmp_path):
    with pytest.raises(SourceNotFoundError, match='nope.mp4'):
        open_source(tmp_path / 'nope.mp4')
    with pytest.raises(SourceNotFoundError, match='no_folder'):
        ImageFolderSource(tmp_path / 'no_folder')
    fake = tmp_path / 'notes.mp4'
    fake.write_text('this is not a video')
    with pytest.raises(SourceOpenError, match='notes.mp4 is not a readable video'):
        open_source(fake)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(SourceOpenError, match='no images'):
        open_source(tmp_path / 'empty')
    with pytest.raises(SourceOpenError, match='unsupported URL scheme'):
        open_source('ftp://example.invalid/x')
    with pytest.raises(ValueError, match='fps must be positive'):
        ImageFolderSource(tmp_path, fps=-5)


def test_folder_natural_order_and_corrupt_files(tmp_path, caplog):
    for n, image in enumerate(numbered_frames(12)):
        cv2.imwrite(str(tmp_path / f'frame{n}.png'), image)
    (tmp_path / 'frame5.png').write_bytes(b'\x89PNG broken')
    (tmp_path / 'frame7.png').write_bytes(b'also broken')
    (tmp_path / '._frame3.png').write_bytes(b'macOS resource fork')
    (tmp_path / 'notes.txt').write_text('ignored')
    with caplog.at_level(logging.WARNING):
        source = open_source(tmp_path, fps=10.0)
        frames = list(source)
    assert isinstance(source, ImageFolderSource) and source.expected_frames == 12
    assert [f.index for f in frames] == [0, 1, 2, 3, 4, 6, 8, 9, 10, 11]
    np.testing.assert_allclose([brightness(f) for f in frames], [f.index for f in frames])
    assert frames[-1].time_s == pytest.approx(1.1)
    assert (source.stats.frames_read, source.stats.frames_corrupt) == (10, 2)
    assert sum('skipping corrupt frames' in r.message for r in caplog.records) == 1


class LoopbackServer:
    """An HTTP server on 127.0.0.1 (ephemeral port); ``respond(handler, n)`` answers GET n."""

    def __init__(self, respond, path='/video'):
        self.released = threading.Event()
        self.requests = []
        count = itertools.count()
        requests = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                requests.append(dict(self.headers))
                respond(self, next(count))

            def log_message(self, *args):
                pass

        self.server = socketserver.ThreadingTCPServer(('127.0.0.1', 0), Handler)
        self.server.daemon_threads = True
        self.server.released = self.released
        self.url = f'http://127.0.0.1:{self.server.server_address[1]}{path}'
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


def mjpeg(payloads, boundary='frame', lengths=True, stall_at=None):
    """
    Answer the first GET with an MJPEG stream of ``payloads``, later ones with 503.

    With ``stall_at`` the stream stops sending before that picture, connection open, until
    the server closes.
    """
    delimiter = (boundary if boundary.startswith('--') else '--' + boundary).encode()

    def respond(handler, n):
        if n:
            handler.send_error(503)
            return
        handler.send_response(200)
        handler.send_header('Content-Type', f'multipart/x-mixed-replace; boundary={boundary}')
        handler.end_headers()
        for k, payload in enumerate(payloads):
            if k == stall_at:
                handler.server.released.wait()
                return
            head = delimiter + b'\r\nContent-Type: image/jpeg\r\n'
            if lengths:
                head += b'Content-Length: %d\r\n' % len(payload)
            handler.wfile.write(head + b'\r\n' + payload + b'\r\n')
        handler.wfile.write(delimiter + b'--\r\n')

    return respond


def test_mjpeg_stream_then_a_dropped_connection():
    with LoopbackServer(mjpeg([jpeg(f) for f in numbered_frames(8)])) as server:
        source = open_source(server.url, open_timeout_s=2.0, read_timeout_s=2.0, reconnects=1,
                             reconnect_delay_s=0.0)
        assert isinstance(source, UrlSource) and not source.replayable
        assert source.expected_frames is None
        received, error = read_all(source)
    assert 'stopped after 8 frames' in str(error) and 'HTTP 503' in str(error)
    np.testing.assert_allclose([brightness(f) for f in received], range(8), atol=1.0)
    assert [f.index for f in received] == list(range(8))
    assert all(b.time_s >= a.time_s >= 0 for a, b in zip(received, received[1:]))
    assert (source.stats.frames_read, source.stats.reconnects) == (8, 1)


def test_mjpeg_without_lengths_and_with_corrupt_pictures(caplog):
    payloads = [jpeg(f) for f in numbered_frames(10)]
    payloads[3] = b'\xff\xd8 not really a jpeg'
    payloads[6] = bytes(50)
    # Boundary declared with its dashes, as some apps do; no Content-Length per part.
    respond = mjpeg(payloads, boundary='--myboundary', lengths=False)
    with LoopbackServer(respond) as server, caplog.at_level(logging.WARNING):
        source = UrlSource(server.url, reconnects=0)
        received, error = read_all(source)
    assert 'stopped after 10 frames' in str(error)
    assert [f.index for f in received] == [0, 1, 2, 4, 5, 7, 8, 9]
    np.testing.assert_allclose([brightness(f) for f in received], [f.index for f in received],
                               atol=1.0)
    assert source.stats.frames_corrupt == 2
    assert sum('skipping corrupt frames' in r.message for r in caplog.records) == 1


def test_mjpeg_part_with_a_bad_length_is_skipped():
    good, bad = jpeg(numbered_frames(1)[0]), b'--frame\r\nContent-Length: banana\r\n\r\nxyz\r\n'

    def respond(handler, n):
        handler.send_response(200)
        handler.send_header('Content-Type', 'multipart/x-mixed-replace;boundary="frame"')
        handler.end_headers()
        part = b'--frame\r\nContent-Length: %d\r\n\r\n' % len(good) + good + b'\r\n'
        handler.wfile.write(part + bad + part)

    with LoopbackServer(respond) as server:
        source = UrlSource(server.url, reconnects=0)
        received, error = read_all(source)
    assert [f.index for f in received] == [0, 2] and source.stats.frames_corrupt == 1


def test_stalled_stream_times_out():
    respond = mjpeg([jpeg(f) for f in numbered_frames(6)], stall_at=3)
    with LoopbackServer(respond) as server:
        source = UrlSource(server.url, read_timeout_s=0.3, reconnects=0)
        started = time.monotonic()
        received, error = read_all(source)
        waited = time.monotonic() - started
    assert len(received) == 3 and 'stopped after 3 frames' in str(error)
    assert 0.25 < waited < 2.0


def test_snapshot_url_is_polled_with_basic_auth():
    payloads = [jpeg(f) for f in numbered_frames(5)]

    def respond(handler, n):
        if handler.headers.get('Authorization') != 'Basic dXNlcjpzM2NyZXQ=':
            handler.send_error(401)
            return
        if n >= len(payloads):
            handler.send_error(404)
            return
        handler.send_response(200)
        handler.send_header('Content-Type', 'image/jpeg')
        handler.send_header('Content-Length', str(len(payloads[n])))
        handler.end_headers()
        handler.wfile.write(payloads[n])

    with LoopbackServer(respond, path='/shot.jpg') as server:
        url = server.url.replace('http://', 'http://user:s3cret@')
        source = open_source(url, snapshot_fps=20.0, reconnects=0)
        received, error = read_all(source)
        with pytest.raises(SourceOpenError, match='HTTP 401'):
            UrlSource(server.url.replace('http://', 'http://user:wrong@'))
    assert 's3cret' not in source.name and 's3cret' not in str(error)
    assert 'HTTP 404' in str(error)
    np.testing.assert_allclose([brightness(f) for f in received], range(5), atol=1.0)
    # Polled at 20 fps: about 50 ms apart (loose bounds for a busy machine).
    steps = np.diff([f.time_s for f in received])
    assert np.all(steps > 0.02) and np.all(steps < 0.5) and steps.sum() > 0.15


def test_video_over_http_goes_to_opencv_and_ends_normally(tmp_path):
    clip = tmp_path / 'clip.mkv'
    write_video(clip, numbered_frames(20), fps=25)
    body = clip.read_bytes()

    def respond(handler, n):
        handler.send_response(200)
        handler.send_header('Content-Type', 'video/x-matroska')
        handler.send_header('Content-Length', str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    with LoopbackServer(respond, path='/clip.mkv') as server:
        source = UrlSource(server.url)
        received, error = read_all(source)
    assert error is None and source.expected_frames == 20 and source.stats.reconnects == 0
    np.testing.assert_allclose([brightness(f) for f in received], range(20), atol=0.5)


def test_unreachable_url_fails_fast():
    with socketserver.TCPServer(('127.0.0.1', 0), http.server.BaseHTTPRequestHandler) as s:
        port = s.server_address[1]
    started = time.monotonic()
    for url in (f'http://127.0.0.1:{port}/video', f'rtsp://127.0.0.1:{port}/live'):
        with pytest.raises(SourceOpenError, match='cannot open stream'):
            UrlSource(url, open_timeout_s=1.0)
    assert time.monotonic() - started < 2.0


def test_url_parameters_are_checked():
    with pytest.raises(ValueError, match='read_timeout_s must be positive'):
        UrlSource('http://127.0.0.1:9/video', read_timeout_s=-1)
    with pytest.raises(ValueError, match='must not be negative'):
        UrlSource('http://127.0.0.1:9/video', reconnects=-1)
    with pytest.raises(SourceOpenError, match='bad port'):
        UrlSource('http://127.0.0.1:99999/video')


def stamped_image(n, image=None, encoding='rgb8', sec=None):
    """Return a sensor_msgs/Image of ``image`` (default: numbered frame ``n``) stamped ``n`` s."""
    image = numbered_frames(n + 1)[n] if image is None else image
    stamp = TYPES['builtin_interfaces/msg/Time'](sec=n if sec is None else sec, nanosec=0)
    header = TYPES['std_msgs/msg/Header'](stamp=stamp, frame_id='cam')
    return TYPES['sensor_msgs/msg/Image'](
        header=header, height=image.shape[0], width=image.shape[1], encoding=encoding,
        is_bigendian=0, step=image.shape[1] * 3, data=image.ravel())


def write_bag(path, topics, plugin=StoragePlugin.MCAP):
    """Write ``{topic: [(bag_time_ns, message or raw bytes)]}``; message types from the topic."""
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        for topic, messages in topics.items():
            msgtype = f'sensor_msgs/msg/{"CompressedImage" if "compressed" in topic else "Image"}'
            connection = writer.add_connection(topic, msgtype, typestore=STORE)
            for bag_time, message in messages:
                if not isinstance(message, bytes):
                    message = STORE.serialize_cdr(message, msgtype)
                writer.write(connection, bag_time, message)


@pytest.mark.parametrize('compressed', [False, True])
def test_rosbag_round_trip(tmp_path, compressed):
    frames = numbered_frames(10)
    bag = tmp_path / 'bag'
    write_image_bag(bag, [(100.0 + n / 30, f) for n, f in enumerate(frames)],
                    compressed=compressed)
    source = open_source(bag)
    assert isinstance(source, RosbagSource) and source.expected_frames == 10
    assert source.topic == '/camera/image_raw' + ('/compressed' if compressed else '')
    received = list(source)
    np.testing.assert_allclose([f.time_s for f in received], 100.0 + np.arange(10) / 30)
    np.testing.assert_allclose([brightness(f) for f in received], range(10), atol=0.5)
    if not compressed:
        np.testing.assert_array_equal(received[4].image, frames[4])
    # A bare .mcap file reads the same as its bag directory.
    mcap = next(bag.glob('*.mcap'))
    bare = open_source(mcap)
    assert isinstance(bare, RosbagSource) and len(list(bare)) == 10


def test_sqlite3_bag_and_zero_stamps(tmp_path):
    bag = tmp_path / 'bag'
    messages = [(7 * 10**9 + n, stamped_image(n, sec=0)) for n in range(3)]
    write_bag(bag, {'/cam/image_raw': messages}, plugin=StoragePlugin.SQLITE3)
    for spec in (bag, next(bag.glob('*.db3'))):
        received = list(open_source(spec))
        np.testing.assert_allclose([f.time_s for f in received], 7.0 + np.arange(3) * 1e-9)
        np.testing.assert_allclose([brightness(f) for f in received], range(3))


def test_rosbag_topic_choice(tmp_path):
    bag = tmp_path / 'bag'
    write_bag(bag, {'/camera/image_raw': [], '/camera/image_raw/compressed': [],
                    '/left/image_raw': []})
    with pytest.raises(SourceOpenError, match='/left/image_raw'):
        RosbagSource(bag)
    with pytest.raises(SourceOpenError, match="no image topic '/nope'"):
        RosbagSource(bag, topic='/nope')
    assert RosbagSource(bag, topic='/left/image_raw').topic == '/left/image_raw'


def test_rosbag_prefers_raw_over_its_compressed_twin(tmp_path):
    bag = tmp_path / 'bag'
    write_bag(bag, {'/camera/image_raw': [], '/camera/image_raw/compressed': []})
    assert RosbagSource(bag).topic == '/camera/image_raw'


def test_rosbag_without_images(tmp_path):
    bag = tmp_path / 'bag'
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        writer.add_connection('/chatter', 'std_msgs/msg/String', typestore=STORE)
    with pytest.raises(SourceOpenError, match='found none'):
        RosbagSource(bag)


def test_rosbag_corrupt_messages_are_skipped_and_counted(tmp_path, caplog):
    bag = tmp_path / 'bag'
    messages = [(n, stamped_image(n)) for n in range(6)]
    messages[2] = (2, stamped_image(2, encoding='rgb9'))
    messages[4] = (4, bytes(STORE.serialize_cdr(stamped_image(4), 'sensor_msgs/msg/Image'))[:30])
    write_bag(bag, {'/camera/image_raw': messages})
    with caplog.at_level(logging.WARNING):
        source = RosbagSource(bag)
        received = list(source)
    assert [f.index for f in received] == [0, 1, 3, 5]
    assert (source.stats.frames_read, source.stats.frames_corrupt) == (4, 2)
    assert sum('skipping corrupt frames' in r.message for r in caplog.records) == 2


def test_rosbag_with_a_corrupt_compressed_message(tmp_path):
    bag = tmp_path / 'bag'
    messages = []
    for n, image in enumerate(numbered_frames(5)):
        data = np.frombuffer(jpeg(image) if n != 2 else bytes(9), np.uint8)
        header = TYPES['std_msgs/msg/Header'](
            stamp=TYPES['builtin_interfaces/msg/Time'](sec=n, nanosec=0), frame_id='cam')
        messages.append((n * 10**9 + 1, TYPES['sensor_msgs/msg/CompressedImage'](
            header=header, format='jpeg', data=data)))
    write_bag(bag, {'/camera/image_raw/compressed': messages})
    source = RosbagSource(bag)
    assert [f.index for f in source] == [0, 1, 3, 4]
    assert source.stats.frames_corrupt == 1


def test_damaged_bags(tmp_path):
    bag = tmp_path / 'bag'
    times = [100.0 + n / 30 for n in range(30)]
    write_image_bag(bag, zip(times, numbered_frames(30)))
    mcap = next(bag.glob('*.mcap'))
    data = bytearray(mcap.read_bytes())
    # Give message 25's record (found by its log and publish times) an impossible length.
    stamp_ns = round(times[25] * 1e9)
    at = data.find(struct.pack('<QQ', stamp_ns, stamp_ns))
    data[at - 14:at - 6] = struct.pack('<Q', 10**12)
    mcap.write_bytes(bytes(data))
    received, error = read_all(RosbagSource(bag))
    assert 'bag unreadable after' in str(error) and 'of 30 messages' in str(error)
    assert 0 < len(received) < 25
    # A recording cut off (no MCAP footer) cannot be opened, and the error says what helps.
    mcap.write_bytes(bytes(data[:len(data) // 2]))
    with pytest.raises(SourceOpenError, match='mcap recover'):
        RosbagSource(bag)


def test_open_source_dispatch(tmp_path):
    write_video(tmp_path / 'clip.mp4', numbered_frames(4))
    write_image_bag(tmp_path / 'bag', [(1.0, numbered_frames(1)[0])])
    (tmp_path / 'shots').mkdir()
    cv2.imwrite(str(tmp_path / 'shots' / 'a.jpg'), numbered_frames(1)[0])
    assert isinstance(open_source(tmp_path / 'clip.mp4'), VideoSource)
    assert isinstance(open_source(str(tmp_path / 'bag')), RosbagSource)
    assert isinstance(open_source(next((tmp_path / 'bag').glob('*.mcap'))), RosbagSource)
    assert isinstance(open_source(tmp_path / 'shots', fps=5), ImageFolderSource)
    with LoopbackServer(mjpeg([jpeg(numbered_frames(1)[0])])) as server:
        with open_source(server.url, reconnects=0) as source:
            assert isinstance(source, UrlSource)


def test_http_answer_that_is_no_video():
    def respond(handler, n):
        handler.send_response(200)
        handler.send_header('Content-Type', 'text/html')
        handler.end_headers()
        handler.wfile.write(b'<html>IP Webcam</html>')

    with LoopbackServer(respond, path='/') as server:
        with pytest.raises(SourceOpenError, match='the server answers text/html'):
            UrlSource(server.url, open_timeout_s=1.0)
