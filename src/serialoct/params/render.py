"""Views generated from the registry: terminal and README tables, the default
config mapping, the Snakemake config schema and a resolved config as YAML.

Nothing here is maintained by hand; ``tests/test_params.py`` fails when the
README tables drift from the registry (regenerate them with
``python -m serialoct.params --write-readme README.md``).
"""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from collections.abc import Mapping

from serialoct.params.model import Parameter, allowed_text, format_value, plain
from serialoct.params.presets import PRESETS
from serialoct.params.registry import check_workflow, groups, registry

__all__ = [
    "config_schema",
    "readme_markers",
    "render_config",
    "render_table",
    "to_yaml_config",
    "update_readme",
]

_HEADERS = ("Parameter", "Default", "Allowed", "Status", "Step", "Description")


def _status(p: Parameter) -> str:
    return "implemented" if p.implemented else "not yet"


def _default(p: Parameter) -> str:
    return "(required)" if p.required else format_value(p.default)


def _description(p: Parameter, extension_note: str) -> str:
    return p.description + (extension_note if p.extension else "")


def _by_group(workflow: str) -> list[tuple[str, list[Parameter]]]:
    params = registry(workflow)
    return [(g, [p for p in params.values() if p.group == g]) for g in groups(workflow)]


# Widest a text-table column may grow before its cells wrap; the description
# goes on the lines below its row, wrapped to the table width.
_TEXT_WIDTHS = (44, 18, 26, 11, 30)
_DESCRIPTION_INDENT = "      "


def _text_row(cells: tuple[str, ...], widths: list[int]) -> list[str]:
    wrapped = [textwrap.wrap(c, w, break_on_hyphens=False) or [""] for c, w in zip(cells, widths)]
    height = max(len(w) for w in wrapped)
    lines = []
    for i in range(height):
        parts = [(col[i] if i < len(col) else "").ljust(w) for col, w in zip(wrapped, widths)]
        lines.append(("  " + "  ".join(parts)).rstrip())
    return lines


def _text(workflow: str, width: int) -> str:
    params = list(registry(workflow).values())
    rows = {p.name: (p.name, _default(p), allowed_text(p), _status(p), p.step) for p in params}
    widths = [min(cap, max(len(h), *(len(r[i]) for r in rows.values())))
              for i, (h, cap) in enumerate(zip(_HEADERS, _TEXT_WIDTHS))]
    out = [f"serialoct {workflow} parameters (description below each row)", ""]
    out += _text_row(tuple(h.lower() for h in _HEADERS[:-1]), widths)
    for group, members in _by_group(workflow):
        out += ["", group]
        for p in members:
            out += _text_row(rows[p.name], widths)
            out += textwrap.wrap(_description(p, " [serialoct only]"), max(40, width),
                                 initial_indent=_DESCRIPTION_INDENT, subsequent_indent=_DESCRIPTION_INDENT)
    if workflow == "reconst_3d":
        out += ["", "Presets (--preset NAME), applied over the defaults and under your values:"]
        for preset in PRESETS.values():
            sets = ", ".join(f"{k}={format_value(v)}" for k, v in preset.values.items())
            out += textwrap.wrap(f"{preset.name}: {preset.summary}", max(40, width),
                                 initial_indent="  ", subsequent_indent="    ")
            out += textwrap.wrap(f"sets {sets}", max(40, width), initial_indent="    ",
                                 subsequent_indent="      ")
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", r"\|")


def _markdown(workflow: str) -> str:
    out: list[str] = []
    for group, params in _by_group(workflow):
        out += [f"#### {group}", "", "| " + " | ".join(_HEADERS) + " |",
                "|" + "---|" * len(_HEADERS)]
        for p in params:
            steps = ", ".join(f"`{s}`" for s in p.steps)
            default = "(required)" if p.required else f"`{_default(p)}`"
            cells = (f"`{p.name}`", default, allowed_text(p), _status(p), steps,
                     _description(p, " *(serialoct only)*"))
            out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        out.append("")
    if workflow == "reconst_3d":
        out += ["#### Presets (`--preset NAME`)", "",
                "Applied over the defaults and under your own values.", "",
                "| Preset | Sets | When to use |", "|---|---|---|"]
        for preset in PRESETS.values():
            sets = ", ".join(f"`{k}={format_value(v)}`" for k, v in preset.values.items())
            out.append(f"| `{preset.name}` | {_cell(sets)} | {_cell(preset.summary)} |")
        out.append("")
    return "\n".join(out)


