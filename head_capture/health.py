"""
What a live component handled and dropped, by cause: the numbers behind /diagnostics.

Bad input never stops a node; it is dropped and counted here. ``drop`` says whether a cause
is new, so the node logs each cause once instead of once per frame. A node's threads (the
executor's, pose_estimator's keyframes) may count at once.
"""

from collections import Counter, deque
import threading
import time


class Health:
    """Counts of handled items and of drops by cause, and the recent handling rate."""

    # Drops above this share of everything seen make the status a warning.
    WARN_SHARE = 0.2

    def __init__(self, window_s=5.0, clock=time.monotonic):
        self.handled = 0
        self.dropped = Counter()
        self.notes = {}
        self._times = deque()
        self._window_s, self._clock = window_s, clock
        self._lock = threading.Lock()

    def ok(self):
        """Count one item handled."""
        with self._lock:
            self.handled += 1
            now = self._clock()
            self._times.append(now)
            while self._times and now - self._times[0] > self._window_s:
                self._times.popleft()

    def drop(self, cause, detail=''):
        """Count one item dropped for ``cause``; True the first time this cause is seen."""
        with self._lock:
            first = cause not in self.dropped
            self.dropped[cause] += 1
            if detail:
                self.notes[cause] = str(detail)[:200]
        return first

    @property
    def rate_hz(self):
        """Return items handled per second over the recent window."""
        now = self._clock()
        with self._lock:
            recent = sum(now - t <= self._window_s for t in self._times)
        return recent / self._window_s

    @property
    def warning(self):
        """Say whether drops are a large share of what was seen."""
        with self._lock:
            dropped = sum(self.dropped.values())
        total = self.handled + dropped
        return total > 0 and dropped > self.WARN_SHARE * total

    def values(self):
        """Return the counters as strings, the way DiagnosticStatus carries them."""
        out = {'handled': str(self.handled), 'rate_hz': f'{self.rate_hz:.2f}'}
        with self._lock:
            out['dropped'] = str(sum(self.dropped.values()))
            for cause, count in sorted(self.dropped.items()):
                out[f'dropped: {cause}'] = str(count)
            for cause, note in sorted(self.notes.items()):
                out[f'last {cause}'] = note
        return out
