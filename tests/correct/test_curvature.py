"""Claims about the focal-curvature estimate and fix."""

from __future__ import annotations

import numpy as np
import pytest

from serialoct.correct.curvature import estimate_focal_curvature, fix_focal_curvature
from serialoct.correct.interface import detect_surface
from tests.correct.conftest_surface import BRAIN_SLICE, DEGRADED_SLICE, mosaic_grid, synth_plan, tile_plane_residual, tile_size

CURVATURE_TOLERANCE_VOX = 1.0  # the requirement: residual curvature, RMS and max
BOWL_TOLERANCE_VOX = 0.5  # the estimated bowl against the truth (measured 0.2)
REDETECTED_RMS_VOX = 0.5  # a flattened grid's detected surface: detection noise only (measured 0.27)


def _fit(slice_id):
    plan = synth_plan()
    grid = mosaic_grid(slice_id, flat_field=True)
    surface = detect_surface(grid.volume, tile_size_px=tile_size(plan))
    return plan, grid, estimate_focal_curvature(surface.depth_vox, tile_size(plan))


def _centred(a):
    return a - a.mean()


@pytest.mark.parametrize("slice_id", [BRAIN_SLICE, DEGRADED_SLICE])
def test_estimated_bowl_is_within_half_a_voxel_of_the_true_curvature(slice_id):
    plan, _, fit = _fit(slice_id)
    assert fit.reliable and fit.n_tiles == 16
    error = _centred(fit.bowl_vox) - _centred(plan.curvature_vox)
    assert np.abs(error).max() <= BOWL_TOLERANCE_VOX
    assert fit.bowl_vox.min() == 0.0 and fit.amplitude_vox == pytest.approx(plan.config.curvature_vox, abs=BOWL_TOLERANCE_VOX)
    assert fit.residual_rms_vox < 0.5  # the model explains the surface up to detection noise


def test_curvature_left_after_the_fix_is_within_1_voxel():
    plan, grid, fit = _fit(BRAIN_SLICE)
    corrected_truth = grid.surface_vox - np.tile(fit.bowl_vox, plan.config.grid_shape)  # the true surface after the shift
    left = tile_plane_residual(corrected_truth, tile_size(plan))
    assert np.abs(left).max() <= CURVATURE_TOLERANCE_VOX
    assert np.sqrt(np.mean(left**2)) <= CURVATURE_TOLERANCE_VOX / 4
    before = tile_plane_residual(grid.surface_vox, tile_size(plan))
    assert np.abs(before).max() > 1.5  # there was a bowl to remove


def test_flattened_grid_shows_a_flat_surface_in_every_tile():
    plan, grid, fit = _fit(BRAIN_SLICE)
    flat = fix_focal_curvature(grid.volume, fit.bowl_vox)
    assert flat.shape == grid.volume.shape and flat.dtype == np.float32
    again = detect_surface(flat, tile_size_px=tile_size(plan))
    left = tile_plane_residual(again.depth_vox, tile_size(plan))
    assert np.sqrt(np.nanmean(left**2)) <= REDETECTED_RMS_VOX
    assert np.nanpercentile(np.abs(left), 99) <= CURVATURE_TOLERANCE_VOX


def test_a_tilted_cut_stays_in_the_tissue_and_only_the_bowl_is_removed():
    h, w = 40, 50
    u, v = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    bowl = 2.5 * (u**2 + 0.8 * v**2) / 2
    rows, cols = np.meshgrid(np.arange(3 * h), np.arange(4 * w), indexing="ij")
    surface = 10.0 + 0.02 * rows - 0.015 * cols + np.tile(bowl, (3, 4))  # a cut plane across the whole grid
    surface[:h, :w] = np.nan  # a tile without tissue
    fit = estimate_focal_curvature(surface, (h, w))
    assert fit.n_tiles == 11
    np.testing.assert_allclose(_centred(fit.bowl_vox), _centred(bowl), atol=0.02)


def test_too_few_tiles_with_a_surface_give_an_unreliable_zero_bowl():
    surface = np.full((60, 60), np.nan)
    surface[:30, :30] = 5.0
    fit = estimate_focal_curvature(surface, (30, 30))
    assert not fit.reliable and "1 of 4 tiles" in fit.reason
    assert not fit.bowl_vox.any() and fit.bowl_vox.shape == (30, 30)


def test_grids_that_are_not_whole_tiles_are_refused():
    with pytest.raises(ValueError, match="whole number of 30 x 30 tiles"):
        estimate_focal_curvature(np.zeros((60, 50)), (30, 30))
    with pytest.raises(ValueError, match="whole number of 4 x 4 tiles"):
        fix_focal_curvature(np.zeros((8, 8, 6), np.float32), np.zeros((4, 4)))


def test_the_fix_moves_every_aline_up_by_its_bowl_value():
    z = np.arange(20, dtype=np.float32)[:, None, None]
    volume = np.broadcast_to(np.clip(z - 7, 0, 1), (20, 2, 2))  # a step from voxel 7 to voxel 8
    bowl = np.array([[0.0, 1.0], [2.0, 0.5]], np.float32)
    out = fix_focal_curvature(volume, bowl)
    np.testing.assert_allclose(out, np.clip(z + bowl - 7, 0, 1), atol=1e-6)  # linear interpolation is exact here
    assert out[-1].min() == 1.0  # the bottom repeats the last voxel instead of dropping to 0
