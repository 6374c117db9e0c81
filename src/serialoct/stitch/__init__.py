"""Tile stitching of one slice: pair registration, global placement, blending.

Pipeline (each a pure function on arrays; :func:`stitch_slice` chains them)::

    layout = base_layout(tiles, (h, w), stage_mm=..., pixel_size_um=...)   # motor positions or nominal grid
    projections = project_tiles(tiles)                                    # 2D image per tile
    placement = plan_placement(projections, layout, params=StitchParams())
        # register_neighbours -> null_threshold -> apply_threshold -> solve_placement
    block = blend_region(get_tile, placement, (r0, r1, c0, c1), method="diffusion")

- :mod:`~serialoct.stitch.layout`: frames, nominal grid, motor positions, tile views of a mosaic grid.
- :mod:`~serialoct.stitch.correlate`: phase correlation and least-squares refinement of one lag.
- :mod:`~serialoct.stitch.pairs`: one pair of neighbours registered on its overlap strip.
- :mod:`~serialoct.stitch.threshold`: Otsu background level, NCC threshold from non-overlapping pairs.
- :mod:`~serialoct.stitch.placement`: layout affine + per-tile corrections by weighted least squares.
- :mod:`~serialoct.stitch.blend`: ``none`` / ``average`` / ``diffusion`` blending, whole or by region.
- :mod:`~serialoct.stitch.seams`: the seam-step QC metric.
- :mod:`~serialoct.stitch.global_transform`: one layout matrix pooled over many slices.
"""

from serialoct.stitch.blend import BLEND_METHODS, BlendMethod, blend_region, blend_slice, blend_weights
from serialoct.stitch.correlate import Refinement, phase_correlate, refine_shift, texture_correlation
from serialoct.stitch.global_transform import (
    GlobalTransform,
    estimate_global_transform,
    pool_slice_ids,
    register_for_global_transform,
)
from serialoct.stitch.layout import (
    TileIndex,
    base_layout,
    neighbour_pairs,
    nominal_positions_px,
    positions_from_stage_mm,
    tiles_from_mosaic,
)
from serialoct.stitch.pairs import PairShift, match_histogram, overlap_slices, project_tiles, register_neighbours, register_pair
from serialoct.stitch.placement import Placement, fit_layout_affine, solve_placement
from serialoct.stitch.seams import SeamSteps, measure_seams
from serialoct.stitch.stitch import StitchParams, Stitched, plan_placement, stitch_slice
from serialoct.stitch.threshold import NullThreshold, apply_threshold, background_level, null_threshold, otsu_threshold

__all__ = [
    "BLEND_METHODS",
    "BlendMethod",
    "GlobalTransform",
    "NullThreshold",
    "PairShift",
    "Placement",
    "Refinement",
    "SeamSteps",
    "StitchParams",
    "Stitched",
    "TileIndex",
    "apply_threshold",
    "background_level",
    "base_layout",
    "blend_region",
    "blend_slice",
    "blend_weights",
    "estimate_global_transform",
    "fit_layout_affine",
    "match_histogram",
    "measure_seams",
    "neighbour_pairs",
    "nominal_positions_px",
    "null_threshold",
    "otsu_threshold",
    "overlap_slices",
    "phase_correlate",
    "plan_placement",
    "pool_slice_ids",
    "positions_from_stage_mm",
    "project_tiles",
    "refine_shift",
    "register_for_global_transform",
    "register_neighbours",
    "register_pair",
    "solve_placement",
    "stitch_slice",
    "texture_correlation",
    "tiles_from_mosaic",
]
