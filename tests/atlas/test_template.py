"""Finding (local file, cache, download) and loading the atlas template, and the transform file; never the network."""

from __future__ import annotations

import logging
import sys
import types
import urllib.error

import numpy as np
import pytest
import SimpleITK as sitk

from serialoct.atlas import template
from serialoct.atlas.orientation import RAS_CODE, ngff_orientations, reorient
from serialoct.atlas.register import AtlasRegistration
from serialoct.atlas.space import VolumeGrid
from serialoct.atlas.template import find_atlas, load_atlas, read_transform, write_transform
from serialoct.errors import FormatError, InputError
from serialoct.io.omezarr import write_ome_zarr

#: The CCFv3 grid at 100 µm as SimpleITK sees it: (AP, DV, LR).
CCF_100_SIZE = (132, 80, 114)
#: The local-file and lookup paths are instantaneous; the download goes through a file:// URL.
LPS = np.diag([-1.0, -1.0, 1.0])


def marked_volume(shape, marker) -> np.ndarray:
    v = np.zeros(shape, np.float32)
    v[marker] = 1.0
    return v


def write_itk(path, volume: np.ndarray, grid: VolumeGrid) -> None:
    """Write ``volume`` with a correct LPS header for ``grid`` (as any ITK tool would)."""
    image = sitk.GetImageFromArray(volume)
    image.SetSpacing(tuple(reversed(grid.spacing_mm)))
    image.SetOrigin(tuple(LPS @ np.asarray(grid.origin_mm)))
    image.SetDirection(tuple((LPS @ grid.direction[:, ::-1]).ravel()))
    sitk.WriteImage(image, str(path))


@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz"])
@pytest.mark.parametrize("code", ["PIR", "RIA", "LPS"])
def test_header_orientation_brings_any_file_to_the_ras_order(tmp_path, suffix, code):
    grid = VolumeGrid((6, 7, 8), (0.05, 0.04, 0.03), code, (1.0, -2.0, 3.0))
    volume = marked_volume(grid.shape, (1, 2, 3))
    path = tmp_path / f"atlas{suffix}"
    write_itk(path, volume, grid)
    loaded = load_atlas(path)
    assert loaded.grid.orientation == RAS_CODE
    assert np.array_equal(loaded.image, reorient(volume, code))
    expected = grid.reoriented()
    assert np.allclose(loaded.grid.spacing_mm, expected.spacing_mm, atol=1e-6)
    assert np.allclose(loaded.grid.origin_mm, expected.origin_mm, atol=1e-5)


def test_allen_ccf_grid_uses_the_ccf_axes_not_its_header(tmp_path, caplog):
    # The Allen NRRD: (AP, DV, LR) growing toward P, I, R, header identity "LPS" in µm.
    marker_itk = (3, 5, 100)  # anterior (low AP), superior (low DV), right (high LR)
    image = sitk.Image(CCF_100_SIZE, sitk.sitkUInt16)
    image.SetSpacing((100.0, 100.0, 100.0))
    image[marker_itk] = 7
    path = tmp_path / "average_template_100.nrrd"
    sitk.WriteImage(image, str(path))
    with caplog.at_level(logging.INFO, logger="serialoct.atlas.template"):
        loaded = load_atlas(path)
    assert "Allen CCFv3 grid at 100 µm" in caplog.text
    assert loaded.grid.spacing_mm == (0.1, 0.1, 0.1)
    assert loaded.image.shape == (80, 132, 114)  # (S, A, R)
    s, a, r = np.argwhere(loaded.image)[0]
    assert (s, a, r) == (80 - 1 - 5, 132 - 1 - 3, 100)


def test_voxels_of_a_millimetre_or_more_are_read_as_micrometres(tmp_path, caplog):
    image = sitk.GetImageFromArray(np.ones((4, 5, 6), np.float32))
    image.SetSpacing((25.0, 25.0, 25.0))
    path = tmp_path / "template.nii"
    sitk.WriteImage(image, str(path))
    with caplog.at_level(logging.WARNING, logger="serialoct.atlas.template"):
        loaded = load_atlas(path)
    assert np.allclose(loaded.grid.spacing_mm, 0.025)
    assert "reading them as µm" in caplog.text


