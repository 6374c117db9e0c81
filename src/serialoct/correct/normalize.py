"""Per-slice intensity normalisation (step ``normalize``): background to 0, one scale per slice.

A slice's intensities map to [0, 1] by ONE factor: ``out = min(I, c) / c``
with ``c`` the ``clip_percentile_upper`` percentile (default 99.9) of the
slice's tissue voxels (those above the depth where the attenuation
compensation starts lifting noise, when it says where); voxels below the
background threshold (water, agarose, the noise floor, padding) become 0. A pure scale keeps intensity
ratios, so later depth profiles (attenuation) are not bent by an offset.

Streaming: the statistics come from a fixed-bin histogram of log10
intensity, accumulated block by block (:func:`intensity_histogram`, merged
with ``+``), so a slice never has to be in memory; the normalisation is
then applied block by block (:func:`apply_normalization`).
:func:`normalize` chains both on an in-memory (or zarr) volume.

Histogram: 16,384 bins over 1e-10 .. 1e10 (0.0012 decade, 0.28 % relative
width; percentiles interpolate inside a bin); non-positive and non-finite
voxels are counted apart and are always background. The background
threshold is Otsu's on the log histogram (the two classes of a slice, dim
background and bright tissue, are far apart on a log scale and roughly
symmetric there; on a linear scale a heavy tissue tail drags Otsu's
threshold into the tissue).

References
----------
.. [1] Otsu N. "A threshold selection method from gray-level histograms",
   IEEE Trans. Syst. Man Cybern. 9, 62-66 (1979). https://doi.org/10.1109/TSMC.1979.4310076
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from serialoct.compute import Backend, get_backend, to_numpy

__all__ = [
    "BackgroundMethod",
    "IntensityHistogram",
    "Normalization",
    "Normalized",
    "apply_normalization",
    "estimate_normalization",
    "intensity_histogram",
    "normalize",
]

log = logging.getLogger(__name__)

BackgroundMethod = Literal["otsu", "none"]

LOG10_RANGE = (-10.0, 10.0)
N_BINS = 16384
_BIN_WIDTH = (LOG10_RANGE[1] - LOG10_RANGE[0]) / N_BINS


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class IntensityHistogram:
    """Counts of log10 intensity in fixed bins; add two to merge blocks.

    Attributes
    ----------
    counts : ndarray, shape (N_BINS,), int64
        Positive finite voxels per bin of :data:`LOG10_RANGE` (values beyond
        the range fall in the end bins).
    n_nonpositive : int
        Voxels <= 0 or not finite.
    low, high : float
        Smallest and largest positive finite voxel (percentiles stay inside
        them; ``inf`` and 0 when there is none).
    """

    counts: np.ndarray
    n_nonpositive: int
    low: float = float("inf")
    high: float = 0.0

    def __add__(self, other: IntensityHistogram) -> IntensityHistogram:
        if not isinstance(other, IntensityHistogram):
            return NotImplemented
        return IntensityHistogram(
            self.counts + other.counts, self.n_nonpositive + other.n_nonpositive, min(self.low, other.low), max(self.high, other.high)
        )

    @property
    def n_positive(self) -> int:
        return int(self.counts.sum())

    @staticmethod
    def empty() -> IntensityHistogram:
        """No voxel counted (the start of an accumulation)."""
        return IntensityHistogram(np.zeros(N_BINS, np.int64), 0)

    def percentile(self, q: float, *, first_bin: int = 0) -> float:
        """The ``q``-th percentile (0-100) of the positive voxels in bins ``first_bin`` on (linear in log inside a bin)."""
        counts = self.counts[first_bin:]
        total = counts.sum()
        if total == 0:
            return float("nan")
        cumulative = np.cumsum(counts)
        rank = q / 100.0 * total
        k = int(np.searchsorted(cumulative, rank, side="left"))
        k = min(k, len(counts) - 1)
        below = cumulative[k - 1] if k > 0 else 0
        inside = (rank - below) / counts[k] if counts[k] else 0.0
        value = 10.0 ** (LOG10_RANGE[0] + (first_bin + k + min(max(inside, 0.0), 1.0)) * _BIN_WIDTH)
        return float(min(max(value, self.low), self.high))


@dataclass(frozen=True)
class Normalization:
    """One slice's normalisation: ``out = min(I, clip_value) / clip_value``, 0 below ``background_threshold``.

    Attributes
    ----------
    background_threshold : float
        Intensities below it (and non-positive or non-finite ones) become 0.
    clip_value : float
        Intensity that maps to 1 (percentile of the tissue voxels), > 0.
    tissue_fraction : float
        Fraction of the counted voxels at or above the threshold.
    separability : float
        Otsu's between-class over total variance of log intensity, 0-1 (near
        1: two well separated classes; low: no clear background); NaN with
        ``background="none"`` or without a threshold.
    n_voxels : int
        Voxels counted.
    reason : str
        What was degenerate (no positive voxel, a single intensity), empty otherwise.
    """

    background_threshold: float
    clip_value: float
    tissue_fraction: float
    separability: float
    n_voxels: int
    reason: str

    @property
    def scale(self) -> float:
        """The slice's one factor, ``1 / clip_value``."""
        return 1.0 / self.clip_value


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class Normalized:
    """A normalised volume and its normalisation.

    Attributes
    ----------
    volume : ndarray, same shape as the input, float32 in [0, 1]
    normalization : Normalization
    """

    volume: np.ndarray
    normalization: Normalization


