"""
The memory a process and everything it started hold, sampled from /proc while they run.

The demo runs six processes and a trainer under one command: what a user's machine must hold
is their sum at its highest. Two sums: resident (RSS, what ``top`` shows per process, counting
shared libraries once in every process that maps them) and proportional (PSS, each shared page
split between its users, so the processes' PSS add up to what they take together). Linux only;
elsewhere the peaks stay None.
"""

import os
from pathlib import Path
import threading

MIB = 2 ** 20


def descendants(pid):
    """Return the ids of every process under ``pid`` (children, theirs, and so on)."""
    children = {}
    for entry in os.scandir('/proc'):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, 'stat').read_bytes()
        except OSError:  # it ended while we looked
            continue
        # The name (field 2) may hold spaces and brackets: the parent id is after its last ')'.
        parent = int(stat[stat.rindex(b')') + 2:].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def process_memory(pid):
    """Return (RSS, PSS) of one process in MiB; zeros once it has ended."""
    try:
        text = Path(f'/proc/{pid}/smaps_rollup').read_text()
    except OSError:
        return 0.0, 0.0
    values = {line.split(':')[0]: int(line.split()[1]) * 1024 / MIB
              for line in text.splitlines()[1:] if line.split(':')[0] in ('Rss', 'Pss')}
    return values.get('Rss', 0.0), values.get('Pss', 0.0)


class PeakMemory:
    """
    Sample a process tree's memory about every ``interval_s`` in a thread; keep the peaks.

    Use as a context manager round the work; ``peaks()`` says the highest sums seen (MiB): of
    the whole tree's RSS and PSS, and of the process itself (its RSS) alone.
    """

    def __init__(self, pid=None, interval_s=1.0):
        self.pid = os.getpid() if pid is None else pid
        self.interval_s = interval_s
        self.tree_rss = self.tree_pss = self.process_rss = None
        self.samples = 0
        self._stop = threading.Event()
        self._thread = None

    def sample(self):
        """Read the tree's memory once and raise the peaks."""
        if not Path('/proc/self/smaps_rollup').is_file():
            return
        own = process_memory(self.pid)
        below = [process_memory(pid) for pid in descendants(self.pid)]
        rss = own[0] + sum(m[0] for m in below)
        pss = own[1] + sum(m[1] for m in below)
        self.tree_rss = max(self.tree_rss or 0.0, rss)
        self.tree_pss = max(self.tree_pss or 0.0, pss)
        self.process_rss = max(self.process_rss or 0.0, own[0])
        self.samples += 1

    def _run(self):
        self.sample()
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, name='peak-memory', daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.sample()

    def peaks(self):
        """Return the peaks in MiB (whole tree RSS and PSS, this process's RSS), rounded."""
        def mib(value):
            return None if value is None else round(value)

        return {'tree_rss_mib': mib(self.tree_rss), 'tree_pss_mib': mib(self.tree_pss),
                'process_rss_mib': mib(self.process_rss), 'samples': self.samples}