def test_ome_zarr_template_uses_its_axes_orientation_and_the_nearest_level(tmp_path):
    volume = marked_volume((16, 20, 24), (2, 3, 20))
    path = tmp_path / "atlas.ome.zarr"
    write_ome_zarr(
        path, volume, voxel_size_mm=(0.025,) * 3, chunks=(8, 8, 8), pyramid_resolutions_um=(25, 50),
        axes_orientation=ngff_orientations("IPR"),
    )
    fine = load_atlas(path)
    assert np.array_equal(fine.image, reorient(volume, "IPR"))
    coarse = load_atlas(path, resolution_um=45)
    assert coarse.grid.spacing_mm == (0.05, 0.05, 0.05) and coarse.image.shape == (8, 10, 12)


def test_ome_zarr_without_orientation_is_taken_as_ras_with_a_warning(tmp_path, caplog):
    volume = marked_volume((8, 8, 8), (1, 2, 3))
    path = tmp_path / "plain.ome.zarr"
    write_ome_zarr(path, volume, voxel_size_mm=(0.1,) * 3, chunks=(8, 8, 8))
    with caplog.at_level(logging.WARNING, logger="serialoct.atlas.template"):
        loaded = load_atlas(path)
    assert np.array_equal(loaded.image, volume)
    assert "no anatomical orientation" in caplog.text
    assert np.array_equal(load_atlas(path, orientation="PIR").image, reorient(volume, "PIR"))


def test_unreadable_template_is_a_format_error(tmp_path):
    path = tmp_path / "broken.nrrd"
    path.write_text("not an image")
    with pytest.raises(FormatError, match="broken.nrrd: not a readable NRRD/NIfTI image"):
        load_atlas(path)
    with pytest.raises(InputError, match="atlas template does not exist"):
        load_atlas(tmp_path / "missing.nrrd")


def test_local_atlas_path_is_used_as_given(tmp_path):
    path = tmp_path / "mine.nii.gz"
    path.touch()
    assert find_atlas(path, 25, tmp_path / "cache") == path
    with pytest.raises(InputError, match="atlas_path does not exist"):
        find_atlas(tmp_path / "nope.nrrd", 25, tmp_path / "cache")
    (tmp_path / "atlas.tif").touch()
    with pytest.raises(InputError, match=r"expected one of \.nrrd, \.nii, \.nii\.gz, \.zarr, \.ome\.zarr"):
        find_atlas(tmp_path / "atlas.tif", 25, tmp_path / "cache")


def test_unknown_resolution_is_rejected_with_the_allowed_ones(tmp_path):
    with pytest.raises(ValueError, match=r"allen_resolution 30: expected one of 10, 25, 50, 100"):
        find_atlas(None, 30, tmp_path)


@pytest.fixture
def no_brainglobe(monkeypatch):
    monkeypatch.setitem(sys.modules, "brainglobe_atlasapi", None)  # import raises ImportError


def test_without_network_or_file_the_error_says_how_to_give_a_template(tmp_path, monkeypatch, no_brainglobe):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(template.urllib.request, "urlopen", offline)
    with pytest.raises(InputError) as info:
        find_atlas("", 25, tmp_path / "cache")
    message = str(info.value)
    assert "no Allen CCFv3 template at 25 µm" in message
    assert "brainglobe-atlasapi is not installed" in message
    assert "average_template_25.nrrd failed ([Errno -3] Temporary failure in name resolution)" in message
    assert "--atlas_path FILE (NRRD, NIfTI or OME-Zarr)" in message
    assert str(tmp_path / "cache" / "average_template_25.nrrd") in message