def render_table(workflow: str, fmt: str = "text", *, width: int | None = None) -> str:
    """Render the parameters of ``workflow`` as a table, grouped as in the guide.

    Parameters
    ----------
    workflow : {'preproc', 'reconst_3d'}
    fmt : {'text', 'markdown'}
        ``text`` for the terminal (aligned columns); ``markdown`` for the
        README (one sub-table per group, then the presets).
    width : int, optional
        Line width of the text table, where long cells wrap; the terminal's
        width by default (100 when it cannot be told).

    Returns
    -------
    str
        Columns: parameter, default, allowed values, status (implemented or
        not yet), consuming steps, description.
    """
    check_workflow(workflow)
    if fmt == "text":
        return _text(workflow, width or shutil.get_terminal_size((100, 24)).columns)
    if fmt == "markdown":
        return _markdown(workflow)
    raise ValueError(f"unknown table format {fmt!r}; expected 'text' or 'markdown'")


def to_yaml_config(workflow: str) -> dict[str, object]:
    """Return the default configuration of ``workflow`` as a plain mapping.

    Required parameters (the preprocessing ``input``) have no default and are
    left out: the user must give them. Lists are plain lists, so the result
    can be dumped with ``yaml.safe_dump`` or ``json.dump``.
    """
    return {name: plain(p.default) for name, p in registry(workflow).items() if not p.required}


def render_config(workflow: str, config: Mapping[str, object]) -> str:
    """Format a resolved configuration as YAML text, one parameter per line.

    Values that differ from the default carry a ``# default: ...`` comment;
    groups are introduced by comments. The output is valid YAML (strings are
    JSON-quoted) and can be used as a Snakemake config file.
    """
    out = [f"# serialoct {workflow} configuration"]
    for group, params in _by_group(workflow):
        out += ["", f"# {group}"]
        for p in params:
            if p.name not in config:
                continue
            value = config[p.name]
            text = json.dumps(value) if isinstance(value, str) else format_value(value)
            changed = not p.required and plain(p.default) != value
            out.append(f"{p.name}: {text}" + (f"  # default: {_default(p)}" if changed else ""))
    return "\n".join(out) + "\n"


_JSON_TYPES = {"bool": "boolean", "int": "integer", "float": "number",
               "str": "string", "path": "string", "choice": "string"}


def _bounds_schema(p: Parameter) -> dict[str, object]:
    b, schema = p.bounds, {}
    if b is not None and b.low is not None:
        schema["exclusiveMinimum" if b.low_open else "minimum"] = b.low
    if b is not None and b.high is not None:
        schema["exclusiveMaximum" if b.high_open else "maximum"] = b.high
    return schema


def _property(p: Parameter) -> dict[str, object]:
    if p.type == "float_list":
        prop: dict[str, object] = {"type": "array", "minItems": 1,
                                   "items": {"type": "number", **_bounds_schema(p)}}
    else:
        prop = {"type": _JSON_TYPES[p.type]}
        limits = _bounds_schema(p)
        if limits and p.sentinels:
            prop["anyOf"] = [{"enum": list(p.sentinels)}, limits]
        else:
            prop.update(limits)
    if p.nullable:
        prop["type"] = [prop["type"], "null"]
    if p.choices is not None:
        prop["enum"] = list(p.choices) + ([None] if p.nullable else [])
    if p.pattern is not None:
        prop["pattern"] = f"^(?:{p.pattern})$"
    if not p.required:
        prop["default"] = plain(p.default)
    prop["description"] = p.description
    return prop


def config_schema(workflow: str) -> dict[str, object]:
    """Return a JSON Schema (draft-07) of the ``workflow`` config for Snakemake.

    Every parameter becomes a property with its type, default, description and,
    where declared, ``enum``, bounds and ``pattern``; unknown keys are refused
    (``additionalProperties: false``) and required parameters are listed.
    Use with ``snakemake.utils.validate(config, schema)``.
    """
    params = registry(workflow)
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": f"serialoct {workflow} configuration",
        "type": "object",
        "properties": {name: _property(p) for name, p in params.items()},
        "required": [name for name, p in params.items() if p.required],
        "additionalProperties": False,
    }


def readme_markers(workflow: str) -> tuple[str, str]:
    """Return the README comment lines that enclose the table of ``workflow``."""
    return f"<!-- BEGIN params:{workflow} -->", f"<!-- END params:{workflow} -->"


def update_readme(text: str) -> str:
    """Return README ``text`` with both workflows' tables regenerated.

    Raises
    ------
    ValueError
        A workflow's BEGIN/END markers are missing.
    """
    for workflow in ("preproc", "reconst_3d"):
        begin, end = readme_markers(workflow)
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
        if not pattern.search(text):
            raise ValueError(f"README has no {begin} ... {end} markers")
        block = f"{begin}\n{render_table(workflow, 'markdown')}{end}"
        text = pattern.sub(lambda _: block, text, count=1)
    return text
