"""Options shared by the workflow commands (``preproc``): every registry parameter, a config file,
and how the jobs run (cores, executor, Snakemake profile, jobs, retries, report, DAG)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from serialoct.errors import InputError
from serialoct.params import allowed_text, format_value, registry

if TYPE_CHECKING:
    from serialoct.workflows.execution import Execution

EXECUTOR_CHOICES = ("local", "slurm")  # serialoct.workflows.execution.EXECUTORS, without importing it for --help


def add_workflow_arguments(parser: argparse.ArgumentParser, workflow: str) -> None:
    """``--PARAM VALUE`` for every parameter of ``workflow``, ``--config``, ``--dry-run`` and the execution options."""
    parser.add_argument("--config", metavar="FILE.yaml", help="parameters from a YAML file (command-line values win)")
    parser.add_argument("--dry-run", action="store_true", help="show what would run, run nothing")
    add_execution_arguments(parser)
    group = parser.add_argument_group(f"parameters (see 'serialoct params {workflow}')")
    for name, p in registry(workflow).items():
        status = "" if p.implemented else "; not implemented yet"
        group.add_argument(
            f"--{name}", metavar="VALUE", default=None,
            help=f"{p.description} [{allowed_text(p)}; default {format_value(p.default)}{status}]",
        )


def add_execution_arguments(parser: argparse.ArgumentParser) -> None:
    """Where and how the workflow's jobs run (docs/running.md)."""
    group = parser.add_argument_group("execution (see docs/running.md)")
    group.add_argument("--cores", type=int, metavar="N", help="local run: cores to use at once (default: from max_cpus / reserved_cpus)")
    group.add_argument(
        "--executor", choices=EXECUTOR_CHOICES, default=None,
        help="run the jobs on this machine (local) or as SLURM jobs through the Snakemake SLURM executor plugin "
        "(slurm) (default: the --snakemake-profile's executor, else local)",
    )
    group.add_argument(
        "--snakemake-profile", metavar="NAME|PATH", default=None,
        help="a site Snakemake profile layered over the shipped one of the executor: a folder with config.yaml, "
        "a YAML file, or a name under ~/.config/snakemake/ (partition, account, per-rule resources)",
    )
    group.add_argument("--jobs", type=int, metavar="N", help="cluster run: most jobs queued or running at once (default: the profile's, 100)")
    group.add_argument(
        "--retries", type=int, metavar="N",
        help="resubmit a failed job up to N times, with more memory and time each attempt (default: the profile's; slurm 2, local 0)",
    )
    group.add_argument(
        "--use_apptainer", metavar="IMAGE", default=None,
        help="run every step inside this Apptainer image (.sif file or docker:// URI) with serialoct installed (containers/)",
    )
    group.add_argument("--report", metavar="FILE.html", help="after a completed run, write Snakemake's HTML report (jobs, runtimes, code)")
    group.add_argument("--dag", metavar="FILE", help="before running, write the DAG of jobs: .dot or .mmd text, or .svg/.png/.pdf when Graphviz is installed")


def execution_from(args: argparse.Namespace) -> Execution:
    """The :class:`~serialoct.workflows.execution.Execution` the options ask for (validated)."""
    from serialoct.workflows.execution import resolve_execution

    return resolve_execution(executor=args.executor, profile=args.snakemake_profile, jobs=args.jobs, retries=args.retries, cores=args.cores,
                             container=args.use_apptainer)


def overrides_from(args: argparse.Namespace, workflow: str) -> dict[str, object]:
    """Parameter values from ``--config`` then the command line (strings, validated later)."""
    values: dict[str, object] = {}
    if args.config:
        import yaml

        path = Path(args.config)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise InputError(path, "config file not found") from None
        except yaml.YAMLError as exc:
            raise InputError(path, f"not valid YAML ({exc})") from None
        if not isinstance(loaded, dict):
            raise InputError(path, "expected a mapping of parameter: value")
        values.update(loaded)
    values.update({name: getattr(args, name) for name in registry(workflow) if getattr(args, name) is not None})
    return values


def gpu_warning(overrides: dict[str, object], config: dict[str, object], execution: Execution) -> str | None:
    """Why a local run whose ``use_gpu`` was asked for (``--use_gpu true`` or the config file) will run on the CPU, or None.

    Said once, before any job, instead of only in every job's log. The
    default (true) falls back quietly: most machines have no GPU. A cluster
    or container run is not checked: its jobs run where CuPy may be.
    """
    if "use_gpu" not in overrides or not config["use_gpu"] or not execution.is_local or execution.container:
        return None
    from serialoct.compute.backend import gpu_problem

    problem = gpu_problem()
    return None if problem is None else f"use_gpu is set but {problem}: every step runs on the CPU"
