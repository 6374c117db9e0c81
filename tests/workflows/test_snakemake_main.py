"""Snakemake started through serialoct's entry point: same command line, no wait for the scheduler's timers at exit."""

import subprocess
import sys

import snakemake


def _python(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60, check=True)


def test_the_arguments_reach_snakemakes_own_command_line():
    assert _python("-m", "serialoct.workflows.snakemake_main", "--version").stdout.strip() == snakemake.__version__


def test_a_pending_timer_no_longer_holds_the_process_open():
    code = ("import threading; from serialoct.workflows.snakemake_main import install_daemon_timers; "
            "install_daemon_timers(); t = threading.Timer(3600, print); t.start(); print(t.daemon)")
    # without the daemon flag the interpreter would wait an hour for the timer (and the timeout would fail the test)
    assert _python("-c", code).stdout.strip() == "True"
