"""Fixtures of the reliability suite: a seeded tiny acquisition, an uninterrupted reference run,
fingerprints of a run's outputs, and the file systems that fail (full, read-only)."""

from __future__ import annotations

import hashlib
import os
import signal
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from serialoct.io.atomic import TEMPORARY_RE
from serialoct.synth import preset, write_acquisition
from serialoct.workflows.runner import end_orphaned_workers

SEED = 3
AXIAL_UM = preset("tiny").axial_resolution_um
CORES = 2
# Bookkeeping that legitimately differs between runs: Snakemake's state, logs and
# timings, the run's own state, and the metrics JSONs (they hold elapsed seconds).
NOT_OUTPUTS = {".snakemake", ".serialoct", "logs", "benchmarks", "metrics"}


def preproc_command(raw: Path, out: Path, *extra: str) -> list[str]:
    """``serialoct preproc`` on ``raw`` as a separate process (what a user types)."""
    return [sys.executable, "-m", "serialoct", "preproc", "--input", str(raw), "--output", str(out),
            "--axial_resolution", str(AXIAL_UM), "--cores", str(CORES), *extra]


def output_digests(out: Path) -> dict[str, str]:
    """SHA-256 of every output file (zarr chunks and metadata, CSVs, PNGs, failure records), by relative path."""
    digests = {}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out)
        if rel.parts[0] in NOT_OUTPUTS or path.name == ".snakemake_timestamp" or not path.is_file():
            continue
        digests[rel.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def stray_temporaries(folder: Path) -> list[Path]:
    """Hidden ``.NAME.tmp-*`` / ``.NAME.old-*`` leftovers of interrupted writes, anywhere under ``folder``."""
    return sorted(p for p in folder.rglob(".*") if TEMPORARY_RE.match(p.name))


def tree_fingerprint(folder: Path) -> dict[str, tuple[int, int, str]]:
    """(size, mtime_ns, SHA-256) of every file under ``folder``: proves an input was not touched."""
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def killed_run(command, delay_s: float) -> bool:
    """Start ``command`` in its own process group, SIGKILL the whole group after ``delay_s``.

    Returns whether it was still running when killed. Returns once the run's
    warm workers are gone too: they live outside the group (the fork server
    has a session of its own) and end themselves when their job's process
    dies, a few milliseconds later, possibly finishing an output's rename.
    """
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        process.wait(timeout=delay_s)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        # the runner's own wait, as the next run would do it (it kills a worker still alive after the timeout)
        end_orphaned_workers(Path(command[command.index("--output") + 1]).resolve())
        return True


@dataclass(frozen=True)
class ReferenceRun:
    """An uninterrupted ``serialoct preproc`` of the tiny acquisition."""

    raw: Path
    out: Path
    seconds: float
    digests: dict[str, str]


class Harness:
    """The suite's helpers, handed to tests as one fixture (conftest modules are not importable)."""

    command = staticmethod(preproc_command)
    killed_run = staticmethod(killed_run)
    outputs = staticmethod(output_digests)
    temporaries = staticmethod(stray_temporaries)
    tree = staticmethod(tree_fingerprint)
    axial_um = AXIAL_UM


@pytest.fixture(scope="session")
def harness() -> Harness:
    return Harness()


@pytest.fixture(scope="session")
def tiny_raw(tmp_path_factory) -> Path:
    """The ``tiny`` synthetic acquisition (6 slices of 2x2 tiles), seeded. Tests must not modify it."""
    raw = tmp_path_factory.mktemp("reliability") / "raw"
    write_acquisition(raw, preset("tiny"), seed=SEED)
    return raw


@pytest.fixture
def raw_copy(tiny_raw, tmp_path) -> Path:
    """A private copy of the tiny acquisition, free to damage."""
    return Path(shutil.copytree(tiny_raw, tmp_path / "raw"))


@pytest.fixture(scope="session")
def reference_run(tiny_raw, tmp_path_factory) -> ReferenceRun:
    out = tmp_path_factory.mktemp("reference") / "out"
    started = time.perf_counter()
    done = subprocess.run(preproc_command(tiny_raw, out), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr[-3000:]
    return ReferenceRun(tiny_raw, out, seconds, output_digests(out))


def _mount_tmpfs(where: Path, options: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True).returncode == 0


def _unmount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


@dataclass(frozen=True)
class SmallDisk:
    """A mounted tmpfs that fills up quickly."""

    path: Path

    def resize(self, size: str) -> None:
        """Grow (or shrink) the file system, e.g. ``"64m"``."""
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True, capture_output=True)


@pytest.fixture
def small_disk(tmp_path) -> Iterator[SmallDisk]:
    """A real 3 MB tmpfs at ``tmp_path / "disk"``: too small for the tiny acquisition's mosaics.

    Skips where tmpfs cannot be mounted (not root, or a sandbox that refuses);
    the in-process ENOSPC tests cover those machines.
    """
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "size=3m"):
        pytest.skip("cannot mount a tmpfs here (needs root and mount permission)")
    try:
        yield SmallDisk(disk)
    finally:
        _unmount(disk)


@pytest.fixture
def read_only_dir(tmp_path) -> Iterator[Path]:
    """A folder nobody may write to: a read-only tmpfs as root (root ignores permissions), mode 0555 otherwise."""
    folder = tmp_path / "read-only"
    if os.geteuid() == 0:
        if not _mount_tmpfs(folder, "ro,size=1m"):
            pytest.skip("running as root and cannot mount a read-only tmpfs: permissions would not stop root")
        try:
            yield folder
        finally:
            _unmount(folder)
    else:
        folder.mkdir()
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
