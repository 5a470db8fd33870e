"""The live registration session without ROS: queue, camera fallback, records, flushes."""

import logging
import os
import time

import cv2
from head_capture.camera import Intrinsics
from head_capture.capture.head_volume import META_KEY as HEAD_VOLUME
from head_capture.capture.image_encoding import ImageDecodeError
from head_capture.capture.live_session import (CAMERA_INFO_WAIT_S, LiveSession,
                                               NO_STREAM_WAIT_S, QUEUED_IMAGES)
from head_capture.capture.pose import PoseConfig, PoseEstimate, refused
from head_capture.capture.registration import pose_record
from head_capture.geometry import (c2w_opengl_to_w2c, look_at_w2c, rotation_angle_deg,
                                   w2c_to_c2w_opengl)
from head_capture.landmarks.detector import Detection
from head_capture.landmarks.template import HeadTemplate, mirrored
from head_capture.resources import share_path
from head_capture.session import keyframe_file, read_image, read_landmarks, read_transforms, \
    Session, TRAINING_TRANSFORMS, write_image_atomic, write_transforms
import numpy as np
import pytest
from test_pacing import FakeClock

CAMERA = Intrinsics.from_fov(320, 240, 60.0)
LOGGER = logging.getLogger('test_live_session')


class ProjectingDetector:
    """Landmarks where a known pose puts the template: PnP has a true answer to find."""

    provider = 'fake'

    def __init__(self, template, rotation, translation):
        self.template, self.rotation, self.translation = template, rotation, translation
        self.boxes = []

    def _project(self, points, frame):
        camera = CAMERA.resized(frame.shape[1], frame.shape[0])
        pixels, _ = cv2.projectPoints(points, cv2.Rodrigues(self.rotation)[0],
                                      self.translation, camera.matrix, None)
        return pixels[:, 0]

    def detect(self, frame, box=None, refine=False):
        self.boxes.append(box)
        if not frame.any():  # a black frame shows no head
            return Detection.nothing(frame.shape, 'no head in view', 1)
        pixels = self._project(self.template, frame)
        (x0, y0), (x1, y1) = pixels.min(0), pixels.max(0)
        mask = np.zeros(frame.shape[:2], np.float32)
        mask[int(y0):int(y1) + 1, int(x0):int(x1) + 1] = 1.0
        return Detection(pixels, np.ones(len(pixels)), np.ones(len(pixels)), mask,
                         ((x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0)), 1)

    def detect_mirrored(self, frame, box):
        pixels = self._project(mirrored(self.template), frame)
        return pixels, np.ones(len(pixels))


@pytest.fixture(scope='module')
def template():
    return HeadTemplate.load(share_path('models', 'head_template.json'))


@pytest.fixture
def truth():
    return look_at_w2c(np.array([0.55, 0.2, 0.1]), np.zeros(3))


class Drops:
    def __init__(self):
        self.causes = []

    def __call__(self, cause, detail=''):
        self.causes.append(cause)


def _live(root, template, truth, clock=None, decode=np.asarray, drops=None):
    return LiveSession(root, ProjectingDetector(template.positions, *truth), template,
                       PoseConfig(),
                       fov_deg=60.0, decode=decode, logger=LOGGER,
                       drop=drops if drops is not None else Drops(),
                       clock=clock or FakeClock())


def _keep(root, stamp, shape=(240, 320)):
    """Write a keyframe into the session as the selector does; return its pixels."""
    image = np.full((*shape, 3), 90, np.uint8)
    write_image_atomic(root / keyframe_file(stamp), image)
    return image


def test_a_registered_keyframe_is_recorded_with_its_pose_mask_and_quality(
        tmp_path, template, truth):
    live = _live(tmp_path, template, truth)
    live.camera = CAMERA
    _keep(tmp_path, 10**9)
    posed = live.register_keyframe(10**9)  # no message: the pixels are read from the session
    assert posed.recorded and posed.report['registered'] and posed.report['problem'] is None
    assert posed.report['file_path'] == keyframe_file(10**9)
    assert (live.keyframes, live.registered) == (1, 1)
    # The session is made with its first keyframe, which it lists from the next flush on.
    assert read_transforms(tmp_path / 'transforms.json').frames == []
    assert live.flush() and not live.flush()  # once: nothing new the second time
    transforms = read_transforms(tmp_path / 'transforms.json')
    frame, = transforms.frames
    assert transforms.intrinsics == CAMERA
    assert transforms.meta[HEAD_VOLUME] == live.volume.as_meta()
    assert frame.meta['stamp_ns'] == 10**9
    assert set(frame.meta['pose_quality']) == {'inlier_share', 'reprojection_px', 'confidence'}
    rotation, translation = c2w_opengl_to_w2c(frame.c2w)
    assert rotation_angle_deg(rotation, truth[0]) < 0.5
    np.testing.assert_allclose(translation, truth[1], atol=0.005)
    trimap = read_image(tmp_path / frame.trimap_path)[..., 0]
    assert trimap.shape == (240, 320) and (trimap == 255).any() and (trimap == 0).any()
    assert (tmp_path / frame.mask_path).is_file()
    # Its landmarks stay in the session, for the trainer's pose refinement.
    landmarks, sigma, visible = read_landmarks(tmp_path, frame.file_path)
    assert landmarks.shape == (len(template), 2) and sigma.shape == visible.shape == (
        len(template),)


