"""reuse_image_buffers: frame-sized buffers freed and taken again cost no fresh page faults."""

import subprocess
import sys

import pytest

# Three 1280x720 RGB buffers alive at once (a frame taken from DDS, its bytes, its pixels),
# freed together, 20 times over; prints the minor page faults that took.
_FRAMES = """
import resource, sys
from head_capture.image_buffers import reuse_image_buffers
if sys.argv[1] == 'tuned' and not reuse_image_buffers():
    raise SystemExit('no mallopt')
size = 1280 * 720 * 3
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    frames = [bytes(bytearray(size)) for _ in range(3)]
    del frames
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
PAGES_PER_ROUND = 6 * 1280 * 720 * 3 // 4096  # three frames and their bytearrays


def _page_faults(mode):
    done = subprocess.run([sys.executable, '-c', _FRAMES, mode], capture_output=True,
                          text=True, timeout=60)
    if done.returncode and 'no mallopt' in done.stderr:
        pytest.skip('the C library has no mallopt (not glibc)')
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_freed_frames_are_reused_rather_than_mapped_again():
    tuned, as_is = _page_faults('tuned'), _page_faults('as_is')
    # Tuned, the first round maps the pages and the other 19 reuse them.
    assert tuned < 3 * PAGES_PER_ROUND, (tuned, as_is)
    # Without it glibc unmaps the freed frames and every round faults them in again.
    assert as_is > 5 * PAGES_PER_ROUND, (tuned, as_is)
