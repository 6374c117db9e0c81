"""Write outputs to a temporary sibling and rename them into place when complete.

A step that is killed mid-write leaves only a hidden ``.NAME.tmp-PID-XXXXXXXX``
sibling, never a half-written file or folder under the final name, so a
workflow engine that sees the final path can trust it (DESIGN.md, principle 6).
The temporary lives in the same directory as the final path so that the
rename stays on one file system and is atomic for files.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_output", "write_bytes_atomic", "write_text_atomic"]

logger = logging.getLogger(__name__)


def _sibling(final: Path, tag: str) -> Path:
    return final.with_name(f".{final.name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}")


def _remove(path: Path) -> None:
    """Delete a file, link or folder tree; nothing if absent."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _move_into_place(new: Path, final: Path) -> None:
    """Rename ``new`` to ``final``, replacing whatever is there.

    A file over a file is one atomic ``os.replace``. A folder (or a change
    of kind) cannot be replaced atomically, so the old output is renamed
    away first, restored if the second rename fails, and deleted last.
    """
    if not os.path.lexists(final):
        os.rename(new, final)
        return
    if new.is_file() and final.is_file() and not final.is_symlink():
        os.replace(new, final)
        return
    old = _sibling(final, "old")
    os.rename(final, old)
    try:
        os.rename(new, final)
    except BaseException:
        os.rename(old, final)
        raise
    logger.debug("replaced existing output %s", final)
    _remove(old)


@contextmanager
def atomic_output(final_path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to ``final_path`` on success.

    Parameters
    ----------
    final_path : str or os.PathLike
        Where the finished output (file or folder) must appear. Its parent
        folder is created if missing; an existing output there is replaced
        only once the new one is complete.

    Yields
    ------
    pathlib.Path
        A path that does not exist yet, in the same folder as ``final_path``
        (``.NAME.tmp-PID-RANDOM``). The body creates the file or folder there.

    Raises
    ------
    FileNotFoundError
        If the body finished without creating anything at the temporary path.

    Notes
    -----
    If the body raises (or is interrupted), the temporary is removed, the
    final path is left untouched and the exception propagates.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "table.csv"
    >>> with atomic_output(out) as tmp:
    ...     _ = tmp.write_text("a,b\\n1,2\\n")
    >>> out.read_text()
    'a,b\\n1,2\\n'
    """
    final = Path(final_path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(final, "tmp")
    try:
        yield tmp
        if not os.path.lexists(tmp):
            raise FileNotFoundError(f"{final}: nothing was written to the temporary path {tmp.name}")
        _move_into_place(tmp, final)
    except BaseException:
        _remove(tmp)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename).

    Returns
    -------
    pathlib.Path
        The final path.
    """
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; see :func:`write_bytes_atomic`."""
    return write_bytes_atomic(path, text.encode(encoding))
