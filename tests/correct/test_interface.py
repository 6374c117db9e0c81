"""Claims about tissue-surface detection, A-line resampling and the interface crop."""

from __future__ import annotations

import numpy as np
import pytest

from serialoct.correct.interface import (
    crop_interface,
    crop_slice_interface,
    detect_surface,
    fill_surface,
    interface_crop_depth_vox,
    sample_alines,
)
from tests.correct.conftest_surface import BRAIN_SLICE, DEGRADED_SLICE, mosaic_grid, synth_plan, tile_size

INTERFACE_TOLERANCE_VOX = 2.0  # the requirement, on every A-line
INTERFACE_RMS_VOX = 0.35  # measured 0.24: half-voxel sampling of the step plus noise
AXIAL_UM = 8.0  # the small preset's axial voxel


def _errors(found, truth):
    assert np.isfinite(found).all(), f"{int((~np.isfinite(found)).sum())} A-lines without a surface"
    error = found - truth
    return np.abs(error).max(), float(np.sqrt(np.mean(error**2)))


@pytest.mark.parametrize("slice_id", [BRAIN_SLICE, DEGRADED_SLICE])
def test_interface_is_within_2_voxels_of_the_truth_on_every_aline(slice_id):
    grid = mosaic_grid(slice_id, flat_field=True)
    found = detect_surface(grid.volume, tile_size_px=tile_size(synth_plan()))
    worst, rms = _errors(found.depth_vox, grid.surface_vox)
    assert worst <= INTERFACE_TOLERANCE_VOX and rms <= INTERFACE_RMS_VOX
    assert found.noise_sigma == pytest.approx(synth_plan().config.noise_sigma * (3 if slice_id == DEGRADED_SLICE else 1), rel=0.25)
    assert found.water_level == pytest.approx(synth_plan().config.darkfield, abs=0.002)


def test_weak_agarose_over_bright_tissue_is_the_surface_not_the_brighter_layer_below(rng):
    shape = (48, 24, 24)
    volume = np.full(shape, 0.01, np.float32)
    volume[10:] = 0.05  # agarose from index 10
    volume[18:] = 1.0  # brain under 8 voxels of agarose: 20 times brighter
    volume *= rng.lognormal(-0.045, 0.3, shape).astype(np.float32)
    volume[:10] = 0.01 + rng.normal(0.0, 0.003, (10, 24, 24))
    found = detect_surface(volume)
    np.testing.assert_allclose(found.depth_vox, 9.5, atol=0.5)  # the step between voxels 9 and 10


def test_water_only_and_empty_alines_have_no_surface(rng):
    volume = (0.01 + rng.normal(0.0, 0.003, (40, 30, 60))).astype(np.float32)
    volume[12:, :, :20] += 0.2  # tissue on the left third
    volume[:, :, 40:] = 0.0  # a tile hole on the right third
    found = detect_surface(volume, lateral_sigma_px=1.0)
    assert np.isfinite(found.depth_vox[:, :18]).all()
    assert not np.isfinite(found.depth_vox[:, 24:]).any()
    assert found.valid_fraction == pytest.approx(np.isfinite(found.depth_vox).mean())


def test_filling_gives_every_aline_its_nearest_surface():
    depth = np.full((5, 6), np.nan, np.float32)
    depth[:, :2], depth[:, 4:] = 3.0, 7.0
    filled = fill_surface(depth, median_px=1, smooth_px=0)
    np.testing.assert_array_equal(filled[:, 2], 3.0)
    np.testing.assert_array_equal(filled[:, 3], 7.0)
    assert not fill_surface(np.full((3, 3), np.nan)).any()  # nothing found: depth 0


def test_alines_move_by_fractional_amounts_with_linear_interpolation():
    volume = np.broadcast_to(np.arange(20, dtype=np.float32)[:, None, None], (20, 2, 3)).copy() + 1
    start = np.array([[0.0, 2.25, -1.5], [5.5, 18.5, 3.0]], np.float32)
    out = sample_alines(volume, start, 4)
    expected = start[None] + np.arange(4)[:, None, None] + 1  # volume[z] = z + 1
    inside = (start[None] + np.arange(4)[:, None, None] >= 0) & (start[None] + np.arange(4)[:, None, None] <= 19)
    np.testing.assert_allclose(out[inside], expected[inside], atol=1e-5)
    assert out[0, 0, 2] == 0.0 and out[2, 1, 1] == 0.0  # before the first / after the last voxel
    edge = sample_alines(volume, start, 4, fill="edge")
    assert edge[3, 1, 1] == 20.0 and edge[0, 0, 2] == 1.0


def test_every_aline_is_linearly_interpolated_from_its_start_with_zero_or_edge_fill_beyond_its_ends():
    rng = np.random.default_rng(5)
    volume = rng.gamma(2.0, size=(12, 9, 7)).astype(np.float32)
    start = rng.uniform(-16.0, 16.0, size=(9, 7)).astype(np.float32)  # beyond both ends of the 12 voxels
    depth = np.arange(-1, 13)
    for fill in ("zero", "edge"):
        out = sample_alines(volume, start, 10, fill=fill)
        for r, c in np.ndindex(start.shape):
            a = volume[:, r, c]
            padded = np.concatenate([[0.0], a, [0.0]]) if fill == "zero" else np.concatenate([a[:1], a, a[-1:]])
            position = start[r, c] + np.arange(10)
            expected = np.interp(position, depth, padded)
            if fill == "zero":
                expected[position > 11] = 0.0  # no partial voxel at the end of the data
            np.testing.assert_allclose(out[:, r, c], expected, rtol=1e-5, atol=1e-6)


