"""common_space_offsets places slices by the cleaned motor shifts; excluded-slice modes; image refinement."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from serialoct.align.common_space import canvas_extent, common_space_offsets, estimate_translation, refine_unreliable
from serialoct.align.rehoming import detect_rehoming
from serialoct.errors import FormatError
from serialoct.io.tables import ShiftRow, SliceConfigRow
from serialoct.synth import render_tile, slice_texture
from tests.align.conftest import plan_shifts, true_offsets_px

EXACT_TOLERANCE_PX = 1e-3
#: Image refinement sees the tissue, which drifts by ~1.5 px per slice on top of the motors.
IMAGE_TOLERANCE_PX = 4.0
PIXEL_MM = 0.01


def _rows(steps, reliable=None) -> list[ShiftRow]:
    reliable = reliable or [True] * len(steps)
    return [ShiftRow(f"{k:02d}", f"{k + 1:02d}", x / PIXEL_MM, y / PIXEL_MM, x, y, ok)
            for k, ((x, y), ok) in enumerate(zip(steps, reliable))]


def test_offsets_are_minus_the_cumulative_shift():
    offsets = common_space_offsets(_rows([(0.1, 0.0), (0.0, -0.2)]), ["00", "01", "02"])
    assert offsets == {"00": (0.0, 0.0), "01": pytest.approx((-10.0, 0.0)), "02": pytest.approx((-10.0, 20.0))}


def test_rehoming_moves_every_later_slice_with_the_grid(medium_plan):
    offsets = common_space_offsets(detect_rehoming(plan_shifts(medium_plan)).cleaned, list(medium_plan.present_slice_ids))
    truth = true_offsets_px(medium_plan)
    jump = np.asarray(medium_plan.slice("12").rehoming_mm) / medium_plan.pixel_mm
    for sid in ("12", "15", "19"):  # 15 is the degraded slice: no slice_config given, so placed as is
        np.testing.assert_allclose(offsets[sid], truth[sid], atol=EXACT_TOLERANCE_PX)
    assert np.linalg.norm(jump) > 50


def test_slices_across_a_missing_slice_chain_through_its_row(small_plan):
    shifts = detect_rehoming(plan_shifts(small_plan)).cleaned
    ids = ["01", "03", "05", "07"]  # 04 is missing from the data; 02 and 06 are left out here
    offsets = common_space_offsets(shifts, ids)
    truth = true_offsets_px(small_plan)
    for sid in ids:
        np.testing.assert_allclose(offsets[sid], truth[sid] - truth["01"], atol=EXACT_TOLERANCE_PX)


def test_unreachable_slice_is_refused():
    with pytest.raises(FormatError, match="no row from slice 02"):
        common_space_offsets(_rows([(0.1, 0.0), (0.1, 0.0)]), ["00", "01", "02", "05"])


@pytest.mark.parametrize(("mode", "expected_x"), [("keep", (2.0, 0.2)), ("zero", (0.0, 0.0)),
                                                   ("median", (0.1, 0.1)), ("local_median", (0.1, 0.2))])
def test_excluded_slice_modes_replace_the_steps_into_and_out_of_the_slice(mode, expected_x):
    rows = _rows([(0.1, 0.0), (0.1, 0.0), (2.0, 0.0), (0.2, 0.0), (0.2, 0.0), (0.1, 0.0)])
    config = [SliceConfigRow(f"{k:02d}") for k in range(7)]
    config[3] = replace(config[3], use=False)
    offsets = common_space_offsets(rows, [r.slice_id for r in config], config, excluded_mode=mode, window=1)
    step_in = -(offsets["03"][0] - offsets["02"][0]) * PIXEL_MM
    step_out = -(offsets["04"][0] - offsets["03"][0]) * PIXEL_MM
    assert (step_in, step_out) == pytest.approx(expected_x)
    np.testing.assert_allclose(offsets["02"], (-20.0, 0.0))  # untouched steps stay


def test_auto_excluded_counts_as_excluded():
    rows = _rows([(0.1, 0.0), (3.0, 0.0), (0.1, 0.0)])
    config = [SliceConfigRow("00"), SliceConfigRow("01"), SliceConfigRow("02", auto_excluded=True), SliceConfigRow("03")]
    offsets = common_space_offsets(rows, ["00", "01", "02", "03"], config, excluded_mode="zero")
    assert offsets["02"] == pytest.approx((-10.0, 0.0))


def test_canvas_holds_every_slice():
    canvas = canvas_extent({"00": (0.0, 0.0), "01": (-10.5, 4.0)}, {"00": (100, 50), "01": (90, 60)})
    assert canvas.origin_px == (-11, 0) and canvas.shape == (111, 64)
    assert canvas.positions["01"] == pytest.approx((0.5, 4.0))


def test_phase_correlation_recovers_a_known_translation(rng):
    image = rng.random((80, 90))
    moved = np.zeros_like(image)
    moved[7:, :85] = image[:-7, 5:]  # content moved by (+7, -5)
    t, ncc = estimate_translation(moved, image)
    assert t == pytest.approx((7.0, -5.0), abs=0.2) and ncc > 0.99


def _projection(plan, sid: str) -> np.ndarray:
    """A stitched-slice stand-in: every tile pasted at its nominal step (later tiles on top), mean over depth."""
    (_, nx, ny), (gx, gy) = plan.config.tile_shape, plan.config.grid_shape
    step = [int(round(s)) for s in plan.step_px]
    out = np.zeros(((gx - 1) * step[0] + nx, (gy - 1) * step[1] + ny))
    texture = slice_texture(plan, sid)
    for ix in range(gx):
        for iy in range(gy):
            out[ix * step[0] : ix * step[0] + nx, iy * step[1] : iy * step[1] + ny] = render_tile(plan, sid, ix, iy, texture=texture).mean(axis=0)
    return out


def test_refinement_agrees_with_the_motor_shift_across_the_rehoming(small_plan):
    # Pins the sign convention with pixels: the image estimate of the re-homing step,
    # flagged unreliable, matches the motor step (up to the tissue drift).
    shifts = detect_rehoming(plan_shifts(small_plan)).cleaned
    k = next(i for i, r in enumerate(shifts) if r.moving_id == "05")
    shifts[k] = replace(shifts[k], reliable=False)
    images = {sid: _projection(small_plan, sid) for sid in ("03", "05")}
    result = refine_unreliable(shifts, images)
    (step,) = result.steps
    assert step.accepted and step.discrepancy_px <= IMAGE_TOLERANCE_PX and np.hypot(*step.motor_px) > 40
    assert result.shifts[k].x_shift == pytest.approx(step.image_px[0])
    assert result.shifts[k].x_shift_mm == pytest.approx(step.image_px[0] * small_plan.pixel_mm)
    gated = refine_unreliable(shifts, images, max_discrepancy_px=0.01)
    assert not gated.steps[0].accepted and "motor shift kept" in gated.steps[0].reason
    assert gated.shifts[k] == shifts[k]
    assert not refine_unreliable(shifts, images, min_correlation=0.999).steps[0].accepted
    assert not refine_unreliable(shifts, {}).steps[0].accepted


def test_a_rehoming_step_is_never_the_replacement_of_an_excluded_slices_steps():
    rows = _rows([(0.1, 0.0), (0.1, 0.0), (0.6, 0.0), (0.1, 0.0), (0.1, 0.0)])  # 02 -> 03 is a genuine re-homing
    config = [SliceConfigRow(f"{k:02d}") for k in range(6)]
    config[3] = replace(config[3], rehomed=True)
    config[4] = replace(config[4], use=False)
    offsets = common_space_offsets(rows, [r.slice_id for r in config], config, excluded_mode="local_median", window=2)
    step_in = -(offsets["04"][0] - offsets["03"][0]) * PIXEL_MM
    step_out = -(offsets["05"][0] - offsets["04"][0]) * PIXEL_MM
    assert (step_in, step_out) == pytest.approx((0.1, 0.1))
    assert -(offsets["03"][0] - offsets["02"][0]) * PIXEL_MM == pytest.approx(0.6)  # the re-homing itself is kept
