"""
How ``head-capture up`` ends, and what it tells a shell: the exit code and a one-line reason.

A script, a robot supervisor or ``docker stop`` tells success from failure by the exit code
alone, so ``--until avatar`` exits 0 only when the avatar was made. Whatever ended the run
first decides: the avatar (made, refused, failed), a node that ended on its own, the
executor failing, a signal, the timeout. SIGTERM (``kill``, ``docker stop``, systemd, a
launcher) stops the graph as SIGINT (Ctrl-C) does: the signal only asks, and the graph is
taken down in order, children included.
"""

from contextlib import contextmanager
from dataclasses import dataclass
import signal
import threading
import time
from typing import Optional

# A node could not start (bad parameter, missing model): the user's to fix, as elsewhere.
CANNOT_START = 2
# The graph ran but failed: no avatar where one was the goal, a node or the executor ended.
FAILED = 1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """The first stop signal received (SIGINT or SIGTERM), if any."""

    def __init__(self):
        self.signal = None

    def __call__(self, signum, frame):
        """Note the signal; the run's loop sees it on its next look (no exception mid-work)."""
        self.signal = self.signal or signum


def signal_name(signum):
    """Return a signal's name (SIGTERM) for messages."""
    return signal.Signals(signum).name


@contextmanager
def stop_signals():
    """
    Yield a StopRequest that SIGINT and SIGTERM set while the block runs; restore the handlers.

    Only the main thread can take signals: elsewhere (a bench's thread) nothing is installed.
    """
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {signum: signal.signal(signum, request) for signum in STOP_SIGNALS}
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def one_line(text):
    """Return ``text`` on one line: a reason goes to a log or a shell as one line."""
    return ' '.join(part.strip() for part in str(text).splitlines() if part.strip())


@dataclass
class RunEnd:
    """
    What ended a graph's run; ``verdict`` turns it into an exit code and a reason.

    ``avatar`` is 'done' once the avatar was made, else why there is none (training refused
    or failed); ``broken`` says what broke the graph (a node that ended, the executor) and
    ``broken_code`` its exit code (CANNOT_START for a node that could not start);
    ``stopped_by`` the stop signal's number; ``timeout_s`` the timeout, when it ended the run.
    """

    goal_avatar: bool = False
    avatar: Optional[str] = None
    broken: Optional[str] = None
    broken_code: int = FAILED
    stopped_by: Optional[int] = None
    timeout_s: Optional[float] = None

    def verdict(self):
        """
        Return (exit code, one-line reason or None when it succeeded).

        With the avatar as the goal only the avatar is success. A signal is how a graph
        without a goal is meant to stop (0); it outranks a node that ended meanwhile, as
        Ctrl-C in a terminal reaches the nodes too. 128 + the signal's number for an avatar
        that a signal cut short, as a shell reports a process a signal ended.
        """
        prefix = 'no avatar: ' if self.goal_avatar else ''
        if self.goal_avatar and self.avatar == 'done':
            return 0, None
        if self.stopped_by is not None:
            if not self.goal_avatar:
                return 0, None
            return 128 + self.stopped_by, f'{prefix}stopped by {signal_name(self.stopped_by)}'
        if self.broken is not None:
            return self.broken_code, one_line(f'{prefix}{self.broken}')
        if not self.goal_avatar:
            return 0, None
        if self.avatar is not None:
            return FAILED, one_line(f'{prefix}{self.avatar}')
        if self.timeout_s is not None:
            return FAILED, f'{prefix}the {self.timeout_s:g} s timeout passed first'
        return FAILED, f'{prefix}the graph stopped'


def wait_for_end(done, alive, timeout_s, stop, report, poll_s=0.2):
    """
    Poll until ``done()``, not ``alive()``, a stop signal or ``timeout_s``; return which.

    The answer is 'done', 'ended', 'signal' or 'timeout'; a signal and the timeout are
    reported as they stop the run. ``done`` may be None (no goal: run until stopped).
    """
    started = time.monotonic()
    while True:
        if stop.signal is not None:
            report(f'stopping: {signal_name(stop.signal)}')
            return 'signal'
        if done is not None and done():
            return 'done'
        if not alive():
            return 'ended'
        if timeout_s is not None and time.monotonic() - started > timeout_s:
            report(f'stopping after {timeout_s:g} s')
            return 'timeout'
        time.sleep(poll_s)