def test_the_trainer_s_refined_keyframe_poses_are_sent_once_they_exist(tmp_path, template,
                                                                       truth):
    live = _live(tmp_path, template, truth)
    live.camera = CAMERA
    assert live.refined_poses() is None  # no training yet
    _keep(tmp_path, 10**9)
    live.register_keyframe(10**9)
    live.flush()
    frozen = read_transforms(tmp_path / 'transforms.json')
    write_transforms(tmp_path / TRAINING_TRANSFORMS, frozen)
    os.utime(tmp_path / TRAINING_TRANSFORMS, ns=(1, 1))
    assert live.refined_poses() is None  # frozen, not refined yet
    moved = look_at_w2c(np.array([0.5, 0.3, 0.1]), np.zeros(3))
    frozen.frames[0].c2w = w2c_to_c2w_opengl(*moved)
    frozen.meta['head_capture']['pose_refinement'] = {'refined': 1}
    write_transforms(tmp_path / TRAINING_TRANSFORMS, frozen)
    os.utime(tmp_path / TRAINING_TRANSFORMS, ns=(2, 2))
    (rotation, translation), = live.refined_poses()
    assert rotation_angle_deg(rotation, moved[0]) < 1e-6
    np.testing.assert_allclose(translation, moved[1], atol=1e-9)
    assert live.refined_poses() is None  # sent once


def test_keyframes_that_cannot_be_recorded_are_counted_not_kept(tmp_path, template, truth):
    drops = Drops()
    live = _live(tmp_path, template, truth, drops=drops)
    live.camera = CAMERA
    # A message whose keyframe the selector never wrote: another session_dir?
    assert not live.register_keyframe(1, np.full((240, 320, 3), 90, np.uint8)).recorded
    assert drops.causes == ['keyframe not recorded']
    # No head: reported, not recorded, nothing dropped.
    posed = live.register_keyframe(2, np.zeros((240, 320, 3), np.uint8))
    assert not posed.recorded and posed.report['problem'] == 'no_head'
    # camera_info changed: the session holds one camera.
    _keep(tmp_path, 3)
    assert live.register_keyframe(3).recorded
    live.camera = Intrinsics.from_fov(320, 240, 50.0)
    _keep(tmp_path, 4)
    assert not live.register_keyframe(4).recorded
    # Unreadable pixels: none is posed.
    (tmp_path / keyframe_file(5)).write_bytes(b'not a png')
    assert live.register_keyframe(5) is None
    assert drops.causes[1:] == ['keyframe from another camera', 'keyframe not readable']
    assert (live.keyframes, live.registered) == (5, 1)


def test_keyframes_queue_once_with_few_pixels_and_wait_for_the_camera(tmp_path, template,
                                                                      truth):
    clock = FakeClock()
    live = _live(tmp_path, template, truth, clock)
    assert not live.camera_settled()
    clock.now += NO_STREAM_WAIT_S + 0.1
    assert live.camera_settled()  # no stream at all: the backlog goes on with the assumed fov
    live = _live(tmp_path, template, truth, clock)
    pixels = [np.full((24, 32, 3), k, np.uint8) for k in range(QUEUED_IMAGES + 3)]
    for stamp, image in enumerate(pixels):
        live.offer_keyframe(stamp, image)
    live.offer_keyframe(0, pixels[0])  # a message that came twice runs once
    waiting = live.waiting
    assert len(waiting) == len(pixels)
    assert [isinstance(item, np.ndarray) for item in waiting] == \
        [True] * QUEUED_IMAGES + [False] * 3
    assert list(waiting[QUEUED_IMAGES:]) == list(range(QUEUED_IMAGES, len(pixels)))
    clock.now += CAMERA_INFO_WAIT_S - 0.1
    assert not live.camera_settled()  # images came: camera_info is waited for a while
    clock.now += 0.2
    assert live.camera_settled()
    live = _live(tmp_path, template, truth, clock)
    live.camera = CAMERA
    assert live.camera_settled()


