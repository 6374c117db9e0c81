"""A step's busy threads never exceed ``SERIALOCT_MAX_CPUS``: its CPU use is sampled while it runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

SAMPLE_S = 0.1
WINDOW_S = 1.0  # CPU seconds per wall second over this window: the number of busy threads
TOLERANCE = 0.25  # start-up bursts of the interpreter and short overlaps between threads
TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of ``pid`` (the process's own counters include its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def busy_threads(command: list[str], env: dict) -> tuple[float, int]:
    """Largest CPU-seconds-per-second over any window while ``command`` runs, and its exit status."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = []
    while proc.poll() is None:
        try:
            samples.append((time.perf_counter(), _cpu_seconds(proc.pid)))
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(SAMPLE_S)
    proc.wait()
    n = min(max(1, int(round(WINDOW_S / SAMPLE_S))), len(samples) - 1)  # a run shorter than the window: all of it
    rates = [(samples[i + n][1] - samples[i][1]) / (samples[i + n][0] - samples[i][0]) for i in range(len(samples) - n)]
    return max(rates, default=0.0), proc.returncode


@pytest.mark.skipif(not os.path.exists("/proc/self/stat") or (os.cpu_count() or 1) < 2, reason="needs /proc and two cores")
def test_a_step_capped_at_one_cpu_keeps_one_thread_busy(small_grid, tmp_path):
    command = [sys.executable, "-m", "serialoct", "step", "stitch_3d_with_refinement", "--input", str(small_grid),
               "--output", str(tmp_path / "s.ome.zarr"), "--slice", "03", "--metrics", str(tmp_path / "m.json"), "--no-use_gpu"]
    peak, status = busy_threads(command, {**os.environ, "SERIALOCT_MAX_CPUS": "1"})
    assert status == 0
    assert peak <= 1 + TOLERANCE, f"{peak:.2f} CPUs busy under a cap of 1"
