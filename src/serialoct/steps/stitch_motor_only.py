"""Step ``stitch_motor_only`` (diagnostic): a slice stitched from its motor positions alone, without registration.

Reads the same mosaic grid as ``stitch_3d_with_refinement``, puts every tile
at its reported stage position (the nominal grid with ``motor_only_overlap``
when the grid has no stage positions), blends with
``motor_only_stitch_blending`` and writes the slice (``--output``, OME-Zarr,
block by block, with the tile positions in its attributes like the refined
stitch), a PNG of its mean over depth beside it (``slice_zNN.png``) and the
metrics with the seam step of :func:`serialoct.stitch.seams.measure_seams`
(the refined stitch's ``seam_step_max``, comparable). See
:func:`serialoct.diagnostics.motor_only_placement`.
"""

from __future__ import annotations

import argparse

from serialoct.steps.slice_step import add_slice_arguments

PARAMETERS = ("motor_only_overlap", "motor_only_stitch_blending", "use_gpu")
BLOCK_PX = 512  # output rows/columns rendered at once, as stitch_3d_with_refinement


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_slice_arguments(parser, PARAMETERS, what="mosaic grid (the input of stitch_3d_with_refinement)")


def preview_path(output):
    """``.../slice_zNN.ome.zarr`` -> ``.../slice_zNN.png``."""
    from pathlib import Path

    out = Path(output)
    return out.with_name(out.name.removesuffix(".ome.zarr").removesuffix(".zarr") + ".png")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from serialoct.diagnostics import motor_only_placement
    from serialoct.io.images import write_png
    from serialoct.io.omezarr import create_ome_zarr
    from serialoct.io.shards import write_region
    from serialoct.io.slices import slice_layout
    from serialoct.io.tables import Metric
    from serialoct.report.previews import to_uint8
    from serialoct.steps.slice_step import begin, write_step_metrics
    from serialoct.steps.stitch_inputs import load_slice_tiles
    from serialoct.stitch.blend import blend_region, blend_slice
    from serialoct.stitch.seams import measure_seams

    p, timer, backend = begin(args, PARAMETERS)
    method = p["motor_only_stitch_blending"]
    loaded = load_slice_tiles(args.input, {"use_motor_positions_for_stitching": True, "stitch_overlap_fraction": p["motor_only_overlap"]},
                              backend=backend)
    layout_source = "stage positions" if loaded.grid.extra.get("stage_positions_mm") else "nominal grid"
    placement = motor_only_placement(loaded.layout_px, loaded.grid.tile_shape[1:])
    z = loaded.grid.tile_shape[0]
    rows, cols = placement.canvas_shape
    chunks, shards = slice_layout((z, rows, cols))
    get_tile = lambda t: np.asarray(loaded.tiles[t], dtype=np.float32)  # noqa: E731 - read on demand
    extra = {**{k: v for k, v in loaded.grid.extra.items() if k != "stage_positions_mm"}, "motor_only": True, "layout": layout_source,
             "tile_shape": list(loaded.grid.tile_shape),
             "stitch_positions_px": {f"{ix},{iy}": [float(v) for v in pos] for (ix, iy), pos in zip(placement.tiles, placement.positions_px)},
             "stitch_origin_px": [float(v) for v in placement.origin_px]}
    with create_ome_zarr(args.output, (z, rows, cols), voxel_size_mm=tuple(v / 1000.0 for v in loaded.grid.voxel_size_um), chunks=chunks,
                         shards=shards, extra_attrs=extra) as out:
        for r0 in range(0, rows, BLOCK_PX):
            for c0 in range(0, cols, BLOCK_PX):
                region = (r0, min(rows, r0 + BLOCK_PX), c0, min(cols, c0 + BLOCK_PX))
                block = blend_region(get_tile, placement, region, method=method, backend=backend)
                write_region(out.array, (0, region[0], region[2]), block)
    flat = {t: image[None] for t, image in loaded.projections.items()}
    blended = blend_slice(flat, placement, method=method, backend=backend)[0]
    write_png(preview_path(args.output), to_uint8(blended))
    seams = measure_seams(blended, placement, reference=blend_slice(flat, placement, method="none", backend=backend)[0])
    metrics = {
        "n_tiles": Metric(len(placement.tiles), "", f"tiles placed from the {layout_source}"),
        "overlap_px": Metric([round(v, 2) for v in placement.overlap_px], "px", "median overlap of x and y neighbours"),
        "seam_step_mean": Metric(seams.mean, "fraction of tissue mean", "mean intensity step across a tile edge"),
        "seam_step_max": Metric(seams.max, "fraction of tissue mean", "largest intensity step across a tile edge",
                                "warning" if seams.max > 0.05 else "ok"),
    }
    write_step_metrics(args, "stitch_motor_only", p, metrics, timer, info={"layout": layout_source, "preview": str(preview_path(args.output))})
    return 0
