"""Automatic slice quality assessment (step ``auto_assess_quality``).

Works on a normalised slice (``correct.normalize``: one scale per slice to
[0, 1], background exactly 0), restricted to a centre ROI of
``auto_assess_roi_size`` pixels (0 = the full plane). Four measurements,
each mapped to a term in [0, 1]:

noise (the one that ranks ordinary slices)
    Fraction of foreground voxels with no foreground 4-neighbour in their
    plane. Normalisation zeroes everything below the background threshold;
    on a slice with poor signal-to-noise ratio (low gain, defocus, more
    detector noise) noise spikes poke above that threshold in the water and
    at depth as isolated voxels, while tissue, even speckled, comes in
    connected patches. Term ``exp(-fraction / 0.03)``.
contrast
    Coefficient of variation of the foreground voxels; a flat, washed-out
    slice has little. Term ``min(1, cv / 0.25)``.
sharpness
    Share of each plane's variance above the scale of a 1-pixel Gaussian
    (``var(p - G_1 p) / var(p)``); a featureless slice has none. Term
    ``min(1, share / 0.05)``.
tissue fraction
    Fraction of ROI pixels whose depth-mean is above 0.02; an ROI without
    tissue cannot be judged. Term ``min(1, fraction / 0.2)``.

The score is their product: any one failing sinks it. Calibration on
``serialoct.synth`` (preset ``small``, seed 0, central 2x2 tiles, normalised):
normal slices have isolated fractions 0.009-0.018 (score 0.54-0.74); the
degraded slice (blur 2 px, gain 0.3, noise x3) has 0.055 (score 0.16); the
contrast (cv 0.59-0.79), sharpness (0.23-0.48) and tissue (0.92-1.0) terms
are 1 on all of them, so they act as gates against empty or flat slices.
Note that the synthetic blur acts under the speckle (speckle is applied
after it), so it barely changes the image's sharpness; what marks the
degraded slice is its signal-to-noise ratio.
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

NOISE_SCALE = 0.03  # isolated-voxel fraction at which the noise term falls to 1/e
CONTRAST_FULL = 0.25  # foreground CV at and above which contrast is no concern
SHARPNESS_FULL = 0.05  # fine-scale variance share at and above which sharpness is no concern
TISSUE_FULL = 0.2  # tissue fraction at and above which the ROI is judged in full
TISSUE_LEVEL = 0.02  # depth-mean normalised intensity that counts as tissue
MAX_PLANES = 48  # planes sampled per slice (evenly): bounds the cost on deep slices


@dataclass(frozen=True)
class QualityScore:
    """Quality of one slice.

    Attributes
    ----------
    score : float
        In [0, 1], the product of the four terms.
    noise_fraction : float
        Isolated foreground voxels / foreground voxels.
    contrast : float
        Coefficient of variation of the foreground voxels.
    sharpness : float
        Mean share of a plane's variance finer than a 1-pixel Gaussian.
    tissue_fraction : float
        Fraction of ROI pixels with tissue.
    roi_shape : (int, int)
        ``(rows, cols)`` of the ROI used.
    n_planes : int
        Planes sampled.
    """

    score: float
    noise_fraction: float
    contrast: float
    sharpness: float
    tissue_fraction: float
    roi_shape: tuple[int, int]
    n_planes: int


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


def _isolated(plane: np.ndarray) -> tuple[int, int]:
    """(isolated, total) foreground pixels: no 4-neighbour in the foreground."""
    fg = plane > 0
    padded = np.pad(fg, 1)
    neighbours = padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:]
    return int(np.count_nonzero(fg & ~neighbours)), int(np.count_nonzero(fg))


def _fine_share(plane: np.ndarray) -> float | None:
    from scipy.ndimage import gaussian_filter

    var = float(plane.var())
    if var <= 0:
        return None
    return float((plane - gaussian_filter(plane, 1.0, mode="nearest")).var() / var)


def assess_slice_quality(volume, *, roi_size: int = 1024) -> QualityScore:
    """Score one normalised slice.

    Parameters
    ----------
    volume : array-like, shape (Z, rows, cols), float
        The normalised slice (values in [0, 1], background 0); a zarr array
        is read one sampled plane at a time (the ROI only).
    roi_size : int
        Centre crop side in pixels (``auto_assess_roi_size``; 0 = full plane).

    Returns
    -------
    QualityScore

    Raises
    ------
    ValueError
        For a volume that is not 3D or has no planes.
    """
    if len(volume.shape) != 3 or volume.shape[0] == 0:
        raise ValueError(f"expected a (Z, rows, cols) volume with at least one plane, got shape {tuple(volume.shape)}")
    rows, cols = centre_roi(tuple(volume.shape[1:]), roi_size)
    nz = volume.shape[0]
    planes = np.unique(np.linspace(0, nz - 1, min(nz, MAX_PLANES)).round().astype(int))
    isolated = total = 0
    total_sum = total_sq = 0.0
    shares, depth_sum = [], None
    for z in planes:
        plane = np.asarray(volume[int(z), rows, cols], dtype=np.float64)
        depth_sum = plane.copy() if depth_sum is None else depth_sum + plane
        i, t = _isolated(plane)
        isolated, total = isolated + i, total + t
        fg = plane[plane > 0]
        total_sum += float(fg.sum())
        total_sq += float((fg * fg).sum())
        share = _fine_share(plane) if t else None
        if share is not None:
            shares.append(share)
    noise = isolated / total if total else 1.0
    mean = total_sum / total if total else 0.0
    contrast = math.sqrt(max(total_sq / total - mean * mean, 0.0)) / mean if total and mean > 0 else 0.0
    sharpness = float(np.mean(shares)) if shares else 0.0
    tissue = float(np.mean(depth_sum / len(planes) > TISSUE_LEVEL))
    score = (math.exp(-noise / NOISE_SCALE) * min(1.0, contrast / CONTRAST_FULL)
             * min(1.0, sharpness / SHARPNESS_FULL) * min(1.0, tissue / TISSUE_FULL))
    return QualityScore(
        score=float(score),
        noise_fraction=float(noise),
        contrast=float(contrast),
        sharpness=sharpness,
        tissue_fraction=tissue,
        roi_shape=(rows.stop - rows.start, cols.stop - cols.start),
        n_planes=len(planes),
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
