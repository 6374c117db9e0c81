"""Slice-to-slice intensity matching: where consecutive slices image the same tissue, they should agree.

Each slice is normalised on its own (its own percentile maps to 1), and a
slice imaged with less signal (focus, laser power, a damaged block face)
stays darker than its neighbours after that: a band in the volume. Slice
``k`` images down to below the next cut, so its planes ``d + s ..`` (``d``
the depth offset of slice ``k + 1``) show the same tissue as planes ``s ..``
of slice ``k + 1``. The ratio of the two over the pixels where both hold
signal, ``q_k`` (:func:`overlap_ratio`), is the intensity step between the
slices, whatever the anatomy. Chained, ``L_k = sum_{j < k} ln q_j`` is each
slice's intensity level relative to the first; the series is brought to the
running median of those levels (:func:`series_gains`): an isolated dark or
bright slice is matched to its neighbours, while a trend over many slices
(the anatomy getting brighter deeper in the brain, or a slow drift) is kept,
and no correction accumulates down the series.

The first planes below a cut are left out of the comparison: the surface
plane straddles water and tissue (on the ``small`` synthetic acquisition,
comparing from the surface made every step look 25 % darker; from the third
plane on the normal steps are 0.93-1.0). A residual of the attenuation
compensation at the depth compared is about the same at every step: it
reads as a trend and is left alone, never compounded into the gains.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["SURFACE_PLANES", "OVERLAP_PLANES", "SIGNAL_FRACTION", "overlap_ratio", "series_gains"]

#: Planes below a cut left out of the comparison (partial-volume surface planes).
SURFACE_PLANES = 2
#: Planes of each slice averaged for the comparison.
OVERLAP_PLANES = 5
#: A pixel counts as signal in a mean image above this fraction of its 99th percentile.
SIGNAL_FRACTION = 0.05
#: Fewest pixels with signal in both images for a ratio to be taken.
MIN_PIXELS = 100


def overlap_ratio(upper: np.ndarray, lower: np.ndarray) -> float | None:
    """``sum(lower) / sum(upper)`` over the pixels where both images hold signal.

    Parameters
    ----------
    upper, lower : ndarray, shape (H, W)
        Mean images of the same tissue, one from each slice, in the same
        canvas (0 outside a slice).

    Returns
    -------
    float or None
        The intensity step from the upper slice to the lower one; None when
        fewer than :data:`MIN_PIXELS` pixels hold signal in both.
    """
    a, b = np.asarray(upper, np.float64), np.asarray(lower, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images of shapes {a.shape} and {b.shape}: expected the same canvas")

    def signal(x):
        positive = x[x > 0]
        return x > SIGNAL_FRACTION * np.percentile(positive, 99) if positive.size else np.zeros(x.shape, bool)

    both = signal(a) & signal(b)
    if np.count_nonzero(both) < MIN_PIXELS:
        return None
    return float(b[both].sum() / a[both].sum())


def series_gains(ratios: Sequence[float | None], *, window: int = 5) -> np.ndarray:
    """Gain of every slice of a series that brings it to the running median of the series' levels.

    Parameters
    ----------
    ratios : sequence of float or None, length n - 1
        :func:`overlap_ratio` of each consecutive pair, top to bottom; None
        where two slices do not overlap (taken as no step).
    window : int
        Slices in the running median (odd; shortened at the ends of the series).

    Returns
    -------
    ndarray, shape (n,), float64
        Multiply slice ``k`` by ``gains[k]``.

    Examples
    --------
    >>> series_gains([1.0, 0.5, 2.0, 1.0])  # the third slice of five is half as bright as the others
    array([1., 1., 2., 1., 1.])
    """
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window = {window}: expected an odd number of slices >= 1")
    if any(q is not None and not (np.isfinite(q) and q > 0) for q in ratios):
        raise ValueError(f"ratios {list(ratios)}: expected positive finite values or None")
    steps = [0.0 if q is None else float(np.log(q)) for q in ratios]
    levels = np.concatenate([[0.0], np.cumsum(steps)])
    half = window // 2
    reference = np.array([np.median(levels[max(0, k - half): k + half + 1]) for k in range(levels.size)])
    return np.exp(reference - levels)
