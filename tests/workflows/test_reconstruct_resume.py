"""``serialoct reconstruct`` resumes, redoes only what a deleted intermediate feeds, and isolates a broken slice.

On the ``tiny`` acquisition (6 slices of 2x2 tiles) at 20 µm.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from serialoct.cli import main
from serialoct.io.omezarr import open_ome_zarr
from serialoct.io.tables import read_slice_config
from serialoct.synth import preset, write_acquisition

RESOLUTION = "20"


def _reconstruct(pp: Path, out: Path) -> int:
    return main(["reconstruct", "--input", str(pp), "--output", str(out), "--resolution", RESOLUTION, "--subject_name", "tiny",
                 "--cores", "2", "--processes", "1"])


@pytest.fixture(scope="module")
def mosaics(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    config = preset("tiny")
    write_acquisition(root / "raw", config, seed=0)
    assert main(["preproc", "--input", str(root / "raw"), "--output", str(root / "pp"),
                 "--axial_resolution", str(config.axial_resolution_um)]) == 0
    return root / "pp"


@pytest.fixture(scope="module")
def reconstructed(mosaics, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny-out") / "out"
    assert _reconstruct(mosaics, out) == 0
    return out


def _mtime(path: Path) -> int:
    return (path / "zarr.json" if path.is_dir() else path).stat().st_mtime_ns


def test_a_rerun_does_nothing(mosaics, reconstructed, capfd):
    before = _mtime(reconstructed / "stack" / "tiny.ome.zarr")
    capfd.readouterr()
    assert _reconstruct(mosaics, reconstructed) == 0
    assert "Nothing to be done" in capfd.readouterr().err
    assert _mtime(reconstructed / "stack" / "tiny.ome.zarr") == before


def test_a_deleted_intermediate_redoes_it_and_what_depends_on_it_only(mosaics, reconstructed):
    kept = [reconstructed / "normalize" / "slice_z03.ome.zarr", reconstructed / "register_pairwise" / "slice_z02_transform.json",
            reconstructed / "bring_to_common_space" / "common_space.json"]
    redone = [reconstructed / "stack" / "tiny.ome.zarr", reconstructed / "auto_exclude_slices" / "slice_config.csv"]
    deleted = reconstructed / "register_pairwise" / "slice_z03_transform.json"
    before = {p: _mtime(p) for p in kept + redone}
    deleted.unlink()
    assert _reconstruct(mosaics, reconstructed) == 0
    assert deleted.is_file()
    assert all(_mtime(p) == before[p] for p in kept)
    assert all(_mtime(p) > before[p] for p in redone)


def test_a_corrupted_slice_is_excluded_with_its_reason_while_the_others_are_stacked(mosaics, tmp_path, capsys):
    damaged = tmp_path / "pp"
    shutil.copytree(mosaics, damaged, ignore=shutil.ignore_patterns(".snakemake", "logs", "benchmarks"))
    shard = next(p for p in sorted((damaged / "mosaic_grid_3d_z03.ome.zarr" / "0").rglob("*")) if p.is_file() and p.name != "zarr.json")
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    assert _reconstruct(damaged, tmp_path / "out") == 0
    printed = capsys.readouterr().out
    assert "slice 03 FAILED and is excluded" in printed and str(shard.name) in printed
    rows = {r.slice_id: r for r in read_slice_config(tmp_path / "out" / "finalise_interpolation" / "slice_config_final.csv")}
    assert not rows["03"].use and "resample_mosaic_grid" in rows["03"].exclude_reason
    stacked = {p["slice_id"]: p["source"] for p in open_ome_zarr(tmp_path / "out" / "stack" / "tiny.ome.zarr").extra_attrs["stacked_slices"]}
    assert {"01", "02", "04", "05"} <= set(stacked) and stacked.get("03") != "normalized"


def test_folders_with_spaces_and_parentheses_give_the_same_volume(mosaics, reconstructed, tmp_path):
    # Paths reach the jobs through shell commands: the slice table's path and the subject (named after the input
    # folder, here "mosaics (1)") broke them unquoted.
    spaced = Path(shutil.copytree(mosaics, tmp_path / "my data" / "mosaics (1)"))
    out = tmp_path / "my data" / "out 1"
    assert main(["reconstruct", "--input", str(spaced), "--output", str(out), "--resolution", RESOLUTION,
                 "--cores", "2", "--processes", "1"]) == 0
    volume = open_ome_zarr(out / "stack" / "mosaics (1).ome.zarr").read()
    assert np.array_equal(volume, open_ome_zarr(reconstructed / "stack" / "tiny.ome.zarr").read())
