"""End-to-end claims about the preprocessing workflow, run through Snakemake."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from serialoct.cli import main
from serialoct.io.omezarr import open_ome_zarr
from serialoct.io.tables import read_shifts_xy, read_slice_config

AXIAL_UM = 5.0  # the sample's axial voxel (an instrument parameter, not in info.txt)
TILE = 32


def _preproc(raw, out, *extra):
    return main(["preproc", "--input", str(raw), "--output", str(out), "--axial_resolution", str(AXIAL_UM), *extra])


def _tiles_of(mosaic, ix, iy):
    return mosaic[:, ix * TILE : (ix + 1) * TILE, iy * TILE : (iy + 1) * TILE]


@pytest.fixture(scope="module")
def preprocessed(tmp_path_factory, sample_acquisition):
    out = tmp_path_factory.mktemp("preproc")
    assert _preproc(sample_acquisition, out, "--generate_aips", "true", "--generate_previews", "true", "--detect_galvo", "true") == 0
    return out


def test_every_mosaic_tile_equals_the_expected_decoded_tile(preprocessed, sample_expected):
    expected, _ = sample_expected
    for slice_id in ("00", "01"):
        image = open_ome_zarr(preprocessed / f"mosaic_grid_3d_z{slice_id}.ome.zarr")
        mosaic = image.read()
        assert image.level(0).chunks == (24, TILE, TILE)  # chunk = tile
        assert image.voxel_size_mm() == pytest.approx((0.005, 0.01, 0.01))
        for ix in range(2):
            for iy in range(2):
                np.testing.assert_array_equal(_tiles_of(mosaic, ix, iy), expected[f"{slice_id}_{ix:02d}_{iy:02d}"])


def test_mosaic_metadata_validates_as_ngff_0_5(preprocessed):
    from ome_zarr_models.v05 import Image

    Image.from_zarr(open_ome_zarr(preprocessed / "mosaic_grid_3d_z01.ome.zarr").group)


def test_shifts_match_the_stage_positions(preprocessed, sample_acquisition):
    from serialoct.io.acquisition import discover_slices, read_slice_geometry

    (row,) = read_shifts_xy(preprocessed / "shifts_xy.csv")
    stages = [read_slice_geometry(s).stage_mm for s in discover_slices(sample_acquisition).values()]
    xs = [[x for x, _ in stage.values()] for stage in stages]
    low, high = min(xs[0]) - min(xs[1]), max(xs[0]) - max(xs[1])  # formats.md §3: the smaller edge shift
    dx = low if abs(low) <= abs(high) else high
    assert (row.fixed_id, row.moving_id, row.reliable) == ("00", "01", True)
    assert row.x_shift_mm == pytest.approx(dx, abs=1e-6) and row.x_shift == pytest.approx(dx / 0.01, abs=1e-4)


def test_slice_config_excludes_the_calibration_slice_and_records_galvo(preprocessed):
    rows = read_slice_config(preprocessed / "slice_config.csv")
    assert [(r.slice_id, r.use) for r in rows] == [("00", False), ("01", True)]
    assert all(r.galvo_fix and r.galvo_confidence > 0.6 for r in rows)


def test_qc_pictures_are_written(preprocessed):
    from serialoct.io.images import read_png

    aip = read_png(preprocessed / "aips" / "aip_z01.png")
    assert aip.shape == (2 * TILE, 2 * TILE) and aip.std() > 10  # a picture with contrast, not a blank
    assert read_png(preprocessed / "previews" / "mosaic_grid_z01_preview.png").ndim == 2


def test_rerun_does_nothing_and_a_deleted_slice_alone_is_redone(preprocessed, sample_acquisition, capfd):
    z00, z01 = (preprocessed / f"mosaic_grid_3d_z{s}.ome.zarr" / "zarr.json" for s in ("00", "01"))
    before = z00.stat().st_mtime_ns, z01.stat().st_mtime_ns
    capfd.readouterr()
    assert _preproc(sample_acquisition, preprocessed, "--generate_aips", "true", "--generate_previews", "true", "--detect_galvo", "true") == 0
    assert "Nothing to be done" in capfd.readouterr().err
    shutil.rmtree(preprocessed / "mosaic_grid_3d_z01.ome.zarr")
    assert _preproc(sample_acquisition, preprocessed, "--generate_aips", "true", "--generate_previews", "true", "--detect_galvo", "true") == 0
    assert z00.stat().st_mtime_ns == before[0] and z01.stat().st_mtime_ns != before[1]


def test_a_changed_tile_reruns_its_slice_alone(tmp_path, sample_acquisition):
    raw, out = tmp_path / "raw", tmp_path / "out"
    shutil.copytree(sample_acquisition, raw)
    assert _preproc(raw, out) == 0
    z00, z01 = (out / f"mosaic_grid_3d_z{s}.ome.zarr" for s in ("00", "01"))
    before = (z00 / "zarr.json").stat().st_mtime_ns
    old = _tiles_of(open_ome_zarr(z01).read(), 1, 0)
    for frames in (raw / "slice_z01" / "tiles" / "tile_x01_y00_z01").glob("image_*.bin"):
        frames.write_bytes((np.fromfile(frames, dtype="<f4") * 2).astype("<f4").tobytes())  # same size, new content
    assert _preproc(raw, out) == 0
    assert (z00 / "zarr.json").stat().st_mtime_ns == before
    np.testing.assert_allclose(_tiles_of(open_ome_zarr(z01).read(), 1, 0), 2 * old, rtol=1e-6)


def test_old_layout_gives_the_same_mosaics(tmp_path, sample_acquisition, preprocessed):
    flat = tmp_path / "flat"
    for tile in sample_acquisition.glob("slice_z*/tiles/tile_*"):
        shutil.copytree(tile, flat / tile.name)
    assert _preproc(flat, tmp_path / "out", "--use_old_folder_structure", "true") == 0
    for slice_id in ("00", "01"):
        a = open_ome_zarr(tmp_path / "out" / f"mosaic_grid_3d_z{slice_id}.ome.zarr").read()
        b = open_ome_zarr(preprocessed / f"mosaic_grid_3d_z{slice_id}.ome.zarr").read()
        np.testing.assert_array_equal(a, b)


def test_a_corrupt_slice_is_excluded_with_its_reason_and_the_others_complete(tmp_path, sample_acquisition, capsys):
    raw = tmp_path / "raw"
    shutil.copytree(sample_acquisition, raw)
    bad = raw / "slice_z01" / "tiles" / "tile_x01_y00_z01" / "image_00001.bin"
    bad.write_bytes(bad.read_bytes()[:1000])  # truncated mid-B-scan
    out = tmp_path / "out"
    assert _preproc(raw, out, "--exclude_first_slices", "0") == 0
    assert (out / "mosaic_grid_3d_z00.ome.zarr").is_dir() and not (out / "mosaic_grid_3d_z01.ome.zarr").exists()
    with open(out / "slice_config.csv") as f:
        rows = {r["slice_id"]: r for r in csv.DictReader(f)}
    assert rows["00"]["use"] == "true" and rows["01"]["use"] == "false"
    assert "image_00001.bin" in rows["01"]["exclude_reason"] and "truncated" in rows["01"]["exclude_reason"]
    assert "slice 01 FAILED" in capsys.readouterr().out


def test_relative_paths_work_and_a_missing_input_is_named(tmp_path, sample_acquisition, monkeypatch, capsys):
    shutil.copytree(sample_acquisition, tmp_path / "raw")
    monkeypatch.chdir(tmp_path)
    assert _preproc("raw", "out") == 0 and (tmp_path / "out" / "mosaic_grid_3d_z01.ome.zarr").is_dir()
    assert _preproc("absent", "out2") == 2
    assert "absent: raw acquisition folder not found" in capsys.readouterr().err


def test_an_unimplemented_or_bad_parameter_is_refused_before_running(tmp_path, sample_acquisition, capsys):
    assert _preproc(sample_acquisition, tmp_path / "o", "--sharding_factor", "zero") == 2
    assert "sharding_factor" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_local_run_hands_every_step_job_to_a_warm_worker_that_does_not_outlive_it(preprocessed):
    import os
    from pathlib import Path

    with open(preprocessed / ".serialoct" / "jobs.tsv") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    logs = {str(p) for p in (preprocessed / "logs").rglob("*.log")}
    assert {r["log"] for r in rows} == logs  # every job with a log ran in a worker (some twice: the resume tests)
    assert all(r["exit"] == "0" for r in rows)
    servers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and b"serialoct.workflows.forkserver" in _cmdline(p)]
    assert servers == [], "the fork server outlived its run"
    assert os.environ.get("SERIALOCT_FORKSERVER") is None  # the run's setting stayed in its jobs


def _cmdline(proc) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""
