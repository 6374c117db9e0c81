"""Step ``compare_stitching`` (diagnostic): a slice's motor-only and refined stitchings side by side, with seam probes.

Reads the two stitched slices (``stitch_motor_only`` and
``stitch_3d_with_refinement`` outputs; each holds its tile positions in its
attributes), probes every seam between neighbouring tiles every
``comparison_tile_step`` pixels on their means over depth
(:func:`serialoct.diagnostics.probe_seams`) and writes into ``--output_dir``
(``diagnostics/stitch_comparison/``): ``slice_zNN_comparison.png`` (motor
only left, refined right, probes coloured green to red by their step) and
``slice_zNN_seams.json`` (the summary of each, mean and max seam step, and
one row per probe).
"""

from __future__ import annotations

import argparse

from serialoct.steps.options import add_parameter_options

PARAMETERS: tuple[str, ...] = ("comparison_tile_step",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--motor_only", required=True, help="diagnostics/motor_only_stitch/slice_zNN.ome.zarr")
    parser.add_argument("--refined", required=True, help="stitch_3d_with_refinement/slice_zNN.ome.zarr")
    parser.add_argument("--slice", required=True, help="two-digit slice id")
    parser.add_argument("--output_dir", required=True, help="folder for slice_zNN_comparison.png and slice_zNN_seams.json")
    parser.add_argument("--metrics", required=True, help="metrics JSON to write")
    add_parameter_options(parser, "reconst_3d", PARAMETERS)


def _stitched_view(path):
    """(mean over depth, canvas positions of the tiles, tile (h, w)) of a stitched slice."""
    import numpy as np

    from serialoct.errors import FormatError
    from serialoct.io.slices import read_slice

    stitched = read_slice(path)
    extra = stitched.extra
    if "stitch_positions_px" not in extra:
        raise FormatError(path, "no stitch_positions_px attribute: not written by a serialoct stitching step")
    positions = {tuple(int(i) for i in key.split(",")): tuple(float(v) for v in pos) for key, pos in extra["stitch_positions_px"].items()}
    tile = tuple(int(v) for v in extra["tile_shape"][-2:]) if "tile_shape" in extra else None
    return stitched.volume.mean(axis=0, dtype=np.float64), positions, tile


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from serialoct.diagnostics import probe_seams, side_by_side
    from serialoct.io.images import write_png
    from serialoct.io.jsonfile import write_json
    from serialoct.io.tables import Metric
    from serialoct.steps.alignment import write_series_metrics
    from serialoct.steps.options import parameters_from_args
    from serialoct.steps.slice_step import Timer

    p = parameters_from_args(args, "reconst_3d", PARAMETERS)
    timer = Timer()
    step = p["comparison_tile_step"]
    motor_image, motor_pos, motor_tile = _stitched_view(args.motor_only)
    refined_image, refined_pos, refined_tile = _stitched_view(args.refined)
    # Both come from the same mosaic grid; stitch_motor_only always records the tile shape, a refined
    # stitch of a grid without serialoct attributes may not.
    motor_tile = motor_tile or refined_tile
    refined_tile = refined_tile or motor_tile
    if motor_tile is None:
        from serialoct.errors import FormatError

        raise FormatError(args.motor_only, "no tile_shape attribute in either stitched slice")
    motor = probe_seams(motor_image, motor_pos, motor_tile, step_px=step)
    refined = probe_seams(refined_image, refined_pos, refined_tile, step_px=step)
    out = Path(args.output_dir)
    write_png(out / f"slice_z{args.slice}_comparison.png",
              side_by_side(motor_image, refined_image, left_probes=motor, right_probes=refined))
    write_json(out / f"slice_z{args.slice}_seams.json", {
        "slice_id": args.slice, "comparison_tile_step": step,
        "summary": {"motor_only": motor.summary(), "refined": refined.summary()},
        "motor_only": motor.rows(), "refined": refined.rows(),
    })
    better = refined.mean <= motor.mean if motor.probes and refined.probes else True
    write_series_metrics(args.metrics, "compare_stitching", p, {
        "motor_only_seam_mean": Metric(motor.mean, "fraction of image mean", "mean seam step, motor-only stitch"),
        "motor_only_seam_max": Metric(motor.max, "fraction of image mean", "largest seam step, motor-only stitch"),
        "refined_seam_mean": Metric(refined.mean, "fraction of image mean", "mean seam step, refined stitch",
                                    "ok" if better else "warning"),
        "refined_seam_max": Metric(refined.max, "fraction of image mean", "largest seam step, refined stitch"),
        "n_probes": Metric([len(motor.probes), len(refined.probes)], "", "probes (motor only, refined)"),
    }, timer.elapsed_s, info={"slice_id": args.slice, "motor_only": args.motor_only, "refined": args.refined},
        warnings=() if better else ("the refined stitch has larger seams than the motor-only one",))
    return 0
