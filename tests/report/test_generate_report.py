"""The generate_report step: the QC report's content claims, its two formats and readme.txt."""

from __future__ import annotations

import base64
import json
import zipfile
from html.parser import HTMLParser

import pytest

import serialoct
from tests.report.conftest import HOSTILE_NOTE, REASONS, SUBJECT, run_report, write_run

pytestmark = pytest.mark.usefixtures("report_parameters")


class Page(HTMLParser):
    """What the tests look at: table rows by id (cells with class and text), image sources, section texts."""

    def __init__(self, text: str):
        super().__init__()
        self.rows: dict[str, list[tuple[str, str]]] = {}
        self.row_attrs: dict[str, dict] = {}
        self.images: list[str] = []
        self.sections: dict[str, str] = {}
        self._row = self._cell = self._section = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and a.get("id"):
            self._row = a["id"]
            self.rows[self._row], self.row_attrs[self._row] = [], a
        elif tag == "td" and self._row:
            self._cell = [a.get("class", ""), ""]
        elif tag == "img":
            self.images.append(a["src"])
        elif tag in ("section", "header") and a.get("id"):
            self._section = a["id"]
            self.sections[self._section] = ""

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None and self._row:
            self.rows[self._row].append(tuple(self._cell))
            self._cell = None
        elif tag == "tr":
            self._row = None
        elif tag in ("section", "header"):
            self._section = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data
        if self._section:
            self.sections[self._section] += data


def test_every_slice_is_in_the_table_with_its_status_colour(run_folder):
    page = Page(run_report(run_folder, "--report_format", "html").read_text(encoding="utf-8"))
    rows = {k.removeprefix("slice-"): v for k, v in page.rows.items() if k.startswith("slice-")}
    assert sorted(rows) == [f"{i:02d}" for i in range(8)]
    status = {sid: page.row_attrs[f"slice-{sid}"]["data-status"] for sid in rows}
    assert status == {"00": "ok", "01": "ok", "02": "ok", "03": "warning", "04": "ok", "05": "error", "06": "error", "07": "warning"}
    for sid, cells in rows.items():
        assert cells[0] == (f"status-{status[sid]}", sid)  # the id cell carries the row's colour
    # one coloured cell per per-slice step, in pipeline order: stitch, crop, normalize, registration
    assert [c[0] for c in rows["03"][4:8]] == ["status-ok", "status-warning", "status-ok", "status-warning"]
    assert [c[0] for c in rows["05"][4:8]] == ["status-error", "status-ok", "status-ok", "status-none"]
    assert [c[0] for c in rows["04"][4:8]] == ["status-none"] * 4
    # stitching residual RMS, max residual, seam step, confidence, z-correlation, stack intensity gain and local spread of slice 03
    assert [c[1] for c in rows["03"][-7:]] == ["0.13", "0.53", "0.006", "0.42", "0.55", "1", "1.5"]
    assert rows["02"][-2][1] == "1.6"  # the slice the stack brightened to match its neighbours
    assert rows["02"][-1][1] == "\u2014"  # no local map recorded
    assert rows["01"][-8][1] == "\u2014"  # quality score of a switched-off auto_assess_quality is not shown


def test_excluded_and_interpolated_slices_are_listed_with_their_reasons(run_folder):
    page = Page(run_report(run_folder, "--report_format", "html").read_text(encoding="utf-8"))
    listed = {k.removeprefix("excluded-"): (v[1][1], v[2][1]) for k, v in page.rows.items() if k.startswith("excluded-")}
    assert set(listed) == {"00", "04", "05", "06", "07"}
    assert listed["00"] == ("excluded", REASONS["00"])
    assert listed["04"][0] == "interpolated" and "zmorph" in listed["04"][1] and "missing" in listed["04"][1]
    assert listed["05"] == ("auto-excluded", REASONS["05"])
    assert listed["06"] == ("failed", REASONS["06"])
    assert listed["07"][0] == "left empty" and REASONS["07"] in listed["07"][1]
    summary = page.sections["summary"]
    for count, name in ((8, "slices"), (5, "stacked"), (1, "interpolated"), (3, "excluded"), (1, "failed")):
        assert f"{count}{name}" in summary
    assert "only 480 µm of data below the surface (asked 600) (slices 03)" in summary


def test_html_format_is_one_file_with_every_image_embedded(run_folder):
    report = run_report(run_folder, "--report_format", "html")
    page = Page(report.read_text(encoding="utf-8"))
    originals = {(run_folder / p).read_bytes() for p in ("analyze_shifts/shifts_drift.png", f"stack/{SUBJECT}.png",
                                                          f"stack/{SUBJECT}_annotated.png")}
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    assert {base64.b64decode(src.split(",", 1)[1]) for src in page.images} == originals
    assert not report.with_suffix(".zip").exists()
    metrics = json.loads((run_folder / "generate_report" / "metrics.json").read_text())
    assert metrics["info"]["report"] == str(report) and metrics["metrics"]["n_failed"]["value"] == 1


