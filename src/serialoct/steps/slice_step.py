"""What every per-slice reconstruction step shares: its command-line inputs and its metrics.

A reconstruction step reads one slice's OME-Zarr (``--input``), writes one
(``--output``) and its metrics JSON (``--metrics``); the registry parameters
it reads are declared by the step module (``PARAMETERS``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence

from serialoct.steps.options import add_parameter_options

WORKFLOW = "reconst_3d"

__all__ = ["WORKFLOW", "Timer", "add_slice_arguments", "begin", "finite_metric", "write_step_metrics"]


def add_slice_arguments(parser: argparse.ArgumentParser, parameters: Sequence[str], *, what: str) -> None:
    """``--input``, ``--output``, ``--slice``, ``--metrics`` and the step's registry options."""
    parser.add_argument("--input", required=True, help=f"the slice's {what} (OME-Zarr)")
    parser.add_argument("--output", required=True, help="OME-Zarr to write")
    parser.add_argument("--slice", required=True, help="two-digit slice id")
    parser.add_argument("--metrics", required=True, help="metrics JSON to write")
    add_parameter_options(parser, WORKFLOW, parameters)


def begin(args: argparse.Namespace, parameters: Sequence[str]):
    """Start a step: its validated parameters, a timer, the thread cap and malloc's reuse applied, and the array backend."""
    from serialoct.compute import apply_cpu_limits, get_backend
    from serialoct.compute.malloc import reuse_freed_memory
    from serialoct.steps.options import parameters_from_args

    p = parameters_from_args(args, WORKFLOW, parameters)
    timer = Timer()
    apply_cpu_limits()
    reuse_freed_memory()  # slice-sized arrays made and freed one after another: no fresh pages for each
    return p, timer, get_backend(p["use_gpu"])


class Timer:
    """Wall time since creation, for the metrics."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def elapsed_s(self) -> float:
        return round(time.perf_counter() - self.started, 3)


def finite_metric(metric):
    """A metric whose value is NaN or infinite (nothing measured) is written as null."""
    import dataclasses
    import math

    value = metric.value
    if isinstance(value, float) and not math.isfinite(value):
        return dataclasses.replace(metric, value=None)
    return metric


def write_step_metrics(args, step: str, params: Mapping, metrics: Mapping, timer: Timer, *, info=None, warnings=()) -> None:
    """Write the step's metrics JSON (formats.md §5) with the common info."""
    from serialoct.io.tables import StepMetrics, write_metrics

    metrics = {name: finite_metric(m) for name, m in metrics.items()}
    base = {"slice_id": args.slice, "input": args.input, "output": args.output, "elapsed_s": timer.elapsed_s}
    write_metrics(args.metrics, StepMetrics(step, info={**base, **(info or {})}, params=dict(params), metrics=dict(metrics),
                                            warnings=tuple(warnings)))
