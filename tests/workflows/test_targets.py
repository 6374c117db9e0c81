"""What a reconstruction run must produce, from the configuration and the input folder."""

from __future__ import annotations

import pytest

from serialoct.params import resolve
from serialoct.workflows.targets import reconst_slices, reconst_targets, slice_config_after


@pytest.fixture
def mosaics(tmp_path):
    for k in range(6):
        (tmp_path / f"mosaic_grid_3d_z{k:02d}.ome.zarr").mkdir()
    (tmp_path / "slice_config.csv").write_text("slice_id,use\n00,false\n01,true\n")
    return tmp_path


def _config(mosaics, **values):
    return resolve("reconst_3d", {"input": str(mosaics), "slice_config": str(mosaics / "slice_config.csv"), **values})


def test_debug_slices_restricts_the_run_and_unused_slices_are_not_processed(mosaics):
    assert reconst_slices(_config(mosaics)) == ["01", "02", "03", "04", "05"]
    assert reconst_slices(_config(mosaics, debug_slices="2-3, 5")) == ["02", "03", "05"]


def test_pairs_link_consecutive_slices_only(mosaics):
    targets = reconst_targets(_config(mosaics, debug_slices="1-2,4-5"))
    assert targets["pairs"] == [("01", "02"), ("04", "05")]


def test_the_slice_table_passes_through_the_stages_that_are_on(mosaics):
    table = str(mosaics / "slice_config.csv")
    config = _config(mosaics)
    assert slice_config_after(config, "input") == [table]
    assert slice_config_after(config, "auto_assess_quality") == [table]  # off by default
    assert slice_config_after(config, "detect_rehoming_events") == ["detect_rehoming_events/slice_config.csv"]
    on = _config(mosaics, auto_assess_quality=True, detect_rehoming=False, auto_exclude_enabled=False)
    assert slice_config_after(on, "auto_exclude_slices") == ["auto_assess_quality/slice_config.csv"]


def test_optional_outputs_follow_their_switches(mosaics):
    plain = reconst_targets(_config(mosaics, subject_name="b", generate_report=False, analyze_shifts=False))["series"]
    assert plain == ["stack/b.ome.zarr", "finalise_interpolation/slice_config_final.csv"]
    everything = reconst_targets(_config(mosaics, subject_name="b", correct_bias_field=True, align_to_ras_enabled=True,
                                         export_manual_align=True, diagnostic_mode=True, report_format="html"))["series"]
    for path in ("correct_bias_field/b_corrected.ome.zarr", "align_to_ras/b_ras.ome.zarr", "export_manual_align/index.json",
                 "b_quality_report.html", "README/readme.txt", "diagnostics/motor_only_stack/b_motor_only.ome.zarr",
                 "diagnostics/stitch_comparison/slice_z03_seams.json"):
        assert path in everything