def test_zip_holds_the_html_and_the_images_it_links(run_folder):
    output = run_report(run_folder)  # report_format defaults to zip
    assert not output.exists()
    with zipfile.ZipFile(output.with_suffix(".zip")) as bundle:
        names = set(bundle.namelist())
        page = Page(bundle.read(output.name).decode("utf-8"))
        assert len(page.images) == 3 and all(src.startswith("images/") for src in page.images)
        assert set(page.images) <= names and names == {output.name, *page.images}
        assert bundle.read(f"images/{SUBJECT}.png") == (run_folder / "stack" / f"{SUBJECT}.png").read_bytes()


def test_readme_lists_the_parameters_the_version_and_the_main_files(run_folder):
    run_report(run_folder)
    text = (run_folder / "README" / "readme.txt").read_text(encoding="utf-8")
    assert f"serialoct version: {serialoct.__version__}" in text
    lines = {line.split("=")[0].strip(): line.split("=", 1)[1].strip() for line in text.splitlines() if " = " in line}
    assert lines["resolution"] == "12.0" and lines["subject_name"] == SUBJECT and lines["report_format"] == "zip"
    assert len(lines) == len(yaml_keys(run_folder))
    assert f"stack/{SUBJECT}.ome.zarr" in text and "finalise_interpolation/slice_config_final.csv" in text


def yaml_keys(run_folder):
    import yaml

    return [k for k in yaml.safe_load((run_folder / ".serialoct" / "reconst_3d_config.yaml").read_text()) if not k.startswith("_")]


def test_text_from_the_run_is_escaped(run_folder):
    text = run_report(run_folder, "--report_format", "html").read_text(encoding="utf-8")
    assert "<script>" not in text and "<b>bold</b>" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in text
    assert HOSTILE_NOTE in Page(text).rows["slice-02"][2][1]


def test_a_run_without_optional_outputs_gives_sections_saying_so(tmp_path):
    run_dir = tmp_path / "bare"
    write_run(run_dir, config_overrides={"detect_rehoming": False, "analyze_shifts": False})
    for path in ("stack/metrics.json", f"stack/{SUBJECT}.png", f"stack/{SUBJECT}_annotated.png",
                 "finalise_interpolation/slice_config_final.csv", "analyze_shifts/shifts_drift.png"):
        (run_dir / path).unlink()
    for folder in ("register_pairwise",):
        for p in (run_dir / folder).iterdir():
            p.unlink()
    page = Page(run_report(run_dir, "--report_format", "html").read_text(encoding="utf-8"))
    assert "switched off (detect_rehoming = false); its metrics are from an earlier run" in page.sections["events"]
    assert "switched off (analyze_shifts = false)" in page.sections["shifts"]
    assert "pairwise registration did not run" in page.sections["registration"]
    assert "the volume was not stacked" in page.sections["volume"]
    assert "slice_config_final.csv is absent" in page.sections["slices"]
    assert page.images == []

    empty = tmp_path / "empty"
    empty.mkdir()
    page = Page(run_report(empty, "--report_format", "html").read_text(encoding="utf-8"))
    assert "No resolved configuration" in page.sections["header"] and "No metrics JSON" in page.sections["steps"]


def test_verbose_adds_a_metric_table_per_step(run_folder):
    plain = run_report(run_folder, "--report_format", "html").read_text(encoding="utf-8")
    verbose = run_report(run_folder, "--report_format", "html", "--report_verbose").read_text(encoding="utf-8")
    assert 'id="per-slice-metrics"' not in plain
    page = Page(verbose)
    for step in ("stitch_3d_with_refinement", "crop_interface", "normalize", "register_pairwise"):
        assert f'id="verbose-{step}"' in verbose
    assert "depth_kept_um (µm)" in page.sections["per-slice-metrics"]


def test_step_runs_from_the_command_line(run_folder, monkeypatch, capsys):
    from serialoct import cli
    from serialoct.steps import STEPS

    monkeypatch.setitem(STEPS, "generate_report", ("serialoct.steps.generate_report", "reconst_3d", "the QC report"))
    output = run_folder / f"{SUBJECT}_quality_report.html"
    assert cli.main(["step", "generate_report", "--run_dir", str(run_folder), "--output", str(output),
                     "--metrics", str(run_folder / "generate_report" / "metrics.json"), "--report_format", "html"]) == 0
    assert output.is_file() and (run_folder / "README" / "readme.txt").is_file()
