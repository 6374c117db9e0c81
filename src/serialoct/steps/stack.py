"""Step ``stack``: assemble the aligned slices into one volume with its analysis pyramid.

Reads the normalised slices (and the interpolated ones) through the common
canvas, the pairwise transforms and the final slice table, and writes
``stack/{subject}.ome.zarr`` block by block (never the whole volume in
memory), ``{subject}.ome.zarr.zip``, ``{subject}.png`` (orthogonal views) and
``{subject}_annotated.png`` (a depth section with the slice ids). The chain
is :func:`serialoct.stack.series.chain_pairs` ->
:func:`serialoct.stack.transforms.resolve_transforms` -> z offsets ->
:func:`serialoct.stack.plan.plan_stack` -> intensity gains
(:func:`serialoct.stack.intensity.series_gains`) ->
:func:`serialoct.stack.render.render_block`.
"""

from __future__ import annotations

import argparse

from serialoct.steps.alignment import add_series_arguments

PARAMETERS = (
    "stack_blend_enabled", "blend_refinement_px", "stack_blend_z_refine_vox", "stack_blend_depth_um", "stack_match_intensity",
    "stack_intensity_map_um",
    "use_expected_z_overlap", "apply_pairwise_transforms", "apply_rotation_only",
    "max_rotation_deg", "transform_confidence_high", "transform_confidence_low", "z_overlap_min_corr", "blend_z_refine_min_confidence",
    "skip_error_transforms", "skip_warning_transforms", "load_transform_min_zcorr", "load_transform_max_rotation",
    "stack_accumulate_translations", "stack_confidence_weight_translations", "stack_max_cumulative_drift_px",
    "stack_max_pairwise_translation", "stack_smooth_window", "stack_translation_smooth_sigma", "stack_translation_min_zcorr",
    "pyramid_resolutions", "pyramid_n_levels", "pyramid_make_isotropic", "registration_slicing_interval_mm",
    "registration_max_translation", "registration_max_rotation", "moving_slice_first_index", "annotated_label_every",
    "annotated_show_lines", "manual_transforms_dir", "refine_manual_transforms", "refine_max_translation_px", "refine_max_rotation_deg",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--inputs", nargs="+", required=True, help="normalised slices (normalize/slice_zNN.ome.zarr)")
    parser.add_argument("--common_space", required=True, help="common_space.json")
    parser.add_argument("--slice_config", required=True, help="slice_config_final.csv")
    parser.add_argument("--interpolation", default="", help="finalise_interpolation/interpolation_manifest.json")
    parser.add_argument("--transforms", nargs="*", default=[], help="register_pairwise transform JSONs")
    parser.add_argument("--output", required=True, help="stack/{subject}.ome.zarr; the zip and the PNGs go beside it")
    add_series_arguments(parser, PARAMETERS)


def _registrations(paths, p):
    """Moving id -> PairLink of each registration the gates let through (status and metric gates)."""
    from serialoct.align.pairwise import PairwiseTransform, gate_transform
    from serialoct.io.jsonfile import read_json
    from serialoct.stack.series import PairLink

    out, skipped, raw = {}, {}, {}
    for path in paths:
        record = read_json(path, required=("fixed_id", "moving_id", "rotation_deg", "translation_px", "status"))
        t = PairwiseTransform.from_dict(record)
        raw[record["moving_id"]] = t
        gate = gate_transform(t, high=0.0, low=0.0, skip_error=p["skip_error_transforms"], skip_warning=p["skip_warning_transforms"],
                              min_z_correlation=p["load_transform_min_zcorr"], max_rotation_deg=p["load_transform_max_rotation"])
        if int(record["moving_id"]) != int(record["fixed_id"]) + 1:
            continue
        if gate == "skip":
            skipped[record["moving_id"]] = t.reason or f"status {t.status}"
            continue
        out[record["moving_id"]] = PairLink(t.rotation_deg, t.translation_px, t.confidence, t.z_correlation, t.z_offset_planes, "registration")
    return out, skipped, raw


def _manual_links(folder, order, raw, space, placed_volume, p) -> tuple[dict, dict]:
    """Moving id -> PairLink of every hand-corrected transform in ``folder`` (``slice_zNN.json``), refined on request.

    The depth match stays the automated registration's where it was trusted.
    Returns the links and, per slice, what was done (for the metrics).
    """
    import dataclasses
    from pathlib import Path

    from serialoct.errors import FormatError, InputError
    from serialoct.io.jsonfile import read_json
    from serialoct.stack.manual import ManualTransform, manual_link, matched_planes, refine_manual

    links, notes = {}, {}
    for sid in order:
        path = Path(folder) / f"slice_z{sid}.json"
        if not path.is_file():
            continue
        try:
            record = ManualTransform.from_dict(read_json(path))
        except ValueError as exc:
            raise FormatError(path, str(exc)) from None
        if record.moving_id != sid or record.fixed_id != f"{int(sid) - 1:02d}":
            raise InputError(path, f"links {record.fixed_id} -> {record.moving_id}; expected {int(sid) - 1:02d} -> {sid} for this file name")
        auto = raw.get(sid)
        z_offset = auto.z_offset_planes if auto is not None and auto.z_correlation >= p["z_overlap_min_corr"] else None
        if p["refine_manual_transforms"] and record.fixed_id in order:
            if auto is not None:
                z_fixed, z_moving = auto.z_index_fixed, auto.z_index_moving
            else:
                z_moving = p["moving_slice_first_index"]
                z_fixed = round(p["registration_slicing_interval_mm"] * 1000.0 / space.voxel_um) + z_moving
            fixed, moving = placed_volume(record.fixed_id), placed_volume(sid)
            z_fixed, z_moving = min(z_fixed, fixed.shape[0] - 1), min(z_moving, moving.shape[0] - 1)
            planes = matched_planes(fixed, moving, z_fixed=z_fixed, z_moving=z_moving)
            links[sid], info = refine_manual(*planes, record, max_translation_px=p["refine_max_translation_px"],
                                             max_rotation_deg=p["refine_max_rotation_deg"], z_offset_planes=z_offset)
            notes[sid] = dataclasses.asdict(info)
        else:
            links[sid] = manual_link(record, canvas_shape=space.shape, z_offset_planes=z_offset)
            notes[sid] = {"status": "manual"}
    return links, notes


def _boundaries(manifest, p):
    """Lower neighbour id -> PairLink from each zmorph boundary registration (the gap-spanning link)."""
    from serialoct.align.pairwise import transform_confidence
    from serialoct.stack.series import PairLink

    out = {}
    for fragment in manifest.get("fragments", []):
        m = fragment.get("metrics") or {}
        # The boundary registration measures the lower slice against the upper one across the gap. The
        # morph may still have used the identity (its stricter improvement gate); the link only needs
        # a registration that did not make the match worse.
        if fragment.get("failed") or "transform" not in m or m.get("ncc_after") is None:
            continue
        t, zc = m["transform"], float(m["ncc_after"])
        if m.get("ncc_before") is not None and zc < float(m["ncc_before"]):
            continue
        conf = transform_confidence(zc, t["translation_px"], t["rotation_deg"], max_translation_px=p["registration_max_translation"],
                                    max_rotation_deg=p["registration_max_rotation"])
        out[fragment["lower_id"]] = PairLink(float(t["rotation_deg"]), tuple(map(float, t["translation_px"])), conf, zc, None,
                                             "interpolation_boundary")
    return out


def _depth_offsets(ids, links, volume, in_canvas, p, voxel_um: float, workers: int = 1) -> tuple[dict[int, int], dict[str, dict]]:
    """Where each slice starts below the one above it, in planes: ``plan_stack``'s ``z_offsets`` and notes.

    The expected spacing (the cut thickness, without rounding drift), or the
    registration's depth match (``use_expected_z_overlap`` false, trusted
    above ``z_overlap_min_corr``); then the blend boundary searched below it
    (``stack_blend_z_refine_vox``), comparing the lower slice's plane ``m``
    (its surface plane holds little tissue) with the upper slice's planes
    ``offset + m ..``. Only offsets that differ from the expected spacing
    are returned (the plan spaces the others itself). The pairs are measured
    ``workers`` at a time (the reads, warps and correlations release the GIL).
    """
    from serialoct.stack.zmatch import match_z_offset

    step_planes = p["registration_slicing_interval_mm"] * 1000.0 / voxel_um

    def measure(above: str, sid: str) -> tuple[int, int]:  # (expected, used)
        k = int(above)
        link = links[sid]
        expected = round((k + 1) * step_planes) - round(k * step_planes)
        offset = expected
        if not p["use_expected_z_overlap"] and link.z_offset_planes is not None and link.z_correlation >= p["z_overlap_min_corr"]:
            offset = int(link.z_offset_planes)
        refine = p["stack_blend_z_refine_vox"]
        m = min(p["moving_slice_first_index"], volume.depth(sid) - 1) if refine > 0 else 0
        if refine > 0 and link.confidence >= p["blend_z_refine_min_confidence"] and offset + m < volume.depth(above):
            upper = volume.planes(above, offset + m, offset + m + refine + 1)
            match = match_z_offset(in_canvas(above, upper), in_canvas(sid, volume.planes(sid, m, m + 1)[0]), expected_planes=offset + m,
                                   search_planes=(0, refine), min_ncc=p["z_overlap_min_corr"], upper_start=offset + m)
            offset = match.offset_planes - m
        return expected, max(1, offset)

    pairs = [(above, sid) for above, sid in zip(ids[:-1], ids[1:]) if int(sid) == int(above) + 1]
    z_offsets, notes = {}, {}
    for (above, sid), (expected, offset) in zip(pairs, _each_pair(measure, pairs, workers)):
        if offset != expected:
            z_offsets[int(above)] = offset
        notes[sid] = {"expected": expected, "used": offset}
    return z_offsets, notes


def _each_pair(measure, pairs, workers: int) -> list:
    """``[measure(*pair) for pair in pairs]``, ``workers`` pairs at a time."""
    if workers <= 1 or len(pairs) < 2:
        return [measure(*pair) for pair in pairs]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda pair: measure(*pair), pairs))


