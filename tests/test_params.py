"""Tests of the parameter registry (serialoct.params) and `serialoct params`."""

from __future__ import annotations

import csv
import doctest
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

import serialoct.params as params_api
from serialoct import cli
from serialoct.errors import ParameterError
from serialoct.params import (
    PRESETS,
    WORKFLOWS,
    coerce,
    config_schema,
    preset_overlay,
    registry,
    render_config,
    render_table,
    resolve,
    steps,
    to_yaml_config,
    update_readme,
    validate,
)
from serialoct.params import model as params_model
from serialoct.params import preproc as preproc_table
from serialoct.params import reconst_3d as reconst_3d_table
from serialoct.params import validation as validation_module

GUIDE_CSV = Path(__file__).parent / "data" / "guide_parameters.csv"
README = Path(__file__).parent.parent / "README.md"
REQUIRED = object()  # the guide's "(required)": no default

#: Parameters whose guide tables disagree, and the section whose row we follow.
#: The CPU section gives processes = 1 for both workflows; reconst_3d's own table says 8.
GUIDE_CONFLICTS = {("reconst_3d", "processes"): "Input/Output"}
#: serialoct parameters absent from the guide.
EXTENSIONS = {("reconst_3d", "atlas_path"), ("reconst_3d", "stack_blend_depth_um"), ("reconst_3d", "stack_match_intensity"),
              ("reconst_3d", "stack_intensity_map_um")}

_TABLES = {"preproc": preproc_table, "reconst_3d": reconst_3d_table}


def parse_guide_default(text: str) -> object:
    """Read a default as the guide writes it: 'x', "x", true, null, [1, 2], 0.200."""
    if text == "(required)":
        return REQUIRED
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if text[0] in "'\"":
        assert text[-1] == text[0], text
        return text[1:-1]
    if text.startswith("["):
        return [float(x) for x in text[1:-1].split(",")]
    return float(text) if "." in text else int(text)


def guide_rows() -> list[dict[str, str]]:
    with GUIDE_CSV.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def guide_defaults() -> dict[tuple[str, str], tuple[str, object]]:
    """(workflow, name) -> (raw text, parsed default), resolving declared conflicts."""
    rows: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for row in guide_rows():
        rows[row["workflow"], row["name"]].append(row)
    result = {}
    for key, found in rows.items():
        values = {row["default"] for row in found}
        if len({repr(parse_guide_default(v)) for v in values}) > 1:
            assert key in GUIDE_CONFLICTS, f"guide gives {key} several defaults: {values}"
            found = [row for row in found if row["section"] == GUIDE_CONFLICTS[key]]
        result[key] = (found[0]["default"], parse_guide_default(found[0]["default"]))
    return result


def set_implemented(monkeypatch: pytest.MonkeyPatch, names: dict[str, frozenset[str]]) -> None:
    for workflow, implemented in names.items():
        monkeypatch.setattr(_TABLES[workflow], "IMPLEMENTED", implemented)
    registry.cache_clear()


@pytest.fixture
def all_implemented(monkeypatch: pytest.MonkeyPatch):
    """Pretend serialoct honours every parameter, to test values in isolation."""
    set_implemented(monkeypatch, {w: frozenset(registry(w)) for w in WORKFLOWS})
    yield
    monkeypatch.undo()
    registry.cache_clear()


@pytest.fixture
def none_implemented(monkeypatch: pytest.MonkeyPatch):
    """Pretend serialoct honours no parameter (the state before any step lands)."""
    set_implemented(monkeypatch, {w: frozenset() for w in WORKFLOWS})
    yield
    monkeypatch.undo()
    registry.cache_clear()


# --- completeness against the guide -------------------------------------------------


def test_registry_holds_every_guide_parameter_with_its_default():
    for (workflow, name), (text, default) in guide_defaults().items():
        params = registry(workflow)
        assert name in params, f"{workflow} parameter {name!r} of the guide is missing"
        p = params[name]
        if default is REQUIRED:
            assert p.required and p.default is None, name
        else:
            assert not p.required, name
            assert params_model.plain(p.default) == default, f"{workflow}.{name}: guide says {text}"


def test_registry_has_no_parameter_absent_from_the_guide_except_extensions():
    guide = set(guide_defaults())
    declared = {(w, name) for w in WORKFLOWS for name in registry(w)}
    assert declared - guide == EXTENSIONS
    assert {(w, p.name) for w in WORKFLOWS for p in registry(w).values() if p.extension} == EXTENSIONS


