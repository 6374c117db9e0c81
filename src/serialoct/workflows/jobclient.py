"""A local run's job: ``python -I -S .../jobclient.py step NAME ...`` hands ``serialoct step NAME ...`` to a warm worker.

On a local run every step job of the workflow is one such process (about 250
in a ``medium`` reconstruction), and all it does is pass its arguments,
working folder, environment, umask and standard streams to the run's fork
server (:mod:`serialoct.workflows.forkserver`, found through
``SERIALOCT_FORKSERVER``), then wait for the worker's exit status and pass
on the signals it gets. So it is run as a file, isolated and without
``site`` (``-I -S``), and imports only the standard library's built-in,
frozen and C modules: about 13 ms of start-up against 70 ms for
``python -m serialoct`` (its command line, ``argparse``,
``logging``, ``socket``, ``json``). The request is a :mod:`marshal`-encoded
dict (the server is the same interpreter).

Where no server takes the job (none running, a refused connection, a worker
that could not start), the process becomes ``python -m serialoct ARGV`` and
runs the job itself.

Nothing here may import serialoct, a third-party module or a Python
module of the standard library.
"""

import _signal
import _socket
import marshal
import os
import sys

ENV = "SERIALOCT_FORKSERVER"
FORWARDED = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP, _signal.SIGQUIT)
#: Bytes of the request's length, big-endian, before the request itself.
HEADER_BYTES = 4


def run_in_worker(argv, path=None):
    """Run ``serialoct ARGV`` in a worker of the fork server at ``path`` (default: ``$SERIALOCT_FORKSERVER``).

    Returns the worker's exit status, or None when no server took the job
    (none running, or it refused): the caller then runs it itself.
    """
    path = os.environ.get(ENV, "") if path is None else path
    if not path or path == "off":
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    lines = _Lines(sock)
    try:
        sock.connect(path)
        fds = [fd for fd in (0, 1, 2) if _is_open(fd)]
        payload = marshal.dumps({"argv": list(argv), "cwd": os.getcwd(), "env": dict(os.environ), "umask": _umask(), "fds": fds})
        rights = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)
        # the descriptors ride on the first bytes
        sock.sendmsg([len(payload).to_bytes(HEADER_BYTES, "big")], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
        sock.sendall(payload)
        first = lines.next().split()
    except OSError:
        sock.close()
        return None
    if first[:1] != [b"pid"]:
        sock.close()
        return None  # the worker could not take the job: run it here
    pid = int(first[1])

    def forward(signum, _frame):
        try:
            os.killpg(pid, signum)
        except OSError:
            pass

    for signum in FORWARDED:
        _signal.signal(signum, forward)
    try:
        last = lines.next().split()
    except OSError:
        last = []
    sock.close()
    if last[:1] == [b"exit"]:
        return int(last[1])
    print("serialoct: the step's worker process ended without an exit status (killed?)", file=sys.stderr)
    return 1


class _Lines:
    """The server's reply, a line at a time (b"" once the connection is closed)."""

    def __init__(self, sock):
        self.sock, self.buffer = sock, b""

    def next(self):
        while b"\n" not in self.buffer:
            more = self.sock.recv(256)
            if not more:
                line, self.buffer = self.buffer, b""
                return line
            self.buffer += more
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line


def _is_open(fd):
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def main(argv):
    status = run_in_worker(argv)
    if status is None:
        os.execv(sys.executable, [sys.executable, "-m", "serialoct", *argv])
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
