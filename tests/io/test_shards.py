"""A shard written whole from its chunks is the shard zarr would have written, and reads back as zarr reads it."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from serialoct.io.omezarr import create_ome_zarr, open_ome_zarr
from serialoct.io.shards import DamagedChunk, read_region, write_region, write_shard, write_shard_made, write_volume

CHUNK = (3, 4, 5)


def _tiles(rng, grid):
    """Noisy chunks on a grid of chunks, one left out (a hole)."""
    return {(0, ix, iy): rng.gamma(2.0, size=CHUNK).astype(np.float32) for ix in range(grid[0]) for iy in range(grid[1]) if (ix, iy) != (1, 0)}


def _expected(tiles, grid):
    block = np.zeros((CHUNK[0], grid[0] * CHUNK[1], grid[1] * CHUNK[2]), np.float32)
    for (_, ix, iy), tile in tiles.items():
        block[:, ix * CHUNK[1] : (ix + 1) * CHUNK[1], iy * CHUNK[2] : (iy + 1) * CHUNK[2]] = tile
    return block


def _through_zarr(store):
    """Level 0 of an OME-Zarr store read by zarr itself (not by serialoct's shard reader)."""
    return zarr.open_array(store / "0", mode="r")[...]


def _write_by_shard(array, tiles, per_shard):
    shards = {}
    for (z, ix, iy), tile in tiles.items():
        shards.setdefault((z, ix // per_shard, iy // per_shard), {})[(0, ix % per_shard, iy % per_shard)] = tile
    for shard, chunks in shards.items():
        write_shard(array, shard, chunks)


def test_shards_written_from_their_chunks_read_back_through_zarr_with_holes_as_zero(rng, tmp_path):
    grid, per_shard = (3, 5), 2  # shards at the edges hang over the array
    tiles = _tiles(rng, grid)
    with create_ome_zarr(tmp_path / "a.ome.zarr", _expected(tiles, grid).shape, voxel_size_mm=(0.01,) * 3, chunks=CHUNK,
                         shards=(CHUNK[0], per_shard * CHUNK[1], per_shard * CHUNK[2])) as out:
        _write_by_shard(out.array, tiles, per_shard)
    np.testing.assert_array_equal(_through_zarr(tmp_path / "a.ome.zarr"), _expected(tiles, grid))


def test_a_shard_file_holds_what_zarr_writes_for_the_same_block(rng, tmp_path):
    tiles = _tiles(rng, (2, 2))
    arrays = []
    for name in ("ours", "zarr"):
        with create_ome_zarr(tmp_path / f"{name}.ome.zarr", (3, 8, 10), voxel_size_mm=(0.01,) * 3, chunks=CHUNK, shards=(3, 8, 10)) as out:
            if name == "ours":
                write_shard(out.array, (0, 0, 0), {(0, ix, iy): t for (_, ix, iy), t in tiles.items()})
            else:
                out.array[...] = _expected(tiles, (2, 2))
        arrays.append(zarr.open_array(tmp_path / f"{name}.ome.zarr" / "0"))
    ours, theirs = (a.store_path.store.root / a.store_path.path / a.metadata.encode_chunk_key((0, 0, 0)) for a in arrays)
    assert ours.stat().st_size == theirs.stat().st_size  # same encoded chunks, same index (in another order)
    np.testing.assert_array_equal(arrays[0][...], arrays[1][...])


def test_a_corrupted_shard_index_fails_to_read(rng, tmp_path):
    with create_ome_zarr(tmp_path / "a.ome.zarr", (3, 8, 10), voxel_size_mm=(0.01,) * 3, chunks=CHUNK, shards=(3, 8, 10)) as out:
        write_shard(out.array, (0, 0, 0), {(0, 0, 0): rng.gamma(2.0, size=CHUNK).astype(np.float32)})
    shard = tmp_path / "a.ome.zarr" / "0" / "c" / "0" / "0" / "0"
    data = bytearray(shard.read_bytes())
    data[-10] ^= 0xFF  # inside the index: its crc32c no longer matches
    shard.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        zarr.open_array(tmp_path / "a.ome.zarr" / "0")[...]


def test_an_empty_shard_leaves_no_file_and_reads_zero(tmp_path):
    with create_ome_zarr(tmp_path / "a.ome.zarr", (3, 8, 10), voxel_size_mm=(0.01,) * 3, chunks=CHUNK, shards=(3, 8, 10)) as out:
        write_shard(out.array, (0, 0, 0), {})
    assert not (tmp_path / "a.ome.zarr" / "0" / "c").exists()
    assert not _through_zarr(tmp_path / "a.ome.zarr").any()


@pytest.mark.parametrize("layout", ["unsharded", "other codec"])
def test_arrays_in_another_layout_are_written_through_zarr(rng, tmp_path, layout):
    grid = (3, 2)
    tiles = _tiles(rng, grid)
    shape = _expected(tiles, grid).shape
    if layout == "unsharded":
        array = zarr.create_array(tmp_path / "a.zarr", shape=shape, chunks=CHUNK, dtype="f4", fill_value=0)
        per_shard = 1
    else:
        array = zarr.create_array(tmp_path / "a.zarr", shape=shape, chunks=CHUNK, shards=(3, 8, 10), dtype="f4", fill_value=0,
                                  compressors=zarr.codecs.BloscCodec())
        per_shard = 2
    _write_by_shard(array, tiles, per_shard)
    np.testing.assert_array_equal(array[...], _expected(tiles, grid))


def _write_made(array, tiles, grid, per_shard):
    """Every shard of ``array`` through write_shard_made; the chunks released, in order."""
    made, released = [], []
    for sx in range(-(-grid[0] // per_shard)):
        for sy in range(-(-grid[1] // per_shard)):
            def make(position, sx=sx, sy=sy):
                key = (0, sx * per_shard + position[1], sy * per_shard + position[2])
                made.append(key)
                return None if key not in tiles else tiles[key].copy()  # a hole, or a shard over the grid's edge

            def release(data):
                assert made[-1] in tiles and np.array_equal(data, tiles[made[-1]])  # the chunk just made, now encoded
                released.append(made[-1])

            write_shard_made(array, (0, sx, sy), make, release=release)
    return released


def test_chunks_made_in_their_turn_make_the_same_array_each_released_once_encoded(rng, tmp_path):
    grid, per_shard = (3, 5), 2
    tiles = _tiles(rng, grid)
    with create_ome_zarr(tmp_path / "a.ome.zarr", _expected(tiles, grid).shape, voxel_size_mm=(0.01,) * 3, chunks=CHUNK,
                         shards=(CHUNK[0], per_shard * CHUNK[1], per_shard * CHUNK[2])) as out:
        released = _write_made(out.array, tiles, grid, per_shard)
    assert sorted(released) == sorted(tiles)
    np.testing.assert_array_equal(_through_zarr(tmp_path / "a.ome.zarr"), _expected(tiles, grid))


def test_chunks_made_for_an_array_in_another_layout_are_written_through_zarr(rng, tmp_path):
    grid = (3, 2)
    tiles = _tiles(rng, grid)
    array = zarr.create_array(tmp_path / "a.zarr", shape=_expected(tiles, grid).shape, chunks=CHUNK, dtype="f4", fill_value=0)
    assert sorted(_write_made(array, tiles, grid, 1)) == sorted(tiles)
    np.testing.assert_array_equal(array[...], _expected(tiles, grid))


def test_a_made_shard_of_holes_leaves_no_file_and_a_made_chunk_of_the_wrong_shape_is_refused(tmp_path):
    with create_ome_zarr(tmp_path / "a.ome.zarr", (3, 8, 10), voxel_size_mm=(0.01,) * 3, chunks=CHUNK, shards=(3, 8, 10)) as out:
        write_shard_made(out.array, (0, 0, 0), lambda position: None)
        with pytest.raises(ValueError, match="expected"):
            write_shard_made(out.array, (0, 0, 0), lambda position: np.zeros((3, 4, 4), np.float32))
    assert not [f for f in (tmp_path / "a.ome.zarr" / "0").rglob("*") if f.is_file() and f.name != "zarr.json"]
    assert not _through_zarr(tmp_path / "a.ome.zarr").any()


def test_a_chunk_of_the_wrong_shape_or_outside_the_shard_is_refused(tmp_path):
    with create_ome_zarr(tmp_path / "a.ome.zarr", (3, 8, 10), voxel_size_mm=(0.01,) * 3, chunks=CHUNK, shards=(3, 8, 10)) as out:
        with pytest.raises(ValueError, match="expected"):
            write_shard(out.array, (0, 0, 0), {(0, 0, 0): np.zeros((3, 4, 4), np.float32)})
        with pytest.raises(ValueError, match="outside"):
            write_shard(out.array, (0, 0, 0), {(0, 2, 0): np.zeros(CHUNK, np.float32)})


def test_a_volume_written_shard_by_shard_reads_back_whole_and_stores_no_empty_chunk(rng, tmp_path):
    volume = rng.gamma(2.0, size=(3, 11, 13)).astype(np.float32)  # edge chunks are partial, edge shards hang over
    volume[:, :4, :] = 0  # the first row of chunks is empty
    with create_ome_zarr(tmp_path / "a.ome.zarr", volume.shape, voxel_size_mm=(0.01,) * 3, chunks=CHUNK, shards=(3, 8, 10)) as out:
        write_volume(out.array, volume)
    np.testing.assert_array_equal(_through_zarr(tmp_path / "a.ome.zarr"), volume)
    index = np.frombuffer((tmp_path / "a.ome.zarr" / "0" / "c" / "0" / "0" / "0").read_bytes()[-4 - 4 * 16 : -4], "<u8").reshape(2, 2, 2)
    assert (index[0, :, 0] == 2**64 - 1).all() and (index[1, :, 0] != 2**64 - 1).all()  # row 0 of chunks not stored


def test_a_volume_for_an_unsharded_array_is_written_by_zarr_and_a_wrong_shape_refused(rng, tmp_path):
    volume = rng.gamma(2.0, size=(3, 11, 13)).astype(np.float32)
    array = zarr.create_array(tmp_path / "a.zarr", shape=volume.shape, chunks=CHUNK, dtype="f4", fill_value=0)
    write_volume(array, volume)
    np.testing.assert_array_equal(array[...], volume)
    with pytest.raises(ValueError, match="shape"):
        write_volume(array, volume[:, :10])


def test_blocks_of_whole_shards_written_one_by_one_make_the_volume_and_a_misaligned_block_is_refused(rng, tmp_path):
    volume = rng.gamma(2.0, size=(3, 11, 13)).astype(np.float32)
    with create_ome_zarr(tmp_path / "a.ome.zarr", volume.shape, voxel_size_mm=(0.01,) * 3, chunks=CHUNK, shards=(3, 8, 10)) as out:
        for r0 in (0, 8):
            for c0 in (0, 10):
                write_region(out.array, (0, r0, c0), volume[:, r0 : r0 + 8, c0 : c0 + 10])
        with pytest.raises(ValueError, match="whole shards"):
            write_region(out.array, (0, 4, 0), volume[:, 4:8, :10])
        with pytest.raises(ValueError, match="does not fit"):
            write_region(out.array, (0, 8, 10), volume)
    np.testing.assert_array_equal(_through_zarr(tmp_path / "a.ome.zarr"), volume)


# --------------------------------------------------------------------------- reading


def _sharded_volume(rng, tmp_path, shape=(7, 11, 13), chunks=(3, 4, 5), shards=(6, 8, 10)):
    """A volume written shard by shard (edge chunks partial, edge shards over the edge, one row of chunks empty)."""
    volume = rng.gamma(2.0, size=shape).astype(np.float32)
    volume[:3, :4, :] = 0
    with create_ome_zarr(tmp_path / "a.ome.zarr", shape, voxel_size_mm=(0.01,) * 3, chunks=chunks, shards=shards) as out:
        write_volume(out.array, volume)
    return volume, open_ome_zarr(tmp_path / "a.ome.zarr").level(0)


@pytest.mark.parametrize("span", [None, 300])  # 300 bytes: a chunk or two per read
def test_any_block_read_shard_by_shard_is_what_zarr_reads(rng, tmp_path, monkeypatch, span):
    from serialoct.io import shards

    if span is not None:
        monkeypatch.setattr(shards, "_READ_SPAN", span)
    volume, array = _sharded_volume(rng, tmp_path)
    for _ in range(60):
        lo = [int(rng.integers(0, n)) for n in volume.shape]
        hi = [int(rng.integers(a + 1, n + 1)) for a, n in zip(lo, volume.shape)]
        region = tuple(slice(a, b) for a, b in zip(lo, hi))
        np.testing.assert_array_equal(read_region(array, region), volume[region])
    for selection in [..., (2,), (slice(1, 5), 3), (Ellipsis, -1), (0, slice(None), 12), np.s_[:, 2:9, -4:]]:
        np.testing.assert_array_equal(array[selection], volume[selection])  # the image's reads take this path
        np.testing.assert_array_equal(array[selection], zarr.Array.__getitem__(array, selection))


def test_a_missing_or_empty_shard_reads_as_the_fill_value(rng, tmp_path):
    volume, array = _sharded_volume(rng, tmp_path)
    shards = tmp_path / "a.ome.zarr" / "0" / "c"
    (shards / "1" / "1" / "1").unlink()
    (shards / "0" / "1" / "0").write_bytes(b"")
    volume[6:, 8:, 10:] = 0
    volume[:6, 8:, :10] = 0
    np.testing.assert_array_equal(array[...], volume)


def test_an_array_in_another_layout_is_left_to_zarr(rng, tmp_path):
    array = zarr.create_array(tmp_path / "a.zarr", shape=(3, 8, 10), chunks=CHUNK, dtype="f4", fill_value=0)
    assert read_region(array, (slice(0, 3), slice(0, 8), slice(0, 10))) is None


@pytest.mark.parametrize("damage", ["index", "chunk", "truncated"])
def test_a_damaged_shard_names_its_first_voxel_or_the_damaged_chunks(rng, tmp_path, damage):
    volume, array = _sharded_volume(rng, tmp_path)
    shard = tmp_path / "a.ome.zarr" / "0" / "c" / "0" / "0" / "1"  # voxels from (0, 0, 10)
    data = bytearray(shard.read_bytes())
    index = np.frombuffer(bytes(data[-4 - 16 * 8 : -4]), "<u8").reshape(2, 2, 2, 2)
    if damage == "index":
        data[-10] ^= 0xFF
    elif damage == "chunk":
        offset, length = index[1, 1, 0]
        data[int(offset + length // 2)] ^= 0xFF
    else:
        data = data[:50]
    shard.write_bytes(bytes(data))
    with pytest.raises(DamagedChunk) as raised:
        read_region(array, (slice(0, 7), slice(0, 11), slice(0, 13)))
    assert raised.value.origin == ((3, 4, 10) if damage == "chunk" else (0, 0, 10))
    np.testing.assert_array_equal(read_region(array, (slice(0, 7), slice(0, 11), slice(0, 10))), volume[:, :, :10])  # the rest reads
