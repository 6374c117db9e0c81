"""Per-slice reconstruction steps run as commands, against the synthetic ground truth."""

from __future__ import annotations

import json

import numpy as np
import pytest

from serialoct.cli import main
from serialoct.io.slices import open_mosaic_grid
from serialoct.synth import render_tile

from .conftest import SLICE, write_synthetic_grid

CURVATURE_TOLERANCE_VOX = 1.0
FLATFIELD_TOLERANCE = 0.03  # relative RMS of a corrected tile against the unshaded truth
MEAN_TOLERANCE = 0.02


def _step(name, source, out, *options):
    metrics = out.with_suffix(".json")
    assert main(["step", name, "--input", str(source), "--output", str(out), "--slice", SLICE, "--metrics", str(metrics),
                 "--no-use_gpu", *options]) == 0
    return open_mosaic_grid(out), json.loads(metrics.read_text())


def test_resampling_gives_isotropic_voxels_and_keeps_the_mean(small_grid, small_plan, tmp_path):
    grid, metrics = _step("resample_mosaic_grid", small_grid, tmp_path / "r.ome.zarr", "--resolution", "16")
    assert grid.voxel_size_um == pytest.approx((16.0, 16.0, 16.0)) and grid.tile_shape == (32, 72, 72)
    truth = render_tile(small_plan, SLICE, 1, 2)
    assert grid.tile(1, 2).mean() == pytest.approx(truth.mean(), rel=MEAN_TOLERANCE)
    assert metrics["overall_status"] == "ok"


def test_the_removed_bowl_is_the_true_focal_curvature(small_grid, small_plan, tmp_path):
    grid, metrics = _step("fix_focal_curvature", small_grid, tmp_path / "c.ome.zarr")
    bowl = np.asarray(grid.extra["focal_curvature_bowl_vox"])
    truth = small_plan.curvature_vox - small_plan.curvature_vox.min()  # the step sets the bowl's minimum to 0
    assert np.abs(bowl - truth).max() < CURVATURE_TOLERANCE_VOX
    assert metrics["metrics"]["applied"]["value"] is True


def test_illumination_correction_recovers_the_unshaded_tiles(small_grid, small_plan, tmp_path):
    grid, metrics = _step("fix_illumination", small_grid, tmp_path / "i.ome.zarr")
    errors = []
    for ix, iy in [(1, 1), (2, 2), (0, 3)]:
        truth = render_tile(small_plan, SLICE, ix, iy, flat_field=False).mean(axis=0)  # same speckle, unshaded
        got = grid.tile(ix, iy).mean(axis=0)
        shading = got / truth
        errors.append(np.sqrt(np.mean((shading / shading.mean() - 1) ** 2)))
    assert max(errors) < FLATFIELD_TOLERANCE
    assert metrics["metrics"]["fitted"]["value"] is True


def test_an_empty_slice_is_copied_with_a_warning_not_a_crash(small_plan, tmp_path):
    from serialoct.io.slices import write_mosaic_grid
    from serialoct.preproc.mosaic import MosaicLayout

    empty = tmp_path / "e.ome.zarr"
    write_mosaic_grid(empty, MosaicLayout((8, 16, 16), (3, 3), (8.0, 12.0, 12.0), 2), lambda ix, iy: None)  # nothing recorded
    out, metrics = _step("fix_illumination", empty, tmp_path / "i.ome.zarr")
    assert not out.array[...].any() and metrics["overall_status"] == "warning"
