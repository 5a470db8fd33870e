"""
The live registration session: keyframes and live frames posed, keyframes kept in ``SESSION``.

The keyframe selector keeps every keyframe in ``SESSION/keyframes/`` before it publishes it, so
the session, not the topic, is the record: each keyframe is queued once, whether its message
came or only its file (``catch_up``: sent before the pose estimator had started, say). The
queue holds the pixels of the first few only; the rest wait as stamps and are read back, so a
detector that falls behind costs no memory. A keyframe waits until the camera is known, or has
stayed unknown long enough that a field of view is assumed: a backlog read from the session
must not be registered with a guess.

Keyframes run in arrival order on a thread of their own: onnxruntime, OpenCV and numpy let go
of the GIL, so a live frame runs beside a keyframe instead of after it. A registered keyframe
is recorded with its pose and mask at once. What grows with the session (``transforms.json``,
the keyframe folder's listing) is written and read once a second, and less often once that
takes more than ``PERIODIC_SHARE`` of the thread's time: a keyframe costs the same at 1000.
Live frames are posed newest first at a set rate, so a slow machine lowers the rate instead of
building a queue. No ROS here: ``nodes/pose_estimator`` feeds it messages and publishes what
comes out.
"""

from collections import deque
from dataclasses import dataclass
import threading
import time
import traceback

from head_capture.camera import image_intrinsics, Intrinsics
from head_capture.capture.head_volume import HeadVolume, keep_in_session, META_KEY as HEAD_VOLUME
from head_capture.capture.image_encoding import ImageDecodeError
from head_capture.capture.pose import PoseEstimate
from head_capture.capture.registration import detect_and_solve, keyframe_mask, pose_record
from head_capture.geometry import c2w_opengl_to_w2c
from head_capture.pacing import Pacer
from head_capture.session import keyframe_file, keyframe_stamp, keyframe_stamps, read_image, \
    read_transforms, Session, SessionError, TRAINING_TRANSFORMS, TRANSFORMS_FILE
import numpy as np

# Keyframes waiting for the detector with their pixels in memory; the rest wait as stamps.
QUEUED_IMAGES = 8
# Keyframes wait this long after the first image came for camera_info before the field of view
# is assumed. Counted from the first image, not from the start: camera_info comes with every
# frame, and under load discovery between the processes has taken longer than this.
CAMERA_INFO_WAIT_S = 3.0
# With no image at all (a session's backlog, its camera gone) the field of view is assumed then.
NO_STREAM_WAIT_S = 15.0
# The keyframe thread looks at the clock this often while nothing comes (the pacer, the wait
# for camera_info).
KEYFRAME_IDLE_S = 0.1
SESSION_PERIOD_S = 1.0
# The most of its thread's time that periodic writes and sends may take (see Pacer).
PERIODIC_SHARE = 0.05


@dataclass(frozen=True)
class Posed:
    """A frame through the detector: its message, pixels, detection, pose and camera."""

    message: object
    image: np.ndarray
    detection: object
    estimate: PoseEstimate
    camera: Intrinsics


@dataclass(frozen=True)
class PosedKeyframe:
    """A keyframe through the detector: its report, its pose, and whether the session has it."""

    report: dict
    estimate: PoseEstimate
    camera: Intrinsics
    recorded: bool


