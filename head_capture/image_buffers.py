"""
Keep freed image-sized buffers in the process for the next frame, instead of unmapping them.

glibc serves an allocation of more than 128 KB with a fresh ``mmap`` and unmaps it on
``free``: every 1280x720 frame a node takes from DDS, decodes or copies then costs some 700
page faults and the kernel zeroing 2.7 MB. A profile of a bare rclpy subscriber found most of
its time there (8.4 ms of CPU per frame; 3.2 ms with this). Raising the mmap threshold to
glibc's most (32 MB, a 4K RGB frame) puts these buffers on the heap, and the trim threshold
keeps up to a few frames' worth of freed heap for reuse. Elsewhere than glibc nothing changes.
"""

import ctypes
import ctypes.util

# mallopt parameters (glibc's malloc.h) and the values chosen.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20  # glibc refuses more than HEAP_MAX_SIZE / 2 = 32 MB on 64-bit
TRIM_THRESHOLD = 64 << 20


def reuse_image_buffers():
    """Set glibc's thresholds for this process; return False where the C library has no mallopt."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library('c')).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
