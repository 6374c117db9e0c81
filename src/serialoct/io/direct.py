"""Large files read and written without the page cache (``O_DIRECT``), where the file system allows it.

Every step writes its output once, and the next step reads it once. Written
or read the usual way, each byte goes through a fresh page of the page
cache. On some virtual machines (this project's development machine among
them) a guest page that was free has to be backed by the host again when it
is first used, which costs far more than the copy itself.
Measured on that machine (BENCHMARKS.md, "Writing around the page cache"):
the ``medium`` preprocessing 22.8-34.4 -> 11.4-15.0 s, its system time
21.7-40.4 -> 4.9-8.7 s; the ``medium`` reconstruction 210 -> 193 s. On a
terabyte acquisition it also leaves the page cache to the files that are
read more than once.

:func:`write_file` copies the file's parts through aligned 4 MiB buffers
(two per thread, reused, so their pages stay backed). Each time one is full it
is written with ``O_DIRECT`` by a writer thread while the parts that follow
fill the other, so the disk writes while the caller makes the next parts
(a direct write waits for the disk: a ``medium`` mosaic step spent a sixth
of its time there). The last buffer is padded to whole blocks and the file
truncated to its length. The parts may come from a generator, one
at a time; the first whole blocks are written as soon as the file is known
not to be small, so a refusal comes while those parts are still at hand.
:func:`read_into` reads a file's whole blocks straight into the caller's
memory when it is aligned to a block (:func:`aligned_empty`,
:class:`BufferPool`), and the last partial block through an aligned block
of its own. Where ``O_DIRECT`` is not available (another OS) or the file system
refuses it (``EINVAL``, as tmpfs before Linux 6.6 does), the file is written
or read the usual way, and that file system is not asked again in this
process. Small files always go the usual way. ``SERIALOCT_DIRECT_IO=off``
turns direct reads and writes off.
"""

from __future__ import annotations

import errno
import itertools
import os
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np

__all__ = ["ENV", "MIN_DIRECT_BYTES", "BufferPool", "aligned_empty", "read_into", "read_range", "write_file"]

ENV = "SERIALOCT_DIRECT_IO"
#: Files smaller than this are written and read the usual way: a direct write or read waits for the disk.
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


def _staging_buffers() -> tuple[np.ndarray, np.ndarray]:
    """This thread's two buffers of ``_STAGING`` bytes, their addresses aligned to the block."""
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = (aligned_empty(_STAGING, np.uint8), aligned_empty(_STAGING, np.uint8))
    return buffers


_writers: dict[int, ThreadPoolExecutor] = {}  # by process: a forked child starts its own threads


def _writer() -> ThreadPoolExecutor:
    """The threads that write full staging buffers: one write per file in flight, any number of files."""
    pool = _writers.get(os.getpid())
    if pool is None:
        _writers.clear()
        pool = _writers[os.getpid()] = ThreadPoolExecutor(max_workers=2, thread_name_prefix="serialoct-direct-write")
    return pool


