"""The per-slice reconstruction workflow also survives SIGKILLs: rerun the same command, get the same slices."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import time

import pytest

KILLS = 5
MAX_ATTEMPTS = 15
KILL_SEED = 7
KILL_WINDOW = (0.15, 0.6)  # fractions of an uninterrupted run


def _reconstruct_command(mosaics, out):
    """The reconstruction workflow run as its own process, as a user's command would."""
    return [sys.executable, "-m", "serialoct", "reconstruct", "--input", str(mosaics), "--output", str(out), "--resolution", "20",
            "--cores", "2"]


@pytest.mark.slow
def test_killed_reconstruction_resumes_to_identical_slices(reference_run, harness, tmp_path):
    mosaics = reference_run.out
    reference = tmp_path / "reference"
    started = time.perf_counter()
    subprocess.run(_reconstruct_command(mosaics, reference), check=True, capture_output=True)
    seconds = time.perf_counter() - started
    expected = harness.outputs(reference)

    out, rng, kills, attempts = tmp_path / "out", random.Random(KILL_SEED), 0, 0
    while kills < KILLS and attempts < MAX_ATTEMPTS:
        attempts += 1
        if harness.killed_run(_reconstruct_command(mosaics, out), rng.uniform(*KILL_WINDOW) * seconds):
            kills += 1
        else:
            shutil.rmtree(out)  # the resumed run finished before the kill: start a new episode from nothing
    assert kills >= KILLS

    done = subprocess.run(_reconstruct_command(mosaics, out), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    outputs = harness.outputs(out)
    def stable(k: str) -> bool:  # metrics hold timings; the report and its readme the date of the run
        return not (k.endswith("metrics.json") or "_quality_report." in k or k.startswith("README/"))

    assert {k: v for k, v in outputs.items() if stable(k)} == {k: v for k, v in expected.items() if stable(k)}
    assert harness.temporaries(out) == []
