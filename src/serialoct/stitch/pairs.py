"""Pair registration: the shift between two neighbouring tiles, measured on their overlap strip.

Stitching is 2D: each tile is represented by its mean over depth
(:func:`project_tiles`), and two neighbours are registered on the strip where
the base layout says they overlap (:func:`register_pair`).

Method
------
With ``o = round(m_b - m_a)`` the base-layout offset of tile b from tile a
(integer pixels), strip ``A`` is the part of tile a that tile b covers and
strip ``B`` the part of tile b that covers it. If tile b truly sits at
``o + s`` from tile a, ``A(k + s) = B(k)``: the registration measures ``s``.

1. Both strips are smoothed by a Gaussian of :data:`SMOOTH_SIGMA_PX`: OCT
   speckle is nearly white and only partly shared between tiles (detector
   noise not at all), while the
   structure the two tiles share (fibres, layers, boundaries) is a few
   pixels wide, so smoothing raises the shared signal over the noise. Strips
   of at least :data:`BIN_ABOVE_PX` on both sides are first binned 2 x 2,
   which the smoothing makes lossless and the rest four times cheaper.
2. Phase correlation (:func:`~serialoct.stitch.correlate.phase_correlate`,
   real FFTs, sub-pixel peak) finds the lag within ``max_shift_px`` of the
   base layout.
3. Gauss-Newton least squares (:func:`~serialoct.stitch.correlate.refine_shift`)
   refines it without the window that biases phase correlation on narrow
   strips, absorbing a gain, an offset and a ramp between the tiles and
   leaving out a margin along the strip borders (where the smoothing had to
   invent the outside), and gives the shift's 2x2 information matrix (large
   across texture, small along it).
4. The pair's quality, its ``ncc``, is the correlation of the two strips'
   fine structure at the registered lag
   (:func:`~serialoct.stitch.correlate.texture_correlation`, structure wider
   than :data:`TEXTURE_SIGMA_PX` removed): smooth content would correlate
   between any two strips that share a gradient.

Pairs with no usable overlap are rejected here with a reason: no overlap,
a flat strip (constant, e.g. a zero-filled hole), an empty strip (mostly
background, from the slice's Otsu level, when a level is given), a peak at
the edge of the search window, or a refinement that did not converge or
wandered away from the peak. Whether the NCC of an accepted pair is high
enough is decided per slice by :func:`serialoct.stitch.threshold.null_threshold`
from pairs that cannot overlap (MIST, ASHLAR).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from serialoct.compute import Backend, get_backend, to_numpy
from serialoct.stitch.correlate import phase_correlate, refine_shift, texture_correlation
from serialoct.stitch.layout import TileIndex, neighbour_pairs

__all__ = [
    "PairShift",
    "project_tiles",
    "overlap_slices",
    "match_histogram",
    "register_pair",
    "register_neighbours",
]

log = logging.getLogger(__name__)

#: Gaussian smoothing of the strips before registration, pixels: speckle is
#: white while the fibre texture of brain tissue is 2-7 pixels wide at 10-12 µm.
SMOOTH_SIGMA_PX = 2.0
#: Structure wider than this Gaussian (pixels) is removed before the pair's NCC is
#: computed: it correlates between any two strips with a similar gradient.
TEXTURE_SIGMA_PX = 4.0
#: The refinement leaves out this many smoothing sigmas along every strip border,
#: where the smoothing extended the edge and the two strips differ at any lag.
MARGIN_SIGMAS = 1.5
#: Strips whose sides all reach this many pixels are registered on 2 x 2 bins:
#: after the smoothing, the full sampling carries no more information, and the
#: work drops fourfold (a 256 x 256 overlap registers on 128 x 128).
BIN_ABOVE_PX = 96
#: Smallest overlap strip side, in pixels, that is registered at all.
MIN_OVERLAP_PX = 6
#: The refinement may move the phase-correlation peak by at most this, pixels;
#: further means it slid into another basin and the pair is unreliable.
MAX_REFINEMENT_STEP_PX = 3.0
#: A strip whose standard deviation is below this fraction of its mean magnitude is flat.
_FLAT_RELATIVE_STD = 1e-6

REASON_NO_OVERLAP = "no overlap"
REASON_FLAT = "flat overlap"
REASON_EMPTY = "empty overlap"
REASON_AT_LIMIT = "peak at the search limit"
REASON_DIVERGED = "refinement did not converge"


@dataclass(frozen=True)
class PairShift:
    """The registration of one pair of tiles.

    Attributes
    ----------
    tiles : ((int, int), (int, int)) or None
        Grid indices ``(a, b)``; None for a pair registered outside a grid.
    nominal_px : (float, float)
        Base-layout offset ``m_b - m_a`` of tile b from tile a, pixels ``(row, col)``.
    shift_px : (float, float)
        Measured correction: tile b sits at ``nominal_px + shift_px`` from
        tile a (0 when nothing was measured).
    ncc : float
        Correlation of the fine structure (texture) of the two strips at the
        registered lag, in [-1, 1] (NaN when not measured).
    peak : float
        Phase-correlation peak relative to a perfect match (NaN when not measured).
    information : ((float, float), (float, float))
        Inverse covariance of the shift, px^-2, arbitrary common scale (zeros
        when not measured): how well each direction is determined.
    accepted : bool
        Whether the shift is used for placement.
    reason : str
        Why not ("" when accepted): ``"no overlap"``, ``"flat overlap"``,
        ``"empty overlap"``, ``"peak at the search limit"``, ``"refinement
        did not converge"``, ``"ncc below threshold"``, ``"inconsistent with
        the layout"``.
    empty_fraction : float
        Largest share of either strip at or below the background level (NaN
        when no level was given).
    overlap_shape : (int, int)
        Strip size, pixels.
    """

    tiles: tuple[TileIndex, TileIndex] | None
    nominal_px: tuple[float, float]
    shift_px: tuple[float, float]
    ncc: float
    peak: float
    information: tuple[tuple[float, float], tuple[float, float]]
    accepted: bool
    reason: str
    empty_fraction: float
    overlap_shape: tuple[int, int]

    @property
    def displacement_px(self) -> np.ndarray:
        """Measured offset of tile b from tile a, ``nominal_px + shift_px``, shape (2,)."""
        return np.add(self.nominal_px, self.shift_px)

    def rejected(self, reason: str) -> PairShift:
        """This pair, not accepted, with ``reason``."""
        return replace(self, accepted=False, reason=reason)


def project_tiles(
    tiles: Mapping[TileIndex, np.ndarray],
    *,
    z_range: tuple[int, int] | None = None,
    backend: Backend | None = None,
) -> dict[TileIndex, np.ndarray]:
    """The 2D image each tile is registered on: its mean over depth.

    Parameters
    ----------
    tiles : mapping of (ix, iy) to array, shape (Z, h, w)
        The tiles of one slice (any array that slices: NumPy, zarr views).
    z_range : (int, int), optional
        Depth planes ``[start, stop)`` to average (default: all), e.g. the
        planes that hold tissue below the surface.
    backend : Backend, optional
        NumPy (default) or CuPy for the mean.

    Returns
    -------
    dict of (ix, iy) to ndarray, shape (h, w), float32, on the host
    """
    xp = (backend or get_backend(False)).xp
    z = slice(None) if z_range is None else slice(*z_range)
    return {k: to_numpy(xp.asarray(t[z]).mean(axis=0, dtype=xp.float32)) for k, t in tiles.items()}


def overlap_slices(
    tile_shape: tuple[int, int], offset_px: Sequence[int]
) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
    """Index the strip two tiles share when tile b sits at integer ``offset_px`` from tile a.

    Returns
    -------
    (slices into a, slices into b) or None
        None when they share no pixel.

    Examples
    --------
    >>> overlap_slices((96, 96), (77, 0))
    ((slice(77, 96, None), slice(0, 96, None)), (slice(0, 19, None), slice(0, 96, None)))
    """
    in_a, in_b = [], []
    for n, o in zip(tile_shape, offset_px):
        lo, hi = max(0, int(o)), min(n, n + int(o))
        if hi <= lo:
            return None
        in_a.append(slice(lo, hi))
        in_b.append(slice(lo - int(o), hi - int(o)))
    return tuple(in_a), tuple(in_b)


def match_histogram(source: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``source`` with its values replaced by those of ``reference`` at the same rank (same shape required)."""
    order = np.argsort(source, axis=None, kind="stable")
    out = np.empty(source.size, dtype=np.float32)
    out[order] = np.sort(reference, axis=None)
    return out.reshape(source.shape)


