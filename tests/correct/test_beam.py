"""Claims about the beam-profile estimate (agarose columns) and its correction."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from serialoct.correct.beam import estimate_beam_profile, fix_beam_profile, select_agarose_columns
from serialoct.correct.curvature import fix_focal_curvature
from serialoct.correct.interface import detect_surface
from serialoct.synth.phantom import AGAROSE
from tests.correct.conftest_surface import BRAIN_SLICE, mosaic_grid, synth_plan, true_attenuation_grid

AXIAL_UM = 8.0
BEAM_TOLERANCE = 0.03  # largest difference to the true profile (both max 1); measured 0.01
AGAROSE_MU_TOLERANCE = 0.25  # relative; measured 0.36 vs 0.40 per mm
FLATNESS = 0.05  # peak-to-peak of the agarose profile after the correction, relative; measured 0.02-0.04


@functools.cache
def _flat_slice():
    """Slice 03 with a perfect flat-field and its focal bowl removed: what beam correction receives."""
    plan = synth_plan()
    grid = mosaic_grid(BRAIN_SLICE, flat_field=False)
    volume = fix_focal_curvature(grid.volume, plan.curvature_vox)
    return volume, detect_surface(volume)


def _true_beam():
    c = synth_plan().config
    z = np.arange(c.tile_shape[0])
    return 1.0 / (1.0 + ((z - c.focus_depth_um / c.axial_resolution_um) * c.axial_resolution_um / c.rayleigh_range_um) ** 2)


def _agarose_profile(volume, surface, columns, first):
    """Median over agarose A-lines of the signal above the floor, from ``first`` down, mean 1."""
    profile = np.median(volume[first:, columns] - surface.water_level, axis=1)
    return profile / profile.mean()


def test_agarose_columns_are_agarose_from_the_surface_down():
    volume, surface = _flat_slice()
    columns = select_agarose_columns(volume, surface)
    _, labels = true_attenuation_grid(BRAIN_SLICE)
    tissue = labels >= 2  # brain anywhere in the A-line
    assert columns.mean() > 0.3
    assert (tissue.any(axis=0) & columns).sum() / columns.sum() < 0.02


def test_confocal_profile_matches_the_true_beam():
    volume, surface = _flat_slice()
    beam = estimate_beam_profile(volume, surface, axial_um=AXIAL_UM)
    assert beam.reliable and beam.model == "confocal" and beam.n_columns > 10_000
    assert np.abs(beam.profile - _true_beam()).max() <= BEAM_TOLERANCE
    c = synth_plan().config
    assert beam.focus_vox == pytest.approx(c.focus_depth_um / AXIAL_UM, abs=1.0)
    assert beam.rayleigh_vox == pytest.approx(c.rayleigh_range_um / AXIAL_UM, rel=0.1)


def test_agarose_attenuation_is_told_apart_from_the_beam():
    volume, surface = _flat_slice()
    beam = estimate_beam_profile(volume, surface, axial_um=AXIAL_UM)
    assert beam.agarose_attenuation_per_mm == pytest.approx(AGAROSE[1], rel=AGAROSE_MU_TOLERANCE)


@pytest.mark.parametrize("model", ["confocal", "empirical"])
def test_agarose_depth_profile_is_flat_after_the_correction(model):
    volume, surface = _flat_slice()
    beam = estimate_beam_profile(volume, surface, axial_um=AXIAL_UM, model=model)
    corrected = fix_beam_profile(volume, beam.profile, noise_floor=surface.water_level)
    columns = select_agarose_columns(volume, surface)
    before = _agarose_profile(volume, surface, columns, beam.first_vox)
    after = _agarose_profile(corrected, surface, columns, beam.first_vox)
    if model == "confocal":  # the agarose's own attenuation is left for the attenuation step
        after *= np.exp(2 * beam.agarose_attenuation_per_mm * AXIAL_UM / 1000 * np.arange(beam.first_vox, volume.shape[0]))
        after /= after.mean()
    assert np.ptp(before) > 0.5  # the beam was there
    assert np.ptp(after) <= FLATNESS


def test_without_agarose_the_profile_is_flat_and_marked_unreliable():
    volume, surface = _flat_slice()
    beam = estimate_beam_profile(volume, surface, axial_um=AXIAL_UM, agarose=np.zeros(surface.depth_vox.shape, bool))
    assert not beam.reliable and "0 agarose A-lines" in beam.reason
    np.testing.assert_array_equal(beam.profile, 1.0)


def test_the_correction_keeps_the_floor_and_bounds_the_gain():
    volume = np.full((4, 2, 2), 0.51, np.float32)
    profile = np.array([1.0, 0.5, 0.01, 0.0], np.float32)
    out = fix_beam_profile(volume, profile, noise_floor=0.01, max_gain=10.0)
    np.testing.assert_allclose(out[:, 0, 0], [0.51, 1.01, 5.01, 5.01], rtol=1e-6)
    np.testing.assert_array_equal(fix_beam_profile(np.full((4, 1, 1), 0.01, np.float32), profile, noise_floor=0.01), np.float32(0.01))


def test_bad_options_are_refused():
    volume, surface = _flat_slice()
    with pytest.raises(ValueError, match="model = 'gaussian'"):
        estimate_beam_profile(volume, surface, axial_um=AXIAL_UM, model="gaussian")
    with pytest.raises(ValueError, match="does not match the depth"):
        fix_beam_profile(volume, np.ones(10))


@pytest.mark.parametrize("n_columns", [1, 2, 7, 40])
def test_the_pooled_profile_is_numpys_median_of_the_scaled_columns_at_every_depth(n_columns):
    from serialoct.correct.beam import _pooled_median

    rng = np.random.default_rng(n_columns)
    volume = rng.gamma(2.0, size=(12, 9, 8)).astype(np.float32)
    columns = np.zeros((9, 8), bool)
    columns.ravel()[rng.choice(72, n_columns, replace=False)] = True
    level = rng.uniform(0.5, 2.0, n_columns).astype(np.float32)
    expected = np.median((volume[3:, columns] - np.float32(0.1)) / level[None], axis=1)
    np.testing.assert_array_equal(_pooled_median(volume, columns, 3, 0.1, level, np), expected)
