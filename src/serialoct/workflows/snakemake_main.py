"""``python -m serialoct.workflows.snakemake_main ARGS``: Snakemake's command line, without its exit wait.

Snakemake's scheduler re-checks its job-rate limit (``--max-jobs-per-timespan``,
100 per second by default) with a ``threading.Timer`` started in every
scheduling round. The timer's thread is not a daemon, so after the last job
the interpreter waits for the pending timer before it exits: up to a second
per run, whatever the workflow's size (0.9 s of a 4 s preprocessing run of the
``small`` preset). Those timers only release a semaphore the finished
scheduler no longer waits on, so here they are daemons and the process exits
when Snakemake returns. Nothing else changes: the arguments go to Snakemake's
own ``main``.
"""

from __future__ import annotations

import threading


class _DaemonTimer(threading.Timer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.daemon = True


def install_daemon_timers() -> None:
    """Make every ``threading.Timer`` created from now on a daemon (the scheduler looks the class up at each call)."""
    threading.Timer = _DaemonTimer


def main() -> None:
    install_daemon_timers()
    from snakemake.cli import main as snakemake_main

    snakemake_main()


if __name__ == "__main__":
    main()
