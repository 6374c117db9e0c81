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

The same comparison, resolved A-line by A-line (:func:`overlap_gain_map`,
smoothed over ``stack_intensity_map_um``), measures the *local* error of the
upper slice's attenuation compensation at the next cut: it is nil at the
surface, grows with depth, and varies across the slice with the tissue
below (the extrapolated tail, the tissue's reflectance-to-attenuation
ratio). :func:`apply_gain_map` fades the correction in from the surface to
that depth, so the hand-over to the next slice matches A-line by A-line,
not only on average. On the ``small`` synthetic acquisition (seed 0) the
volume's NCC with the phantom went from 0.820 to 0.830 (0.830-0.831 for a
scale of 12-48 µm; a correction that fades in with the square or the square
root of depth did worse).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "SURFACE_PLANES", "OVERLAP_PLANES", "SIGNAL_FRACTION", "MAP_LIMIT", "overlap_planes", "overlap_ratio", "apply_gain_map", "gain_map_note",
    "overlap_gain_map", "series_gains",
]

#: Planes below a cut left out of the comparison (partial-volume surface planes).
SURFACE_PLANES = 2
#: Planes of each slice averaged for the comparison.
OVERLAP_PLANES = 5
#: A pixel counts as signal in a mean image above this fraction of its 99th percentile.
SIGNAL_FRACTION = 0.05
#: Fewest pixels with signal in both images for a ratio to be taken.
MIN_PIXELS = 100
#: Largest local correction of :func:`overlap_gain_map`, either way.
MAP_LIMIT = 2.0
#: Share of a smoothing kernel that must fall on overlap pixels for the local ratio to count fully.
MAP_SUPPORT = 0.5


def _signal(x: np.ndarray) -> np.ndarray:
    positive = x[x > 0]
    return x > SIGNAL_FRACTION * np.percentile(positive, 99) if positive.size else np.zeros(x.shape, bool)


def overlap_planes(first: int, upper_depth: int, lower_depth: int) -> int:
    """How many planes to compare, from the upper slice's plane ``first`` and the lower slice's plane :data:`SURFACE_PLANES`.

    At most :data:`OVERLAP_PLANES`, within the lower slice, and never the
    upper slice's last plane (only the A-lines with the shallowest surfaces
    reach it; the others are padding there). 0 when they do not overlap.
    """
    return max(0, min(OVERLAP_PLANES, upper_depth - 1 - first, lower_depth - SURFACE_PLANES))


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
    both = _signal(a) & _signal(b)
    if np.count_nonzero(both) < MIN_PIXELS:
        return None
    return float(b[both].sum() / a[both].sum())


def overlap_gain_map(upper: np.ndarray, lower: np.ndarray, *, sigma_px: float) -> np.ndarray:
    """The local intensity step between two images of the same tissue, relative to the whole-overlap step.

    Where the attenuation compensation of the upper slice errs (its tail, the
    tissue's reflectance-to-attenuation ratio), the error grows with depth
    and varies from A-line to A-line; at the next cut the lower slice shows
    the same tissue near its surface, where its own compensation is nearly
    exact. The ratio of the two, smoothed over ``sigma_px`` (the speckle and
    texture cancel: the same tissue), says how much each A-line of the upper
    slice is off there.

    Parameters
    ----------
    upper, lower : ndarray, shape (H, W)
        Mean images of the same tissue, one from each slice, in one frame (0 outside a slice).
    sigma_px : float
        Gaussian smoothing of both images before the ratio (> 0).

    Returns
    -------
    ndarray, shape (H, W), float32
        ``(lower / upper)`` locally over :func:`overlap_ratio`, within
        ``[1 / MAP_LIMIT, MAP_LIMIT]``; it fades to 1 where less than
        :data:`MAP_SUPPORT` of the kernel holds signal in both images, and is
        1 away from the overlap. All ones when :func:`overlap_ratio` is None.
    """
    from scipy import ndimage

    if sigma_px <= 0:
        raise ValueError(f"sigma_px = {sigma_px}: expected > 0")
    a, b = np.asarray(upper, np.float64), np.asarray(lower, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images of shapes {a.shape} and {b.shape}: expected the same frame")
    inside = _signal(a) & _signal(b)
    if np.count_nonzero(inside) < MIN_PIXELS:
        return np.ones(a.shape, np.float32)
    step = b[inside].sum() / a[inside].sum()  # overlap_ratio, without finding the signal twice
    both = inside.astype(np.float64)
    support = ndimage.gaussian_filter(both, sigma_px)
    num, den = (ndimage.gaussian_filter(x * both, sigma_px) for x in (b, a))
    local = np.divide(num, den * step, out=np.ones_like(num), where=(den > 0) & (num > 0))
    trust = np.clip(support / MAP_SUPPORT, 0.0, 1.0)
    log_gain = trust * np.log(np.clip(local, 1.0 / MAP_LIMIT, MAP_LIMIT))
    return np.exp(log_gain).astype(np.float32)


def apply_gain_map(planes: np.ndarray, first_plane: int, gain_map: np.ndarray, depth: float) -> np.ndarray:
    """Correct planes of a slice by a local step measured at plane ``depth``, in place.

    The compensation's error is nil at the surface and grows with depth, so
    plane ``z`` is multiplied by ``gain_map ** min(1, z / depth)``.

    Parameters
    ----------
    planes : ndarray, shape (n, h, w), float32
        Planes ``first_plane .. first_plane + n - 1`` of the slice (modified).
    first_plane : int
    gain_map : ndarray, shape (h, w)
        :func:`overlap_gain_map` in the slice's frame.
    depth : float
        Plane at which the map was measured (> 0).

    Returns
    -------
    ndarray
        ``planes``.
    """
    if depth <= 0:
        raise ValueError(f"depth = {depth}: expected > 0")
    log_map = np.log(np.asarray(gain_map, np.float32))
    for i in range(planes.shape[0]):
        planes[i] *= np.exp(log_map * np.float32(min(1.0, (first_plane + i) / depth)))
    return planes


def gain_map_note(gain_map: np.ndarray, depth: float) -> dict:
    """A local map's summary for the metrics: the plane it was measured at and its 5th-95th percentiles where it corrects."""
    changed = gain_map[gain_map != 1.0]
    spread = np.percentile(changed, [5, 95]) if changed.size else [1.0, 1.0]
    return {"depth_plane": round(float(depth), 1), "gain_p5_p95": [round(float(v), 3) for v in spread]}


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
