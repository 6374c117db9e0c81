"""Claims about resampling a mosaic grid to isotropic voxels."""

from __future__ import annotations

import numpy as np
import pytest

from serialoct.compute import get_backend
from serialoct.correct.resample import (
    iter_mosaic_tiles,
    mosaic_grid_shape,
    resample_mosaic_grid,
    resample_tile_isotropic,
    resampled_tile_shape,
)

DOWNSAMPLED_ATOL = 0.01  # smooth field of amplitude ~2: a light low-pass, then linear interpolation
UPSAMPLED_ATOL = 0.02  # linear interpolation between samples 15-20 µm apart: h^2 f'' / 8 ~ 0.01
MEAN_RTOL = 0.005
ALIAS_STD = 0.01


def analytic(shape, voxel_um):
    """A smooth field evaluated at voxel centres ``(k + 1/2) * voxel`` (µm from the tile's first edge)."""
    axes = [(np.arange(n) + 0.5) * v for n, v in zip(shape, voxel_um)]
    z, x, y = np.meshgrid(*axes, indexing="ij")
    return (np.sin(z / 70.0) + np.cos(x / 90.0) * np.sin(y / 110.0 + 0.3)).astype(np.float32)


def test_downsampling_to_isotropic_voxels_matches_the_analytic_field():
    native = (3.5, 4.0, 4.0)
    tile = analytic((100, 75, 80), native)
    out = resample_tile_isotropic(tile, native, resolution_um=10.0)
    assert out.shape == (35, 30, 32)
    expected = analytic(out.shape, (10.0, 10.0, 10.0))
    assert np.abs(out - expected)[1:-1, 1:-1, 1:-1].max() < DOWNSAMPLED_ATOL


def test_upsampling_matches_the_analytic_field():
    native = (20.0, 15.0, 15.0)
    tile = analytic((12, 16, 16), native)
    out = resample_tile_isotropic(tile, native, resolution_um=10.0)
    assert out.shape == (24, 24, 24)
    expected = analytic(out.shape, (10.0, 10.0, 10.0))
    assert np.abs(out - expected)[1:-1, 1:-1, 1:-1].max() < UPSAMPLED_ATOL


def test_the_output_voxel_is_exactly_the_resolution_even_when_the_tile_does_not_divide():
    # 33 voxels of 3 µm = 99 µm -> 10 voxels of exactly 10 µm; a linear ramp shows the sampling positions
    ramp = np.broadcast_to((np.arange(33, dtype=np.float32) + 0.5) * 3.0, (4, 6, 33)).copy()
    out = resample_tile_isotropic(ramp, (3.0, 3.0, 3.0), resolution_um=10.0)
    assert out.shape[2] == 10
    np.testing.assert_allclose(out[0, 0, 1:-1], (np.arange(1, 9) + 0.5) * 10.0, atol=1e-3)


def test_downsampling_preserves_the_mean(rng):
    speckle = rng.lognormal(0.0, 0.8, (60, 64, 64)).astype(np.float32)
    out = resample_tile_isotropic(speckle, (2.5, 5.0, 5.0), resolution_um=10.0)
    assert out.mean() == pytest.approx(speckle.mean(), rel=MEAN_RTOL)


def test_a_grating_finer_than_the_new_grid_does_not_alias():
    y = np.arange(64)
    grating = np.broadcast_to((1.0 + np.cos(np.pi * y)).astype(np.float32), (16, 64, 64)).copy()  # period 2 voxels
    out = resample_tile_isotropic(grating, (5.0, 5.0, 5.0), resolution_um=20.0)
    assert out.mean() == pytest.approx(1.0, rel=0.01)
    assert out[:, 1:-1, 1:-1].std() < ALIAS_STD


def test_each_tile_is_resampled_in_place_and_the_chunk_is_the_new_tile(rng):
    tile_shape, voxel = (20, 24, 30), (5.0, 5.0, 5.0)
    mosaic = rng.uniform(0.5, 1.5, (20, 3 * 24, 2 * 30)).astype(np.float32)
    mosaic[:, 24:48, 30:60] = 0  # tile (1, 1) is a hole
    out = resample_mosaic_grid(mosaic, tile_shape, voxel, resolution_um=10.0, backend=get_backend(False))
    assert out.tile_shape == (10, 12, 15) and out.mosaic.shape == (10, 36, 30)
    assert out.grid_shape == (3, 2) and out.voxel_size_um == (10.0, 10.0, 10.0) and out.n_holes == 1
    np.testing.assert_array_equal(out.mosaic[:, 24:36, :15], resample_tile_isotropic(mosaic[:, 48:72, :30], voxel, resolution_um=10.0))
    assert not out.mosaic[:, 12:24, 15:30].any()


def test_tiles_are_read_row_major_at_rows_ix_h_and_columns_iy_w():
    mosaic = np.arange(2 * 4 * 6, dtype=np.float32).reshape(2, 4, 6)
    tiles = dict(iter_mosaic_tiles(mosaic, (2, 2, 3)))
    assert list(tiles) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    np.testing.assert_array_equal(tiles[1, 0], mosaic[:, 2:4, 0:3])


def test_a_synthetic_tile_keeps_its_mean_at_the_reference_resolution(small_slices, small_plan):
    c = small_plan.config
    tile = small_slices["01"].tiles[1, 2]
    out = resample_tile_isotropic(tile, (c.axial_resolution_um, c.pixel_size_um, c.pixel_size_um), resolution_um=10.0)
    assert out.shape == resampled_tile_shape(tile.shape, (8.0, 12.0, 12.0), resolution_um=10.0) == (51, 115, 115)
    assert out.mean() == pytest.approx(tile.mean(), rel=0.01)  # the edges stretch by up to half a voxel


def test_a_mosaic_that_is_not_a_grid_of_tiles_is_refused():
    with pytest.raises(ValueError, match=r"not a grid of tiles of shape \(4, 5, 5\)"):
        mosaic_grid_shape((4, 12, 10), (4, 5, 5))


@pytest.mark.parametrize("resolution", [0.0, -1.0, float("nan")])
def test_a_resolution_that_is_not_positive_is_refused(resolution):
    with pytest.raises(ValueError, match="resolution_um"):
        resampled_tile_shape((4, 5, 5), (1.0, 1.0, 1.0), resolution_um=resolution)
