"""analyze_shifts sums the drift, flags the glitch pair and re-homing as outliers, and filters them."""

from __future__ import annotations

import numpy as np
import pytest

from serialoct.align.shifts_analysis import analyze_shifts, plot_drift, replace_steps, report_text
from serialoct.io.tables import ShiftRow
from tests.align.conftest import plan_shifts

EXACT_MM = 1e-9
PIXEL_MM = 0.01


def _rows(steps) -> list[ShiftRow]:
    return [ShiftRow(f"{k:02d}", f"{k + 1:02d}", x / PIXEL_MM, y / PIXEL_MM, x, y) for k, (x, y) in enumerate(steps)]


def test_cumulative_drift_is_the_reported_low_edge_offset_from_the_first_slice(small_plan):
    analysis = analyze_shifts(plan_shifts(small_plan))
    reported = small_plan.reported_mm
    first = reported[int(analysis.slice_ids[0])].reshape(-1, 2).min(axis=0)
    for sid, cum in zip(analysis.slice_ids, analysis.cumulative_mm):
        np.testing.assert_allclose(cum, first - reported[int(sid)].reshape(-1, 2).min(axis=0), atol=1e-6)
    np.testing.assert_allclose(analysis.cumulative_px, analysis.cumulative_mm / small_plan.pixel_mm, atol=1e-6)


def test_glitch_pair_and_rehoming_are_the_outliers_of_the_synthetic_series(medium_plan):
    shifts = plan_shifts(medium_plan)
    analysis = analyze_shifts(shifts)
    flagged = {o.moving_id for o in analysis.outliers}
    assert flagged == {"05", "06", "12"}  # into and out of the glitch slice, into the re-homed slice
    assert all(o.z_score > analysis.z_threshold and "robust SDs" in o.reason for o in analysis.outliers)
    kept = [i for i, r in enumerate(shifts) if r.moving_id not in flagged]
    for i in kept:
        assert analysis.filtered[i] == shifts[i]
    for o in analysis.outliers:
        assert np.hypot(analysis.filtered[o.index].x_shift_mm, analysis.filtered[o.index].y_shift_mm) < 0.1


def test_constant_series_has_no_outliers():
    analysis = analyze_shifts(_rows([(0.01, -0.02)] * 6))
    assert analysis.outliers == ()
    assert analysis.total_drift_mm == pytest.approx((0.06, -0.12))


def test_replace_steps_modes():
    rows = _rows([(0.1, 0.0), (0.2, 0.0), (5.0, 5.0), (0.4, 0.0), (0.3, 0.0), (0.9, 0.0)])
    assert replace_steps(rows, [2], mode="keep") == rows
    assert replace_steps(rows, [2], mode="zero")[2].x_shift_mm == 0.0
    assert replace_steps(rows, [2], mode="median")[2].x_shift_mm == pytest.approx(0.3)  # median of 0.1 0.2 0.4 0.3 0.9
    local = replace_steps(rows, [2], mode="local_median", window=1)[2]
    assert (local.x_shift_mm, local.x_shift) == pytest.approx((0.3, 30.0))  # median of 0.2 and 0.4
    with pytest.raises(ValueError, match="choose one of keep, local_median, median, zero"):
        replace_steps(rows, [2], mode="mean")


def test_report_and_plot(medium_plan):
    # (In the 6-step small preset half the steps are large: the MAD breaks down and flags none.)
    analysis = analyze_shifts(plan_shifts(medium_plan))
    text = report_text(analysis)
    assert "outliers (robust z > 3.5): 3" in text and "05 -> 06" in text
    image = plot_drift(analysis)
    assert image.dtype == np.uint8 and image.shape[2] == 3


def test_empty_shifts_are_refused():
    with pytest.raises(ValueError, match="no shifts to analyse"):
        analyze_shifts([])
