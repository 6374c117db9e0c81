"""The quality-control report as one HTML page (pure: a :class:`QualityReport` in, text out).

Every piece of text from the run goes through :func:`html.escape`. Pictures
are embedded as base64 ``data:`` URIs (a self-contained file), or linked by
the relative paths the caller gives (the zip bundle). The registration plot
is inline SVG, drawn here without a plotting library.
"""

from __future__ import annotations

import base64
import html
import io
import zipfile
from collections.abc import Mapping, Sequence

from serialoct.io.tables import StepMetrics
from serialoct.report.model import Figure, QualityReport, SliceEntry
from serialoct.report.qc import SLICE_VALUES

__all__ = ["confidence_svg", "format_value", "render_html", "zip_report"]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;color:#222}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left}
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}
.status-ok{background:#d4efd4}.status-warning{background:#fde9a9}.status-error{background:#f6c1c1}.status-none{background:#eee;color:#888}
tr.outcome-excluded td,tr.outcome-auto-excluded td,tr.outcome-not-stacked td{color:#666}.scroll{overflow-x:auto}
.cards{display:flex;flex-wrap:wrap;gap:.6em}.card{border:1px solid #ccc;border-radius:6px;padding:.5em 1em;min-width:7em}
.card b{display:block;font-size:1.6em}.missing{color:#666;font-style:italic}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.85em;color:#555}.verdict{display:inline-block;padding:.2em .6em;border-radius:4px;font-weight:bold}
.legend span{display:inline-block;padding:0 .5em;margin-right:.3em}
"""
_STEP_LABELS = {
    "resample_mosaic_grid": "resample", "fix_focal_curvature": "curvature", "fix_illumination": "illumination",
    "stitch_3d_with_refinement": "stitch", "beam_profile_correction": "beam", "crop_interface": "crop",
    "compensate_attenuation": "attenuation", "normalize": "normalize", "register_pairwise": "registration",
}


def _e(value: object) -> str:
    return html.escape(str(value))


def format_value(value: object) -> str:
    """A metric value for a table cell: 4 significant digits, lists in brackets, yes/no, an em dash for none."""
    if value is None:
        return "\u2014"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {format_value(v)}" for k, v in value.items())
    return str(value)


def _status_cell(status: str | None, text: str | None = None) -> str:
    cls = status or "none"
    return f'<td class="status-{cls}" data-status="{cls}">{_e(text if text is not None else (status or "not run"))}</td>'


def _section(key: str, title: str, body: str, report: QualityReport) -> str:
    if key in report.missing:
        body = f'<p class="missing">{_e(report.missing[key])}</p>' + body
    return f'<section id="{key}">\n<h2>{_e(title)}</h2>\n{body}\n</section>\n'


def _table(header: Sequence[str], rows: Sequence[str], cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>\n' + "\n".join(rows) + "\n</tbody></table>"


def _figure(fig: Figure, href: Mapping[str, str] | None, role: str) -> str:
    src = href[role] if href is not None else "data:image/png;base64," + base64.b64encode(fig.png).decode("ascii")
    return f'<figure><img src="{_e(src)}" alt="{_e(fig.caption)}"><figcaption>{_e(fig.caption)}</figcaption></figure>'


def _header(r: QualityReport) -> str:
    meta = [("Subject", r.subject), ("Report date", r.created), ("serialoct version", r.version), ("Preset", r.preset)]
    rows = [f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in meta]
    params = [f"<tr><td>{_e(k)}</td><td>{_e(format_value(v))}</td></tr>" for k, v in r.main_parameters]
    every = [f"<tr><td>{_e(k)}</td><td>{_e(format_value(v))}</td></tr>" for k, v in r.all_parameters]
    body = "<table>" + "".join(rows) + "</table>"
    if params:
        body += "<h3>Main parameters</h3>" + _table(("Parameter", "Value"), params)
    else:
        body += '<p class="missing">No resolved configuration (.serialoct/reconst_3d_config.yaml) was found.</p>'
    if every:
        body += f"<details><summary>All {len(every)} parameters</summary>" + _table(("Parameter", "Value"), every) + "</details>"
    return f'<header id="header">\n<h1>Quality report: {_e(r.subject)}</h1>\n{body}\n</header>\n'


def _summary(r: QualityReport) -> str:
    s = r.summary
    verdict = {"ok": "no warnings", "warning": "warnings to review", "error": "errors: check before use"}[s.status]
    cards = [("slices", s.n_slices), ("stacked", s.n_stacked), ("interpolated", s.n_interpolated), ("excluded", s.n_excluded),
             ("failed", s.n_failed), ("warnings", s.n_warnings), ("errors", s.n_errors)]
    body = f'<p>Overall: <span class="verdict status-{s.status}" data-status="{s.status}">{_e(verdict)}</span></p>'
    body += '<div class="cards">' + "".join(f'<div class="card" id="count-{k}"><b>{v}</b>{_e(k)}</div>' for k, v in cards) + "</div>"
    body += ("<p>Warnings and errors count the step results (one per slice for per-slice steps, one per series step) "
             "whose status is warning or error.</p>")
    if r.warnings:
        items = []
        for w in r.warnings:
            where = f" (slices {', '.join(w.slices)})" if w.slices else ""
            items.append(f'<li class="status-{w.status}" data-status="{w.status}"><b>{_e(w.step)}</b>: {_e(w.message)}{_e(where)}</li>')
        body += "<h3>Warnings and errors</h3><ul>" + "".join(items) + "</ul>"
    return _section("summary", "Summary", body, r)


def _planes(planes: tuple[int, int] | None) -> str:
    return f"{planes[0]}\u2013{planes[1]}" if planes else "\u2014"


def _slice_row(e: SliceEntry, steps: Sequence[str]) -> str:
    cells = [f'<td class="status-{e.status}">{_e(e.slice_id)}</td>', f"<td>{_e(e.outcome)}</td>", f"<td>{_e('; '.join(x for x in (e.reason, e.notes) if x))}</td>",
             f"<td>{_e(_planes(e.depth_planes))}</td>"]
    cells += [_status_cell(e.step_status.get(s)) for s in steps]
    cells += [f'<td class="num">{_e(format_value(e.values.get(k)))}</td>' for k, _ in SLICE_VALUES]
    outcome = e.outcome.replace(" ", "-")
    return f'<tr id="slice-{_e(e.slice_id)}" class="outcome-{outcome}" data-status="{e.status}">' + "".join(cells) + "</tr>"


def _slices(r: QualityReport) -> str:
    header = ["Slice", "Outcome", "Reason / notes", "Depth planes"] + [_STEP_LABELS.get(s, s) for s in r.slice_steps]
    header += [title for _, title in SLICE_VALUES]
    legend = ('<p class="legend">Step status: <span class="status-ok">ok</span><span class="status-warning">warning</span>'
              '<span class="status-error">error</span><span class="status-none">not run</span>; the slice id takes the worst '
              "of its steps. Registration is to the slice above (none for the first slice and across a gap).</p>")
    table = _table(header, [_slice_row(e, r.slice_steps) for e in r.slices], "slices")
    body = legend + f'<div class="scroll">{table}</div>' if r.slices else ""
    return _section("slices", "Slices", body, r)


def _exclusions(r: QualityReport) -> str:
    rows = [f'<tr id="excluded-{_e(e.slice_id)}" class="outcome-{e.outcome.replace(" ", "-")}"><td>{_e(e.slice_id)}</td>'
            f"<td>{_e(e.outcome)}</td><td>{_e(e.reason)}</td></tr>" for e in r.exclusions]
    return _section("exclusions", "Excluded and interpolated slices", _table(("Slice", "Outcome", "Reason"), rows) if rows else "", r)


def _metrics_table(m: StepMetrics) -> str:
    rows = [f"<tr><td>{_e(k)}</td><td class=\"num\">{_e(format_value(x.value))}</td><td>{_e(x.unit)}</td><td>{_e(x.description)}</td>"
            + _status_cell(x.status) + "</tr>" for k, x in m.metrics.items()]
    return _table(("Metric", "Value", "Unit", "Description", "Status"), rows)


def _shifts(r: QualityReport, href) -> str:
    body = _metrics_table(r.series["analyze_shifts"]) if "analyze_shifts" in r.series else ""
    if "drift" in r.figures:
        body += _figure(r.figures["drift"], href, "drift")
    return _section("shifts", "Motor shifts and drift", body, r)


def confidence_svg(entries: Sequence[SliceEntry], *, threshold: float | None = None, width: int = 720, height: int = 260) -> str:
    """Registration confidence and z-correlation per slice as an inline SVG line plot.

    The x axis spans every slice id of ``entries`` (gaps stay visible); a
    slice without a registration breaks the lines. ``threshold`` draws a
    dashed line (``auto_exclude_z_corr``).
    """
    ids = [int(e.slice_id) for e in entries]
    if not ids:
        return ""
    left, right, top, bottom = 48, 16, 30, 40
    values = [e.values.get(k) for e in entries for k in ("confidence", "z_correlation") if e.values.get(k) is not None]
    y_low = min([0.0] + values + ([threshold] if threshold is not None else []))
    y_low = -1.0 if y_low < -0.5 else (-0.5 if y_low < 0 else 0.0)
    x0, x1 = min(ids), max(max(ids), min(ids) + 1)

    def x(i: float) -> float:
        return left + (i - x0) / (x1 - x0) * (width - left - right)

    def y(v: float) -> float:
        return top + (1.0 - v) / (1.0 - y_low) * (height - top - bottom)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             'role="img" aria-label="registration confidence and z-correlation per slice" font-size="11">',
             f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" fill="#fafafa" stroke="#999"/>']
    ticks = [y_low + k * 0.25 for k in range(int(round((1.0 - y_low) / 0.25)) + 1)]
    for t in ticks:
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#e2e2e2"/>'
                     f'<text x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{t:.2f}</text>')
    step = max(1, (x1 - x0) // 20)
    for i in range(x0, x1 + 1, step):
        parts.append(f'<text x="{x(i):.1f}" y="{height - bottom + 16}" text-anchor="middle">{i:02d}</text>')
    parts.append(f'<text x="{(left + width - right) / 2:.0f}" y="{height - 6}" text-anchor="middle">slice (moving, registered to the one above)</text>')
    if threshold is not None:
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(threshold):.1f}" y2="{y(threshold):.1f}" stroke="#c00" '
                     f'stroke-dasharray="5,4"><title>auto_exclude_z_corr = {threshold:g}</title></line>')
    for key, colour, label in (("confidence", "#1f6fb4", "confidence"), ("z_correlation", "#e07b00", "z-correlation")):
        runs, current, prev = [], [], None
        for e in entries:
            v = e.values.get(key)
            if v is None or (prev is not None and int(e.slice_id) != prev + 1):
                if current:
                    runs.append(current)
                current = []
            if v is not None:
                current.append((int(e.slice_id), v))
            prev = int(e.slice_id)
        if current:
            runs.append(current)
        for run in runs:
            if len(run) > 1:
                pts = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in run)
                parts.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
            for i, v in run:  # hollow circles and filled squares: both stay visible where the two values coincide
                tip = f"<title>slice {i:02d}: {label} {v:.3f}</title>"
                if key == "confidence":
                    parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="5" fill="none" stroke="{colour}" stroke-width="2">{tip}</circle>')
                else:
                    parts.append(f'<rect x="{x(i) - 3:.1f}" y="{y(v) - 3:.1f}" width="6" height="6" fill="{colour}">{tip}</rect>')
    for n, (colour, label) in enumerate((("#1f6fb4", "confidence (circles)"), ("#e07b00", "z-correlation (squares)"))):
        lx = left + n * 170
        parts.append(f'<rect x="{lx}" y="8" width="10" height="10" fill="{colour}"/><text x="{lx + 14}" y="17">{label}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _registration(r: QualityReport) -> str:
    body = ""
    if "registration" not in r.missing:
        body = confidence_svg(r.slices, threshold=r.thresholds.get("auto_exclude_z_corr"))
        body += ("<p>Confidence and z-correlation of each slice's registration to the slice above "
                 "(dashed: auto_exclude_z_corr). A missing point is a slice without a registration.</p>")
    return _section("registration", "Registration confidence", body, r)


def _volume(r: QualityReport, href) -> str:
    body = "".join(_figure(r.figures[k], href, k) for k in ("volume", "annotated", "ras") if k in r.figures)
    if "stack" in r.series:
        body += "<h3>Stacking</h3>" + _metrics_table(r.series["stack"])
    return _section("volume", "The volume", body, r)


def _events(r: QualityReport, href) -> str:
    rows = [f"<tr><td>{_e(ev.kind)}</td><td>{_e(ev.fixed_id)} \u2192 {_e(ev.moving_id)}</td><td class=\"num\">{_e(format_value(ev.magnitude_mm))}</td>"
            f"<td class=\"num\">{_e(format_value(ev.return_ratio))}</td><td>{_e(ev.action)}</td></tr>" for ev in r.events]
    body = _table(("Event", "Slices", "Step (mm)", "Return ratio", "Action"), rows) if rows else ""
    if "rehoming" in r.figures:
        body += _figure(r.figures["rehoming"], href, "rehoming")
    return _section("events", "Encoder glitches and re-homing events", body, r)


def _steps(r: QualityReport) -> str:
    rows = []
    for s in r.steps:
        counts = ", ".join(f"{n} {k}" for k, n in s.counts.items() if n)
        rows.append(f'<tr id="step-{_e(s.step)}"><td>{_e(s.step)}</td>' + _status_cell(s.status) + f"<td>{_e(counts)}</td><td>{_e(s.note)}</td></tr>")
    body = _table(("Step", "Status", "Results", "Note"), rows) if rows else ""
    skip = {"analyze_shifts", "stack"}  # shown in their own sections
    for name, m in r.series.items():
        if name not in skip and m.metrics:
            body += f"<details><summary>{_e(name)} metrics</summary>{_metrics_table(m)}</details>"
    return _section("steps", "Steps", body, r)


def _verbose(r: QualityReport, href) -> str:
    body = ""
    for step, by_slice in r.verbose_tables.items():
        names = list(dict.fromkeys(k for m in by_slice.values() for k in m.metrics))
        units = {k: m.metrics[k].unit for m in by_slice.values() for k in m.metrics}
        header = ["Slice", "Status"] + [f"{k} ({units[k]})" if units[k] else k for k in names] + ["Messages"]
        rows = []
        for sid, m in sorted(by_slice.items()):
            cells = [f"<td>{_e(sid)}</td>", _status_cell(m.overall_status)]
            cells += [_status_cell(m.metrics[k].status, format_value(m.metrics[k].value)) if k in m.metrics else _status_cell(None, "\u2014")
                      for k in names]
            cells.append(f"<td>{_e('; '.join(m.warnings + m.errors))}</td>")
            rows.append("<tr>" + "".join(cells) + "</tr>")
        body += f'<h3 id="verbose-{_e(step)}">{_e(step)}</h3>' + _table(header, rows)
    previews = sorted(k for k in r.figures if k.startswith("slice_"))
    if previews:
        body += "<h3>Stitched slices</h3>" + "".join(_figure(r.figures[k], href, k) for k in previews)
    if not body:
        body = '<p class="missing">No per-slice metrics were found.</p>'
    return _section("per-slice-metrics", "Per-slice metrics", body, r)


def render_html(report: QualityReport, *, image_href: Mapping[str, str] | None = None) -> str:
    """The report as one HTML document.

    Parameters
    ----------
    report : QualityReport
    image_href : mapping of str to str, optional
        Figure role -> relative path of its file (the zip bundle). None embeds
        every picture as a base64 ``data:`` URI (one self-contained file).

    Returns
    -------
    str
        The HTML text.
    """
    body = [_header(report), _summary(report), _slices(report), _exclusions(report), _shifts(report, image_href),
            _registration(report), _volume(report, image_href), _events(report, image_href), _steps(report)]
    if report.verbose_tables:
        body.append(_verbose(report, image_href))
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{_e(report.subject)}: serialoct quality report</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "".join(body) + f'<footer><p>serialoct {_e(report.version)}, {_e(report.created)}</p></footer>\n</body>\n</html>\n')


def zip_report(report: QualityReport, html_name: str) -> bytes:
    """The zip bundle: ``html_name`` linking its pictures as ``images/<name>``, and the pictures.

    Returns the bytes of an uncompressed-pictures zip (PNG does not deflate further); the HTML is deflated.
    """
    href = {role: f"images/{fig.name}" for role, fig in report.figures.items()}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr(html_name, render_html(report, image_href=href), compress_type=zipfile.ZIP_DEFLATED)
        for role, fig in report.figures.items():
            bundle.writestr(href[role], fig.png, compress_type=zipfile.ZIP_STORED)
    return buffer.getvalue()
