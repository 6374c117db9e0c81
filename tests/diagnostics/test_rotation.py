"""Rotation drift and acquisition rotation recover known rotations."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest

from serialoct.diagnostics import PairRotation, analyze_rotation_drift, estimate_acquisition_rotation

ANGLE_TOL_DEG = 0.05


def test_cumulative_rotation_is_the_known_sequence_and_slices_above_the_threshold_are_flagged():
    truth = np.array([0.3, -0.1, 0.6, 2.5, 0.4, 0.5])
    pairs = [PairRotation(f"{k:02d}", f"{k + 1:02d}", float(r)) for k, r in enumerate(truth)]
    drift = analyze_rotation_drift(pairs[::-1], threshold_deg=2.0, applied_deg={"03": 0.8})
    np.testing.assert_allclose(drift.cumulative_deg, np.cumsum(truth))
    assert drift.slice_ids == ("01", "02", "03", "04", "05", "06")
    assert [s for s, _ in drift.flagged] == ["04", "05", "06"]  # 04: pair 2.5 and sum 3.3; then the sum stays above 2
    assert "pair rotation" in dict(drift.flagged)["04"] and "pair" not in dict(drift.flagged)["05"]
    assert drift.applied_deg[2] == 0.8 and math.isnan(drift.applied_deg[0])
    assert drift.to_dict()["slices"][3]["flagged"] is True


def test_a_constant_bias_per_pair_is_the_drift_rate():
    pairs = [PairRotation(f"{k:02d}", f"{k + 1:02d}", 0.2) for k in range(10)]
    assert analyze_rotation_drift(pairs).drift_deg_per_slice == pytest.approx(0.2)


def test_drift_refuses_two_registrations_of_one_slice():
    with pytest.raises(ValueError, match="several registrations"):
        analyze_rotation_drift([PairRotation("01", "02", 0.0), PairRotation("00", "02", 0.0)])


def test_acquisition_rotation_recovers_the_stage_angle_from_noisy_registrations():
    rng = np.random.default_rng(0)
    theta = math.radians(1.2)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    steps, regs = {}, []
    for k in range(1, 30):
        s = rng.uniform(-60, 60, 2)
        t = s - rot @ s + rng.normal(0, 0.1, 2)  # the correction left after the motor placement
        steps[f"{k:02d}"] = tuple(s)
        regs.append(PairRotation(f"{k - 1:02d}", f"{k:02d}", float(rng.normal(0, 0.1)), tuple(t), 0.9))
    result = estimate_acquisition_rotation(steps, regs)
    assert result.angle_deg == pytest.approx(1.2, abs=ANGLE_TOL_DEG)
    assert result.scale == pytest.approx(1.0, abs=0.005)
    assert result.n_used == 29 and result.residual_rms_px < 0.3


def test_acquisition_rotation_without_long_steps_is_unknown_not_a_guess():
    result = estimate_acquisition_rotation({"01": (0.5, 0.2)}, [PairRotation("00", "01", 0.1, (1.0, 1.0))])
    assert math.isnan(result.angle_deg) and result.n_used == 0
    assert result.mean_pair_rotation_deg == pytest.approx(0.1)


def _run(module, argv):
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return module.run(parser.parse_args(argv))


def test_the_two_rotation_steps_write_their_reports(tmp_path):
    from serialoct.io.images import read_png
    from serialoct.steps import analyze_acquisition_rotation, analyze_rotation_drift as drift_step

    theta = math.radians(-2.0)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    lines = ["fixed_id,moving_id,x_shift,y_shift,x_shift_mm,y_shift_mm,reliable"]
    transforms = []
    for k, s in enumerate([(40.0, 0.0), (0.0, 50.0), (-30.0, 30.0)], start=1):
        s = np.asarray(s)
        lines.append(f"{k - 1:02d},{k:02d},{s[0]},{s[1]},{s[0] * 0.012},{s[1] * 0.012},1")
        path = tmp_path / f"slice_z{k:02d}_transform.json"
        path.write_text(json.dumps({"fixed_id": f"{k - 1:02d}", "moving_id": f"{k:02d}", "rotation_deg": 1.5,
                                    "translation_px": list(s - rot @ s), "confidence": 0.8, "status": "ok"}))
        transforms.append(str(path))
    (tmp_path / "shifts.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "cs.json").write_text(json.dumps({"voxel_um": 12.0, "canvas_shape": [10, 10], "positions_px": {}, "depths": {}}))
    out = tmp_path / "diag"
    assert _run(drift_step, ["--transforms", *transforms, "--output_dir", str(out / "rot"), "--metrics", str(out / "rot.json")]) == 0
    report = json.loads((out / "rot" / "rotation_drift.json").read_text())
    assert report["total_deg"] == pytest.approx(4.5) and [f["slice_id"] for f in report["flagged"]] == ["02", "03"]
    assert read_png(out / "rot" / "rotation_drift.png").shape[2] == 3
    assert _run(analyze_acquisition_rotation, ["--shifts_xy", str(tmp_path / "shifts.csv"), "--common_space", str(tmp_path / "cs.json"),
                                               "--transforms", *transforms, "--output_dir", str(out / "acq"),
                                               "--metrics", str(out / "acq.json")]) == 0
    acq = json.loads((out / "acq" / "acquisition_rotation.json").read_text())
    assert acq["angle_deg"] == pytest.approx(-2.0, abs=1e-3) and acq["n_used"] == 3
    assert json.loads((out / "acq.json").read_text())["metrics"]["angle_deg"]["value"] == pytest.approx(-2.0, abs=1e-3)