def test_an_aline_cut_by_the_end_of_its_data_ends_in_whole_voxels_then_zeros():
    volume = np.ones((10, 1, 3), np.float32)
    out = sample_alines(volume, np.array([[2.0, 2.4, 2.9]], np.float32), 8)
    np.testing.assert_array_equal(out[:, 0, 0], [1] * 8)  # data to index 9: all whole
    np.testing.assert_array_equal(out[:, 0, 1], [1] * 7 + [0])  # index 9.4 would mix the last voxel with the padding
    np.testing.assert_array_equal(out[:, 0, 2], [1] * 7 + [0])


def test_resampling_refuses_missing_starts():
    with pytest.raises(ValueError, match="NaN"):
        sample_alines(np.zeros((8, 2, 2), np.float32), np.full((2, 2), np.nan), 4)
    with pytest.raises(ValueError, match="fill"):
        sample_alines(np.zeros((8, 2, 2), np.float32), np.zeros((2, 2)), 4, fill="mirror")


def test_crop_puts_the_true_surface_at_the_margin_of_a_stitched_slice():
    plan, grid = synth_plan(), mosaic_grid(BRAIN_SLICE, flat_field=False)
    # a stitched slice stand-in: the grid with its focal bowl removed (no tile seams in the surface)
    from serialoct.correct.curvature import fix_focal_curvature

    bowl = plan.curvature_vox
    stitched = fix_focal_curvature(grid.volume, bowl)
    truth = grid.surface_vox - np.tile(bowl, (4, 4))
    crop = crop_slice_interface(stitched, axial_um=AXIAL_UM, out_depth_um=600.0, margin_um=16.0)
    worst, _ = _errors(crop.surface.depth_vox, truth)
    assert worst <= INTERFACE_TOLERANCE_VOX
    assert crop.depth_vox == interface_crop_depth_vox(crop.surface_vox, 64, axial_um=AXIAL_UM, out_depth_um=600.0, margin_vox=2.0)
    assert crop.volume.shape == (crop.depth_vox, 384, 384)
    landed = truth - crop.surface_vox + crop.margin_vox  # where the true surface sits after the crop
    assert np.abs(landed - 2.0).max() <= INTERFACE_TOLERANCE_VOX


def test_crop_depth_is_the_requested_depth_capped_at_the_data_below_the_shallowest_surface():
    surface = np.array([[6.2, 9.0], [np.nan, 7.5]])
    assert interface_crop_depth_vox(surface, 64, axial_um=8.0, out_depth_um=400.0) == 50
    assert interface_crop_depth_vox(surface, 64, axial_um=8.0, out_depth_um=600.0) == 57  # whole voxels below 6.2: 6.2 .. 62.2
    assert interface_crop_depth_vox(np.array([[6.0]]), 64, axial_um=8.0, out_depth_um=600.0) == 58  # 6.0 .. 63.0
    filled = np.array([[6.2, 9.0], [6.9, 7.5]], np.float32)
    depth = interface_crop_depth_vox(filled, 64, axial_um=8.0, out_depth_um=600.0)
    assert crop_interface(np.ones((64, 2, 2), np.float32), filled, depth_vox=depth)[-1].any()  # no plane of zeros only
    with pytest.raises(ValueError, match="positive"):
        interface_crop_depth_vox(surface, 64, axial_um=0.0)


def test_cropping_in_blocks_of_alines_equals_cropping_the_whole_slice():
    grid = mosaic_grid(BRAIN_SLICE, flat_field=True)
    volume = grid.volume[:, :96, :192]
    surface = fill_surface(detect_surface(volume).depth_vox)
    whole = crop_interface(volume, surface, depth_vox=40, margin_vox=1.0)
    blocks = [crop_interface(volume[:, :, c : c + 50], surface[:, c : c + 50], depth_vox=40, margin_vox=1.0) for c in range(0, 192, 50)]
    np.testing.assert_array_equal(np.concatenate(blocks, axis=2), whole)


def test_the_depth_argmax_is_numpys_first_maximum_ties_and_nan_included(rng):
    from serialoct.correct.interface import _argmax_depth

    p = rng.random((30, 17, 19)).astype(np.float32)
    p[3, 4, 5] = p[7, 4, 5] = 2.0  # a tie: the first plane wins
    p[:, 0, 0] = 1.0  # a flat A-line: plane 0
    assert np.array_equal(_argmax_depth(np, p), np.argmax(p, axis=0))
    p[9, 1, 1] = np.nan
    assert np.array_equal(_argmax_depth(np, p), np.argmax(p, axis=0))


def test_the_median_of_three_planes_used_by_the_surface_refinement_is_numpys():
    from serialoct.correct.interface import _median_depth

    rng = np.random.default_rng(3)
    for window in (rng.normal(size=(3, 40, 50)).astype(np.float32), rng.integers(0, 3, size=(3, 40, 50)).astype(np.float32)):
        np.testing.assert_array_equal(_median_depth(np, window), np.median(window, axis=0))  # ties included
