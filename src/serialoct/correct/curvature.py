"""Focal curvature: the bowl that every tile of a mosaic grid shares, estimated and flattened.

The scan lens images a curved focal surface: within each tile the whole image
(surface included) sits deeper towards the tile's edges by the same amount in
every tile. The apparent surface of tile ``t`` is therefore

    s_t(x, y) = a_t + g_t . (x, y) + c(x, y) + e_t(x, y)

with the cut plane of the slice (an offset and a tilt, ``a_t + g_t . (x, y)``
seen through the tile), the bowl ``c`` shared by all tiles, and the tissue's
own relief and detection noise ``e_t``. :func:`estimate_focal_curvature`
separates ``c`` by pooling the tiles; :func:`fix_focal_curvature` moves every
A-line up by ``c`` with sub-voxel linear interpolation.

Typical use on a mosaic grid (formats.md §2), one shard at a time if needed::

    surface = detect_surface(mosaic, tile_size_px=(h, w))
    fit = estimate_focal_curvature(surface.depth_vox, (h, w))
    flat = fix_focal_curvature(mosaic, fit.bowl_vox)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from serialoct.compute import Backend
from serialoct.correct.interface import sample_alines

__all__ = ["CurvatureFit", "estimate_focal_curvature", "fix_focal_curvature"]

log = logging.getLogger(__name__)

_MAD_TO_SD = 1.4826
#: Residuals further than this many robust standard deviations from a tile's plane are outliers
#: (tissue edges, torn tissue, a wrong detection), but never closer than one voxel.
_OUTLIER_SIGMAS = 3.0
_ALTERNATIONS = 3  # plane <-> bowl refits; the estimate settles after two


@dataclass(frozen=True)
class CurvatureFit:
    """The focal-curvature bowl shared by the tiles of a slice.

    Attributes
    ----------
    bowl_vox : ndarray, shape (h, w), float32
        Depth offset of the image in axial voxels, minimum 0 (every A-line
        is moved up, so no tissue leaves the bottom of the tile); all zeros
        when ``reliable`` is False.
    amplitude_vox : float
        ``bowl_vox.max()``: the depth range the bowl spans.
    residual_rms_vox : float
        RMS of the surface left after removing each tile's plane and the
        bowl, over the pixels used (detection noise plus tissue relief).
    n_tiles : int
        Tiles pooled.
    reliable : bool
        False when too few tiles had a surface; the bowl is then zero.
    reason : str
        Why the fit is unreliable ("" when reliable).
    """

    bowl_vox: np.ndarray
    amplitude_vox: float
    residual_rms_vox: float
    n_tiles: int
    reliable: bool
    reason: str = ""


def _design(h: int, w: int, degree: int) -> np.ndarray:
    """Monomials ``u^i v^j`` (``i + j <= degree``) on ``u, v`` in [-1, 1], shape (h * w, n_terms)."""
    u = np.linspace(-1.0, 1.0, h)[:, None] * np.ones((1, w))
    v = np.ones((h, 1)) * np.linspace(-1.0, 1.0, w)[None, :]
    terms = [u**i * v**j for total in range(degree + 1) for i in range(total + 1) for j in [total - i]]
    return np.stack([t.ravel() for t in terms], axis=1)


def _fit_plane(surface: np.ndarray, plane_design: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Robust least-squares plane of one tile's pixels (NaN ignored); returns (plane, inlier mask)."""
    values = surface.ravel()
    use = np.isfinite(values)
    plane = np.zeros_like(values)
    for _ in range(2):
        coef, *_ = np.linalg.lstsq(plane_design[use], values[use], rcond=None)
        plane = plane_design @ coef
        residual = values - plane
        spread = _MAD_TO_SD * np.median(np.abs(residual[use] - np.median(residual[use])))
        use = np.isfinite(values) & (np.abs(residual) <= max(_OUTLIER_SIGMAS * spread, 1.0))
    return plane.reshape(surface.shape), use.reshape(surface.shape)


