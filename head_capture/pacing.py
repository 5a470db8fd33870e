"""
Periodic work whose cost grows with the session, kept to a bounded share of the time.

A live session rewrites ``transforms.json`` whole and sends every keyframe's pose and frustum
once a period. At a fixed period that work grows with the keyframes until it crowds out the
live poses (10% of the pose estimator after 7 minutes, measured). Paced by its own cost
it keeps to ``share`` of the time at any length, and runs at ``period_s`` while it is cheap.
Its cost is best read on the thread's own CPU clock (``time.thread_time``): wall time also counts
waiting for the GIL and for the disk to sync, which on a loaded machine can stretch a 1 s
period past 5 s without the work costing more.
"""

import time


class Pacer:
    """Runs periodic work every ``period_s``, or less often once it takes longer than a share."""

    def __init__(self, period_s, share, clock=time.monotonic, cost_clock=None):
        if period_s <= 0 or not 0 < share <= 1:
            raise ValueError(f'a pacer needs period_s > 0 and share in (0, 1], got '
                             f'{period_s} and {share}')
        self.period_s, self.share, self.clock = period_s, share, clock
        self.cost_clock = cost_clock or clock
        self.next_at = clock() + period_s

    def run_if_due(self, work):
        """Call ``work()`` if it is due; return whether it ran."""
        started = self.clock()
        if started < self.next_at:
            return False
        spent = self.cost_clock()
        work()
        self.next_at = started + self.period_for(self.cost_clock() - spent)
        return True

    def period_for(self, cost_s):
        """Return the time from a run's start to the next for work that took ``cost_s``."""
        return max(self.period_s, cost_s / self.share)
