"""``serialoct demo`` (what ``make demo`` runs) goes from nothing to a stacked volume and says where everything is."""

from __future__ import annotations

import re
from pathlib import Path

from serialoct.cli import main
from serialoct.io.omezarr import open_ome_zarr


def test_the_demo_renders_preprocesses_reconstructs_and_prints_existing_paths(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", str(out), "--preset", "tiny"]) == 0
    printed = capsys.readouterr().out
    volume = out / "reconstruct" / "stack" / "demo.ome.zarr"
    assert open_ome_zarr(volume).read(0).max() > 0
    assert (out / "reconstruct" / "demo_quality_report.zip").is_file()
    listed = re.findall(r"^\s+[a-z ]+:\s+(\S+)", printed, flags=re.MULTILINE)
    paths = [Path(p.rstrip(",")) for p in listed if p.startswith("/")]
    assert paths and all(p.exists() for p in paths if "NN" not in p.name)
