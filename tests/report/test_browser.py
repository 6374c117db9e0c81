"""The report in a real browser: every picture decodes and no section is empty (headless Chromium; skipped without it)."""

from __future__ import annotations

import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.report.conftest import run_report

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")) if p and Path(p).is_file()),
                None)
#: Seconds one headless page load may take (a cold start is about 1-2 s).
BROWSER_TIMEOUT_S = 60
# Counts, once the page has loaded: pictures that did not decode, sections with nothing but their title, pictures, sections.
CHECK = """<script>
window.addEventListener("load", function () {
  var images = Array.from(document.images);
  var broken = images.filter(function (i) { return !i.complete || i.naturalWidth === 0; }).length;
  var sections = Array.from(document.querySelectorAll("section"));
  var empty = sections.filter(function (s) {
    var title = s.querySelector("h2");
    return !title || s.innerText.trim().length <= title.innerText.trim().length;
  }).length;
  document.title = "check " + broken + " " + empty + " " + images.length + " " + sections.length;
});
</script>
"""

pytestmark = [pytest.mark.usefixtures("report_parameters"),
              pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")]


def _browser_counts(page: Path, profile: Path) -> tuple[int, int, int, int]:
    checked = page.with_name("check_" + page.name)
    checked.write_text(page.read_text(encoding="utf-8").replace("</body>", CHECK + "</body>"), encoding="utf-8")
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom",
         checked.as_uri()],
        capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, check=False)
    found = re.search(r"<title>check (\d+) (\d+) (\d+) (\d+)</title>", result.stdout)
    assert found, f"no check result in the dumped page (exit {result.returncode}): {result.stderr[-2000:]}"
    return tuple(int(v) for v in found.groups())


def test_self_contained_report_shows_every_picture_and_no_empty_section(run_folder, tmp_path):
    report = run_report(run_folder, "--report_format", "html", "--report_verbose")
    broken, empty, images, sections = _browser_counts(report, tmp_path / "profile")
    assert (broken, empty) == (0, 0)
    assert images == 3 and sections == 9


def test_zipped_report_resolves_its_relative_pictures(run_folder, tmp_path):
    report = run_report(run_folder)
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(report.with_suffix(".zip")) as bundle:
        bundle.extractall(folder)
    broken, empty, images, sections = _browser_counts(folder / report.name, tmp_path / "profile")
    assert (broken, empty, images) == (0, 0, 3)


def test_report_without_inputs_has_no_empty_section(tmp_path):
    (tmp_path / "empty").mkdir()
    report = run_report(tmp_path / "empty", "--report_format", "html", output=tmp_path / "empty" / "x_quality_report.html")
    broken, empty, images, sections = _browser_counts(report, tmp_path / "profile")
    assert (broken, empty, images) == (0, 0, 0) and sections == 8
