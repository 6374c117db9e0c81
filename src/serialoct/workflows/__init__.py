"""Snakemake workflows shipped inside the package, and their importable target logic.

The Snakefiles only wire ``serialoct step`` commands together; which files a
run must produce, and the options each step gets, are computed here so they
can be unit-tested without Snakemake.
"""

from pathlib import Path

WORKFLOWS_DIR = Path(__file__).parent


def snakefile(workflow: str) -> Path:
    """The Snakefile of ``workflow`` (``preproc``)."""
    return WORKFLOWS_DIR / workflow / "Snakefile"
