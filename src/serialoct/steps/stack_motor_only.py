"""Step ``stack_motor_only`` (diagnostic): the normalised slices stacked by the common space alone.

No pairwise transform is applied: each slice sits at its motor placement
(``common_space.json``) and at the expected depth spacing
(``registration_slicing_interval_mm``), overlaps merged by
``motor_only_stack_blending`` (none / average / max / feather, see
:mod:`serialoct.diagnostics.stacking`). Writes ``--output``
(``diagnostics/motor_only_stack/{subject}_motor_only.ome.zarr``, block by
block, with its pyramid) and the orthogonal views beside it (``.png``).
Slices excluded in the slice table (``--slice_config``) are left out.
"""

from __future__ import annotations

import argparse

from serialoct.steps.alignment import add_series_arguments

PARAMETERS = ("motor_only_stack_blending", "registration_slicing_interval_mm", "pyramid_resolutions", "pyramid_n_levels",
              "pyramid_make_isotropic")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--inputs", nargs="+", required=True, help="normalised slices (normalize/slice_zNN.ome.zarr)")
    parser.add_argument("--common_space", required=True, help="bring_to_common_space/common_space.json")
    parser.add_argument("--slice_config", default="", help="slice table (slice_config_final.csv); default: every slice used")
    parser.add_argument("--output", required=True, help="OME-Zarr to write; the PNG goes beside it")
    add_series_arguments(parser, PARAMETERS)


def run(args: argparse.Namespace) -> int:
    from serialoct.compute import cpu_budget
    from serialoct.compute.malloc import one_arena
    from serialoct.diagnostics import plan_motor_stack, render_motor_block
    from serialoct.errors import InputError
    from serialoct.io.tables import Metric
    from serialoct.stack.plan import StackSlice
    from serialoct.steps.alignment import begin_series, cached_volumes, load_slice_config, slice_id_of, slice_shape, write_series_metrics, write_stack

    one_arena()  # its thread pools come and go: freed memory stays in one arena, not one per thread
    p, timer, space = begin_series(args, PARAMETERS)
    paths = {slice_id_of(path): path for path in args.inputs}
    rows = load_slice_config(args.slice_config or None, sorted(paths))
    used = [r.slice_id for r in rows if not r.motor_only and r.slice_id in paths and r.slice_id in space.positions_px]
    if not used:
        raise InputError(args.slice_config or args.common_space, "no slice is left to stack (every slice excluded or outside the common space)")

    volume = cached_volumes({sid: paths[sid] for sid in used}, read_ahead=True)
    blending = p["motor_only_stack_blending"]
    thickness_um = p["registration_slicing_interval_mm"] * 1000.0
    slices = [StackSlice(int(sid), slice_shape(paths[sid]), space.positions_px[sid]) for sid in used]
    plan = plan_motor_stack(slices, slice_thickness_um=thickness_um, voxel_um=space.voxel_um, blending=blending, canvas_shape=space.shape)
    by_index = {int(sid): sid for sid in used}
    placed = [{"slice_id": by_index[q.slice.index], "z_start": q.z_start, "z_stop": q.z_stop, "offset_px": list(q.slice.offset_px)}
              for q in plan.slices]
    write_stack(args.output, plan, p,
                lambda z0, z1: render_motor_block(plan, lambda index, a, b: volume(by_index[index])[a:b], z0, z1, blending=blending),
                extra_attrs={"motor_only": True, "blending": blending, "stacked_slices": placed}, workers=cpu_budget())
    write_series_metrics(args.metrics, "stack_motor_only", p, {
        "n_slices": Metric(len(used), "", "slices stacked by their motor placement"),
        "n_holes": Metric(len(plan.holes), "", "depth ranges no slice covers", "warning" if plan.holes else "ok"),
        "shape": Metric(list(plan.shape), "voxels", "output (z, y, x) at level 0"),
    }, timer.elapsed_s, info={"blending": blending, "slices": placed, "holes": [list(h) for h in plan.holes]})
    return 0
