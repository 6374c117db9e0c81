"""The final summary of a reconstruction run: slices stacked, interpolated, excluded, failed; outputs; wall time."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from serialoct.workflows.targets import SLICE_CONFIG_FINAL, report_output, stack_output

__all__ = ["print_summary", "summary_lines"]


def summary_lines(config: Mapping[str, object], output: Path, elapsed_s: float, failed: Mapping[str, str]) -> list[str]:
    """What happened to every slice and where the results are, from the run's final slice table."""
    from serialoct.errors import SerialOctError
    from serialoct.io.tables import read_slice_config

    lines = [f"reconstruction of {config['input']} -> {output} ({elapsed_s:.1f} s)"]
    table = output / SLICE_CONFIG_FINAL
    try:
        rows = read_slice_config(table) if table.is_file() else []
    except SerialOctError:
        rows = []
    stacked = [r.slice_id for r in rows if (r.use and not r.auto_excluded) or r.interpolated]
    runs = _runs(stacked)
    lines.append(f"  slices stacked: {len(stacked)}" + (f" ({_named(runs)})" if stacked else ""))
    reported = {r.slice_id for r in rows if r.interpolation_failed}  # its own line below says why
    for (_, before), (after, _) in zip(runs, runs[1:]):
        first, last = before + 1, after - 1
        if last > first:
            lines.append(f"  slices {first:02d}-{last:02d} left empty in the volume "
                         f"({last - first + 1} consecutive slices; only single missing slices are interpolated)")
        elif f"{first:02d}" not in reported:
            lines.append(f"  slice {first:02d} left empty in the volume")
    for r in rows:
        if r.interpolated:
            why = f"; {r.exclude_reason or r.auto_exclude_reason}" if r.exclude_reason or r.auto_exclude_reason else ""
            lines.append(f"  slice {r.slice_id} interpolated ({r.interpolation_method_used}{why})")
            continue
        if r.interpolation_failed:
            lines.append(f"  slice {r.slice_id} left empty: {r.interpolation_fallback_reason}")
        if r.slice_id in failed:
            continue
        if not r.use:
            lines.append(f"  slice {r.slice_id} excluded: {r.exclude_reason or 'use = false'}")
        elif r.auto_excluded:
            lines.append(f"  slice {r.slice_id} auto-excluded: {r.auto_exclude_reason}")
    for slice_id, reason in failed.items():
        lines.append(f"  slice {slice_id} FAILED and is excluded: {reason}")
    volume = output / stack_output(config)
    if volume.is_dir():
        lines.append(f"  volume:      {volume}")
        lines.append(f"  previews:    {volume.with_name(volume.name.removesuffix('.ome.zarr') + '.png')} (+ _annotated.png)")
    if table.is_file():
        lines.append(f"  slice table: {table}")
    report = output / report_output(config)
    if config.get("generate_report") and report.is_file():
        lines.append(f"  QC report:   {report}")
    return lines


def _runs(slice_ids: list[str]) -> list[tuple[int, int]]:
    """Runs of consecutive slice numbers, as (first, last)."""
    runs: list[tuple[int, int]] = []
    for n in sorted(int(s) for s in slice_ids):
        if runs and n == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


def _named(runs: list[tuple[int, int]]) -> str:
    """``01, 04-05``."""
    return ", ".join(f"{a:02d}" if a == b else f"{a:02d}-{b:02d}" for a, b in runs)


def print_summary(config: Mapping[str, object], output: Path, result, *, where: str = "") -> None:
    """Print :func:`summary_lines` for a :class:`~serialoct.workflows.runner.RunResult`."""
    lines = summary_lines(config, output, result.elapsed_s, result.failed)
    lines[0] += where
    print("\n" + "\n".join(lines))
