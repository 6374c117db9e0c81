"""Step ``interpolate_missing_slice``: synthesise every single-slice gap of the series from its two neighbours.

A gap is a slice with no usable data between two usable ones: never imaged,
failed, or excluded in the slice table. Gaps of two or more slices stay
holes. Each filled slice is written in the common canvas
(``interpolate_missing_slice/slice_zNN.ome.zarr``, placed at the canvas
origin) and every attempt, failed ones included, is recorded in
``manifest.json`` (:func:`serialoct.stack.interpolate.manifest_fragment`).
One job handles every gap: which slices are gaps is known only once the
quality assessment has run.
"""

from __future__ import annotations

import argparse

from serialoct.steps.alignment import add_series_arguments

PARAMETERS = (
    "interpolation_method", "interpolation_blend_method", "interpolation_registration_metric", "interpolation_max_iterations",
    "interpolation_overlap_search_window", "interpolation_min_overlap_correlation", "interpolation_reference_slab_size",
    "interpolation_min_foreground_fraction", "interpolation_min_ncc_improvement", "registration_slicing_interval_mm",
    "interpolation_preview", "stack_match_intensity", "stack_intensity_map_um",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--inputs", nargs="+", required=True, help="normalised slices (normalize/slice_zNN.ome.zarr)")
    parser.add_argument("--common_space", required=True, help="common_space.json")
    parser.add_argument("--slice_config", default="", help="slice_config.csv (excluded slices count as gaps)")
    parser.add_argument("--output", required=True, help="manifest.json to write; the slices go beside it")
    add_series_arguments(parser, PARAMETERS)


def usable_slices(paths, rows) -> list[str]:
    """Slices with data that the table does not exclude."""
    excluded = {r.slice_id for r in rows if r.motor_only}
    return sorted(s for s in paths if s not in excluded)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from serialoct.io.images import write_png
    from serialoct.io.jsonfile import write_json
    from serialoct.io.slices import write_slice
    from serialoct.io.tables import Metric
    from serialoct.report.previews import orthogonal_views
    from serialoct.stack.interpolate import InterpolationParams, interpolate_missing_slice, manifest_fragment, single_slice_gaps
    from serialoct.steps.alignment import begin_series, load_slice_config, read_in_canvas, slice_id_of, write_series_metrics

    p, timer, space = begin_series(args, PARAMETERS)
    paths = {slice_id_of(path): path for path in args.inputs}
    usable = usable_slices(paths, load_slice_config(args.slice_config, sorted(paths)))
    params = InterpolationParams.from_guide(p)
    planes_per_slice = max(1, round(p["registration_slicing_interval_mm"] * 1000.0 / space.voxel_um))
    map_sigma_px = p["stack_intensity_map_um"] / space.voxel_um if p["stack_match_intensity"] else 0.0
    out = Path(args.output).parent
    fragments = []
    for k in single_slice_gaps(int(s) for s in usable):
        sid, up, low = f"{k:02d}", f"{k - 1:02d}", f"{k + 1:02d}"
        result = interpolate_missing_slice(read_in_canvas(paths[up], space, up), read_in_canvas(paths[low], space, low),
                                           planes_per_slice=planes_per_slice, params=params,
                                           intensity_map_sigma_px=map_sigma_px)
        fragment = {**manifest_fragment(sid, result), "upper_id": up, "lower_id": low}
        if not result.failed:
            path = out / f"slice_z{sid}.ome.zarr"
            write_slice(path, result.volume, (space.voxel_um,) * 3, extra={"interpolated": True, "upper_id": up, "lower_id": low})
            fragment["path"] = path.name
            if p["interpolation_preview"]:
                write_png(out / "previews" / f"slice_z{sid}.png", orthogonal_views(result.volume))
        fragments.append(fragment)
    write_json(args.output, {"fragments": fragments, "usable": usable})
    filled = [f["slice_id"] for f in fragments if not f["failed"]]
    write_series_metrics(args.metrics, "interpolate_missing_slice", p, {
        "n_gaps": Metric(len(fragments), "", "single-slice gaps found"),
        "n_interpolated": Metric(len(filled), "", "gaps filled"),
        "n_failed": Metric(len(fragments) - len(filled), "", "gaps left empty (quality gates)",
                           "warning" if len(fragments) > len(filled) else "ok"),
    }, timer.elapsed_s, info={"interpolated": filled, "failed": {f["slice_id"]: f["reason"] for f in fragments if f["failed"]}})
    return 0
