"""The report's pure parts: the registration plot, the preset label, value formatting, an empty run."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from serialoct.params import PRESETS, registry
from serialoct.report.html import confidence_svg, format_value, render_html
from serialoct.report.model import RunRecord, SliceEntry
from serialoct.report.qc import build_report, preset_label

SVG = "{http://www.w3.org/2000/svg}"


def _entry(sid: str, confidence=None, z_correlation=None) -> SliceEntry:
    return SliceEntry(sid, "stacked", "", "", None, {}, {"confidence": confidence, "z_correlation": z_correlation})


def test_confidence_plot_marks_each_registration_and_breaks_its_lines_at_a_gap():
    entries = [_entry("01"), _entry("02", 0.9, 0.8), _entry("03", 0.7, 0.6), _entry("04"), _entry("05", 0.5, -0.2), _entry("06", 0.4, 0.3)]
    root = ET.fromstring(confidence_svg(entries, threshold=0.6))  # well-formed XML
    circles = root.findall(f"{SVG}circle")  # confidence
    squares = [r for r in root.findall(f"{SVG}rect") if r.find(f"{SVG}title") is not None]  # z-correlation
    assert [c.find(f"{SVG}title").text for c in circles] == [f"slice {s}: confidence {v:.3f}" for s, v in
                                                             (("02", 0.9), ("03", 0.7), ("05", 0.5), ("06", 0.4))]
    assert len(squares) == 4
    assert len(root.findall(f"{SVG}polyline")) == 4  # 02-03 and 05-06 for each series, nothing across 04
    assert "-0.50" in [t.text for t in root.findall(f"{SVG}text")]  # the axis reaches down to a negative correlation
    assert root.find(f"{SVG}line[@stroke-dasharray]").find(f"{SVG}title").text == "auto_exclude_z_corr = 0.6"
    # a higher value is drawn higher
    ys = {c.find(f"{SVG}title").text[6:8]: float(c.get("cy")) for c in circles}
    assert ys["02"] < ys["03"] < ys["05"] < ys["06"]


def test_preset_is_the_recorded_one_else_the_one_the_values_match():
    defaults = {name: p.default for name, p in registry("reconst_3d").items()}
    presets = {k: v.values for k, v in PRESETS.items()}
    assert preset_label({**defaults, "_run": {"preset": "minimal"}}, presets, defaults) == "minimal"
    assert preset_label({**defaults, **presets["conservative"]}, presets, defaults) == "none recorded (the values match: conservative)"
    assert preset_label({**defaults, "apply_rotation_only": True}, presets, defaults) == "none"


def test_values_are_formatted_for_a_table_cell():
    assert [format_value(v) for v in (None, True, 0.123456, [1.0, 2.5], "x")] == ["\u2014", "yes", "0.1235", "[1, 2.5]", "x"]


def test_an_empty_run_still_renders_every_section_with_a_reason():
    report = build_report(RunRecord(subject="s<1>", created="2026-01-01T00:00:00+00:00", version="0.1.0"))
    text = render_html(report)
    assert set(report.missing) == {"slices", "shifts", "registration", "exclusions", "volume", "events", "steps"}
    sections = re.findall(r'<section id="([^"]+)">(.*?)</section>', text, re.S)
    assert [s for s, _ in sections] == ["summary", "slices", "exclusions", "shifts", "registration", "volume", "events", "steps"]
    assert all('class="missing"' in body for name, body in sections if name != "summary")
    assert "s&lt;1&gt;" in text and "s<1>" not in text
