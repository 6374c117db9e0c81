"""Claims about shifts_xy.csv, slice_config.csv and metrics JSON (formats.md §3-5)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from serialoct.errors import FormatError, InputError
from serialoct.io.tables import (
    SLICE_CONFIG_COLUMNS,
    Metric,
    ShiftRow,
    SliceConfigRow,
    StepMetrics,
    parse_bool,
    read_metrics,
    read_shifts_xy,
    read_slice_config,
    stamp_slice_config,
    write_metrics,
    write_shifts_xy,
    write_slice_config,
)

SHIFTS_HEADER = "fixed_id,moving_id,x_shift,y_shift,x_shift_mm,y_shift_mm,reliable\n"


def test_shifts_round_trip(tmp_path):
    rows = [ShiftRow("01", "02", 3.5, -2.0, 0.035, -0.02, True), ShiftRow("02", "03", 0.0, 1.25, 0.0, 0.0125, False)]
    write_shifts_xy(tmp_path / "shifts_xy.csv", rows)
    assert read_shifts_xy(tmp_path / "shifts_xy.csv") == rows


def test_shift_ids_and_flags_written_as_floats_are_accepted(tmp_path):
    (tmp_path / "s.csv").write_text(SHIFTS_HEADER + "3.0,4.0,1,2,0.1,0.2,0.0\n")
    (row,) = read_shifts_xy(tmp_path / "s.csv")
    assert (row.fixed_id, row.moving_id, row.reliable) == ("03", "04", False)


def test_shifts_without_reliable_column_are_reliable(tmp_path):
    (tmp_path / "s.csv").write_text("fixed_id,moving_id,x_shift,y_shift,x_shift_mm,y_shift_mm\n1,2,1,2,0.1,0.2\n")
    assert read_shifts_xy(tmp_path / "s.csv")[0].reliable is True


@pytest.mark.parametrize("value", ["nan", "", "abc", "inf"])
def test_shift_that_is_not_a_finite_number_names_line_and_column(tmp_path, value):
    (tmp_path / "s.csv").write_text(SHIFTS_HEADER + f"1,2,{value},2,0.1,0.2,1\n")
    with pytest.raises(FormatError, match="line 2 column x_shift"):
        read_shifts_xy(tmp_path / "s.csv")


def test_shifts_missing_column_is_named(tmp_path):
    (tmp_path / "s.csv").write_text("fixed_id,moving_id,x_shift\n1,2,3\n")
    with pytest.raises(FormatError, match="missing column.*y_shift"):
        read_shifts_xy(tmp_path / "s.csv")


def test_missing_table_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_shifts_xy(tmp_path / "absent.csv")


@pytest.mark.parametrize("text,value", [("TRUE", True), ("yes", True), ("Y", True), ("t", True), ("1", True),
                                        ("False", False), ("no", False), ("n", False), ("F", False), ("0", False), ("", False)])
def test_booleans_parse_case_insensitively(text, value):
    assert parse_bool(text) is value


def test_unknown_boolean_word_is_refused():
    with pytest.raises(FormatError, match="'maybe' is not a boolean"):
        parse_bool("maybe")


def test_slice_config_with_only_id_and_use_takes_defaults(tmp_path):
    (tmp_path / "c.csv").write_text("slice_id,use\n0,false\n1.0,true\n")
    rows = read_slice_config(tmp_path / "c.csv")
    assert [r.slice_id for r in rows] == ["00", "01"]
    assert rows[0] == SliceConfigRow("00", use=False) and rows[1].motor_only is False
    assert rows[0].motor_only is True


def test_slice_config_round_trip_keeps_every_column(tmp_path):
    rows = [
        SliceConfigRow("00", use=False, exclude_reason="calibration slice"),
        SliceConfigRow("01", quality_score=0.82, galvo_confidence=0.91, galvo_fix=True, notes="a, b", rehomed=True,
                       auto_excluded=True, auto_exclude_reason="cluster", interpolated=True, interpolation_method_used="zmorph"),
    ]
    write_slice_config(tmp_path / "c.csv", rows)
    assert (tmp_path / "c.csv").read_text().splitlines()[0] == ",".join(SLICE_CONFIG_COLUMNS)
    assert read_slice_config(tmp_path / "c.csv") == rows


def test_slice_listed_twice_is_refused(tmp_path):
    (tmp_path / "c.csv").write_text("slice_id,use\n1,true\n01,false\n")
    with pytest.raises(FormatError, match="slice 01 is listed twice"):
        read_slice_config(tmp_path / "c.csv")


def test_stamping_returns_a_new_table_and_leaves_the_input_alone():
    rows = [SliceConfigRow("01"), SliceConfigRow("02")]
    stamped = stamp_slice_config(rows, {"02": {"use": False, "exclude_reason": "degraded"}})
    assert rows[1].use is True and stamped[1] == SliceConfigRow("02", use=False, exclude_reason="degraded")


def test_stamping_an_unknown_slice_is_refused():
    with pytest.raises(FormatError, match="unknown slice.*07"):
        stamp_slice_config([SliceConfigRow("01")], {"07": {"use": False}})


def test_metrics_round_trip_and_overall_status_is_the_worst(tmp_path):
    metrics = StepMetrics(
        "stitch", info={"slice_id": "03"}, params={"blending": "diffusion"},
        metrics={"rms_px": Metric(np.float32(0.25), "px", "residual", "ok"), "rejected": Metric(4, "", "pairs", "warning")},
    )
    write_metrics(tmp_path / "m.json", metrics)
    data = json.loads((tmp_path / "m.json").read_text())
    assert data["overall_status"] == "warning" and data["metrics"]["rms_px"]["value"] == 0.25
    back = read_metrics(tmp_path / "m.json")
    assert back.overall_status == "warning" and back.metrics["rejected"].value == 4


def test_an_error_message_makes_the_step_an_error():
    assert StepMetrics("x", errors=("boom",)).overall_status == "error"
    assert StepMetrics("x").overall_status == "ok"


def test_metrics_with_unknown_status_are_refused(tmp_path):
    (tmp_path / "m.json").write_text('{"step_name": "x", "metrics": {"a": {"value": 1, "status": "fine"}}}')
    with pytest.raises(FormatError, match="status 'fine'"):
        read_metrics(tmp_path / "m.json")
