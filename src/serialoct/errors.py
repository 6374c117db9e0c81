"""One exception hierarchy for everything serialoct refuses.

Expected failures of an algorithm (a tile pair without texture, a slice that
cannot be registered) are returned as data; these exceptions are for input
that is wrong, and their messages name the file or value, what was expected
and, where one exists, the fix.
"""

from __future__ import annotations

import os


class SerialOctError(Exception):
    """Base class of every error serialoct raises on purpose."""


class InputError(SerialOctError):
    """An input file or folder is missing, unreadable or inconsistent.

    Parameters
    ----------
    path : str or os.PathLike
        The file or folder at fault.
    problem : str
        What is wrong with it, with the value found and the value expected.
    """

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class FormatError(InputError):
    """A file exists but its content does not follow the documented format."""


class OutputError(SerialOctError):
    """An output cannot be written: the disk is full or the folder is not writable.

    Unlike :class:`InputError`, this is a fault of the environment, not of the
    data: a workflow never records it as a failed slice (freeing space or
    fixing permissions and rerunning resumes the run).

    Parameters
    ----------
    path : str or os.PathLike
        The output (or output folder) that could not be written.
    problem : str
        What went wrong, and the fix.
    """

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ParameterError(SerialOctError, ValueError):
    """A parameter name is unknown or its value is not allowed."""
