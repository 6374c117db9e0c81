"""Step ``preview_mosaic_grid``: orthogonal views of a mosaic grid, as a PNG.

Reads only the three central sections, never the whole slice.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="mosaic_grid_3d_zNN.ome.zarr")
    parser.add_argument("--output", required=True, help="mosaic_grid_zNN_preview.png to write")


def run(args: argparse.Namespace) -> int:
    from serialoct.io.images import write_png
    from serialoct.io.omezarr import open_ome_zarr
    from serialoct.report.previews import orthogonal_views

    image = open_ome_zarr(args.input)
    voxel = image.voxel_size_mm()
    write_png(args.output, orthogonal_views(image.level(0), z_aspect=voxel[0] / voxel[1]))
    return 0
