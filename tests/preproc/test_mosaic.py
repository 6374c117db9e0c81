"""Claims about mosaic-grid layout, tile resampling and where each tile lands."""

from __future__ import annotations

import numpy as np

from serialoct.io.omezarr import open_ome_zarr
from serialoct.io.slices import write_mosaic_grid
from serialoct.preproc.mosaic import ShardRegion, mosaic_layout


def test_native_layout_keeps_tiles_whole_and_shards_hold_s_by_s_tiles():
    layout = mosaic_layout((24, 32, 30), (3, 5), (5.0, 10.0, 10.0), sharding_factor=2)
    assert layout.shape == (24, 96, 150) and layout.shards == (24, 64, 60)
    regions = list(layout.shard_regions())
    assert len(regions) == 2 * 3 and regions[-1] == ShardRegion(2, 4, 1, 1)
    assert sum(r.n_x * r.n_y for r in regions) == 15  # every tile in exactly one shard


def test_isotropic_layout_covers_the_same_field_of_view():
    layout = mosaic_layout((100, 64, 64), (2, 2), (2.0, 5.0, 5.0), resolution_um=10.0)
    assert layout.tile_shape == (20, 32, 32) and layout.voxel_size_um == (10.0, 10.0, 10.0)


def test_a_written_mosaic_grid_holds_tile_ix_iy_at_rows_ix_h_and_columns_iy_w(rng, tmp_path):
    layout = mosaic_layout((3, 4, 5), (3, 3), (8.0, 10.0, 10.0), sharding_factor=2)  # edge shards hold fewer tiles
    tiles = {(ix, iy): rng.uniform(size=(3, 4, 5)).astype(np.float32) for ix in range(3) for iy in range(3) if (ix, iy) != (1, 0)}
    write_mosaic_grid(tmp_path / "grid.ome.zarr", layout, lambda ix, iy: tiles.get((ix, iy)), workers=2)
    volume = open_ome_zarr(tmp_path / "grid.ome.zarr").read(0)
    for (ix, iy), tile in tiles.items():
        np.testing.assert_array_equal(volume[:, 4 * ix : 4 * ix + 4, 5 * iy : 5 * iy + 5], tile)
    assert not volume[:, 4:8, 0:5].any()  # the hole reads zero


def test_each_shards_tiles_are_announced_for_read_ahead_before_any_of_them_is_made(tmp_path):
    layout = mosaic_layout((3, 4, 5), (3, 3), (8.0, 10.0, 10.0), sharding_factor=2)
    events = []

    def make(ix, iy):
        events.append(("make", (ix, iy)))
        return np.ones((3, 4, 5), np.float32)

    write_mosaic_grid(tmp_path / "grid.ome.zarr", layout, make, prefetch=lambda ij: events.append(("prefetch", tuple(ij))))
    announced = [set(ij) for kind, ij in events if kind == "prefetch"]
    assert announced == [set(r.tile_indices()) for r in layout.shard_regions()]  # every shard once, in order
    for k, tiles in enumerate(announced):
        first_made = min(i for i, (kind, ij) in enumerate(events) if kind == "make" and ij in tiles)
        announced_at = [i for i, (kind, ij) in enumerate(events) if kind == "prefetch"][k]
        assert announced_at < first_made
        if k + 1 < len(announced):  # the next shard is announced while this one is still being made
            assert [i for i, (kind, _) in enumerate(events) if kind == "prefetch"][k + 1] < first_made


def test_shards_holding_a_tile_named_first_are_written_before_the_others_then_row_major(tmp_path):
    layout = mosaic_layout((3, 4, 5), (3, 3), (8.0, 10.0, 10.0), sharding_factor=2)  # shards at (0,0) (0,2) (2,0) (2,2)
    made = []

    def make(ix, iy):
        made.append((ix, iy))
        return np.ones((3, 4, 5), np.float32)

    write_mosaic_grid(tmp_path / "grid.ome.zarr", layout, make, first=[(2, 1)])
    assert made == [(2, 0), (2, 1), (0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (1, 2), (2, 2)]
    assert open_ome_zarr(tmp_path / "grid.ome.zarr").read(0).all()


def test_tiles_decoded_into_reused_buffers_are_each_written_as_made_with_no_more_buffers_than_shards_in_flight(rng, tmp_path):
    from serialoct.io.direct import BufferPool

    layout = mosaic_layout((3, 4, 5), (6, 6), (8.0, 10.0, 10.0), sharding_factor=2)  # 9 shards of 4 tiles
    tiles = {(ix, iy): rng.uniform(size=(3, 4, 5)).astype(np.float32) for ix in range(6) for iy in range(6)}
    buffers = BufferPool((3, 4, 5))
    arrays = set()

    def make(ix, iy):
        out = buffers.take()
        arrays.add(id(out))
        out[...] = tiles[ix, iy]
        return out

    write_mosaic_grid(tmp_path / "grid.ome.zarr", layout, make, workers=2, buffers=buffers)
    volume = open_ome_zarr(tmp_path / "grid.ome.zarr").read(0)
    for (ix, iy), tile in tiles.items():
        np.testing.assert_array_equal(volume[:, 4 * ix : 4 * ix + 4, 5 * iy : 5 * iy + 5], tile)
    assert len(arrays) <= (2 + 1) * 4  # the shards being written (workers) and the one being made, not 36




def test_the_mosaic_step_reads_each_tile_once_the_galvo_sample_included_and_places_it_decoded(
    sample_acquisition, sample_expected, tmp_path, monkeypatch
):
    from serialoct.cli import main
    from serialoct.io import raw

    expected, meta = sample_expected
    read = []
    real = raw.read_raw_frames
    monkeypatch.setattr(raw, "read_raw_frames", lambda tile_dir, info, out=None: read.append(tile_dir.name) or real(tile_dir, info, out=out))
    out = tmp_path / "grid.ome.zarr"
    assert main(["step", "create_mosaic_grid", "--input", str(sample_acquisition), "--slice", "01", "--output", str(out),
                 "--metrics", str(tmp_path / "m.json"), "--axial_resolution", str(meta["axial_voxel_um"]),
                 "--sharding_factor", "1"]) == 0  # four shards of one tile; the galvo sample is all four tiles
    assert sorted(read) == sorted(set(read)) and len(read) == 4
    volume = open_ome_zarr(out).read(0)
    n_z, h, w = meta["tile_shape_zxy"]
    for ix in range(2):
        for iy in range(2):
            np.testing.assert_array_equal(volume[:, ix * h : (ix + 1) * h, iy * w : (iy + 1) * w], expected[f"01_{ix:02d}_{iy:02d}"])


def test_the_mosaic_step_refuses_a_slice_the_acquisition_lacks_and_names_those_it_has(sample_acquisition, sample_expected, tmp_path, capsys):
    from serialoct.cli import main

    _, meta = sample_expected
    out = tmp_path / "grid.ome.zarr"
    assert main(["step", "create_mosaic_grid", "--input", str(sample_acquisition), "--slice", "42", "--output", str(out),
                 "--metrics", str(tmp_path / "m.json")]) != 0
    assert f"no tiles of slice 42; found slices {', '.join(sorted(meta['slices']))}" in capsys.readouterr().err
    assert not out.exists()