def intensity_histogram(block, *, backend: Backend | None = None) -> IntensityHistogram:
    """The log-intensity histogram of a block of any shape (merge blocks with ``+``).

    Parameters
    ----------
    block : ndarray, any shape, float
        Linear intensities.
    backend : Backend, optional
        NumPy (default) or CuPy.
    """
    backend = backend or get_backend(False)
    xp = backend.xp
    data = xp.asarray(block, dtype=xp.float32).ravel()
    positive = data[xp.isfinite(data) & (data > 0)]
    n_nonpositive = int(data.size - positive.size)
    if positive.size == 0:
        return IntensityHistogram(np.zeros(N_BINS, np.int64), n_nonpositive)
    index = xp.floor((xp.log10(positive) - LOG10_RANGE[0]) / _BIN_WIDTH)
    index = xp.clip(index, 0, N_BINS - 1).astype(xp.int64)
    counts = to_numpy(xp.bincount(index, minlength=N_BINS)).astype(np.int64)
    return IntensityHistogram(counts, n_nonpositive, float(positive.min()), float(positive.max()))


def estimate_normalization(
    histogram: IntensityHistogram,
    *,
    clip_percentile_upper: float = 99.9,
    background: BackgroundMethod = "otsu",
) -> Normalization:
    """The background threshold and the clip value of a slice, from its histogram.

    Parameters
    ----------
    histogram : IntensityHistogram
        Of the whole slice (:func:`intensity_histogram` of every block, summed).
    clip_percentile_upper : float
        Percentile (0-100] of the tissue voxels that maps to 1 (parameter
        ``clip_percentile_upper``, default 99.9).
    background : {"otsu", "none"}
        ``"otsu"``: threshold by Otsu's method on log intensity; ``"none"``:
        only non-positive voxels are background.

    Returns
    -------
    Normalization
        Always usable: without positive voxels the clip value is 1 (and
        everything becomes 0); with a single intensity there is no
        background and that intensity maps to 1.

    Raises
    ------
    ValueError
        For an unknown ``background`` or a percentile outside (0, 100].
    """
    if background not in get_args(BackgroundMethod):
        raise ValueError(f"background = {background!r}; choose one of {', '.join(get_args(BackgroundMethod))}")
    if not 0 < clip_percentile_upper <= 100:
        raise ValueError(f"clip_percentile_upper = {clip_percentile_upper}: expected a percentile in (0, 100]")
    n_total = histogram.n_positive + histogram.n_nonpositive
    if histogram.n_positive == 0:
        log.warning("no positive voxel in the slice: it normalises to zeros")
        return Normalization(0.0, 1.0, 0.0, float("nan"), n_total, "no positive voxel")
    occupied = np.flatnonzero(histogram.counts)
    reason, separability, first = "", float("nan"), 0
    if occupied[-1] - occupied[0] < 2:  # one intensity (to the bin): nothing to separate
        reason = "a single intensity: no background threshold"
        threshold = 0.0
    elif background == "otsu":
        first, separability = _otsu_bin(histogram.counts)
        threshold = float(10.0 ** (LOG10_RANGE[0] + first * _BIN_WIDTH))
    else:
        threshold = 0.0
    clip = histogram.percentile(clip_percentile_upper, first_bin=first)
    tissue = int(histogram.counts[first:].sum())
    result = Normalization(threshold, clip, tissue / n_total, separability, n_total, reason)
    log.info(
        "normalisation: background below %.4g (%.1f %% tissue, separability %.2f), %g-th percentile %.4g maps to 1",
        threshold, 100.0 * result.tissue_fraction, separability, clip_percentile_upper, clip,
    )
    return result


