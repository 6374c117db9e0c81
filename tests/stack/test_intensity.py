"""Slice-to-slice intensity matching against slabs of the phantom with known intensity scales."""

from __future__ import annotations

import numpy as np
import pytest

from scipy import ndimage

from serialoct.stack.intensity import MAP_LIMIT, SURFACE_PLANES, apply_gain_map, overlap_gain_map, overlap_ratio, series_gains
from tests.stack.conftest import EXTRA_PLANES, N_SLICES, PLANES_PER_SLICE, local_error

#: Gains recovered within this relative error of the truth.
GAIN_TOLERANCE = 0.03
#: Lateral scale of the local maps in the tests (px).
MAP_SIGMA_PX = 2.0


def _scaled_slabs(truth, scales):
    """Slab ``k`` (planes ``8k .. 8k + 11`` of the phantom) imaged with intensity scale ``scales[k]``, all in one canvas."""
    rng = np.random.default_rng(3)
    out = []
    for k, scale in enumerate(scales):
        slab = truth.reflectivity[k * PLANES_PER_SLICE : (k + 1) * PLANES_PER_SLICE + EXTRA_PLANES]
        out.append(scale * slab * (1 + 0.05 * rng.standard_normal(slab.shape)))
    return out


def _ratios(slabs):
    first, n = PLANES_PER_SLICE + SURFACE_PLANES, EXTRA_PLANES - SURFACE_PLANES
    return [overlap_ratio(up[first : first + n].mean(axis=0), low[SURFACE_PLANES : SURFACE_PLANES + n].mean(axis=0))
            for up, low in zip(slabs[:-1], slabs[1:])]


def test_isolated_dark_and_bright_slices_are_matched_to_their_neighbours(truth):
    scales = np.ones(N_SLICES)
    scales[3], scales[6] = 0.6, 1.4  # a slice imaged with less signal, one with more
    gains = series_gains(_ratios(_scaled_slabs(truth, scales)))
    matched = gains * scales
    assert np.allclose(matched / np.median(matched), 1.0, atol=GAIN_TOLERANCE)


def test_a_trend_over_the_series_is_kept_and_nothing_accumulates(truth):
    scales = 1.08 ** np.arange(N_SLICES)  # the anatomy getting brighter with depth: not a fault
    gains = series_gains(_ratios(_scaled_slabs(truth, scales)))
    assert np.allclose(gains[2:-2], 1.0, atol=GAIN_TOLERANCE)  # the running median spans the trend away from the ends


def test_a_slice_without_overlap_takes_no_step():
    assert np.allclose(series_gains([None, None]), 1.0)
    assert overlap_ratio(np.zeros((20, 20)), np.ones((20, 20))) is None


def test_bad_ratios_and_windows_are_refused():
    with pytest.raises(ValueError, match="positive finite"):
        series_gains([0.0])
    with pytest.raises(ValueError, match="odd"):
        series_gains([1.0], window=4)
    with pytest.raises(ValueError, match="same canvas"):
        overlap_ratio(np.ones((3, 3)), np.ones((3, 4)))


def test_the_local_map_removes_an_a_line_by_a_line_error_and_leaves_the_whole_step_to_the_gains(truth):
    # The upper slice's planes at the next cut carry a local error and a whole-slice step of 0.7; the lower slice is right.
    first, n = PLANES_PER_SLICE + SURFACE_PLANES, EXTRA_PLANES - SURFACE_PLANES
    tissue = truth.reflectivity[first : first + n].mean(axis=0)
    error = local_error(tissue.shape)
    upper, lower = 0.7 * error * tissue, tissue
    gain_map = overlap_gain_map(upper, lower, sigma_px=MAP_SIGMA_PX)
    inside = ndimage.binary_erosion(tissue > 0.1 * tissue.max(), iterations=int(3 * MAP_SIGMA_PX))
    corrected = error * gain_map  # what is left of the error once the map is applied (the 0.7 is series_gains' business)
    assert np.std(np.log(corrected[inside])) < 0.25 * np.std(np.log(error[inside]))
    assert overlap_ratio(upper * gain_map, lower) == pytest.approx(overlap_ratio(upper, lower), rel=0.05)


def test_the_map_is_one_away_from_the_overlap_and_bounded():
    upper = np.zeros((40, 40), np.float32)
    upper[:, :20] = 1.0
    lower = upper.copy()
    lower[:10, :20] = 10.0  # far beyond the bound
    gain_map = overlap_gain_map(upper, lower, sigma_px=MAP_SIGMA_PX)
    assert np.allclose(gain_map[:, 30:], 1.0)
    assert gain_map.max() <= MAP_LIMIT + 1e-6 and gain_map.min() >= 1 / MAP_LIMIT - 1e-6
    assert np.allclose(overlap_gain_map(np.zeros((20, 20)), np.ones((20, 20)), sigma_px=1.0), 1.0)


def test_the_map_fades_in_with_depth_and_is_whole_at_the_plane_it_was_measured():
    planes = np.ones((6, 4, 4), np.float32)
    gain_map = np.full((4, 4), 2.0, np.float32)
    out = apply_gain_map(planes, 2, gain_map, depth=4.0)  # planes 2 .. 7 of the slice
    assert out[:, 0, 0] == pytest.approx(2.0 ** np.minimum(1.0, np.arange(2, 8) / 4.0))
    with pytest.raises(ValueError, match="depth"):
        apply_gain_map(planes, 0, gain_map, depth=0.0)
