"""Step ``generate_slice_config``: the acquisition's first ``slice_config.csv``.

Every slice found in the raw data gets a row. The first
``exclude_first_slices`` slices (calibration) and any slice whose
preprocessing failed are marked ``use = false`` with the reason; with
``detect_galvo`` the galvo confidence and whether the fix was applied are
copied from each slice's ``create_mosaic_grid`` metrics.
"""

from __future__ import annotations

import argparse

from serialoct.steps.options import add_parameter_options, parameters_from_args

WORKFLOW = "preproc"
PARAMETERS = ("use_old_folder_structure", "exclude_first_slices", "detect_galvo", "galvo_confidence_threshold")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="raw acquisition folder")
    parser.add_argument("--output", required=True, help="slice_config.csv to write")
    parser.add_argument("--mosaic_metrics", nargs="*", default=[], help="create_mosaic_grid metrics JSONs")
    parser.add_argument("--failures", nargs="*", default=[], help="failure records of slices that could not be processed")
    add_parameter_options(parser, WORKFLOW, PARAMETERS)


def run(args: argparse.Namespace) -> int:
    from serialoct.io.acquisition import discover_slices
    from serialoct.io.tables import read_metrics, write_slice_config
    from serialoct.preproc.galvo import GalvoDetection
    from serialoct.preproc.slice_config import initial_slice_config
    from serialoct.steps.records import read_failure

    p = parameters_from_args(args, WORKFLOW, PARAMETERS)
    slice_ids = list(discover_slices(args.input, old_layout=p["use_old_folder_structure"]))
    galvo = {}
    if p["detect_galvo"]:
        for path in args.mosaic_metrics:
            m = read_metrics(path)
            if "galvo_confidence" in m.metrics:
                galvo[m.info["slice_id"]] = GalvoDetection(
                    band_start=int(m.metrics["galvo_band_start"].value),
                    confidence=float(m.metrics["galvo_confidence"].value),
                    n_tiles=0,
                )
    failures = {}
    for path in args.failures:
        record = read_failure(path)
        failures[record.slice_id] = f"{record.step}: {record.error}"
    rows = initial_slice_config(
        slice_ids,
        exclude_first_slices=p["exclude_first_slices"],
        galvo=galvo,
        galvo_confidence_threshold=p["galvo_confidence_threshold"],
        failures=failures,
    )
    write_slice_config(args.output, rows)
    return 0
