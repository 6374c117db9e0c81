"""A killed run resumes by rerunning the same command, and ends bit-identical to an uninterrupted run."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serialoct.io.atomic import atomic_output, remove_stale_temporaries

MIN_KILLS = 5
MAX_ATTEMPTS = 12
KILL_SEED = 20240611
# Kill moments as fractions of an uninterrupted run: after Python and Snakemake have
# started (~1 s of a ~4-5 s run) and before a resumed run can finish the remaining work.
KILL_WINDOW = (0.15, 0.5)


def test_five_sigkills_then_a_plain_rerun_give_outputs_identical_to_an_uninterrupted_run(reference_run, harness, tmp_path):
    raw, out = reference_run.raw, tmp_path / "out"
    before = harness.tree(raw)
    rng = random.Random(KILL_SEED)
    kills = attempts = 0
    debris_seen = []
    while kills < MIN_KILLS and attempts < MAX_ATTEMPTS:
        attempts += 1
        killed = harness.killed_run(harness.command(raw, out), rng.uniform(*KILL_WINDOW) * reference_run.seconds)
        kills += killed
        if out.exists():
            debris_seen += harness.temporaries(out)
        if not killed:
            shutil.rmtree(out)  # the resumed run finished before the kill (a faster machine now): a new episode from nothing
    assert kills >= MIN_KILLS, f"only {kills} of {attempts} runs were still running when killed"

    done = subprocess.run(harness.command(raw, out), capture_output=True, text=True)  # the same command, nothing cleaned by hand

    assert done.returncode == 0, done.stderr[-3000:]
    assert harness.outputs(out) == reference_run.digests
    assert harness.temporaries(out) == []
    assert not (out / "failed").exists()
    assert harness.tree(raw) == before  # inputs are never modified


def test_a_rerun_after_completion_does_nothing_and_changes_nothing(reference_run, harness):
    stamp = (reference_run.out / "shifts_xy.csv").stat().st_mtime_ns
    done = subprocess.run(harness.command(reference_run.raw, reference_run.out), capture_output=True, text=True)
    assert done.returncode == 0 and "Nothing to be done" in done.stderr
    assert harness.outputs(reference_run.out) == reference_run.digests
    assert (reference_run.out / "shifts_xy.csv").stat().st_mtime_ns == stamp


def test_a_killed_writer_leaves_only_a_hidden_temporary_that_the_owner_removes(tmp_path):
    code = (
        "import os, signal, sys\n"
        "from serialoct.io.atomic import atomic_output\n"
        "with atomic_output(sys.argv[1]) as tmp:\n"
        "    tmp.mkdir(); (tmp / 'zarr.json').write_text('{}')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    final = tmp_path / "mosaic_grid_3d_z01.ome.zarr"
    subprocess.run([sys.executable, "-c", code, str(final)])
    (tmp_path / "aips").mkdir()
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "aips" / "aip_z01.png")])

    left = sorted(p.name for p in tmp_path.rglob(".*"))
    assert not final.exists() and len(left) == 2 and all(".tmp-" in name for name in left)
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == left
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["aips"]


def test_the_next_run_removes_the_debris_of_a_mosaic_write_killed_midway(reference_run, harness, tmp_path):
    out = Path(shutil.copytree(reference_run.out, tmp_path / "out", symlinks=True))
    shutil.rmtree(out / "mosaic_grid_3d_z01.ome.zarr")  # the job that was killed never finished
    half = out / ".mosaic_grid_3d_z01.ome.zarr.tmp-4242-0badc0de"
    shutil.copytree(reference_run.out / "mosaic_grid_3d_z02.ome.zarr", half)  # looks like a store, is not one of ours
    (out / "aips").mkdir()
    (out / "aips" / ".aip_z01.png.tmp-4242-0badc0de").write_bytes(b"\x89PNG half")

    done = subprocess.run(harness.command(reference_run.raw, out), capture_output=True, text=True)

    assert done.returncode == 0, done.stderr[-3000:]
    assert harness.temporaries(out) == []
    assert harness.outputs(out) == reference_run.digests


def test_stale_temporary_cleanup_touches_nothing_but_temporaries(tmp_path):
    keep = [tmp_path / ".snakemake" / ".x.tmp-1-0123abcd", tmp_path / "m.ome.zarr" / ".c.tmp-1-0123abcd",
            tmp_path / ".hidden-notes.txt", tmp_path / "notes.tmp-1-0123abcd", tmp_path / "a" / "b" / ".deep.tmp-1-0123abcd"]
    for path in keep:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("keep")
    with atomic_output(tmp_path / "done.csv") as tmp:
        tmp.write_text("complete")
    assert remove_stale_temporaries(tmp_path) == []
    assert all(p.read_text() == "keep" for p in keep) and (tmp_path / "done.csv").read_text() == "complete"


def test_a_stale_run_pid_of_a_dead_or_reused_process_does_not_block_the_next_run(reference_run, harness, tmp_path):
    out = tmp_path / "out"
    (out / ".serialoct").mkdir(parents=True)
    sleeper = subprocess.Popen(["sleep", "30"])  # alive, but not the process that wrote the record
    try:
        (out / ".serialoct" / "run.pid").write_text(f"{sleeper.pid} 1\n")
        done = subprocess.run(harness.command(reference_run.raw, out, "--dry-run"), capture_output=True, text=True)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_live_run_owning_the_folder_is_not_disturbed(reference_run, harness, tmp_path):
    out = tmp_path / "out"
    first = subprocess.Popen(harness.command(reference_run.raw, out), start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not (out / ".serialoct" / "run.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        second = subprocess.run(harness.command(reference_run.raw, out), capture_output=True, text=True)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert second.returncode == 2
    assert f"{out}: another serialoct run (pid {first.pid}) is using this output folder" in second.stderr


def _pretend_worker(out: Path, seconds: float) -> subprocess.Popen:
    """A process whose command line reads like a warm worker of a run on ``out`` (module name and job records)."""
    from serialoct.workflows.forkserver import MODULE
    from serialoct.workflows.runner import JOB_STATS

    code = f"import time; time.sleep({seconds})"
    worker = subprocess.Popen([sys.executable, "-c", code, MODULE, str(out / JOB_STATS)])
    deadline = time.monotonic() + 30
    while MODULE.encode() not in Path(f"/proc/{worker.pid}/cmdline").read_bytes():  # until exec'd (a loaded machine is slow)
        assert time.monotonic() < deadline and worker.poll() is None
        time.sleep(0.01)
    return worker


def test_the_next_run_waits_for_a_killed_runs_workers_before_clearing_its_temporaries(tmp_path):
    from serialoct.workflows.runner import end_orphaned_workers

    out = tmp_path.resolve()
    worker = _pretend_worker(out, 0.5)  # ends by itself, as a worker of a killed run does
    assert end_orphaned_workers(out) == 0
    assert worker.poll() is not None  # returned only once it had ended
    other = _pretend_worker(tmp_path / "elsewhere", 0.5)  # another folder's worker is not waited for
    assert end_orphaned_workers(out) == 0 and other.poll() is None
    other.wait()


def test_a_killed_runs_worker_that_does_not_end_is_killed(tmp_path):
    from serialoct.workflows.runner import end_orphaned_workers

    out = tmp_path.resolve()
    worker = _pretend_worker(out, 60)
    assert end_orphaned_workers(out, timeout_s=0.3) == 1
    assert worker.wait(timeout=5) == -signal.SIGKILL


@pytest.mark.parametrize("reaches", ["the whole group", "serialoct alone"])
def test_a_ctrl_c_stops_the_run_cleanly_and_the_same_command_resumes_it(reference_run, harness, tmp_path, reaches):
    # A terminal's Ctrl-C reaches every process of the run; `kill -INT` reaches serialoct alone, which passes it on.
    raw, out = reference_run.raw, tmp_path / "out"
    for _ in range(3):  # the interrupt must come while jobs run: once the first slice is done
        shutil.rmtree(out, ignore_errors=True)
        run = subprocess.Popen(harness.command(raw, out), start_new_session=True, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not any(out.glob("metrics/create_mosaic_grid_z*.json")) and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        (os.killpg if reaches == "the whole group" else os.kill)(run.pid, signal.SIGINT)
        stdout, stderr = run.communicate(timeout=120)
        if run.returncode != 0:
            break
    assert run.returncode == 130, stderr[-3000:]
    assert stderr.endswith("serialoct preproc: interrupted; the same command resumes where it stopped\n")
    assert "Traceback" not in stderr
    assert not (out / ".serialoct" / "run.pid").exists()  # the claim ends with Snakemake, not before it

    done = subprocess.run(harness.command(raw, out), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert harness.outputs(out) == reference_run.digests
    assert harness.temporaries(out) == []
