"""Step ``generate_aip``: average-intensity projection of a mosaic grid, as a PNG.

The projection is the mean over depth, computed one shard row at a time so
memory stays bounded by a shard row whatever the slice size.
"""

from __future__ import annotations

import argparse

from serialoct.steps.options import add_parameter_options, parameters_from_args

WORKFLOW = "preproc"
PARAMETERS = ("use_gpu",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="mosaic_grid_3d_zNN.ome.zarr")
    parser.add_argument("--output", required=True, help="aip_zNN.png to write")
    add_parameter_options(parser, WORKFLOW, PARAMETERS)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from serialoct.compute import apply_cpu_limits, get_backend, to_numpy
    from serialoct.io.images import write_png
    from serialoct.io.omezarr import open_ome_zarr
    from serialoct.report.previews import to_uint8

    p = parameters_from_args(args, WORKFLOW, PARAMETERS)
    apply_cpu_limits()
    xp = get_backend(p["use_gpu"]).xp
    array = open_ome_zarr(args.input).level(0)
    step = (array.shards or array.chunks)[1]
    aip = np.zeros(array.shape[1:], dtype=np.float32)
    for r0 in range(0, array.shape[1], step):
        block = xp.asarray(array[:, r0 : r0 + step, :])
        aip[r0 : r0 + step] = to_numpy(block.mean(axis=0, dtype=xp.float32))
    write_png(args.output, to_uint8(aip))
    return 0
