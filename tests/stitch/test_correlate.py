"""Claims about the two lag estimators: phase correlation and the least-squares refinement."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from serialoct.stitch import phase_correlate, refine_shift, texture_correlation

#: Sub-pixel accuracy of the refinement on a clean, smooth image.
REFINED_TOLERANCE_PX = 0.02
#: Phase correlation alone, on a narrow strip (its window pulls the peak towards 0).
COARSE_TOLERANCE_PX = 1.0
#: Phase correlation of a pure integer shift (the window and taper leave a small sub-pixel bias).
COARSE_SUBPIXEL_PX = 0.05


def _shifted_pair(field, shift, rows, cols):
    """``(a, b)`` cut at the same place, with ``a(k + shift) = b(k)``."""
    moved = ndimage.shift(field, np.asarray(shift), order=3, mode="nearest")  # moved(x) = field(x - shift)
    return moved[rows, cols].astype(np.float32), field[rows, cols].astype(np.float32)


def test_phase_correlation_finds_an_integer_lag_exactly(rng):
    image = rng.normal(size=(80, 120)).astype(np.float32)
    shift, peak, at_limit = phase_correlate(image[:64, :96], image[3:67, 5:101])  # a(k + s) = b(k)
    np.testing.assert_allclose(shift, [3.0, 5.0], atol=COARSE_SUBPIXEL_PX)
    assert 0 < peak <= 1 and not at_limit


def test_phase_correlation_flags_a_peak_on_the_search_limit(rng):
    image = rng.normal(size=(80, 120)).astype(np.float32)
    _, _, at_limit = phase_correlate(image[:64, :96], image[6:70, 0:96], max_shift_px=3)
    assert at_limit


@pytest.mark.parametrize("shift", [(0.3, -1.7), (-2.6, 2.2), (1.5, 0.45)])
def test_refinement_recovers_a_subpixel_shift_on_a_narrow_strip_within_0p02_px(texture_field, shift):
    a, b = _shifted_pair(texture_field((200, 200), seed=3), shift, slice(90, 110), slice(40, 136))  # 20 x 96 strip
    coarse, _, _ = phase_correlate(a, b)
    assert np.all(np.abs(coarse - shift) < COARSE_TOLERANCE_PX)
    fine = refine_shift(a, b, np.rint(coarse))
    assert fine.converged
    np.testing.assert_allclose(fine.shift, shift, atol=REFINED_TOLERANCE_PX)


def test_refinement_absorbs_gain_offset_and_ramp_between_tiles(texture_field):
    a, b = _shifted_pair(texture_field((200, 200), seed=4), (0.7, -1.2), slice(60, 124), slice(60, 124))
    ramp = np.linspace(0.0, 0.2, 64, dtype=np.float32)[None, :]
    fine = refine_shift(a, 1.7 * b + 0.3 + ramp, np.zeros(2))
    np.testing.assert_allclose(fine.shift, (0.7, -1.2), atol=REFINED_TOLERANCE_PX)
    assert fine.ncc > 0.99


def test_information_is_larger_across_fibres_than_along_them(rng):
    noise = rng.normal(size=(160, 160))
    fibres = ndimage.gaussian_filter(noise, (1.0, 12.0))  # long along columns
    a, b = _shifted_pair(fibres, (0.5, 0.5), slice(40, 104), slice(40, 104))
    fine = refine_shift(a, b, np.zeros(2))
    assert fine.information[0, 0] > 10 * fine.information[1, 1]


def test_texture_correlation_is_high_for_the_same_tissue_and_near_zero_for_different_tissue(texture_field):
    a, b = _shifted_pair(texture_field((200, 200), seed=5), (1.0, 2.0), slice(50, 114), slice(50, 114))
    other = texture_field((64, 64), seed=6).astype(np.float32)
    assert texture_correlation(a, b, np.array([1.0, 2.0])) > 0.95
    assert abs(texture_correlation(other, b, np.zeros(2))) < 0.3
