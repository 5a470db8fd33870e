"""Keyframe selection on clips with known blurred frames."""

from head_capture.capture.keyframes import (KeyframeConfig, OnlineKeyframeSelector,
                                            select_offline, select_online, select_spread)
from head_capture.capture.sources import Frame, open_source
from head_capture.video_writer import write_video
import numpy as np
import pytest


def frames_of(clip):
    return [Frame(n, n / clip.fps, image) for n, image in enumerate(clip.frames)]


def test_spread_picks_the_sharpest_frame_of_each_span():
    times = np.arange(12) / 10
    scores = np.array([9, 10, 9.5, 9.8, 20, 9.1, 9.9, 9.6, 10.2, 9.4, 9.7, 9.3])
    usable = np.ones(12, bool)
    usable[4] = False
    picks = select_spread(times, scores, usable, 3)
    assert picks.tolist() == [1, 6, 8]


def test_spread_drops_a_span_that_is_blurred_throughout():
    times = np.arange(30) / 30
    scores = np.full(30, 10.0)
    scores[10:20] = 2.0
    picks = select_spread(times, scores, np.ones(30, bool), 3, reference_window_s=1.0)
    # The blurred middle span gives nothing; the sharp frame farthest from the two picks
    # (at the ends of their spans) makes up the count.
    assert len(picks) == 3
    assert all(p < 10 or p >= 20 for p in picks)


def test_spread_edge_cases():
    assert select_spread([0.0], [1.0], [False], 5).size == 0
    with pytest.raises(ValueError, match='count must be'):
        select_spread([0.0, 1.0], [1.0, 2.0], [True, True], 0)


def test_online_selector_prefers_sharp_frames(sample_clip):
    selector = OnlineKeyframeSelector(KeyframeConfig(min_interval_s=0.2))
    chosen = []
    for frame in frames_of(sample_clip):
        decision = selector.update(frame)
        assert decision.status in ('sharp', 'blurred')
        if decision.keyframe:
            chosen.append(decision.keyframe.frame)
    chosen.append(selector.flush().frame)
    indices = [f.index for f in chosen]
    blurred = set(sample_clip.blurred.tolist())
    assert len(chosen) >= 10
    assert sum(i not in blurred for i in indices) / len(indices) >= 0.9
    times = np.array([f.time_s for f in chosen])
    assert np.diff(times).min() > 0.0
    assert times[0] < 0.5 and times[-1] > 2.5


def test_online_memory_stays_bounded(sample_clip):
    selector = OnlineKeyframeSelector(KeyframeConfig(reference_window_s=0.5))
    for repeat in range(3):
        for frame in frames_of(sample_clip):
            selector.update(Frame(frame.index + 90 * repeat, frame.time_s + 3 * repeat,
                                  frame.image))
    assert len(selector._recent) == 16
    fast = OnlineKeyframeSelector()
    for n in range(2000):
        fast.update(Frame(n, n / 1000.0, sample_clip.frames[n % 90]))
    assert len(fast._recent) == OnlineKeyframeSelector.MAX_HISTORY


def test_online_rejects_dark_frames_and_respects_budget(sample_clip):
    selector = OnlineKeyframeSelector(KeyframeConfig(min_interval_s=0.0, max_keyframes=3))
    dark = (sample_clip.frames[0] // 12).astype(np.uint8)
    assert selector.update(Frame(0, 0.0, dark)).status == 'dark'
    released = [selector.update(frame).keyframe for frame in frames_of(sample_clip)]
    assert sum(k is not None for k in released) == 3
    assert selector.flush() is None


def test_online_waits_for_motion(sample_clip):
    still = [Frame(n, n / 30, sample_clip.frames[0]) for n in range(60)]
    selector = OnlineKeyframeSelector(KeyframeConfig(min_interval_s=0.1, min_motion=0.05))
    assert not any(selector.update(frame).keyframe for frame in still)
    moving = OnlineKeyframeSelector(KeyframeConfig(min_interval_s=0.1, min_motion=0.05))
    assert sum(moving.update(f).keyframe is not None for f in frames_of(sample_clip)) >= 3


def test_offline_selection_from_a_video(tmp_path, sample_clip):
    video = tmp_path / 'clip.mp4'
    write_video(video, sample_clip.frames, sample_clip.fps)
    with open_source(video) as source:
        selection = select_offline(source, 15)
    indices = [k.frame.index for k in selection.keyframes]
    assert selection.frames_scored == len(sample_clip.frames)
    assert 13 <= len(indices) <= 15 and indices == sorted(indices)
    assert not set(indices) & set(sample_clip.blurred.tolist())
    assert indices[0] < 10 and indices[-1] > 80
    assert selection.warnings == []


def test_online_selection_from_a_stream(tmp_path, sample_clip):
    video = tmp_path / 'clip.mp4'
    write_video(video, sample_clip.frames, sample_clip.fps)
    with open_source(video) as source:
        selection = select_online(source, 5, KeyframeConfig(min_interval_s=0.1))
    assert len(selection.keyframes) == 5


def test_offline_needs_a_replayable_source():
    class Live:
        replayable = False
    with pytest.raises(ValueError, match='cannot be read twice'):
        select_offline(Live(), 10)


def test_online_selection_keeps_its_keyframes_when_the_user_stops(sample_clip):
    class Interrupted:
        replayable = False

        def __iter__(self):
            yield from frames_of(sample_clip)[:45]
            raise KeyboardInterrupt

    selection = select_online(Interrupted(), 100, KeyframeConfig(min_interval_s=0.1))
    assert len(selection.keyframes) >= 5
    assert selection.warnings == ['capture stopped by the user after 45 frames']
