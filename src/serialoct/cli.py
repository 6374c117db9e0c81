"""The ``serialoct`` command line.

Every command lives in a small module of :mod:`serialoct.commands` that
declares its arguments and imports the heavy libraries only when it runs, so
``serialoct --help`` and ``serialoct step NAME --help`` start fast (a workflow
starts one process per step and slice).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from serialoct import __version__
from serialoct.errors import SerialOctError

# name -> (module, one-line help). Modules expose add_arguments(parser) and run(args) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "params": ("serialoct.commands.params", "print a workflow's parameters with defaults and status"),
    "synth": ("serialoct.commands.synth", "render a synthetic acquisition with its ground truth"),
    "inspect": ("serialoct.commands.inspect", "summarise a raw acquisition (slices, grid, holes, geometry)"),
    "preproc": ("serialoct.commands.preproc", "raw tiles -> mosaic grids, shifts_xy.csv, slice_config.csv (Snakemake workflow)"),
    "reconstruct": ("serialoct.commands.reconstruct", "mosaic grids -> corrected, stitched, aligned 3D volume (Snakemake workflow)"),
    "demo": ("serialoct.commands.demo", "render a small synthetic acquisition and process it"),
    "step": ("serialoct.commands.step", "run one pipeline step (what the workflows call)"),
}


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="serialoct",
        description="Reconstruct serial-section OCT acquisitions into OME-Zarr volumes.",
        epilog="Run 'serialoct COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"serialoct {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s" if verbose else "%(message)s",
        stream=sys.stderr,
    )


#: Exit status of a command whose reader closed its output (128 + SIGPIPE, as the shell reports such a command).
BROKEN_PIPE_STATUS = 141
#: Exit status of a command stopped by Ctrl-C (128 + SIGINT).
INTERRUPTED_STATUS = 130
#: Commands that run a workflow: run again, they do only what is missing.
RESUMABLE = ("preproc", "reconstruct", "demo")


def main(argv: list[str] | None = None) -> int:
    try:
        return run_command(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:
        # The reader went away (``serialoct inspect RAW | head``): leave without a traceback, and without
        # the interpreter's failed flush of the standard output at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE_STATUS


def run_command(argv: list[str]) -> int:
    """``serialoct ARGV`` in this process."""
    argv = list(argv)
    verbose = False
    while argv and argv[0] in ("-v", "--verbose"):
        verbose = True
        argv.pop(0)
    if not argv or argv[0] not in COMMANDS:
        _top_parser().parse_args(argv)  # prints help / version / the error and exits
        _top_parser().print_help()
        return 2
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"serialoct {name}", description=COMMANDS[name][1])
    if name == "step":  # a job: its step's options alone
        module.add_arguments(parser, rest)
    else:
        module.add_arguments(parser)
    args = parser.parse_args(rest)
    _configure_logging(verbose)
    try:
        return int(module.run(args) or 0)
    except SerialOctError as exc:
        print(f"serialoct {name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        resumes = "; the same command resumes where it stopped" if name in RESUMABLE else ""
        print(f"\nserialoct {name}: interrupted{resumes}", file=sys.stderr)
        return INTERRUPTED_STATUS


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
