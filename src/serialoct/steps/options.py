"""Command-line options of a step, derived from the parameter registry.

A step names the registry parameters it reads; their flags, defaults, help
and validation all come from :mod:`serialoct.params`, so a step cannot
drift from the workflow's parameter table. Booleans are ``--name`` /
``--no-name`` flags (``--use_gpu`` / ``--no-use_gpu``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from serialoct.params import allowed_text, coerce, format_value, registry

__all__ = ["add_parameter_options", "parameters_from_args"]


def add_parameter_options(parser: argparse.ArgumentParser, workflow: str, names: Sequence[str]) -> None:
    """Add one option per registry parameter ``names`` of ``workflow``."""
    params = registry(workflow)
    group = parser.add_argument_group(f"{workflow} parameters (see 'serialoct params {workflow}')")
    for name in names:
        p = params[name]
        help_text = f"{p.description} [{allowed_text(p)}; default {format_value(p.default)}]"
        if p.type == "bool":
            group.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, default=p.default, help=help_text)
        else:
            group.add_argument(f"--{name}", default=p.default, metavar="VALUE", help=help_text)


def parameters_from_args(args: argparse.Namespace, workflow: str, names: Sequence[str]) -> dict[str, object]:
    """The validated values of ``names`` from parsed arguments.

    Raises
    ------
    ParameterError
        A value the registry does not allow, or a parameter serialoct does
        not implement yet set away from its default.
    """
    from serialoct.params import validate

    params = registry(workflow)
    values = {name: coerce(params[name], getattr(args, name)) for name in names}
    changed = {name: value for name, value in values.items() if value != params[name].default}
    validate(workflow, changed)  # refuses parameters that are not implemented yet
    return values