class LiveSession:
    """
    A live capture's keyframes and live frames through the detector, into the session in root.

    ``decode(message)`` returns a message's RGB pixels or raises ImageDecodeError; ``logger``
    has ``info``, ``warning`` and ``error`` (a node's, or Python's); ``drop(cause, detail)``
    counts an input that is lost. Messages come on any thread; the keyframe thread (``start``)
    alone touches the session.
    """

    def __init__(self, root, detector, template, pose_config, *, fov_deg, decode, logger, drop,
                 camera_info_topic='camera_info', clock=time.monotonic):
        self.root, self.detector, self.pose_config = root, detector, pose_config
        self.template, self.volume = template.positions, HeadVolume.of_template(template)
        self.fov_deg, self.camera_info_topic = fov_deg, camera_info_topic
        self._decode, self._logger, self._drop, self._clock = decode, logger, drop, clock
        self.session = self._open()
        self.camera, self.fov_assumed = None, False  # the newest usable camera_info's
        self.newest = None  # the newest live frame, until it is posed
        self.box = None  # the head box of the newest live frame: where keyframes look first
        self.changed, self.read_from_session = False, 0
        self.keyframes, self.registered = 0, len(self.frames)
        self.live_frames, self.live_posed = 0, 0
        self._waiting = deque()  # (stamp, message or None): not yet through the detector
        # Every keyframe stamp queued once, whether its message came or the session had it.
        self._queued = {keyframe_stamp(f.file_path) for f in self.frames}
        self._ready, self._stopping, self._thread = threading.Condition(), False, None
        self._saved, self._refined_seen = None, None
        self._started, self._first_image, self._live_due = clock(), None, 0.0

    @property
    def frames(self):
        """Return the keyframes the session holds, registered: none before the first."""
        return self.session.frames if self.session else []

    @property
    def waiting(self):
        """Return the keyframes queued: their messages, or stamps where only the file waits."""
        with self._ready:
            return tuple(stamp if message is None else message
                         for stamp, message in self._waiting)

    def status(self):
        """Return what went through, and which camera, for /diagnostics."""
        return {'keyframes': self.keyframes, 'registered': self.registered,
                'waiting': len(self.waiting), 'read_from_session': self.read_from_session,
                'live_frames': self.live_frames, 'live_posed': self.live_posed,
                'camera': 'camera_info' if self.camera else f'assumed {self.fov_deg:g}°'}

    # -- inputs ------------------------------------------------------------------------------

    def offer_keyframe(self, stamp, message):
        """Queue a keyframe whose message came: none is skipped."""
        self._image_came()
        self._queue(stamp, message)

    def _queue(self, stamp, message=None):
        """Queue keyframe ``stamp`` once; its message rides along while only a few wait."""
        with self._ready:
            if stamp in self._queued:
                return
            self._queued.add(stamp)
            self._waiting.append((stamp, message if len(self._waiting) < QUEUED_IMAGES
                                  else None))
            self._ready.notify()

    def offer_camera_info(self, message):
        """Keep the newest usable intrinsics of a camera_info message."""
        try:
            self.camera = Intrinsics.from_camera_info(
                message.width, message.height, message.k, message.d, message.distortion_model)
        except ValueError as exc:
            self._drop('unusable camera_info', exc)

    def offer_live(self, message):
        """Keep only the newest live frame: ``pose_newest`` takes it when the rate allows."""
        self._image_came()
        with self._ready:
            self.newest = message

    def _image_came(self):
        """Note that images stream: camera_info is waited for from the first one on."""
        if self._first_image is None:
            self._first_image = self._clock()

    def catch_up(self):
        """Queue the keyframes kept in the session whose message never came."""
        missed = [stamp for stamp in keyframe_stamps(self.root) if stamp not in self._queued]
        for stamp in missed:
            self._queue(stamp)
        if missed and not self.read_from_session:
            self._logger.info(f'{len(missed)} keyframe(s) in the session came without a message '
                              '(sent before this node subscribed?): read from disk; later ones '
                              'are counted in /diagnostics')
        self.read_from_session += len(missed)

    def camera_settled(self):
        """Say whether camera_info came, or images came long enough without it."""
        if self.camera is not None:
            return True
        now = self._clock()
        if self._first_image is None:
            return now - self._started > NO_STREAM_WAIT_S
        return now - self._first_image > CAMERA_INFO_WAIT_S

    def camera_for(self, image):
        """Return the camera of ``image``: camera_info's, else the assumed field of view (said)."""
        camera = self.camera
        if camera is None and not self.fov_assumed:
            self.fov_assumed = True
            self._logger.warning(f'no camera_info on {self.camera_info_topic}: assuming a '
                                 f'{self.fov_deg:g}° field of view')
        return image_intrinsics(image, camera, self.fov_deg)

    # -- live frames -------------------------------------------------------------------------

    def pose_newest(self, rate_hz):
        """
        Pose the newest live frame if ``rate_hz`` allows another now; None if none is posed.

        The cadence is kept (a timer's jitter averages out) without a burst to catch up. The
        frame's head box seeds the next frame's detector, and the keyframes'.
        """
        now = self._clock()
        with self._ready:
            if self.newest is None or now < self._live_due:
                return None
            message, self.newest = self.newest, None
        self._live_due = max(self._live_due + 1.0 / rate_hz, now)
        image = self._decoded(message)
        if image is None:
            return None
        posed = self._pose(message, image, self.box)
        self.box = posed.detection.box if posed.detection.usable else None
        self.live_frames += 1
        self.live_posed += posed.estimate.registered
        return posed

    def _decoded(self, message):
        """Return a message's pixels, or None (counted) when they cannot be read."""
        try:
            return self._decode(message)
        except ImageDecodeError as exc:
            self._drop('undecodable image', exc)
            return None

    def _pose(self, message, image, box, keyframe=False):
        """Landmarks and pose of a frame; a keyframe's (kept) get the refinement and mirror."""
        camera = self.camera_for(image)
        detection, estimate = detect_and_solve(image, camera, self.detector, self.template,
                                               self.pose_config, box, keyframe, keyframe)
        return Posed(message, image, detection, estimate, camera)

    # -- keyframes ---------------------------------------------------------------------------

    def start(self, posed, saved):
        """
        Run the keyframes on a thread of their own until ``close``.

        ``posed(PosedKeyframe)`` follows every keyframe the detector saw, ``saved()`` every
        flush that had keyframes to write.
        """
        self._saved = saved
        self._thread = threading.Thread(target=self._work, args=(posed,), name='keyframes',
                                        daemon=True)
        self._thread.start()

    def close(self):
        """Stop the keyframe thread, whatever still waits, then flush what it added."""
        with self._ready:
            self._stopping = True
            self._ready.notify()
        if self._thread is not None:
            self._thread.join()
        self._keep(catch_up=False)

    def _work(self, posed):
        """Run keyframes in arrival order, and the session's periodic work (keyframe thread)."""
        pacer = Pacer(SESSION_PERIOD_S, PERIODIC_SHARE, self._clock, time.thread_time)
        while True:
            with self._ready:
                self._ready.wait_for(lambda: self._stopping or self._runnable(),
                                     KEYFRAME_IDLE_S)
                if self._stopping:
                    return
                keyframe = self._waiting.popleft() if self._runnable() else None
            try:
                result = self.register_keyframe(*keyframe) if keyframe else None
                if result is not None:
                    posed(result)
                pacer.run_if_due(self._keep)
            except Exception as exc:  # noqa: B902 - a bug must not silently end the thread
                self._drop('keyframe failed', exc)
                self._logger.error(f'keyframe failed: {traceback.format_exc()}')

    def _runnable(self):
        return bool(self._waiting) and self.camera_settled()

    def _keep(self, catch_up=True):
        """Write the session, said to ``saved``, and queue what it holds that never came."""
        if self.flush() and self._saved is not None:
            self._saved()
        if catch_up:
            self.catch_up()

    def register_keyframe(self, stamp, message=None):
        """
        Pose keyframe ``stamp`` and record it when registered; None (counted) if unreadable.

        Its pixels are its message's, else read from the session. The live head box seeds the
        detector: the frame is searched only when the head is not there.
        """
        self.keyframes += 1
        relative = keyframe_file(stamp)
        if message is not None:
            image = self._decoded(message)
        else:
            try:
                image = read_image(self.root / relative)
            except (OSError, SessionError) as exc:
                self._drop('keyframe not readable', exc)
                return None
        if image is None:
            return None
        frame = self._pose(message, image, self.box, keyframe=True)
        detection, estimate, camera = frame.detection, frame.estimate, frame.camera
        report = {'stamp_ns': stamp, 'file_path': relative, **estimate.to_json(),
                  'problem': None if estimate.registered else
                  ('no_head' if not detection.usable else 'no_pose')}
        recorded = estimate.registered and self._record(relative, detection, estimate, camera,
                                                        stamp)
        self.registered += recorded
        return PosedKeyframe(report, estimate, camera, recorded)

    # -- the session -------------------------------------------------------------------------

    def refined_poses(self):
        """
        Return the keyframe poses (R, t) the trainer refined, once per new refinement; or None.

        The trainer freezes the keyframes into ``training_transforms.json`` and bundle-adjusts
        their cameras in place before stage 1 (``capture.refine``); the file says so when done.
        """
        path = self.root / TRAINING_TRANSFORMS
        try:
            changed = path.stat().st_mtime_ns
            if changed == self._refined_seen:
                return None
            self._refined_seen = changed
            transforms = read_transforms(path)
        except (OSError, SessionError):  # none yet (or gone): nothing to send
            return None
        if 'pose_refinement' not in transforms.meta.get('head_capture', {}):
            return None
        return [c2w_opengl_to_w2c(f.c2w) for f in transforms.frames if f.c2w is not None]

    def _open(self):
        """Return the session already in ``root`` (given a head volume if it had none), or None."""
        if not (self.root / TRANSFORMS_FILE).is_file():
            return None
        try:
            session = Session.load(self.root)
        except SessionError as exc:
            raise SessionError(f'{self.root} holds an unreadable session ({exc}); choose '
                               'another session_dir') from exc
        self._logger.info(f'continuing the session in {self.root}: {len(session.frames)} '
                          'registered keyframes')
        if keep_in_session(session, self.volume):
            self._logger.info('the session had no head volume: it now holds the one its '
                              'keyframes are cut to')
        return session

    def _record(self, relative, detection, estimate, camera, stamp):
        """
        Add a registered keyframe to the session; False (counted) if it cannot be.

        Its mask (and landmarks) are written now, transforms.json at the next ``flush``.
        """
        try:
            if not (self.root / relative).is_file():  # the selector writes before publishing
                raise SessionError(f'{relative} is not in the session: is keyframe_selector '
                                   'writing to the same session_dir?')
            if self.session is None:
                self.session = Session.create(self.root, camera, meta={
                    'head_capture': {'poses': 'head landmarks + RANSAC PnP, live'},
                    HEAD_VOLUME: self.volume.as_meta()})
            elif self.session.transforms.intrinsics != camera:
                self._drop('keyframe from another camera', f"{camera} vs the session's")
                return False
            c2w, pose = pose_record(estimate)
            self.session.add_record(relative, c2w,
                                    keyframe_mask(detection, estimate, camera, self.volume),
                                    {'stamp_ns': stamp, **pose})
            if estimate.registered:  # what the trainer's pose refinement reads
                self.session.write_landmarks(len(self.session.frames) - 1, detection.landmarks,
                                             detection.sigma, detection.visible)
        except (OSError, SessionError) as exc:
            self._drop('keyframe not recorded', exc)
            return False
        self.changed = True
        return True

    def flush(self):
        """Write transforms.json if keyframes were recorded since; say whether any were."""
        if not self.changed:
            return False
        self.changed = False
        try:
            self.session.save()
        except (OSError, SessionError) as exc:
            self.changed = True  # kept in memory: the next flush tries again
            self._drop('transforms.json not written', exc)
        return True
