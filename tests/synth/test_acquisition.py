"""The acquisition plan: positions, motion, events, frames (no pixels)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from serialoct.synth import plan_acquisition, preset, stage_to_sample, tile_lateral_coords

from .conftest import EVENTS

REPORT_ROUNDING_MM = 1e-6  # info.txt positions are rounded to 1 nm


@pytest.fixture(scope="module")
def plan():
    return plan_acquisition(EVENTS, seed=7)


def test_same_seed_gives_the_same_plan_and_another_seed_a_different_one(plan):
    again = plan_acquisition(EVENTS, seed=7)
    other = plan_acquisition(EVENTS, seed=8)
    assert np.array_equal(plan.true_mm, again.true_mm) and plan.slices == again.slices
    assert np.array_equal(plan.flat_field, again.flat_field)
    assert not np.array_equal(plan.true_mm, other.true_mm)


def test_switching_events_off_changes_no_other_draw(plan):
    quiet = plan_acquisition(replace(EVENTS, missing_slice=None, degraded_slice=None, tile_holes=()), seed=7)
    assert np.array_equal(plan.jitter_px, quiet.jitter_px)
    assert [s.drift_mm for s in plan.slices] == [s.drift_mm for s in quiet.slices]
    assert [s.galvo_band_start for s in plan.slices] == [s.galvo_band_start for s in quiet.slices]
    assert plan.phantom == quiet.phantom


def test_reported_positions_differ_from_true_ones_by_the_jitter_only_except_on_the_glitch_slice(plan):
    diff_px = (plan.reported_mm - plan.true_mm) / plan.pixel_mm
    for s in plan.slices:
        expected = -plan.jitter_px[s.index] + (np.array(s.glitch_mm) / plan.pixel_mm if s.index == EVENTS.glitch_slice else 0.0)
        np.testing.assert_allclose(diff_px[s.index], expected, atol=REPORT_ROUNDING_MM / plan.pixel_mm)
    assert np.abs(plan.jitter_px).max() <= EVENTS.jitter_px
    assert np.abs(plan.jitter_px).max() > 0.5 * EVENTS.jitter_px


def test_glitch_is_a_round_trip_spike_larger_than_0p5_mm_in_the_reported_positions(plan):
    g = EVENTS.glitch_slice
    corner = plan.reported_mm[:, 0, 0]
    step_in, step_out = corner[g] - corner[g - 1], corner[g + 1] - corner[g]
    assert np.hypot(*step_in) > 0.5
    # the next step reverses it (up to the small per-slice origin steps)
    assert np.hypot(*(step_in + step_out)) < 0.1 * np.hypot(*step_in)
    # the stage did not really move
    true_step = plan.true_mm[g, 0, 0] - plan.true_mm[g - 1, 0, 0]
    assert np.hypot(*true_step) < 0.1


def test_rehoming_moves_reported_and_true_positions_of_every_later_slice(plan):
    r = EVENTS.rehoming_slice
    jump = np.array(plan.slice(r).rehoming_mm)
    assert np.hypot(*jump) == pytest.approx(EVENTS.rehoming_mm)
    for k in range(r, EVENTS.n_slices):
        assert plan.slices[k].rehoming_mm == tuple(jump)
    for k in range(r):
        assert plan.slices[k].rehoming_mm == (0.0, 0.0)
    for positions in (plan.true_mm, plan.reported_mm):
        step = positions[r, 0, 0] - positions[r - 1, 0, 0]
        np.testing.assert_allclose(step, jump, atol=0.06)  # plus origin walk and jitter


def test_stitched_positions_are_the_nominal_step_plus_the_jitter(plan):
    step = 48 * (1 - EVENTS.overlap_fraction)
    np.testing.assert_allclose(plan.stitched_px[3, 1, 0], (step, 0.0) + plan.jitter_px[3, 1, 0])
    np.testing.assert_allclose(plan.stitched_px[3, 1, 1], (step, step) + plan.jitter_px[3, 1, 1])
    # the same offsets follow from the true stage positions
    from_stage = (plan.true_mm[3] - plan.commanded_mm[3, 0, 0]) / plan.pixel_mm
    np.testing.assert_allclose(from_stage - from_stage[0, 0], plan.stitched_px[3] - plan.stitched_px[3, 0, 0], atol=1e-9)
    assert plan.grid_px[3, 1, 1].tolist() == [48, 48]


def test_slice_zero_defines_the_sample_frame_and_later_slices_move_a_little(plan):
    s0 = plan.slices[0]
    assert s0.drift_mm == (0.0, 0.0) and s0.rotation_deg == 0.0
    rotations = np.array([s.rotation_deg for s in plan.slices])
    assert np.abs(rotations).max() <= EVENTS.rotation_max_deg
    assert np.abs(rotations[1:]).min() > 0.0
    drift_px = np.array([s.drift_mm for s in plan.slices]) / plan.pixel_mm
    assert 0.5 < np.abs(drift_px).max() < 15


def test_tile_coordinates_map_back_to_the_true_stage_position_through_sample_to_stage(plan):
    s = plan.slice("03")
    x, y = tile_lateral_coords(plan, "03", 1, 0)
    centre = np.array([(x[23, 23] + x[24, 24]) / 2, (y[23, 23] + y[24, 24]) / 2, 1.0])
    stage = s.sample_to_stage(EVENTS.brain_centre_mm) @ centre
    np.testing.assert_allclose(stage[:2], plan.true_mm[3, 1, 0], atol=1e-12)
    back = stage_to_sample(EVENTS, s, stage[0], stage[1])
    np.testing.assert_allclose(back, centre[:2], atol=1e-12)


def test_every_galvo_band_lies_within_the_b_scan_and_slice_01_wraps_around_its_end(plan):
    n_alines = 48 + EVENTS.n_extra
    starts = [s.galvo_band_start for s in plan.slices]
    assert all(0 <= p < n_alines for p in starts)
    assert starts[1] + EVENTS.n_extra > n_alines
    assert len(set(starts)) > 1
    no_band = plan_acquisition(replace(EVENTS, n_extra=0), seed=7)
    assert {s.galvo_band_start for s in no_band.slices} == {None}


def test_missing_slice_and_tile_holes_are_not_acquired(plan):
    assert not plan.acquired[EVENTS.missing_slice].any()
    assert not plan.acquired[7, 1, 1] and plan.acquired[7].sum() == 3
    assert "05" not in plan.present_slice_ids and plan.slice("05").missing
    assert plan.slice("06").degraded


def test_volume_grid_is_isotropic_at_the_truth_resolution_and_covers_every_tile(plan):
    grid = plan.volume
    r = EVENTS.truth_resolution_um / 1000
    assert grid.voxel_mm == pytest.approx(r)
    assert grid.origin_mm[0] == pytest.approx(r / 2)
    depth = (EVENTS.n_slices - 1) * EVENTS.slice_thickness_um / 1000 + (32 * 8 - EVENTS.water_depth_um) / 1000
    assert grid.shape[0] == int(depth / r)
    for k in range(EVENTS.n_slices):
        for ix in range(2):
            for iy in range(2):
                x, y = tile_lateral_coords(plan, k, ix, iy)
                assert grid.origin_mm[1] - r <= x.min() and x.max() <= grid.axis_mm(1)[-1] + r
                assert grid.origin_mm[2] - r <= y.min() and y.max() <= grid.axis_mm(2)[-1] + r


def test_flat_field_and_curvature_have_the_configured_range(plan):
    ff = plan.flat_field
    assert ff.shape == (48, 48) and ff.max() <= 1.0
    assert ff.min() == pytest.approx(1 - EVENTS.flat_field_strength, abs=1e-6)
    curv = plan.curvature_vox
    assert curv.min() >= 0 and curv.max() == pytest.approx(EVENTS.curvature_vox)
    assert curv[0, 0] == curv.max() and curv[23:25, 23:25].max() < 0.01


def test_quantum_leaves_room_for_every_repeat_sum_below_2_to_24_quanta():
    for n_repeat in (1, 2, 3, 5, 8):
        plan = plan_acquisition(replace(preset("tiny"), n_repeat=n_repeat, n_slices=3, glitch_slice=1, rehoming_slice=None), seed=0)
        assert n_repeat * 16.0 / plan.quantum <= 2**24
