"""Run a shipped workflow with Snakemake, resume it, and never lose a slice silently.

A run is one or two Snakemake invocations in the output folder:

1. every target, ``--keep-going`` so one bad slice does not stop the others;
2. only if some slices wrote a failure record (their input was refused):
   the same targets without those slices, so the aggregate tables are still
   produced and mark the failed slices ``use = false`` with the reason.

Resume is Snakemake's: a rerun of the same command does only what is missing
or out of date, and ``--rerun-incomplete`` redoes what a killed run left
half-done. A stale lock left by a killed run, and the hidden temporaries of
the writes it was killed in, are removed here (after checking that no
serialoct run still owns the folder), so the user never has to.

When a run does not complete, the error lines of the steps that failed in
its last Snakemake invocation are returned, so the command can name the
file and the problem instead of pointing at a folder of logs.

Where the jobs run (this machine or SLURM) is an :class:`~serialoct.workflows.execution.Execution`:
Snakemake profiles and options added to every pass. On request the runner
also writes the DAG of jobs before the run (``--dag``) and Snakemake's HTML
report, with the runtime of every job, after a run that completed (``--report``).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from serialoct.errors import InputError, SerialOctError
from serialoct.io.atomic import make_output_dir, remove_stale_temporaries, write_bytes_atomic, write_text_atomic
from serialoct.workflows import forkserver, jobclient, snakefile
from serialoct.workflows.execution import Execution, check_report, dag_command
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
    errors : tuple of str
        When not ok: the errors reported by the steps that failed
        (``"<path>: <problem> (step <name>)"``), from their logs.
    """

    ok: bool
    failed: dict[str, str] = field(default_factory=dict)
    elapsed_s: float = 0.0
    errors: tuple[str, ...] = ()


def _start_time(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot, from /proc), or '' where /proc is absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[19]  # field 22 of proc(5); the name before ")" may hold spaces


