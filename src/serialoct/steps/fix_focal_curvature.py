"""Step ``fix_focal_curvature``: remove the within-tile focal-curvature bowl of a slice.

Pass 1 detects the surface of every tile; the bowl common to all tiles is
separated from the tissue's own shape. Pass 2 shifts each A-line up by the
bowl, tile by tile. When the bowl cannot be estimated (too few tiles with a
surface) the slice is copied unchanged and the metrics say why.
"""

from __future__ import annotations

import argparse

from serialoct.steps.slice_step import add_slice_arguments

PARAMETERS = ("use_gpu", "processes")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_slice_arguments(parser, PARAMETERS, what="resampled mosaic grid")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from serialoct.correct.curvature import estimate_focal_curvature, fix_focal_curvature
    from serialoct.correct.interface import detect_surface
    from serialoct.io.slices import open_mosaic_grid, write_mosaic_grid
    from serialoct.io.tables import Metric
    from serialoct.preproc.mosaic import MosaicLayout
    from serialoct.steps.slice_step import begin, write_step_metrics

    p, timer, backend = begin(args, PARAMETERS)
    grid = open_mosaic_grid(args.input)
    z, h, w = grid.tile_shape
    surface = np.full((grid.grid_shape[0] * h, grid.grid_shape[1] * w), np.nan, np.float32)
    for ix, iy in grid.indices():
        tile = grid.tile(ix, iy)
        if tile.any():
            surface[ix * h : (ix + 1) * h, iy * w : (iy + 1) * w] = detect_surface(tile, backend=backend).depth_vox
    fit = estimate_focal_curvature(surface, (h, w))
    bowl = fit.bowl_vox if fit.reliable else None

    def make_tile(ix, iy):
        tile = grid.tile(ix, iy)
        if not tile.any():
            return None
        return tile if bowl is None else fix_focal_curvature(tile, bowl, backend=backend)

    layout = MosaicLayout(grid.tile_shape, grid.grid_shape, grid.voxel_size_um, grid.sharding_factor)
    write_mosaic_grid(args.output, layout, make_tile, extra={**grid.extra, "focal_curvature_bowl_vox": fit.bowl_vox},
                      workers=p["processes"])
    write_step_metrics(args, "fix_focal_curvature", p, {
        "bowl_amplitude_vox": Metric(round(fit.amplitude_vox, 3), "voxels", "depth range of the removed bowl"),
        "residual_rms_vox": Metric(round(fit.residual_rms_vox, 3), "voxels", "surface scatter about planes + bowl"),
        "tiles_pooled": Metric(fit.n_tiles, "", "tiles whose surface the bowl was pooled from"),
        "applied": Metric(fit.reliable, "", "bowl removed", "ok" if fit.reliable else "warning"),
    }, timer, warnings=() if fit.reliable else (f"focal curvature not corrected: {fit.reason}",))
    return 0
