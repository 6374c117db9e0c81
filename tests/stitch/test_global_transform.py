"""Claims about the layout matrix pooled over several slices."""

from __future__ import annotations

import numpy as np
import pytest

from serialoct.stitch import (
    PairShift,
    base_layout,
    estimate_global_transform,
    fit_layout_affine,
    plan_placement,
    pool_slice_ids,
    project_tiles,
    register_for_global_transform,
)

#: Pooled over four slices, the matrix fitted to the registered pairs must be this close to
#: the one fitted to the true displacements of the same pairs (0.15 px over a 77-pixel tile
#: step); both differ from I by the stage jitter's own noise (about 0.003 with 60 pairs).
TRUE_FIT_TOLERANCE = 0.002
#: A known matrix is recovered from 200 noisy pairs to within this.
RECOVERY_TOLERANCE = 0.003


def _pair(nominal, displacement, accepted=True):
    nominal = np.asarray(nominal, dtype=float)
    return PairShift(((0, 0), (0, 1)), tuple(nominal), tuple(np.asarray(displacement) - nominal), 0.9, 0.5,
                     ((1.0, 0.0), (0.0, 1.0)), accepted, "" if accepted else "ncc below threshold", float("nan"), (19, 96))


def test_pool_is_every_slice_by_default_or_the_listed_ones():
    assert pool_slice_ids(["02", "01", "05"]) == ("01", "02", "05")
    assert pool_slice_ids(["01", "02", "05"], "5,1") == ("01", "05")
    with pytest.raises(ValueError, match="slice 07 is not available"):
        pool_slice_ids(["01"], "7")
    with pytest.raises(ValueError, match="'x' is not a slice id"):
        pool_slice_ids(["01"], "x")


def test_pooled_fit_recovers_a_scale_and_rotation_and_ignores_rejected_pairs(rng):
    angle = np.radians(0.3)
    affine = 0.995 * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    slices = []
    for _ in range(5):
        pairs = [_pair(d, affine @ d + rng.normal(0, 0.3, 2)) for d in ([76.8, 0.0], [0.0, 76.8]) for _ in range(20)]
        pairs.append(_pair([76.8, 0.0], [90.0, 5.0], accepted=False))  # would wreck the fit
        pairs.append(_pair([0.0, 76.8], [6.0, 70.0]))  # an accepted outlier: dropped by the second fit
        slices.append(pairs)
    result = estimate_global_transform(slices, n_samples=0)
    np.testing.assert_allclose(result.affine, affine, atol=RECOVERY_TOLERANCE)
    assert result.n_pooled == 5 * 41 and result.n_used == 5 * 40 and result.residual_rms_px < 0.6


def test_sampling_is_bounded_and_reproducible_with_the_seed(rng):
    pairs = [[_pair(d, np.asarray(d) + rng.normal(0, 0.3, 2)) for d in ([76.8, 0.0], [0.0, 76.8]) for _ in range(50)]]
    first, again = (estimate_global_transform(pairs, n_samples=30, rng=4) for _ in range(2))
    assert first.n_used <= 30 and first.n_pooled == 100
    np.testing.assert_array_equal(first.affine, again.affine)
    with pytest.raises(ValueError, match="n_samples = -1"):
        estimate_global_transform(pairs, n_samples=-1)


def test_without_pairs_the_global_transform_is_the_identity():
    result = estimate_global_transform([[], [_pair([76.8, 0.0], [77.0, 0.0], accepted=False)]])
    np.testing.assert_array_equal(result.affine, np.eye(2))
    assert result.n_used == 0 and result.metrics()["residual_rms_px"] is None


def test_pooled_over_synthetic_slices_the_matrix_matches_the_fit_of_the_truth_and_is_reused(small_slices):
    pooled, layouts, truth = [], {}, []
    for sid, s in small_slices.items():
        layouts[sid] = base_layout(s.tiles, (96, 96), stage_mm=s.stage_mm, pixel_size_um=12.0)
        pairs = register_for_global_transform(project_tiles(s.tiles), layouts[sid])
        pooled.append(pairs)
        truth += [_pair(p.nominal_px, s.truth_px[p.tiles[1]] - s.truth_px[p.tiles[0]]) for p in pairs]
    assert all(p.accepted for pairs in pooled for p in pairs) and len(truth) >= 40
    result = estimate_global_transform(pooled, n_samples=0)
    np.testing.assert_allclose(result.affine, fit_layout_affine(truth), atol=TRUE_FIT_TOLERANCE)
    s = small_slices["05"]
    placement = plan_placement(project_tiles(s.tiles), layouts["05"], affine=result.affine)
    np.testing.assert_array_equal(placement.affine, result.affine)
