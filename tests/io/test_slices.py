"""Stitched slices on disk: their layout, and reading a few planes without the rest."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from serialoct.io.slices import read_planes, read_slice, read_slice_map, slice_layout, write_slice


def test_a_stitched_slice_has_16_plane_chunks_in_shards_of_its_whole_depth(rng, tmp_path):
    volume = rng.gamma(2.0, size=(37, 300, 140)).astype(np.float32)
    write_slice(tmp_path / "s.ome.zarr", volume, (8.0, 12.0, 12.0))
    array = zarr.open_array(tmp_path / "s.ome.zarr" / "0")
    assert tuple(array.chunks) == (16, 128, 128) and tuple(array.shards) == (48, 384, 256)
    assert slice_layout((8, 90, 700)) == ((8, 90, 128), (8, 90, 512))  # a thin, small slice: one chunk deep and wide
    np.testing.assert_array_equal(read_slice(tmp_path / "s.ome.zarr").volume, volume)


def test_read_planes_gives_the_planes_asked_for_clipped_to_the_depth(rng, tmp_path):
    volume = rng.gamma(2.0, size=(37, 40, 30)).astype(np.float32)
    write_slice(tmp_path / "s.ome.zarr", volume, (8.0, 12.0, 12.0))
    np.testing.assert_array_equal(read_planes(tmp_path / "s.ome.zarr", 14, 18), volume[14:18])
    np.testing.assert_array_equal(read_planes(tmp_path / "s.ome.zarr", 35, 50), volume[35:])


def test_maps_written_with_a_slice_read_back_unchanged_and_a_missing_one_is_none(rng, tmp_path):
    volume = rng.gamma(2.0, size=(20, 30, 40)).astype(np.float32)
    depth = rng.integers(0, 20, size=(30, 40)).astype(np.int32)
    write_slice(tmp_path / "s.ome.zarr", volume, (8.0, 12.0, 12.0), maps={"reference_depth_vox": depth})
    np.testing.assert_array_equal(read_slice_map(tmp_path / "s.ome.zarr", "reference_depth_vox"), depth)
    assert read_slice_map(tmp_path / "s.ome.zarr", "other") is None
    np.testing.assert_array_equal(read_slice(tmp_path / "s.ome.zarr").volume, volume)
    with pytest.raises(ValueError, match="does not match the A-lines"):
        write_slice(tmp_path / "t.ome.zarr", volume, (8.0, 12.0, 12.0), maps={"reference_depth_vox": depth[:, :10]})
    assert not (tmp_path / "t.ome.zarr").exists()
