"""Frame sources on real files, a loopback MJPEG server and real rosbag2 bags."""

import http.server
import logging
import socketserver
import threading

import cv2
from head_capture.capture.sources import (ImageFolderSource, open_source, RosbagSource,
                                          SourceNotFoundError, SourceOpenError, StreamEndedEarly,
                                          UrlSource, VideoSource)
from head_capture.synth.recordings import write_image_bag, write_video
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores


def numbered_frames(count, size=(96, 64)):
    """Frames whose mean brightness encodes their index, so order can be checked."""
    return [np.full((size[1], size[0], 3), 20 + 5 * n, np.uint8) for n in range(count)]


def brightness(frame):
    return (float(frame.image.mean()) - 20) / 5


@pytest.mark.parametrize('suffix', ['.mp4', '.mkv', '.avi'])
def test_video_frames_arrive_in_order_with_timestamps(tmp_path, suffix):
    path = tmp_path / f'clip{suffix}'
    write_video(path, numbered_frames(30), fps=25)
    with VideoSource(path) as source:
        frames = list(source)
        assert source.expected_frames == 30 and source.stats.frames_read == 30
    assert [f.index for f in frames] == list(range(30))
    np.testing.assert_allclose([f.time_s for f in frames], np.arange(30) / 25, atol=1e-3)
    np.testing.assert_allclose([brightness(f) for f in frames], range(30), atol=0.5)
    assert frames[0].image.shape == (64, 96, 3) and frames[0].image.dtype == np.uint8
    assert len(list(source)) == 30


def test_truncated_video_delivers_its_frames_then_says_so(tmp_path):
    path = tmp_path / 'clip.mp4'
    rng = np.random.default_rng(0)
    write_video(path, [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(60)])
    cut = tmp_path / 'cut.mp4'
    cut.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    source = VideoSource(cut)
    received = []
    with pytest.raises(StreamEndedEarly, match=r'ended after \d+ of 60 frames'):
        for frame in source:
            received.append(frame)
    assert 10 < len(received) < 60


def test_unreadable_inputs(tmp_path):
    with pytest.raises(SourceNotFoundError, match='nope.mp4'):
        open_source(tmp_path / 'nope.mp4')
    fake = tmp_path / 'notes.mp4'
    fake.write_text('this is not a video')
    with pytest.raises(SourceOpenError, match='not a readable video'):
        open_source(fake)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(SourceOpenError, match='no images'):
        open_source(tmp_path / 'empty')
    with pytest.raises(SourceOpenError, match='unsupported URL scheme'):
        open_source('ftp://example.invalid/x')
    with pytest.raises(ValueError, match='fps must be positive'):
        ImageFolderSource(tmp_path, fps=0)


def test_folder_natural_order_and_corrupt_files(tmp_path, caplog):
    for n, image in enumerate(numbered_frames(12)):
        cv2.imwrite(str(tmp_path / f'frame{n}.png'), image)
    (tmp_path / 'frame5.png').write_bytes(b'\x89PNG broken')
    (tmp_path / 'frame7.png').write_bytes(b'also broken')
    (tmp_path / 'notes.txt').write_text('ignored')
    with caplog.at_level(logging.WARNING):
        source = open_source(tmp_path, fps=10.0)
        frames = list(source)
    assert isinstance(source, ImageFolderSource)
    assert [f.index for f in frames] == [0, 1, 2, 3, 4, 6, 8, 9, 10, 11]
    np.testing.assert_allclose([brightness(f) for f in frames], [f.index for f in frames])
    assert frames[-1].time_s == pytest.approx(1.1)
    assert (source.stats.frames_read, source.stats.frames_corrupt) == (10, 2)
    assert sum('skipping corrupt frames' in r.message for r in caplog.records) == 1