def test_catch_up_queues_the_kept_keyframes_whose_message_never_came(tmp_path, template,
                                                                     truth):
    stamps = [10**9 + k for k in range(4)]
    for stamp in stamps:
        _keep(tmp_path, stamp)
    earlier = Session.create(tmp_path, CAMERA)  # an earlier run registered the first
    earlier.add_record(keyframe_file(stamps[0]), np.eye(4))
    earlier.save()
    live = _live(tmp_path, template, truth)
    assert live.registered == 1 and live.frames[0].file_path == keyframe_file(stamps[0])
    live.offer_keyframe(stamps[-1], np.zeros((4, 4, 3), np.uint8))  # its message did come
    live.catch_up()
    live.catch_up()  # nothing twice
    assert [item if isinstance(item, int) else 'message' for item in live.waiting] == \
        ['message', stamps[1], stamps[2]]
    assert live.read_from_session == 2


def test_the_camera_is_camera_info_s_resized_or_an_assumed_field_of_view(tmp_path, template,
                                                                         truth, caplog):
    live = _live(tmp_path, template, truth)
    image = np.zeros((120, 160, 3), np.uint8)
    with caplog.at_level(logging.WARNING, LOGGER.name):
        assumed = live.camera_for(image)
        live.camera_for(image)
    assert assumed == Intrinsics.from_fov(160, 120, 60.0)
    assert live.fov_assumed and live.status()['camera'] == 'assumed 60°'
    assert [r.message for r in caplog.records] == [
        'no camera_info on camera_info: assuming a 60° field of view']  # said once
    live.camera = CAMERA
    assert live.camera_for(image) == CAMERA.resized(160, 120)
    assert live.camera_for(np.zeros((240, 320, 3), np.uint8)) is CAMERA
    assert live.status()['camera'] == 'camera_info'


def test_live_frames_are_posed_newest_first_at_the_rate(tmp_path, template, truth):
    clock, drops = FakeClock(), Drops()
    clock.now = 100.0  # as a monotonic clock is: far past the first frame's due time

    def decode(message):
        if isinstance(message, bytes):
            raise ImageDecodeError('a JPEG cut off')
        return message

    live = _live(tmp_path, template, truth, clock, decode, drops)
    live.camera = CAMERA
    assert live.pose_newest(10.0) is None  # nothing came
    old, new = np.zeros((240, 320, 3), np.uint8), np.full((240, 320, 3), 90, np.uint8)
    live.offer_live(old)
    live.offer_live(new)
    posed = live.pose_newest(10.0)
    assert posed.message is new and posed.estimate.registered and live.newest is None
    assert live.box == posed.detection.box  # where the keyframes look first
    live.offer_live(old)
    clock.now += 0.05
    posed = live.pose_newest(10.0)  # the first sets the cadence: due at once
    assert not posed.estimate.registered and live.box is None
    live.offer_live(new)
    clock.now += 0.03
    assert live.pose_newest(10.0) is None and live.newest is new  # not due: it waits
    clock.now += 0.03
    assert live.pose_newest(10.0).message is new
    live.offer_live(b'\xff\xd8')
    clock.now += 1.0
    assert live.pose_newest(10.0) is None and drops.causes == ['undecodable image']
    status = live.status()
    assert (status['live_frames'], status['live_posed']) == (3, 2)


def test_the_keyframe_thread_runs_in_order_and_flushes_on_close(tmp_path, template, truth):
    stamps = [10**9 + k for k in range(3)]
    images = [_keep(tmp_path, stamp) for stamp in stamps]
    live = _live(tmp_path, template, truth, clock=time.monotonic)
    live.camera = CAMERA
    posed, saved = [], []
    live.start(posed.append, lambda: saved.append(True))
    for stamp, image in zip(stamps, images):
        live.offer_keyframe(stamp, image)
    deadline = time.monotonic() + 20.0
    while len(posed) < len(stamps) and time.monotonic() < deadline:
        time.sleep(0.05)
    live.close()
    assert [p.report['stamp_ns'] for p in posed] == stamps and all(p.recorded for p in posed)
    assert saved  # the last flush, at close if not before
    frames = read_transforms(tmp_path / 'transforms.json').frames
    assert [f.file_path for f in frames] == [keyframe_file(s) for s in stamps]
    again = _live(tmp_path, template, truth)  # a restart continues the session
    again.catch_up()
    assert again.registered == len(stamps) and not again.waiting


def test_a_pose_record_keeps_the_pose_and_quality_or_the_reason():
    rotation, translation = look_at_w2c(np.array([0.0, -0.6, 0.0]), np.zeros(3))
    c2w, meta = pose_record(PoseEstimate(rotation, translation, 0.8, 1.5, 0.9))
    np.testing.assert_allclose(c2w_opengl_to_w2c(c2w)[0], rotation, atol=1e-9)
    assert meta == {'pose_quality': {'inlier_share': 0.8, 'reprojection_px': 1.5,
                                     'confidence': 0.9}}
    c2w, meta = pose_record(refused('too few inliers', 0.1))
    assert c2w is None and meta['unregistered'] == 'too few inliers'
    assert meta['pose_quality']['inlier_share'] == 0.1
