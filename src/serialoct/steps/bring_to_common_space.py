"""Step ``bring_to_common_space``: place every slice in one XY canvas from the cleaned motor shifts.

Writes ``common_space.json`` (:class:`~serialoct.steps.alignment.CommonSpace`):
the canvas shape and the position of each normalised slice in it, which the
registration, interpolation and stacking steps apply when they read a slice
(the slices themselves are not copied). A slice's position is minus its
cumulative motor shift (at the working resolution) plus where its stitched
frame starts (``stitch_origin_px``); excluded slices get their shifts by
``common_space_excluded_slice_mode``; with ``common_space_refine_unreliable``
the steps marked unreliable are re-measured on the slices' projections.
"""

from __future__ import annotations

import argparse

from serialoct.steps.alignment import add_series_arguments

PARAMETERS = (
    "common_space_excluded_slice_mode", "common_space_excluded_slice_window", "common_space_refine_unreliable",
    "common_space_refine_max_discrepancy_px", "common_space_refine_min_correlation", "common_space_preview",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--inputs", nargs="+", required=True, help="normalised slices (normalize/slice_zNN.ome.zarr)")
    parser.add_argument("--shifts_xy", required=True, help="shifts_xy.csv (cleaned by detect_rehoming_events when it ran)")
    parser.add_argument("--slice_config", default="", help="slice_config.csv (default: every slice used)")
    parser.add_argument("--output", required=True, help="common_space.json to write")
    parser.add_argument("--preview_dir", default="", help="with common_space_preview: one PNG per slice in the canvas here")
    add_series_arguments(parser, PARAMETERS)


def _frame_image(aip, origin_px):
    """A slice's projection indexed by its stitched-frame pixel (the frame starts at ``origin_px``, clipped at 0)."""
    import numpy as np

    from serialoct.stack.render import warp_to_canvas

    o = np.asarray(origin_px, dtype=float)
    shape = (int(np.ceil(aip.shape[0] + max(o[0], 0))), int(np.ceil(aip.shape[1] + max(o[1], 0))))
    return warp_to_canvas(aip, shape, offset_px=tuple(o), centre_px=(0.0, 0.0))


def run(args: argparse.Namespace) -> int:
    import functools
    from dataclasses import asdict, replace
    from pathlib import Path

    import numpy as np

    from serialoct.align.common_space import canvas_extent, common_space_offsets, refine_unreliable
    from serialoct.io.images import write_png
    from serialoct.io.jsonfile import write_json
    from serialoct.io.omezarr import open_ome_zarr
    from serialoct.io.slices import read_slice
    from serialoct.io.tables import Metric, read_shifts_xy
    from serialoct.report.previews import to_uint8
    from serialoct.steps.alignment import CommonSpace, load_slice_config, slice_id_of, write_series_metrics
    from serialoct.steps.options import parameters_from_args
    from serialoct.steps.slice_step import Timer

    p = parameters_from_args(args, "reconst_3d", PARAMETERS)
    timer = Timer()
    paths = {slice_id_of(path): path for path in args.inputs}
    ids = sorted(paths)
    images = {sid: open_ome_zarr(paths[sid]) for sid in ids}
    voxel_um = images[ids[0]].voxel_size_mm()[-1] * 1000.0
    shapes = {sid: tuple(int(v) for v in images[sid].level(0).shape) for sid in ids}
    origins = {sid: tuple(float(v) for v in (images[sid].extra_attrs or {}).get("stitch_origin_px", (0.0, 0.0))) for sid in ids}
    # shifts_xy is in the mosaic grid's pixel; the slices are at the working resolution
    shifts = [replace(r, x_shift=r.x_shift_mm * 1000.0 / voxel_um, y_shift=r.y_shift_mm * 1000.0 / voxel_um)
              for r in read_shifts_xy(args.shifts_xy)]
    @functools.cache
    def projection(sid: str):  # a slice's mean over depth: read once, for the refinement and the preview
        return read_slice(paths[sid]).volume.mean(axis=0)

    refined = ()
    if p["common_space_refine_unreliable"] and any(not r.reliable for r in shifts):
        aips = {sid: _frame_image(projection(sid), origins[sid]) for sid in ids}
        refinement = refine_unreliable(shifts, aips, max_discrepancy_px=p["common_space_refine_max_discrepancy_px"],
                                       min_correlation=p["common_space_refine_min_correlation"])
        shifts, refined = refinement.shifts, refinement.steps
    config = load_slice_config(args.slice_config, ids)
    offsets = common_space_offsets(shifts, ids, config, excluded_mode=p["common_space_excluded_slice_mode"],
                                   window=p["common_space_excluded_slice_window"])
    placed = {sid: (offsets[sid][0] + origins[sid][0], offsets[sid][1] + origins[sid][1]) for sid in ids}
    canvas = canvas_extent(placed, {sid: shapes[sid][1:] for sid in ids})
    space = CommonSpace(voxel_um, canvas.shape, canvas.positions, {sid: shapes[sid][0] for sid in ids})
    write_json(args.output, {**space.to_dict(), "motor_offsets_px": offsets, "stitch_origins_px": origins,
                             "refined_steps": [asdict(s) for s in refined]})
    if p["common_space_preview"] and args.preview_dir:
        from serialoct.stack.render import warp_to_canvas

        for sid in ids:
            write_png(Path(args.preview_dir) / f"slice_z{sid}.png",
                      to_uint8(warp_to_canvas(projection(sid), canvas.shape, offset_px=canvas.positions[sid])))
    spread = np.ptp(np.array(list(offsets.values())), axis=0) if len(offsets) > 1 else np.zeros(2)
    write_series_metrics(args.metrics, "bring_to_common_space", p, {
        "n_slices": Metric(len(ids), "", "slices placed"),
        "canvas_rows": Metric(canvas.shape[0], "px", "canvas height"),
        "canvas_cols": Metric(canvas.shape[1], "px", "canvas width"),
        "motor_spread_px": Metric(round(float(np.hypot(*spread)), 2), "px", "extent of the motor placements"),
        "n_refined": Metric(sum(s.accepted for s in refined), "", "unreliable steps replaced by image estimates"),
    }, timer.elapsed_s, info={"excluded": [r.slice_id for r in config if r.motor_only and r.slice_id in paths]})
    return 0
