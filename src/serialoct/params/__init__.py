"""The single registry of workflow parameters.

Every parameter of both workflows of the reference guide (``preproc`` and
``reconst_3d``) is declared once, with the guide's name and default, its
type, allowed values, a description, the steps that read it and whether
serialoct implements it yet. The CLI table, the README tables, the default
config, the Snakemake config schema and validation all derive from it.

Standard library only: ``serialoct params`` and every step import this at
start-up.

Examples
--------
>>> from serialoct.params import registry, resolve
>>> registry("reconst_3d")["stitch_blending_method"].choices
('none', 'average', 'diffusion')
>>> resolve("reconst_3d", {"use_gpu": "true"})["pyramid_resolutions"]
[10.0, 25.0, 50.0, 100.0]
"""

from serialoct.params.model import Bounds, Parameter, allowed_text, coerce, format_value
from serialoct.params.presets import PRESETS, Preset, preset_overlay
from serialoct.params.registry import WORKFLOWS, groups, registry, steps
from serialoct.params.render import (
    config_schema,
    render_config,
    render_table,
    to_yaml_config,
    update_readme,
)
from serialoct.params.validation import resolve, validate

__all__ = [
    "PRESETS",
    "WORKFLOWS",
    "Bounds",
    "Parameter",
    "Preset",
    "allowed_text",
    "coerce",
    "config_schema",
    "format_value",
    "groups",
    "preset_overlay",
    "registry",
    "render_config",
    "render_table",
    "resolve",
    "steps",
    "to_yaml_config",
    "update_readme",
    "validate",
]
