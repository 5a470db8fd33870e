"""How ``head-capture up`` ends: exit codes and reasons, and stop signals (no ROS)."""

import os
import signal

from head_capture.supervisor import (CANNOT_START, FAILED, RunEnd, stop_signals,
                                     wait_for_end)


def test_with_the_avatar_as_the_goal_only_the_avatar_is_success():
    refused = 'no registered keyframes yet in S'
    cases = [
        (RunEnd(True, 'done'), 0, None),
        (RunEnd(True, refused), FAILED, f'no avatar: {refused}'),
        (RunEnd(True, 'trainer exited with 2: error: x\n(log: L)'), FAILED,
         'no avatar: trainer exited with 2: error: x (log: L)'),
        (RunEnd(True, broken='pose_estimator ended (exit code -9)'), FAILED,
         'no avatar: pose_estimator ended (exit code -9)'),
        (RunEnd(True, broken='pose_estimator ended (exit code 2)', broken_code=CANNOT_START),
         CANNOT_START, 'no avatar: pose_estimator ended (exit code 2)'),
        (RunEnd(True, timeout_s=30.0), FAILED, 'no avatar: the 30 s timeout passed first'),
        (RunEnd(True, stopped_by=signal.SIGTERM), 143, 'no avatar: stopped by SIGTERM'),
        # Ctrl-C in a terminal reaches the nodes too: the one that ended first is no failure.
        (RunEnd(True, broken='keyframe_selector ended (exit code 0)',
                stopped_by=signal.SIGINT), 130, 'no avatar: stopped by SIGINT'),
        (RunEnd(True, 'done', stopped_by=signal.SIGINT), 0, None),
        # Without a goal a signal or the timeout is how the graph is meant to stop...
        (RunEnd(stopped_by=signal.SIGTERM), 0, None),
        (RunEnd(timeout_s=8.0), 0, None),
        # ...and a node that ended on its own is a failure still.
        (RunEnd(broken='pose_estimator ended (exit code -9)'), FAILED,
         'pose_estimator ended (exit code -9)'),
    ]
    for end, code, reason in cases:
        assert end.verdict() == (code, reason), end


def test_sigterm_asks_the_run_to_stop_as_sigint_does():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    lines = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        with stop_signals() as stop:
            os.kill(os.getpid(), signum)  # handled before kill returns: the same thread
            assert stop.signal == signum
            os.kill(os.getpid(), signal.SIGINT)  # a second one does not change the first
            assert wait_for_end(None, lambda: True, None, stop, lines.append) == 'signal'
            assert stop.signal == signum
    assert lines == ['stopping: SIGTERM', 'stopping: SIGINT']
    assert {s: signal.getsignal(s) for s in before} == before


def test_the_first_end_decides():
    with stop_signals() as stop:
        assert wait_for_end(lambda: True, lambda: False, 0.0, stop, print) == 'done'
        assert wait_for_end(None, lambda: False, 0.0, stop, print) == 'ended'
        lines = []
        assert wait_for_end(lambda: False, lambda: True, 0.05, stop, lines.append,
                            poll_s=0.01) == 'timeout'
        assert lines == ['stopping after 0.05 s']