def _pid_alive(pid: int, started: str = "") -> bool:
    """Process ``pid`` runs and, when its start time was recorded, is the same process (not a reused PID)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not started or _start_time(pid) in ("", started)


def _claim(output: Path) -> Path:
    """Take the output folder for this process; clear what a killed run left behind."""
    pid_file = output / STATE_DIR / "run.pid"
    if pid_file.is_file():
        words = pid_file.read_text().split() + ["", ""]
        pid = int(words[0]) if words[0].isdigit() else 0
        if pid and pid != os.getpid() and _pid_alive(pid, words[1]):
            raise InputError(output, f"another serialoct run (pid {pid}) is using this output folder; wait for it or stop it")
    locks = output / ".snakemake" / "locks"
    if locks.is_dir() and any(locks.iterdir()):
        log.info("removing the stale lock of an interrupted run in %s", output)
        for lock in locks.iterdir():
            lock.unlink()
    # The folder is ours now: hidden temporaries can only be debris of killed writers, once the
    # killed run's warm workers (outside its process group) are gone.
    end_orphaned_workers(output)
    remove_stale_temporaries(output)
    write_text_atomic(pid_file, f"{os.getpid()} {_start_time(os.getpid())}\n")
    return pid_file


#: Where the fork server's workers record each job's time and peak memory (in the output folder).
JOB_STATS = f"{STATE_DIR}/jobs.tsv"


def _orphaned_workers(output: Path) -> list[int]:
    """PIDs of fork servers and workers started for ``output`` (their command line names its job records)."""
    stats = os.fsencode(str(output / JOB_STATS))
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        if forkserver.MODULE.encode() in words and stats in words:
            found.append(int(cmdline.parent.name))
    return found


def end_orphaned_workers(output: Path, *, timeout_s: float = 10.0) -> int:
    """Wait for the warm workers of a killed run on ``output`` to end, then kill those left; returns how many were left.

    A run killed with ``SIGKILL`` leaves its fork server and workers behind
    (they have sessions of their own). They end by themselves: a worker as soon
    as its job's process is gone (milliseconds), the server when it notices its
    parent is gone (half a second), but a worker may still be renaming its
    output into place meanwhile. Only called once no live run owns ``output``.
    """
    deadline = time.monotonic() + timeout_s
    while (pids := _orphaned_workers(output)) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in pids:
        log.warning("ending process %d, a worker of an interrupted run in %s", pid, output)
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return len(pids)


def job_command(*, container: bool, warm: bool) -> str:
    """The command a workflow's jobs run ``step NAME ...`` with.

    Inside a container the image's own ``serialoct``; with a fork server, its
    client (:mod:`~serialoct.workflows.jobclient`, run isolated and without
    ``site``: it needs nothing from the environment or the installed
    packages); otherwise this interpreter's serialoct.
    """
    import shlex

    if container:
        return "serialoct"
    if warm:
        return shlex.join([sys.executable, "-I", "-S", jobclient.__file__])
    return shlex.join([sys.executable, "-m", "serialoct"])


def _start_fork_server(output: Path, workflow: str):
    """A fork server for a local run's jobs (see :mod:`~serialoct.workflows.forkserver`), or None.

    None when ``SERIALOCT_FORKSERVER=off``. It is not waited for: it listens within about 60 ms, while
    Snakemake takes most of a second to start its first job (a job that comes earlier runs itself, as
    every job does if the server fails; the run then says so at its end).
    """
    if os.environ.get(forkserver.ENV) == "off":
        return None
    return forkserver.start(output / JOB_STATS, workflow, wait=False)


def job_peak_rss_mb(output: str | os.PathLike) -> dict[str, float]:
    """Rule -> the largest peak resident memory (MB) of its jobs, from the workers' records of a local run.

    Snakemake's own benchmark records measure a job's client process when a
    fork server ran it; the worker's memory is here. The rule is the log's
    folder (``logs/RULE/zNN.log``) or name (``logs/RULE.log``).
    """
    import csv

    output, peak = Path(output).resolve(), {}
    stats = output / JOB_STATS
    if not stats.is_file():
        return peak
    with open(stats, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            try:
                rule = Path(row["log"]).relative_to(output / "logs").parts[0].removesuffix(".log")
                peak[rule] = max(peak.get(rule, 0.0), float(row["max_rss_mb"]))
            except (ValueError, KeyError, TypeError, IndexError):
                continue  # a job without a log under logs/, or a damaged line
    return peak


_STEP_ERROR = "serialoct step: error: "


def _step_errors(output: Path, since: float) -> tuple[str, ...]:
    """Errors in the step logs written since ``since`` (a ``time.time()``), in log order.

    A step refusing its input or output ends its log with ``serialoct step:
    error: <path>: <problem>``; a step that crashed ends it with a traceback,
    reported by its last line and the log's path.
    """
    errors: list[str] = []
    logs = output / "logs"
    for log_file in sorted(logs.rglob("*.log")) if logs.is_dir() else ():
        try:
            if log_file.stat().st_mtime < since:
                continue
            lines = [line.strip() for line in log_file.read_text(encoding="utf-8", errors="replace").splitlines()]
        except OSError:
            continue
        step = log_file.relative_to(logs).parts[0].removesuffix(".log")
        found = [f"{line[len(_STEP_ERROR):]} (step {step})" for line in lines if line.startswith(_STEP_ERROR)]
        if not found and any(line.startswith("Traceback") for line in lines):
            found = [f"{log_file}: step {step} crashed: {next(line for line in reversed(lines) if line)}"]
        errors += [e for e in found if e not in errors]
    return tuple(errors)


def _write_config(output: Path, workflow: str, config: Mapping[str, object], run: Mapping[str, object]) -> Path:
    import yaml

    path = output / STATE_DIR / f"{workflow}_config.yaml"
    write_text_atomic(path, yaml.safe_dump({**config, RUN_KEY: dict(run)}, sort_keys=False))
    return path


def _snakemake(
    workflow: str, output: Path, config_file: Path, cores: int | None, resources: Mapping[str, int], extra: Sequence[str], env: Mapping[str, str] | None = None
) -> int:
    command = [
        sys.executable, "-m", "serialoct.workflows.snakemake_main",
        "--snakefile", str(snakefile(workflow)),
        "--directory", str(output),
        "--configfile", str(config_file),
        # no --cores on a cluster: it would cap every job's threads (and so its --cpus-per-task)
        *(["--cores", str(cores)] if cores is not None else []),
        "--keep-going",
        "--rerun-incomplete",
        # Snakemake's default ILP scheduler solves a MILP (a cbc process) at every round to favour
        # jobs that free temp() files; no rule has any, and greedy picks the same jobs for less.
        "--scheduler", "greedy",
        # -v shows every command; otherwise only Snakemake's progress lines and errors
        *(["--printshellcmds"] if log.isEnabledFor(logging.DEBUG) else ["--quiet", "host", "reason", "rules"]),
    ]
    if resources:
        command += ["--resources", *(f"{k}={v}" for k, v in resources.items())]
    command += list(extra)
    log.debug("running %s", " ".join(command))
    if not sys.stderr.isatty() or log.isEnabledFor(logging.DEBUG):
        with subprocess.Popen(command, cwd=output, env=env) as proc:
            try:
                return proc.wait()
            except KeyboardInterrupt:
                _stop_interrupted(proc)
                raise
    # In a terminal: a progress bar instead of Snakemake's block of lines per job.
    import threading

    from serialoct.workflows.progress import follow

    with subprocess.Popen(command, cwd=output, env=env, stderr=subprocess.PIPE, text=True, bufsize=1) as proc:
        try:
            follow(proc.stderr, sys.stderr, bar=True)
        except KeyboardInterrupt:
            # Snakemake's last lines (which jobs it stopped) go on to the terminal while it stops.
            rest = threading.Thread(target=follow, args=(proc.stderr, sys.stderr), kwargs={"bar": False}, daemon=True)
            rest.start()
            _stop_interrupted(proc)
            rest.join(timeout=5.0)  # before the pipe is closed under it
            raise
    return proc.returncode


#: Seconds Snakemake gets to stop its jobs after a Ctrl-C before it is killed.
INTERRUPT_GRACE_S = 60.0


def _stop_interrupted(proc: subprocess.Popen) -> None:
    """After a Ctrl-C, let Snakemake stop its running jobs and mark their outputs incomplete, then return.

    A terminal's Ctrl-C reaches Snakemake as well; a ``kill -INT`` of
    serialoct alone does not, so it is passed on when Snakemake is still
    running a second later. Only a Snakemake that has not stopped after
    :data:`INTERRUPT_GRACE_S` is killed. Returning at once (as
    ``subprocess.run`` does, killing Snakemake a quarter of a second later)
    would end the run's claim on the output folder while jobs still write in
    it, and could leave half-written outputs unmarked.
    """
    try:
        proc.wait(timeout=1.0)
        return
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=INTERRUPT_GRACE_S)
    except subprocess.TimeoutExpired:
        log.warning("Snakemake did not stop within %.0f s of the interrupt: killed", INTERRUPT_GRACE_S)
        proc.kill()
        proc.wait()


def _snakemake_query(workflow: str, output: Path, config_file: Path, extra: Sequence[str]) -> subprocess.CompletedProcess:
    """A Snakemake call that runs no job (``--dag``, ``--report``), its stdout captured."""
    command = [
        sys.executable, "-m", "serialoct.workflows.snakemake_main",
        "--snakefile", str(snakefile(workflow)),
        "--directory", str(output),
        "--configfile", str(config_file),
        *extra,
    ]
    log.debug("running %s", " ".join(command))
    return subprocess.run(command, cwd=output, stdout=subprocess.PIPE)


def _write_dag(workflow: str, output: Path, config_file: Path, profile_args: Sequence[str], path: Path) -> None:
    """The DAG of jobs as DOT or Mermaid text, or rendered by Graphviz (by ``path``'s suffix)."""
    fmt, render = dag_command(path)
    done = _snakemake_query(workflow, output, config_file, [*profile_args, "--dag", fmt])
    if done.returncode != 0:
        raise SerialOctError(f"Snakemake could not build the DAG of jobs for {path}; see the messages above")
    if render is None:
        write_bytes_atomic(path, done.stdout)
    else:
        image = subprocess.run(render, input=done.stdout, stdout=subprocess.PIPE, check=False)
        if image.returncode != 0:
            raise SerialOctError(f"Graphviz could not render {path} (exit status {image.returncode})")
        write_bytes_atomic(path, image.stdout)
    log.info("wrote the DAG of jobs to %s", path)


def _write_report(workflow: str, output: Path, config_file: Path, profile_args: Sequence[str], path: Path) -> None:
    """Snakemake's HTML report of the run (jobs, runtimes, code) at ``path``."""
    make_output_dir(path.parent)
    # Snakemake writes the report itself: it writes in a hidden folder beside it and the report is
    # renamed into place, so an interrupted one never sits under the final name. The suffix
    # (.html or .zip) tells Snakemake the format.
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmp:
        partial = Path(tmp) / path.name
        if _snakemake_query(workflow, output, config_file, [*profile_args, "--report", str(partial)]).returncode != 0:
            raise SerialOctError(f"the run completed but Snakemake could not write the report {path}; see the messages above")
        os.replace(partial, path)
    log.info("wrote the run report to %s", path)


def run_workflow(
    workflow: str,
    config: Mapping[str, object],
    output: str | os.PathLike,
    *,
    cores: int | None,
    resources: Mapping[str, int] | None = None,
    snakemake_args: Sequence[str] = (),
    execution: Execution | None = None,
    report: str | os.PathLike | None = None,
    dag: str | os.PathLike | None = None,
    run_info: Mapping[str, object] | None = None,
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
    cores : int or None
        Cores Snakemake may use at once; None on a cluster (each job gets its rule's threads).
    resources : mapping, optional
        Global Snakemake resources (``mosaic_forks``...).
    snakemake_args : sequence of str
        Extra Snakemake arguments (``--dry-run``...).
    execution : Execution, optional
        Executor, profiles, ``--jobs``, ``--retries``; None runs Snakemake with its own defaults.
    report : path, optional
        Write Snakemake's HTML report (every job with its runtime) here after a run that completed.
    dag : path, optional
        Write the DAG of jobs here before running (``.dot``, ``.mmd``, or rendered ``.svg``/``.png``/``.pdf``).
    run_info : mapping, optional
        Facts of the run that are not parameters (the preset), recorded with the configuration for the report.

    Raises
    ------
    InputError
        If another serialoct run owns the output folder.
    ParameterError
        If ``dag`` or ``report`` has a suffix that cannot be written.
    """
    from serialoct.steps.records import read_failure

    started = time.perf_counter()
    output = Path(output).resolve()
    # resolved from the caller's folder now, since Snakemake runs inside the output folder
    report, dag = (Path(p).resolve() if p is not None else None for p in (report, dag))
    # a DAG or report file that cannot be written is refused before any work
    if dag is not None:
        dag_command(dag)
    if report is not None:
        check_report(report)
    profile_args = execution.profile_args() if execution is not None else []
    run_args = [*(execution.run_args() if execution is not None else []), *snakemake_args]
    output = make_output_dir(output)
    pid_file = _claim(output)
    container = execution.container if execution is not None else None
    local = (execution is None or execution.is_local) and not container
    server = None
    try:
        server = _start_fork_server(output, workflow) if local else None
        env = {**os.environ, forkserver.ENV: server[1]} if server else None
        command = job_command(container=bool(container), warm=bool(server))
        first = _write_config(output, workflow, config, {**(run_info or {}), "command": command, "skip_failed": False, "container": container})
        if dag is not None:
            _write_dag(workflow, output, first, profile_args, dag)
        config_file = first
        since = time.time()
        rc = _snakemake(workflow, output, first, cores, resources or {}, run_args, env)
        failed = {s: read_failure(output / "failed" / f"z{s}.json") for s in failed_slices(output)}
        if rc != 0 and failed:
            log.warning("%d slice(s) failed: finishing the run without them", len(failed))
            second = _write_config(output, workflow, config, {**(run_info or {}), "command": command, "skip_failed": True, "container": container})
            config_file = second
            since = time.time()
            rc = _snakemake(workflow, output, second, cores, resources or {}, run_args, env)
        if report is not None and rc == 0:
            _write_report(workflow, output, config_file, profile_args, report)
    finally:
        if server:
            if not forkserver.alive(*server):
                log.warning("the fork server was not running at the end: jobs imported their libraries themselves (slower)")
            forkserver.stop(*server)
        pid_file.unlink(missing_ok=True)
    reasons = {s: f"{r.step}: {r.error}" for s, r in sorted(failed.items())}
    errors = _step_errors(output, since) if rc != 0 else ()
    return RunResult(ok=rc == 0, failed=reasons, elapsed_s=time.perf_counter() - started, errors=errors)


def raise_for(result: RunResult, output: str | os.PathLike) -> None:
    """Turn a run that did not complete into an error naming the first step error and the logs."""
    if result.ok:
        return
    logs = Path(output) / "logs"
    if not result.errors:
        raise SerialOctError(f"the workflow did not complete; see the messages above and the logs in {logs}")
    more = f" (and {len(result.errors) - 1} more error(s))" if len(result.errors) > 1 else ""
    raise SerialOctError(f"{result.errors[0]}{more}; the workflow did not complete, see the logs in {logs}")
