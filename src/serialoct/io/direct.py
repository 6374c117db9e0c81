"""Writing large files without filling the page cache (``O_DIRECT``), where the file system allows it.

Every step writes its output once, and the next step reads it once. Written
the usual way, each byte is first copied into a fresh page of the page
cache. On some virtual machines (this project's development machine among
them) a guest page that was free has to be backed by the host again when it
is first written, which costs far more than the copy itself.
Measured on that machine (BENCHMARKS.md, "Writing around the page cache"):
the ``medium`` preprocessing 22.8-34.4 -> 11.4-15.0 s, its system time
21.7-40.4 -> 4.9-8.7 s; the ``medium`` reconstruction 210 -> 193 s. On a
terabyte acquisition it also leaves the page cache to the files that are
read more than once.

:func:`write_file` copies the file's parts through an aligned 4 MiB buffer
(one per thread, reused, so its pages stay backed), writes it with
``O_DIRECT`` each time it is full (the last time padded to whole blocks) and
truncates the file to its length. The parts may come from a generator, one
at a time; the first whole blocks are written as soon as the file is known
not to be small, so a refusal comes while those parts are still at hand. Where ``O_DIRECT``
is not available (another OS) or the file system refuses it (``EINVAL``, as
tmpfs before Linux 6.6 does), the file is written the usual way, and that
file system is not asked again in this process. Small files are always
written the usual way. ``SERIALOCT_DIRECT_WRITES=off`` turns direct writes
off.
"""

from __future__ import annotations

import errno
import itertools
import os
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np

__all__ = ["ENV", "MIN_DIRECT_BYTES", "write_file"]

ENV = "SERIALOCT_DIRECT_WRITES"
#: Files smaller than this are written the usual way: a direct write waits for the disk.
MIN_DIRECT_BYTES = 256 * 1024
#: Alignment of the buffer's address and length: a multiple of every common logical block size.
_BLOCK = 4096
#: Bytes written at a time (a multiple of the block): the memory each writing thread keeps.
_STAGING = 4 * 1024 * 1024
_REFUSED = {errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP}  # ENOTSUP is EOPNOTSUPP on Linux, not everywhere

_local = threading.local()
_refused_devices: set[int] = set()


def write_file(path: str | os.PathLike, parts: Iterable[bytes | bytearray | memoryview | np.ndarray]) -> None:
    """Write the concatenation of ``parts`` to ``path`` (created or replaced), around the page cache where allowed.

    A part is anything that exposes a C-contiguous buffer (bytes, a C-contiguous array); its bytes are written
    in memory order. ``parts`` may be a generator: each part is copied out before the next is asked for, so
    a writer that makes its parts one at a time (:func:`serialoct.io.shards.write_shard` encoding chunks)
    holds one at a time.
    """
    path = Path(path)
    parts = iter(parts)
    head, size = [], 0
    for part in parts:  # enough of the file to tell whether it is small
        head.append(part)
        size += memoryview(part).nbytes
        if size >= MIN_DIRECT_BYTES:
            break
    if size >= MIN_DIRECT_BYTES and _direct_allowed(path.parent):
        target = _start_direct(path, head)
        if target is not None:
            head.clear()
            try:
                for part in parts:
                    target.write(part)
                target.finish()
            finally:
                target.close()
            return
    with open(path, "wb") as f:
        f.writelines(itertools.chain(head, parts))


def _direct_allowed(folder: Path) -> bool:
    if not hasattr(os, "O_DIRECT") or os.environ.get(ENV, "").strip().lower() in ("off", "0", "false", "no"):
        return False
    return os.stat(folder).st_dev not in _refused_devices


def _staging_buffer() -> np.ndarray:
    """This thread's ``_STAGING`` bytes, their address aligned to the block."""
    buffer = getattr(_local, "buffer", None)
    if buffer is None:
        raw = np.empty(_STAGING + _BLOCK, dtype=np.uint8)
        start = -raw.ctypes.data % _BLOCK
        buffer = _local.buffer = raw[start : start + _STAGING]
    return buffer


def _start_direct(path: Path, head: list) -> _DirectFile | None:
    """``path`` opened with ``O_DIRECT``, ``head`` written up to its last whole block (so that a file system
    that refuses direct writes says so while every part is still at hand); None where it refuses."""
    target = None
    try:
        target = _DirectFile(path)
        for part in head:
            target.write(part)
        target.write_blocks()
    except OSError as exc:
        if target is not None:
            target.close()
        if exc.errno not in _REFUSED:
            raise
        _refused_devices.add(os.stat(path.parent).st_dev)
        return None
    return target


class _DirectFile:
    """Bytes gathered in this thread's staging buffer and written whole buffers at a time, the last one padded to
    whole blocks; then the file is cut to its true length."""

    def __init__(self, path: Path):
        self.fd = _open_direct(path)
        self.buffer = _staging_buffer()
        self.filled = 0
        self.total = 0

    def write(self, part) -> None:
        data = np.frombuffer(part, dtype=np.uint8)
        self.total += data.size
        taken = 0
        while taken < data.size:
            n = min(_STAGING - self.filled, data.size - taken)
            self.buffer[self.filled : self.filled + n] = data[taken : taken + n]
            self.filled, taken = self.filled + n, taken + n
            if self.filled == _STAGING:
                _write_all(self.fd, memoryview(self.buffer))
                self.filled = 0

    def write_blocks(self) -> None:
        """Write the whole blocks gathered so far; the partial one stays in the buffer."""
        whole = self.filled // _BLOCK * _BLOCK
        if whole:
            _write_all(self.fd, memoryview(self.buffer[:whole]))
            rest = self.filled - whole  # < one block <= whole: the two ranges do not overlap
            self.buffer[:rest] = self.buffer[whole : self.filled]
            self.filled = rest

    def finish(self) -> None:
        if self.filled:
            padded = -(-self.filled // _BLOCK) * _BLOCK
            self.buffer[self.filled : padded] = 0
            _write_all(self.fd, memoryview(self.buffer[:padded]))
            self.filled = 0
        os.ftruncate(self.fd, self.total)

    def close(self) -> None:
        os.close(self.fd)


def _open_direct(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o666)


def _write_all(fd: int, view: memoryview) -> None:
    done = 0
    while done < len(view):
        done += os.write(fd, view[done:])
