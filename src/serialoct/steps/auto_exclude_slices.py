"""Step ``auto_exclude_slices``: exclude the slices inside runs of poorly matching pairs (stacked by motor only)."""

from __future__ import annotations

import argparse

from serialoct.steps.alignment import add_series_arguments

PARAMETERS = ("auto_exclude_consecutive", "auto_exclude_z_corr")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--transforms", nargs="*", default=[], help="register_pairwise transform JSONs")
    parser.add_argument("--slice_config", default="", help="slice_config.csv to stamp (default: every slice used)")
    parser.add_argument("--slices", nargs="+", required=True, help="ids of the slices of the series")
    parser.add_argument("--output", required=True, help="slice_config.csv to write")
    add_series_arguments(parser, PARAMETERS)


def run(args: argparse.Namespace) -> int:
    from serialoct.align.auto_exclude import find_low_quality_clusters, slice_config_updates
    from serialoct.io.jsonfile import read_json
    from serialoct.io.tables import Metric, stamp_slice_config, write_slice_config
    from serialoct.steps.alignment import load_slice_config, write_series_metrics
    from serialoct.steps.options import parameters_from_args
    from serialoct.steps.slice_step import Timer

    p = parameters_from_args(args, "reconst_3d", PARAMETERS)
    timer = Timer()
    records = [read_json(path, required=("fixed_id", "moving_id", "z_correlation")) for path in args.transforms]
    zcorr = {(r["fixed_id"], r["moving_id"]): (float("nan") if r["z_correlation"] is None else float(r["z_correlation"]))
             for r in records}
    exclusion = find_low_quality_clusters(zcorr, consecutive=p["auto_exclude_consecutive"], z_corr_threshold=p["auto_exclude_z_corr"])
    rows = load_slice_config(args.slice_config, args.slices)
    write_slice_config(args.output, stamp_slice_config(rows, slice_config_updates(exclusion)))
    write_series_metrics(args.metrics, "auto_exclude_slices", p, {
        "n_low_pairs": Metric(len(exclusion.low_pairs), "", f"pairs with z-correlation below {p['auto_exclude_z_corr']:g}"),
        "n_excluded": Metric(len(exclusion.excluded), "", "slices inside long runs of poor pairs",
                             "warning" if exclusion.excluded else "ok"),
    }, timer.elapsed_s, info={"excluded": exclusion.excluded, "low_pairs": [list(p) for p in exclusion.low_pairs]})
    return 0