def apply_normalization(block, normalization: Normalization, *, backend: Backend | None = None) -> np.ndarray:
    """Apply a slice's normalisation to one block: ``min(I, c) / c``, background and non-finite to 0.

    Parameters
    ----------
    block : ndarray, any shape, float
    normalization : Normalization
        From :func:`estimate_normalization` on the block's slice.
    backend : Backend, optional
        NumPy (default) or CuPy.

    Returns
    -------
    ndarray, same shape, float32 in [0, 1], on the host
    """
    backend = backend or get_backend(False)
    xp = backend.xp
    data = xp.asarray(block, dtype=xp.float32)
    keep = xp.isfinite(data) & (data > 0) & (data >= xp.float32(normalization.background_threshold))
    out = xp.minimum(data, xp.float32(normalization.clip_value)) * xp.float32(normalization.scale)
    out = xp.where(keep, out, xp.float32(0.0))
    return to_numpy(out).astype(np.float32, copy=False)


def normalize(
    volume,
    *,
    clip_percentile_upper: float = 99.9,
    background: BackgroundMethod = "otsu",
    reference_depth: np.ndarray | None = None,
    block_planes: int = 16,
    backend: Backend | None = None,
) -> Normalized:
    """Normalise a slice volume to [0, 1] with one scale, background to 0.

    Parameters
    ----------
    volume : array-like, shape (Z, X, Y), float
        A slice (NumPy or zarr array), read ``block_planes`` planes at a time, twice.
    clip_percentile_upper, background
        As in :func:`estimate_normalization`.
    reference_depth : ndarray, shape (X, Y), int, optional
        The statistics come from the first ``reference_depth`` voxels of
        each A-line only (the attenuation compensation's
        :attr:`~serialoct.correct.attenuation.AttenuationCompensation.reference_depth`:
        below it, noise lifted by the compensation); from every voxel when None.
        The scale applies to every voxel.
    block_planes : int
        Planes per block (bounds the working memory).
    backend : Backend, optional
        NumPy (default) or CuPy.

    Returns
    -------
    Normalized

    Examples
    --------
    >>> volume = np.concatenate([np.full((2, 4, 4), 0.01), np.linspace(0.2, 1.0, 64).reshape(4, 4, 4)]).astype(np.float32)
    >>> out = normalize(volume, clip_percentile_upper=100)
    >>> float(out.volume[:2].max()), float(out.volume.max())
    (0.0, 1.0)
    """
    if block_planes < 1:
        raise ValueError(f"block_planes = {block_planes}: expected an integer >= 1")
    backend = backend or get_backend(False)
    n = volume.shape[0]
    if reference_depth is not None and np.shape(reference_depth) != tuple(volume.shape[1:]):
        raise ValueError(f"reference_depth of shape {np.shape(reference_depth)} does not match the A-lines of a volume of shape {volume.shape}")
    histogram = IntensityHistogram.empty()
    for z0 in range(0, n, block_planes):
        block = volume[z0 : z0 + block_planes]
        if reference_depth is not None:
            block = np.asarray(block)[np.arange(z0, z0 + len(block))[:, None, None] < np.asarray(reference_depth)[None]]
        histogram = histogram + intensity_histogram(block, backend=backend)
    norm = estimate_normalization(histogram, clip_percentile_upper=clip_percentile_upper, background=background)
    out = np.empty(volume.shape, np.float32)
    for z0 in range(0, n, block_planes):
        out[z0 : z0 + block_planes] = apply_normalization(volume[z0 : z0 + block_planes], norm, backend=backend)
    return Normalized(out, norm)


def _otsu_bin(counts: np.ndarray) -> tuple[int, float]:
    """Otsu's split of a histogram: (first bin of the upper class, between-class / total variance)."""
    centres = np.arange(len(counts), dtype=np.float64)
    weights = counts.astype(np.float64)
    total = weights.sum()
    w0 = np.cumsum(weights)[:-1]  # lower class = bins [0, k], k = 0 .. n-2
    m0 = np.cumsum(weights * centres)[:-1]
    mean = (weights * centres).sum() / total
    w1 = total - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mean * w0 - m0) ** 2 / (w0 * w1)
    between = np.where((w0 > 0) & (w1 > 0), between, -1.0)
    k = int(np.argmax(between))
    variance = (weights * (centres - mean) ** 2).sum()
    # between = (mean * w0 - m0)^2 / (w0 * w1) is the between-class variance itself (Otsu's eq. 18 in counts)
    separability = float(between[k] * total / variance) if variance > 0 else float("nan")
    return k + 1, separability
