"""``python -m serialoct.workflows.snakemake_main ARGS``: Snakemake's command line, with less start-up and no exit wait.

On a local run the job-rate limit is dropped (:func:`no_rate_limit_for_local_jobs`:
its re-evaluation timers made the scheduler spin through a dozen rounds a
second). Elsewhere, Snakemake's scheduler re-checks its job-rate limit
(``--max-jobs-per-timespan``, 100 per second by default) with a
``threading.Timer`` started in every scheduling round. The timer's thread is not a daemon, so after the last job
the interpreter waits for the pending timer before it exits: up to a second
per run, whatever the workflow's size (0.9 s of a 4 s preprocessing run of the
``small`` preset). Those timers only release a semaphore the finished
scheduler no longer waits on, so here they are daemons and the process exits
when Snakemake returns.

Imports that a local run does not use are skipped (0.5-0.6 s of each
run's start): Snakemake imports every installed executor plugin to list its
options, and the SLURM plugin imports pandas; with ``--executor local`` and
the shipped profile alone (a site profile may hold a plugin's settings) the
plugins are not looked for. Its HTML reporter (docutils) is loaded only
for a ``--report``. Its five plugin searches share one listing of the
path's modules. Snakemake also imports pandas, when installed, to
compare rule parameters, in case one is a pandas object; here it does so only
if something already imported pandas. Where Snakemake's internals differ
from what this expects, nothing is changed. The arguments go to Snakemake's
own ``main``.

When Snakemake returns, the process leaves without tearing down the
interpreter (:func:`exit_now`): Snakemake's imports (pydantic, SQLAlchemy,
its plugins) took 0.35 s to finalise after every run, while the last job
was already done.
"""

from __future__ import annotations

import atexit
import os
import pkgutil
import sys
import threading
from typing import NoReturn


