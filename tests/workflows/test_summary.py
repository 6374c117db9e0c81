"""The summary printed at the end of a reconstruction says which slices the volume holds and where it is empty."""

from __future__ import annotations

from serialoct.io.tables import SliceConfigRow, write_slice_config
from serialoct.workflows.summary import summary_lines
from serialoct.workflows.targets import SLICE_CONFIG_FINAL

CONFIG = {"input": "mosaics", "subject": "brain", "generate_report": False, "report_format": "zip"}


def _summary(tmp_path, rows, failed=None) -> list[str]:
    (tmp_path / SLICE_CONFIG_FINAL).parent.mkdir(parents=True)
    write_slice_config(tmp_path / SLICE_CONFIG_FINAL, rows)
    return summary_lines(CONFIG, tmp_path, 1.0, failed or {})


def test_a_gap_of_two_slices_is_named_as_empty_in_the_volume_and_the_stacked_ids_as_runs(tmp_path):
    failed = "preprocessing failed: create_mosaic_grid: tile_x01_y00_z02/image_00000.bin: truncated"
    lines = _summary(tmp_path, [
        SliceConfigRow("00", use=False, exclude_reason="calibration slice (exclude_first_slices=1)"),
        SliceConfigRow("01"),
        SliceConfigRow("02", use=False, exclude_reason=failed),
        SliceConfigRow("03", use=False, exclude_reason=failed),
        SliceConfigRow("04"),
        SliceConfigRow("05"),
    ])
    assert lines[1:4] == [
        "  slices stacked: 3 (01, 04-05)",
        "  slices 02-03 left empty in the volume (2 consecutive slices; only single missing slices are interpolated)",
        "  slice 00 excluded: calibration slice (exclude_first_slices=1)",
    ]
    assert f"  slice 02 excluded: {failed}" in lines


def test_an_interpolated_slice_fills_its_gap_and_a_failed_interpolation_is_told_once(tmp_path):
    lines = _summary(tmp_path, [
        SliceConfigRow("01"),
        SliceConfigRow("02", use=False, exclude_reason="missing", interpolated=True, interpolation_method_used="zmorph"),
        SliceConfigRow("03"),
        SliceConfigRow("04", use=False, exclude_reason="missing", interpolation_failed=True,
                       interpolation_fallback_reason="boundary planes do not match (NCC 0.1 < 0.3)"),
        SliceConfigRow("05"),
    ])
    assert lines[1] == "  slices stacked: 4 (01-03, 05)"
    assert "  slice 02 interpolated (zmorph; missing)" in lines
    assert [line for line in lines if "left empty" in line] == [
        "  slice 04 left empty: boundary planes do not match (NCC 0.1 < 0.3)"]
