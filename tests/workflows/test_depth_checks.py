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
    slices = discover_slices(pp.parent / "raw")
    assert depth_warning(slices, preset("tiny").axial_resolution_um) is None
    assert depth_warning(slices, 2.0) is not None  # 64 µm < 80 µm
    assert depth_warning(slices, 2.5) is None  # 80 µm: exactly one cut


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
