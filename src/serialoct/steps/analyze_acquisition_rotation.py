"""Step ``analyze_acquisition_rotation`` (diagnostic): the rotation of the stage axes against the image axes.

Reads the motor shifts (the cleaned ``shifts_xy.csv`` that
``bring_to_common_space`` used), the common space (its voxel converts the
shifts' mm to working pixels) and the pairwise registrations, and writes
``acquisition_rotation.json`` and ``acquisition_rotation.png`` into
``--output_dir`` (``diagnostics/acquisition_rotation/``). What is estimated:
the angle of the similarity that maps each motor step between consecutive
slices onto the displacement registration measured between them (motor step
minus the registration's correction); see
:func:`serialoct.diagnostics.estimate_acquisition_rotation`. The mean of the
registrations' own rotations is reported beside it.
"""

from __future__ import annotations

import argparse

from serialoct.steps.alignment import add_series_arguments

PARAMETERS: tuple[str, ...] = ()
#: Motor steps shorter than this (working pixels) give no per-pair angle.
MIN_STEP_PX = 2.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shifts_xy", required=True, help="the shifts table bring_to_common_space read (shifts_xy_clean.csv)")
    parser.add_argument("--common_space", required=True, help="bring_to_common_space/common_space.json")
    parser.add_argument("--transforms", nargs="+", required=True, help="register_pairwise/slice_zNN_transform.json files")
    parser.add_argument("--output_dir", required=True, help="folder for acquisition_rotation.json and acquisition_rotation.png")
    add_series_arguments(parser, PARAMETERS)


def run(args: argparse.Namespace) -> int:
    import math
    from pathlib import Path

    from serialoct.diagnostics import estimate_acquisition_rotation, plot_acquisition_rotation
    from serialoct.io.images import write_png
    from serialoct.io.jsonfile import write_json
    from serialoct.io.tables import Metric, read_shifts_xy
    from serialoct.steps.alignment import begin_series, write_series_metrics
    from serialoct.steps.analyze_rotation_drift import read_pair_rotations

    p, timer, space = begin_series(args, PARAMETERS)
    registrations = read_pair_rotations(args.transforms)
    rows = {(r.fixed_id, r.moving_id): r for r in read_shifts_xy(args.shifts_xy)}
    pixel_mm = space.voxel_um / 1000.0
    # A registration across a missing slice spans several rows of the table: sum them.
    steps = {}
    for reg in registrations:
        a, b = int(reg.fixed_id), int(reg.moving_id)
        chain = [rows.get((f"{k:02d}", f"{k + 1:02d}")) for k in range(a, b)]
        direct = rows.get((reg.fixed_id, reg.moving_id))
        if direct is not None:
            chain = [direct]
        if chain and all(c is not None for c in chain):
            steps[reg.moving_id] = (sum(c.x_shift_mm for c in chain) / pixel_mm, sum(c.y_shift_mm for c in chain) / pixel_mm)
    result = estimate_acquisition_rotation(steps, registrations, min_step_px=MIN_STEP_PX)
    out = Path(args.output_dir)
    write_json(out / "acquisition_rotation.json", {"voxel_um": space.voxel_um, "min_step_px": MIN_STEP_PX, **result.to_dict()})
    write_png(out / "acquisition_rotation.png", plot_acquisition_rotation(result))
    warnings = () if result.n_used else (f"no pair with a motor step of at least {MIN_STEP_PX} px: the angle is unknown",)
    write_series_metrics(args.metrics, "analyze_acquisition_rotation", p, {
        "angle_deg": Metric(result.angle_deg, "deg", "rotation of the stage axes against the image axes",
                            "ok" if math.isfinite(result.angle_deg) else "warning"),
        "scale": Metric(result.scale, "", "measured displacement / motor step (1: stage calibration right)"),
        "residual_rms_px": Metric(result.residual_rms_px, "px", "misfit of the rotation model over the used pairs"),
        "n_used": Metric(result.n_used, "", f"pairs with a motor step >= {MIN_STEP_PX} px and a usable registration"),
        "mean_pair_rotation_deg": Metric(result.mean_pair_rotation_deg, "deg", "confidence-weighted mean slice-to-slice rotation"),
    }, timer.elapsed_s, warnings=warnings)
    return 0
