"""Step ``resample_mosaic_grid``: a slice's mosaic grid to isotropic ``resolution`` µm voxels.

Tile by tile, anti-aliased; the new tile shape is the output chunk.
"""

from __future__ import annotations

import argparse

from serialoct.steps.slice_step import add_slice_arguments

PARAMETERS = ("resolution", "use_gpu", "processes")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_slice_arguments(parser, PARAMETERS, what="mosaic grid")


def run(args: argparse.Namespace) -> int:
    from serialoct.correct.resample import resample_tile_isotropic, resampled_tile_shape
    from serialoct.io.slices import open_mosaic_grid, write_mosaic_grid
    from serialoct.io.tables import Metric
    from serialoct.preproc.mosaic import MosaicLayout
    from serialoct.steps.slice_step import begin, write_step_metrics

    p, timer, backend = begin(args, PARAMETERS)
    grid = open_mosaic_grid(args.input)
    resolution = p["resolution"]
    out_tile = resampled_tile_shape(grid.tile_shape, grid.voxel_size_um, resolution_um=resolution)
    layout = MosaicLayout(out_tile, grid.grid_shape, (resolution,) * 3, grid.sharding_factor)
    holes = []

    def make_tile(ix, iy):
        tile = grid.tile(ix, iy)
        if not tile.any():
            holes.append((ix, iy))
            return None
        return resample_tile_isotropic(tile, grid.voxel_size_um, resolution_um=resolution, backend=backend)

    extra = {**grid.extra, "tile_shape": list(out_tile), "voxel_size_um": [resolution] * 3}
    write_mosaic_grid(args.output, layout, make_tile, extra=extra, workers=p["processes"])
    write_step_metrics(args, "resample_mosaic_grid", p, {
        "input_voxel_um": Metric(list(grid.voxel_size_um), "µm", "voxel (z, x, y) of the input"),
        "tile_shape": Metric(list(out_tile), "voxels", "resampled tile (z, x, y)"),
        "n_empty_tiles": Metric(len(holes), "", "all-zero tiles kept as zeros"),
    }, timer, info={"backend": backend.name})
    return 0
