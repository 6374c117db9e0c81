"""The stack written block by block into an OME-Zarr with its analysis pyramid, motor offsets included."""

from __future__ import annotations


from serialoct.io.omezarr import create_ome_zarr, open_ome_zarr
from serialoct.stack import StackSlice, iter_blocks, ncc, plan_stack, pyramid_levels, render_block

from .conftest import PLANES_PER_SLICE, THICKNESS_UM, VOXEL_UM

#: Shard depth of the output: one block of planes rendered and written at a time.
BLOCK = 16
MIN_NCC = 0.90
#: Per-slice motor placements: each slab is a crop of the canvas starting here.
OFFSETS = ((0, 0), (3, 5), (6, 2), (1, 7))


def test_blockwise_ome_zarr_with_pyramid_matches_the_truth(tmp_path, truth):
    depth = PLANES_PER_SLICE + 4
    h, w = truth.reflectivity.shape[1:]
    crop = (h - 8, w - 8)
    vols = [truth.reflectivity[k * PLANES_PER_SLICE : k * PLANES_PER_SLICE + depth, r : r + crop[0], c : c + crop[1]]
            for k, (r, c) in enumerate(OFFSETS)]
    slices = [StackSlice(k, v.shape, OFFSETS[k]) for k, v in enumerate(vols)]
    plan = plan_stack(slices, slice_thickness_um=THICKNESS_UM, voxel_um=VOXEL_UM)
    levels = pyramid_levels(VOXEL_UM, [10, 25, 50, 100])
    path = tmp_path / "subject.ome.zarr"
    with create_ome_zarr(path, plan.shape, voxel_size_mm=(VOXEL_UM / 1000,) * 3, chunks=(BLOCK, 64, 64), shards=(BLOCK, 128, 128),
                         pyramid_resolutions_um=levels[1:]) as out:
        for z0, z1 in iter_blocks(plan, BLOCK):
            out.array[z0:z1] = render_block(plan, lambda k, a, b: vols[k][a:b], z0, z1)
    image = open_ome_zarr(path)
    assert image.n_levels == len(levels) == 3
    volume = image.read(0)
    n = volume.shape[0]
    assert ncc(volume, truth.reflectivity[:n, : volume.shape[1], : volume.shape[2]],
               truth.tissue[:n, : volume.shape[1], : volume.shape[2]] & (volume != 0)) >= MIN_NCC
