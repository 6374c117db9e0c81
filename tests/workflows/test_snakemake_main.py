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


def test_a_local_run_with_the_shipped_profile_alone_loads_no_executor_plugin_nor_pandas_and_compares_params_alike():
    code = (
        "import sys\n"
        "from serialoct.workflows.snakemake_main import serialize_params_without_pandas, skip_executor_plugins\n"
        "assert skip_executor_plugins(['--profile', 'p', '--executor', 'local'])\n"
        "assert serialize_params_without_pandas()\n"
        "from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry\n"
        "from snakemake.persistence.file import FilePersistence\n"
        "persistence = object.__new__(FilePersistence)  # no store needed to serialize\n"
        "values = [1, 2.5, 'raw', ('a', 3), {'k': [1, 2]}, None]\n"
        "assert [persistence._serialize_param(v) for v in values] == [persistence._serialize_param_builtin(v) for v in values]\n"
        "registry = ExecutorPluginRegistry()\n"
        "print(registry.is_installed('local'), registry.is_installed('slurm'), 'pandas' in sys.modules)\n"
    )
    # 0.3-0.4 s less per workflow run: the SLURM plugin imports pandas, and Snakemake imported it to compare params
    assert _python("-c", code).stdout.split() == ["True", "False", "False"]


def test_a_site_profile_or_another_executor_keeps_the_executor_plugins():
    from serialoct.workflows.snakemake_main import skip_executor_plugins

    assert not skip_executor_plugins(["--profile", "shipped", "--profile", "site", "--executor", "local"])
    assert not skip_executor_plugins(["--profile", "shipped", "--executor", "slurm"])
    assert not skip_executor_plugins(["--version"])


def test_without_a_report_option_the_html_reporter_is_not_loaded_and_with_one_it_is():
    code = (
        "import sys\n"
        "from serialoct.workflows.snakemake_main import skip_html_reporter\n"
        "skipped = skip_html_reporter(sys.argv[1:])\n"
        "from snakemake_interface_report_plugins.registry import ReportPluginRegistry\n"
        "print(skipped, ReportPluginRegistry().is_installed('html'), 'docutils' in sys.modules)\n"
    )
    assert _python("-c", code, "--cores", "1").stdout.split() == ["True", "False", "False"]
    assert _python("-c", code, "--report", "r.html").stdout.split() == ["False", "True", "True"]


def test_the_plugin_searches_share_one_listing_of_the_paths_modules_less_the_hidden_ones():
    code = (
        "import pkgutil\n"
        "walks = []\n"
        "search = pkgutil.iter_modules\n"
        "pkgutil.iter_modules = lambda path=None, prefix='': walks.append(path) or search(path, prefix)\n"
        "from serialoct.workflows.snakemake_main import list_top_level_modules_once, skip_executor_plugins\n"
        "list_top_level_modules_once()\n"
        "everything = {m.name for m in search()}\n"
        "first = {m.name for m in pkgutil.iter_modules()}\n"
        "skip_executor_plugins(['--profile', 'p', '--executor', 'local'])\n"
        "second = {m.name for m in pkgutil.iter_modules()}\n"
        "print(first == everything, second == {n for n in everything if not n.startswith('snakemake_executor_plugin_')},\n"
        "      len(walks), any(n.startswith('snakemake_executor_plugin_') for n in everything))\n"
    )
    assert _python("-c", code).stdout.split() == ["True", "True", "1", "True"]


def test_a_local_run_has_no_job_rate_limit_and_a_cluster_run_keeps_it():
    code = (
        "from snakemake.scheduling.job_scheduler import JobScheduler\n"
        "JobScheduler.__init__ = lambda self, *args, **kwargs: setattr(self, 'job_rate_limiter', 'limit')  # no workflow needed\n"
        "from serialoct.workflows.snakemake_main import no_rate_limit_for_local_jobs\n"
        "def limiter():\n"
        "    scheduler = object.__new__(JobScheduler)\n"
        "    JobScheduler.__init__(scheduler)\n"
        "    return scheduler.job_rate_limiter\n"
        "print(no_rate_limit_for_local_jobs(['--executor', 'slurm']), limiter())\n"
        "print(no_rate_limit_for_local_jobs(['--profile', 'p', '--executor', 'local']), limiter())\n"
    )
    # the limit's re-evaluation timers ran a dozen scheduling rounds a second through a local reconstruction
    assert _python("-c", code).stdout.split() == ["False", "limit", "True", "None"]


def test_leaving_without_finalising_still_waits_for_threads_runs_atexit_and_keeps_the_status(tmp_path):
    code = (
        "import atexit, sys, threading, time\n"
        "from serialoct.workflows.snakemake_main import exit_now\n"
        f"folder = {str(tmp_path)!r}\n"
        "def late():\n"
        "    time.sleep(0.2)\n"
        "    open(folder + '/thread', 'w').close()\n"
        "threading.Thread(target=late).start()\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "pool = ThreadPoolExecutor(1); pool.submit(print, end='')  # an idle pool worker, kept, not a daemon: told to stop, not waited on forever\n"
        "atexit.register(lambda: open(folder + '/atexit', 'w').close())\n"
        "sys.stdout.write('buffered')\n"
        "exit_now(int(sys.argv[1]) if sys.argv[1].isdigit() else sys.argv[1])\n"
    )
    for given, status in (("3", 3), ("0", 0), ("a message", 1)):
        done = subprocess.run([sys.executable, "-c", code, given], capture_output=True, text=True, timeout=30)
        assert (done.returncode, done.stdout) == (status, "buffered")
        assert done.stderr == ("a message\n" if status == 1 else "")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["atexit", "thread"]
        for p in tmp_path.iterdir():
            p.unlink()


def test_snakemakes_exit_status_comes_through():
    # a Snakefile that does not exist: Snakemake's main exits with 1 after its message
    done = subprocess.run([sys.executable, "-m", "serialoct.workflows.snakemake_main", "--snakefile", "/nonexistent/Snakefile", "-n"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Snakefile" in done.stdout + done.stderr