#: Planes of each side of a depth overlap averaged for the XY refinement of the blend.
OVERLAP_PLANES = 4
#: Phase-correlation peak (0-1) below which an overlap says nothing about XY.
MIN_OVERLAP_PEAK = 0.05


def _refine_overlaps(ids, z_notes, transforms, volume, in_canvas, first_plane: int, limit_px: float):
    """``blend_refinement_px``: the XY residual of each depth overlap by phase correlation, chained downwards.

    Where two consecutive slices image the same tissue (the lower one's planes
    ``m ..`` and the upper one's planes ``offset + m ..``, both as placed), the
    lag of their mean images is a correction of the lower slice's placement;
    it applies to every slice below too (they are placed relative to it). A
    lag beyond ``limit_px`` or a weak peak is not used.
    """
    import dataclasses

    import numpy as np

    from serialoct.stitch.correlate import phase_correlate

    out, notes, carried = dict(transforms), {}, np.zeros(2)
    for above, sid in zip(ids[:-1], ids[1:]):
        t = out[sid]
        out[sid] = dataclasses.replace(t, translation_px=tuple(float(v) for v in np.asarray(t.translation_px) + carried))
        if sid not in z_notes:
            continue
        offset, m = z_notes[sid]["used"], first_plane
        upper, lower = volume.planes(above, offset + m, offset + m + OVERLAP_PLANES), volume.planes(sid, m, m + OVERLAP_PLANES)
        if len(upper) == 0 or len(lower) == 0:
            continue
        a, b = in_canvas(above, upper, out).mean(axis=0), in_canvas(sid, lower, out).mean(axis=0)
        lag, peak, at_limit = phase_correlate(a, b, max_shift_px=limit_px)
        used = bool(not at_limit and peak >= MIN_OVERLAP_PEAK and np.all(np.abs(lag) <= limit_px))
        notes[sid] = {"lag_px": [float(v) for v in lag], "peak": float(peak), "used": used}
        if used:
            carried = carried + lag
            out[sid] = dataclasses.replace(out[sid], translation_px=tuple(float(v) for v in np.asarray(out[sid].translation_px) + lag))
    return out, notes


