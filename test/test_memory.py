"""The peak memory of a process tree, as the demo reports it."""

import os
import subprocess
import sys
import time

from head_capture.memory import descendants, PeakMemory, process_memory
import pytest

pytestmark = pytest.mark.skipif(not os.path.isfile('/proc/self/smaps_rollup'),
                                reason='reads /proc (Linux)')

# A grandchild (under a shell kept by '; true') that holds 200 MiB, says so, and waits.
HOLD = ('import sys; held = b"x" * (200 * 2 ** 20); print("holding", flush=True); '
        'sys.stdin.read()')


def test_the_peak_counts_every_process_below_this_one():
    shell = subprocess.Popen(['sh', '-c', f'{sys.executable} -c "$0"; true', HOLD],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        with PeakMemory(interval_s=0.05) as memory:
            assert shell.stdout.readline() == 'holding\n'
            below = descendants(os.getpid())
            assert shell.pid in below and len(descendants(shell.pid)) == 1
            held = process_memory(descendants(shell.pid)[0])
            assert held[0] >= 200 and held[1] >= 190  # RSS, PSS
            time.sleep(0.3)
    finally:
        shell.stdin.close()
        shell.wait(10)
    peaks = memory.peaks()
    assert peaks['samples'] >= 3
    # The tree held this process and the grandchild's 200 MiB; this process alone did not.
    assert peaks['tree_rss_mib'] >= peaks['process_rss_mib'] + 200
    assert peaks['tree_pss_mib'] >= 200
    assert peaks['process_rss_mib'] >= process_memory(os.getpid())[0] * 0.9
    assert process_memory(shell.pid) == (0.0, 0.0)  # ended: nothing