def register_pair(
    image_a: np.ndarray,
    image_b: np.ndarray,
    nominal_px: Sequence[float],
    *,
    max_shift_px: float = 10.0,
    background_level: float | None = None,
    max_empty_fraction: float | None = 0.9,
    histogram_match: bool = False,
    tiles: tuple[TileIndex, TileIndex] | None = None,
    backend: Backend | None = None,
) -> PairShift:
    """Register tile b against tile a on their overlap strip (see the module docstring).

    Parameters
    ----------
    image_a, image_b : ndarray, shape (h, w)
        2D images of the two tiles (:func:`project_tiles`).
    nominal_px : (float, float)
        Base-layout offset of tile b from tile a, pixels ``(row, col)``.
    max_shift_px : float
        Largest correction searched along each axis (``max_blend_refinement_px``).
    background_level : float, optional
        Intensity at or below which a pixel is background (agarose, water),
        e.g. from :func:`serialoct.stitch.threshold.background_level`. None
        skips the emptiness test.
    max_empty_fraction : float or None
        Reject the pair as empty when either strip has more than this share
        of background pixels (the Otsu-based test). None: the simpler test,
        empty when either strip's median is background.
    histogram_match : bool
        Map strip b's values onto strip a's histogram before registering
        (rank matching), for tiles whose gains differ.
    tiles : ((int, int), (int, int)), optional
        Grid indices recorded in the result.
    backend : Backend, optional
        NumPy/SciPy (default) or CuPy for the FFTs.

    Returns
    -------
    PairShift
        Accepted unless one of the reasons of the module docstring applies;
        the NCC threshold is applied later.

    Examples
    --------
    >>> from serialoct.synth import plan_acquisition, preset, render_tile
    >>> plan = plan_acquisition(preset("small"), seed=0)
    >>> a, b = (render_tile(plan, 3, 1, iy).mean(axis=0) for iy in (1, 2))
    >>> pair = register_pair(a, b, (0.0, 76.8))
    >>> truth = plan.stitched_px[3, 1, 2] - plan.stitched_px[3, 1, 1]
    >>> bool(np.hypot(*(pair.displacement_px - truth)) < 0.5), pair.accepted
    (True, True)
    """
    nominal = (float(nominal_px[0]), float(nominal_px[1]))
    offset = np.rint(nominal).astype(int)
    found = overlap_slices(image_a.shape, offset)
    empty = float("nan")
    nothing = ((0.0, 0.0), (0.0, 0.0))

    def result(shift=(0.0, 0.0), ncc=float("nan"), peak=float("nan"), information=nothing, reason="", shape=(0, 0)):
        return PairShift(tiles, nominal, (float(shift[0]), float(shift[1])), float(ncc), float(peak), information,
                         not reason, reason, empty, (int(shape[0]), int(shape[1])))

    if found is None:
        return result(reason=REASON_NO_OVERLAP)
    strip_a = np.asarray(image_a[found[0]], dtype=np.float32)
    strip_b = np.asarray(image_b[found[1]], dtype=np.float32)
    shape = strip_a.shape
    if min(shape) < MIN_OVERLAP_PX:
        return result(reason=REASON_NO_OVERLAP, shape=shape)
    for strip in (strip_a, strip_b):
        if float(strip.std()) <= _FLAT_RELATIVE_STD * (float(np.abs(strip).mean()) + 1e-30):
            return result(reason=REASON_FLAT, shape=shape)
    if background_level is not None:
        empty = max(float(np.mean(strip_a <= background_level)), float(np.mean(strip_b <= background_level)))
        if max_empty_fraction is None:
            is_empty = min(float(np.median(strip_a)), float(np.median(strip_b))) <= background_level
        else:
            is_empty = empty > max_empty_fraction
        if is_empty:
            return result(reason=REASON_EMPTY, shape=shape)
    if histogram_match:
        strip_b = match_histogram(strip_b, strip_a)
    backend = backend or get_backend(False)
    factor = _bin_factor(shape)
    a, b = (_smooth(_bin(strip, factor), SMOOTH_SIGMA_PX, factor, backend) for strip in (strip_a, strip_b))
    limit = max_shift_px / factor
    coarse, peak, at_limit = phase_correlate(a, b, max_shift_px=limit, sigma_px=SMOOTH_SIGMA_PX / factor, backend=backend)
    margin = int(np.ceil(MARGIN_SIGMAS * SMOOTH_SIGMA_PX / factor))
    if min(a.shape) - 2 * margin < MIN_OVERLAP_PX:
        margin = max(0, (min(a.shape) - MIN_OVERLAP_PX) // 2)
    fine = refine_shift(a, b, np.rint(coarse), margin_px=margin)  # also for rejected pairs: their NCC feeds the null threshold
    moved = float(np.max(np.abs(fine.shift - coarse))) * factor
    ncc = texture_correlation(a, b, fine.shift, sigma_px=TEXTURE_SIGMA_PX / factor, margin_px=margin, backend=backend)
    to_base = offset - np.asarray(nominal)  # lags are relative to the rounded offset
    if at_limit:
        return result(coarse * factor + to_base, ncc, peak, reason=REASON_AT_LIMIT, shape=shape)
    if not fine.converged or moved > MAX_REFINEMENT_STEP_PX or np.max(np.abs(fine.shift)) > limit:
        return result(coarse * factor + to_base, ncc, peak, reason=REASON_DIVERGED, shape=shape)
    information = tuple(tuple(float(v) / factor**2 for v in row) for row in fine.information)
    return result(fine.shift * factor + to_base, ncc, peak, information, "", shape)


def _bin_factor(shape: tuple[int, int]) -> int:
    """2 when both strip sides reach :data:`BIN_ABOVE_PX`, else 1 (see :data:`BIN_ABOVE_PX`)."""
    return 2 if min(shape) >= BIN_ABOVE_PX else 1


def _bin(strip: np.ndarray, factor: int) -> np.ndarray:
    """Mean of ``factor`` x ``factor`` blocks (the strip cropped to whole blocks)."""
    if factor == 1:
        return strip
    h, w = (n - n % factor for n in strip.shape)
    total = np.zeros((h // factor, w // factor), dtype=np.float32)
    for i in range(factor):
        for j in range(factor):
            total += strip[i:h:factor, j:w:factor]  # strided sums: far faster than a reduce over reshaped axes
    return total * np.float32(1.0 / factor**2)


def _smooth(strip: np.ndarray, sigma_px: float, factor: int, backend: Backend) -> np.ndarray:
    """The strip smoothed to ``sigma_px`` original pixels (edges extended), float32 on the host.

    A strip binned by ``factor`` already carries the blur of the binning box
    (variance ``(factor^2 - 1) / 12`` original pixels^2), which is discounted.
    """
    sigma = np.sqrt(max(sigma_px**2 - (factor**2 - 1) / 12.0, 0.0)) / factor
    data = backend.xp.asarray(strip, dtype=backend.xp.float32)
    return to_numpy(backend.ndi.gaussian_filter(data, sigma, mode="nearest", truncate=3.0))


def register_neighbours(
    projections: Mapping[TileIndex, np.ndarray],
    layout_px: Mapping[TileIndex, np.ndarray],
    *,
    max_shift_px: float = 10.0,
    background_level: float | None = None,
    max_empty_fraction: float | None = 0.9,
    histogram_match: bool = False,
    backend: Backend | None = None,
) -> list[PairShift]:
    """Register every pair of x and y neighbours of a slice (see :func:`register_pair`).

    Parameters
    ----------
    projections : mapping of (ix, iy) to ndarray, shape (h, w)
        One 2D image per present tile.
    layout_px : mapping of (ix, iy) to (float, float)
        Base layout (:mod:`serialoct.stitch.layout`); tiles missing from
        ``projections`` are skipped.
    max_shift_px, background_level, max_empty_fraction, histogram_match, backend
        As for :func:`register_pair`.

    Returns
    -------
    list of PairShift
        In :func:`~serialoct.stitch.layout.neighbour_pairs` order.
    """
    out = []
    for a, b in neighbour_pairs(k for k in projections if k in layout_px):
        nominal = np.asarray(layout_px[b], dtype=np.float64) - np.asarray(layout_px[a], dtype=np.float64)
        out.append(
            register_pair(
                projections[a], projections[b], nominal, max_shift_px=max_shift_px, background_level=background_level,
                max_empty_fraction=max_empty_fraction, histogram_match=histogram_match, tiles=(a, b), backend=backend,
            )
        )
    return out
