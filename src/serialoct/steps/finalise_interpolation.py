"""Step ``finalise_interpolation``: ``slice_config_final.csv``, the slice table with every gap's outcome.

Interpolated slices are marked ``interpolated`` with the method; gaps whose
interpolation failed (or was not attempted) ``interpolation_failed`` with the
reason; runs of two or more missing slices are listed as holes in
``interpolation_manifest.json``. Stacking and the report read this table.
"""

from __future__ import annotations

import argparse

from serialoct.steps.alignment import add_series_arguments

PARAMETERS = ("interpolate_missing_slices",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--inputs", nargs="+", required=True, help="normalised slices (normalize/slice_zNN.ome.zarr)")
    parser.add_argument("--manifest", default="", help="interpolate_missing_slice/manifest.json (absent when interpolation is off)")
    parser.add_argument("--slice_config", default="", help="slice_config.csv (default: every slice used)")
    parser.add_argument("--failures", nargs="*", default=[], help="failure records of slices whose per-slice steps failed")
    parser.add_argument("--output", required=True, help="slice_config_final.csv to write; interpolation_manifest.json goes beside it")
    add_series_arguments(parser, PARAMETERS)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from pathlib import Path

    from serialoct.io.jsonfile import read_json, write_json
    from serialoct.io.tables import Metric, SliceConfigRow, write_slice_config
    from serialoct.stack.interpolate import finalise_interpolation
    from serialoct.steps.alignment import load_slice_config, slice_id_of, write_series_metrics
    from serialoct.steps.interpolate_missing_slice import usable_slices
    from serialoct.steps.options import parameters_from_args
    from serialoct.steps.records import read_failure
    from serialoct.steps.slice_step import Timer

    p = parameters_from_args(args, "reconst_3d", PARAMETERS)
    timer = Timer()
    ids = sorted(slice_id_of(path) for path in args.inputs)
    rows = {r.slice_id: r for r in load_slice_config(args.slice_config, ids)}
    fragments = read_json(args.manifest, required=("fragments",))["fragments"] if args.manifest else []
    manifest = finalise_interpolation(fragments, usable_slices(ids, rows.values()))
    for sid in manifest.interpolated:
        rows[sid] = replace(rows.get(sid, SliceConfigRow(sid, use=False, exclude_reason="missing")),
                            interpolated=True, interpolation_method_used=manifest.methods[sid])
    for sid, reason in manifest.failed.items():
        rows[sid] = replace(rows.get(sid, SliceConfigRow(sid, use=False, exclude_reason="missing")), interpolation_failed=True,
                            interpolation_method_used=manifest.methods.get(sid, ""), interpolation_fallback_reason=reason)
    for path in args.failures:
        record = read_failure(path)
        rows[record.slice_id] = replace(rows.get(record.slice_id, SliceConfigRow(record.slice_id)), use=False,
                                        exclude_reason=f"failed in {record.step}: {record.error}")
    for hole in manifest.holes:
        for sid in hole:
            rows.setdefault(sid, SliceConfigRow(sid, use=False, exclude_reason="missing"))
    write_slice_config(args.output, list(rows.values()))
    paths = {f["slice_id"]: str(Path(args.manifest).parent / f["path"]) for f in fragments if not f["failed"]}
    write_json(Path(args.output).parent / "interpolation_manifest.json", {**manifest.to_dict(), "paths": paths, "fragments": fragments})
    write_series_metrics(args.metrics, "finalise_interpolation", p, {
        "n_interpolated": Metric(len(manifest.interpolated), "", "single-slice gaps filled"),
        "n_failed": Metric(len(manifest.failed), "", "single-slice gaps left empty", "warning" if manifest.failed else "ok"),
        "n_holes": Metric(sum(len(h) for h in manifest.holes), "", "slices in gaps of two or more (never interpolated)",
                          "warning" if manifest.holes else "ok"),
    }, timer.elapsed_s, info=manifest.to_dict())
    return 0
