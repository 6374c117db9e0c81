"""Warm workers for local runs: the heavy libraries are imported once, and every step job forks from them.

A workflow job runs ``serialoct step NAME ...``, and on a local run much of
a short job would be Python importing NumPy, SciPy, zarr and SimpleITK
(0.05-0.5 s of every job; a ``medium`` reconstruction runs about 250 jobs).
The runner therefore starts a *fork server* (:func:`start`) that imports
them once. A job's process, the *client* (:mod:`~serialoct.workflows.jobclient`,
which starts in about 13 ms), finds the server through
``SERIALOCT_FORKSERVER``, hands it its arguments, working folder,
environment and standard streams (file descriptors over a Unix socket: the
job's log), and waits. The server forks a *worker* that becomes the job:
same streams, same environment (and so the same thread caps), a session of
its own. The client exits with the worker's status, so Snakemake sees a
job like any other.

Failure modes, each handled:

* no server, or a refused connection: the client runs the step itself, as
  without a server (:func:`~serialoct.workflows.jobclient.run_in_worker`
  returns None);
* the job is cancelled (Snakemake signals the client): the client passes
  the signal on to the worker's process group;
* the client dies (``SIGKILL``): the worker sees its connection close and
  terminates its process group;
* the runner dies: the server notices that its parent changed and exits.

Each worker appends its step, log, wall time, CPU time and peak resident
memory to a tab-separated file (``stats`` of :func:`start`), since
Snakemake's own benchmark records measure the client, not the worker.
Set ``SERIALOCT_FORKSERVER=off`` to run every job as its own process.
"""

from __future__ import annotations

import marshal
import os
import signal
import socket
import sys

from serialoct.workflows.jobclient import ENV, HEADER_BYTES

__all__ = ["ENV", "MODULE", "PRELOAD", "STATS_COLUMNS", "preload", "serve", "start", "stop"]

#: The server's module, as it appears in its and its workers' command lines.
MODULE = "serialoct.workflows.forkserver"
STATS_COLUMNS = ("step", "log", "exit", "wall_s", "cpu_s", "max_rss_mb")
#: Imported by the server before it forks, by workflow: what its steps need (NumPy, zarr through
#: serialoct's I/O; for the reconstruction SciPy's image, FFT and optimisation modules, SimpleITK,
#: Pillow and the correction modules), then the workflow's step modules. Preprocessing needs a
#: third of the reconstruction's imports (0.35 s of CPU against 1.0 s, at the start of the run
#: beside Snakemake's own). A worker imports anything else itself. Nothing here may start a
#: Python thread: fork copies only the thread that calls it.
_EVERY_STEP = (
    "numpy.ma",  # through np.median (about 20 ms of CPU in every preprocessing job otherwise)
    "serialoct.cli",
    "serialoct.commands.step",
    "serialoct.steps.records",
    "serialoct.compute",
    "serialoct.compute.malloc",
    "serialoct.io.slices",
    "serialoct.io.acquisition",
    "serialoct.io.raw",
    "serialoct.io.images",
    "serialoct.io.tables",
    "threadpoolctl",
)
PRELOAD: dict[str, tuple[str, ...]] = {
    "preproc": (*_EVERY_STEP, "serialoct.preproc.galvo", "serialoct.correct.resample"),
    "reconst_3d": (
        *_EVERY_STEP,
        "scipy.ndimage",
        "scipy.optimize",
        "scipy.fft",
        "SimpleITK",
        "PIL.Image",
        "serialoct.align.pairwise",
        "serialoct.correct.attenuation",
        "serialoct.correct.beam",
        "serialoct.correct.illumination",
        "serialoct.correct.interface",
        "serialoct.correct.normalize",
        "serialoct.correct.resample",
        "serialoct.stack.intensity",
        "serialoct.stack.interpolate",
        "serialoct.stack.render",
    ),
}


def preload(workflow: str) -> tuple[str, ...]:
    """The modules a server for ``workflow`` imports: :data:`PRELOAD`'s, then its steps' (every step's for a
    workflow it does not know)."""
    from serialoct.steps import STEPS

    common = PRELOAD.get(workflow, tuple(dict.fromkeys(name for names in PRELOAD.values() for name in names)))
    steps = [module for module, owner, _ in STEPS.values() if owner == workflow or workflow not in PRELOAD]
    return tuple(dict.fromkeys((*common, *steps)))


# --------------------------------------------------------------------------- server


def start(stats: str | os.PathLike, workflow: str = "", *, wait: bool = True):
    """Start a fork server for one run of ``workflow``; returns ``(process, socket path)``, or None if it did not come up.

    The server imports what that workflow's steps need (:func:`preload`; everything for an empty or
    unknown workflow). ``stats`` is the file the workers append their line to (created with its
    header if missing). The caller passes the socket path to the jobs in ``SERIALOCT_FORKSERVER``
    and ends the process (``terminate``) when the run is over. The server
    listens at once and imports its modules afterwards, so a job that
    connects early waits for the imports instead of doing its own. Without
    ``wait`` the server is not waited for (a job that finds no socket yet runs
    itself): the caller checks :func:`alive` afterwards.
    """
    import subprocess
    import tempfile
    import time

    if not os.path.exists(stats):
        with open(stats, "w") as f:
            f.write("\t".join(STATS_COLUMNS) + "\n")
    folder = tempfile.mkdtemp(prefix="serialoct-")  # short: a socket path has at most 107 bytes
    path = os.path.join(folder, "fork.sock")
    process = subprocess.Popen(
        [sys.executable, "-m", MODULE, path, os.fspath(stats), workflow],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # OpenBLAS loaded with its default pool (one thread per CPU) cost every worker about 80 ms of
        # CPU in its thread server, busy-waiting beside the job (60 jobs of the `small` reconstruction:
        # 24.5-25.3 -> 19.6-20.1 s of job CPU); loaded with one, a step still raises its pool to its
        # own cap (apply_cpu_limits, through threadpoolctl).
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
        start_new_session=True,  # Ctrl-C in the terminal reaches the runner, which ends the server
    )
    deadline = time.monotonic() + 10.0
    while wait and not os.path.exists(path):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process, path)
            return None
        time.sleep(0.01)
    return process, path


