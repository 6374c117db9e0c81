"""Step ``estimate_xy_shifts``: ``shifts_xy.csv`` from the tiles' stage positions."""

from __future__ import annotations

import argparse

from serialoct.steps.options import add_parameter_options, parameters_from_args

WORKFLOW = "preproc"
PARAMETERS = ("use_old_folder_structure", "resolution")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="raw acquisition folder")
    parser.add_argument("--output", required=True, help="shifts_xy.csv to write")
    parser.add_argument("--metrics", required=True, help="metrics JSON to write")
    add_parameter_options(parser, WORKFLOW, PARAMETERS)


def run(args: argparse.Namespace) -> int:
    from serialoct.io.acquisition import discover_slices, read_slice_geometry
    from serialoct.io.tables import Metric, StepMetrics, write_metrics, write_shifts_xy
    from serialoct.preproc.shifts import SliceStage, shifts_from_stage

    p = parameters_from_args(args, WORKFLOW, PARAMETERS)
    # Stage positions only: a slice whose metadata.json is damaged fails its own mosaic step, not every slice's shifts.
    slices = discover_slices(args.input, old_layout=p["use_old_folder_structure"]).values()
    geometries = [read_slice_geometry(s, with_metadata=False) for s in slices]
    stages = [
        SliceStage(
            slice_id=g.slice_id,
            x_mm=tuple(x for x, _ in g.stage_mm.values()),
            y_mm=tuple(y for _, y in g.stage_mm.values()),
            tile_size_mm=g.tile_size_mm,
            grid_shape=g.tiles.grid_shape,
        )
        for g in geometries
    ]
    # Shifts are in pixels of the mosaic grid: the native lateral pixel, or the resampled one.
    info = geometries[0].info
    px_um = (p["resolution"],) * 2 if p["resolution"] > 0 else info.pixel_size_um
    rows = shifts_from_stage(stages, (px_um[0] / 1000.0, px_um[1] / 1000.0))
    write_shifts_xy(args.output, rows)
    unreliable = [f"{r.fixed_id}->{r.moving_id}" for r in rows if not r.reliable]
    write_metrics(
        args.metrics,
        StepMetrics(
            "estimate_xy_shifts",
            info={"n_slices": len(stages), "pixel_size_um": list(px_um)},
            params=p,
            metrics={
                "n_pairs": Metric(len(rows), "", "consecutive slice pairs"),
                "n_unreliable": Metric(len(unreliable), "", "pairs whose tile grid changed",
                                       "warning" if unreliable else "ok"),
            },
            warnings=tuple(f"tile grid changed between slices {pair}" for pair in unreliable),
        ),
    )
    return 0
