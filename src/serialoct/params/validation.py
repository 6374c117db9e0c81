"""Resolve a workflow configuration: defaults < preset < user overrides.

Every value is checked against its declaration, every problem is reported at
once, and a parameter that serialoct does not implement yet may only keep its
default, so a run never silently ignores a setting its user asked for.
"""

from __future__ import annotations

from collections.abc import Mapping

from serialoct.errors import ParameterError
from serialoct.params.model import Parameter, coerce, format_value, plain
from serialoct.params.presets import preset_overlay
from serialoct.params.registry import WORKFLOWS, registry

__all__ = ["resolve", "validate"]

#: (workflow, lower, upper): the value of ``lower`` may not exceed that of ``upper``.
_ORDERED_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("reconst_3d", "transform_confidence_low", "transform_confidence_high"),
)

# An override: (name, value, preset that set it or None for the user).
_Item = tuple[str, object, "str | None"]


def _unknown(workflow: str, name: object) -> str:
    import difflib  # only needed on this error path; keeps CLI start-up lean

    params = registry(workflow)
    message = f"unknown {workflow} parameter {name!r}"
    close = difflib.get_close_matches(str(name), list(params), n=3, cutoff=0.6)
    others = [w for w in WORKFLOWS if w != workflow and name in registry(w)]
    if others:
        message += f" (it is a {others[0]} parameter)"
    if close:
        names = [repr(c) for c in close]
        alternatives = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]
        message += f"; did you mean {alternatives}?"
    return message + f" (run 'serialoct params {workflow}' to list them)"


def _not_implemented(p: Parameter, value: object, preset: str | None) -> str:
    where = "is not implemented yet in serialoct (see the README parameter table)"
    if preset is None:
        return f"parameter {p.name!r} {where}; leave it at its default ({format_value(p.default)})"
    return (
        f"preset {preset!r} sets parameter {p.name!r} to {format_value(value)}, but that parameter "
        f"{where}; the preset cannot be used until it is (default: {format_value(p.default)})"
    )


def _check_order(workflow: str, config: Mapping[str, object]) -> list[str]:
    problems = []
    for wf, low, high in _ORDERED_PAIRS:
        if wf == workflow and config[low] > config[high]:
            problems.append(
                f"parameter {low!r} ({format_value(config[low])}) may not exceed "
                f"{high!r} ({format_value(config[high])})"
            )
    return problems


def _resolve(workflow: str, items: list[_Item]) -> dict[str, object]:
    params = registry(workflow)
    config = {name: p.default for name, p in params.items()}
    origin: dict[str, str | None] = {}
    problems: list[str] = []
    for name, value, preset in items:
        if name not in params:
            problems.append(_unknown(workflow, name))
            continue
        try:
            config[name] = coerce(params[name], value)
        except ParameterError as exc:
            problems.append(f"{exc} (set by preset {preset!r})" if preset else str(exc))
            continue
        origin[name] = preset
    for name, preset in origin.items():
        p = params[name]
        if not p.implemented and config[name] != p.default:
            problems.append(_not_implemented(p, config[name], preset))
    if not problems:
        problems = _check_order(workflow, config)
    if len(problems) == 1:
        raise ParameterError(problems[0])
    if problems:
        raise ParameterError(f"{len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems))
    return {name: plain(value) for name, value in config.items()}


def validate(workflow: str, overrides: Mapping[str, object]) -> dict[str, object]:
    """Check user overrides and return the full configuration.

    Parameters
    ----------
    workflow : {'preproc', 'reconst_3d'}
    overrides : Mapping[str, object]
        Parameter name -> value, as Python values, YAML values or CLI strings
        (``"true"``, ``"null"``, ``"10,25,50"``...). Not modified.

    Returns
    -------
    dict
        Every parameter of the workflow in table order, defaults overlaid
        with the coerced overrides; lists are plain lists (YAML/JSON safe).

    Raises
    ------
    ParameterError
        Listing every problem at once: an unknown name (with close matches),
        a value that is not allowed (with what is allowed), a parameter that
        is not implemented yet set away from its default, or inconsistent
        values (``transform_confidence_low`` above ``transform_confidence_high``).

    Examples
    --------
    >>> validate("reconst_3d", {"stitch_blending_method": "diffusion"})["resolution"]
    10.0
    """
    return _resolve(workflow, [(name, value, None) for name, value in overrides.items()])


def resolve(
    workflow: str,
    overrides: Mapping[str, object] | None = None,
    preset: str | None = None,
) -> dict[str, object]:
    """Return the configuration of a run: defaults < preset < overrides.

    Parameters
    ----------
    workflow : {'preproc', 'reconst_3d'}
    overrides : Mapping[str, object], optional
        User values; they win over the preset's.
    preset : {'conservative', 'aggressive', 'minimal'}, optional
        Robustness preset (``reconst_3d`` only), see
        :mod:`serialoct.params.presets`. Its values are validated like
        overrides, so it cannot turn on a parameter serialoct does not
        implement yet; a preset value equal to the default is always fine.

    Returns
    -------
    dict
        As :func:`validate`.

    Raises
    ------
    ParameterError
        As :func:`validate`; also for an unknown preset, or a preset given
        to a workflow other than ``reconst_3d``.
    """
    items: list[_Item] = []
    if preset is not None:
        overlay = preset_overlay(preset)
        if workflow != "reconst_3d":
            raise ParameterError(f"presets apply to the reconst_3d workflow, not to {workflow!r}")
        items += [(name, value, preset) for name, value in overlay.items()]
    items += [(name, value, None) for name, value in (overrides or {}).items()]
    return _resolve(workflow, items)
