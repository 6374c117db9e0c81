"""``serialoct params``: print a workflow's parameters, or check a configuration.

    serialoct params reconst_3d                      # table: default, allowed, status, step
    serialoct params reconst_3d --markdown           # the README table
    serialoct params reconst_3d --check resolution=25 use_gpu=false
    serialoct params reconst_3d --preset minimal     # resolved config as YAML

``--check`` and ``--preset`` print the resolved configuration as YAML (valid
as a config file) or fail with exit status 2 naming every bad parameter.
Standard library only, so the command starts fast.
"""

from __future__ import annotations

import argparse

from serialoct.errors import ParameterError
from serialoct.params import PRESETS, WORKFLOWS, render_config, render_table, resolve

__all__ = ["add_arguments", "parse_assignments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``serialoct params``."""
    parser.add_argument("workflow", choices=WORKFLOWS, help="which workflow's parameters")
    parser.add_argument("--markdown", action="store_true",
                        help="print the table as Markdown (as in the README)")
    parser.add_argument("--preset", choices=list(PRESETS),
                        help="apply a reconst_3d robustness preset and print the resolved config")
    parser.add_argument("--check", nargs="*", metavar="KEY=VALUE",
                        help="validate these values and print the resolved config")


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """Split ``KEY=VALUE`` words into a mapping (values stay strings).

    Raises
    ------
    ParameterError
        A word has no ``=`` or an empty key.
    """
    overrides: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"{pair!r} is not KEY=VALUE (e.g. resolution=25)")
        overrides[key.strip()] = value
    return overrides


def run(args: argparse.Namespace) -> int:
    """Print the table, or the resolved configuration for ``--check``/``--preset``."""
    if args.check is None and args.preset is None:
        print(render_table(args.workflow, "markdown" if args.markdown else "text"), end="")
        return 0
    if args.markdown:
        raise ParameterError("--markdown prints the parameter table; leave out --check and --preset")
    config = resolve(args.workflow, parse_assignments(args.check or []), preset=args.preset)
    print(render_config(args.workflow, config), end="")
    return 0
