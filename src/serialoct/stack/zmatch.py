"""Depth overlap of consecutive slices: expected from the cut thickness, or matched by correlation.

Each slice images its cut thickness ``T`` and some depth below it, so plane
``d = T / r`` of slice ``k`` (``r`` the voxel) images the same tissue as
plane 0 of slice ``k + 1``. The true offset differs from ``d`` when the cut
or the interface crop is off by a few planes. :func:`match_z_offset` looks
for the plane of the upper slice whose normalised cross-correlation (NCC)
with the lower slice's top plane is highest, within a search window, and
falls back to the expected offset when the best NCC is too low to trust
(``z_overlap_min_corr``). The same search, limited to planes *below* the
expected boundary, is the guide's z-blend refinement
(``stack_blend_z_refine_vox``).

Planes are compared after both slices are warped into the common canvas
(:func:`serialoct.stack.render.warp_to_canvas`), over the pixels where both
hold tissue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["ZMatch", "expected_z_offset", "match_z_offset", "ncc"]

logger = logging.getLogger(__name__)

#: Light smoothing (pixels) before correlating planes: speckle is independent
#: from plane to plane, the tissue is not.
SMOOTH_SIGMA_PX = 1.0
#: Fewer overlapping pixels than this make an NCC meaningless.
MIN_PIXELS = 64


@dataclass(frozen=True)
class ZMatch:
    """Where the lower slice's plane 0 lies in the upper slice.

    Attributes
    ----------
    offset_planes : int
        Plane of the upper slice that images the lower slice's plane 0.
    expected_planes : int
    ncc : float
        NCC at ``offset_planes`` (NaN when nothing could be compared).
    matched : bool
        False: the expected offset was kept (``reason`` says why).
    reason : str
    """

    offset_planes: int
    expected_planes: int
    ncc: float
    matched: bool
    reason: str = ""


def expected_z_offset(slice_thickness_um: float, voxel_um: float) -> int:
    """Planes between consecutive slices' top planes: ``round(T / r)``.

    Raises
    ------
    ValueError
        When either is not positive.
    """
    if not (slice_thickness_um > 0 and voxel_um > 0):
        raise ValueError(f"slice thickness {slice_thickness_um} µm and voxel {voxel_um} µm must both be > 0")
    return int(round(slice_thickness_um / voxel_um))


def ncc(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Normalised cross-correlation of two same-shape arrays (over ``mask``), NaN when undefined."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if mask is not None:
        a, b = a[mask], b[mask]
    if a.size < 2:
        return float("nan")
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt(np.sum(a * a) * np.sum(b * b))
    return float(np.sum(a * b) / den) if den > 0 else float("nan")


def match_z_offset(
    upper: np.ndarray,
    lower_top: np.ndarray,
    *,
    expected_planes: int,
    search_planes: tuple[int, int],
    min_ncc: float = 0.5,
    upper_start: int = 0,
) -> ZMatch:
    """Find the plane of the upper slice that best matches the lower slice's top plane.

    Parameters
    ----------
    upper : ndarray, shape (Z, H, W)
        Planes ``upper_start ..`` of the upper slice, in the canvas.
    lower_top : ndarray, shape (H, W)
        Plane 0 of the lower slice, in the canvas.
    expected_planes : int
        The expected offset (:func:`expected_z_offset`).
    search_planes : (int, int)
        Offsets tried relative to ``expected_planes``, inclusive: ``(-w, w)``
        for correlation matching, ``(0, stack_blend_z_refine_vox)`` for the
        blend refinement. Clipped to the planes present.
    min_ncc : float
        Below this best NCC the expected offset is kept.
    upper_start : int
        Index in the upper slice of ``upper[0]`` (a caller reads only the
        planes it searches).

    Returns
    -------
    ZMatch
        Never raises for data that does not match: ``matched=False`` with the reason.
    """
    lo, hi = search_planes
    if lo > hi:
        raise ValueError(f"search_planes = {search_planes}: expected (low, high) with low <= high")
    if upper.ndim != 3 or upper.shape[1:] != lower_top.shape:
        raise ValueError(f"upper has shape {upper.shape} and lower_top {lower_top.shape}: expected (Z, H, W) and (H, W)")
    ref = ndimage.gaussian_filter(np.asarray(lower_top, dtype=np.float32), SMOOTH_SIGMA_PX)
    candidates = [z for z in range(expected_planes + lo, expected_planes + hi + 1) if 0 <= z - upper_start < len(upper)]
    scores: dict[int, float] = {}
    for z in candidates:
        plane = ndimage.gaussian_filter(np.asarray(upper[z - upper_start], dtype=np.float32), SMOOTH_SIGMA_PX)
        mask = (lower_top != 0) & (upper[z - upper_start] != 0)
        if mask.sum() >= MIN_PIXELS:
            scores[z] = ncc(plane, ref, mask)
    scores = {z: s for z, s in scores.items() if np.isfinite(s)}
    if not scores:
        return ZMatch(expected_planes, expected_planes, float("nan"), False, "no overlapping planes to compare")
    best = max(scores, key=scores.__getitem__)
    if scores[best] < min_ncc:
        reason = f"best NCC {scores[best]:.3f} (plane {best}) < {min_ncc}"
        logger.info("z-match: %s; expected offset %d kept", reason, expected_planes)
        return ZMatch(expected_planes, expected_planes, scores.get(expected_planes, float("nan")), False, reason)
    return ZMatch(best, expected_planes, scores[best], True)
