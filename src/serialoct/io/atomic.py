"""Write outputs to a temporary sibling and rename them into place when complete.

A step that is killed mid-write leaves only a hidden ``.NAME.tmp-PID-XXXXXXXX``
sibling, never a half-written file or folder under the final name, so a
workflow engine that sees the final path can trust it (DESIGN.md, principle 6).
The temporary lives in the same directory as the final path so that the
rename stays on one file system and is atomic for files.

A process killed outright (SIGKILL, power loss) cannot clean up after
itself: its temporaries stay behind, hidden. Whoever owns the output folder
(the workflow runner) removes them with :func:`remove_stale_temporaries`
before it starts. Staleness is decided by ownership, not by the PID in the
name, which means nothing on a file system shared by several machines.

A full disk or a folder that cannot be written is reported as an
:class:`~serialoct.errors.OutputError` naming the output, not as a bare
``OSError``.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from serialoct.errors import OutputError

__all__ = [
    "atomic_output",
    "make_output_dir",
    "output_error",
    "remove_stale_temporaries",
    "write_bytes_atomic",
    "write_text_atomic",
]

logger = logging.getLogger(__name__)

#: Names of the hidden siblings this module creates: ``.NAME.tmp-PID-HEX`` / ``.NAME.old-PID-HEX``.
TEMPORARY_RE = re.compile(r"^\..+\.(tmp|old)-\d+-[0-9a-f]{8}$")
_FULL = {errno.ENOSPC, errno.EDQUOT}
_NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}


def _sibling(final: Path, tag: str) -> Path:
    return final.with_name(f".{final.name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}")


def output_error(final: str | os.PathLike, exc: OSError) -> OutputError | None:
    """The :class:`OutputError` for an ``OSError`` raised while writing ``final``, or None.

    A full disk or quota (``ENOSPC``, ``EDQUOT``) is always about
    the output. A permission or read-only error (``EACCES``, ``EPERM``,
    ``EROFS``) is only when it names the output, its temporary or its folder
    (or names nothing): an unreadable *input* opened while writing stays the
    reader's error. Anything else is None (the caller re-raises it as is).
    """
    final = Path(os.path.abspath(final))
    folder = final.parent
    if exc.errno in _FULL:
        free = ""
        try:
            free = f" ({shutil.disk_usage(folder).free:,} bytes free)"
        except OSError:
            pass
        return OutputError(final, f"no space left on device while writing it{free}; free some space and rerun to resume")
    if exc.errno in _NOT_WRITABLE:
        named = [Path(os.path.abspath(os.fsdecode(f))) for f in (exc.filename, exc.filename2) if f is not None]
        if not named or any(_belongs_to(n, final) for n in named):
            return OutputError(
                folder,
                f"output folder is not writable ({exc.strerror}) while writing {final.name}; "
                "choose another output folder or fix its permissions",
            )
    return None


def _belongs_to(path: Path, final: Path) -> bool:
    """``path`` is the output, its folder, one of its hidden siblings, or inside one of them."""
    if path == final.parent:
        return True
    prefix = f".{final.name}."
    return any(p == final or (p.parent == final.parent and p.name.startswith(prefix)) for p in (path, *path.parents))


def make_output_dir(path: str | os.PathLike) -> Path:
    """Create an output folder (and its parents) if missing.

    Raises
    ------
    OutputError
        If it cannot be created (read-only file system, no permission, disk full).
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(path, "exists and is not a folder; choose another output path") from None
    except OSError as exc:
        if exc.errno in _FULL:
            raise OutputError(path, "no space left on device to create this folder") from exc
        raise OutputError(path, f"output folder cannot be created ({exc.strerror}); choose another output folder or fix its permissions") from exc
    return path


def remove_stale_temporaries(folder: str | os.PathLike, *, depth: int = 1) -> list[Path]:
    """Delete the hidden temporaries that killed writers left in ``folder``.

    Only names made by :func:`atomic_output` (``.NAME.tmp-PID-HEX``,
    ``.NAME.old-PID-HEX``) are removed, in ``folder`` and in its
    sub-folders down to ``depth`` levels (Snakemake's ``.snakemake`` folder
    and ``*.zarr`` stores are not entered). Call it only when no other
    process can be writing there: the workflow runner owns its output
    folder (``.serialoct/run.pid``) and calls it before it starts.

    Returns
    -------
    list of pathlib.Path
        What was removed.
    """
    removed: list[Path] = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for entry in sorted(folder.iterdir()):
        if TEMPORARY_RE.match(entry.name):
            _remove(entry)
            logger.info("removed %s, left by an interrupted write", entry)
            removed.append(entry)
        elif depth > 0 and entry.is_dir() and not entry.is_symlink() and entry.name != ".snakemake" and not entry.name.endswith(".zarr"):
            removed += remove_stale_temporaries(entry, depth=depth - 1)
    return removed


def _remove(path: Path) -> None:
    """Delete a file, link or folder tree; nothing if absent."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _remove_quietly(path: Path) -> None:
    """Best-effort cleanup on the error path: never hide the original error behind a second one."""
    try:
        _remove(path)
    except OSError as exc:
        logger.warning("could not remove the temporary %s: %s", path, exc)


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
    OutputError
        If the disk fills up or the folder is not writable (an ``OSError``
        of the body or of the rename, translated by :func:`output_error`).

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
    make_output_dir(final.parent)
    tmp = _sibling(final, "tmp")
    try:
        yield tmp
        if not os.path.lexists(tmp):
            raise FileNotFoundError(f"{final}: nothing was written to the temporary path {tmp.name}")
        _move_into_place(tmp, final)
    except BaseException as exc:
        _remove_quietly(tmp)
        translated = output_error(final, exc) if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError) else None
        if translated is not None:
            raise translated from exc
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
