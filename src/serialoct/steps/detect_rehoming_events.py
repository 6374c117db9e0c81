"""Step ``detect_rehoming_events``: remove encoder-glitch spikes and tile-FOV jumps from the shifts, keep re-homings."""

from __future__ import annotations

import argparse

from serialoct.steps.alignment import add_series_arguments

PARAMETERS = ("rehoming_return_fraction", "rehoming_max_shift_mm", "tile_fov_mm", "tile_fov_tolerance", "rehoming_diagnostics")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shifts_xy", required=True, help="shifts_xy.csv from preprocessing")
    parser.add_argument("--slice_config", default="", help="slice_config.csv to stamp (default: every slice used)")
    parser.add_argument("--output_dir", required=True,
                        help="folder for shifts_xy_clean.csv and slice_config.csv (and rehoming_report.json, rehoming_plot.png)")
    add_series_arguments(parser, PARAMETERS)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from serialoct.align.rehoming import detect_rehoming, plot_rehoming, rehoming_report, stamp_rehoming
    from serialoct.io.images import write_png
    from serialoct.io.jsonfile import write_json
    from serialoct.io.tables import Metric, read_shifts_xy, write_shifts_xy, write_slice_config
    from serialoct.steps.alignment import load_slice_config, write_series_metrics
    from serialoct.steps.options import parameters_from_args
    from serialoct.steps.slice_step import Timer

    p = parameters_from_args(args, "reconst_3d", PARAMETERS)
    timer = Timer()
    shifts = read_shifts_xy(args.shifts_xy)
    result = detect_rehoming(shifts, return_fraction=p["rehoming_return_fraction"], max_shift_mm=p["rehoming_max_shift_mm"],
                             tile_fov_mm=p["tile_fov_mm"], tile_fov_tolerance=p["tile_fov_tolerance"])
    ids = sorted({shifts[0].fixed_id, *(r.moving_id for r in shifts)}) if shifts else []
    out = Path(args.output_dir)
    write_shifts_xy(out / "shifts_xy_clean.csv", result.cleaned)
    write_slice_config(out / "slice_config.csv", stamp_rehoming(load_slice_config(args.slice_config, ids), result))
    if p["rehoming_diagnostics"]:
        write_json(out / "rehoming_report.json", rehoming_report(result))
        write_png(out / "rehoming_plot.png", plot_rehoming(result))
    write_series_metrics(args.metrics, "detect_rehoming_events", p, {
        "n_glitches": Metric(len(result.glitch_slices), "", "encoder glitch spikes corrected",
                             "warning" if result.glitch_slices else "ok"),
        "n_rehomings": Metric(len(result.rehomed_slices), "", "genuine re-homings kept"),
        "n_tile_fov": Metric(len(result.of_kind("tile_fov")), "", "legacy tile-FOV jumps removed"),
    }, timer.elapsed_s, info=rehoming_report(result))
    return 0
