"""Claims about mosaic-grid layout, tile resampling and shard assembly."""

from __future__ import annotations

import numpy as np

from serialoct.preproc.mosaic import ShardRegion, assemble_shard, mosaic_layout


def test_native_layout_keeps_tiles_whole_and_shards_hold_s_by_s_tiles():
    layout = mosaic_layout((24, 32, 30), (3, 5), (5.0, 10.0, 10.0), sharding_factor=2)
    assert layout.shape == (24, 96, 150) and layout.shards == (24, 64, 60)
    regions = list(layout.shard_regions())
    assert len(regions) == 2 * 3 and regions[-1] == ShardRegion(2, 4, 1, 1)
    assert sum(r.n_x * r.n_y for r in regions) == 15  # every tile in exactly one shard


def test_isotropic_layout_covers_the_same_field_of_view():
    layout = mosaic_layout((100, 64, 64), (2, 2), (2.0, 5.0, 5.0), resolution_um=10.0)
    assert layout.tile_shape == (20, 32, 32) and layout.voxel_size_um == (10.0, 10.0, 10.0)


def test_assembly_places_tile_ix_iy_at_rows_ix_h_and_columns_iy_w(rng):
    tiles = {(ix, iy): rng.uniform(size=(3, 4, 5)).astype(np.float32) for ix in range(2) for iy in range(2) if (ix, iy) != (1, 0)}
    block = assemble_shard(ShardRegion(0, 0, 2, 2), tiles, (3, 4, 5))
    np.testing.assert_array_equal(block[:, 4:8, 5:10], tiles[(1, 1)])
    np.testing.assert_array_equal(block[:, 0:4, 5:10], tiles[(0, 1)])
    assert not block[:, 4:8, 0:5].any()  # the hole stays zero
