"""Slice-to-slice intensity matching against slabs of the phantom with known intensity scales."""

from __future__ import annotations

import numpy as np
import pytest

from serialoct.stack.intensity import SURFACE_PLANES, overlap_ratio, series_gains
from tests.stack.conftest import EXTRA_PLANES, N_SLICES, PLANES_PER_SLICE

#: Gains recovered within this relative error of the truth.
GAIN_TOLERANCE = 0.03


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
