"""glibc's malloc settings for a step's process: what they change, measured in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest

GLIBC = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")


def _off_and_on(setting: str, body: str, stream: str = "stdout") -> dict[str, str]:
    """What ``body`` prints in a fresh interpreter without and with ``setting()`` called first."""
    code = f"import sys\nfrom serialoct.compute.malloc import {setting}\nif sys.argv[1] == 'on':\n    assert {setting}()\n{body}"
    return {mode: getattr(subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, check=True), stream)
            for mode in ("off", "on")}


@GLIBC
def test_after_reuse_freed_memory_blocks_made_and_freed_again_and_again_touch_no_fresh_page():
    body = (
        "import resource, numpy as np\n"
        "np.ones(5 << 18, np.float32)\n"  # one 5 MB block first: its pages are fresh either way
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(20):\n"
        "    np.ones(5 << 18, np.float32)  # made, written and freed, as zstd's output buffer for each chunk\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
    )
    faults = {mode: int(out) for mode, out in _off_and_on("reuse_freed_memory", body).items()}
    assert faults["on"] < 100 < faults["off"]  # 20 blocks of 1,280 pages each, without it


@GLIBC
def test_after_one_arena_threads_working_outside_the_gil_allocate_from_a_single_arena():
    body = (
        "import ctypes, threading\n"
        "import numpy as np\n"
        "from scipy import ndimage\n"
        "v = np.random.default_rng(0).random((32, 128, 128), dtype=np.float32)\n"
        "def work():\n"
        "    for _ in range(5):\n"
        "        ndimage.gaussian_filter(v, 2.0)  # its line buffers are allocated without the GIL, as in the stack's pools\n"
        "threads = [threading.Thread(target=work) for _ in range(4)]\n"
        "[t.start() for t in threads]\n"
        "[t.join() for t in threads]\n"
        "ctypes.CDLL(None).malloc_stats()  # one 'Arena N:' block per arena, on stderr\n"
    )
    arenas = {mode: err.count("Arena ") for mode, err in _off_and_on("one_arena", body, "stderr").items()}
    assert arenas["on"] == 1 < arenas["off"]


@GLIBC
def test_a_per_slice_step_reuses_the_memory_of_the_slice_sized_arrays_it_frees():
    code = (
        "import argparse, resource, numpy as np\n"
        "from serialoct.steps.slice_step import begin\n"
        "begin(argparse.Namespace(use_gpu=False), ['use_gpu'])\n"
        "np.ones(100 << 18, np.float32)\n"  # one 100 MB array first: its pages are fresh either way
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(5):\n"
        "    np.ones(100 << 18, np.float32)  # a slice-sized intermediate, made, written and freed\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
    )
    faults = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert faults < 100  # 2,800 on this machine without the reuse (4 kB pages, some huge pages)
