"""Step ``auto_assess_quality``: score every normalised slice, exclude the degraded ones and the first N."""

from __future__ import annotations

import argparse

from serialoct.steps.alignment import add_series_arguments

PARAMETERS = ("auto_assess_min_quality", "auto_assess_exclude_first", "auto_assess_roi_size")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--inputs", nargs="+", required=True, help="normalised slices (normalize/slice_zNN.ome.zarr)")
    parser.add_argument("--slice_config", default="", help="slice_config.csv to stamp (default: every slice used)")
    parser.add_argument("--output", required=True, help="slice_config.csv to write")
    add_series_arguments(parser, PARAMETERS)


def run(args: argparse.Namespace) -> int:
    from serialoct.align.quality import assess_quality, assess_slice_quality
    from serialoct.io.omezarr import open_ome_zarr
    from serialoct.io.tables import Metric, write_slice_config
    from serialoct.steps.alignment import load_slice_config, slice_id_of, write_series_metrics
    from serialoct.steps.options import parameters_from_args
    from serialoct.steps.slice_step import Timer

    p = parameters_from_args(args, "reconst_3d", PARAMETERS)
    timer = Timer()
    paths = {slice_id_of(path): path for path in args.inputs}
    scores = {sid: assess_slice_quality(open_ome_zarr(path).level(0), roi_size=p["auto_assess_roi_size"]) for sid, path in sorted(paths.items())}
    rows = assess_quality(scores, load_slice_config(args.slice_config, sorted(paths)),
                          min_quality=p["auto_assess_min_quality"], exclude_first=p["auto_assess_exclude_first"])
    write_slice_config(args.output, rows)
    excluded = [r.slice_id for r in rows if r.auto_excluded]
    write_series_metrics(args.metrics, "auto_assess_quality", p, {
        "n_scored": Metric(len(scores), "", "slices scored"),
        "n_excluded": Metric(len(excluded), "", "slices excluded (low quality or first slices)"),
        "lowest_score": Metric(round(min(s.score for s in scores.values()), 4), "", "lowest quality score (0-1)"),
    }, timer.elapsed_s, info={"scores": {sid: round(s.score, 4) for sid, s in scores.items()}, "excluded": excluded})
    return 0
