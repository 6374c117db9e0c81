"""The fork server: a job run by a warm worker behaves as the same job run as its own process."""

from __future__ import annotations

import csv
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serialoct.workflows import forkserver, jobclient
from serialoct.workflows.runner import job_command

CLIENT = shlex.split(job_command(container=False, warm=True))  # the job's command on a local run with a server


@pytest.fixture
def server(tmp_path):
    stats = tmp_path / "jobs.tsv"
    started = forkserver.start(stats)
    assert started is not None
    yield started, stats
    forkserver.stop(*started)
    assert not os.path.exists(started[1])


def run_client(path: str, argv: list[str], cwd: Path, **env) -> subprocess.CompletedProcess:
    env = {**os.environ, forkserver.ENV: path, **env}
    return subprocess.run([*CLIENT, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def workers_of(process) -> list[int]:
    """PIDs of the server's live children (its workers)."""
    try:
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    except OSError:
        return []
    live = []
    for pid in map(int, children):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state != "Z":
            live.append(pid)
    return live


def test_a_job_in_a_worker_has_the_output_and_status_of_the_job_run_alone(server, tmp_path):
    (process, path), stats = server
    for argv in (["params", "preproc"], ["step", "generate_slice_config", "--input", str(tmp_path / "missing"), "--output", "x.csv"]):
        alone = subprocess.run([sys.executable, "-m", "serialoct", *argv], cwd=tmp_path, capture_output=True, text=True,
                               env={**os.environ, forkserver.ENV: "off"})
        warm = run_client(path, argv, tmp_path)
        assert (warm.returncode, warm.stdout, warm.stderr) == (alone.returncode, alone.stdout, alone.stderr)
    assert alone.returncode == 2 and "error" in alone.stderr  # the second job is refused: its status came through
    with stats.open() as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert [r["step"] for r in rows] == ["params", "generate_slice_config"]
    assert [int(r["exit"]) for r in rows] == [0, 2]
    assert all(float(r["max_rss_mb"]) > 10 for r in rows)


def test_a_worker_works_in_the_clients_folder_with_its_environment(server, tmp_path):
    (process, path), _ = server
    done = run_client(path, ["synth", "--preset", "tiny", "relative-out"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "relative-out" / "slice_z01").is_dir()
    large = {f"SERIALOCT_TEST_FILL_{k}": "x" * 100_000 for k in range(4)}  # a request larger than a socket buffer
    capped = run_client(path, ["synth", "--preset", "tiny", "other-out"], tmp_path, SERIALOCT_MAX_CPUS="abc", **large)
    assert capped.returncode == 2 and "SERIALOCT_MAX_CPUS='abc'" in capped.stderr  # the client's environment, not the server's
    assert workers_of(process) == []


def test_without_a_server_the_client_declines_and_the_job_runs_alone(tmp_path):
    assert jobclient.run_in_worker(["params", "preproc"], str(tmp_path / "no-such.sock")) is None
    assert jobclient.run_in_worker(["params", "preproc"], "off") is None
    alone = subprocess.run([sys.executable, "-m", "serialoct", "params", "preproc"], capture_output=True, text=True, timeout=120, env={**os.environ})
    for path in (str(tmp_path / "no-such.sock"), "off"):
        done = run_client(path, ["params", "preproc"], tmp_path)
        assert (done.returncode, done.stdout, done.stderr) == (0, alone.stdout, alone.stderr)


def test_a_server_not_waited_for_comes_up_and_takes_jobs(tmp_path):
    process, path = forkserver.start(tmp_path / "jobs.tsv", "preproc", wait=False)
    try:
        deadline = time.monotonic() + 30
        while not forkserver.alive(process, path) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert forkserver.alive(process, path)
        assert jobclient.run_in_worker(["params", "preproc"], path) == 0
    finally:
        forkserver.stop(process, path)
    assert not forkserver.alive(process, path)


def test_the_client_imports_no_python_module():
    # what keeps a job's own process at ~13 ms: without site, it loads only built-in, frozen and C modules
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(Path(jobclient.__file__).parent)!r})\n"
        "before = set(sys.modules)\n"
        "import jobclient\n"
        "loaded = set(sys.modules) - before - {'jobclient'}\n"
        "kinds = ('BuiltinImporter', 'FrozenImporter', 'ExtensionFileLoader')\n"
        "def kind(loader): return getattr(loader, '__name__', type(loader).__name__)  # importers are classes\n"
        "print(sorted(m for m in loaded if kind(sys.modules[m].__spec__.loader) not in kinds))\n"
    )
    done = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_a_cancelled_job_leaves_no_worker_behind(server, tmp_path, signum):
    (process, path), _ = server
    env = {**os.environ, forkserver.ENV: path}
    client = subprocess.Popen([*CLIENT, "synth", "--preset", "medium", str(tmp_path / "long")],
                              cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not workers_of(process):
        assert time.monotonic() < deadline and client.poll() is None
        time.sleep(0.05)
    client.send_signal(signum)
    assert client.wait(timeout=30) != 0
    deadline = time.monotonic() + 30
    while workers_of(process):
        assert time.monotonic() < deadline, "the worker outlived its cancelled job"
        time.sleep(0.05)


def test_a_server_imports_its_workflows_steps_and_what_they_need_and_preprocessing_no_simpleitk():
    from serialoct.steps import STEPS

    for workflow in ("preproc", "reconst_3d"):
        modules = forkserver.preload(workflow)
        assert {module for module, owner, _ in STEPS.values() if owner == workflow} <= set(modules)
        assert "serialoct.io.slices" in modules
    assert "SimpleITK" in forkserver.preload("reconst_3d") and "SimpleITK" not in forkserver.preload("preproc")
    assert set(forkserver.preload("")) >= {module for module, _, _ in STEPS.values()} | set(forkserver.preload("reconst_3d"))
    code = ("import importlib, sys\n"
            "from serialoct.workflows.forkserver import preload\n"
            "[importlib.import_module(m) for m in preload('preproc')]\n"
            "print('SimpleITK' in sys.modules, 'scipy.optimize' in sys.modules)\n")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split() == ["False", "False"]


def test_a_preprocessing_worker_imports_nothing_its_server_did_not(sample_acquisition, tmp_path):
    out = tmp_path / "grid.ome.zarr"
    code = ("import importlib, sys\n"
            "from serialoct.workflows.forkserver import preload\n"
            "[importlib.import_module(m) for m in preload('preproc')]\n"
            "before = set(sys.modules)\n"
            "from serialoct.cli import run_command\n"
            f"assert run_command(['step', 'create_mosaic_grid', '--input', {str(sample_acquisition)!r}, '--slice', '01',"
            f" '--output', {str(out)!r}, '--metrics', {str(out) + '.json'!r}, '--axial_resolution', '5']) == 0\n"
            "print(sorted(set(sys.modules) - before))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"  # the galvo band found, the mosaic written: all preloaded
