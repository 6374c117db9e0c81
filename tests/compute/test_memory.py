"""A step's process keeps the buffers it frees for reuse (glibc)."""

import subprocess
import sys

import pytest

PROBE = """
import ctypes, numpy as np
from serialoct.compute.memory import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
print(keep_freed_memory())
a = np.ones(2**21, np.float32)  # 8 MiB
mapped = libc.mallinfo2().hblkhd
del a
print(mapped < 2**23, libc.mallinfo2().arena >= 2**23)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_a_freed_buffer_of_megabytes_stays_in_the_heap_for_reuse():
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallinfo2  # noqa: B018 - glibc 2.33 and later
    except (OSError, AttributeError):
        pytest.skip("not glibc >= 2.33")
    lines = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout.split("\n")
    assert lines[0] == "True"
    assert lines[1] == "True True"  # served from the heap (not mapped), and still there once freed (not trimmed)
