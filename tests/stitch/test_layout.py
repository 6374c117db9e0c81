"""Claims about the base layout: nominal grid, motor positions, neighbours, tile views of a mosaic grid."""

from __future__ import annotations

import numpy as np
import pytest

from serialoct.stitch import base_layout, neighbour_pairs, nominal_positions_px, positions_from_stage_mm, tiles_from_mosaic

#: Reported stage positions are rounded to 1 nm: 1e-4 px at 12 µm pixels.
STAGE_ROUNDING_PX = 1e-3


def test_nominal_grid_steps_by_tile_size_times_one_minus_overlap():
    layout = nominal_positions_px((3, 2), (96, 80), overlap_fraction=0.25)
    np.testing.assert_allclose(layout[(2, 1)], [2 * 72.0, 60.0])
    assert set(layout) == {(ix, iy) for ix in range(3) for iy in range(2)}


def test_nominal_grid_leaves_holes_out_and_refuses_tiles_outside_the_grid():
    assert set(nominal_positions_px((2, 2), (8, 8), present=[(0, 0), (1, 1)])) == {(0, 0), (1, 1)}
    with pytest.raises(ValueError, match=r"tile \(2, 0\) is outside the 2x2 grid"):
        nominal_positions_px((2, 2), (8, 8), present=[(2, 0)])
    with pytest.raises(ValueError, match="overlap_fraction = 0.6"):
        nominal_positions_px((2, 2), (8, 8), overlap_fraction=0.6)


def test_motor_positions_of_a_synthetic_slice_give_the_commanded_grid(small_plan):
    k = 2  # the glitch slice: every reported position jumps by the same vector, which cancels
    stage = {(ix, iy): tuple(small_plan.reported_mm[k, ix, iy]) for ix in range(4) for iy in range(4)}
    layout = positions_from_stage_mm(stage, 12.0, step_px=small_plan.step_px)
    for (ix, iy), position in layout.items():
        np.testing.assert_allclose(position, np.array([ix, iy]) * small_plan.step_px, atol=STAGE_ROUNDING_PX)


def test_base_layout_uses_motor_positions_only_when_asked_and_known(small_plan):
    tiles = [(ix, iy) for ix in range(4) for iy in range(4)]
    stage = {t: tuple(small_plan.reported_mm[1, t[0], t[1]] + np.array([t[0] * 0.001, 0.0])) for t in tiles}  # a 1 µm/tile drift
    motor = base_layout(tiles, (96, 96), stage_mm=stage, pixel_size_um=12.0)
    nominal = base_layout(tiles, (96, 96), stage_mm=stage, pixel_size_um=12.0, use_motor_positions=False)
    assert motor[(3, 0)][0] - motor[(0, 0)][0] == pytest.approx(3 * 76.8 + 3 / 12, abs=STAGE_ROUNDING_PX)
    assert nominal[(3, 0)][0] == pytest.approx(3 * 76.8)
    with pytest.raises(ValueError, match="stage positions missing"):
        base_layout(tiles, (96, 96), stage_mm={(0, 0): (0.0, 0.0)}, pixel_size_um=12.0)


def test_neighbour_pairs_are_x_and_y_neighbours_of_present_tiles_only():
    pairs = neighbour_pairs([(0, 0), (0, 1), (1, 1), (2, 1)])
    assert pairs == [((0, 0), (0, 1)), ((0, 1), (1, 1)), ((1, 1), (2, 1))]


def test_tiles_of_a_mosaic_grid_are_views_at_ix_h_and_iy_w(rng):
    mosaic = rng.uniform(size=(3, 2 * 4, 3 * 5)).astype(np.float32)
    tiles = tiles_from_mosaic(mosaic, (4, 5), holes=[(1, 2)])
    assert (1, 2) not in tiles and len(tiles) == 5
    np.testing.assert_array_equal(tiles[(1, 1)], mosaic[:, 4:8, 5:10])
    assert np.shares_memory(tiles[(0, 0)], mosaic)
    with pytest.raises(ValueError, match="not"):
        tiles_from_mosaic(mosaic, (3, 5))
