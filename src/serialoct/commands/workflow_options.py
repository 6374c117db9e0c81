"""Options shared by the workflow commands (``preproc``): every registry parameter, a config file, cores."""

from __future__ import annotations

import argparse
from pathlib import Path

from serialoct.errors import InputError
from serialoct.params import allowed_text, format_value, registry


def add_workflow_arguments(parser: argparse.ArgumentParser, workflow: str) -> None:
    """``--PARAM VALUE`` for every parameter of ``workflow`` plus ``--config``, ``--cores``, ``--dry-run``."""
    parser.add_argument("--config", metavar="FILE.yaml", help="parameters from a YAML file (command-line values win)")
    parser.add_argument("--cores", type=int, help="cores to use at once (default: from max_cpus / reserved_cpus)")
    parser.add_argument("--dry-run", action="store_true", help="show what would run, run nothing")
    group = parser.add_argument_group(f"parameters (see 'serialoct params {workflow}')")
    for name, p in registry(workflow).items():
        status = "" if p.implemented else "; not implemented yet"
        group.add_argument(
            f"--{name}", metavar="VALUE", default=None,
            help=f"{p.description} [{allowed_text(p)}; default {format_value(p.default)}{status}]",
        )


def overrides_from(args: argparse.Namespace, workflow: str) -> dict[str, object]:
    """Parameter values from ``--config`` then the command line (strings, validated later)."""
    values: dict[str, object] = {}
    if args.config:
        import yaml

        path = Path(args.config)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise InputError(path, "config file not found") from None
        except yaml.YAMLError as exc:
            raise InputError(path, f"not valid YAML ({exc})") from None
        if not isinstance(loaded, dict):
            raise InputError(path, "expected a mapping of parameter: value")
        values.update(loaded)
    values.update({name: getattr(args, name) for name in registry(workflow) if getattr(args, name) is not None})
    return values