def test_guide_conflicts_are_real_conflicts():
    rows = guide_rows()
    for (workflow, name), section in GUIDE_CONFLICTS.items():
        found = {r["section"]: r["default"] for r in rows if (r["workflow"], r["name"]) == (workflow, name)}
        assert section in found and len(set(found.values())) > 1


def test_registry_types_agree_with_guide_defaults():
    for (workflow, name), (text, default) in guide_defaults().items():
        p = registry(workflow)[name]
        if default is REQUIRED:
            assert p.type in ("str", "path"), name
        elif isinstance(default, bool):
            assert p.type == "bool", name
        elif default is None:
            assert p.nullable or p.required, name
        elif isinstance(default, str):
            assert p.type in ("str", "path", "choice"), name
        elif isinstance(default, list):
            assert p.type == "float_list", name
        elif "." in text:
            assert p.type == "float", name
        else:
            assert p.type in ("int", "float"), name


def test_registry_order_follows_the_guide():
    for workflow in WORKFLOWS:
        first_seen = list(dict.fromkeys(r["name"] for r in guide_rows() if r["workflow"] == workflow))
        declared = [n for n in registry(workflow) if (workflow, n) not in EXTENSIONS]
        assert declared == first_seen


def test_cpu_parameters_have_per_workflow_defaults():
    assert registry("preproc")["max_cpus"].default is None
    assert registry("preproc")["reserved_cpus"].default == 2
    assert registry("reconst_3d")["max_cpus"].default == 16
    assert registry("reconst_3d")["reserved_cpus"].default == 4
    assert registry("reconst_3d")["processes"].default == 8


# --- declarations are self-consistent ----------------------------------------------


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_every_default_is_an_allowed_value_of_its_type(workflow):
    for p in registry(workflow).values():
        if not p.required:
            assert coerce(p, p.default) == p.default, p.name


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_every_parameter_names_declared_steps_and_a_description(workflow):
    known = set(steps(workflow))
    for p in registry(workflow).values():
        assert p.steps and set(p.steps) <= known, p.name
        assert p.type in params_model.TYPES, p.name
        assert p.description.endswith(".") and len(p.description) > 20, p.name
        assert (p.type == "choice") == (p.choices is not None and all(isinstance(c, str) for c in p.choices))


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_implemented_flags_come_from_the_workflow_table(workflow):
    table = _TABLES[workflow]
    assert {n for n, p in registry(workflow).items() if p.implemented} == set(table.IMPLEMENTED)


def test_registry_is_read_only():
    with pytest.raises(TypeError):
        registry("reconst_3d")["resolution"] = None  # type: ignore[index]
    with pytest.raises(AttributeError):
        registry("reconst_3d")["resolution"].default = 5  # type: ignore[misc]


def test_unknown_workflow_is_rejected():
    with pytest.raises(ParameterError, match=r"unknown workflow 'reconst'.*preproc, reconst_3d"):
        registry("reconst")


# --- value coercion ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("False", False), ("1", True), ("0", False), ("yes", True),
     ("NO", False), ("on", True), ("off", False), (True, True), (0, False)],
)
def test_bool_strings_are_parsed(text, expected):
    assert coerce(registry("reconst_3d")["use_gpu"], text) is expected


@pytest.mark.parametrize("value", ["maybe", "2", 2, 1.0, None, ""])
def test_bad_bool_is_rejected_naming_parameter_and_value(value):
    with pytest.raises(ParameterError, match=r"parameter 'use_gpu': .* is not allowed.*expected true or false"):
        coerce(registry("reconst_3d")["use_gpu"], value)


@pytest.mark.parametrize("text", [None, "null", "None", "~", ""])
def test_null_strings_are_parsed_for_nullable_parameters(text):
    assert coerce(registry("reconst_3d")["tile_fov_mm"], text) is None
    assert coerce(registry("preproc")["max_cpus"], text) is None


def test_null_is_refused_where_not_allowed():
    with pytest.raises(ParameterError, match=r"'resolution': None is not allowed \(null is not allowed here\)"):
        coerce(registry("reconst_3d")["resolution"], None)


@pytest.mark.parametrize("text", ["10,25,50", "[10, 25, 50]", "10 25 50", [10, 25, 50], (10.0, 25, "50")])
def test_float_lists_accept_commas_brackets_and_sequences(text):
    assert coerce(registry("reconst_3d")["pyramid_resolutions"], text) == (10.0, 25.0, 50.0)


@pytest.mark.parametrize(("text", "why"), [("10,a", "'a' is not a number"), ("10,-5", "-5 is out of range"),
                                           ("[]", "the list is empty")])
