"""Claims about the flat-field / darkfield fit (BaSiC) and its correction."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from serialoct.compute import get_backend
from serialoct.correct.illumination import (
    FLATFIELD_FLOOR,
    IlluminationFit,
    apply_illumination,
    estimate_illumination,
    fix_illumination,
    pool_tile,
)
from serialoct.synth import plan_acquisition, preset, render_tile, slice_texture

FLATFIELD_RMS_TOLERANCE = 0.03  # the accuracy target: relative RMS over the tile
DARKFIELD_RTOL = 0.02  # 3 dark planes x 16 tiles average the detector noise (sd 0.003) well below 0.0002
PLANE_TOLERANCE = 0.03  # noise-free corrected tile vs the unshaded truth, per depth plane
BANDING_TOLERANCE = 0.005  # spread of the per-plane gain error across depth
OVERLAP_IMPROVEMENT = 0.3  # corrected overlap mismatch at most this fraction of the uncorrected one


def relative_rms(estimate: np.ndarray, truth: np.ndarray) -> float:
    a, b = estimate / estimate.mean(), truth / truth.mean()
    return float(np.sqrt(np.mean((a - b) ** 2)))


@pytest.fixture(scope="module")
def fits(small_slices) -> dict[str, IlluminationFit]:
    return {sid: estimate_illumination([pool_tile(t) for t in s.tiles.values()]) for sid, s in small_slices.items()}


@pytest.mark.parametrize("slice_id", ["01", "03"])
def test_recovers_the_flatfield_within_3_percent_rms(fits, small_plan, slice_id):
    fit = fits[slice_id]
    assert fit.fitted and fit.converged and fit.n_tiles_used == 16
    assert relative_rms(fit.flatfield, small_plan.flat_field) < FLATFIELD_RMS_TOLERANCE
    assert fit.flatfield.mean() == pytest.approx(1.0, abs=1e-4)


def test_recovers_the_darkfield_level(fits, small_plan):
    darkfield = small_plan.config.darkfield
    np.testing.assert_allclose(fits["03"].darkfield, darkfield, rtol=DARKFIELD_RTOL)


def test_one_correction_for_every_depth_plane_matches_the_unshaded_tile(fits, small_plan):
    # noise-free tiles: what is left is the flat-field error, a gain map that must not change with depth (no banding)
    texture = slice_texture(small_plan, "03")
    dark = small_plan.config.darkfield
    for ix, iy in [(1, 1), (2, 2), (0, 3)]:
        shaded = render_tile(small_plan, "03", ix, iy, texture=texture, noise=False)
        truth = render_tile(small_plan, "03", ix, iy, texture=texture, flat_field=False, noise=False) - dark
        corrected = apply_illumination(shaded, fits["03"])
        tissue = truth > 0.02  # the water above the surface has no signal
        gain = np.where(tissue, (corrected - dark) / np.where(tissue, truth, 1.0), np.nan)
        planes = [k for k in range(len(gain)) if tissue[k].sum() > 100]
        assert len(planes) > 40
        gain /= np.nanmedian(gain)  # one global factor: the fit has mean 1, the truth a maximum of 1
        reference = np.nanmedian(gain[planes], axis=0)
        for k in planes:
            assert np.nanstd(gain[k]) < PLANE_TOLERANCE
            assert np.nanmedian(np.abs(gain[k] / reference - 1)) < BANDING_TOLERANCE


def overlap_mismatch(tiles, stitched_px) -> float:
    """Median |log ratio| of the depth-mean intensity of neighbouring tiles over their true overlap."""
    pooled = {k: t.mean(axis=0) for k, t in tiles.items()}
    _, h, w = next(iter(tiles.values())).shape
    gx, gy = stitched_px.shape[:2]
    mismatches = []
    for ix in range(gx):
        for iy in range(gy):
            for jx, jy in [(ix + 1, iy), (ix, iy + 1)]:
                if jx >= gx or jy >= gy:
                    continue
                dx, dy = np.rint(stitched_px[jx, jy] - stitched_px[ix, iy]).astype(int)
                a = pooled[ix, iy][max(0, dx) : h + min(0, dx), max(0, dy) : w + min(0, dy)]
                b = pooled[jx, jy][max(0, -dx) : h + min(0, -dx), max(0, -dy) : w + min(0, -dy)]
                mismatches.append(abs(np.log(a.mean() / b.mean())))
    return float(np.median(mismatches))


def test_corrected_overlaps_of_neighbours_agree_better_than_uncorrected(fits, small_slices, small_plan):
    tiles = small_slices["03"].tiles
    corrected = {k: apply_illumination(t, fits["03"]) for k, t in tiles.items()}
    before = overlap_mismatch(tiles, small_plan.stitched_px[3])
    after = overlap_mismatch(corrected, small_plan.stitched_px[3])
    assert before > 0.02  # the vignetting is visible in the raw overlaps (about 3 %)
    assert after < OVERLAP_IMPROVEMENT * before


def test_an_all_agarose_slice_still_recovers_the_flatfield():
    # the brain is far away: every tile sees agarose only (dim, but above the noise floor)
    config = replace(preset("tiny"), brain_centre_mm=(30.0, 40.0), n_slices=2, glitch_slice=None, rehoming_slice=None)
    plan = plan_acquisition(config, seed=1)
    fit = estimate_illumination([pool_tile(render_tile(plan, "01", ix, iy)) for ix in range(2) for iy in range(2)])
    assert fit.fitted and fit.n_tiles_used == 4
    assert relative_rms(fit.flatfield, plan.flat_field) < FLATFIELD_RMS_TOLERANCE


def test_holes_are_skipped_by_the_fit_and_stay_zero(small_slices, small_plan):
    s = small_slices["01"]
    mosaic = s.mosaic.copy()
    _, h, w = s.tile_shape
    mosaic[:, h : 2 * h, 2 * w : 3 * w] = 0  # tile (1, 2) never acquired
    out = fix_illumination(mosaic, s.tile_shape)
    assert out.fit.n_tiles_empty == 1 and out.fit.n_tiles_used == 15
    assert not out.mosaic[:, h : 2 * h, 2 * w : 3 * w].any()
    assert relative_rms(out.fit.flatfield, small_plan.flat_field) < FLATFIELD_RMS_TOLERANCE


def test_mosaic_correction_is_the_tile_by_tile_correction(small_slices, fits):
    s = small_slices["03"]
    out = fix_illumination(s.mosaic, s.tile_shape, backend=get_backend(False))
    _, h, w = s.tile_shape
    np.testing.assert_array_equal(out.fit.flatfield, fits["03"].flatfield)
    np.testing.assert_array_equal(out.mosaic[:, h : 2 * h, :w], apply_illumination(s.tiles[1, 0], fits["03"]))


def degenerate_slices():
    rng = np.random.default_rng(5)
    shape = (16, 32, 40)
    water = [(0.01 + 0.003 * rng.standard_normal(shape)).clip(0).astype(np.float32) for _ in range(6)]
    return {
        "all tiles empty": [np.zeros(shape, np.float32) for _ in range(4)],
        "a single tile": [rng.uniform(0.0, 1.0, shape).astype(np.float32)],
        "constant tiles": [np.full(shape, 0.2, np.float32) for _ in range(6)],
        "water only": water,
        "two tiles with signal": water[:4] + [rng.uniform(0.1, 1.0, shape).astype(np.float32) for _ in range(2)],
    }


@pytest.mark.parametrize("name", list(degenerate_slices()))
def test_degenerate_slices_get_the_identity_and_never_nan_or_all_zero(name):
    tiles = degenerate_slices()[name]
    fit = estimate_illumination([pool_tile(t) for t in tiles])
    assert not fit.fitted and fit.reason
    np.testing.assert_array_equal(fit.flatfield, 1.0)
    assert np.isfinite(fit.darkfield).all()
    for tile in tiles:
        out = apply_illumination(tile, fit)
        assert np.isfinite(out).all() and out.min() >= 0
        assert out.any() == tile.any()  # only an empty tile stays empty


def test_constant_tiles_stay_constant():
    tiles = [np.full((8, 16, 16), 0.2, np.float32) for _ in range(5)]
    fit = estimate_illumination([pool_tile(t) for t in tiles])
    np.testing.assert_allclose(apply_illumination(tiles[0], fit), 0.2, rtol=1e-5)


def test_a_fitted_flatfield_is_finite_and_floored_even_on_wild_tiles(rng):
    tiles = [rng.lognormal(-2.0, 1.5, (8, 24, 24)).astype(np.float32) for _ in range(8)]
    fit = estimate_illumination([pool_tile(t) for t in tiles])
    assert np.isfinite(fit.flatfield).all() and fit.flatfield.min() >= FLATFIELD_FLOOR
    assert all(np.isfinite(apply_illumination(t, fit)).all() for t in tiles)


def test_without_darkfield_the_darkfield_is_zero(small_slices):
    fit = estimate_illumination([pool_tile(t) for t in small_slices["01"].tiles.values()], darkfield="none")
    assert fit.fitted and not fit.darkfield.any()


def test_unknown_darkfield_method_is_refused():
    with pytest.raises(ValueError, match="choose one of planes, none"):
        estimate_illumination([pool_tile(np.ones((4, 8, 8), np.float32))], darkfield="basic")


def test_tiles_of_different_shapes_are_refused():
    pooled = [pool_tile(np.ones((4, 8, 8), np.float32)), pool_tile(np.ones((4, 8, 9), np.float32))]
    with pytest.raises(ValueError, match="different shapes"):
        estimate_illumination(pooled)


def test_a_tile_of_another_shape_than_the_fit_is_refused(fits):
    with pytest.raises(ValueError, match=r"expected \(z, 96, 96\)"):
        apply_illumination(np.ones((4, 8, 8), np.float32), fits["01"])
