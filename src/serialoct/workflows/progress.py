"""Snakemake's progress as a progress bar in a terminal, as plain lines otherwise.

Snakemake reports ``N of M steps (P%) done`` after every job and a block of
lines per job. In a terminal, :func:`follow` shows one bar (jobs done of all
jobs, the last rule finished) and lets through only what a person must see
(errors, warnings, the final summary); elsewhere (a log file, a batch job) it
passes every line through unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TextIO

__all__ = ["ProgressLine", "follow", "parse_line"]

_DONE = re.compile(r"(\d+) of (\d+) steps \((\d+(?:\.\d+)?)%\) done")
_FINISHED = re.compile(r"Finished job(?:id)?:? ?\d+ \(Rule: (\w+)\)|\(Rule: (\w+)\)")
#: Lines a person must see even with a bar: failures, warnings, what to do.
_IMPORTANT = ("Error", "error", "Exception", "WARNING", "Warning", "MissingInput", "Nothing to be done", "Complete log",
              "exited with non-zero exit code", "Trying to restart", "Removing output files", "IncompleteFilesException")


@dataclass(frozen=True)
class ProgressLine:
    """What one line of Snakemake's output says: jobs done of all, the rule just finished, or that it matters."""

    done: int | None = None
    total: int | None = None
    rule: str | None = None
    important: bool = False


def parse_line(line: str) -> ProgressLine:
    """Classify one line of Snakemake's output.

    Examples
    --------
    >>> parse_line("57 of 60 steps (95%) done")
    ProgressLine(done=57, total=60, rule=None, important=False)
    >>> parse_line("Finished jobid: 54 (Rule: stack)").rule
    'stack'
    >>> parse_line("Error in rule stack:").important
    True
    """
    found = _DONE.search(line)
    if found:
        return ProgressLine(done=int(found.group(1)), total=int(found.group(2)))
    finished = _FINISHED.search(line)
    if finished and "Finished" in line:
        return ProgressLine(rule=finished.group(1) or finished.group(2))
    return ProgressLine(important=any(word in line for word in _IMPORTANT))


def follow(lines: Iterable[str], out: TextIO, *, bar: bool) -> None:
    """Copy Snakemake's output to ``out``: a progress bar plus the important lines, or every line."""
    if not bar:
        for line in lines:
            out.write(line)
            out.flush()
        return
    from tqdm import tqdm

    progress = None
    for line in lines:
        info = parse_line(line)
        if info.total is not None:
            if progress is None:
                progress = tqdm(total=info.total, unit="job", file=out, dynamic_ncols=True, desc="jobs")
            progress.total = info.total
            progress.n = info.done
            progress.refresh()
        elif info.rule is not None and progress is not None:
            progress.set_postfix_str(info.rule, refresh=True)
        elif info.important:
            if progress is None:
                out.write(line)
            else:
                progress.write(line.rstrip("\n"), file=out)
    if progress is not None:
        progress.close()
