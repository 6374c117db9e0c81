"""Step ``align_to_ras`` on a synthetic brain cut coronally (PIR) and a synthetic atlas given as a local file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from serialoct.atlas.orientation import ngff_orientations, rotation_matrix
from serialoct.cli import main
from serialoct.io.omezarr import open_ome_zarr, write_ome_zarr
from tests.atlas.synthetic_brain import landmarks_in_atlas, make_atlas, make_brain

LANDMARK_VOXELS = 2.0  # of the atlas (0.15 mm)
ROTATION = (4.0, -3.0, 6.0)  # degrees about R, A, S
SHIFT_MM = (0.3, -0.2, 0.25)


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    root = tmp_path_factory.mktemp("ras")
    atlas, grid = make_atlas()
    write_ome_zarr(root / "atlas.ome.zarr", atlas, voxel_size_mm=grid.spacing_mm, chunks=(64, 64, 64),
                   axes_orientation=ngff_orientations("SAR"))
    brain = make_brain("PIR", rotation_matrix(ROTATION), SHIFT_MM)
    write_ome_zarr(root / "brain.ome.zarr", brain.volume, voxel_size_mm=brain.grid.spacing_mm, chunks=(64, 64, 64))
    out = root / "align_to_ras" / "brain_ras.ome.zarr"
    assert main(["step", "align_to_ras", "--input", str(root / "brain.ome.zarr"), "--output", str(out),
                 "--metrics", str(root / "metrics.json"), "--atlas_path", str(root / "atlas.ome.zarr"), "--ras_input_orientation", "PIR",
                 "--allen_registration_level", "0", "--allen_resolution", "100", "--pyramid_resolutions", "120,240"]) == 0
    return brain, out, json.loads((root / "metrics.json").read_text())


def test_the_brain_lands_on_the_atlas_within_two_voxels(aligned):
    brain, _, metrics = aligned
    matrix, translation = np.asarray(metrics["info"]["matrix"]), np.asarray(metrics["info"]["translation"])
    atlas_points = landmarks_in_atlas()
    found = atlas_points @ matrix.T + translation
    truth = atlas_points @ brain.matrix.T + brain.translation
    assert np.linalg.norm(found - truth, axis=1).max() / 0.15 < LANDMARK_VOXELS


def test_the_ras_volume_has_its_orientation_pyramid_transform_and_preview(aligned):
    _, out, _ = aligned
    image = open_ome_zarr(out)
    assert image.n_levels == 2 and image.extra_attrs["input_orientation"] == "PIR"
    zattrs = json.loads((out / "zarr.json").read_text())
    axes = zattrs["attributes"]["ome"]["multiscales"][0]["axes"]
    assert [a.get("orientation", {}).get("value") for a in axes] == list(ngff_orientations("SAR"))
    assert image.read(0).max() > 0
    assert (out.parent / "brain_ras_transform.tfm").is_file() and (out.parent / "brain_ras_preview.png").is_file()


def test_a_bad_orientation_code_is_refused_with_the_valid_letters(tmp_path, capsys):
    assert main(["step", "align_to_ras", "--input", str(tmp_path / "x.ome.zarr"), "--output", str(tmp_path / "y.ome.zarr"),
                 "--metrics", str(tmp_path / "m.json"), "--ras_input_orientation", "PIQ"]) == 2
    err = capsys.readouterr().err
    assert "ras_input_orientation" in err and "PIQ" in err
