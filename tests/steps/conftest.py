"""A synthetic slice as a mosaic grid on disk, with the plan that rendered it."""

from __future__ import annotations

import pytest

from serialoct.io.slices import write_mosaic_grid
from serialoct.preproc.mosaic import MosaicLayout
from serialoct.synth import plan_acquisition, preset, render_tile

SLICE = "03"


def write_synthetic_grid(path, plan, slice_id, **render):
    """Render every tile of a slice and write them as a mosaic grid (what preprocessing produces)."""
    c = plan.config
    layout = MosaicLayout(c.tile_shape, c.grid_shape, (c.axial_resolution_um, c.pixel_size_um, c.pixel_size_um), 2)
    write_mosaic_grid(path, layout, lambda ix, iy: render_tile(plan, slice_id, ix, iy, **render))
    return path


@pytest.fixture(scope="session")
def small_plan():
    return plan_acquisition(preset("small"), seed=0)


@pytest.fixture(scope="session")
def small_grid(small_plan, tmp_path_factory):
    """Slice 03 of the small preset: 4x4 tiles of 64x96x96, 12 µm pixels, 8 µm axial."""
    return write_synthetic_grid(tmp_path_factory.mktemp("grid") / "mosaic_grid_3d_z03.ome.zarr", small_plan, SLICE)


@pytest.fixture(scope="session")
def small_slice_volume(small_plan):
    """Slice 03's unshaded tiles pasted edge to edge: a stand-in for a stitched slice (64 x 384 x 384)."""
    import numpy as np

    rows = [np.concatenate([render_tile(small_plan, SLICE, ix, iy, flat_field=False) for iy in range(4)], axis=2) for ix in range(4)]
    return np.concatenate(rows, axis=1)


@pytest.fixture(scope="session")
def small_slice(small_slice_volume, tmp_path_factory):
    from serialoct.io.slices import write_slice

    path = tmp_path_factory.mktemp("slice") / "slice_z03.ome.zarr"
    write_slice(path, small_slice_volume, (8.0, 12.0, 12.0))
    return path
