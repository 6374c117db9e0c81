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
truncates the file to its length. Where ``O_DIRECT``
is not available (another OS) or the file system refuses it (``EINVAL``, as
tmpfs before Linux 6.6 does), the file is written the usual way, and that
file system is not asked again in this process. Small files are always
written the usual way. ``SERIALOCT_DIRECT_WRITES=off`` turns direct writes
off.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Sequence
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


def write_file(path: str | os.PathLike, parts: Sequence[bytes | bytearray | memoryview | np.ndarray]) -> None:
    """Write the concatenation of ``parts`` to ``path`` (created or replaced), around the page cache where allowed.

    A part is anything that exposes a C-contiguous buffer (bytes, a C-contiguous array); its bytes are written
    in memory order.
    """
    path = Path(path)
    total = sum(memoryview(p).nbytes for p in parts)
    if total >= MIN_DIRECT_BYTES and _direct_allowed(path.parent):
        try:
            _write_direct(path, parts, total)
            return
        except OSError as exc:
            if exc.errno not in _REFUSED:
                raise
            _refused_devices.add(os.stat(path.parent).st_dev)
    with open(path, "wb") as f:
        f.writelines(parts)


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


def _write_direct(path: Path, parts, total: int) -> None:
    """The parts through the staging buffer, whole buffers at a time, the last one padded to whole blocks; then the true length."""
    buffer = _staging_buffer()
    fd = _open_direct(path)
    try:
        filled = 0
        for part in parts:
            data = np.frombuffer(part, dtype=np.uint8)
            taken = 0
            while taken < data.size:
                n = min(_STAGING - filled, data.size - taken)
                buffer[filled : filled + n] = data[taken : taken + n]
                filled, taken = filled + n, taken + n
                if filled == _STAGING:
                    _write_all(fd, memoryview(buffer))
                    filled = 0
        if filled:
            padded = -(-filled // _BLOCK) * _BLOCK
            buffer[filled:padded] = 0
            _write_all(fd, memoryview(buffer[:padded]))
        os.ftruncate(fd, total)
    finally:
        os.close(fd)


def _open_direct(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o666)


def _write_all(fd: int, view: memoryview) -> None:
    done = 0
    while done < len(view):
        done += os.write(fd, view[done:])
