"""``serialoct reconstruct``: mosaic grids -> corrected, stitched, aligned and stacked volume (Snakemake).

``--shifts_xy`` defaults to ``{input}/shifts_xy.csv`` and ``--slice_config``
to ``{input}/slice_config.csv`` when preprocessing wrote one; ``--profile``
applies a robustness preset (conservative, aggressive, minimal) under the
user's own values.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from serialoct.commands.workflow_options import add_workflow_arguments, execution_from, gpu_warning, overrides_from

WORKFLOW = "reconst_3d"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from serialoct.params.presets import PRESETS

    parser.add_argument("--profile", "--preset", dest="preset", choices=tuple(PRESETS), default=None,
                        help="robustness preset of the stacking parameters (see 'serialoct params reconst_3d'); your values win")
    add_workflow_arguments(parser, WORKFLOW)


def resolve_paths(config: dict) -> dict:
    """Absolute paths (Snakemake runs inside the output folder) and the defaults that depend on ``input``.

    Raises
    ------
    InputError
        No mosaic grids in ``input``, or a tables file that does not exist.
    """
    from serialoct.errors import InputError
    from serialoct.io.acquisition import looks_raw
    from serialoct.workflows.targets import reconst_slices, subject_name

    config = dict(config)
    folder = Path(config["input"]).resolve()
    if not folder.is_dir():
        raise InputError(folder, "input folder not found (the output folder of serialoct preproc)")
    config["input"], config["output"] = str(folder), str(Path(config["output"]).resolve())
    shifts = Path(config["shifts_xy"]) if config["shifts_xy"] else folder / "shifts_xy.csv"
    if not shifts.is_file():
        if looks_raw(folder):
            raise InputError(folder, "this is a raw acquisition: run serialoct preproc on it, then reconstruct its output folder")
        raise InputError(shifts, "shifts_xy.csv not found (give --shifts_xy, or run serialoct preproc into the input folder)")
    config["shifts_xy"] = str(shifts.resolve())
    table = Path(config["slice_config"]) if config["slice_config"] else folder / "slice_config.csv"
    if config["slice_config"] and not table.is_file():
        raise InputError(table, "slice_config.csv not found")
    config["slice_config"] = str(table.resolve()) if table.is_file() else ""
    if config["atlas_path"]:
        atlas = Path(config["atlas_path"]).expanduser()
        if not atlas.exists():
            raise InputError(atlas, "atlas template not found (atlas_path: an NRRD, NIfTI or OME-Zarr file)")
        config["atlas_path"] = str(atlas.resolve())
    if config["manual_transforms_dir"]:
        manual = Path(config["manual_transforms_dir"]).expanduser()
        if not manual.is_dir():
            raise InputError(manual, "manual_transforms_dir is not a folder (put the corrected slice_zNN.json files there)")
        config["manual_transforms_dir"] = str(manual.resolve())
    config["subject_name"] = subject_name(config)
    slice_ids = reconst_slices(config)
    _check_tables(config, slice_ids)  # clear errors before any work
    check_slice_depth(config, slice_ids)
    return config


def check_slice_depth(config: dict, slice_ids: list[str]) -> None:
    """Refuse mosaic grids that image less depth than one cut, before any work.

    Consecutive slices overlap in depth only when each images more than the
    cut thickness (``registration_slicing_interval_mm``); otherwise their pair
    registration fails, into a run. The usual cause is preprocessing run with
    the wrong ``axial_resolution``, which the raw tiles do not record; a few
    shallow slices among deep ones were recorded with another depth range.
    ``crop_interface_out_depth`` set below the cut thickness is refused too.

    Raises
    ------
    InputError
        A slice's mosaic grid is shallower than one cut.
    ParameterError
        ``crop_interface_out_depth`` keeps less than one cut.
    """
    from serialoct.errors import InputError, ParameterError
    from serialoct.io.omezarr import open_ome_zarr

    interval = config["registration_slicing_interval_mm"]
    cut_um = float(interval) * 1000.0
    if float(config["crop_interface_out_depth"]) < cut_um:
        raise ParameterError(
            f"crop_interface_out_depth = {config['crop_interface_out_depth']:g} µm keeps less than one cut "
            f"(registration_slicing_interval_mm = {interval:g}): consecutive slices would not overlap in depth")
    depth = {}
    for slice_id in slice_ids:
        image = open_ome_zarr(Path(config["input"]) / f"mosaic_grid_3d_z{slice_id}.ome.zarr")
        depth[slice_id] = (image.level(0).shape[0], image.voxel_size_mm()[0] * 1000.0, image.path)
    shallow = [s for s, (n, axial_um, _) in depth.items() if n * axial_um < cut_um]
    if not shallow:
        return
    n, axial_um, path = depth[shallow[0]]
    if len(shallow) == len(slice_ids):
        raise InputError(
            path, f"images {n * axial_um:.0f} µm in depth ({n} planes of {axial_um:g} µm), less than one cut "
            f"(registration_slicing_interval_mm = {interval:g}): consecutive slices would not overlap in depth, so they "
            "can be neither registered nor stacked. If the axial voxel size is wrong, rerun serialoct preproc with the "
            "instrument's --axial_resolution (the raw tiles do not record it); if the cut thickness is, give the right "
            "one with --registration_slicing_interval_mm")
    deep = next(s for s in slice_ids if s not in shallow)
    raise InputError(
        Path(config["input"]),
        f"slice(s) {', '.join(shallow)} image less depth than one cut (registration_slicing_interval_mm = {interval:g}): "
        + "; ".join(f"{s}: {depth[s][0] * depth[s][1]:.0f} µm" for s in shallow)
        + f", where slice {deep} images {depth[deep][0] * depth[deep][1]:.0f} µm. They were recorded with a shorter depth "
        "range and cannot overlap the next slice: mark them use = false in slice_config.csv to reconstruct without them")


def _check_tables(config: dict, slice_ids: list[str]) -> None:
    """The tables name the slices of the data and chain them: read and validated before the first job.

    A slice the table marks ``use = false`` without a mosaic (its preprocessing failed) is known, not foreign.
    """
    from serialoct.io.tables import read_shifts_xy, read_slice_config, validate_shifts_xy, validate_slice_config
    from serialoct.workflows.targets import mosaic_ids

    if config["slice_config"]:
        rows = read_slice_config(config["slice_config"])
        known = mosaic_ids(config["input"]) + [r.slice_id for r in rows if not r.use]
        validate_slice_config(rows, known, path=config["slice_config"])
    validate_shifts_xy(read_shifts_xy(config["shifts_xy"]), slice_ids, path=config["shifts_xy"])


def run(args: argparse.Namespace) -> int:
    import sys

    from serialoct.compute.cpu import cpu_budget
    from serialoct.params import resolve
    from serialoct.workflows.runner import raise_for, run_workflow
    from serialoct.workflows.summary import print_summary

    execution = execution_from(args)
    overrides = overrides_from(args, WORKFLOW)
    config = resolve_paths(resolve(WORKFLOW, overrides, preset=args.preset))
    if execution.is_local:
        cores = args.cores or (cpu_budget(config["max_cpus"], config["reserved_cpus"]) if config["enable_cpu_limits"] else cpu_budget(0, 0))
    else:
        cores = None
    gpu = gpu_warning(overrides, config, execution)
    if gpu:
        print(f"warning: {gpu}", file=sys.stderr)
    output = Path(config["output"])
    execution = execution.with_binds(*{str(Path(f).parent) if Path(f).is_file() else f for f in
                                       (config["input"], config["shifts_xy"], config["slice_config"], config["atlas_path"],
                                                 config["manual_transforms_dir"]) if f},
                                     output)
    result = run_workflow(WORKFLOW, config, output, cores=cores, snakemake_args=["--dry-run"] if args.dry_run else [],
                          execution=execution, report=None if args.dry_run else args.report, dag=args.dag,
                          run_info={"preset": args.preset})
    if not args.dry_run:
        print_summary(config, output, result, where="" if execution.is_local else f" on {execution.executor}")
        if gpu:
            print(f"  warning: {gpu}")
    if args.dag:
        print(f"  DAG of jobs: {Path(args.dag).resolve()}")
    raise_for(result, output)
    return 0
