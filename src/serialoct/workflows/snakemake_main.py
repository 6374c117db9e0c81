"""``python -m serialoct.workflows.snakemake_main ARGS``: Snakemake's command line, with less start-up and no exit wait.

Snakemake's scheduler re-checks its job-rate limit (``--max-jobs-per-timespan``,
100 per second by default) with a ``threading.Timer`` started in every
scheduling round. The timer's thread is not a daemon, so after the last job
the interpreter waits for the pending timer before it exits: up to a second
per run, whatever the workflow's size (0.9 s of a 4 s preprocessing run of the
``small`` preset). Those timers only release a semaphore the finished
scheduler no longer waits on, so here they are daemons and the process exits
when Snakemake returns.

Two imports that a local run does not use are skipped (0.3-0.4 s of each
run's start): Snakemake imports every installed executor plugin to list its
options, and the SLURM plugin imports pandas; with ``--executor local`` and
the shipped profile alone (a site profile may hold a plugin's settings) the
plugins are not looked for. Snakemake also imports pandas, when installed, to
compare rule parameters, in case one is a pandas object; here it does so only
if something already imported pandas. Where Snakemake's internals differ
from what this expects, nothing is changed. The arguments go to Snakemake's
own ``main``.
"""

from __future__ import annotations

import pkgutil
import sys
import threading


class _DaemonTimer(threading.Timer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.daemon = True


def install_daemon_timers() -> None:
    """Make every ``threading.Timer`` created from now on a daemon (the scheduler looks the class up at each call)."""
    threading.Timer = _DaemonTimer


EXECUTOR_PLUGIN_PREFIX = "snakemake_executor_plugin_"


def skip_executor_plugins(argv: list[str]) -> bool:
    """Hide the installed executor plugins from Snakemake's plugin search when ``argv`` runs locally with the shipped
    profile alone (a site profile may hold a plugin's settings). True when hidden."""
    executors = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--executor"]
    if executors[-1:] != ["local"] or argv.count("--profile") != 1:
        return False
    search = pkgutil.iter_modules

    def iter_modules(*args, **kwargs):
        return (m for m in search(*args, **kwargs) if not m.name.startswith(EXECUTOR_PLUGIN_PREFIX))

    pkgutil.iter_modules = iter_modules
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


def main() -> None:
    install_daemon_timers()
    skip_executor_plugins(sys.argv[1:])
    serialize_params_without_pandas()
    from snakemake.cli import main as snakemake_main

    snakemake_main()


if __name__ == "__main__":
    main()
