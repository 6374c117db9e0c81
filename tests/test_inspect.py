"""``serialoct inspect RAW`` tells what an acquisition holds, and warns before a wrong axial resolution is used."""

from __future__ import annotations

import shutil
import subprocess
import sys

from serialoct.cli import BROKEN_PIPE_STATUS, main
from serialoct.synth import preset, write_acquisition


def test_the_sample_is_summarised_as_its_stated_geometry(sample_acquisition, sample_expected, capsys):
    _, truth = sample_expected
    assert main(["inspect", str(sample_acquisition), "--axial_resolution", str(truth["axial_voxel_um"])]) == 0
    out = capsys.readouterr().out
    n_z, nx, ny = truth["tile_shape_zxy"]
    gx, gy = truth["grid"]
    assert f"2 slice(s) 00, 01; {2 * gx * gy} tiles" in out
    assert f"tile (z, x, y) = ({n_z}, {nx}, {ny}); lateral pixel {truth['lateral_pixel_um']:g} x {truth['lateral_pixel_um']:g} µm" in out
    assert f"n_repeat {truth['n_repeat']}; n_extra {truth['n_extra']}" in out
    assert f"depth {n_z * truth['axial_voxel_um']:.0f} µm = {n_z} samples x {truth['axial_voxel_um']:g} µm\n" in out
    assert out.count(f"grid {gx} x {gy}") == 2
    assert "warning" not in out  # no metadata.json: no cut thickness to compare with


def test_the_depth_is_compared_with_the_cut_thickness_and_a_shallow_one_is_flagged(tmp_path, capsys):
    config = preset("tiny")  # 32 samples of 8 µm, cut every 80 µm
    write_acquisition(tmp_path / "raw", config, seed=0)
    assert main(["inspect", str(tmp_path / "raw")]) == 0
    out = capsys.readouterr().out
    assert "depth 44 µm = 32 samples x 1.36 µm (preproc's default axial_resolution; the tiles do not record it); " \
           "cut thickness 0.08 mm (metadata.json)" in out
    assert "warning: the tiles image 44 µm in depth" in out and "--axial_resolution" in out
    assert main(["inspect", str(tmp_path / "raw"), "--axial_resolution", str(config.axial_resolution_um)]) == 0
    out = capsys.readouterr().out
    assert "depth 256 µm = 32 samples x 8 µm; cut thickness 0.08 mm (metadata.json)" in out
    assert "warning" not in out


def test_a_reader_that_closes_the_output_ends_the_command_quietly(sample_acquisition):
    # As ``serialoct inspect RAW | head -1``: the command finds its output closed and leaves without a traceback.
    command = subprocess.Popen([sys.executable, "-m", "serialoct", "inspect", str(sample_acquisition)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    command.stdout.close()
    assert command.wait(timeout=60) == BROKEN_PIPE_STATUS
    assert command.stderr.read() == b""
    command.stderr.close()


def test_every_slice_preproc_would_refuse_is_listed_with_its_reason_and_a_gap_in_the_ids_is_named(tmp_path, capsys):
    raw = tmp_path / "raw"
    write_acquisition(raw, preset("tiny"), seed=0)
    cut = next((raw / "slice_z02" / "tiles").glob("tile_*")) / "image_00000.bin"
    cut.write_bytes(cut.read_bytes()[:1000])
    (raw / "slice_z03" / "metadata.json").write_text("{bad")
    shutil.rmtree(raw / "slice_z04")
    assert main(["inspect", str(raw), "--axial_resolution", "8"]) == 2
    captured = capsys.readouterr()
    assert f"{raw}: 5 slice(s) 00, 01, 02, 03, 05 (missing: 04); " in captured.out
    assert f"  slice 02: cannot be read: {cut}: 1,000 bytes is not a whole number of B-scans" in captured.out
    assert f"  slice 03: cannot be read: {raw}/slice_z03/metadata.json: not valid JSON" in captured.out
    assert sum(line.startswith("  slice ") and "grid 2 x 2" in line for line in captured.out.splitlines()) == 3
    assert "serialoct inspect: error: 2 slice(s) cannot be read (02, 03)" in captured.err
