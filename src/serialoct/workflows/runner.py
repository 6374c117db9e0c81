"""Run a shipped workflow with Snakemake, resume it, and never lose a slice silently.

A run is one or two Snakemake invocations in the output folder:

1. every target, ``--keep-going`` so one bad slice does not stop the others;
2. only if some slices wrote a failure record (their input was refused):
   the same targets without those slices, so the aggregate tables are still
   produced and mark the failed slices ``use = false`` with the reason.

Resume is Snakemake's: a rerun of the same command does only what is missing
or out of date, and ``--rerun-incomplete`` redoes what a killed run left
half-done. A stale lock left by a killed run is removed here (after checking
that no serialoct run still owns the folder), so the user never has to.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from serialoct.errors import InputError, SerialOctError
from serialoct.io.atomic import write_text_atomic
from serialoct.workflows import snakefile
from serialoct.workflows.targets import RUN_KEY, failed_slices

__all__ = ["RunResult", "run_workflow"]

log = logging.getLogger(__name__)
STATE_DIR = ".serialoct"


@dataclass(frozen=True)
class RunResult:
    """How a workflow run ended.

    Attributes
    ----------
    ok : bool
        Every target was produced (failed slices aside, which are recorded).
    failed : dict of str to str
        Slice id -> why its preprocessing was refused.
    elapsed_s : float
        Wall time of the run.
    """

    ok: bool
    failed: dict[str, str] = field(default_factory=dict)
    elapsed_s: float = 0.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _claim(output: Path) -> Path:
    """Take the output folder for this process; clear what a killed run left behind."""
    pid_file = output / STATE_DIR / "run.pid"
    if pid_file.is_file():
        try:
            pid = int(pid_file.read_text().strip() or 0)
        except ValueError:
            pid = 0
        if pid and pid != os.getpid() and _pid_alive(pid):
            raise InputError(output, f"another serialoct run (pid {pid}) is using this output folder; wait for it or stop it")
    locks = output / ".snakemake" / "locks"
    if locks.is_dir() and any(locks.iterdir()):
        log.info("removing the stale lock of an interrupted run in %s", output)
        for lock in locks.iterdir():
            lock.unlink()
    write_text_atomic(pid_file, f"{os.getpid()}\n")
    return pid_file


def _write_config(output: Path, workflow: str, config: Mapping[str, object], run: Mapping[str, object]) -> Path:
    import yaml

    path = output / STATE_DIR / f"{workflow}_config.yaml"
    write_text_atomic(path, yaml.safe_dump({**config, RUN_KEY: dict(run)}, sort_keys=False))
    return path


def _snakemake(workflow: str, output: Path, config_file: Path, cores: int, resources: Mapping[str, int], extra: Sequence[str]) -> int:
    command = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(snakefile(workflow)),
        "--directory", str(output),
        "--configfile", str(config_file),
        "--cores", str(cores),
        "--keep-going",
        "--rerun-incomplete",
        "--printshellcmds" if log.isEnabledFor(logging.DEBUG) else "--quiet", "rules",
    ]
    if resources:
        command += ["--resources", *(f"{k}={v}" for k, v in resources.items())]
    command += list(extra)
    log.debug("running %s", " ".join(command))
    return subprocess.run(command, cwd=output).returncode


def run_workflow(
    workflow: str,
    config: Mapping[str, object],
    output: str | os.PathLike,
    *,
    cores: int,
    resources: Mapping[str, int] | None = None,
    snakemake_args: Sequence[str] = (),
) -> RunResult:
    """Run ``workflow`` on a resolved configuration into ``output``.

    Parameters
    ----------
    workflow : {'preproc'}
        Which shipped Snakefile.
    config : mapping
        Resolved parameters (:func:`serialoct.params.resolve`).
    output : path
        The output folder (created if missing); Snakemake's working directory.
    cores : int
        Cores Snakemake may use at once.
    resources : mapping, optional
        Global Snakemake resources (``mosaic_forks``...).
    snakemake_args : sequence of str
        Extra Snakemake arguments (``--dry-run``...).

    Raises
    ------
    InputError
        If another serialoct run owns the output folder.
    """
    from serialoct.steps.records import read_failure

    started = time.perf_counter()
    output = Path(output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    pid_file = _claim(output)
    command = f"{sys.executable} -m serialoct"
    try:
        first = _write_config(output, workflow, config, {"command": command, "skip_failed": False})
        rc = _snakemake(workflow, output, first, cores, resources or {}, snakemake_args)
        failed = {s: read_failure(output / "failed" / f"z{s}.json") for s in failed_slices(output)}
        if rc != 0 and failed:
            log.warning("%d slice(s) failed: finishing the run without them", len(failed))
            second = _write_config(output, workflow, config, {"command": command, "skip_failed": True})
            rc = _snakemake(workflow, output, second, cores, resources or {}, snakemake_args)
    finally:
        pid_file.unlink(missing_ok=True)
    reasons = {s: f"{r.step}: {r.error}" for s, r in sorted(failed.items())}
    return RunResult(ok=rc == 0, failed=reasons, elapsed_s=time.perf_counter() - started)


def raise_for(result: RunResult, output: str | os.PathLike) -> None:
    """Turn a run that did not complete into an error pointing at the logs."""
    if not result.ok:
        raise SerialOctError(f"the workflow did not complete; see the messages above and the logs in {Path(output) / 'logs'}")
