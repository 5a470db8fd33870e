"""
Keyframe selection: sharp, well-exposed frames spread over the capture.

Two selectors share one notion of "sharp enough": a frame's blur score against what the sharp
frames around it score (the same view seen a moment earlier or later), because the raw score
depends on the scene as much as on the blur.

- ``OnlineKeyframeSelector`` decides frame by frame with bounded memory, as the live node
  needs: time is cut into slots of at least ``min_interval_s`` (and, optionally, of enough
  image motion), and each slot yields its sharpest frame once it closes.
- ``select_spread`` is the offline choice of "the best N frames of this video, evenly spread"
  (the paper's 100 frames without motion blur): the sharpest sharp frame in each of N equal
  spans of time, with spans that are blurred throughout made up from the rest.
"""

from collections import deque
from dataclasses import dataclass, field, replace
import warnings

import cv2
from head_capture.capture.sharpness import BLUR_METHODS, blur_score, exposure_of, working_gray
from head_capture.capture.sources import StreamEndedEarly
import numpy as np

# What "a sharp frame here" scores: the 90th percentile of nearby scores. On the lego
# benchmark (bench/keyframes.py) the 75th let 5-10% blurred picks through at 50% bursty blur.
SHARP_PERCENTILE = 90.0


@dataclass
class KeyframeConfig:
    """Settings of both selectors (the ``keyframes`` section of the node config)."""

    min_interval_s: float = 0.25
    min_motion: float = 0.0
    sharpness_ratio: float = 0.7
    reference_window_s: float = 0.7
    max_keyframes: int = 0
    method: str = 'laplacian'
    long_side: int = 360

    def __post_init__(self):
        checks = {
            'min_interval_s must be >= 0': self.min_interval_s >= 0.0,
            'min_motion must be >= 0': self.min_motion >= 0.0,
            'sharpness_ratio must be in (0, 1]': 0.0 < self.sharpness_ratio <= 1.0,
            'reference_window_s must be > 0': self.reference_window_s > 0.0,
            'max_keyframes must be >= 0 (0: no limit)': self.max_keyframes >= 0,
            f'method must be one of {BLUR_METHODS}': self.method in BLUR_METHODS,
            'long_side must be >= 32': self.long_side >= 32,
        }
        failed = [message for message, ok in checks.items() if not ok]
        if failed:
            raise ValueError('invalid keyframe config: ' + '; '.join(failed))


@dataclass(frozen=True)
class Keyframe:
    """A selected frame and the scores it was selected on."""

    frame: object
    sharpness: float
    brightness: float


@dataclass(frozen=True)
class Decision:
    """The selector's verdict on one frame, and the keyframe a closed slot released."""

    status: str
    sharpness: float
    keyframe: Keyframe = None


class _MotionMeter:
    """Global image shift between consecutive frames, as a fraction of the image diagonal."""

    SIZE = (96, 54)

    def __init__(self):
        self._window = cv2.createHanningWindow(self.SIZE, cv2.CV_32F)
        self._previous = None

    def step(self, gray):
        thumb = cv2.resize(gray, self.SIZE, interpolation=cv2.INTER_AREA)
        previous, self._previous = self._previous, thumb
        if previous is None:
            return 0.0
        (dx, dy), _ = cv2.phaseCorrelate(previous, thumb, self._window)
        shift = float(np.hypot(dx, dy))
        # Sub-pixel estimates of identical frames are not exactly zero: ignore below 1/4 px.
        return shift / float(np.hypot(*self.SIZE)) if shift >= 0.25 else 0.0


class OnlineKeyframeSelector:
    """Per-frame keyframe decisions with bounded memory, for live streams."""

    # Scores kept for the reference, whatever the frame rate: 2 s at 250 frames/s.
    MAX_HISTORY = 512

    def __init__(self, config=None):
        self.config = config or KeyframeConfig()
        self._recent = deque(maxlen=self.MAX_HISTORY)
        self._motion = _MotionMeter()
        self._moved = 0.0
        self._slot_start = None
        self._candidate = None
        self.emitted = 0

    def update(self, frame):
        """Score ``frame``; return its status and any keyframe released by a closed slot."""
        cfg = self.config
        gray = working_gray(frame.image, cfg.long_side)
        self._moved += self._motion.step(gray)
        exposure, brightness = exposure_of(gray)
        score = blur_score(gray, cfg.method)
        released = None
        if self._slot_start is None:
            self._slot_start = frame.time_s
        elif (frame.time_s - self._slot_start >= cfg.min_interval_s
              and self._moved >= cfg.min_motion):
            released = self.flush()
            self._slot_start = frame.time_s
        if exposure != 'ok':
            return Decision(exposure, score, released)
        self._recent.append((frame.time_s, score))
        while frame.time_s - self._recent[0][0] > cfg.reference_window_s:
            self._recent.popleft()
        reference = np.percentile([s for _, s in self._recent], SHARP_PERCENTILE)
        if score < cfg.sharpness_ratio * reference:
            return Decision('blurred', score, released)
        if self._candidate is None or score > self._candidate.sharpness:
            self._candidate = Keyframe(frame, score, brightness)
        return Decision('sharp', score, released)

    def flush(self):
        """Release the best frame of the open slot (call at the end of a stream)."""
        candidate, self._candidate = self._candidate, None
        budget = self.config.max_keyframes
        if candidate is None or (budget and self.emitted >= budget):
            return None
        self.emitted += 1
        self._moved = 0.0
        return candidate


