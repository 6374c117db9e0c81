"""Stitch one slice: register neighbours, set the threshold, place the tiles, blend.

:func:`plan_placement` does the cheap part on 2D projections and returns a
:class:`~serialoct.stitch.placement.Placement`; a caller with little memory
then renders the output block by block with
:func:`~serialoct.stitch.blend.blend_region`. :func:`stitch_slice` does it all
in memory and returns a :class:`Stitched`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from serialoct.compute import Backend
from serialoct.stitch.blend import BLEND_METHODS, BlendMethod, blend_slice
from serialoct.stitch.layout import TileIndex
from serialoct.stitch.pairs import project_tiles, register_neighbours
from serialoct.stitch.placement import Placement, solve_placement
from serialoct.stitch.threshold import apply_threshold, null_threshold

__all__ = ["StitchParams", "Stitched", "plan_placement", "stitch_slice"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StitchParams:
    """Options of :func:`stitch_slice` (the guide's names in brackets).

    Attributes
    ----------
    blending : {"none", "average", "diffusion"}
        How overlaps are merged (``stitch_blending_method``).
    max_refinement_px : float
        Largest correction of a tile's position along each axis, and the
        registration's search range (``max_blend_refinement_px``).
    z_range : (int, int) or None
        Depth planes averaged into the 2D images that are registered
        (default: all).
    n_null_pairs : int
        Non-overlapping pairs drawn to set the correlation threshold.
    null_quantile : float
        Quantile of their correlations used as the threshold.
    max_residual_px : float
        Largest residual an accepted pair may keep in the global solve.
    seed : int
        Seeds the draw of null pairs.
    """

    blending: BlendMethod = "diffusion"
    max_refinement_px: float = 10.0
    z_range: tuple[int, int] | None = None
    n_null_pairs: int = 100
    null_quantile: float = 0.99
    max_residual_px: float = 2.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.blending not in BLEND_METHODS:
            raise ValueError(f"unknown blending method {self.blending!r}; choose one of {', '.join(BLEND_METHODS)}")
        if not self.max_refinement_px >= 0:
            raise ValueError(f"max_refinement_px = {self.max_refinement_px}: expected a number >= 0")
        if not 0 < self.null_quantile <= 1:
            raise ValueError(f"null_quantile = {self.null_quantile}: expected 0 < value <= 1")
        if self.n_null_pairs < 0 or not self.max_residual_px > 0:
            raise ValueError(f"n_null_pairs = {self.n_null_pairs}, max_residual_px = {self.max_residual_px}: expected >= 0 and > 0")


@dataclass(frozen=True, eq=False)
class Stitched:
    """A stitched slice.

    Attributes
    ----------
    image : ndarray, shape (Z, H, W), float32
        The blended slice; 0 where no tile reaches.
    placement : Placement
        Tile positions and QC (``placement.metrics()``).
    """

    image: np.ndarray
    placement: Placement

    @property
    def positions_px(self) -> np.ndarray:
        """Top-left of each tile on the image, ``(row, col)``, shape (N, 2), in ``placement.tiles`` order."""
        return self.placement.positions_px


def plan_placement(
    projections: Mapping[TileIndex, np.ndarray],
    layout_px: Mapping[TileIndex, np.ndarray],
    *,
    params: StitchParams = StitchParams(),
    affine: np.ndarray | None = None,
    backend: Backend | None = None,
) -> Placement:
    """Tile positions of a slice from its 2D projections (the cheap, bounded-memory part).

    Parameters
    ----------
    projections : mapping of (ix, iy) to ndarray, shape (h, w)
        One 2D image per tile (:func:`~serialoct.stitch.pairs.project_tiles`).
    layout_px : mapping of (ix, iy) to (float, float)
        Base layout (:func:`~serialoct.stitch.layout.base_layout`); tiles
        without a projection are left out.
    params : StitchParams
    affine : ndarray, shape (2, 2), optional
        Pooled layout matrix (:func:`~serialoct.stitch.global_transform.estimate_global_transform`);
        fitted on this slice when None.
    backend : Backend, optional

    Returns
    -------
    Placement

    Raises
    ------
    ValueError
        Without projections, or when the projections differ in shape.
    """
    if not projections:
        raise ValueError("no tiles to stitch")
    shapes = {tuple(p.shape) for p in projections.values()}
    if len(shapes) != 1:
        raise ValueError(f"tiles differ in shape: {sorted(shapes)}")
    layout = {k: layout_px[k] for k in projections if k in layout_px}
    pairs = register_neighbours(projections, layout, max_shift_px=params.max_refinement_px, backend=backend)
    null = null_threshold(projections, layout, n_pairs=params.n_null_pairs, quantile=params.null_quantile,
                          max_shift_px=params.max_refinement_px, rng=params.seed, backend=backend)
    pairs = apply_threshold(pairs, null.threshold)
    placement = solve_placement(pairs, layout, shapes.pop(), affine=affine, max_refinement_px=params.max_refinement_px,
                                max_residual_px=params.max_residual_px, ncc_threshold=null.threshold)
    metrics = placement.metrics()
    log.info("%d of %d pairs accepted (ncc >= %.3f), residual rms %.2f px", metrics["n_accepted"], metrics["n_pairs"],
             null.threshold, placement.residual_rms_px)
    return placement


def stitch_slice(
    tiles: Mapping[TileIndex, np.ndarray],
    layout_px: Mapping[TileIndex, np.ndarray],
    *,
    params: StitchParams = StitchParams(),
    affine: np.ndarray | None = None,
    backend: Backend | None = None,
) -> Stitched:
    """Stitch one slice in memory: :func:`plan_placement` on the depth projections, then blend.

    Parameters
    ----------
    tiles : mapping of (ix, iy) to ndarray, shape (Z, h, w), float32
        The slice's tiles (e.g. :func:`~serialoct.stitch.layout.tiles_from_mosaic`).
    layout_px : mapping of (ix, iy) to (float, float)
        Base layout in pixels.
    params : StitchParams
    affine : ndarray, shape (2, 2), optional
        Pooled layout matrix; fitted on this slice when None.
    backend : Backend, optional

    Returns
    -------
    Stitched

    Examples
    --------
    >>> from serialoct.synth import plan_acquisition, preset, render_tile
    >>> from serialoct.stitch import base_layout
    >>> plan = plan_acquisition(preset("tiny"), seed=0)
    >>> tiles = {(ix, iy): render_tile(plan, 1, ix, iy, flat_field=False) for ix in range(2) for iy in range(2)}
    >>> result = stitch_slice(tiles, base_layout(tiles, (48, 48)))
    >>> result.image.shape[0], result.placement.canvas_shape[0] > 48
    (32, True)
    """
    projections = project_tiles(tiles, z_range=params.z_range, backend=backend)
    placement = plan_placement(projections, layout_px, params=params, affine=affine, backend=backend)
    return Stitched(blend_slice(tiles, placement, method=params.blending, backend=backend), placement)