def test_bad_float_list_names_the_bad_element(text, why):
    pattern = rf"'pyramid_resolutions': {re.escape(repr(text))}.*\({re.escape(why)}\).*list of numbers > 0"
    with pytest.raises(ParameterError, match=pattern):
        coerce(registry("reconst_3d")["pyramid_resolutions"], text)


def test_numbers_given_as_strings_are_parsed():
    params = registry("reconst_3d")
    assert coerce(params["allen_max_iterations"], "500") == 500
    assert coerce(params["allen_max_iterations"], "5e2") == 500
    assert coerce(params["allen_max_iterations"], 500.0) == 500
    assert coerce(params["resolution"], " 25 ") == 25.0
    assert coerce(params["registration_slicing_interval_mm"], "0.200") == 0.2


@pytest.mark.parametrize("value", ["2.5", 2.5, True, "ten", "nan"])
def test_int_rejects_fractions_booleans_and_words(value):
    with pytest.raises(ParameterError, match=r"parameter 'allen_max_iterations': .* expected integer >= 1"):
        coerce(registry("reconst_3d")["allen_max_iterations"], value)


def test_out_of_range_number_states_the_range():
    with pytest.raises(ParameterError, match=r"'bias_strength': '1.5' is not allowed \(out of range\); "
                                             r"expected number in \[0, 1\]"):
        coerce(registry("reconst_3d")["bias_strength"], "1.5")


def test_sentinel_value_is_allowed_outside_the_range():
    p = registry("preproc")["resolution"]
    assert coerce(p, "-1") == -1.0
    with pytest.raises(ParameterError, match=r"expected number > 0, or -1"):
        coerce(p, "-2")


def test_bad_choice_lists_allowed_values():
    with pytest.raises(ParameterError, match=r"parameter 'stitch_blending_method': 'blend' is not allowed; "
                                             r"expected one of none, average, diffusion"):
        coerce(registry("reconst_3d")["stitch_blending_method"], "blend")


def test_numeric_choice_accepts_only_listed_values():
    p = registry("reconst_3d")["allen_resolution"]
    assert coerce(p, "50") == 50
    with pytest.raises(ParameterError, match=r"'allen_resolution': 30 is not allowed; expected one of 10, 25, 50, 100"):
        coerce(p, 30)


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [("ras_input_orientation", ["", "PIR", "RIA", "SPR"], ["PIA", "pir", "PI", "PIRS"]),
     ("ras_initial_rotation", ["", "0 0 45", "-45 0 0", "0 +45.5 0"], ["0 0", "a b c", "0,0,45"]),
     ("debug_slices", ["", "25,26", "25-29", "3, 7-9"], ["25-", "a", "25;26"]),
     ("stitch_global_transform_slices", ["", "10,12,15"], ["10-12", "x"])],
)
def test_string_parameters_check_their_format(name, good, bad):
    p = registry("reconst_3d")[name]
    for value in good:
        assert coerce(p, value) == value
    for value in bad:
        with pytest.raises(ParameterError, match=rf"parameter '{name}': '{value}' is not allowed"):
            coerce(p, value)


def test_yaml_integer_is_accepted_as_text():
    assert coerce(registry("reconst_3d")["debug_slices"], 25) == "25"


# --- validate / resolve ----------------------------------------------------------------


def test_unknown_parameter_is_rejected_with_close_match():
    with pytest.raises(ParameterError, match=r"unknown reconst_3d parameter 'stich_blending_method'; "
                                             r"did you mean 'stitch_blending_method'"):
        validate("reconst_3d", {"stich_blending_method": "none"})


def test_parameter_of_the_other_workflow_is_named_as_such():
    with pytest.raises(ParameterError, match=r"'generate_aips' \(it is a preproc parameter\)"):
        validate("reconst_3d", {"generate_aips": "true"})


def test_unknown_parameter_without_close_match_points_to_the_list():
    with pytest.raises(ParameterError, match=r"unknown preproc parameter 'zzz' \(run 'serialoct params preproc' to list them\)"):
        validate("preproc", {"zzz": 1})


def test_not_implemented_parameter_is_refused_when_changed(none_implemented):
    message = ("parameter 'fix_curvature_enabled' is not implemented yet in serialoct "
               "(see the README parameter table); leave it at its default (false)")
    with pytest.raises(ParameterError) as info:
        validate("reconst_3d", {"fix_curvature_enabled": "true"})
    assert str(info.value) == message


def test_not_implemented_parameter_at_its_default_is_accepted(none_implemented):
    config = validate("reconst_3d", {"fix_curvature_enabled": "no", "registration_slicing_interval_mm": "0.200",
                                     "pyramid_resolutions": "[10, 25, 50, 100]", "tile_fov_mm": "null"})
    assert config["fix_curvature_enabled"] is False


