"""One layout matrix for every slice, pooled over many slices (``stitch_global_transform``).

The 2x2 matrix ``A`` of the layout (:mod:`serialoct.stitch.placement`) is a
property of the instrument (stage axes versus image axes, scale), the same
for every slice. Fitted on one slice of a small or sparse grid, it picks up
the noise of a few pairs as a scale or rotation jitter; pooled over a few
hundred pairs of many slices it is pinned down, and re-used for every slice.

Steps (one slice at a time, only the pair list is kept):

1. :func:`register_for_global_transform` registers the neighbour pairs of a
   slice with the pooled estimate's own filters: strips are optionally
   histogram-matched (``stitch_global_transform_histogram_match``), mostly
   background strips are dropped (Otsu level of the slice,
   ``stitch_global_transform_max_empty_fraction``; None uses the simpler
   median test), and the correlation threshold comes from non-overlapping
   pairs as in the per-slice stitcher.
2. :func:`estimate_global_transform` draws at most ``n_samples`` of the
   pooled accepted pairs (``stitch_global_transform_n_samples``, 0 = all;
   ``stitch_global_transform_seed``) and fits ``A`` by least squares,
   then once more without the pairs far from the first fit (:data:`OUTLIER_PX`).
   The pairs are not weighted by their information matrices here: the pairs
   with the strongest structure (a tissue boundary) are not the least biased
   ones, and with hundreds of pairs plain least squares is precise enough.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from serialoct.compute import Backend
from serialoct.stitch.layout import TileIndex
from serialoct.stitch.pairs import PairShift, register_neighbours
from serialoct.stitch.placement import fit_layout_affine
from serialoct.stitch.threshold import apply_threshold, background_level, null_threshold

__all__ = ["GlobalTransform", "pool_slice_ids", "register_for_global_transform", "estimate_global_transform"]

log = logging.getLogger(__name__)

#: Pairs further from the first pooled fit than this (pixels), and than
#: :data:`OUTLIER_MEDIANS` times the median distance, are left out of the second:
#: stage jitter alone spreads the distances over a few pixels.
OUTLIER_PX = 2.0
OUTLIER_MEDIANS = 3.0


@dataclass(frozen=True, eq=False)
class GlobalTransform:
    """The pooled layout matrix.

    Attributes
    ----------
    affine : ndarray, shape (2, 2), float64
        ``A`` with ``d_ab = A (m_b - m_a)``; pass it to the per-slice stitcher.
    n_pooled : int
        Accepted pairs available over the pooled slices.
    n_used : int
        Pairs in the final fit (after sampling and outlier removal).
    residual_rms_px : float
        RMS of ``d_ab - A (m_b - m_a)`` over the pairs used (NaN without pairs).
    """

    affine: np.ndarray
    n_pooled: int
    n_used: int
    residual_rms_px: float

    def metrics(self) -> dict:
        """Plain-Python QC numbers for a metrics JSON."""
        return {
            "affine": [[round(float(v), 6) for v in row] for row in self.affine],
            "n_pooled": self.n_pooled,
            "n_used": self.n_used,
            "residual_rms_px": None if not np.isfinite(self.residual_rms_px) else round(self.residual_rms_px, 4),
        }


def pool_slice_ids(available: Iterable[str], requested: str = "") -> tuple[str, ...]:
    """The slices to pool: ``stitch_global_transform_slices`` ("" = all), checked against those available.

    Parameters
    ----------
    available : iterable of str
        Two-digit ids of the slices present.
    requested : str
        Comma-separated ids (``"10,12,15"``; ``"7"`` means ``"07"``); empty for all.

    Returns
    -------
    tuple of str
        Sorted two-digit ids.

    Raises
    ------
    ValueError
        For an id that is not a number or not among the available slices.

    Examples
    --------
    >>> pool_slice_ids(["01", "02", "03"], "3, 1")
    ('01', '03')
    """
    have = sorted({f"{int(s):02d}" for s in available})
    if not requested.strip():
        return tuple(have)
    chosen = set()
    for part in requested.split(","):
        part = part.strip()
        if not part.isdigit():
            raise ValueError(f"stitch_global_transform_slices: {part!r} is not a slice id (expected e.g. 10,12,15)")
        sid = f"{int(part):02d}"
        if sid not in have:
            raise ValueError(f"stitch_global_transform_slices: slice {sid} is not available ({', '.join(have)})")
        chosen.add(sid)
    return tuple(sorted(chosen))


def register_for_global_transform(
    projections: Mapping[TileIndex, np.ndarray],
    layout_px: Mapping[TileIndex, np.ndarray],
    *,
    histogram_match: bool = True,
    max_empty_fraction: float | None = 0.9,
    max_shift_px: float = 10.0,
    rng: int | np.random.Generator | None = 0,
    backend: Backend | None = None,
) -> list[PairShift]:
    """The accepted neighbour pairs of one slice, for the pooled fit.

    Parameters
    ----------
    projections : mapping of (ix, iy) to ndarray, shape (h, w)
    layout_px : mapping of (ix, iy) to (float, float)
    histogram_match : bool
        ``stitch_global_transform_histogram_match``.
    max_empty_fraction : float or None
        ``stitch_global_transform_max_empty_fraction``.
    max_shift_px : float
        Search range (``max_blend_refinement_px``).
    rng : int, Generator or None
        Seeds the null pairs.
    backend : Backend, optional

    Returns
    -------
    list of PairShift
        Only the accepted pairs.
    """
    level = background_level(projections)
    options = dict(max_shift_px=max_shift_px, background_level=level, max_empty_fraction=max_empty_fraction,
                   histogram_match=histogram_match, backend=backend)
    pairs = register_neighbours(projections, layout_px, **options)
    null = null_threshold(projections, layout_px, rng=rng, **options)
    return [p for p in apply_threshold(pairs, null.threshold) if p.accepted]


def estimate_global_transform(
    pair_sets: Iterable[Sequence[PairShift]],
    *,
    n_samples: int = 2048,
    rng: int | np.random.Generator | None = 0,
) -> GlobalTransform:
    """Fit one layout matrix to the accepted pairs pooled over slices.

    Parameters
    ----------
    pair_sets : iterable of sequences of PairShift
        Per slice, from :func:`register_for_global_transform` (non-accepted
        pairs are ignored).
    n_samples : int
        Most pairs used, drawn at random without replacement; 0 uses all.
    rng : int, Generator or None
        ``stitch_global_transform_seed``.

    Returns
    -------
    GlobalTransform
        The identity, with ``n_used = 0``, when no pair was accepted.

    Raises
    ------
    ValueError
        For a negative ``n_samples``.
    """
    if n_samples < 0:
        raise ValueError(f"n_samples = {n_samples}: expected >= 0 (0 = all pairs)")
    pooled = [p for pairs in pair_sets for p in pairs if p.accepted]
    if not pooled:
        log.warning("no accepted pair in the pooled slices: global transform is the identity")
        return GlobalTransform(np.eye(2), 0, 0, float("nan"))
    generator = np.random.default_rng(rng)
    chosen = pooled
    if n_samples and len(pooled) > n_samples:
        chosen = [pooled[i] for i in np.sort(generator.choice(len(pooled), size=n_samples, replace=False))]
    affine = fit_layout_affine(chosen)
    residual = np.array([np.hypot(*(p.displacement_px - affine @ np.asarray(p.nominal_px))) for p in chosen])
    limit = max(OUTLIER_PX, OUTLIER_MEDIANS * float(np.median(residual)))
    inliers = [p for p, r in zip(chosen, residual) if r <= limit]
    if len(inliers) >= 2 and len(inliers) < len(chosen):
        affine = fit_layout_affine(inliers)
        chosen = inliers
        residual = np.array([np.hypot(*(p.displacement_px - affine @ np.asarray(p.nominal_px))) for p in chosen])
    log.info("global transform from %d of %d pooled pairs: %s", len(chosen), len(pooled), np.round(affine, 5).tolist())
    return GlobalTransform(affine, len(pooled), len(chosen), float(np.sqrt(np.mean(residual**2))))