#: Slices in the running median that slice intensities are matched to (``stack_match_intensity``).
INTENSITY_WINDOW = 5
#: Planes below each cut left to the slice above in the hand-over: the cut surface, partly water
#: (serialoct.stack.plan; 1 removed a 12 % dark plane at every cut on medium, 2 did worse on small).
HANDOVER_SKIP_PLANES = 1
#: A slice whose gain leaves this range (either way) is flagged in the metrics.
GAIN_WARNING = 1.5


def _intensity_gains(plan, by_index, volume, in_canvas, to_frame, map_sigma_px: float, workers: int = 1):
    """``stack_match_intensity``: each slice's gain, from the intensity steps where consecutive planned slices overlap.

    Returns the gains, per lower slice the measured step (None: no overlap),
    and, when ``map_sigma_px > 0``, per upper slice ``(map, depth)``: the
    local step at the next cut in the slice's own frame
    (:func:`serialoct.stack.intensity.overlap_gain_map`) and the plane it
    was measured at. The overlaps are measured ``workers`` at a time.
    """
    from serialoct.stack.intensity import SURFACE_PLANES, overlap_gain_map, overlap_planes, overlap_ratio, series_gains

    def measure(up, low):  # (the lower slice's step or None, the upper slice's (map, depth) or None)
        above, sid = by_index[up.slice.index], by_index[low.slice.index]
        first = low.z_start - up.z_start + SURFACE_PLANES
        n = overlap_planes(first, up.slice.shape[0], low.slice.shape[0])
        if n < 1:
            return None, None
        upper = in_canvas(above, volume.planes(above, first, first + n).mean(axis=0))
        lower = in_canvas(sid, volume.planes(sid, SURFACE_PLANES, SURFACE_PLANES + n).mean(axis=0))
        ratio = overlap_ratio(upper, lower)
        if map_sigma_px > 0 and ratio is not None:
            return ratio, (to_frame(above, overlap_gain_map(upper, lower, sigma_px=map_sigma_px)), first + n / 2.0)
        return ratio, None

    pairs = list(zip(plan.slices[:-1], plan.slices[1:]))
    ratios, maps = {}, {}
    for (up, low), (ratio, gain_map) in zip(pairs, _each_pair(measure, pairs, workers)):
        ratios[by_index[low.slice.index]] = ratio
        if gain_map is not None:
            maps[by_index[up.slice.index]] = gain_map
    gains = series_gains(list(ratios.values()), window=INTENSITY_WINDOW)
    return {by_index[q.slice.index]: float(g) for q, g in zip(plan.slices, gains)}, ratios, maps