def test_validate_returns_every_parameter_in_order_and_leaves_overrides_untouched(all_implemented):
    overrides = {"resolution": "25", "pyramid_resolutions": "25,50"}
    config = validate("reconst_3d", overrides)
    assert list(config) == list(registry("reconst_3d"))
    assert config["resolution"] == 25.0 and config["pyramid_resolutions"] == [25.0, 50.0]
    assert config["stitch_blending_method"] == "diffusion"
    assert overrides == {"resolution": "25", "pyramid_resolutions": "25,50"}


def test_all_problems_are_reported_at_once(none_implemented):
    with pytest.raises(ParameterError) as info:
        validate("reconst_3d", {"stich_blending_method": "x", "bias_mode": "twice", "use_gpu": "false"})
    text = str(info.value)
    assert text.startswith("3 problems:")
    assert "'stich_blending_method'" in text and "'bias_mode'" in text and "'use_gpu'" in text


def test_confidence_low_above_high_is_refused(all_implemented):
    with pytest.raises(ParameterError, match=r"'transform_confidence_low' \(0.8\) may not exceed "
                                             r"'transform_confidence_high' \(0.6\)"):
        validate("reconst_3d", {"transform_confidence_low": 0.8})


# --- presets -------------------------------------------------------------------------------


def test_presets_overlay_defaults(all_implemented):
    defaults = resolve("reconst_3d")
    for name in PRESETS:
        config = resolve("reconst_3d", preset=name)
        changed = {k for k in config if config[k] != defaults[k]}
        assert changed <= set(preset_overlay(name)), name
        for key, value in preset_overlay(name).items():
            assert config[key] == value, (name, key)


def test_overrides_win_over_the_preset(all_implemented):
    config = resolve("reconst_3d", {"apply_pairwise_transforms": "true", "resolution": 25}, preset="minimal")
    assert config["apply_pairwise_transforms"] is True
    assert config["stack_accumulate_translations"] is False
    assert config["resolution"] == 25.0


def test_presets_express_the_guide_descriptions():
    conservative, aggressive, minimal = (preset_overlay(n) for n in ("conservative", "aggressive", "minimal"))
    # conservative: XY from the motors, rotation only, unreliable transforms skipped, gaps interpolated
    assert conservative["apply_rotation_only"] and not conservative["stack_accumulate_translations"]
    assert conservative["skip_error_transforms"] and conservative["skip_warning_transforms"]
    assert conservative["interpolate_missing_slices"]
    # aggressive: full XY + rotation transforms, accumulated
    assert aggressive["apply_pairwise_transforms"] and not aggressive["apply_rotation_only"]
    assert aggressive["registration_transform"] == "euler" and aggressive["stack_accumulate_translations"]
    # minimal: motor-only stacking
    assert not minimal["apply_pairwise_transforms"] and not minimal["stack_accumulate_translations"]


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_values_are_valid_reconst_3d_values(name):
    params = registry("reconst_3d")
    for key, value in preset_overlay(name).items():
        assert coerce(params[key], value) == value, (name, key)


def test_preset_changing_unimplemented_parameter_is_refused_naming_the_preset(none_implemented):
    with pytest.raises(ParameterError, match=r"preset 'minimal' sets parameter 'apply_pairwise_transforms' to "
                                             r"false, but that parameter is not implemented yet"):
        resolve("reconst_3d", preset="minimal")


def test_unknown_preset_and_preset_for_preproc_are_refused():
    with pytest.raises(ParameterError, match=r"unknown preset 'safe'; expected one of conservative, aggressive, minimal"):
        resolve("reconst_3d", preset="safe")
    with pytest.raises(ParameterError, match=r"presets apply to the reconst_3d workflow"):
        resolve("preproc", preset="minimal")


def test_preset_overlay_is_a_copy():
    preset_overlay("minimal")["apply_pairwise_transforms"] = True
    assert preset_overlay("minimal")["apply_pairwise_transforms"] is False


# --- generated views -----------------------------------------------------------------------


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_text_table_lists_every_parameter_under_its_group(workflow):
    text = render_table(workflow, width=100)
    position = -1
    for p in registry(workflow).values():
        group_at = text.index("\n" + p.group + "\n")
        row_at = text.index("  " + p.name + " ", group_at)
        assert row_at > position, p.name
        position = row_at


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_markdown_table_has_one_row_per_parameter(workflow):
    rows = [line for line in render_table(workflow, "markdown").splitlines() if line.startswith("| `")]
    names = [row.split("`")[1] for row in rows]
    expected = list(registry(workflow)) + (list(PRESETS) if workflow == "reconst_3d" else [])
    assert names == expected


