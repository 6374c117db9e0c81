"""A small synthetic reconstruction run folder, written through serialoct.io, and the report step's runner."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import yaml

from serialoct.io.atomic import write_text_atomic
from serialoct.io.images import write_png
from serialoct.io.jsonfile import write_json
from serialoct.io.tables import Metric, SliceConfigRow, StepMetrics, write_metrics, write_slice_config
from serialoct.params import validate
from serialoct.steps.records import FailureRecord, write_failure

SUBJECT = "mouse7"
#: Text with HTML in it, as a note of the slice table: must reach the page escaped.
HOSTILE_NOTE = '<script>alert("x")</script> & <b>bold</b>'
#: Why each slice is out of the volume, as the run records it.
REASONS = {
    "00": "calibration slice (exclude_first_slices=1)",
    "05": "run of 3 pairs below z-correlation 0.6",
    "06": "failed in stitch_3d_with_refinement: tile_x01_y00 truncated",
    "07": "no upper neighbour with data",
}


@pytest.fixture
def report_parameters(monkeypatch):
    """Let the report's parameters leave their defaults (they are 'not yet' in the registry until the step is wired)."""
    import serialoct.params.reconst_3d as table
    from serialoct.params.registry import registry

    monkeypatch.setattr(table, "IMPLEMENTED", table.IMPLEMENTED | {"report_verbose", "report_format"})
    registry.cache_clear()
    yield
    monkeypatch.undo()
    registry.cache_clear()


def _m(value, unit="", status="ok", description=""):
    return Metric(value, unit, description, status)


def _picture(seed: int, shape=(24, 40)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, size=shape, dtype=np.uint8)


def write_run(root: Path, *, config_overrides=None) -> Path:
    """A run folder: config, per-slice and series metrics, final slice table, a failure record, previews.

    Slices: 00 calibration (excluded), 01-03 stacked (03 with a crop warning),
    04 interpolated, 05 auto-excluded with a stitching error, 06 failed,
    07 left empty (interpolation failed).
    """
    config = validate("reconst_3d", {"subject_name": SUBJECT, "resolution": 12.0, "auto_assess_quality": False,
                                     **(config_overrides or {})})
    write_text_atomic(root / ".serialoct" / "reconst_3d_config.yaml",
                      yaml.safe_dump({**config, "_run": {"command": "serialoct", "skip_failed": False}}, sort_keys=False))
    for sid in ("01", "02", "03", "05"):
        stitch_status = "error" if sid == "05" else "ok"
        write_metrics(root / "stitch_3d_with_refinement" / f"slice_z{sid}_metrics.json", StepMetrics(
            "stitch_3d_with_refinement", info={"slice_id": sid, "placement": {"residual_rms_px": 0.1 + int(sid) / 100,
                                                                              "max_residual_px": 0.5 + int(sid) / 100}},
            metrics={"residual_rms_px": _m(0.1 + int(sid) / 100, "px", stitch_status), "seam_step_max": _m(0.002 * int(sid))}))
        crop = "warning" if sid == "03" else "ok"
        write_metrics(root / "crop_interface" / f"slice_z{sid}_metrics.json", StepMetrics(
            "crop_interface", info={"slice_id": sid}, metrics={"depth_kept_um": _m(480.0 if crop == "warning" else 600.0, "µm", crop)},
            warnings=("only 480 µm of data below the surface (asked 600)",) if crop == "warning" else ()))
        write_metrics(root / "normalize" / f"slice_z{sid}_metrics.json", StepMetrics(
            "normalize", info={"slice_id": sid}, metrics={"tissue_fraction": _m(0.3)}))
    for sid, (conf, zc) in {"02": (0.91, 0.93), "03": (0.42, 0.55)}.items():
        write_metrics(root / "register_pairwise" / f"slice_z{sid}_metrics.json", StepMetrics(
            "register_pairwise", info={"fixed_id": f"{int(sid) - 1:02d}", "moving_id": sid},
            metrics={"confidence": _m(conf), "z_correlation": _m(zc, status="warning" if zc < 0.6 else "ok")}))
    # A metrics file of a step switched off in this run's config (left from an earlier run): its scores must not show.
    write_metrics(root / "auto_assess_quality" / "metrics.json", StepMetrics(
        "auto_assess_quality", info={"scores": {"01": 0.123456}}, metrics={"n_excluded": _m(9, status="error")}))
    write_metrics(root / "detect_rehoming_events" / "metrics.json", StepMetrics(
        "detect_rehoming_events",
        info={"corrected_spikes": [{"fixed_id": "01", "moving_id": "02", "kind": "glitch", "magnitude_mm": 0.653, "return_ratio": 0.02}],
              "rehomings": [{"fixed_id": "03", "moving_id": "05", "kind": "rehoming", "magnitude_mm": 0.609, "return_ratio": 0.99}]},
        metrics={"n_glitches": _m(1, status="warning"), "n_rehomings": _m(1)}))
    write_metrics(root / "analyze_shifts" / "metrics.json", StepMetrics("analyze_shifts", metrics={"largest_step_mm": _m(0.653, "mm")}))
    write_png(root / "analyze_shifts" / "shifts_drift.png", _picture(1))
    write_slice_config(root / "finalise_interpolation" / "slice_config_final.csv", [
        SliceConfigRow("00", use=False, exclude_reason=REASONS["00"]),
        SliceConfigRow("01"), SliceConfigRow("02", notes=HOSTILE_NOTE), SliceConfigRow("03"),
        SliceConfigRow("04", use=False, exclude_reason="missing", interpolated=True, interpolation_method_used="zmorph"),
        SliceConfigRow("05", auto_excluded=True, auto_exclude_reason=REASONS["05"]),
        SliceConfigRow("06", use=False, exclude_reason=REASONS["06"]),
        SliceConfigRow("07", use=False, exclude_reason="missing", interpolation_failed=True,
                       interpolation_fallback_reason=REASONS["07"]),
    ])
    write_failure(root / "failed" / "z06.json", FailureRecord("06", "stitch_3d_with_refinement", "tile_x01_y00 truncated"))
    write_metrics(root / "stack" / "metrics.json", StepMetrics("stack", info={"slices": [
        {"slice_id": sid, "z_start": 10 * i, "z_stop": 10 * i + 14, "intensity_gain": 1.6 if sid == "02" else 1.0}
        for i, sid in enumerate(("01", "02", "03", "04", "05"))],
        "intensity_maps": {"03": {"depth_plane": 18.5, "gain_p5_p95": [0.8, 1.2]}}},
        metrics={"n_slices": _m(5)}))
    write_png(root / "stack" / f"{SUBJECT}.png", _picture(2))
    write_png(root / "stack" / f"{SUBJECT}_annotated.png", np.stack([_picture(3)] * 3, axis=-1))
    write_json(root / "bring_to_common_space" / "common_space.json", {"voxel_um": 12.0})  # not metrics: ignored
    return root


@pytest.fixture
def run_folder(tmp_path) -> Path:
    return write_run(tmp_path / "out")


def run_report(run_dir: Path, *extra: str, output: Path | None = None) -> Path:
    """Run the step as its command line would, through its own parser; returns the --output path."""
    from serialoct.steps import generate_report

    parser = argparse.ArgumentParser()
    generate_report.add_arguments(parser)
    output = output or run_dir / f"{SUBJECT}_quality_report.html"
    args = parser.parse_args(["--run_dir", str(run_dir), "--output", str(output),
                              "--metrics", str(run_dir / "generate_report" / "metrics.json"), *extra])
    assert generate_report.run(args) == 0
    return output
