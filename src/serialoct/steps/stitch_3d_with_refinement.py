"""Step ``stitch_3d_with_refinement``: place a slice's tiles and blend them into one volume.

The placement is computed on 2D projections (the base layout from motor
positions or the nominal grid, refined by registering the overlaps); the
output is then rendered and written one shard-sized block at a time, so only
the tiles touching a block are read.
"""

from __future__ import annotations

import argparse

from serialoct.steps.slice_step import add_slice_arguments

PARAMETERS = (
    "use_motor_positions_for_stitching",
    "stitch_overlap_fraction",
    "stitch_blending_method",
    "max_blend_refinement_px",
    "save_refinement_data",
    "use_gpu",
)
BLOCK_PX = 512  # output rows/columns rendered at once: one shard of the stitched slice


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_slice_arguments(parser, PARAMETERS, what="illumination-corrected mosaic grid")
    parser.add_argument("--global_transform", help="pooled layout matrix (JSON from estimate_global_transform)")


def run(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from serialoct.io.omezarr import create_ome_zarr
    from serialoct.io.shards import write_region
    from serialoct.io.slices import slice_layout
    from serialoct.io.tables import Metric
    from serialoct.steps.slice_step import begin, write_step_metrics
    from serialoct.steps.stitch_inputs import load_slice_tiles
    from serialoct.stitch.blend import blend_region, blend_slice
    from serialoct.stitch.seams import measure_seams
    from serialoct.stitch.stitch import StitchParams, plan_placement

    p, timer, backend = begin(args, PARAMETERS)
    loaded = load_slice_tiles(args.input, p, backend=backend)
    affine = None
    if args.global_transform:
        with open(args.global_transform, encoding="utf-8") as f:
            affine = np.asarray(json.load(f)["affine"], dtype=np.float64)
    params = StitchParams(blending=p["stitch_blending_method"], max_refinement_px=p["max_blend_refinement_px"])
    placement = plan_placement(loaded.projections, loaded.layout_px, params=params, affine=affine, backend=backend)

    z = loaded.grid.tile_shape[0]
    rows, cols = placement.canvas_shape
    chunks, shards = slice_layout((z, rows, cols))
    voxel_mm = tuple(v / 1000.0 for v in loaded.grid.voxel_size_um)
    get_tile = lambda t: np.asarray(loaded.tiles[t], dtype=np.float32)  # noqa: E731 - read on demand
    extra = {**{k: v for k, v in loaded.grid.extra.items() if k != "stage_positions_mm"},
             "stitch_positions_px": {f"{ix},{iy}": [float(v) for v in pos] for (ix, iy), pos in zip(placement.tiles, placement.positions_px)},
             "stitch_origin_px": [float(v) for v in placement.origin_px]}
    with create_ome_zarr(args.output, (z, rows, cols), voxel_size_mm=voxel_mm, chunks=chunks, shards=shards, extra_attrs=extra) as out:
        for r0 in range(0, rows, BLOCK_PX):
            for c0 in range(0, cols, BLOCK_PX):
                region = (r0, min(rows, r0 + BLOCK_PX), c0, min(cols, c0 + BLOCK_PX))
                block = blend_region(get_tile, placement, region, method=p["stitch_blending_method"], backend=backend)
                write_region(out.array, (0, region[0], region[2]), block)

    if p["save_refinement_data"]:  # diagnostics/refined_stitch/ beside the step's folder
        from pathlib import Path

        from serialoct.diagnostics import placement_record
        from serialoct.io.jsonfile import write_json

        folder = Path(args.output).resolve().parent.parent / "diagnostics" / "refined_stitch"
        write_json(folder / f"slice_z{args.slice}_refinement.json", placement_record(placement, layout_px=loaded.layout_px))

    # QC on the depth projections: seams of the blend, against the unblended tiles.
    flat = {t: image[None] for t, image in loaded.projections.items()}
    blended = blend_slice(flat, placement, method=p["stitch_blending_method"], backend=backend)[0]
    seams = measure_seams(blended, placement, reference=blend_slice(flat, placement, method="none", backend=backend)[0])
    qc = placement.metrics()
    metrics = {
        "n_tiles": Metric(qc["n_tiles"], "", "tiles placed"),
        "pairs_accepted": Metric(qc["n_accepted"], "", f"of {qc['n_pairs']} neighbour pairs"),
        "ncc_threshold": Metric(qc["ncc_threshold"], "", "texture correlation a pair needs (from non-adjacent pairs)"),
        "residual_rms_px": Metric(qc["residual_rms_px"], "px", "pair residuals after the global solve",
                                  "warning" if (qc["residual_rms_px"] or 0) > 1.0 else "ok"),
        "max_refinement_px": Metric(qc["max_refinement_px"], "px", "largest tile correction from the base layout"),
        "seam_step_max": Metric(None if not np.isfinite(seams.max) else round(seams.max, 4), "fraction of tissue mean",
                                "largest intensity step across a tile edge", "warning" if seams.max > 0.05 else "ok"),
    }
    write_step_metrics(args, "stitch_3d_with_refinement", p, metrics, timer,
                       info={"placement": qc, "rejected_pairs": qc["rejected"], "global_transform": affine is not None})
    return 0