def estimate_focal_curvature(
    surface_vox: np.ndarray,
    tile_size_px: tuple[int, int],
    *,
    degree: int = 4,
    min_valid_fraction: float = 0.5,
    min_tiles: int = 3,
) -> CurvatureFit:
    """Estimate the within-tile focal-curvature bowl from a mosaic grid's surface.

    Parameters
    ----------
    surface_vox : ndarray, shape (rows, cols)
        Surface depth of a mosaic grid (:func:`~serialoct.correct.interface.detect_surface`
        with ``tile_size_px``), NaN where none was found; tiles pasted edge
        to edge (formats.md §2).
    tile_size_px : (int, int)
        ``(h, w)`` of a tile.
    degree : int
        Total degree of the 2-D polynomial the pooled bowl is smoothed with
        (4: a paraboloid plus the next even and odd terms).
    min_valid_fraction : float
        A tile is pooled when at least this share of its pixels has a surface.
    min_tiles : int
        Fewer pooled tiles than this gives an unreliable fit and a zero bowl.

    Returns
    -------
    CurvatureFit

    Notes
    -----
    Alternating robust fits, with the model in the module docstring:

    1. per tile, a least-squares plane of ``s_t - c`` (two passes, residuals
       beyond 3 robust sd and 1 voxel dropped), ``c = 0`` at first;
    2. ``c`` = the per-pixel median over tiles of ``s_t - plane_t`` (the
       tissue's relief differs from tile to tile, the bowl does not), then a
       degree-``degree`` polynomial least-squares fit of it;
    3. repeat; refitting the planes with the bowl removed keeps a tile whose
       surface is only partly found from tilting its plane to follow the bowl.

    What is linear in ``c`` is indistinguishable, tile by tile, from a tilt of
    the cut plane, and the planes absorb it: the bowl holds the curvature,
    the tilt stays with the tissue (it is continuous across tiles, so leaving
    it in the image does not create seams). The constant is fixed by setting
    the bowl's minimum to 0.
    """
    surface = np.asarray(surface_vox, dtype=np.float64)
    h, w = tile_size_px
    rows, cols = surface.shape
    if rows % h or cols % w:
        raise ValueError(f"surface of {rows} x {cols} pixels is not a whole number of {h} x {w} tiles")
    if degree < 2:
        raise ValueError(f"degree = {degree}: expected at least 2 (a bowl is quadratic)")
    tiles = surface.reshape(rows // h, h, cols // w, w).transpose(0, 2, 1, 3).reshape(-1, h, w)
    keep = [t for t in tiles if np.isfinite(t).mean() >= min_valid_fraction]
    if len(keep) < min_tiles:
        reason = f"{len(keep)} of {len(tiles)} tiles have a surface on >= {min_valid_fraction:.0%} of their pixels; need {min_tiles}"
        log.warning("focal curvature not estimated: %s", reason)
        return CurvatureFit(np.zeros((h, w), np.float32), 0.0, float("nan"), len(keep), False, reason)
    stack = np.stack(keep)
    design = _design(h, w, degree)
    plane_design = design[:, :3]  # 1, v, u (the first three monomials)
    bowl = np.zeros((h, w))
    for _ in range(_ALTERNATIONS):
        planes, inliers = zip(*(_fit_plane(t - bowl, plane_design) for t in stack))
        residual = np.where(np.stack(inliers), stack - np.stack(planes), np.nan)
        pooled = np.nanmedian(residual, axis=0)
        use = np.isfinite(pooled).ravel()
        coef, *_ = np.linalg.lstsq(design[use], pooled.ravel()[use], rcond=None)
        bowl = (design @ coef).reshape(h, w)
    rms = float(np.sqrt(np.nanmean((residual - bowl[None]) ** 2)))
    bowl -= bowl.min()
    fit = CurvatureFit(bowl.astype(np.float32), float(bowl.max()), rms, len(keep), True)
    log.info("focal curvature: bowl of %.2f voxels from %d tiles (residual %.2f voxels RMS)", fit.amplitude_vox, fit.n_tiles, rms)
    return fit


def fix_focal_curvature(volume: np.ndarray, bowl_vox: np.ndarray, *, backend: Backend | None = None) -> np.ndarray:
    """Move every A-line up by the bowl, so the focal surface (and the tissue surface with it) is flat.

    Parameters
    ----------
    volume : ndarray, shape (Z, rows, cols)
        A tile, or whole tiles of a mosaic grid pasted edge to edge (a shard
        or the whole grid): ``rows`` and ``cols`` multiples of the bowl's shape.
    bowl_vox : ndarray, shape (h, w)
        :attr:`CurvatureFit.bowl_vox`.
    backend : Backend, optional
        NumPy (default) or CuPy.

    Returns
    -------
    ndarray, shape (Z, rows, cols), float32
        ``out[z] = volume[z + bowl]`` per A-line (linear interpolation); the
        bottom ``bowl`` voxels of each A-line, which held no data, repeat its
        last recorded voxel (usually the noise floor; zeros would look like
        a dark vignette to the flat-field estimation that follows).

    Examples
    --------
    >>> from serialoct.synth import plan_acquisition, preset, render_tile
    >>> plan = plan_acquisition(preset("tiny"), seed=0)
    >>> tile = render_tile(plan, "01", 0, 0)
    >>> fix_focal_curvature(tile, plan.curvature_vox).shape
    (32, 48, 48)
    """
    bowl = np.asarray(bowl_vox, dtype=np.float32)
    h, w = bowl.shape
    n_z, rows, cols = volume.shape
    if rows % h or cols % w:
        raise ValueError(f"volume of {rows} x {cols} pixels is not a whole number of {h} x {w} tiles (the bowl's shape)")
    return sample_alines(volume, np.tile(bowl, (rows // h, cols // w)), n_z, fill="edge", backend=backend)