class _DaemonTimer(threading.Timer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.daemon = True


def install_daemon_timers() -> None:
    """Make every ``threading.Timer`` created from now on a daemon (the scheduler looks the class up at each call)."""
    threading.Timer = _DaemonTimer


EXECUTOR_PLUGIN_PREFIX = "snakemake_executor_plugin_"
_hidden_prefixes: list[str] = []


def list_top_level_modules_once() -> None:
    """List the top-level modules on ``sys.path`` once for Snakemake's plugin registries.

    Each of its registries (executors, storage, reports, loggers, schedulers)
    walks ``pkgutil.iter_modules()`` for its plugins' prefix: five walks of
    every folder on the path (0.1 s of each run's start). The listing is made
    at the first walk and reused; modules under a hidden prefix
    (:func:`skip_executor_plugins`) are left out of it.
    """
    if getattr(pkgutil.iter_modules, "_serialoct_once", False):
        return
    search, listed = pkgutil.iter_modules, []

    def iter_modules(path=None, prefix=""):
        if path is not None or prefix:
            return (m for m in search(path, prefix) if not m.name.startswith(tuple(_hidden_prefixes)))
        if not listed:
            listed.append(list(search()))
        return (m for m in listed[0] if not m.name.startswith(tuple(_hidden_prefixes)))

    iter_modules._serialoct_once = True
    pkgutil.iter_modules = iter_modules


def skip_executor_plugins(argv: list[str]) -> bool:
    """Hide the installed executor plugins from Snakemake's plugin search when ``argv`` runs locally with the shipped
    profile alone (a site profile may hold a plugin's settings). True when hidden."""
    if not _local(argv) or argv.count("--profile") != 1:
        return False
    list_top_level_modules_once()
    _hidden_prefixes.append(EXECUTOR_PLUGIN_PREFIX)
    return True


def skip_html_reporter(argv: list[str]) -> bool:
    """Leave Snakemake's built-in HTML reporter unloaded when ``argv`` asks for no report (no ``--report*``
    option): it imports docutils, 0.15-0.2 s of each run's start. True when left out."""
    if any(a.startswith("--report") for a in argv):
        return False
    try:
        from snakemake_interface_common.plugin_registry import PluginRegistryBase
        from snakemake_interface_report_plugins.registry import ReportPluginRegistry
    except ImportError:
        return False
    if not issubclass(ReportPluginRegistry, PluginRegistryBase):
        return False
    ReportPluginRegistry.collect_plugins = PluginRegistryBase.collect_plugins  # installed report plugins only
    return True


def _local(argv: list[str]) -> bool:
    executors = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--executor"]
    return executors[-1:] == ["local"]


def no_rate_limit_for_local_jobs(argv: list[str]) -> bool:
    """Drop Snakemake's job-rate limit when ``argv`` runs the jobs on this machine. True when dropped.

    The limit (``--max-jobs-per-timespan``, 100 per second by default) is
    there for cluster submissions. To reopen its window, every scheduling
    round that leaves a ready job waiting (for cores, or for memory) starts a
    timer that runs another round a second later, and that round starts
    another: the timers pile up with the jobs run, and a ``medium``
    reconstruction (250 jobs) went through a dozen rounds a second, each
    resetting every ready job's parameters and resources (17.7 s of CPU in
    Snakemake's scheduler, on two cores that the jobs needed). Locally,
    ``--cores`` and the resources already bound what runs at once, and a
    job's end starts the next round.
    """
    if not _local(argv):
        return False
    try:
        from snakemake.scheduling.job_scheduler import JobScheduler
    except ImportError:
        return False
    init = JobScheduler.__init__
    if getattr(init, "_serialoct_unlimited", False):
        return True

    def unlimited(self, *args, **kwargs):
        init(self, *args, **kwargs)
        if hasattr(self, "job_rate_limiter"):
            self.job_rate_limiter = None

    unlimited._serialoct_unlimited = True
    JobScheduler.__init__ = unlimited
    return True


def serialize_params_without_pandas() -> bool:
    """Let Snakemake compare rule parameters without importing pandas unless it is already imported (a parameter
    can only be a pandas object if something imported pandas). True when applied."""
    try:
        from snakemake.persistence import PersistenceBase as Persistence
    except ImportError:
        return False
    builtin = getattr(Persistence, "_serialize_param_builtin", None)
    with_pandas = getattr(Persistence, "_serialize_param_pandas", None)
    if builtin is None or with_pandas is None or not isinstance(getattr(Persistence, "_serialize_param", None), property):
        return False

    def serialize(self, value):
        return with_pandas(self, value) if "pandas" in sys.modules else builtin(self, value)

    Persistence._serialize_param = property(lambda self: serialize.__get__(self))
    return True


def exit_now(code: object = None) -> NoReturn:
    """Leave the process as ``sys.exit(code)`` would, without finalising the interpreter's modules and objects.

    What an exit promises is kept, in the interpreter's order: threading's
    exit hooks run (idle thread-pool workers are told to stop) and every
    thread that is not a daemon is waited for (``threading._shutdown``, the
    interpreter's first step at exit), the ``atexit`` functions run
    (logging's flush among them), the standard streams are flushed, and
    ``code`` becomes the exit status the same way (None is 0, an integer is
    itself, anything else is printed and gives 1). On an interpreter
    without ``threading._shutdown`` this is ``sys.exit(code)``.
    """
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is None:
        sys.exit(code)
    shutdown()
    atexit._run_exitfuncs()
    if code is None or isinstance(code, int):
        status = code or 0
    else:
        print(code, file=sys.stderr)
        status = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    os._exit(status)


def main() -> NoReturn:
    install_daemon_timers()
    list_top_level_modules_once()
    skip_executor_plugins(sys.argv[1:])
    skip_html_reporter(sys.argv[1:])
    no_rate_limit_for_local_jobs(sys.argv[1:])
    serialize_params_without_pandas()
    from snakemake.cli import main as snakemake_main

    try:
        snakemake_main()
    except SystemExit as done:
        exit_now(done.code)
    exit_now(0)


if __name__ == "__main__":
    main()
