"""Let a step's process reuse the memory it frees instead of returning it to the kernel (glibc's allocator).

A step allocates and frees buffers of the same few megabytes over and over (a
decoded tile, an encoded shard, a block of planes). With glibc's defaults each
buffer of 128 KiB to 32 MiB may be mapped from the kernel and unmapped when
freed, and free space at the top of the heap is given back: every new buffer
then faults in fresh pages that the kernel zeroes first (``clear_page``, 11 %
of a ``medium`` mosaic step's CPU, where decoding a tile copies it into a new
array). With buffers up to :data:`MMAP_THRESHOLD` served from the heap and the
heap never trimmed, freed pages are reused as they are. A step is a short-lived
process, and the pages it keeps are those of its own peak.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

#: Largest allocation served from the heap (glibc's own ceiling for this setting); larger ones are mapped.
MMAP_THRESHOLD = 32 * 1024 * 1024
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_NEVER = 2**31 - 1  # mallopt takes an int: about 2 GiB of free heap before any is returned


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds for this process; False where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _NEVER))
