"""Claims about the global solve: layout affine, per-tile corrections, outliers, bounds."""

from __future__ import annotations

import numpy as np
import pytest

from serialoct.stitch import PairShift, fit_layout_affine, neighbour_pairs, nominal_positions_px, solve_placement

#: Exact, consistent pair measurements must be reproduced to round-off.
EXACT_PX = 1e-6
#: A prior pulls corrections towards 0 a little; with strong pairs the pull is tiny.
PRIOR_PULL_PX = 0.02


def _pairs(true_px, layout, *, noise=0.0, rng=None, information=((1e4, 0.0), (0.0, 1e4))):
    out = []
    for a, b in neighbour_pairs(true_px):
        nominal = layout[b] - layout[a]
        measured = true_px[b] - true_px[a] + (rng.normal(0, noise, 2) if noise else 0.0)
        out.append(PairShift((a, b), tuple(nominal), tuple(measured - nominal), 0.9, 0.5, information, True, "", float("nan"), (19, 96)))
    return out


def _truth(rng, grid=(4, 4), jitter=1.5, affine=np.eye(2)):
    layout = nominal_positions_px(grid, (96, 96))
    return layout, {t: affine @ p + rng.uniform(-jitter, jitter, 2) for t, p in layout.items()}


def _relative_error(placement, truth):
    frame = placement.positions_px + placement.origin_px
    expected = np.array([truth[t] for t in placement.tiles])
    d = frame - expected
    return d - d.mean(axis=0)


def test_consistent_pairs_give_back_the_true_positions(rng):
    layout, truth = _truth(rng)
    placement = solve_placement(_pairs(truth, layout), layout, (96, 96), affine=np.eye(2))
    assert np.abs(_relative_error(placement, truth)).max() < PRIOR_PULL_PX
    assert placement.residual_rms_px < PRIOR_PULL_PX and placement.n_clipped == 0


def test_the_layout_affine_absorbs_a_stage_scale_and_rotation(rng):
    angle = np.radians(0.5)
    affine = 1.01 * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    layout, truth = _truth(rng, grid=(6, 6), jitter=0.0, affine=affine)
    pairs = _pairs(truth, layout)
    np.testing.assert_allclose(fit_layout_affine(pairs), affine, atol=1e-6)
    placement = solve_placement(pairs, layout, (96, 96))
    np.testing.assert_allclose(placement.affine, affine, atol=1e-5)  # the prior pulls by ~1e-6
    assert np.abs(_relative_error(placement, truth)).max() < PRIOR_PULL_PX


def test_a_wrong_pair_is_rejected_as_inconsistent(rng):
    layout, truth = _truth(rng)
    pairs = _pairs(truth, layout)
    bad = pairs[5]
    pairs[5] = PairShift(bad.tiles, bad.nominal_px, (bad.shift_px[0] + 6.0, bad.shift_px[1]), 0.9, 0.5, bad.information, True, "",
                         float("nan"), bad.overlap_shape)
    placement = solve_placement(pairs, layout, (96, 96), affine=np.eye(2))
    assert placement.pairs[5].reason == "inconsistent with the layout"
    assert sum(not p.accepted for p in placement.pairs) == 1
    assert np.abs(_relative_error(placement, truth)).max() < PRIOR_PULL_PX


def test_a_tile_without_accepted_pairs_stays_on_the_fitted_layout(rng):
    layout, truth = _truth(rng, jitter=0.0)
    pairs = [p if (3, 3) not in p.tiles else p.rejected("ncc below threshold") for p in _pairs(truth, layout)]
    placement = solve_placement(pairs, layout, (96, 96), affine=np.eye(2))
    np.testing.assert_allclose(placement.refinement_px[placement.tiles.index((3, 3))], 0.0, atol=EXACT_PX)


def test_corrections_are_bounded_by_max_refinement(rng):
    layout, truth = _truth(rng, jitter=0.0)
    truth[(2, 2)] = truth[(2, 2)] + np.array([6.0, -6.0])
    placement = solve_placement(_pairs(truth, layout), layout, (96, 96), affine=np.eye(2), max_refinement_px=2.0, max_residual_px=50.0)
    assert np.abs(placement.refinement_px).max() <= 2.0 and placement.n_clipped >= 1


def test_weights_follow_the_information_of_each_pair(rng):
    layout, truth = _truth(rng, grid=(2, 1), jitter=0.0)
    strong = _pairs(truth, layout, information=((1e4, 0.0), (0.0, 1e-4)))  # knows rows, not columns
    noisy = strong[0]
    pair = PairShift(noisy.tiles, noisy.nominal_px, (noisy.shift_px[0] + 0.0, noisy.shift_px[1] + 3.0), 0.9, 0.5, noisy.information,
                     True, "", float("nan"), noisy.overlap_shape)
    placement = solve_placement([pair], layout, (96, 96), affine=np.eye(2), max_residual_px=10.0)
    error = _relative_error(placement, truth)
    assert np.abs(error[:, 1]).max() < 0.5  # the column shift it cannot see barely moves the tiles


def test_placement_reports_its_canvas_and_metrics(rng):
    layout, truth = _truth(rng)
    placement = solve_placement(_pairs(truth, layout), layout, (96, 96), ncc_threshold=0.4)
    assert placement.positions_px.min() >= 0 and placement.positions_px.min(axis=0).max() < 1
    assert placement.canvas_shape[0] >= int(placement.positions_px[:, 0].max()) + 96
    metrics = placement.metrics()
    assert metrics["n_tiles"] == 16 and metrics["n_pairs"] == 24 and metrics["n_accepted"] == 24
    assert metrics["ncc_threshold"] == 0.4 and metrics["rejected"] == {}
    np.testing.assert_allclose(placement.overlap_px, 96 - 76.8, atol=1.6)
    with pytest.raises(ValueError, match="no tiles"):
        solve_placement([], {}, (96, 96))