def aligned_empty(shape, dtype=np.float32) -> np.ndarray:
    """A C-contiguous array whose first byte is aligned to a block, so :func:`read_into` can read into it directly."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + _BLOCK, dtype=np.uint8)
    start = -raw.ctypes.data % _BLOCK
    return raw[start : start + nbytes].view(dtype).reshape(shape)


class BufferPool:
    """Arrays of one shape handed out again once given back, their addresses aligned to a block.

    Decoding every tile into a fresh array makes the kernel zero a fresh page
    for every 4 KiB of it; on a virtual machine that hands freed memory back to
    its host, that was up to a third of the mosaic step's CPU. A pool needs no
    more arrays than are in use at once. Thread-safe.
    """

    def __init__(self, shape: tuple[int, ...], dtype=np.float32):
        self.shape, self.dtype = tuple(int(n) for n in shape), np.dtype(dtype)
        self._free: list[np.ndarray] = []
        self._lent: set[int] = set()
        self._lock = threading.Lock()

    def take(self) -> np.ndarray:
        """A C-contiguous array of :attr:`shape` (contents undefined)."""
        with self._lock:
            array = self._free.pop() if self._free else aligned_empty(self.shape, self.dtype)
            self._lent.add(id(array))
        return array

    def give(self, arrays: Iterable[np.ndarray | None]) -> None:
        """Take back arrays from :meth:`take`; anything else is left alone."""
        with self._lock:
            for array in arrays:
                if id(array) in self._lent:
                    self._lent.discard(id(array))
                    self._free.append(array)


def read_into(path: str | os.PathLike, out) -> None:
    """Fill ``out`` (a writable C-contiguous buffer) with the first bytes of the file at ``path``.

    Directly from the disk when ``out`` starts on a block boundary (:func:`aligned_empty`) and is not small,
    the usual way otherwise.

    Raises
    ------
    OSError
        If the file cannot be read; ``EOFError`` if it is shorter than ``out``.
    """
    path = Path(path)
    view = memoryview(out).cast("B")
    whole = len(view) // _BLOCK * _BLOCK if np.frombuffer(view, np.uint8).ctypes.data % _BLOCK == 0 else 0

    def direct(fd: int) -> None:  # the whole blocks into view, the rest through an aligned block of this thread
        if _read_some(fd, view[:whole], 0) < whole:
            raise EOFError(f"{path}: ends before byte {len(view):,}")
        if whole < len(view):
            block = getattr(_local, "block", None)  # not the staging buffer: a writer's parts may be read meanwhile
            if block is None:
                block = _local.block = aligned_empty(_BLOCK, np.uint8)
            if _read_some(fd, memoryview(block), whole) < len(view) - whole:
                raise EOFError(f"{path}: ends before byte {len(view):,}")
            view[whole:] = block[: len(view) - whole]

    if not (whole >= MIN_DIRECT_BYTES and _read_direct(path, direct)):
        _read_usual(path, view, 0)


def read_range(path: str | os.PathLike, offset: int, length: int) -> np.ndarray:
    """Bytes ``offset .. offset + length - 1`` of the file at ``path``, as a uint8 view of this thread's read buffer.

    The view is valid until this thread's next :func:`read_range`. The whole blocks around the range are read
    with ``O_DIRECT`` where allowed (the range is not small), the range alone the usual way otherwise. The
    buffer grows to the largest range read and is kept, so its pages stay backed.

    Raises
    ------
    OSError
        If the file cannot be read; ``EOFError`` if it ends before the range does.
    """
    path, offset, length = Path(path), int(offset), int(length)
    start = offset // _BLOCK * _BLOCK
    stop = -(-(offset + length) // _BLOCK) * _BLOCK
    buffer = getattr(_local, "ranges", None)
    if buffer is None or buffer.size < stop - start:
        buffer = _local.ranges = aligned_empty(stop - start, np.uint8)

    def direct(fd: int) -> None:
        if _read_some(fd, memoryview(buffer)[: stop - start], start) < offset + length - start:
            raise EOFError(f"{path}: ends before byte {offset + length:,}")

    if length >= MIN_DIRECT_BYTES and _read_direct(path, direct):
        return buffer[offset - start : offset - start + length]
    _read_usual(path, memoryview(buffer)[:length], offset)
    return buffer[:length]


def _read_direct(path: Path, read) -> bool:
    """``read(fd)`` with ``path`` opened with ``O_DIRECT``; False where not allowed or the file system refuses
    (remembered). A refusal comes at the opening or the first read, before anything was read."""
    if not _direct_allowed(path.parent):
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        try:
            read(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        if exc.errno not in _REFUSED:
            raise
        _refused_devices.add(os.stat(path.parent).st_dev)
        return False
    return True


def _read_some(fd: int, view: memoryview, offset: int) -> int:
    """Read into ``view`` from ``offset`` (both on block boundaries, ``fd`` opened with ``O_DIRECT``) until it is
    full or the file ends; the bytes read. A read that ends off a block boundary has met the file's end (the next
    would be refused as unaligned)."""
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset + done)
        done += got
        if got == 0 or got % _BLOCK:
            break
    return done


def _read_usual(path: Path, view: memoryview, offset: int) -> None:
    """Fill ``view`` from ``offset`` of the file, through the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        done = 0
        while done < len(view):
            got = os.preadv(fd, [view[done:]], offset + done)
            if got == 0:
                raise EOFError(f"{path}: ends before byte {offset + len(view):,}")
            done += got
    finally:
        os.close(fd)


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
    """Bytes gathered in this thread's staging buffers and written whole buffers at a time, by a writer thread
    while the other buffer fills (one write in flight, so the writes keep the file's order); the last buffer
    padded to whole blocks, then the file cut to its true length."""

    def __init__(self, path: Path):
        self.fd = _open_direct(path)
        self.buffers = _staging_buffers()
        self.buffer = self.buffers[0]
        self.filled = 0
        self.total = 0
        self.pending: Future | None = None  # the write of the other buffer

    def write(self, part) -> None:
        data = np.frombuffer(part, dtype=np.uint8)
        self.total += data.size
        taken = 0
        while taken < data.size:
            n = min(_STAGING - self.filled, data.size - taken)
            self.buffer[self.filled : self.filled + n] = data[taken : taken + n]
            self.filled, taken = self.filled + n, taken + n
            if self.filled == _STAGING:
                self._hand_over()

    def _hand_over(self) -> None:
        """Have the full buffer written in the background, and go on filling the other."""
        self._wait()
        self.pending = _writer().submit(_write_all, self.fd, memoryview(self.buffer))
        self.buffer = self.buffers[1] if self.buffer is self.buffers[0] else self.buffers[0]
        self.filled = 0

    def _wait(self) -> None:
        """Wait for the write in flight; its error is raised here."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()

    def write_blocks(self) -> None:
        """Write the whole blocks gathered so far, now; the partial one stays in the buffer."""
        self._wait()
        whole = self.filled // _BLOCK * _BLOCK
        if whole:
            _write_all(self.fd, memoryview(self.buffer[:whole]))
            rest = self.filled - whole  # < one block <= whole: the two ranges do not overlap
            self.buffer[:rest] = self.buffer[whole : self.filled]
            self.filled = rest

    def finish(self) -> None:
        self._wait()
        if self.filled:
            padded = -(-self.filled // _BLOCK) * _BLOCK
            self.buffer[self.filled : padded] = 0
            _write_all(self.fd, memoryview(self.buffer[:padded]))
            self.filled = 0
        os.ftruncate(self.fd, self.total)

    def close(self) -> None:
        if self.pending is not None:  # after an error: the write in flight still uses the file and a buffer
            wait([self.pending])
            self.pending = None
        os.close(self.fd)


def _open_direct(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o666)


def _write_all(fd: int, view: memoryview) -> None:
    done = 0
    while done < len(view):
        done += os.write(fd, view[done:])
