"""Step ``estimate_global_transform``: one tile-layout matrix pooled over many slices.

The instrument's geometry does not change from slice to slice, so the 2x2
matrix that maps grid steps to pixels is fitted once on the registered
neighbour pairs of a pool of slices and reused for every slice
(``stitch_global_transform``).
"""

from __future__ import annotations

import argparse

from serialoct.steps.options import add_parameter_options

WORKFLOW = "reconst_3d"
PARAMETERS = (
    "use_motor_positions_for_stitching",
    "stitch_overlap_fraction",
    "max_blend_refinement_px",
    "stitch_global_transform_slices",
    "stitch_global_transform_histogram_match",
    "stitch_global_transform_max_empty_fraction",
    "stitch_global_transform_n_samples",
    "stitch_global_transform_seed",
    "use_gpu",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--inputs", nargs="+", required=True, help="mosaic grids of the candidate slices (slice_zNN.ome.zarr)")
    parser.add_argument("--output", required=True, help="JSON with the pooled matrix")
    add_parameter_options(parser, WORKFLOW, PARAMETERS)


def run(args: argparse.Namespace) -> int:
    import json
    import re

    from serialoct.compute import apply_cpu_limits, get_backend
    from serialoct.errors import InputError, ParameterError
    from serialoct.io.atomic import write_text_atomic
    from serialoct.steps.options import parameters_from_args
    from serialoct.steps.stitch_inputs import load_slice_tiles
    from serialoct.stitch.global_transform import estimate_global_transform, pool_slice_ids, register_for_global_transform

    p = parameters_from_args(args, WORKFLOW, PARAMETERS)
    apply_cpu_limits()
    backend = get_backend(p["use_gpu"])
    by_id = {re.search(r"z(\d{2})", path.rsplit("/", 1)[-1]).group(1): path for path in args.inputs}
    try:
        chosen = pool_slice_ids(sorted(by_id), p["stitch_global_transform_slices"])
    except ValueError as exc:
        raise ParameterError(f"stitch_global_transform_slices: {exc}") from None
    if not chosen:
        raise InputError(args.inputs[0], f"no slice to pool: stitch_global_transform_slices = {p['stitch_global_transform_slices']!r}")
    pair_sets = []
    for slice_id in chosen:  # one slice in memory at a time
        loaded = load_slice_tiles(by_id[slice_id], p, backend=backend)
        pair_sets.append(register_for_global_transform(
            loaded.projections, loaded.layout_px, histogram_match=p["stitch_global_transform_histogram_match"],
            max_empty_fraction=p["stitch_global_transform_max_empty_fraction"], max_shift_px=p["max_blend_refinement_px"],
            rng=p["stitch_global_transform_seed"], backend=backend))
    fit = estimate_global_transform(pair_sets, n_samples=p["stitch_global_transform_n_samples"], rng=p["stitch_global_transform_seed"])
    write_text_atomic(args.output, json.dumps({**fit.metrics(), "slices": list(chosen), "params": p}, indent=2) + "\n")
    return 0
