"""Step ``fix_illumination``: BaSiC flat-field and darkfield of a slice, removed tile by tile.

Pass 1 pools every tile over depth (its mean image and dimmest planes) and
fits one flat-field and darkfield for the slice; pass 2 applies them to every
depth plane of every tile, so the correction cannot band. A slice the fit
cannot use (too few tiles with signal) is copied unchanged, with the reason
in the metrics.
"""

from __future__ import annotations

import argparse

from serialoct.steps.slice_step import add_slice_arguments

PARAMETERS = ("use_gpu", "processes")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_slice_arguments(parser, PARAMETERS, what="mosaic grid")


def run(args: argparse.Namespace) -> int:
    from serialoct.correct.illumination import apply_illumination, estimate_illumination, pool_tile
    from serialoct.io.slices import open_mosaic_grid, write_mosaic_grid
    from serialoct.io.tables import Metric
    from serialoct.preproc.mosaic import MosaicLayout
    from serialoct.steps.slice_step import begin, write_step_metrics

    p, timer, backend = begin(args, PARAMETERS)
    grid = open_mosaic_grid(args.input)
    pooled = [pool_tile(grid.tile(ix, iy), backend=backend) for ix, iy in grid.indices()]
    fit = estimate_illumination(pooled, backend=backend)

    def make_tile(ix, iy):
        tile = grid.tile(ix, iy)
        return apply_illumination(tile, fit, backend=backend) if tile.any() else None

    layout = MosaicLayout(grid.tile_shape, grid.grid_shape, grid.voxel_size_um, grid.sharding_factor)
    write_mosaic_grid(args.output, layout, make_tile, extra=grid.extra, workers=p["processes"])
    low, high = fit.flatfield_range
    write_step_metrics(args, "fix_illumination", p, {
        "flatfield_min": Metric(round(float(low), 4), "", "smallest flat-field gain (mean 1)"),
        "flatfield_max": Metric(round(float(high), 4), "", "largest flat-field gain (mean 1)"),
        "darkfield_mean": Metric(round(float(fit.darkfield.mean()), 6), "intensity", "mean darkfield offset"),
        "tiles_used": Metric(fit.n_tiles_used, "", "tiles the fit pooled"),
        "fitted": Metric(fit.fitted, "", "flat-field fitted (else identity)", "ok" if fit.fitted else "warning"),
    }, timer, warnings=() if fit.fitted else (f"illumination not corrected: {fit.reason}",))
    return 0
