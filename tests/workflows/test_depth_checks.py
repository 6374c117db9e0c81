"""A wrong axial resolution is caught early: preprocessing warns, reconstruction refuses before any work.

The tiles do not record their axial voxel size (formats.md §1), so
preprocessing the ``tiny`` acquisition (32 samples of 8 µm, cut every 80 µm)
with the default ``axial_resolution`` of 1.36 µm makes slices 44 µm deep:
consecutive slices cannot overlap.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from serialoct.cli import main
from serialoct.io.acquisition import depth_warning, discover_slices
from serialoct.synth import preset, write_acquisition


@pytest.fixture(scope="module")
def shallow(tmp_path_factory) -> tuple[Path, str]:
    """A tiny acquisition preprocessed with the default axial resolution, and what preprocessing printed."""
    root = tmp_path_factory.mktemp("shallow")
    write_acquisition(root / "raw", preset("tiny"), seed=0)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        assert main(["preproc", "--input", str(root / "raw"), "--output", str(root / "pp"), "--cores", "2"]) == 0
    return root / "pp", printed.getvalue()


def test_preprocessing_warns_when_the_tiles_image_less_than_one_cut_and_names_axial_resolution(shallow):
    _, printed = shallow
    warnings = [line for line in printed.splitlines() if "warning:" in line]
    assert len(warnings) == 2  # when the run starts, and again in its summary
    assert all("44 µm in depth (32 samples of axial_resolution = 1.36 µm)" in w for w in warnings)
    assert all("0.08 mm" in w and "metadata.json" in w and "--axial_resolution" in w for w in warnings)


def test_with_the_right_axial_resolution_preprocessing_does_not_warn(shallow):
    pp, _ = shallow
    tiles = discover_slices(pp.parent / "raw")["01"]
    assert depth_warning(tiles, preset("tiny").axial_resolution_um) is None
    assert depth_warning(tiles, 2.0) is not None  # 64 µm < 80 µm
    assert depth_warning(tiles, 2.5) is None  # 80 µm: exactly one cut


def test_reconstruction_refuses_shallow_mosaics_before_any_work(shallow, tmp_path, capsys):
    pp, _ = shallow
    out = tmp_path / "out"
    assert main(["reconstruct", "--input", str(pp), "--output", str(out), "--registration_slicing_interval_mm", "0.08"]) == 2
    err = capsys.readouterr().err
    assert "mosaic_grid_3d_z01.ome.zarr: images 44 µm in depth (32 planes of 1.36 µm), less than one cut" in err
    assert "--axial_resolution" in err
    assert not (out / "logs").exists()  # no job ran


def test_reconstruction_refuses_an_interface_crop_shallower_than_one_cut(shallow, tmp_path, capsys):
    pp, _ = shallow
    assert main(["reconstruct", "--input", str(pp), "--output", str(tmp_path / "out"), "--crop_interface_out_depth", "5",
                 "--registration_slicing_interval_mm", "0.01"]) == 2
    assert "crop_interface_out_depth = 5 µm keeps less than one cut (registration_slicing_interval_mm = 0.01)" in capsys.readouterr().err


def test_one_slice_recorded_with_a_shorter_depth_range_is_named_with_the_remedy(tmp_path, capsys):
    import numpy as np

    config = preset("tiny")  # 32 samples of 8 µm: 256 µm
    write_acquisition(tmp_path / "raw", config, seed=0)
    n_z, n_alines = config.tile_shape[0], config.tile_shape[1] + config.n_extra
    for tile in (tmp_path / "raw" / "slice_z03" / "tiles").iterdir():  # slice 03 keeps its first 24 samples: 192 µm
        for path in tile.glob("image_*.bin"):
            frames = np.fromfile(path, dtype="<f4").reshape(n_z, n_alines, -1, order="F")
            frames[:24].reshape(-1, order="F").tofile(path)
        info = tile / "info.txt"
        info.write_text(info.read_text().replace("bottom_z: 31", "bottom_z: 23"))
    pp = tmp_path / "pp"
    assert main(["preproc", "--input", str(tmp_path / "raw"), "--output", str(pp), "--axial_resolution", "8"]) == 0
    capsys.readouterr()
    assert main(["reconstruct", "--input", str(pp), "--output", str(tmp_path / "out"), "--registration_slicing_interval_mm", "0.2"]) == 2
    assert (f"{pp}: slice(s) 03 image less depth than one cut (registration_slicing_interval_mm = 0.2): 03: 192 µm, "
            "where slice 01 images 256 µm") in capsys.readouterr().err
    assert not (tmp_path / "out" / "logs").exists()