class MjpegServer:
    """A phone IP-camera app on loopback: one MJPEG stream of ``frames``, then it hangs up."""

    def __init__(self, frames):
        payloads = [cv2.imencode('.jpg', f)[1].tobytes() for f in frames]
        served = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if served.is_set():
                    self.send_error(503)
                    return
                served.set()
                self.send_response(200)
                self.send_header('Content-Type', 'multipart/x-mixed-replace; boundary=frame')
                self.end_headers()
                for payload in payloads:
                    self.wfile.write(b'--frame\r\nContent-Type: image/jpeg\r\n'
                                     b'Content-Length: %d\r\n\r\n' % len(payload))
                    self.wfile.write(payload + b'\r\n')

            def log_message(self, *args):
                pass

        self.server = socketserver.ThreadingTCPServer(('127.0.0.1', 0), Handler)
        self.url = f'http://127.0.0.1:{self.server.server_address[1]}/video'
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_mjpeg_stream_then_a_dropped_connection():
    server = MjpegServer(numbered_frames(8))
    try:
        source = open_source(server.url, open_timeout_s=2.0, read_timeout_s=2.0, reconnects=1)
        assert isinstance(source, UrlSource) and not source.replayable
        received = []
        with pytest.raises(StreamEndedEarly, match='stopped after 8 frames'):
            for frame in source:
                received.append(frame)
        np.testing.assert_allclose([brightness(f) for f in received], range(8), atol=1.0)
        assert all(b.time_s >= a.time_s for a, b in zip(received, received[1:]))
    finally:
        server.close()


def test_unreachable_url_fails_fast():
    with socketserver.TCPServer(('127.0.0.1', 0), http.server.BaseHTTPRequestHandler) as s:
        port = s.server_address[1]
    with pytest.raises(SourceOpenError, match='cannot open stream'):
        UrlSource(f'http://127.0.0.1:{port}/video', open_timeout_s=1.0)


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
    # A bare .mcap file reads the same as its bag directory.
    mcap = next(bag.glob('*.mcap'))
    assert len(list(open_source(mcap))) == 10


def test_rosbag_topic_choice(tmp_path):
    bag = tmp_path / 'bag'
    store = get_typestore(Stores.ROS2_KILTED)
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        for topic in ('/camera/image_raw', '/camera/image_raw/compressed', '/left/image_raw'):
            kind = 'CompressedImage' if topic.endswith('compressed') else 'Image'
            writer.add_connection(topic, f'sensor_msgs/msg/{kind}', typestore=store)
    with pytest.raises(SourceOpenError, match='/left/image_raw'):
        RosbagSource(bag)
    with pytest.raises(SourceOpenError, match="no image topic '/nope'"):
        RosbagSource(bag, topic='/nope')
    assert RosbagSource(bag, topic='/left/image_raw').topic == '/left/image_raw'


def test_rosbag_prefers_raw_over_its_compressed_twin(tmp_path):
    bag = tmp_path / 'bag'
    store = get_typestore(Stores.ROS2_KILTED)
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        for topic in ('/camera/image_raw', '/camera/image_raw/compressed'):
            kind = 'CompressedImage' if topic.endswith('compressed') else 'Image'
            writer.add_connection(topic, f'sensor_msgs/msg/{kind}', typestore=store)
    assert RosbagSource(bag).topic == '/camera/image_raw'


def test_rosbag_with_a_corrupt_message(tmp_path):
    store = get_typestore(Stores.ROS2_KILTED)
    types = store.types
    bag = tmp_path / 'bag'
    msgtype = 'sensor_msgs/msg/CompressedImage'
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection('/camera/image_raw/compressed', msgtype,
                                           typestore=store)
        for n, image in enumerate(numbered_frames(5)):
            data = cv2.imencode('.jpg', image)[1].ravel() if n != 2 else np.zeros(9, np.uint8)
            header = types['std_msgs/msg/Header'](
                stamp=types['builtin_interfaces/msg/Time'](sec=n, nanosec=0), frame_id='cam')
            message = types[msgtype](header=header, format='jpeg', data=data)
            writer.write(connection, n * 10**9 + 1, store.serialize_cdr(message, msgtype))
    source = RosbagSource(bag)
    assert [f.index for f in source] == [0, 1, 3, 4]
    assert source.stats.frames_corrupt == 1