def test_unreachable_server_fails_fast_without_leaving_a_file(tmp_path, no_brainglobe):
    cache = tmp_path / "cache"
    with pytest.raises(InputError, match="downloading http://127.0.0.1:9/t_50.nrrd failed"):
        find_atlas(None, 50, cache, url_template="http://127.0.0.1:9/t_{res}.nrrd", timeout_s=1.0)
    assert not cache.exists() or not any(cache.iterdir())


def test_download_is_cached_and_reused(tmp_path, monkeypatch, no_brainglobe):
    source = tmp_path / "server" / "average_template_100.nrrd"
    source.parent.mkdir()
    sitk.WriteImage(sitk.Image(CCF_100_SIZE, sitk.sitkUInt16), str(source))
    cache = tmp_path / "cache"
    url = source.parent.as_uri() + "/average_template_{res}.nrrd"
    path = find_atlas(None, 100, cache, url_template=url)
    assert path == cache / "average_template_100.nrrd" and path.read_bytes() == source.read_bytes()
    assert [p.name for p in cache.iterdir()] == ["average_template_100.nrrd"]
    source.unlink()  # the second call must not need the server
    assert find_atlas(None, 100, cache, url_template=url) == path
    assert load_atlas(path).image.shape == (80, 132, 114)


def test_a_download_that_is_not_nrrd_is_refused_and_not_cached(tmp_path, no_brainglobe):
    page = tmp_path / "server" / "t_25.nrrd"
    page.parent.mkdir()
    page.write_text("<html>maintenance</html>")
    cache = tmp_path / "cache"
    with pytest.raises(InputError, match="did not send an NRRD file"):
        find_atlas(None, 25, cache, url_template=page.parent.as_uri() + "/t_{res}.nrrd")
    assert not any(cache.iterdir())


def test_brainglobe_atlas_is_saved_with_its_orientation(tmp_path, monkeypatch):
    reference = marked_volume((12, 8, 10), (1, 2, 3))  # "asr": from anterior, superior, right -> code PIL

    class FakeAtlas:
        def __init__(self, name, brainglobe_dir, check_latest):
            assert name == "allen_mouse_100um" and check_latest is False
            self.reference = reference
            self.metadata = {"orientation": "asr", "resolution": [100.0, 100.0, 100.0]}

    monkeypatch.setitem(sys.modules, "brainglobe_atlasapi", types.SimpleNamespace(BrainGlobeAtlas=FakeAtlas))
    path = find_atlas(None, 100, tmp_path)
    assert path == tmp_path / "allen_mouse_100um.nii.gz"
    loaded = load_atlas(path)
    assert np.array_equal(loaded.image, reorient(reference, "PIL"))
    assert np.allclose(loaded.grid.spacing_mm, 0.1)


def affine_registration(matrix: np.ndarray, translation: np.ndarray) -> AtlasRegistration:
    transform = sitk.AffineTransform(3)
    transform.SetMatrix(tuple(matrix.ravel()))
    transform.SetTranslation(tuple(translation))
    return AtlasRegistration(matrix, translation, matrix, translation, "MI", -1.0, -0.5, 10, "", "moments", transform)


def test_transform_file_round_trips(tmp_path):
    matrix = np.array([[0.99, -0.1, 0.02], [0.1, 1.01, 0.0], [0.0, 0.03, 0.98]])
    translation = np.array([0.5, -1.25, 2.0])
    path = write_transform(tmp_path / "brain_ras_transform.tfm", affine_registration(matrix, translation))
    assert [p.name for p in tmp_path.iterdir()] == ["brain_ras_transform.tfm"]
    assert path.read_text().startswith("#Insight Transform File")
    a, b = read_transform(path)
    assert np.allclose(a, matrix) and np.allclose(b, translation)
    (tmp_path / "junk.tfm").write_text("junk")
    with pytest.raises(FormatError, match="junk.tfm: not a 3D affine ITK transform"):
        read_transform(tmp_path / "junk.tfm")
