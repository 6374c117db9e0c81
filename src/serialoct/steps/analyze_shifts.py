"""Step ``analyze_shifts``: drift report, outlier steps and a drift plot of ``shifts_xy.csv`` (a diagnostic)."""

from __future__ import annotations

import argparse

from serialoct.steps.alignment import add_series_arguments

PARAMETERS: tuple[str, ...] = ()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shifts_xy", required=True, help="shifts_xy.csv")
    parser.add_argument("--output_dir", required=True, help="folder for shifts_report.txt, shifts_drift.png, shifts_xy_filtered.csv")
    add_series_arguments(parser, PARAMETERS)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from serialoct.align.shifts_analysis import analyze_shifts, plot_drift, report_text
    from serialoct.io.atomic import write_text_atomic
    from serialoct.io.images import write_png
    from serialoct.io.tables import Metric, read_shifts_xy, write_shifts_xy
    from serialoct.steps.alignment import write_series_metrics
    from serialoct.steps.slice_step import Timer
    from serialoct.steps.options import parameters_from_args

    p = parameters_from_args(args, "reconst_3d", PARAMETERS)
    timer = Timer()
    analysis = analyze_shifts(read_shifts_xy(args.shifts_xy))
    out = Path(args.output_dir)
    write_text_atomic(out / "shifts_report.txt", report_text(analysis))
    write_png(out / "shifts_drift.png", plot_drift(analysis))
    write_shifts_xy(out / "shifts_xy_filtered.csv", analysis.filtered)
    drift = analysis.total_drift_mm
    write_series_metrics(args.metrics, "analyze_shifts", p, {
        "n_steps": Metric(len(analysis.step_magnitude_mm), "", "slice-to-slice steps"),
        "total_drift_x_mm": Metric(round(drift[0], 4), "mm", "cumulative x shift of the last slice"),
        "total_drift_y_mm": Metric(round(drift[1], 4), "mm", "cumulative y shift of the last slice"),
        "largest_step_mm": Metric(round(float(analysis.step_magnitude_mm.max()), 4), "mm", "longest step"),
        "n_outliers": Metric(len(analysis.outliers), "", "steps far from the median (robust z > 3.5)",
                             "warning" if analysis.outliers else "ok"),
    }, timer.elapsed_s, info={"outliers": [o.reason for o in analysis.outliers]})
    return 0
