"""Claims about depth-resolved attenuation estimation and compensation."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from scipy import ndimage as ndi

from serialoct.correct.attenuation import compensate_attenuation, data_end, estimate_attenuation, estimate_tail
from serialoct.correct.interface import sample_alines
from serialoct.synth import beam_profile
from serialoct.synth.phantom import LABELS
from tests.correct.conftest_surface import BRAIN_SLICE, mosaic_grid, synth_plan, true_attenuation_grid

AXIAL_UM = 8.0
FLOOR = 0.01
DECAY_LEFT = 0.05  # |log-slope x depth| of the mean profile after compensation; measured < 0.02
#: The same on the synthetic slice, whose speckle is a sample-frame field correlated over about a
#: voxel (shared by overlapping tiles): measured 0.077 (< 0.02 when the speckle was independent per voxel).
SLICE_DECAY_LEFT = 0.1
HOMOGENEOUS_MU_TOLERANCE = 0.06  # relative; the estimator's speckle bias is about 4% (measured)
MATERIAL_MU_TOLERANCE = 0.2  # relative, per material of the phantom; measured within 7%
MIN_CORRELATION = 0.6  # smoothed estimate vs truth; measured 0.75
CROP_VOX = 52  # depth kept below the true surface (the small preset's tiles hold 64 voxels)


def _homogeneous(rng, mu_per_mm, shape=(75, 96, 96)):
    """Speckled exponential decay over a noise floor: what a homogeneous tissue records after the crop."""
    z = np.arange(shape[0])[:, None, None]
    clean = np.exp(-2 * mu_per_mm * AXIAL_UM / 1000 * (z + 0.5)) * np.ones(shape)
    speckle = rng.lognormal(-0.045, 0.3, shape)
    return (clean * speckle + FLOOR + rng.normal(0.0, 0.002, shape)).astype(np.float32)


@pytest.mark.parametrize("mu_per_mm", [0.5, 2.0, 3.5])
def test_decay_of_a_homogeneous_medium_is_removed(rng, mu_per_mm):
    volume = _homogeneous(rng, mu_per_mm)
    out = compensate_attenuation(volume, axial_um=AXIAL_UM, noise_floor=FLOOR, max_gain=100.0)
    profile = out.volume.mean(axis=(1, 2)) - FLOOR
    slope = np.polyfit(np.arange(profile.size), np.log(profile), 1)[0]
    assert abs(slope * profile.size) <= DECAY_LEFT
    assert out.gain_limited_fraction == 0.0


def _padded(volume, rng):
    """What the interface crop makes of A-lines whose recordings end at different depths: whole voxels, exact zeros below."""
    n_z = volume.shape[0]
    end = rng.integers(n_z - 25, n_z + 1, volume.shape[1:])
    z = np.arange(n_z)[:, None, None]
    return np.where(z < end, volume, 0.0).astype(np.float32), end


def test_padding_below_the_data_is_no_signal(rng):
    volume, end = _padded(_homogeneous(rng, 2.0), rng)
    np.testing.assert_array_equal(data_end(volume), end)
    out = compensate_attenuation(volume, axial_um=AXIAL_UM, noise_floor=FLOOR, max_gain=100.0)
    assert (out.volume[volume == 0] == 0).all()
    complete = out.volume[: int(end.min())]  # depths where every A-line still has data
    profile = complete.mean(axis=(1, 2)) - FLOOR
    slope = np.polyfit(np.arange(profile.size), np.log(profile), 1)[0]
    assert abs(slope * profile.size) <= DECAY_LEFT  # counting the padding as signal (before): 1.17, over-compensated


def test_the_tail_of_alines_cropped_at_fractional_surfaces_is_the_rest_of_their_decay(rng):
    """The crop's deepest plane is partial for the A-lines with the shallowest surfaces; counted as data it
    darkened the last window and gave a tail of 0.3-0.5 of the truth in agarose (medium preset, before)."""
    mu_per_mm, n_z = 0.5, 64
    dz = 2 * mu_per_mm * AXIAL_UM / 1000
    start = rng.uniform(3.0, 5.0, (40, 40)).astype(np.float32)  # surfaces across a whole voxel and more
    z = np.arange(n_z)[:, None, None]
    recorded = np.broadcast_to(np.exp(-dz * (z - 3.0 + 0.5)), (n_z, 40, 40)).astype(np.float32) + FLOOR
    cropped = sample_alines(recorded, start, n_z - 3)  # the depth interface_crop_depth_vox keeps for a surface at 3
    end = data_end(cropped)
    assert (end == np.where(start == 3.0, n_z - 3, n_z - 4 - np.floor(start - 3.0)).astype(int)).all()
    truth = np.exp(-dz * (start + end - 3.0 + 0.5)) / (1 - np.exp(-dz))  # the rest of the geometric series
    tail = estimate_tail(cropped, axial_um=AXIAL_UM, noise_floor=FLOOR, lateral_sigma_um=0, decay_sigma_um=0)
    np.testing.assert_allclose(tail, truth, rtol=0.02)


@pytest.mark.parametrize("mu_per_mm", [0.5, 2.0, 3.5])
def test_attenuation_of_a_homogeneous_medium_is_recovered(rng, mu_per_mm):
    mu = estimate_attenuation(_homogeneous(rng, mu_per_mm), axial_um=AXIAL_UM, noise_floor=FLOOR)
    assert mu.mean() == pytest.approx(mu_per_mm, rel=HOMOGENEOUS_MU_TOLERANCE)


@functools.cache
def _cropped_slice():
    """Slice 03 with a perfect flat-field, the true beam divided out, cut at the true surface; and its truth."""
    plan = synth_plan()
    grid = mosaic_grid(BRAIN_SLICE, flat_field=False)
    beam = np.tile(beam_profile(plan), (1,) + plan.config.grid_shape)
    signal = (grid.volume - FLOOR) / beam + FLOOR
    start = np.ceil(grid.surface_vox).astype(np.float32)  # whole voxels: labels stay exact
    mu, labels = true_attenuation_grid(BRAIN_SLICE)
    crop = [sample_alines(a, start, CROP_VOX) for a in (signal, mu, labels.astype(np.float32))]
    return crop[0], crop[1], np.rint(crop[2]).astype(np.int16)


def test_estimated_attenuation_follows_the_synthetic_truth():
    signal, mu_true, labels = _cropped_slice()
    mu = estimate_attenuation(signal, axial_um=AXIAL_UM, noise_floor=FLOOR)
    keep = slice(0, CROP_VOX - 8)  # the last window feeds the tail estimate
    smooth = functools.partial(ndi.uniform_filter, size=(3, 8, 8))
    r = np.corrcoef(smooth(mu)[keep].ravel(), smooth(mu_true)[keep].ravel())[0, 1]
    assert r >= MIN_CORRELATION
    for name in ("agarose", "cortex", "white_matter"):
        inside = labels[keep] == LABELS[name]
        truth = float(np.median(mu_true[keep][inside]))
        assert mu[keep][inside].mean() == pytest.approx(truth, rel=MATERIAL_MU_TOLERANCE), name


def test_agarose_decay_is_removed_on_the_synthetic_slice():
    signal, _, labels = _cropped_slice()
    agarose_only = (labels == LABELS["agarose"]).all(axis=0)
    assert agarose_only.sum() > 10_000
    out = compensate_attenuation(signal, axial_um=AXIAL_UM, noise_floor=FLOOR)
    before = signal[:, agarose_only].mean(axis=1) - FLOOR
    after = out.volume[:, agarose_only].mean(axis=1) - FLOOR
    depth = np.arange(CROP_VOX)
    assert np.polyfit(depth, np.log(before), 1)[0] * CROP_VOX < -0.25  # agarose decays by a quarter over the crop
    assert abs(np.polyfit(depth, np.log(after), 1)[0] * CROP_VOX) <= SLICE_DECAY_LEFT


def test_gain_is_bounded_where_the_signal_sinks_into_the_noise(rng):
    volume = _homogeneous(rng, 8.0)  # exp(-2 * 8 * 0.6) = 1e-4 at the bottom: noise long before
    out = compensate_attenuation(volume, axial_um=AXIAL_UM, noise_floor=FLOOR, max_gain=30.0)
    assert out.max_gain_applied <= 30.0 * (1 + 1e-5)
    assert 0.2 < out.gain_limited_fraction < 0.9


def test_alines_without_signal_are_left_as_they_are():
    volume = np.full((20, 3, 3), FLOOR, np.float32)
    volume[:, 0, 0] = np.exp(-0.1 * (np.arange(20) + 0.5)) + FLOOR
    tail = np.zeros((3, 3), np.float32)
    tail[0, 0] = np.exp(-0.1 * 19.5) / (np.exp(0.1) - 1)  # the rest of the geometric series
    out = compensate_attenuation(volume, axial_um=AXIAL_UM, noise_floor=FLOOR, tail=tail)
    np.testing.assert_array_equal(out.volume[:, 1:, 1:], volume[:, 1:, 1:])
    np.testing.assert_allclose(out.volume[:, 0, 0], 1.0 + FLOOR, rtol=1e-5)


def test_streaming_in_blocks_of_alines_equals_the_whole_slice():
    signal, _, _ = _cropped_slice()
    tail = estimate_tail(signal[-16:], axial_um=AXIAL_UM, noise_floor=FLOOR)
    whole = compensate_attenuation(signal, axial_um=AXIAL_UM, noise_floor=FLOOR, tail=tail).volume
    blocks = [
        compensate_attenuation(signal[:, r : r + 100, c : c + 150], axial_um=AXIAL_UM, noise_floor=FLOOR, tail=tail[r : r + 100, c : c + 150]).volume
        for r in range(0, 384, 100)
        for c in (0, 150, 300)
    ]
    rows = [np.concatenate(blocks[i : i + 3], axis=2) for i in range(0, len(blocks), 3)]
    np.testing.assert_array_equal(np.concatenate(rows, axis=1), whole)


def test_the_tail_of_a_textured_tissue_is_extrapolated_from_a_decay_rate_smoothed_wider_than_its_level(rng):
    # Brain-like decay (2/mm) under a fibre-like texture (+-20 %) and speckle: the true tail is the rest of the series.
    shape, a = (75, 96, 96), 2 * 2.0 * AXIAL_UM / 1000
    z = np.arange(shape[0])[:, None, None]
    texture = ndi.gaussian_filter(rng.standard_normal(shape), (1.5, 1.5, 5.0))
    volume = np.exp(-a * (z + 0.5)) * (1 + 0.2 * texture / texture.std()) * rng.lognormal(-0.045, 0.3, shape) + FLOOR
    true_tail = np.exp(-a * (shape[0] - 0.5)) / (np.exp(a) - 1)
    inner = (slice(20, -20), slice(20, -20))  # away from the reflected borders of the smoothing

    def log_error(**kwargs):
        return np.log(estimate_tail(volume.astype(np.float32), axial_um=AXIAL_UM, noise_floor=FLOOR, **kwargs)[inner] / true_tail)

    found, as_level = log_error(), log_error(decay_sigma_um=72.0)  # the level's own smoothing
    assert abs(np.median(found)) < 0.1  # measured -0.05
    assert np.std(found) < 0.6 * np.std(as_level)  # measured 0.05 vs 0.14


def test_bad_inputs_are_refused():
    volume = np.ones((20, 4, 4), np.float32)
    with pytest.raises(ValueError, match="max_gain"):
        compensate_attenuation(volume, axial_um=AXIAL_UM, max_gain=0.5)
    with pytest.raises(ValueError, match="tail of shape"):
        compensate_attenuation(volume, axial_um=AXIAL_UM, tail=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="too shallow"):
        compensate_attenuation(volume[:10], axial_um=AXIAL_UM)


def test_the_reference_depth_ends_where_the_recorded_signal_below_sinks_into_the_noise():
    z = np.arange(60)[:, None, None]
    decay = (np.exp(-2 * 3.0 * 0.008 * (z + 0.5)) * np.ones((60, 3, 4))).astype(np.float32)
    tail = decay[-1] / (np.exp(0.048) - 1)
    below = np.cumsum(decay[::-1, 0, 0])[::-1]  # the recorded signal from each voxel down
    for sigma in (0.01, 0.03):
        expected = int(np.cumprod(below > 15.0 * sigma * np.sqrt(60 - np.arange(60))).sum())  # leading clear voxels
        assert 0 < expected < 60
        out = compensate_attenuation(decay, axial_um=8.0, max_gain=100.0, tail=tail, noise_sigma=sigma)
        np.testing.assert_array_equal(out.reference_depth, expected)
    unknown = compensate_attenuation(decay, axial_um=8.0, max_gain=100.0, tail=tail)
    np.testing.assert_array_equal(unknown.reference_depth, 60)  # noise not known: every data voxel
