"""Tile positions of a slice from its registered pairs: a layout affine plus bounded per-tile corrections.

Model
-----
Tile ``i`` sits at ``p_i = A m_i + r_i``: ``m_i`` is its base-layout position
(motor positions or the nominal grid), ``A`` a 2x2 matrix that absorbs a
scale or rotation between the stage and the image axes (the same for every
tile of a slice; :mod:`serialoct.stitch.global_transform` pools it over many
slices), and ``r_i`` a small correction (stage jitter), bounded by
``max_blend_refinement_px``. Each accepted pair ``(a, b)`` measures
``d_ab = p_b - p_a`` with the 2x2 information matrix ``W_ab`` of its
registration.

Solve (:func:`solve_placement`)
-------------------------------
1. ``A`` by least squares on ``d_ab = A (m_b - m_a)`` with a prior: each
   element within :data:`AFFINE_PRIOR_SD` of the identity's, weighed
   against the pairs' spread around a first, plain fit. Many pairs (a large
   grid, or the pooled transform) determine ``A``; the few pairs of a small
   grid cannot turn their tiles' jitter into a scale or rotation of the
   whole slice, and a direction without any accepted pair keeps the base
   layout's scale. The pairs are not weighted by their information here: on
   synthetic slices, the pairs with the strongest structure (a tissue
   boundary seen at slightly different depths by two tiles) carry small
   biases that a weighted fit turned into a scale error of the whole grid.
2. The corrections by weighted least squares on ``r_b - r_a = d_ab - A (m_b
   - m_a)`` over the tile graph (the global solve of MIST and ASHLAR, with
   each pair weighted by ``W_ab``, so a pair that only knows one direction,
   e.g. along a fibre bundle, only constrains that one), plus a zero-mean
   prior on each ``r_i``. The pair weights are calibrated so that their
   loop-closure residuals have unit variance, and the prior's variance is
   the stage jitter estimated from the pairs (median of ``|d_ab - A
   (m_b - m_a)|^2 / (4 ln 2)``): a tile whose overlaps say little stays near
   the layout rather than following noise, and a tile with no accepted pair
   sits exactly on it.
3. A pair whose residual after the solve exceeds ``max_residual_px``
   disagrees with the loops it is part of: the worst is rejected
   (``"inconsistent with the layout"``) and the solve repeated.
4. Each ``r_i`` is clipped to ``max_refinement_px`` per axis.

References
----------
.. [1] J. Chalfoun et al., "MIST: Accurate and scalable microscopy image
   stitching tool with stage modeling and error minimization", Sci. Rep. 7,
   4988 (2017), doi:10.1038/s41598-017-04567-y.
.. [2] J. L. Muhlich et al., "Stitching and registering highly multiplexed
   whole-slide images of tissues and tumors using ASHLAR", Bioinformatics
   38, 4613-4621 (2022), doi:10.1093/bioinformatics/btac544.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from serialoct.stitch.layout import TileIndex
from serialoct.stitch.pairs import PairShift

__all__ = ["Placement", "fit_layout_affine", "solve_placement", "REASON_INCONSISTENT"]

log = logging.getLogger(__name__)

REASON_INCONSISTENT = "inconsistent with the layout"
#: Bounds of the stage-jitter prior's standard deviation, pixels.
_MIN_JITTER_PX = 0.05
#: Pair weights are never trusted beyond this variance (0.01 px), whatever the loops say.
_MIN_PAIR_VARIANCE_PX2 = 1e-4
#: Weight of the pull of A towards the identity, relative to the data, without a prior.
_AFFINE_RIDGE = 1e-6
#: Prior standard deviation of each element of the layout matrix around the identity:
#: a stage whose steps are off by more than 1 % from the nominal is miscalibrated.
AFFINE_PRIOR_SD = 0.01


@dataclass(frozen=True, eq=False)
class Placement:
    """Where every tile of a slice goes in its stitched image.

    Attributes
    ----------
    tiles : tuple of (int, int)
        Tile indices, in the order of the arrays below.
    positions_px : ndarray, shape (N, 2), float64
        Top-left of each tile ``(row, col)`` relative to the canvas top-left.
    origin_px : ndarray, shape (2,), float64
        Stitched-frame position of canvas pixel ``(0, 0)`` (whole pixels):
        frame position = ``positions_px + origin_px``.
    canvas_shape : (int, int)
        Rows and columns of the stitched image.
    tile_shape : (int, int)
        ``(h, w)``.
    affine : ndarray, shape (2, 2), float64
        The layout matrix ``A``.
    refinement_px : ndarray, shape (N, 2), float64
        Per-tile correction ``r_i`` (after clipping).
    pairs : tuple of PairShift
        Every registered pair, with its final acceptance and reason.
    residual_rms_px, max_residual_px : float
        Residuals of the accepted pairs after the solve (NaN without pairs).
    jitter_px : float
        Standard deviation of the stage-jitter prior, per axis.
    n_clipped : int
        Tiles whose correction reached ``max_refinement_px``.
    ncc_threshold : float
        The correlation threshold the pairs went through (NaN if none).
    """

    tiles: tuple[TileIndex, ...]
    positions_px: np.ndarray
    origin_px: np.ndarray
    canvas_shape: tuple[int, int]
    tile_shape: tuple[int, int]
    affine: np.ndarray
    refinement_px: np.ndarray
    pairs: tuple[PairShift, ...]
    residual_rms_px: float
    max_residual_px: float
    jitter_px: float
    n_clipped: int
    ncc_threshold: float = float("nan")

    def position(self, tile: TileIndex) -> np.ndarray:
        """Canvas top-left of one tile, ``(row, col)``."""
        return self.positions_px[self.tiles.index(tuple(tile))]

    def metrics(self) -> dict:
        """QC numbers for the step's metrics JSON (plain Python types).

        Keys: ``n_tiles``, ``n_pairs``, ``n_accepted``, ``rejected`` (count
        per reason), ``ncc_threshold``, ``residual_rms_px``,
        ``max_residual_px``, ``jitter_px``, ``affine``, ``max_refinement_px``,
        ``n_clipped``, ``canvas_shape``.
        """
        rejected: dict[str, int] = {}
        for pair in self.pairs:
            if not pair.accepted:
                rejected[pair.reason] = rejected.get(pair.reason, 0) + 1

        def number(v: float) -> float | None:
            return None if not np.isfinite(v) else round(float(v), 4)

        return {
            "n_tiles": len(self.tiles),
            "n_pairs": len(self.pairs),
            "n_accepted": sum(p.accepted for p in self.pairs),
            "rejected": dict(sorted(rejected.items())),
            "ncc_threshold": number(self.ncc_threshold),
            "residual_rms_px": number(self.residual_rms_px),
            "max_residual_px": number(self.max_residual_px),
            "jitter_px": number(self.jitter_px),
            "affine": [[round(float(v), 6) for v in row] for row in self.affine],
            "max_refinement_px": number(float(np.abs(self.refinement_px).max())) if len(self.tiles) else None,
            "n_clipped": self.n_clipped,
            "canvas_shape": list(self.canvas_shape),
        }

    @property
    def overlap_px(self) -> tuple[float, float]:
        """Median overlap of x neighbours (rows) and y neighbours (columns), pixels."""
        index = {t: i for i, t in enumerate(self.tiles)}
        out = []
        for axis, step in ((0, (1, 0)), (1, (0, 1))):
            gaps = [self.positions_px[index[b], axis] - self.positions_px[index[a], axis]
                    for a in self.tiles if (b := (a[0] + step[0], a[1] + step[1])) in index]
            out.append(float(self.tile_shape[axis] - np.median(gaps)) if gaps else 0.0)
        return out[0], out[1]


def _pair_weight(pair: PairShift, scale: float) -> np.ndarray:
    weight = np.asarray(pair.information, dtype=np.float64) / scale
    if not np.all(np.isfinite(weight)) or np.trace(weight) <= 0:
        return np.eye(2)
    return 0.5 * (weight + weight.T)


def fit_layout_affine(
    pairs: Sequence[PairShift],
    *,
    weights: Sequence[np.ndarray] | None = None,
    noise_px: float | None = None,
    prior_sd: float = AFFINE_PRIOR_SD,
) -> np.ndarray:
    """The 2x2 matrix ``A`` with ``d_ab = A (m_b - m_a)`` by (weighted) least squares.

    Parameters
    ----------
    pairs : sequence of PairShift
        Pairs to fit (their ``nominal_px`` is ``m_b - m_a`` and
        ``displacement_px`` is ``d_ab``); acceptance is not checked here.
    weights : sequence of ndarray (2, 2), optional
        Per-pair weights (default: identity).
    noise_px : float, optional
        Standard deviation of ``d_ab - A (m_b - m_a)`` per axis (stage jitter
        of both tiles plus registration noise; :func:`solve_placement` takes
        it from the pairs' spread around a first, plain fit). With it, ``A`` gets a prior:
        each element within ``prior_sd`` of the identity's. A 2 x 2 grid's
        four pairs then cannot turn the jitter of four tiles into a 2 %
        scale error. Without it, the pull towards ``I`` is negligible.
    prior_sd : float
        Standard deviation of the prior on each element of ``A - I``.

    Returns
    -------
    ndarray, shape (2, 2), float64
        The identity when there are no pairs; a direction without data keeps
        the identity's column (a weak ridge towards ``I``).

    Examples
    --------
    >>> from serialoct.stitch.pairs import PairShift
    >>> def pair(nominal, shift):
    ...     return PairShift(None, nominal, shift, 1.0, 1.0, ((1, 0), (0, 1)), True, "", float("nan"), (20, 96))
    >>> fit_layout_affine([pair((77.0, 0.0), (0.77, 0.0)), pair((0.0, 77.0), (0.0, -0.77))]).round(3).tolist()
    [[1.01, 0.0], [0.0, 0.99]]
    """
    if not pairs:
        return np.eye(2)
    normal = np.zeros((4, 4))
    rhs = np.zeros(4)
    for k, pair in enumerate(pairs):
        w = np.eye(2) if weights is None else np.asarray(weights[k], dtype=np.float64)
        dm = np.asarray(pair.nominal_px, dtype=np.float64)
        jac = np.kron(dm[None, :], np.eye(2))  # d = jac @ vec(A) with vec column-major
        normal += jac.T @ w @ jac
        rhs += jac.T @ w @ pair.displacement_px
    ridge = _AFFINE_RIDGE * max(np.trace(normal), 1e-12)
    if noise_px is not None and prior_sd > 0:
        ridge = max(ridge, (max(noise_px, _MIN_JITTER_PX) / prior_sd) ** 2)
    identity = np.eye(2).ravel(order="F")
    vec = np.linalg.solve(normal + ridge * np.eye(4), rhs + ridge * identity)
    return vec.reshape(2, 2, order="F")


def _solve_corrections(index, used, errors, weights, prior_weight):
    """Corrections ``r`` (N, 2) minimising the weighted pair misfit plus ``prior_weight * |r|^2``."""
    n = len(index)
    normal = np.eye(2 * n) * prior_weight
    rhs = np.zeros(2 * n)
    for pair, e, w in zip(used, errors, weights):
        ia, ib = 2 * index[pair.tiles[0]], 2 * index[pair.tiles[1]]
        for i, j, sign in ((ia, ia, 1.0), (ib, ib, 1.0), (ia, ib, -1.0), (ib, ia, -1.0)):
            normal[i : i + 2, j : j + 2] += sign * w
        rhs[ib : ib + 2] += w @ e
        rhs[ia : ia + 2] -= w @ e
    return np.linalg.solve(normal, rhs).reshape(n, 2)


def _components(index, used) -> int:
    parent = list(range(len(index)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for pair in used:
        parent[find(index[pair.tiles[0]])] = find(index[pair.tiles[1]])
    return len({find(i) for i in range(len(index))})


def solve_placement(
    pairs: Sequence[PairShift],
    layout_px: Mapping[TileIndex, np.ndarray],
    tile_shape: tuple[int, int],
    *,
    affine: np.ndarray | None = None,
    max_refinement_px: float = 10.0,
    max_residual_px: float = 2.0,
    ncc_threshold: float = float("nan"),
) -> Placement:
    """Place every tile of a slice from its registered pairs (see the module docstring).

    Parameters
    ----------
    pairs : sequence of PairShift
        Registered neighbour pairs (with ``tiles`` set), after thresholding.
    layout_px : mapping of (ix, iy) to (float, float)
        Base layout of every tile to place.
    tile_shape : (int, int)
        ``(h, w)``.
    affine : ndarray, shape (2, 2), optional
        A fixed layout matrix (the pooled global transform); fitted when None.
    max_refinement_px : float
        Largest per-tile correction per axis (``max_blend_refinement_px``).
    max_residual_px : float
        Largest residual an accepted pair may keep after the solve.
    ncc_threshold : float
        Recorded in the result for QC (the pairs are already thresholded).

    Returns
    -------
    Placement

    Raises
    ------
    ValueError
        If ``layout_px`` is empty or a pair names a tile it lacks.
    """
    if not layout_px:
        raise ValueError("no tiles to place")
    tiles = tuple(sorted(layout_px))
    index = {t: i for i, t in enumerate(tiles)}
    base = np.array([layout_px[t] for t in tiles], dtype=np.float64)
    final = list(pairs)
    for pair in final:
        if pair.tiles is None or pair.tiles[0] not in index or pair.tiles[1] not in index:
            raise ValueError(f"pair {pair.tiles} names a tile missing from the layout")
    while True:
        used_at = [k for k, p in enumerate(final) if p.accepted]
        used = [final[k] for k in used_at]
        scale = float(np.median([np.trace(np.asarray(p.information)) for p in used])) if used else 1.0
        weights = [_pair_weight(p, scale if scale > 0 else 1.0) for p in used]
        matrix = np.asarray(affine, dtype=np.float64) if affine is not None else fit_layout_affine(used, noise_px=_spread(used))
        errors = [p.displacement_px - matrix @ np.asarray(p.nominal_px) for p in used]
        corrections, residuals, jitter = _fit(index, used, errors, weights, max_refinement_px)
        worst = int(np.argmax(residuals)) if used else -1
        if not used or residuals[worst] <= max_residual_px:
            break
        log.info("pair %s rejected: residual %.2f px > %.2f px after the solve", used[worst].tiles, residuals[worst], max_residual_px)
        final[used_at[worst]] = used[worst].rejected(REASON_INCONSISTENT)
    clipped = np.clip(corrections, -max_refinement_px, max_refinement_px)
    n_clipped = int(np.sum(np.any(clipped != corrections, axis=1)))
    if n_clipped:
        log.info("%d tile corrections clipped to max_blend_refinement_px = %g", n_clipped, max_refinement_px)
    frame = base @ matrix.T + clipped
    origin = np.floor(frame.min(axis=0))
    positions = frame - origin
    canvas = tuple(int(v) for v in np.floor(positions).max(axis=0) + np.asarray(tile_shape))  # tiles paste at floor(position)
    return Placement(
        tiles=tiles, positions_px=positions, origin_px=origin, canvas_shape=canvas, tile_shape=tuple(tile_shape),
        affine=matrix, refinement_px=clipped, pairs=tuple(final),
        residual_rms_px=float(np.sqrt(np.mean(residuals**2))) if used else float("nan"),
        max_residual_px=float(residuals.max()) if used else float("nan"), jitter_px=jitter, n_clipped=n_clipped,
        ncc_threshold=float(ncc_threshold),
    )


def _spread(pairs: Sequence[PairShift]) -> float:
    """Robust per-axis standard deviation of the pairs around the plain least-squares layout matrix, pixels."""
    if not pairs:
        return _MIN_JITTER_PX
    plain = fit_layout_affine(pairs)
    squared = [float(np.sum(np.square(p.displacement_px - plain @ np.asarray(p.nominal_px)))) for p in pairs]
    return math.sqrt(np.median(squared) / (2 * math.log(2)))


def _fit(index, used, errors, weights, max_refinement_px):
    """Two passes: calibrate the pair weights and the jitter prior, then solve. Returns (r, residuals, jitter)."""
    if not used:
        return np.zeros((len(index), 2)), np.zeros(0), _MIN_JITTER_PX
    squared = np.array([float(e @ e) for e in errors])
    jitter = float(np.clip(math.sqrt(np.median(squared) / (4 * math.log(2))), _MIN_JITTER_PX, max(max_refinement_px, _MIN_JITTER_PX)))
    trial = _solve_corrections(index, used, errors, weights, 1e-9)
    misfit = [e - (trial[index[p.tiles[1]]] - trial[index[p.tiles[0]]]) for p, e in zip(used, errors)]
    chi2 = sum(float(m @ w @ m) for m, w in zip(misfit, weights))
    dof = 2 * len(used) - 2 * (len(index) - _components(index, used))
    calibration = max(chi2 / dof, _MIN_PAIR_VARIANCE_PX2) if dof > 0 else 1.0
    calibrated = [w / calibration for w in weights]
    corrections = _solve_corrections(index, used, errors, calibrated, 1.0 / jitter**2)
    residuals = np.array([np.hypot(*(e - (corrections[index[p.tiles[1]]] - corrections[index[p.tiles[0]]])))
                          for p, e in zip(used, errors)])
    return corrections, residuals, jitter
