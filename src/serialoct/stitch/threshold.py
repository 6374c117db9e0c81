"""Which pair registrations to trust: background level, and an NCC threshold set by chance.

Two tiles that do not overlap still give *some* correlation once a
registration has searched for the best lag, the more so on smooth,
low-texture images. MIST (Chalfoun et al. 2017) and ASHLAR (Muhlich et al.
2022) therefore set the acceptance threshold from pairs that *cannot*
overlap: :func:`null_threshold` registers strips of the slice's own tiles
whose footprints are disjoint, exactly as neighbour pairs are registered,
and takes a high quantile of their correlations. A real pair below it is
indistinguishable from chance (an agarose-only or otherwise textureless
overlap) and is rejected.

Empty overlaps are recognised before registering, from the slice's Otsu
level (:func:`background_level`): dark agarose or water on one side and
tissue on the other, or nothing at all.

References
----------
.. [1] J. Chalfoun et al., "MIST: Accurate and scalable microscopy image
   stitching tool with stage modeling and error minimization", Sci. Rep. 7,
   4988 (2017), doi:10.1038/s41598-017-04567-y.
.. [2] J. L. Muhlich et al., "Stitching and registering highly multiplexed
   whole-slide images of tissues and tumors using ASHLAR", Bioinformatics
   38, 4613-4621 (2022), doi:10.1093/bioinformatics/btac544.
.. [3] N. Otsu, "A threshold selection method from gray-level histograms",
   IEEE Trans. Syst. Man Cybern. 9, 62-66 (1979), doi:10.1109/TSMC.1979.4310076.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from serialoct.compute import Backend
from serialoct.stitch.layout import TileIndex, neighbour_pairs
from serialoct.stitch.pairs import REASON_EMPTY, REASON_FLAT, REASON_NO_OVERLAP, PairShift, register_pair

__all__ = [
    "NullThreshold",
    "otsu_threshold",
    "background_level",
    "null_threshold",
    "apply_threshold",
    "REASON_BELOW_THRESHOLD",
]

log = logging.getLogger(__name__)

REASON_BELOW_THRESHOLD = "ncc below threshold"
#: Used when too few null pairs could be drawn (tiny grids): a correlation this
#: high is rarely reached by chance on smoothed OCT projections.
FALLBACK_NCC_THRESHOLD = 0.5
#: Fewest null correlations from which a quantile is trusted.
MIN_NULL_SAMPLES = 10
#: Null pairs keep at least this many pixels between their footprints besides the search range.
_NULL_MARGIN_PX = 6


def otsu_threshold(values: np.ndarray, *, bins: int = 256) -> float:
    """Otsu's threshold of a sample: the level that maximises the between-class variance.

    Parameters
    ----------
    values : ndarray
        Any shape; non-finite values are ignored.
    bins : int
        Histogram bins between the minimum and maximum.

    Returns
    -------
    float
        The upper edge of the darker class (the minimum for constant data).

    Examples
    --------
    >>> otsu_threshold(np.r_[np.zeros(50), np.ones(50)])
    0.5
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ValueError("no finite values to threshold")
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        return lo
    counts, edges = np.histogram(v, bins=bins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(counts)
    mass = np.cumsum(counts * centres)
    total, total_mass = weight[-1], mass[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_low = mass / weight
        mean_high = (total_mass - mass) / (total - weight)
        between = weight * (total - weight) * (mean_low - mean_high) ** 2
    between = np.nan_to_num(between[:-1], nan=-1.0)
    best = np.flatnonzero(between >= between.max() * (1 - 1e-12))
    k = int(best[len(best) // 2])  # the middle of a plateau (two well-separated classes)
    return float(edges[k + 1])


def background_level(projections: Mapping[TileIndex, np.ndarray], *, max_samples: int = 200_000) -> float:
    """The slice's Otsu level between background (agarose, water) and tissue.

    Parameters
    ----------
    projections : mapping of (ix, iy) to ndarray, shape (h, w)
        The tiles' 2D images.
    max_samples : int
        Pixels used at most (a regular subsample), which bounds the cost.

    Returns
    -------
    float

    Notes
    -----
    On a slice without tissue (or all tissue) Otsu still splits the
    histogram in two, so the emptiness test flags about half of every strip
    and rarely more than ``max_empty_fraction``: such slices are left to the
    correlation threshold.
    """
    values = np.concatenate([np.asarray(p, dtype=np.float32).ravel() for p in projections.values()])
    stride = max(1, values.size // max_samples)
    return otsu_threshold(values[::stride])


@dataclass(frozen=True)
class NullThreshold:
    """The correlation threshold of a slice and the null sample it came from.

    Attributes
    ----------
    threshold : float
        Accepted pairs need ``ncc >= threshold``.
    quantile : float
        Quantile of the null correlations used.
    null_ncc : tuple of float
        Correlations of the registered non-overlapping pairs.
    n_drawn : int
        Null pairs registered (some are dropped as empty or flat).
    fallback : bool
        True when too few null correlations were available and
        :data:`FALLBACK_NCC_THRESHOLD` was used.
    """

    threshold: float
    quantile: float
    null_ncc: tuple[float, ...]
    n_drawn: int
    fallback: bool


def _disjoint(fa: np.ndarray, fb: np.ndarray, size: np.ndarray, margin: float) -> bool:
    """Whether two rectangles of ``size`` at top-lefts ``fa`` and ``fb`` are apart by more than ``margin``."""
    return bool(np.any(np.abs(fa - fb) >= size + margin))


def null_threshold(
    projections: Mapping[TileIndex, np.ndarray],
    layout_px: Mapping[TileIndex, np.ndarray],
    *,
    n_pairs: int = 100,
    quantile: float = 0.99,
    max_shift_px: float = 10.0,
    background_level: float | None = None,
    max_empty_fraction: float | None = 0.9,
    histogram_match: bool = False,
    rng: int | np.random.Generator | None = 0,
    backend: Backend | None = None,
) -> NullThreshold:
    """Set the NCC threshold of a slice from pairs of strips that cannot overlap.

    Parameters
    ----------
    projections : mapping of (ix, iy) to ndarray, shape (h, w)
        The tiles' 2D images.
    layout_px : mapping of (ix, iy) to (float, float)
        Base layout (:mod:`serialoct.stitch.layout`).
    n_pairs : int
        Null pairs to register (fewer when the grid has fewer disjoint strips).
    quantile : float
        In (0, 1]: the threshold is this quantile of the null correlations.
    max_shift_px, background_level, max_empty_fraction, histogram_match
        As for :func:`~serialoct.stitch.pairs.register_pair`, so null pairs
        go through exactly what neighbour pairs go through.
    rng : int, Generator or None
        Seeds the draw of null pairs.
    backend : Backend, optional

    Returns
    -------
    NullThreshold

    Notes
    -----
    A null pair takes the geometry of a real neighbour pair (the strip of
    tile a that tile b would cover, and the strip of tile b that would cover
    it) but pairs the strip of some tile ``c`` with the strip of some tile
    ``e`` (possibly ``c`` itself) whose footprints in the base layout are
    disjoint by more than the search range: they share no tissue, so their
    correlation after registration is chance alone. Null pairs rejected as
    empty or flat are left out (the same filter removes such real pairs);
    the others count whatever their other reasons, as the correlation is
    what the threshold is about.
    """
    if not 0 < quantile <= 1:
        raise ValueError(f"quantile = {quantile}: expected 0 < value <= 1")
    generator = np.random.default_rng(rng)
    keys = [k for k in sorted(projections) if k in layout_px]
    geometries = [(np.asarray(layout_px[b], float) - np.asarray(layout_px[a], float)) for a, b in neighbour_pairs(keys)]
    size = np.asarray(next(iter(projections.values())).shape, dtype=float)
    values: list[float] = []
    drawn = 0
    if geometries:
        for _ in range(20 * n_pairs):
            if drawn >= n_pairs:
                break
            offset = geometries[generator.integers(len(geometries))]
            c, e = (keys[i] for i in generator.integers(len(keys), size=2))
            # Strip of c: c's part that a tile at m_c + offset would cover; strip of e: e's part covering it.
            strip = size - np.abs(np.rint(offset))
            foot_c = np.asarray(layout_px[c], float) + np.maximum(np.rint(offset), 0)
            foot_e = np.asarray(layout_px[e], float) + np.maximum(-np.rint(offset), 0)
            if not _disjoint(foot_c, foot_e, strip, max_shift_px + _NULL_MARGIN_PX):
                continue
            drawn += 1
            pair = register_pair(projections[c], projections[e], offset, max_shift_px=max_shift_px,
                                 background_level=background_level, max_empty_fraction=max_empty_fraction,
                                 histogram_match=histogram_match, backend=backend)
            if pair.reason not in (REASON_EMPTY, REASON_FLAT, REASON_NO_OVERLAP) and np.isfinite(pair.ncc):
                values.append(pair.ncc)
    if len(values) < MIN_NULL_SAMPLES:
        log.info("only %d null pair correlations (grid too small or empty): ncc threshold %.2f", len(values), FALLBACK_NCC_THRESHOLD)
        return NullThreshold(FALLBACK_NCC_THRESHOLD, quantile, tuple(values), drawn, True)
    threshold = float(np.quantile(values, quantile))
    log.info("ncc threshold %.3f: quantile %.2f of %d non-overlapping pairs", threshold, quantile, len(values))
    return NullThreshold(threshold, quantile, tuple(values), drawn, False)


def apply_threshold(pairs: Sequence[PairShift], threshold: float) -> list[PairShift]:
    """Reject accepted pairs whose NCC is below ``threshold`` (reason ``"ncc below threshold"``)."""
    out = [p.rejected(REASON_BELOW_THRESHOLD) if p.accepted and not p.ncc >= threshold else p for p in pairs]
    n = sum(1 for p, q in zip(pairs, out) if p.accepted and not q.accepted)
    if n:
        log.info("%d of %d pairs rejected: ncc < %.3f", n, len(pairs), threshold)
    return out