def alive(process, path: str) -> bool:
    """Whether a server from :func:`start` is still running and listening."""
    return process.poll() is None and os.path.exists(path)


def stop(process, path: str) -> None:
    """End a server from :func:`start` and remove its socket."""
    import shutil
    import subprocess

    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    shutil.rmtree(os.path.dirname(path), ignore_errors=True)


def serve(path: str, stats: str, workflow: str = "") -> None:
    """The server loop: accept a connection, fork a worker for it, reap finished workers; until the parent goes."""
    import importlib

    parent = os.getppid()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(128)
    for name in preload(workflow):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an optional library missing: the worker imports what it needs
            pass
    listener.settimeout(0.5)
    signal.signal(signal.SIGTERM, _leave)
    try:
        while os.getppid() == parent:
            _reap()
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            try:
                pid = os.fork()
            except OSError:
                pid = -1  # no process left: the client sees the connection close and runs the job itself
            if pid == 0:
                listener.close()
                _worker(conn, stats)  # never returns
            conn.close()
    finally:
        listener.close()


def _leave(*_) -> None:
    """On ``SIGTERM``: reap the finished workers (their CPU time and peak memory then count in the run's own
    resource usage), then leave without finalising the interpreter (nothing to flush: 0.25-0.3 s less for the
    runner to wait)."""
    _reap()
    os._exit(0)


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 16, 3)
    if len(data) < HEADER_BYTES:
        raise ValueError("short request")
    size = int.from_bytes(data[:HEADER_BYTES], "big")
    data = data[HEADER_BYTES:]
    while len(data) < size:
        more = conn.recv(size - len(data))
        if not more:
            raise ValueError("truncated request")
        data += more
    return marshal.loads(data), list(fds)


def _worker(conn: socket.socket, stats: str) -> None:
    """In the forked child: take over the client's job, run it, report its status; never returns."""
    import time

    try:
        os.setsid()  # a process group of its own, which the client signals
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        conn.settimeout(30)
        request, fds = _receive(conn)
        conn.settimeout(None)
        _adopt(request, fds)
        started, cpu0 = time.perf_counter(), os.times()
        conn.sendall(b"pid %d\n" % os.getpid())
    except Exception:  # noqa: BLE001 - the client runs the job itself
        os._exit(1)
    _watch_client(conn)
    try:
        from serialoct.cli import run_command

        code = int(run_command(request["argv"]) or 0)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, int) and exc.code is not None:
            print(exc.code, file=sys.stderr)
    except KeyboardInterrupt:
        code = 128 + signal.SIGINT
    except BaseException:  # noqa: BLE001 - reported like an uncaught exception, then the status
        import traceback

        traceback.print_exc()
        code = 1
    try:
        import logging

        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        _record(stats, request, code, time.perf_counter() - started, cpu0)
        conn.sendall(b"exit %d\n" % code)
    finally:
        os._exit(code)


def _adopt(request: dict, fds: list[int]) -> None:
    """Become the client's process: its streams, folder, environment, umask and arguments."""
    import io

    streams = dict(zip(request["fds"], fds))
    for target in (0, 1, 2):
        source = streams.get(target)
        if source is None:
            source = os.open(os.devnull, os.O_RDWR)
            fds.append(source)
        os.dup2(source, target)
    for fd in fds:
        if fd > 2:
            os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.umask(int(request["umask"]))
    sys.argv = ["serialoct", *request["argv"]]
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=unbuffered or os.isatty(1), write_through=unbuffered)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), errors="backslashreplace", line_buffering=True)


def _watch_client(conn: socket.socket) -> None:
    """Terminate this worker's process group when the client's end of the connection closes."""
    import threading

    def watch():
        try:
            while conn.recv(1):
                pass
        except OSError:
            pass
        os.killpg(os.getpgid(0), signal.SIGTERM)

    threading.Thread(target=watch, name="serialoct-client-watch", daemon=True).start()


def _record(stats: str, request: dict, code: int, wall_s: float, cpu0) -> None:
    """Append the job's line to the stats file (one ``write`` of a short line: atomic with O_APPEND)."""
    import resource

    cpu1 = os.times()
    peak_kb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    argv = request["argv"]
    step = argv[1] if len(argv) > 1 and argv[0] == "step" else (argv[0] if argv else "")
    try:
        log = os.readlink("/proc/self/fd/2")
    except OSError:
        log = ""
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system) + (cpu1.children_user - cpu0.children_user) + (cpu1.children_system - cpu0.children_system)
    line = "\t".join([step, log, str(code), f"{wall_s:.3f}", f"{cpu:.3f}", f"{peak_kb / 1024:.1f}"]) + "\n"
    try:
        fd = os.open(stats, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    except OSError:
        pass


if __name__ == "__main__":
    serve(*sys.argv[1:4])
