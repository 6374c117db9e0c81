"""OME-Zarr I/O: round trips, streaming writes, pyramids, legacy inputs, zip."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import zarr
from ome_zarr_models.v04 import Image as ImageV04
from ome_zarr_models.v05 import Image as ImageV05
from scipy import ndimage

from serialoct.errors import FormatError, InputError
from serialoct.io.omezarr import (
    create_ome_zarr,
    export_zip,
    level_shape,
    open_ome_zarr,
    pyramid_voxel_sizes_mm,
    write_ome_zarr,
)

BASE_MM = 0.010
PYRAMID_UM = (10, 25, 50, 100)
# Blockwise and whole-array pyramids run the same float32 arithmetic on the
# same voxels; only rounding of the sampling coordinates may differ.
BLOCKWISE_ATOL = 1e-5
# A 2 mm-period pattern loses < 4 % of its 0.5 amplitude to the anti-aliasing
# blur and linear interpolation by the 100 µm level.
SMOOTH_ATOL = 0.02
MEAN_RTOL = 0.005


def smooth_volume(shape, voxel_mm=BASE_MM, period_mm=2.0):
    """1 + 0.5 sin(2 pi y / P + 0.3) cos(2 pi x / P), constant along z; float32."""
    _, ny, nx = shape
    y = (np.arange(ny) + 0.5) * voxel_mm
    x = (np.arange(nx) + 0.5) * voxel_mm
    plane = 1 + 0.5 * np.outer(np.sin(2 * np.pi * y / period_mm + 0.3), np.cos(2 * np.pi * x / period_mm))
    return np.broadcast_to(plane, shape).astype(np.float32)


@pytest.fixture(scope="module")
def pyramid(tmp_path_factory):
    """A 10 µm base with smooth content written with tiny chunks (many blocks per level)."""
    path = tmp_path_factory.mktemp("pyr") / "vol.ome.zarr"
    volume = smooth_volume((20, 100, 120))
    write_ome_zarr(
        path, volume, voxel_size_mm=(BASE_MM,) * 3, chunks=(4, 8, 12), shards=(8, 16, 24),
        pyramid_resolutions_um=PYRAMID_UM,
    )
    return path, volume


def test_round_trip_keeps_values_chunks_shards_scales_units_and_extra_attrs(tmp_path, rng):
    data = rng.random((6, 40, 60), dtype=np.float32)
    extra = {"tile_shape": np.array([6, 20, 30]), "grid_shape": (2, 2), "overlap_fraction": 0.2}
    path = write_ome_zarr(
        tmp_path / "m.ome.zarr", data, voxel_size_mm=(0.0015, 0.004, 0.005),
        chunks=(6, 20, 30), shards=(6, 40, 60), extra_attrs=extra, name="mosaic",
    )
    image = open_ome_zarr(path)
    assert image.version == "0.5"
    assert image.dataset_paths == ("0",)
    assert image.axis_names == ("z", "y", "x")
    assert [a.unit for a in image.multiscale.axes] == ["millimeter"] * 3
    assert image.voxel_size_mm(0) == (0.0015, 0.004, 0.005)
    level = image.level(0)
    assert level.dtype == np.float32
    assert (level.chunks, level.shards) == ((6, 20, 30), (6, 40, 60))
    assert np.array_equal(image.read(0), data)
    assert image.extra_attrs == {"tile_shape": [6, 20, 30], "grid_shape": [2, 2], "overlap_fraction": 0.2}
    codecs = json.loads((path / "0" / "zarr.json").read_text())["codecs"]
    assert codecs[0]["name"] == "sharding_indexed"
    assert "zstd" in [c["name"] for c in codecs[0]["configuration"]["codecs"]]


def test_streaming_region_writes_assemble_level_0_and_unwritten_tiles_read_zero(tmp_path):
    tile = (4, 10, 12)
    final = tmp_path / "grid.ome.zarr"
    with create_ome_zarr(
        final, (4, 30, 36), voxel_size_mm=(0.002, 0.01, 0.01), chunks=tile, shards=(4, 20, 24)
    ) as out:
        assert not final.exists()
        for ix in range(3):
            for iy in range(3):
                if (ix, iy) != (1, 2):  # a hole in the grid
                    out.array[:, ix * 10 : (ix + 1) * 10, iy * 12 : (iy + 1) * 12] = 10 * ix + iy + 1
    data = open_ome_zarr(final).read()
    assert data[0, 15, 5] == 11 and data[3, 29, 35] == 23
    assert np.all(data[:, 10:20, 24:36] == 0)


def test_written_metadata_validates_with_ome_zarr_models(pyramid, tmp_path):
    ImageV05.from_zarr(zarr.open_group(pyramid[0], mode="r"))
    oriented = write_ome_zarr(
        tmp_path / "ras.ome.zarr", np.zeros((2, 3, 4), np.float32), voxel_size_mm=(0.05,) * 3,
        chunks=(2, 3, 4), axes_orientation=("inferior-to-superior", "posterior-to-anterior", "left-to-right"),
    )
    ImageV05.from_zarr(zarr.open_group(oriented, mode="r"))
    axes = open_ome_zarr(oriented).multiscale.axes
    assert [a.orientation for a in axes] == ["inferior-to-superior", "posterior-to-anterior", "left-to-right"]


def test_pyramid_levels_keep_only_coarser_resolutions_and_round_shapes():
    assert pyramid_voxel_sizes_mm((0.025,) * 3, PYRAMID_UM) == ((0.025,) * 3, (0.05,) * 3, (0.1,) * 3)
    assert pyramid_voxel_sizes_mm((0.02, 0.01, 0.01), (10, 25), isotropic=True) == (
        (0.02, 0.01, 0.01), (0.025,) * 3,
    )
    assert pyramid_voxel_sizes_mm((0.02, 0.01, 0.01), (10, 15), isotropic=False) == (
        (0.02, 0.01, 0.01), (0.02, 0.015, 0.015),
    )
    base = (7, 33, 47)
    shapes = [level_shape(base, (0.01,) * 3, v) for v in pyramid_voxel_sizes_mm((0.01,) * 3, PYRAMID_UM)]
    assert shapes == [(7, 33, 47), (3, 13, 19), (1, 7, 9), (1, 3, 5)]


def test_pyramid_scales_translations_and_shapes_follow_the_resolutions(pyramid):
    image = open_ome_zarr(pyramid[0])
    assert image.dataset_paths == ("0", "1", "2", "3")
    assert [image.voxel_size_mm(k) for k in range(4)] == [(r / 1000,) * 3 for r in PYRAMID_UM]
    assert [image.level(k).shape for k in range(4)] == [(20, 100, 120), (8, 40, 48), (4, 20, 24), (2, 10, 12)]
    # Voxel centres of every level sit in the same corner-aligned extent.
    assert image.translation_mm(1) == pytest.approx((0.0075,) * 3)
    assert image.translation_mm(3) == pytest.approx((0.045,) * 3)
    assert image.level(1).chunks == (4, 8, 12) and image.level(3).chunks == (2, 8, 12)


def _whole_array_pyramid(volume, voxels_mm):
    """Reference: the documented recipe applied to whole arrays, level from level."""
    levels = [volume]
    for prev_v, v in zip(voxels_mm, voxels_mm[1:]):
        f = v / prev_v
        blurred = ndimage.gaussian_filter(levels[-1], (f - 1) / 2, mode="nearest", truncate=4.0)
        shape = level_shape(volume.shape, (voxels_mm[0],) * 3, (v,) * 3)
        levels.append(ndimage.affine_transform(
            blurred, [f] * 3, offset=[(f - 1) / 2] * 3, output_shape=shape, order=1, mode="nearest",
        ))
    return levels


def test_blockwise_pyramid_equals_whole_array_resampling_without_seams(pyramid, rng):
    path, _ = pyramid
    image = open_ome_zarr(path)
    # Also a rough volume on odd shapes, where seams would show most.
    rough = rng.random((9, 37, 53), dtype=np.float32)
    rough_path = write_ome_zarr(
        path.parent / "rough.ome.zarr", rough, voxel_size_mm=(BASE_MM,) * 3, chunks=(3, 5, 7),
        shards=(6, 10, 14), pyramid_resolutions_um=PYRAMID_UM,
    )
    for img, volume in ((image, image.read(0)), (open_ome_zarr(rough_path), rough)):
        reference = _whole_array_pyramid(volume, [r / 1000 for r in PYRAMID_UM])
        for k in range(1, 4):
            np.testing.assert_allclose(img.read(k), reference[k], atol=BLOCKWISE_ATOL, rtol=0)


def test_pyramid_samples_a_smooth_volume_at_the_level_voxel_centres(pyramid):
    image = open_ome_zarr(pyramid[0])
    for k in range(1, 4):
        level = image.read(k)
        voxel = image.voxel_size_mm(k)[1]
        expected = smooth_volume(level.shape, voxel_mm=voxel)
        np.testing.assert_allclose(level, expected, atol=SMOOTH_ATOL, rtol=0)


def test_pyramid_preserves_mean_intensity(tmp_path, rng):
    volume = smooth_volume((20, 100, 120)) + rng.random((20, 100, 120), dtype=np.float32)
    image = open_ome_zarr(write_ome_zarr(
        tmp_path / "v.ome.zarr", volume, voxel_size_mm=(BASE_MM,) * 3, chunks=(10, 25, 30),
        pyramid_resolutions_um=PYRAMID_UM,
    ))
    for k in range(1, 4):
        assert image.read(k).mean() == pytest.approx(volume.mean(), rel=MEAN_RTOL)


def _multiscale(paths, scales, unit, version=None):
    entry = {
        "name": "legacy",
        "axes": [{"name": n, "type": "space", "unit": unit} for n in "zyx"],
        "datasets": [
            {"path": p, "coordinateTransformations": [{"type": "scale", "scale": s}]}
            for p, s in zip(paths, scales)
        ],
    }
    return {"version": version, **entry} if version else entry


def test_reader_opens_ngff_04_zarr_v2_with_s0_paths_and_micrometer_units(tmp_path, rng):
    path = tmp_path / "legacy.ome.zarr"
    group = zarr.open_group(path, mode="w", zarr_format=2)
    s0 = rng.random((4, 12, 16), dtype=np.float32)
    group.create_array("s0", shape=s0.shape, chunks=(2, 6, 8), dtype="float32")[...] = s0
    group.create_array("s1", shape=(4, 6, 8), chunks=(4, 6, 8), dtype="float32")[...] = s0[:, ::2, ::2]
    group.attrs["multiscales"] = [
        _multiscale(["s0", "s1"], [[20.0, 10.0, 10.0], [20.0, 20.0, 20.0]], "micrometer", version="0.4")
    ]
    ImageV04.from_zarr(zarr.open_group(path, mode="r"))  # the hand-made input is valid 0.4
    image = open_ome_zarr(path)
    assert image.version == "0.4"
    assert image.dataset_paths == ("s0", "s1")
    assert image.voxel_size_mm(0) == pytest.approx((0.02, 0.01, 0.01))
    assert image.voxel_size_mm(1) == pytest.approx((0.02, 0.02, 0.02))
    assert np.array_equal(image.read(0), s0)
    assert image.level(1).shape == (4, 6, 8)


def test_reader_takes_s0_paths_from_ngff_05_metadata(tmp_path):
    path = tmp_path / "other-tool.ome.zarr"
    group = zarr.create_group(path, zarr_format=3)
    array = group.create_array("s0", shape=(2, 4, 4), chunks=(2, 4, 4), dtype="uint16", dimension_names=list("zyx"))
    array[...] = 7
    multiscale = _multiscale(["s0"], [[1.5, 0.5, 0.5]], "nanometer")
    multiscale["coordinateTransformations"] = [{"type": "scale", "scale": [2.0, 1.0, 1.0]}]
    group.attrs["ome"] = {"version": "0.5", "multiscales": [multiscale]}
    ImageV05.from_zarr(zarr.open_group(path, mode="r"))  # the hand-made input is valid 0.5
    image = open_ome_zarr(path)
    assert image.dataset_paths == ("s0",)
    assert image.voxel_size_mm() == pytest.approx((3e-6, 0.5e-6, 0.5e-6))  # dataset then global scale
    assert image.read().dtype == np.uint16 and np.all(image.read() == 7)


@pytest.mark.parametrize("case", ["empty folder", "plain zarr group", "missing dataset", "not a folder"])
def test_non_ome_input_raises_format_error_naming_the_path(tmp_path, case):
    path = tmp_path / "bad.zarr"
    if case == "empty folder":
        path.mkdir()
    elif case == "not a folder":
        path.write_text("hello")
    else:
        group = zarr.create_group(path, zarr_format=3)
        if case == "missing dataset":
            multiscale = _multiscale(["0"], [[1, 1, 1]], "millimeter")
            group.attrs["ome"] = {"version": "0.5", "multiscales": [multiscale]}
    with pytest.raises(FormatError, match=r"bad\.zarr.*(zarr group|multiscales|missing)"):
        open_ome_zarr(path)


def test_unknown_unit_raises_format_error_when_asking_for_mm(tmp_path):
    path = tmp_path / "odd.ome.zarr"
    group = zarr.create_group(path, zarr_format=3)
    group.create_array("0", shape=(2, 2, 2), chunks=(2, 2, 2), dtype="float32")
    group.attrs["ome"] = {"version": "0.5", "multiscales": [_multiscale(["0"], [[1, 1, 1]], "parsec")]}
    with pytest.raises(FormatError, match=r"odd\.ome\.zarr: axis 'z': unknown length unit 'parsec'"):
        open_ome_zarr(path).voxel_size_mm()


def test_missing_path_raises_input_error(tmp_path):
    with pytest.raises(InputError, match="nowhere.ome.zarr: does not exist"):
        open_ome_zarr(tmp_path / "nowhere.ome.zarr")


def test_zip_export_is_stored_with_zarr_json_at_the_root_and_readable(pyramid, tmp_path):
    path, volume = pyramid
    zip_path = export_zip(path, tmp_path / "vol.ome.zarr.zip")
    with zipfile.ZipFile(zip_path) as zf:
        infos = zf.infolist()
    assert infos[0].filename == "zarr.json"
    assert all(info.compress_type == zipfile.ZIP_STORED for info in infos)
    store = zarr.storage.ZipStore(zip_path, mode="r")
    try:
        group = zarr.open_group(store, mode="r")
        assert group.attrs["ome"]["multiscales"][0]["datasets"][2]["path"] == "2"
        assert np.array_equal(group["0"][...], volume)
    finally:
        store.close()
    assert [p.name for p in tmp_path.iterdir()] == ["vol.ome.zarr.zip"]


def test_exception_mid_write_leaves_no_output_and_no_temporary(tmp_path):
    final = tmp_path / "slice.ome.zarr"
    with pytest.raises(RuntimeError, match="killed"):
        with create_ome_zarr(final, (4, 8, 8), voxel_size_mm=(0.01,) * 3, chunks=(4, 4, 4)) as out:
            out.array[:, :4, :4] = 1
            raise RuntimeError("killed")
    with pytest.raises(TypeError, match="not JSON"):
        write_ome_zarr(
            final, np.zeros((2, 2, 2)), voxel_size_mm=(1, 1, 1), chunks=(2, 2, 2), extra_attrs={"x": object()}
        )
    assert list(tmp_path.iterdir()) == []


def test_rewriting_replaces_an_existing_store_completely(tmp_path):
    final = tmp_path / "v.ome.zarr"
    write_ome_zarr(final, np.ones((4, 8, 8), np.float32), voxel_size_mm=(0.01,) * 3, chunks=(4, 4, 4),
                   pyramid_resolutions_um=(10, 20))
    write_ome_zarr(final, np.full((2, 4, 4), 3, np.float32), voxel_size_mm=(0.02,) * 3, chunks=(2, 4, 4))
    image = open_ome_zarr(final)
    assert image.n_levels == 1 and not (final / "1").exists()
    assert np.all(image.read() == 3)
    assert [p.name for p in tmp_path.iterdir()] == ["v.ome.zarr"]


def test_bad_layout_is_refused_with_the_values(tmp_path):
    with pytest.raises(ValueError, match=r"chunks must be 3 positive integers, got \[4, 4\]"):
        with create_ome_zarr(tmp_path / "x.ome.zarr", (4, 8, 8), voxel_size_mm=(1, 1, 1), chunks=(4, 4)):
            pass
    with pytest.raises(ValueError, match=r"voxel_size_mm must be 3 positive sizes"):
        write_ome_zarr(tmp_path / "x.ome.zarr", np.zeros((2, 2, 2)), voxel_size_mm=(1, 0, 1), chunks=(2, 2, 2))
    assert list(tmp_path.iterdir()) == []


def test_pyramid_computed_by_several_threads_equals_the_one_computed_by_one(tmp_path, rng):
    rough = rng.random((9, 37, 53), dtype=np.float32)
    levels = []
    for workers in (1, 3):
        path = tmp_path / f"w{workers}.ome.zarr"
        with create_ome_zarr(path, rough.shape, voxel_size_mm=(BASE_MM,) * 3, chunks=(3, 5, 7), shards=(6, 10, 14),
                             pyramid_resolutions_um=PYRAMID_UM, workers=workers) as out:
            out.array[...] = rough
        levels.append([open_ome_zarr(path).read(k) for k in range(4)])
    for single, threaded in zip(*levels):
        assert np.array_equal(single, threaded)