def select_spread(times, scores, usable, count, sharpness_ratio=0.7, reference_window_s=0.7):
    """
    Return indices, in time order, of ``count`` sharp frames spread evenly over time.

    Each of ``count`` equal spans of time gives its sharpest sharp frame. A span with none
    (blurred throughout) gives nothing, and the shortfall is filled with the sharp frames
    farthest in time from those already chosen, so the picks stay spread.
    """
    times, scores = np.asarray(times, float), np.asarray(scores, float)
    if count < 1:
        raise ValueError(f'count must be >= 1, got {count}')
    frame_interval = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    window = max(5, int(round(reference_window_s / max(frame_interval, 1e-6))))
    sharp = sharp_mask(scores, usable, sharpness_ratio, window)
    candidates = np.flatnonzero(sharp)
    if candidates.size <= count:
        return candidates
    edges = np.linspace(times[0], times[-1], count + 1)
    span = np.clip(np.searchsorted(edges, times, side='right') - 1, 0, count - 1)
    order = candidates[np.lexsort((scores[candidates], span[candidates]))]
    picks = order[np.r_[span[order][1:] != span[order][:-1], True]]
    return np.sort(_fill_farthest(times, candidates, picks, count))


def sharp_mask(scores, usable, ratio, window):
    """
    Mark usable frames whose score reaches ``ratio`` of what sharp frames nearby score.

    "What sharp frames score" is a high percentile of the usable scores in a window of
    ``window`` frames around each frame: it stays a sharp frame's score while half of the
    window or more is blurred, where the median would already sink. The window must span more
    than a blur burst and less than a change of scene. Walking round a head the background
    changes fast: at 2 s, a bare wall coming into view after a picture got a third of the
    sharp frames of a synthetic capture called blurred; 0.7 s (still longer than a 0.5 s
    blur burst) lets through all but a tenth of them (bench/coverage.py).
    """
    scores = np.asarray(scores, float)
    usable = np.asarray(usable, bool)
    window = min(window, len(scores))
    padded = np.pad(np.where(usable, scores, np.nan), (window // 2, window - 1 - window // 2),
                    constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, window)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)  # windows with no usable frame
        reference = np.nanpercentile(windows, SHARP_PERCENTILE, axis=1)
    return usable & (scores >= ratio * reference)


def _fill_farthest(times, candidates, picks, count):
    """Add the candidates farthest in time from the picks until there are ``count``."""
    picks = list(picks)
    distance = np.min(np.abs(times[candidates, None] - times[picks][None, :]), axis=1)
    while len(picks) < count:
        best = int(np.argmax(distance))
        picks.append(candidates[best])
        distance = np.minimum(distance, np.abs(times[candidates] - times[candidates[best]]))
    return np.array(picks, dtype=int)


@dataclass
class Selection:
    """Keyframes chosen from a source, with what went wrong on the way (nothing is lost)."""

    keyframes: list = field(default_factory=list)
    frames_scored: int = 0
    frames_unusable: int = 0
    warnings: list = field(default_factory=list)


def select_offline(source, count, config=None, progress=None):
    """
    Pick ``count`` sharp frames evenly spread over a replayable source (two passes).

    Pass one scores every frame and keeps only the scores; pass two decodes the source again
    and keeps the chosen frames, so memory holds ``count`` images, not the whole video.
    ``progress`` is called once per frame read in either pass.
    """
    cfg = config or KeyframeConfig()
    if not source.replayable:
        raise ValueError('a live stream cannot be read twice; use OnlineKeyframeSelector')
    selection = Selection()
    rows = []
    for frame in read_to_end(source, selection.warnings, progress):
        gray = working_gray(frame.image, cfg.long_side)
        exposure, brightness = exposure_of(gray)
        rows.append((frame.index, frame.time_s, blur_score(gray, cfg.method),
                     brightness, exposure == 'ok'))
    if not rows:
        return selection
    index, times, scores, brightness, usable = (np.array(col) for col in zip(*rows))
    selection.frames_scored = len(rows)
    selection.frames_unusable = int((~usable.astype(bool)).sum())
    picks = select_spread(times, scores, usable, count, cfg.sharpness_ratio,
                          cfg.reference_window_s)
    wanted = dict(zip(index[picks].tolist(), picks.tolist()))
    for frame in read_to_end(source, [], progress):
        row = wanted.get(frame.index)
        if row is not None:
            selection.keyframes.append(Keyframe(frame, scores[row], brightness[row]))
    return selection


def select_online(source, count, config=None, progress=None):
    """
    Take up to ``count`` keyframes from a live stream as the frames arrive.

    A live capture ends when the budget is met, the stream ends, or the user presses Ctrl-C;
    in every case the keyframes taken so far are returned.
    """
    selector = OnlineKeyframeSelector(replace(config or KeyframeConfig(), max_keyframes=count))
    selection = Selection()
    try:
        for frame in read_to_end(source, selection.warnings, progress):
            decision = selector.update(frame)
            selection.frames_scored += 1
            selection.frames_unusable += decision.status in ('dark', 'bright')
            if decision.keyframe is not None:
                selection.keyframes.append(decision.keyframe)
            if selector.emitted >= count:
                return selection
    except KeyboardInterrupt:
        selection.warnings.append(f'capture stopped by the user after '
                                  f'{selection.frames_scored} frames')
    last = selector.flush()
    if last is not None:
        selection.keyframes.append(last)
    return selection


def read_to_end(source, warnings, progress):
    """Yield the source's frames; an early end becomes a warning, the frames are kept."""
    try:
        for frame in source:
            if progress is not None:
                progress()
            yield frame
    except StreamEndedEarly as exc:
        warnings.append(str(exc))
