"""``serialoct preproc``: raw tiles -> mosaic grids, shifts_xy.csv and slice_config.csv (Snakemake)."""

from __future__ import annotations

import argparse

from serialoct.commands.workflow_options import add_workflow_arguments, execution_from, gpu_warning, overrides_from

WORKFLOW = "preproc"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_workflow_arguments(parser, WORKFLOW)


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from serialoct.compute.cpu import cpu_budget
    from serialoct.params import resolve
    from serialoct.workflows.runner import raise_for, run_workflow

    from serialoct.io.acquisition import depth_warning, discover_slices

    execution = execution_from(args)
    overrides = overrides_from(args, WORKFLOW)
    config = resolve(WORKFLOW, overrides)
    # Snakemake runs inside the output folder: every path it sees must be absolute.
    config["input"] = str(Path(config["input"]).resolve())
    config["output"] = str(Path(config["output"]).resolve())
    slices = discover_slices(config["input"], old_layout=config["use_old_folder_structure"])  # a clear error before any work
    warnings = [w for w in (depth_warning(next(iter(slices.values())), config["axial_resolution"]), gpu_warning(overrides, config, execution)) if w]
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    # A cluster job gets its rule's threads; only a local run shares this machine's cores.
    cores = (args.cores or cpu_budget(config["max_cpus"] or 0, config["reserved_cpus"])) if execution.is_local else None
    output = Path(config["output"])
    execution = execution.with_binds(config["input"], output)
    report = None if args.dry_run else args.report
    result = run_workflow(
        WORKFLOW,
        config,
        output,
        cores=cores,
        resources={"mosaic_forks": config["max_mosaic_forks"], "aip_forks": config["max_aip_forks"]},
        snakemake_args=["--dry-run"] if args.dry_run else [],
        execution=execution,
        report=report,
        dag=args.dag,
    )
    where = "" if execution.is_local else f" on {execution.executor}"
    print(f"\npreprocessing of {config['input']} -> {output}{where} ({result.elapsed_s:.1f} s)")
    for slice_id, reason in result.failed.items():
        print(f"  slice {slice_id} FAILED and is excluded in slice_config.csv: {reason}")
    if result.ok and not args.dry_run:
        mosaics = sorted(output.glob("mosaic_grid_3d_z*.ome.zarr"))
        print(f"  {len(mosaics)} mosaic grid(s), shifts_xy.csv" + (", slice_config.csv" if config["generate_slice_config"] else ""))
        if report:
            print(f"  report: {Path(report).resolve()}")
    for warning in warnings:
        print(f"  warning: {warning}")
    if args.dag:
        print(f"  DAG of jobs: {Path(args.dag).resolve()}")
    raise_for(result, output)
    return 0
