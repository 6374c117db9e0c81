"""Slice quality for the automatic exclusion (step ``auto_assess_quality``).

A slice is judged by how much of its image is reproducible tissue
structure rather than random fluctuation, at the depths where it is worst.

Depth coherence
    Tissue structure (layers, fibre bundles, vessels) is continuous in
    depth over many axial voxels; detector noise is independent from voxel
    to voxel, and speckle decorrelates within about one axial resolution
    (one voxel here; the focal-curvature resampling interpolates
    neighbouring planes, which correlates even detector noise between
    planes 1 apart). So for planes ``z`` and ``z + 2`` band-passed to the
    tissue texture scale (difference of Gaussians, 1 to 4 px, which also
    removes the slow intensity envelope), the correlation over the tissue
    ``r = S / (S + N)`` is the share of the band's variance that is tissue
    structure: ``r / (1 - r)`` is the structure-to-noise ratio of the plane.
    A correlation is blind to any scale, so the measure does not depend on
    the normalisation (or on the attenuation compensation's depth gain).
Worst quarter of the depth
    A degraded slice (low signal, more noise) is not bad everywhere: near
    the cut surface the signal still beats the noise; it fails where the
    attenuated signal sinks under the detector noise, i.e. in its deeper
    part, which is exactly what the stacking joins to the top of the next
    slice. So the slice's structure-to-noise ratio is the tissue-weighted
    25th percentile over its sampled planes (planes without tissue do not
    count, so a surface plane with little tissue is no penalty).
Score
    ``min(1, snr / SNR_FULL) * min(1, tissue / TISSUE_FULL)``: full marks
    for tissue structure twice as strong as the fluctuation; an ROI without
    tissue cannot be judged and scores 0.

Calibration (normalised slices of the pipeline on ``serialoct.synth`` preset
``small``, seed 0): the normal slices have 25th-percentile coherences of
0.6-0.7 at every depth but the last plane (scores 0.76-1.0); the degraded
slice 06 (blur 2 px, gain 0.3, noise x3) keeps ~0.67 down to mid-depth,
then falls to 0 as its signal sinks under the noise (score ~0.1). The
former measure (isolated voxels, contrast, fine-scale share) scored the
degraded slice 0.54 there: attenuation compensation and the Otsu
background of the normalisation leave it about as many isolated voxels as
a normal slice. The contrast (coefficient of variation of the foreground)
and the sharpness (share of a plane's variance finer than a 1-px Gaussian)
are still reported for the QC report, but do not enter the score: on those
slices neither separates degraded from normal (the synthetic blur acts
under the speckle, which stays sharp).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from serialoct.io.tables import SliceConfigRow

__all__ = ["QualityScore", "assess_quality", "assess_slice_quality", "centre_roi"]

log = logging.getLogger(__name__)

BAND_PX = (1.0, 4.0)  # DoG band (Gaussian sigmas, px): the tissue texture scale, above the speckle grain, below the envelope
LAG_PLANES = 2  # planes apart: beyond the axial correlation of speckle and of resampled noise (1 plane)
SNR_FULL = 2.0  # structure-to-noise ratio (r / (1 - r), r = 2/3) at and above which noise is no concern
WORST_QUANTILE = 0.25  # the slice is judged by its worst quarter of depth (tissue-weighted)
TISSUE_FULL = 0.2  # tissue fraction at and above which the ROI is judged in full
TISSUE_LEVEL = 0.02  # smoothed normalised intensity that counts as tissue (background is 0)
TISSUE_SMOOTH_PX = 2.0  # the tissue mask follows the smoothed plane, not the speckle
EDGE_PX = 3  # erosion of the tissue mask: the tissue/background edge is structure of the mask, not of the tissue
MIN_TISSUE_PX = 200  # fewer tissue pixels in a plane pair: no coherence measured there
MAX_PLANES = 24  # plane pairs sampled per slice (evenly): bounds the cost on deep slices


@dataclass(frozen=True)
class QualityScore:
    """Quality of one slice.

    Attributes
    ----------
    score : float
        In [0, 1]: ``min(1, structure_snr / SNR_FULL) * min(1, tissue_fraction / TISSUE_FULL)``.
    noise_fraction : float
        ``1 - depth_coherence``: share of the texture band's variance that is
        not reproduced 2 planes deeper (noise and speckle), worst quarter.
    contrast : float
        Coefficient of variation of the foreground voxels (reported only).
    sharpness : float
        Mean share of a plane's variance finer than a 1-pixel Gaussian (reported only).
    tissue_fraction : float
        Fraction of ROI pixels with tissue (depth-mean above ``TISSUE_LEVEL``).
    roi_shape : (int, int)
        ``(rows, cols)`` of the ROI used.
    n_planes : int
        Plane pairs sampled.
    depth_coherence : float
        Tissue-weighted 25th percentile over the sampled planes of the
        correlation of band-passed planes ``z`` and ``z + 2`` (0 without tissue).
    structure_snr : float
        ``depth_coherence / (1 - depth_coherence)``.
    coherence_profile : tuple of (int, float)
        ``(z, correlation)`` of every sampled plane with tissue (for the QC report).
    """

    score: float
    noise_fraction: float
    contrast: float
    sharpness: float
    tissue_fraction: float
    roi_shape: tuple[int, int]
    n_planes: int
    depth_coherence: float = 0.0
    structure_snr: float = 0.0
    coherence_profile: tuple[tuple[int, float], ...] = ()


def centre_roi(shape: tuple[int, int], roi_size: int) -> tuple[slice, slice]:
    """Centre crop of at most ``roi_size`` x ``roi_size`` pixels (0 = the whole plane)."""
    if roi_size < 0:
        raise ValueError(f"roi_size = {roi_size}: expected >= 0 (0 = the full plane)")
    out = []
    for n in shape:
        size = n if roi_size == 0 else min(roi_size, n)
        start = (n - size) // 2
        out.append(slice(start, start + size))
    return out[0], out[1]


def _band(plane: np.ndarray) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(plane, BAND_PX[0], mode="nearest") - gaussian_filter(plane, BAND_PX[1], mode="nearest")


def _tissue(plane: np.ndarray) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(plane, TISSUE_SMOOTH_PX, mode="nearest") > TISSUE_LEVEL


def _coherence(upper: np.ndarray, lower: np.ndarray) -> tuple[float, int] | None:
    """Correlation of the band-passed planes over the tissue of both, and its pixel count."""
    from scipy.ndimage import binary_erosion

    mask = binary_erosion(_tissue(upper) & _tissue(lower), iterations=EDGE_PX)
    n = int(np.count_nonzero(mask))
    if n < MIN_TISSUE_PX:
        return None
    a, b = _band(upper)[mask], _band(lower)[mask]
    a -= a.mean()
    b -= b.mean()
    denom = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return (float((a * b).sum()) / denom if denom > 0 else 0.0), n


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values)
    values, weights = values[order], weights[order]
    cumulative = np.cumsum(weights) - 0.5 * weights  # midpoint rule: one plane alone is its own quantile
    return float(np.interp(q * weights.sum(), cumulative, values))


def _fine_share(plane: np.ndarray) -> float | None:
    from scipy.ndimage import gaussian_filter

    var = float(plane.var())
    if var <= 0:
        return None
    return float((plane - gaussian_filter(plane, 1.0, mode="nearest")).var() / var)


def assess_slice_quality(volume, *, roi_size: int = 1024) -> QualityScore:
    """Score one normalised slice by the depth coherence of its tissue texture.

    Parameters
    ----------
    volume : array-like, shape (Z, rows, cols), float
        The normalised slice (values in [0, 1], background 0); a zarr array
        is read two sampled planes at a time (the ROI only).
    roi_size : int
        Centre crop side in pixels (``auto_assess_roi_size``; 0 = full plane).

    Returns
    -------
    QualityScore

    Raises
    ------
    ValueError
        For a volume that is not 3D or has no planes.

    Notes
    -----
    For up to ``MAX_PLANES`` evenly spaced planes ``z`` (with ``z + 2`` in
    the slice; a slice of 1 or 2 planes pairs a plane with itself and so
    measures nothing but its tissue), both planes are band-passed to the
    tissue texture scale and correlated over the tissue they share (the
    module docstring says why): ``r(z) = S / (S + N)``. The slice's
    coherence is the tissue-weighted 25th percentile of ``r(z)``, its
    structure-to-noise ratio ``r / (1 - r)``, and the score
    ``min(1, snr / SNR_FULL) * min(1, tissue / TISSUE_FULL)``. Correlations
    are scale-free: multiplying the slice, or any plane, by a constant
    leaves the score unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> tissue = np.repeat(rng.random((1, 64, 64)), 12, axis=0)  # structure continuous in depth
    >>> clean = assess_slice_quality(0.2 + 0.5 * tissue + 0.05 * rng.random((12, 64, 64)))
    >>> noisy = assess_slice_quality(0.2 + 0.5 * tissue + 2.0 * rng.random((12, 64, 64)))
    >>> clean.score > 0.9 > 0.3 > noisy.score
    True
    """
    if len(volume.shape) != 3 or volume.shape[0] == 0:
        raise ValueError(f"expected a (Z, rows, cols) volume with at least one plane, got shape {tuple(volume.shape)}")
    rows, cols = centre_roi(tuple(volume.shape[1:]), roi_size)
    nz = volume.shape[0]
    lag = min(LAG_PLANES, nz - 1)
    planes = np.unique(np.linspace(0, nz - 1 - lag, min(nz - lag, MAX_PLANES)).round().astype(int))
    total = 0
    total_sum = total_sq = 0.0
    shares, depth_sum, profile, weights = [], None, [], []
    for z in planes:
        pair = np.asarray(volume[int(z) : int(z) + lag + 1 : max(lag, 1), rows, cols], dtype=np.float64)
        upper, lower = pair[0], pair[-1]
        depth_sum = upper.copy() if depth_sum is None else depth_sum + upper
        fg = upper[upper > 0]
        total += fg.size
        total_sum += float(fg.sum())
        total_sq += float((fg * fg).sum())
        share = _fine_share(upper) if fg.size else None
        if share is not None:
            shares.append(share)
        measured = _coherence(upper, lower) if lag else None
        if measured is not None:
            profile.append((int(z), measured[0]))
            weights.append(measured[1])
    mean = total_sum / total if total else 0.0
    contrast = math.sqrt(max(total_sq / total - mean * mean, 0.0)) / mean if total and mean > 0 else 0.0
    sharpness = float(np.mean(shares)) if shares else 0.0
    tissue = float(np.mean(depth_sum / len(planes) > TISSUE_LEVEL))
    if profile:
        r = _weighted_quantile(np.array([c for _, c in profile]), np.asarray(weights, np.float64), WORST_QUANTILE)
        r = min(max(r, 0.0), 1.0)
    else:
        r = 0.0
    snr = r / (1.0 - r) if r < 1.0 else math.inf
    score = min(1.0, snr / SNR_FULL) * min(1.0, tissue / TISSUE_FULL)
    return QualityScore(
        score=float(score),
        noise_fraction=1.0 - r,
        contrast=float(contrast),
        sharpness=sharpness,
        tissue_fraction=tissue,
        roi_shape=(rows.stop - rows.start, cols.stop - cols.start),
        n_planes=len(planes),
        depth_coherence=r,
        structure_snr=float(snr),
        coherence_profile=tuple((z, round(c, 4)) for z, c in profile),
    )


def assess_quality(
    scores: Mapping[str, QualityScore],
    rows: Sequence[SliceConfigRow],
    *,
    min_quality: float = 0.3,
    exclude_first: int = 1,
) -> list[SliceConfigRow]:
    """Stamp quality scores and the automatic exclusions on ``slice_config`` rows.

    Parameters
    ----------
    scores : mapping of str to QualityScore
        Per slice id; slices without a score keep ``quality_score`` as it was.
    rows : sequence of SliceConfigRow
        The input table (unchanged).
    min_quality : float
        ``auto_assess_min_quality``: a slice scoring below it is excluded.
    exclude_first : int
        ``auto_assess_exclude_first``: the first N slices of the table (by
        id; calibration slices) are excluded whatever their score.

    Returns
    -------
    list of SliceConfigRow
        Excluded slices get ``use = false`` with ``exclude_reason``
        ``low_quality`` or ``first_slice_excluded`` (the reference's words)
        and ``auto_excluded = true`` with the details in
        ``auto_exclude_reason``. An already excluded slice keeps its reason.
    """
    if not 0 <= min_quality <= 1:
        raise ValueError(f"min_quality = {min_quality}: expected a value in [0, 1]")
    if exclude_first < 0:
        raise ValueError(f"exclude_first = {exclude_first}: expected an integer >= 0")
    unknown = sorted(set(scores) - {r.slice_id for r in rows})
    if unknown:
        raise ValueError(f"scores for slice(s) {', '.join(unknown)} that are not in the slice config")
    first = set(sorted(r.slice_id for r in rows)[:exclude_first])
    out = []
    for row in rows:
        q = scores.get(row.slice_id)
        if q is not None:
            row = replace(row, quality_score=round(q.score, 4))
        if row.slice_id in first:
            reason, detail = "first_slice_excluded", f"one of the first {exclude_first} slice(s) (calibration)"
        elif q is not None and q.score < min_quality:
            reason, detail = "low_quality", f"quality {q.score:.3f} < {min_quality:g}"
        else:
            out.append(row)
            continue
        row = replace(row, use=False, exclude_reason=row.exclude_reason if not row.use and row.exclude_reason else reason,
                      auto_excluded=True, auto_exclude_reason=detail)
        out.append(row)
    excluded = [r.slice_id for r in out if r.auto_excluded and r.auto_exclude_reason.startswith("quality")]
    if excluded:
        log.info("%d slice(s) below quality %g excluded: %s", len(excluded), min_quality, ", ".join(excluded))
    return out
