"""Step ``register_pairwise``: the rigid correction of a slice relative to the one above it, with its confidence.

Both slices are read into the common canvas (``common_space.json``), so the
transform is a correction on top of the motor placement, about the canvas
centre (the convention of :mod:`serialoct.align.pairwise`).
"""

from __future__ import annotations

import argparse

from serialoct.steps.alignment import add_series_arguments

PARAMETERS = (
    "registration_transform", "registration_max_translation", "registration_max_rotation", "registration_initial_alignment",
    "moving_slice_first_index", "registration_slicing_interval_mm", "registration_allowed_drifting_mm", "z_overlap_min_corr",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fixed", required=True, help="the upper normalised slice (normalize/slice_zNN.ome.zarr)")
    parser.add_argument("--moving", required=True, help="the next normalised slice")
    parser.add_argument("--common_space", required=True, help="common_space.json")
    parser.add_argument("--output", required=True, help="transform JSON to write")
    add_series_arguments(parser, PARAMETERS)


def run(args: argparse.Namespace) -> int:
    from serialoct.align.pairwise import PairwiseParams, planes_used, register_pairwise
    from serialoct.errors import InputError
    from serialoct.io.jsonfile import write_json
    from serialoct.io.tables import Metric
    from serialoct.steps.alignment import begin_series, read_in_canvas, slice_id_of, slice_shape, write_series_metrics

    p, timer, space = begin_series(args, PARAMETERS)
    fixed_id, moving_id = slice_id_of(args.fixed), slice_id_of(args.moving)
    for sid, path in ((fixed_id, args.fixed), (moving_id, args.moving)):
        if sid not in space.positions_px:
            raise InputError(path, f"slice {sid} is not in {args.common_space}")
    params = PairwiseParams.from_guide(p)
    voxel_mm = space.voxel_um / 1000.0
    try:
        fixed_planes, moving_planes = planes_used(slice_shape(args.fixed)[0], slice_shape(args.moving)[0],
                                                  voxel_size_mm=voxel_mm, params=params)
        transform = register_pairwise(read_in_canvas(args.fixed, space, fixed_id, fixed_planes),
                                      read_in_canvas(args.moving, space, moving_id, moving_planes),
                                      voxel_size_mm=voxel_mm, params=params)
    except ValueError as exc:  # slices too thin for the depth search the parameters ask for
        raise InputError(args.moving, str(exc)) from None
    write_json(args.output, {"fixed_id": fixed_id, "moving_id": moving_id, **transform.to_dict()})
    metrics = {name: Metric(m["value"], m["unit"], m["description"], m["status"]) for name, m in transform.metrics(params).items()}
    write_series_metrics(args.metrics, "register_pairwise", p, metrics, timer.elapsed_s,
                         info={"fixed_id": fixed_id, "moving_id": moving_id, "status": transform.status, "reason": transform.reason},
                         warnings=(transform.reason,) if transform.reason else ())
    return 0
