"""Step ``generate_report``: the quality-control report of a reconstruction run, and ``README/readme.txt``.

Reads every step's metrics JSON in the run folder (``STEP/metrics.json`` and
``STEP/slice_zNN_metrics.json``), the final slice table, the failure records,
the resolved configuration and the preview pictures, builds the report with
:func:`serialoct.report.qc.build_report` and writes it with
:func:`serialoct.report.html.render_html` (``report_format = html``: one file,
pictures embedded) or :func:`serialoct.report.html.zip_report` (``zip``: the
HTML beside ``--output`` with the extension ``.zip``, pictures as files).
A step that did not run leaves its section saying so; nothing is required
but the run folder.
"""

from __future__ import annotations

import argparse
import logging

from serialoct.steps.alignment import add_series_arguments

PARAMETERS = ("report_verbose", "report_format")
CONFIG = ".serialoct/reconst_3d_config.yaml"
SLICE_TABLE = "finalise_interpolation/slice_config_final.csv"
#: Steps switched by a parameter: a metrics file of a switched-off step is from an earlier run and is left out.
SWITCHES = {
    "fix_focal_curvature": "fix_curvature_enabled", "fix_illumination": "fix_illum_enabled", "analyze_shifts": "analyze_shifts",
    "auto_assess_quality": "auto_assess_quality", "detect_rehoming_events": "detect_rehoming",
    "interpolate_missing_slice": "interpolate_missing_slices", "auto_exclude_slices": "auto_exclude_enabled",
    "align_to_ras": "align_to_ras_enabled",
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Folders of a run that hold no step metrics.
NOT_STEPS = {"logs", "benchmarks", "failed", "previews", "README", "generate_report", ".serialoct", ".snakemake"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run_dir", required=True, help="the reconstruction's output folder (OUT)")
    parser.add_argument("--output", required=True,
                        help="OUT/{subject}_quality_report.html; with report_format zip, the .zip of the same name is written instead")
    parser.add_argument("--readme", default="", help="readme.txt to write (default: RUN_DIR/README/readme.txt)")
    add_series_arguments(parser, PARAMETERS)


def _config(run_dir):
    """The resolved configuration, or {} when the run folder has none."""
    import yaml

    from serialoct.errors import FormatError

    path = run_dir / CONFIG
    if not path.is_file():
        return {}
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise FormatError(path, f"not a YAML configuration ({exc})") from None
    if not isinstance(loaded, dict):
        raise FormatError(path, "expected a mapping of parameter names to values")
    return loaded


def _metrics(run_dir, config):
    """Series and per-slice metrics of every step folder, and the steps a parameter switched off."""
    from serialoct.io.tables import read_metrics
    from serialoct.steps.alignment import slice_id_of

    series, per_slice, off = {}, {}, {}
    for folder in sorted(p for p in run_dir.iterdir() if p.is_dir() and p.name not in NOT_STEPS):
        step = folder.name
        if step in SWITCHES and config and not config.get(SWITCHES[step], True):
            off[step] = f"switched off ({SWITCHES[step]} = false)"
            if any(folder.glob("*metrics.json")):
                off[step] += "; its metrics are from an earlier run and are left out"
            continue
        if (folder / "metrics.json").is_file():
            series[step] = read_metrics(folder / "metrics.json")
        by_slice = {slice_id_of(p): read_metrics(p) for p in sorted(folder.glob("slice_z[0-9][0-9]_metrics.json"))}
        if by_slice:
            per_slice[step] = by_slice
    for step, name in SWITCHES.items():
        if config and not config.get(name, True):
            off.setdefault(step, f"switched off ({name} = false)")
    return series, per_slice, off


def _figures(run_dir, subject, verbose):
    """Role -> Figure of each preview picture present."""
    from serialoct.report.model import Figure

    wanted = {
        "drift": ("analyze_shifts/shifts_drift.png", "Motor shifts: cumulative drift and per-slice steps"),
        "volume": (f"stack/{subject}.png", "Orthogonal views of the volume"),
        "annotated": (f"stack/{subject}_annotated.png", "Depth section with each slice's id at its first plane"),
        "rehoming": ("detect_rehoming_events/rehoming_plot.png", "Detected encoder glitches and re-homings"),
        "ras": (f"align_to_ras/{subject}_ras_preview.png", "The volume registered to the atlas (RAS)"),
    }
    if verbose:
        for path in sorted((run_dir / "previews" / "stitched_slices").glob("slice_z[0-9][0-9].png")):
            wanted[path.stem.replace("slice_z", "slice_")] = (str(path.relative_to(run_dir)), f"Stitched slice {path.stem[-2:]}")
    out = {}
    for role, (rel, caption) in wanted.items():
        path = run_dir / rel
        if not path.is_file():
            continue
        data = path.read_bytes()
        if not data.startswith(PNG_SIGNATURE):
            logging.getLogger(__name__).warning("%s is not a PNG picture: left out of the report", path)
            continue
        # Stitched previews share their names with nothing else once prefixed; the others are unique already.
        out[role] = Figure(f"stitched_{path.name}" if role.startswith("slice_") else path.name, data, caption)
    return out


def run(args: argparse.Namespace) -> int:
    import datetime
    from pathlib import Path

    import serialoct
    from serialoct.io.atomic import write_bytes_atomic, write_text_atomic
    from serialoct.io.tables import Metric, read_slice_config
    from serialoct.params import registry
    from serialoct.params.presets import PRESETS
    from serialoct.report.html import render_html, zip_report
    from serialoct.report.model import RunRecord
    from serialoct.report.qc import OUTPUT_FILES, build_report, preset_label, readme_text
    from serialoct.steps import STEPS
    from serialoct.steps.alignment import write_series_metrics
    from serialoct.steps.options import parameters_from_args
    from serialoct.steps.records import read_failure
    from serialoct.steps.slice_step import Timer

    p = parameters_from_args(args, "reconst_3d", PARAMETERS)
    timer = Timer()
    run_dir, output = Path(args.run_dir), Path(args.output)
    config = _config(run_dir)
    subject = output.name.removesuffix(".html").removesuffix("_quality_report") or str(config.get("subject_name", ""))
    series, per_slice, off = _metrics(run_dir, config)
    table = tuple(read_slice_config(run_dir / SLICE_TABLE)) if (run_dir / SLICE_TABLE).is_file() else None
    failures = {}
    for path in sorted((run_dir / "failed").glob("z[0-9][0-9].json")):
        record = read_failure(path)
        failures[record.slice_id] = f"failed in {record.step}: {record.error}"
    defaults = {name: q.default for name, q in registry("reconst_3d").items()}
    created = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    record = RunRecord(subject=subject, created=created, version=serialoct.__version__, config=config,
                       preset=preset_label(config, {k: v.values for k, v in PRESETS.items()}, defaults) if config else "unknown (no configuration)",
                       series=series, per_slice=per_slice, slice_table=table, failures=failures,
                       figures=_figures(run_dir, subject, p["report_verbose"]), switched_off=off, step_order=tuple(STEPS))
    report = build_report(record, verbose=p["report_verbose"])
    if p["report_format"] == "zip":
        written = output.with_suffix(".zip")
        write_bytes_atomic(written, zip_report(report, output.name))
    else:
        written = output
        write_text_atomic(written, render_html(report))
    present = [name for pattern, _ in OUTPUT_FILES if (run_dir / (name := pattern.replace("{subject}", subject))).exists()]
    present.append(f"{subject}_quality_report.html")  # being written: the zip is named in the same line
    readme = Path(args.readme) if args.readme else run_dir / "README" / "readme.txt"
    write_text_atomic(readme, readme_text(subject=subject, version=serialoct.__version__, created=created, preset=record.preset,
                                          config=config, present=present))
    s = report.summary
    write_series_metrics(args.metrics, "generate_report", p, {
        "n_slices": Metric(s.n_slices, "", "slices in the report"),
        "n_stacked": Metric(s.n_stacked, "", "slices in the volume"),
        "n_failed": Metric(s.n_failed, "", "slices a step refused", "error" if s.n_failed else "ok"),
        "n_warning_results": Metric(s.n_warnings, "", "step results with status warning", "warning" if s.n_warnings else "ok"),
        "n_error_results": Metric(s.n_errors, "", "step results with status error", "error" if s.n_errors else "ok"),
    }, timer.elapsed_s, info={"report": str(written), "readme": str(readme), "sections_without_input": dict(report.missing)})
    return 0