def test_unknown_table_format_is_rejected():
    with pytest.raises(ValueError, match=r"unknown table format 'html'"):
        render_table("preproc", "html")


@pytest.mark.parametrize("page", [README, README.parent / "docs" / "parameters.md"], ids=["README", "docs-parameters"])
def test_readme_parameter_tables_are_current(page):
    text = page.read_text(encoding="utf-8")
    assert update_readme(text) == text, (
        f"{page.name} parameter tables differ from the registry; regenerate them with\n"
        f"    python -m serialoct.params --write-readme {page.relative_to(README.parent)}"
    )


def test_update_readme_requires_the_markers():
    with pytest.raises(ValueError, match=r"<!-- BEGIN params:preproc -->"):
        update_readme("# no markers\n")


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_default_config_round_trips_through_yaml(workflow, none_implemented):
    config = to_yaml_config(workflow)
    loaded = yaml.safe_load(yaml.safe_dump(config, sort_keys=False))
    resolved = validate(workflow, loaded)
    assert all(resolved[k] == v for k, v in config.items())
    assert set(resolved) - set(config) == {n for n, p in registry(workflow).items() if p.required}


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_rendered_config_is_yaml_of_the_resolved_values(workflow, all_implemented):
    overrides = {"input": "/data/brain 1", "reserved_cpus": "4"} if workflow == "preproc" else {
        "pyramid_resolutions": "25,50"}
    config = resolve(workflow, overrides)
    text = render_config(workflow, config)
    assert yaml.safe_load(text) == config
    assert "# default:" in text


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_config_schema_describes_every_parameter(workflow):
    schema = config_schema(workflow)
    params = registry(workflow)
    assert list(schema["properties"]) == list(params)
    assert schema["additionalProperties"] is False
    assert schema["required"] == [n for n, p in params.items() if p.required]
    for name, prop in schema["properties"].items():
        p = params[name]
        assert prop["description"] == p.description
        if p.choices is not None:
            assert set(p.choices) <= set(prop["enum"])
        if not p.required:
            assert prop["default"] == params_model.plain(p.default)


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_default_config_satisfies_the_schema(workflow):
    jsonschema = pytest.importorskip("jsonschema")
    config = to_yaml_config(workflow)
    if workflow == "preproc":
        config["input"] = "/data/raw"
    jsonschema.validate(config, config_schema(workflow))
    bad = dict(config, stitch_blending_method="blend") if workflow == "reconst_3d" else dict(config, nope=1)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, config_schema(workflow))


@pytest.mark.parametrize("module", [params_model, validation_module, params_api])
def test_docstring_examples_run(module):
    result = doctest.testmod(module)
    assert result.failed == 0


# --- command line -----------------------------------------------------------------------


def test_cli_prints_table(capsys):
    assert cli.main(["params", "reconst_3d"]) == 0
    out = capsys.readouterr().out
    assert "stitch_blending_method" in out and "Atlas registration (RAS alignment)" in out
    assert "conservative:" in out


def test_cli_prints_markdown_table(capsys):
    assert cli.main(["params", "preproc", "--markdown"]) == 0
    assert capsys.readouterr().out == render_table("preproc", "markdown")


def test_cli_check_prints_resolved_config_as_yaml(capsys):
    assert cli.main(["params", "reconst_3d", "--check", "resolution=10", "use_gpu=yes"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == resolve("reconst_3d")


def test_cli_check_exits_2_naming_the_parameter(capsys, none_implemented):
    assert cli.main(["params", "reconst_3d", "--check", "bias_mode=twice"]) == 2
    err = capsys.readouterr().err
    assert "parameter 'bias_mode': 'twice' is not allowed" in err
    assert "per_section, global, two_pass" in err


def test_cli_check_rejects_words_without_equals(capsys):
    assert cli.main(["params", "reconst_3d", "--check", "resolution"]) == 2
    assert "'resolution' is not KEY=VALUE" in capsys.readouterr().err


def test_cli_preset_refuses_unimplemented_parameters(capsys, none_implemented):
    assert cli.main(["params", "reconst_3d", "--preset", "aggressive"]) == 2
    assert "preset 'aggressive' sets parameter" in capsys.readouterr().err


def test_cli_imports_only_the_standard_library():
    code = ("import sys, serialoct.cli, serialoct.commands.params; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'scipy', 'zarr', 'yaml'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
