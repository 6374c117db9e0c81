"""Claims about per-slice normalisation: background to 0, one scale, clipped percentile."""

from __future__ import annotations

import numpy as np
import pytest

from serialoct.correct.normalize import (
    IntensityHistogram,
    apply_normalization,
    estimate_normalization,
    intensity_histogram,
    normalize,
)

PERCENTILE_RTOL = 0.003  # a histogram bin is 0.28 % wide; inside a bin the percentile is interpolated
CLASS_ERROR = 0.01  # voxels put in the wrong class, for two classes 1.4 decades apart


@pytest.fixture(scope="module")
def bimodal():
    """A slice of dim background (log-normal around 0.01) over bright tissue (around 0.3), with padding zeros."""
    rng = np.random.default_rng(3)
    volume = rng.lognormal(np.log(0.01), 0.25, (40, 64, 64)).astype(np.float32)
    tissue = np.zeros(volume.shape, bool)
    tissue[8:, 12:52, 10:50] = True
    volume[tissue] = rng.lognormal(np.log(0.3), 0.5, int(tissue.sum())).astype(np.float32)
    volume[:, :, :4] = 0.0  # outside the mosaic
    return volume, tissue


def test_background_becomes_zero_and_tissue_maps_into_the_unit_interval(bimodal):
    volume, tissue = bimodal
    out = normalize(volume)
    assert out.volume.dtype == np.float32 and out.volume.min() == 0.0 and out.volume.max() == 1.0
    assert (out.volume[~tissue] == 0).mean() > 1 - CLASS_ERROR
    assert (out.volume[tissue] > 0).mean() > 1 - CLASS_ERROR
    assert 0.03 < out.normalization.background_threshold < 0.1  # between the classes
    assert out.normalization.separability > 0.8


def test_the_clip_value_is_the_upper_percentile_of_the_tissue_voxels(bimodal):
    volume, _ = bimodal
    norm = estimate_normalization(intensity_histogram(volume), clip_percentile_upper=99.9)
    tissue = volume[volume >= norm.background_threshold]
    assert norm.clip_value == pytest.approx(np.percentile(tissue, 99.9), rel=PERCENTILE_RTOL)
    assert norm.tissue_fraction == pytest.approx(tissue.size / volume.size)


def test_the_scale_comes_from_the_voxels_above_the_reference_depth_not_from_noise_lifted_below(bimodal):
    volume, _ = bimodal
    lifted = volume.copy()
    lifted[30:] *= np.random.default_rng(4).lognormal(1.0, 1.0, lifted[30:].shape).astype(np.float32)  # amplified noise
    depth = np.full(volume.shape[1:], 30)
    reference = estimate_normalization(intensity_histogram(volume[:30]), clip_percentile_upper=99.9)
    out = normalize(lifted, reference_depth=depth)
    assert out.normalization.clip_value == pytest.approx(reference.clip_value, rel=1e-9)
    assert normalize(lifted).normalization.clip_value > 1.5 * reference.clip_value  # counted, the noise sets the scale
    kept = (out.volume > 0) & (out.volume < 1)
    np.testing.assert_allclose(out.volume[kept] / lifted[kept], out.normalization.scale, rtol=1e-5)  # one scale for all
    with pytest.raises(ValueError, match="reference_depth"):
        normalize(volume, reference_depth=depth[:, :5])


def test_one_scale_for_the_whole_slice_keeps_intensity_ratios(bimodal):
    volume, _ = bimodal
    out = normalize(volume)
    kept = (out.volume > 0) & (out.volume < 1)
    np.testing.assert_allclose(out.volume[kept] / volume[kept], out.normalization.scale, rtol=1e-5)


def test_blocks_give_the_same_result_as_the_whole_slice(bimodal):
    volume, _ = bimodal
    merged = sum((intensity_histogram(volume[z : z + 7]) for z in range(0, len(volume), 7)), IntensityHistogram.empty())
    whole = intensity_histogram(volume)
    np.testing.assert_array_equal(merged.counts, whole.counts)
    assert (merged.n_nonpositive, merged.low, merged.high) == (whole.n_nonpositive, whole.low, whole.high)
    np.testing.assert_array_equal(normalize(volume, block_planes=3).volume, normalize(volume, block_planes=64).volume)


def test_without_background_removal_only_non_positive_voxels_become_zero(bimodal):
    volume, _ = bimodal
    out = normalize(volume, background="none", clip_percentile_upper=100)
    assert ((out.volume > 0) == (volume > 0)).all() and out.volume.max() == 1.0


def test_an_empty_slice_normalises_to_zeros_without_nan():
    out = normalize(np.zeros((4, 8, 8), np.float32))
    assert not out.volume.any() and out.normalization.reason == "no positive voxel"
    assert np.isfinite(out.normalization.scale)


def test_a_constant_slice_has_no_background_and_maps_to_one():
    out = normalize(np.full((4, 8, 8), 0.37, np.float32))
    np.testing.assert_array_equal(out.volume, 1.0)
    assert out.normalization.reason


def test_nan_inf_and_negative_voxels_become_zero(rng):
    volume = rng.uniform(0.1, 1.0, (4, 8, 8)).astype(np.float32)
    volume[0, 0, :3] = [np.nan, np.inf, -1.0]
    out = normalize(volume, background="none")
    assert np.isfinite(out.volume).all() and not out.volume[0, 0, :3].any()
    assert out.normalization.n_voxels == volume.size


def test_apply_accepts_blocks_of_any_shape(bimodal):
    volume, _ = bimodal
    norm = estimate_normalization(intensity_histogram(volume))
    np.testing.assert_array_equal(apply_normalization(volume[3, 5], norm), normalize(volume).volume[3, 5])


def test_unknown_background_method_is_refused():
    with pytest.raises(ValueError, match="choose one of otsu, none"):
        estimate_normalization(IntensityHistogram.empty(), background="percentile")


@pytest.mark.parametrize("percentile", [0.0, 100.5])
def test_a_percentile_outside_0_100_is_refused(percentile):
    with pytest.raises(ValueError, match="clip_percentile_upper"):
        estimate_normalization(IntensityHistogram.empty(), clip_percentile_upper=percentile)
