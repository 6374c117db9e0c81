"""Claims about the background level and the NCC threshold drawn from non-overlapping pairs."""

from __future__ import annotations

import numpy as np
import pytest

from serialoct.stitch import apply_threshold, background_level, null_threshold, otsu_threshold, project_tiles, register_neighbours
from serialoct.stitch.threshold import FALLBACK_NCC_THRESHOLD


def test_otsu_splits_two_populations_between_their_means(rng):
    values = np.r_[rng.normal(1.0, 0.1, 5000), rng.normal(3.0, 0.2, 2000)]
    assert 1.3 < otsu_threshold(values) < 2.6
    assert otsu_threshold(np.full(10, 2.5)) == 2.5
    with pytest.raises(ValueError, match="no finite values"):
        otsu_threshold(np.array([np.nan]))


def test_background_level_separates_agarose_from_tissue(small_slices):
    s = small_slices["03"]
    projections = project_tiles(s.tiles)
    level = background_level(projections)
    agarose = [p for t, p in projections.items() if s.tissue[t] == 0 and t[1] == 0]  # column 0 holds no brain
    brain = [p for t, p in projections.items() if s.tissue[t] > 0.9]
    assert np.median(np.concatenate([p.ravel() for p in agarose])) < level
    assert np.median(np.concatenate([p.ravel() for p in brain])) > level


def test_null_pairs_of_a_tissue_slice_correlate_less_than_its_tissue_neighbours(small_slices):
    s = small_slices["05"]
    projections = project_tiles(s.tiles)
    layout = {t: np.array(t) * 76.8 for t in s.tiles}
    null = null_threshold(projections, layout, n_pairs=60, rng=1)
    assert not null.fallback and len(null.null_ncc) >= 30 and null.n_drawn == 60
    tissue_pairs = [p for p in register_neighbours(projections, layout) if min(s.tissue[t] for t in p.tiles) > 0.3]
    assert min(p.ncc for p in tissue_pairs) > null.threshold


def test_null_threshold_is_reproducible_with_its_seed(small_slices):
    s = small_slices["03"]
    projections = project_tiles(s.tiles)
    layout = {t: np.array(t) * 76.8 for t in s.tiles}
    first, again = (null_threshold(projections, layout, n_pairs=20, rng=7) for _ in range(2))
    assert first.null_ncc == again.null_ncc


def test_a_grid_without_disjoint_strips_falls_back_to_a_fixed_threshold(rng):
    projections = {(0, 0): rng.normal(size=(16, 16)).astype(np.float32), (0, 1): rng.normal(size=(16, 16)).astype(np.float32)}
    null = null_threshold(projections, {(0, 0): np.zeros(2), (0, 1): np.array([0.0, 12.8])}, n_pairs=10)
    assert null.fallback and null.threshold == FALLBACK_NCC_THRESHOLD


def test_apply_threshold_rejects_only_accepted_pairs_below_it(small_slices):
    s = small_slices["05"]
    projections = project_tiles(s.tiles)
    pairs = register_neighbours(projections, {t: np.array(t) * 76.8 for t in s.tiles})
    cut = float(np.median([p.ncc for p in pairs]))
    after = apply_threshold(pairs, cut)
    assert all((q.accepted == (p.accepted and p.ncc >= cut)) for p, q in zip(pairs, after))
    assert {q.reason for p, q in zip(pairs, after) if p.accepted and not q.accepted} == {"ncc below threshold"}
    with pytest.raises(ValueError, match="quantile = 0"):
        null_threshold(projections, {t: np.array(t) * 76.8 for t in s.tiles}, quantile=0.0)
