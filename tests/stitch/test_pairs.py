"""Claims about registering one pair of neighbouring tiles on their overlap strip."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from serialoct.stitch import overlap_slices, project_tiles, register_neighbours, register_pair

#: Error of one pair on a clean, textured overlap (20 % of a 96-pixel tile).
CLEAN_PAIR_TOLERANCE_PX = 0.1
#: Error of one pair of real synthetic tiles with tissue on both sides (speckle, noise, curvature).
TISSUE_PAIR_TOLERANCE_PX = 1.0


def _tiles(field, position_b, size=96):
    """Tile a at (0, 0) and tile b at ``position_b`` (sub-pixel) of one field, with independent noise."""
    rng = np.random.default_rng(1)
    a = field[:size, :size]
    moved = ndimage.shift(field, -np.asarray(position_b), order=3, mode="nearest")  # moved(x) = field(x + p_b)
    b = moved[:size, :size]
    return ((a + rng.normal(0, 0.01, a.shape)).astype(np.float32),
            (b + rng.normal(0, 0.01, b.shape)).astype(np.float32))


@pytest.mark.parametrize("jitter", [(0.4, -1.3), (-2.2, 2.7), (1.1, 0.0)])
def test_x_neighbours_are_registered_within_0p1_px(texture_field, jitter):
    field = texture_field((220, 220), seed=11)
    truth = np.array([76.8, 0.0]) + jitter
    a, b = _tiles(field, truth)
    pair = register_pair(a, b, (76.8, 0.0))
    assert pair.accepted and pair.reason == ""
    np.testing.assert_allclose(pair.displacement_px, truth, atol=CLEAN_PAIR_TOLERANCE_PX)
    assert pair.overlap_shape == (19, 96) and pair.ncc > 0.9


def test_y_neighbours_are_registered_within_0p1_px(texture_field):
    field = texture_field((220, 220), seed=12)
    truth = np.array([-1.6, 78.1])
    a, b = _tiles(field, truth)
    pair = register_pair(a, b, (0.0, 76.8), tiles=((0, 0), (0, 1)))
    np.testing.assert_allclose(pair.displacement_px, truth, atol=CLEAN_PAIR_TOLERANCE_PX)
    assert pair.tiles == ((0, 0), (0, 1))


def test_synthetic_tissue_pairs_are_registered_within_1_px(small_slices):
    s = small_slices["05"]
    projections = project_tiles(s.tiles)
    layout = {t: np.array(t) * 76.8 for t in s.tiles}
    for pair in register_neighbours(projections, layout):
        a, b = pair.tiles
        if min(s.tissue[a], s.tissue[b]) > 0.3:
            assert pair.accepted
            error = pair.displacement_px - (s.truth_px[b] - s.truth_px[a])
            assert np.hypot(*error) < TISSUE_PAIR_TOLERANCE_PX, (a, b, error)


def test_a_constant_overlap_is_rejected_as_flat():
    a = np.ones((96, 96), np.float32)
    pair = register_pair(a, a.copy(), (76.8, 0.0))
    assert not pair.accepted and pair.reason == "flat overlap" and np.isnan(pair.ncc)


def test_tiles_that_do_not_touch_have_no_overlap(rng):
    a = rng.normal(size=(32, 32)).astype(np.float32)
    assert register_pair(a, a, (40.0, 0.0)).reason == "no overlap"
    assert register_pair(a, a, (30.0, 0.0)).reason == "no overlap"  # 2 rows: too thin to register


def test_a_background_overlap_is_rejected_as_empty_by_both_tests(texture_field):
    a, b = _tiles(texture_field((220, 220), seed=13), (77.0, 0.0))
    level = float(np.quantile(b, 0.99))  # nearly every pixel is "background"
    otsu = register_pair(a, b, (76.8, 0.0), background_level=level, max_empty_fraction=0.9)
    simple = register_pair(a, b, (76.8, 0.0), background_level=level, max_empty_fraction=None)
    assert otsu.reason == simple.reason == "empty overlap"
    assert otsu.empty_fraction > 0.9


def test_histogram_matching_copes_with_a_nonlinear_gain(texture_field):
    truth = np.array([77.5, 0.6])
    a, b = _tiles(texture_field((220, 220), seed=14), truth)
    pair = register_pair(a, np.sqrt(b), (76.8, 0.0), histogram_match=True)
    np.testing.assert_allclose(pair.displacement_px, truth, atol=CLEAN_PAIR_TOLERANCE_PX)


def test_overlap_strips_cover_the_same_pixels_of_both_tiles():
    in_a, in_b = overlap_slices((96, 80), (77, -3))
    assert in_a == (slice(77, 96), slice(0, 77)) and in_b == (slice(0, 19), slice(3, 80))
    assert overlap_slices((96, 80), (96, 0)) is None
