"""``serialoct step NAME``: run one pipeline step (what the workflow rules call)."""

from __future__ import annotations

import argparse
import importlib
import os

from serialoct.compute.cpu import cpu_budget, thread_env
from serialoct.errors import OutputError, SerialOctError
from serialoct.steps import STEPS


def add_arguments(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> None:
    """Every step as a sub-command; only the step ``argv`` names first, when it names one.

    Declaring every step's options takes a forked job 17 ms of CPU, one step's well under 1 ms (a ``medium``
    reconstruction runs about 250 jobs).
    """
    sub = parser.add_subparsers(dest="step", metavar="NAME", required=True)
    named = [argv[0]] if argv and argv[0] in STEPS else list(STEPS)
    for name in named:
        module, _workflow, help_text = STEPS[name]
        step_parser = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(step_parser)
        step_parser.add_argument(
            "--failure_record",
            metavar="JSON",
            help="on a refused input, record the slice, step and reason here before failing; deleted on success",
        )


def run(args: argparse.Namespace) -> int:
    from serialoct.steps.records import FailureRecord, clear_failure, write_failure

    # before the step loads NumPy: OpenBLAS and OpenMP size their thread pools when they load
    os.environ.update(thread_env(cpu_budget()))
    module = importlib.import_module(STEPS[args.step][0])
    try:
        status = module.run(args)
    except OutputError:
        raise  # a full disk or an unwritable folder is not the slice's fault: no failure record, the run stops
    except SerialOctError as exc:
        if args.failure_record:
            write_failure(args.failure_record, FailureRecord(getattr(args, "slice", "") or "", args.step, str(exc)))
        raise
    if args.failure_record:
        clear_failure(args.failure_record)
    return status
