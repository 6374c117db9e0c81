"""Build the quality-control report's content from a run's parsed metrics (no file I/O).

:func:`build_report` decides each slice's outcome and reason from the final
slice table and the failure records, gathers every step's statuses and
warnings, and notes which sections have no input (a step switched off).
:func:`preset_label` and :func:`readme_text` are the small helpers the step
also needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from serialoct.io.tables import SliceConfigRow, StepMetrics
from serialoct.report.model import (
    Outcome, QualityReport, RehomingEvent, RunRecord, SliceEntry, StepOverview, Summary, WarningGroup,
)

__all__ = ["MAIN_PARAMETERS", "OUTPUT_FILES", "build_report", "preset_label", "readme_text"]

#: The parameters the report's header shows (the rest are in a collapsed table): what changes a volume most.
MAIN_PARAMETERS = (
    "input", "output", "subject_name", "resolution", "fix_curvature_enabled", "fix_illum_enabled", "crop_interface_out_depth",
    "stitch_blending_method", "detect_rehoming", "auto_assess_quality", "interpolate_missing_slices", "interpolation_method",
    "registration_transform", "apply_pairwise_transforms", "apply_rotation_only", "stack_accumulate_translations",
    "auto_exclude_enabled", "auto_exclude_z_corr", "pyramid_resolutions", "align_to_ras_enabled",
)
#: Per-slice values shown in the slice table: (key of SliceEntry.values, column title).
SLICE_VALUES = (
    ("quality_score", "Quality score"),
    ("residual_rms_px", "Stitch residual RMS (px)"),
    ("max_residual_px", "Stitch max residual (px)"),
    ("seam_step_max", "Seam step (fraction)"),
    ("confidence", "Registration confidence"),
    ("z_correlation", "Z-correlation"),
    ("intensity_gain", "Intensity gain (stack)"),
    ("local_gain_spread", "Local intensity correction, p95/p5 (stack)"),
)
#: The main files of a reconstruction (relative to the output folder; ``{subject}`` replaced), for readme.txt.
OUTPUT_FILES = (
    ("stack/{subject}.ome.zarr", "the reconstructed volume (OME-Zarr 0.5, pyramid levels)"),
    ("stack/{subject}.ome.zarr.zip", "the same volume in one zip"),
    ("stack/{subject}.png", "orthogonal views of the volume"),
    ("stack/{subject}_annotated.png", "a depth section with every slice's id"),
    ("align_to_ras/{subject}_ras.ome.zarr", "the volume in the atlas (RAS) orientation, when align_to_ras_enabled"),
    ("finalise_interpolation/slice_config_final.csv", "the final slice table: used, excluded (why), interpolated, failed"),
    ("{subject}_quality_report.html", "the quality-control report (or {subject}_quality_report.zip)"),
    ("STEP/metrics.json, STEP/slice_zNN_metrics.json", "each step's measurements and status (ok / warning / error)"),
    ("failed/zNN.json", "slices a step refused, with the reason"),
    ("logs/, benchmarks/", "one log and one runtime record per job"),
    (".serialoct/reconst_3d_config.yaml", "the resolved parameters of the run"),
)
_RANK = {"ok": 0, "warning": 1, "error": 2}


def preset_label(config: Mapping[str, object], presets: Mapping[str, Mapping[str, object]], defaults: Mapping[str, object]) -> str:
    """The preset of a run: the recorded one (``_run.preset``), else the presets whose values the run matches.

    A preset all of whose values are the defaults cannot be told from no
    preset, so a match is only claimed when the run differs from the defaults
    on at least one of the preset's parameters.
    """
    run = config.get("_run")
    if isinstance(run, Mapping) and run.get("preset"):
        return str(run["preset"])
    matches = [name for name, values in presets.items()
               if all(config.get(k) == v for k, v in values.items()) and any(defaults.get(k) != v for k, v in values.items())]
    return f"none recorded (the values match: {', '.join(matches)})" if matches else "none"


def _worst(statuses) -> str | None:
    seen = [s for s in statuses if s is not None]
    return max(seen, key=_RANK.__getitem__) if seen else None


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _slice_values(sid: str, record: RunRecord, row: SliceConfigRow | None) -> dict[str, float | None]:
    stitch = record.per_slice.get("stitch_3d_with_refinement", {}).get(sid)
    placement = (stitch.info.get("placement") or {}) if stitch else {}
    reg = record.per_slice.get("register_pairwise", {}).get(sid)
    scores = record.series["auto_assess_quality"].info.get("scores", {}) if "auto_assess_quality" in record.series else {}
    stack = record.series.get("stack")
    gains = {p["slice_id"]: p.get("intensity_gain") for p in (stack.info.get("slices") or [])} if stack else {}
    local = ((stack.info.get("intensity_maps") or {}).get(sid) or {}).get("gain_p5_p95") if stack else None

    def metric(m: StepMetrics | None, key: str):
        return _number(m.metrics[key].value) if m is not None and key in m.metrics else None

    quality = row.quality_score if row is not None and row.quality_score is not None else _number(scores.get(sid))
    return {
        "quality_score": quality,
        "residual_rms_px": metric(stitch, "residual_rms_px") if metric(stitch, "residual_rms_px") is not None
        else _number(placement.get("residual_rms_px")),
        "max_residual_px": _number(placement.get("max_residual_px")),
        "seam_step_max": metric(stitch, "seam_step_max"),
        "confidence": metric(reg, "confidence"),
        "z_correlation": metric(reg, "z_correlation"),
        "intensity_gain": _number(gains.get(sid)),
        "local_gain_spread": round(local[1] / local[0], 3) if local and local[0] > 0 else None,
    }


def _outcome(sid: str, row: SliceConfigRow | None, failure: str | None, stacked: set[str] | None) -> tuple[Outcome, str]:
    if failure is not None or (row is not None and row.exclude_reason.startswith("failed in")):
        return "failed", failure or row.exclude_reason
    if row is not None:
        if row.interpolated:
            why = row.exclude_reason or "missing"
            return "interpolated", f"{why}; synthesised from its neighbours ({row.interpolation_method_used or 'method not recorded'})"
        if row.interpolation_failed:
            return "left empty", f"{row.exclude_reason or 'missing'}; interpolation failed: {row.interpolation_fallback_reason}"
        if not row.use:
            return "excluded", row.exclude_reason or "use = false in the slice table"
        if row.auto_excluded:
            return "auto-excluded", row.auto_exclude_reason or "auto-excluded"
    if stacked is not None and sid not in stacked:
        return "not stacked", "absent from the stacked volume"
    return "stacked", ""


def _events(metrics: StepMetrics) -> tuple[RehomingEvent, ...]:
    info, out = metrics.info, []
    for key, kind, action in (("corrected_spikes", "encoder glitch", "corrected (step replaced)"),
                              ("corrected_tile_offsets", "tile-size offset", "corrected (offset removed)"),
                              ("rehomings", "re-homing", "kept (genuine stage move)")):
        for e in info.get(key) or []:
            out.append(RehomingEvent(kind, str(e.get("fixed_id", "")), str(e.get("moving_id", "")), _number(e.get("magnitude_mm")),
                                     _number(e.get("return_ratio")), action))
    return tuple(sorted(out, key=lambda e: (e.moving_id, e.kind)))


def _warnings(record: RunRecord, order: Sequence[str]) -> tuple[WarningGroup, ...]:
    groups: dict[tuple[str, str, str], list[str]] = {}
    results = [(step, "", m) for step, m in record.series.items()]
    results += [(step, sid, m) for step, by_slice in record.per_slice.items() for sid, m in by_slice.items()]
    for step, sid, m in results:
        messages = [("warning", w) for w in m.warnings] + [("error", e) for e in m.errors]
        if not messages:  # no message: name the metrics that are not ok
            messages = [(x.status, f"{name} = {_plain(x.value)} {x.unit}".rstrip() + (f" ({x.description})" if x.description else ""))
                        for name, x in m.metrics.items() if x.status != "ok"]
        for status, text in messages:
            groups.setdefault((step, status, text), []).append(sid)
    rank = {s: i for i, s in enumerate(order)}
    return tuple(WarningGroup(step, status, text, tuple(sorted(s for s in sids if s)))
                 for (step, status, text), sids in sorted(groups.items(), key=lambda kv: (-_RANK[kv[0][1]], rank.get(kv[0][0], 99), kv[0][2])))


def _plain(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _overview(record: RunRecord, order: Sequence[str]) -> tuple[StepOverview, ...]:
    out = []
    names = [s for s in order if s in record.series or s in record.per_slice or s in record.switched_off]
    names += sorted((set(record.series) | set(record.per_slice)) - set(names))
    for step in names:
        results = ([record.series[step]] if step in record.series else []) + list(record.per_slice.get(step, {}).values())
        counts = {s: sum(m.overall_status == s for m in results) for s in _RANK}
        note = record.switched_off.get(step, "")
        out.append(StepOverview(step, _worst(m.overall_status for m in results), counts, note))
    return tuple(out)


def build_report(record: RunRecord, *, verbose: bool = False) -> QualityReport:
    """The report's content from a run's parsed inputs.

    Parameters
    ----------
    record : RunRecord
        The run folder's metrics, slice table, failure records and pictures.
    verbose : bool
        Keep every per-slice step's metrics for the per-slice tables (``report_verbose``).

    Returns
    -------
    QualityReport
        Slices in id order (every slice of the table, the metrics and the
        failure records), exclusions, step verdicts, grouped warnings, motor
        events, and a sentence for each section without input.
    """
    order = record.step_order or tuple(sorted(set(record.series) | set(record.per_slice)))
    rank = {s: i for i, s in enumerate(order)}
    slice_steps = tuple(sorted(record.per_slice, key=lambda s: (rank.get(s, 99), s)))
    table = {r.slice_id: r for r in record.slice_table or ()}
    stack = record.series.get("stack")
    placed = {p["slice_id"]: (int(p["z_start"]), int(p["z_stop"])) for p in (stack.info.get("slices") or [])} if stack else {}
    stacked = set(placed) if stack is not None else None
    ids = sorted(set(table) | set(record.failures) | {sid for by in record.per_slice.values() for sid in by} | set(placed))

    entries = []
    for sid in ids:
        row = table.get(sid)
        outcome, reason = _outcome(sid, row, record.failures.get(sid), stacked)
        status = {step: (record.per_slice[step][sid].overall_status if sid in record.per_slice[step] else None) for step in slice_steps}
        entries.append(SliceEntry(sid, outcome, reason, row.notes if row is not None else "", placed.get(sid), status,
                                  _slice_values(sid, record, row)))
    entries = tuple(entries)

    series_results = list(record.series.values()) + [m for by in record.per_slice.values() for m in by.values()]
    if stacked is not None:
        n_stacked = len(stacked)
    else:
        n_stacked = sum(e.outcome in ("stacked", "interpolated") for e in entries)
    summary = Summary(
        n_slices=len(entries), n_stacked=n_stacked, n_interpolated=sum(e.outcome == "interpolated" for e in entries),
        n_excluded=sum(e.outcome in ("excluded", "auto-excluded", "left empty", "not stacked") for e in entries),
        n_failed=sum(e.outcome == "failed" for e in entries),
        n_warnings=sum(m.overall_status == "warning" for m in series_results),
        n_errors=sum(m.overall_status == "error" for m in series_results),
    )

    missing = {}
    off = record.switched_off
    if not entries:
        missing["slices"] = "No slice table and no per-slice metrics were found: the run has not produced per-slice results yet."
    elif record.slice_table is None:
        missing["slices"] = ("finalise_interpolation/slice_config_final.csv is absent: outcomes come from the metrics and failure "
                             "records only (exclusions and interpolations are not known).")
    if "drift" not in record.figures:
        missing["shifts"] = off.get("analyze_shifts", "analyze_shifts/shifts_drift.png is absent (analyze_shifts did not run).")
    if "register_pairwise" not in record.per_slice:
        missing["registration"] = "No register_pairwise/*_metrics.json: pairwise registration did not run."
    exclusions = tuple(e for e in entries if e.outcome != "stacked")
    if not exclusions:
        missing["exclusions"] = ("Every slice was stacked from its own data: none excluded, interpolated or failed."
                                 if record.slice_table is not None else "No final slice table: exclusions are not known.")
    if "volume" not in record.figures and "annotated" not in record.figures:
        missing["volume"] = f"stack/{record.subject}.png and stack/{record.subject}_annotated.png are absent (the volume was not stacked)."
    if "detect_rehoming_events" not in record.series:
        missing["events"] = off.get("detect_rehoming_events", "detect_rehoming_events/metrics.json is absent (the step did not run).")
    events = _events(record.series["detect_rehoming_events"]) if "detect_rehoming_events" in record.series else ()
    if not events and "events" not in missing:
        missing["events"] = "No encoder glitch and no re-homing was detected in the motor shifts."
    steps = _overview(record, order)
    if not steps:
        missing["steps"] = "No metrics JSON was found in the run folder."

    config = {k: v for k, v in record.config.items() if not k.startswith("_")}
    thresholds = {k: float(config[k]) for k in ("auto_exclude_z_corr", "z_overlap_min_corr") if _number(config.get(k)) is not None}
    return QualityReport(
        subject=record.subject, created=record.created, version=record.version, preset=record.preset,
        main_parameters=tuple((k, config[k]) for k in MAIN_PARAMETERS if k in config),
        all_parameters=tuple(config.items()), summary=summary, slice_steps=slice_steps, slices=entries, exclusions=exclusions,
        steps=steps, warnings=_warnings(record, order), events=events, series=dict(record.series), figures=dict(record.figures),
        missing=missing, thresholds=thresholds,
        verbose_tables={s: record.per_slice[s] for s in slice_steps} if verbose else {},
    )


def readme_text(*, subject: str, version: str, created: str, preset: str, config: Mapping[str, object],
                present: Sequence[str] = ()) -> str:
    """``README/readme.txt`` of a run folder: what produced it, with which parameters, and the main files.

    ``present`` lists the main files (as in :data:`OUTPUT_FILES`, subject
    filled in) that exist, so the list marks the ones a run did not write.
    """
    lines = [f"serialoct reconstruction of {subject}", "=" * (28 + len(subject)), "",
             f"serialoct version: {version}", f"written: {created}", f"preset: {preset}", "",
             "Main output files (relative to this run folder)", "-----------------------------------------------"]
    for pattern, what in OUTPUT_FILES:
        name = pattern.replace("{subject}", subject)
        mark = "" if not present or name in present or "STEP" in name or "NN" in name or name.endswith("/") else "  (not written by this run)"
        lines.append(f"  {name}")
        lines.append(f"      {what.replace('{subject}', subject)}{mark}")
    lines += ["", "Parameters used (.serialoct/reconst_3d_config.yaml)", "---------------------------------------------------"]
    params = {k: v for k, v in config.items() if not k.startswith("_")}
    if not params:
        lines.append("  (no resolved configuration found in .serialoct/)")
    width = max((len(k) for k in params), default=0)
    lines += [f"  {k.ljust(width)} = {_yaml_like(v)}" for k, v in params.items()]
    return "\n".join(lines) + "\n"


def _yaml_like(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml_like(v) for v in value) + "]"
    if value == "":
        return "''"
    return str(value)
