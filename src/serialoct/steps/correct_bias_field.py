"""Step ``correct_bias_field``: remove the slow intensity drift of the stacked volume (N4), block by block.

The stack is reduced block by block (:func:`serialoct.correct.bias.reduce_block`;
bins never straddle two cut sections, whose first planes are the stack's
``stacked_slices`` starts), N4 estimates the field on the reduced copy
(``bias_mode``), and the field is applied to level 0 one block of planes at
a time (``bias_strength``) into ``correct_bias_field/{subject}_corrected.ome.zarr``
with the same analysis pyramid. Memory: one block plus the reduced volume.
"""

from __future__ import annotations

import argparse

from serialoct.steps.alignment import add_series_arguments

PARAMETERS = ("bias_mode", "bias_strength", "pyramid_resolutions", "pyramid_n_levels", "pyramid_make_isotropic")
#: Full-resolution planes read, reduced or corrected at once (whole bins).
BLOCK_PLANES = 64


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="stack/{subject}.ome.zarr")
    parser.add_argument("--output", required=True, help="correct_bias_field/{subject}_corrected.ome.zarr")
    parser.add_argument("--max_reduced_voxels", type=int, default=None,
                        help="size of the reduced copy N4 fits (default 2**18, about 64^3: an N4 pass takes a minute or two)")
    add_series_arguments(parser, PARAMETERS)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from serialoct.compute import apply_cpu_limits
    from serialoct.correct.bias import apply_bias_field, estimate_bias_field, plan_bias_grid, reduce_block
    from serialoct.io.omezarr import create_ome_zarr, open_ome_zarr
    from serialoct.io.tables import Metric
    from serialoct.stack.plan import pyramid_levels
    from serialoct.steps.alignment import write_series_metrics
    from serialoct.steps.options import parameters_from_args
    from serialoct.steps.slice_step import Timer

    p = parameters_from_args(args, "reconst_3d", PARAMETERS)
    timer = Timer()
    apply_cpu_limits()  # SimpleITK's N4 takes its thread count from the global default
    image = open_ome_zarr(args.input)
    source = image.level(0)
    shape = tuple(int(v) for v in source.shape)
    voxel_mm = image.voxel_size_mm(0)
    attrs = image.extra_attrs or {}
    starts = sorted({0, *(int(s["z_start"]) for s in attrs.get("stacked_slices", ()) if 0 <= int(s["z_start"]) < shape[0])})
    budget = {"max_voxels": args.max_reduced_voxels} if args.max_reduced_voxels else {}
    grid = plan_bias_grid(shape, section_starts=tuple(starts), voxel_um=tuple(v * 1000.0 for v in voxel_mm), **budget)
    reduced = np.concatenate([reduce_block(np.asarray(source[z0:z1], dtype=np.float32), grid, z0) for z0, z1 in grid.blocks(BLOCK_PLANES)])
    field = estimate_bias_field(reduced, grid, mode=p["bias_mode"])
    levels = pyramid_levels(voxel_mm[0] * 1000.0, p["pyramid_resolutions"], p["pyramid_n_levels"], p["pyramid_make_isotropic"])
    out = Path(args.output)
    chunks = tuple(int(c) for c in source.chunks)
    with create_ome_zarr(out, shape, voxel_size_mm=voxel_mm, chunks=chunks, shards=None, pyramid_resolutions_um=levels[1:],
                         make_isotropic=p["pyramid_make_isotropic"], name=out.name.removesuffix(".ome.zarr"),
                         extra_attrs={**attrs, "bias_mode": p["bias_mode"], "bias_strength": p["bias_strength"]}) as writer:
        for z0, z1 in grid.blocks(BLOCK_PLANES):
            writer.array[z0:z1] = apply_bias_field(np.asarray(source[z0:z1], dtype=np.float32), field, z0, strength=p["bias_strength"])
    bias = np.exp(field.log_field[field.log_field != 0]) if np.any(field.log_field != 0) else np.ones(1)
    write_series_metrics(args.metrics, "correct_bias_field", p, {
        "bias_min": Metric(round(float(bias.min()), 4), "", "smallest bias factor divided out"),
        "bias_max": Metric(round(float(bias.max()), 4), "", "largest bias factor divided out"),
        "tissue_fraction": Metric(round(float(field.tissue_fraction), 4), "", f"reduced voxels in the mask ({field.mask_method})"),
        "n4_runs": Metric(len(field.n4_runs), "", "N4 fits (sections and global pass)"),
        "sections_skipped": Metric(len(field.sections_skipped), "", "sections with too little tissue for a fit",
                                   "warning" if field.sections_skipped else "ok"),
    }, timer.elapsed_s, info={"section_starts": starts, "reduced_shape": list(grid.reduced_shape)})
    return 0
