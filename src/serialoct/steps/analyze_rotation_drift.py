"""Step ``analyze_rotation_drift`` (diagnostic): how rotation accumulates from slice to slice.

Reads the pairwise registrations (and, when given, the rotations stacking
applied, from ``stack/metrics.json``) and writes ``rotation_drift.json``
(summary, flagged slices, one row per slice) and ``rotation_drift.png``
into ``--output_dir`` (``diagnostics/rotation_analysis/``). See
:func:`serialoct.diagnostics.analyze_rotation_drift`.
"""

from __future__ import annotations

import argparse

from serialoct.steps.alignment import add_series_arguments

PARAMETERS: tuple[str, ...] = ("diagnostic_rotation_threshold",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--transforms", nargs="+", required=True, help="register_pairwise/slice_zNN_transform.json files")
    parser.add_argument("--stack_metrics", default="", help="stack/metrics.json (the rotations applied); optional")
    parser.add_argument("--output_dir", required=True, help="folder for rotation_drift.json and rotation_drift.png")
    add_series_arguments(parser, PARAMETERS)


def read_pair_rotations(paths):
    """The registrations of ``paths`` as :class:`~serialoct.diagnostics.PairRotation` (FormatError names a bad file)."""
    from serialoct.diagnostics import PairRotation
    from serialoct.errors import FormatError
    from serialoct.io.jsonfile import read_json

    pairs = []
    for path in paths:
        record = read_json(path, required=("fixed_id", "moving_id", "rotation_deg", "translation_px"))
        try:
            pairs.append(PairRotation.from_dict(record))
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            raise FormatError(path, f"not a pairwise transform record ({exc})") from None
    return pairs


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from serialoct.diagnostics import analyze_rotation_drift, plot_rotation_drift
    from serialoct.io.images import write_png
    from serialoct.io.jsonfile import read_json, write_json
    from serialoct.io.tables import Metric
    from serialoct.steps.alignment import write_series_metrics
    from serialoct.steps.options import parameters_from_args
    from serialoct.steps.slice_step import Timer

    p = parameters_from_args(args, "reconst_3d", PARAMETERS)
    timer = Timer()
    applied = None
    if args.stack_metrics:
        slices = read_json(args.stack_metrics).get("info", {}).get("slices", [])
        applied = {str(s["slice_id"]): float(s["rotation_deg"]) for s in slices if "rotation_deg" in s}
    try:
        drift = analyze_rotation_drift(read_pair_rotations(args.transforms), threshold_deg=p["diagnostic_rotation_threshold"],
                                       applied_deg=applied)
    except ValueError as exc:
        from serialoct.errors import InputError

        raise InputError(args.transforms[0], str(exc)) from None
    out = Path(args.output_dir)
    write_json(out / "rotation_drift.json", drift.to_dict())
    write_png(out / "rotation_drift.png", plot_rotation_drift(drift))
    warn = "warning" if drift.flagged else "ok"
    write_series_metrics(args.metrics, "analyze_rotation_drift", p, {
        "n_pairs": Metric(len(drift.slice_ids), "", "pairwise registrations read"),
        "total_rotation_deg": Metric(round(drift.total_deg, 4), "deg", "cumulative rotation of the last slice"),
        "max_cumulative_deg": Metric(round(drift.max_abs_cumulative_deg, 4), "deg", "largest cumulative rotation", warn),
        "max_pair_deg": Metric(round(drift.max_abs_pair_deg, 4), "deg", "largest slice-to-slice rotation"),
        "drift_deg_per_slice": Metric(drift.drift_deg_per_slice, "deg/slice", "slope of the cumulative rotation"),
        "n_flagged": Metric(len(drift.flagged), "", "slices above diagnostic_rotation_threshold", warn),
    }, timer.elapsed_s, info={"flagged": [f"{s}: {r}" for s, r in drift.flagged]},
        warnings=tuple(f"slice {s}: {r}" for s, r in drift.flagged))
    return 0
