"""Reading a mosaic grid into what the stitcher takes: tile projections and the base layout."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SliceTiles", "load_slice_tiles"]


@dataclass(frozen=True, eq=False)
class SliceTiles:
    """One slice ready to stitch: lazy tiles, their 2D projections and the base layout (px)."""

    grid: object
    tiles: dict
    projections: dict
    layout_px: dict


def load_slice_tiles(path, config, *, backend=None) -> SliceTiles:
    """Open a mosaic grid and compute its projections and base layout.

    ``config`` holds ``use_motor_positions_for_stitching`` and ``stitch_overlap_fraction``.
    Tiles whose samples are all zero (never acquired) are left out.
    """
    from serialoct.io.slices import open_mosaic_grid
    from serialoct.stitch.layout import base_layout, tiles_from_mosaic
    from serialoct.stitch.pairs import project_tiles

    grid = open_mosaic_grid(path)
    _, h, w = grid.tile_shape
    tiles = tiles_from_mosaic(grid.array, (h, w))
    projections = project_tiles(tiles, backend=backend)
    empty = [t for t, image in projections.items() if not np.any(image)]
    for t in empty:
        del tiles[t], projections[t]
    stage = grid.extra.get("stage_positions_mm")
    stage_mm = {tuple(int(i) for i in key.split(",")): tuple(xy) for key, xy in stage.items()} if stage else None
    layout = base_layout(
        list(projections), (h, w), stage_mm=stage_mm, pixel_size_um=grid.voxel_size_um[1:],
        use_motor_positions=config["use_motor_positions_for_stitching"], overlap_fraction=config["stitch_overlap_fraction"],
    )
    return SliceTiles(grid, tiles, projections, layout)
