"""``serialoct synth``: the command line."""

from __future__ import annotations

from serialoct.cli import main
from serialoct.io.acquisition import discover_slices
from serialoct.synth import load_truth


def test_synth_writes_the_tiny_preset_and_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "raw"
    assert main(["synth", str(out), "--seed", "3", "--workers", "1"]) == 0
    summary = capsys.readouterr().out
    assert "Wrote 6 of 6 slices (2x2 tiles of 32x48x48 voxels" in summary
    assert "MB of raw data" in summary and str(out / "truth") in summary
    assert list(discover_slices(out)) == ["00", "01", "02", "03", "04", "05"]
    assert load_truth(out).seed == 3


def test_synth_options_reach_the_config(tmp_path, capsys):
    out = tmp_path / "raw"
    args = ["synth", str(out), "--old-layout", "--set", "n_slices=4", "--set", "missing_slice=1",
            "--set", "rehoming_slice=null", "--set", "tile_holes=[[2, 1, 1]]"]
    assert main(args) == 0
    truth = load_truth(out)
    assert truth.config.old_layout and truth.config.tile_holes == ((2, 1, 1),)
    assert list(discover_slices(out, old_layout=True)) == ["00", "02", "03"]
    assert "Events: glitch 02, missing 01" in capsys.readouterr().out


def test_synth_refuses_a_non_empty_folder_and_a_bad_override_with_status_2(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    assert main(["synth", str(tmp_path)]) == 2
    assert "output folder is not empty" in capsys.readouterr().err
    assert main(["synth", str(tmp_path / "new"), "--set", "n_slice=3"]) == 2
    assert "unknown synth config field(s) ['n_slice']" in capsys.readouterr().err
    assert main(["synth", str(tmp_path / "new"), "--set", "overlap_fraction=0.9"]) == 2
    assert "overlap_fraction = 0.9" in capsys.readouterr().err