def _placements(plan, by_index, order, links, gains) -> list[dict]:
    """Where each slice went and how (the volume's ``stacked_slices`` attribute and the metrics' ``slices``)."""
    out = []
    for q in plan.slices:
        sid, t = by_index[q.slice.index], q.slice.transform
        out.append({"slice_id": sid, "source": order[sid], "z_start": q.z_start, "z_stop": q.z_stop, "offset_px": list(q.slice.offset_px),
                    "rotation_deg": t.rotation_deg, "translation_px": list(t.translation_px), "gate": t.gate,
                    "link": links[sid].source if sid in links else "first", "intensity_gain": round(gains[sid], 4)})
    return out


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from serialoct.compute import cpu_budget
    from serialoct.compute.malloc import one_arena
    from serialoct.io.images import write_png
    from serialoct.io.jsonfile import read_json
    from serialoct.io.omezarr import export_zip
    from serialoct.io.tables import Metric, read_slice_config
    from serialoct.report.previews import annotated_section
    from serialoct.stack.intensity import apply_gain_map, gain_map_note
    from serialoct.stack.plan import StackSlice, plan_stack
    from serialoct.stack.render import render_block, warp_from_canvas, warp_to_canvas
    from serialoct.stack.series import chain_arrays, chain_pairs, stack_order
    from serialoct.stack.transforms import TransformPolicy, resolve_transforms
    from serialoct.steps.alignment import begin_series, cached_volumes, slice_id_of, slice_shape, write_series_metrics, write_stack

    one_arena()  # its thread pools come and go: freed memory stays in one arena, not one per thread
    p, timer, space = begin_series(args, PARAMETERS)
    paths = {slice_id_of(path): path for path in args.inputs}
    rows = read_slice_config(args.slice_config)
    manifest = read_json(args.interpolation) if args.interpolation else {}
    interpolated = dict(manifest.get("paths", {}))
    usable = [r.slice_id for r in rows if not r.motor_only and r.slice_id in paths]
    usable += [s for s in paths if s not in {r.slice_id for r in rows}]
    order = stack_order(sorted(paths), usable, sorted(interpolated))
    if not order:
        from serialoct.errors import InputError

        raise InputError(args.slice_config, "no slice is left to stack (every slice excluded or failed)")
    source = {sid: (paths[sid] if kind == "normalized" else interpolated[sid]) for sid, kind in order.items()}

    volume = cached_volumes(source, read_ahead=True)

    def position(sid: str) -> tuple[float, float]:
        return space.positions_px[sid] if order[sid] == "normalized" else (0.0, 0.0)

    registrations, skipped, raw = _registrations(args.transforms, p)
    manual_notes = {}
    if p["manual_transforms_dir"]:
        def placed_volume(sid: str) -> np.ndarray:  # a slice in the canvas by the motors alone, as registration saw it
            return warp_to_canvas(volume(sid), space.shape, offset_px=position(sid))

        manual, manual_notes = _manual_links(p["manual_transforms_dir"], order, raw, space, placed_volume, p)
        registrations.update(manual)
        for sid in manual:
            skipped.pop(sid, None)
    links = chain_pairs(order, registrations, _boundaries(manifest, p))
    rot, trans, conf, zcorr = chain_arrays(order, links)
    transforms = dict(zip(order, resolve_transforms(rot, trans, conf, zcorr, policy=TransformPolicy.from_guide(p))))

    def in_canvas(sid: str, planes: np.ndarray, placements=None) -> np.ndarray:
        t = (placements or transforms)[sid]
        return warp_to_canvas(planes, space.shape, offset_px=position(sid), rotation_deg=t.rotation_deg, translation_px=t.translation_px)

    ids = list(order)
    workers = cpu_budget()
    z_offsets, z_notes = _depth_offsets(ids, links, volume, in_canvas, p, space.voxel_um, workers)

    xy_notes = {}
    if p["blend_refinement_px"] > 0:
        transforms, xy_notes = _refine_overlaps(ids, z_notes, transforms, volume, in_canvas, p["moving_slice_first_index"],
                                                p["blend_refinement_px"])
    slices = [StackSlice(int(sid), slice_shape(source[sid]), position(sid), transforms[sid]) for sid in order]
    blend_planes = max(1, round(p["stack_blend_depth_um"] / space.voxel_um)) if p["stack_blend_depth_um"] > 0 else None
    plan = plan_stack(slices, slice_thickness_um=p["registration_slicing_interval_mm"] * 1000.0, voxel_um=space.voxel_um,
                      z_offsets=z_offsets, blend=p["stack_blend_enabled"], blend_planes=blend_planes, surface_planes=HANDOVER_SKIP_PLANES,
                      canvas_shape=space.shape)
    by_index = {int(sid): sid for sid in order}
    def to_frame(sid: str, image: np.ndarray) -> np.ndarray:
        t = transforms[sid]
        return warp_from_canvas(image, slice_shape(source[sid])[1:], offset_px=position(sid), rotation_deg=t.rotation_deg,
                                translation_px=t.translation_px, cval=1.0)

    map_sigma_px = p["stack_intensity_map_um"] / space.voxel_um
    gains, steps, maps = (_intensity_gains(plan, by_index, volume, in_canvas, to_frame, map_sigma_px, workers) if p["stack_match_intensity"]
                          else ({sid: 1.0 for sid in ids}, {}, {}))
    placed = _placements(plan, by_index, order, links, gains)

    def read_planes(index: int, a: int, b: int) -> np.ndarray:
        sid = by_index[index]
        planes = volume(sid)[a:b] * np.float32(gains[sid])
        if sid in maps:
            apply_gain_map(planes, a, *maps[sid])
        return planes

    out = Path(args.output)
    samplers = {}
    written = write_stack(out, plan, p, lambda z0, z1: render_block(plan, read_planes, z0, z1, workers=workers, samplers=samplers),
                          extra_attrs={"stacked_slices": placed, "holes": [list(h) for h in plan.holes]}, workers=workers)
    export_zip(out, out.with_name(out.name + ".zip"))
    stem = out.name.removesuffix(".ome.zarr")
    write_png(out.with_name(f"{stem}_annotated.png"), annotated_section(
        written.row_section, [(q["z_start"], q["slice_id"]) for q in placed], label_every=p["annotated_label_every"],
        show_lines=p["annotated_show_lines"]))
    gates = [t.gate for sid, t in transforms.items() if sid != ids[0]]
    flagged = {sid: g for sid, g in gains.items() if not 1 / GAIN_WARNING <= g <= GAIN_WARNING}
    write_series_metrics(args.metrics, "stack", p, {
        "n_slices": Metric(len(order), "", "slices stacked"),
        "n_interpolated": Metric(sum(v == "interpolated" for v in order.values()), "", "of them interpolated"),
        "n_holes": Metric(len(plan.holes), "", "depth ranges no slice covers", "warning" if plan.holes else "ok"),
        "transforms_full": Metric(gates.count("full"), "", "slices with rotation and translation applied"),
        "transforms_rotation_only": Metric(gates.count("rotation_only"), "", "slices with only the rotation applied"),
        "transforms_skipped": Metric(gates.count("skip"), "", "slices placed by the motors alone"),
        "shape": Metric(list(plan.shape), "voxels", "output (z, y, x) at level 0"),
        "pyramid_um": Metric(written.levels, "µm", "resolutions of the pyramid levels"),
        "intensity_gain_range": Metric([round(min(gains.values()), 3), round(max(gains.values()), 3)], "",
                                       "smallest and largest slice gain of the intensity matching",
                                       "warning" if flagged else "ok"),
    }, timer.elapsed_s, info={"slices": placed, "holes": [list(h) for h in plan.holes], "skipped_transforms": skipped,
                              "z_offsets": z_notes, "manual": manual_notes, "blend_refinement": xy_notes, "intensity_steps": steps,
                              "intensity_maps": {sid: gain_map_note(*m) for sid, m in maps.items()}},
       warnings=tuple(f"slice {sid}: intensity scaled by {g:.2f} to match its neighbours (imaged with "
                      f"{'less' if g > 1 else 'more'} signal?)" for sid, g in flagged.items()))
    return 0
