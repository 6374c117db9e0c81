"""Motor-only stitching and the seam probes: misplaced tiles make larger seams than correctly placed ones."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from scipy import ndimage

from serialoct.diagnostics import motor_only_placement, placement_record, probe_seams
from serialoct.stitch.blend import blend_slice
from serialoct.stitch.layout import nominal_positions_px

TILE = (96, 96)
OVERLAP = 0.2
JITTER_PX = 4.0
#: The motor-only seams must be at least this many times the refined ones.
SEAM_RATIO = 2.0


def _jittered_tiles(seed=0):
    """A textured field cut into 3x3 tiles at jittered true positions; returns (tiles, nominal, true)."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=(320, 320)), 2.0) * 20 + 100
    nominal = nominal_positions_px((3, 3), TILE, overlap_fraction=OVERLAP)
    true = {t: p + 8 + rng.uniform(-JITTER_PX, JITTER_PX, 2).round() for t, p in nominal.items()}
    tiles = {t: field[int(p[0]) : int(p[0]) + TILE[0], int(p[1]) : int(p[1]) + TILE[1]][None].astype(np.float32)
             for t, p in true.items()}
    return tiles, nominal, true


def test_motor_only_placement_is_the_layout_itself():
    layout = nominal_positions_px((2, 3), TILE, overlap_fraction=OVERLAP)
    p = motor_only_placement(layout, TILE)
    np.testing.assert_allclose(p.positions_px + p.origin_px, [layout[t] for t in p.tiles])
    assert not p.pairs and np.all(p.refinement_px == 0)
    json.dumps(placement_record(p, layout_px=layout))  # JSON-ready


def test_motor_only_stitch_of_a_jittered_grid_has_larger_seams_than_the_true_placement():
    tiles, nominal, true = _jittered_tiles()
    results = {}
    for name, layout in (("motor", nominal), ("refined", true)):
        placement = motor_only_placement(layout, TILE)
        image = blend_slice(tiles, placement, method="none")[0]
        results[name] = probe_seams(image, dict(zip(placement.tiles, placement.positions_px)), TILE, step_px=30)
    motor, refined = results["motor"], results["refined"]
    assert min(len(motor.probes), len(refined.probes)) >= 30  # 12 seams, a few probes each
    assert motor.mean > SEAM_RATIO * refined.mean, (motor.mean, refined.mean)
    assert refined.mean < 0.02


def test_a_gain_step_between_tiles_shows_as_a_signed_step():
    tiles, _, true = _jittered_tiles(seed=1)
    tiles = {t: v * (1.2 if t[1] == 2 else 1.0) for t, v in tiles.items()}  # the last column of tiles 20 % brighter
    placement = motor_only_placement(true, TILE)
    probes = probe_seams(blend_slice(tiles, placement, method="none")[0], dict(zip(placement.tiles, placement.positions_px)), TILE)
    cols = [p.gain_step for p in probes.probes if p.axis == "cols" and p.tiles[1][1] == 2]
    rows = [abs(p.gain_step) for p in probes.probes if p.axis == "rows"]
    assert min(cols) > 0.1 and max(rows) < 0.05


def test_probe_seams_refuses_a_zero_step():
    with pytest.raises(ValueError, match="step_px"):
        probe_seams(np.ones((10, 10)), {}, (4, 4), step_px=0)


def _run(module, argv):
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return module.run(parser.parse_args(argv))


def test_motor_only_and_comparison_steps_write_slice_preview_and_seam_table(tmp_path):
    from serialoct.io.images import read_png
    from serialoct.io.omezarr import open_ome_zarr
    from serialoct.io.slices import write_mosaic_grid
    from serialoct.preproc.mosaic import MosaicLayout
    from serialoct.steps import compare_stitching, stitch_3d_with_refinement, stitch_motor_only
    from serialoct.synth import plan_acquisition, preset, render_tile

    plan = plan_acquisition(preset("tiny"), seed=0)
    c = plan.config
    grid = tmp_path / "mosaic_grid_3d_z01.ome.zarr"
    write_mosaic_grid(grid, MosaicLayout(c.tile_shape, c.grid_shape, (c.axial_resolution_um, c.pixel_size_um, c.pixel_size_um), 2),
                      lambda ix, iy: render_tile(plan, "01", ix, iy, flat_field=False))
    motor = tmp_path / "motor_only_stitch" / "slice_z01.ome.zarr"
    refined = tmp_path / "stitch" / "slice_z01.ome.zarr"
    common = ["--slice", "01", "--no-use_gpu"]
    assert _run(stitch_motor_only, ["--input", str(grid), "--output", str(motor), "--metrics", str(tmp_path / "m.json"), *common]) == 0
    assert _run(stitch_3d_with_refinement, ["--input", str(grid), "--output", str(refined), "--metrics", str(tmp_path / "r.json"), *common]) == 0
    image = open_ome_zarr(motor)
    step = round(c.tile_shape[1] * (1 - c.overlap_fraction), 1)  # the grid has no stage positions: the nominal grid
    assert image.level(0).shape == (c.tile_shape[0], int(step) + c.tile_shape[1], int(step) + c.tile_shape[2])
    assert image.extra_attrs["motor_only"] is True and set(image.extra_attrs["stitch_positions_px"]) == {"0,0", "0,1", "1,0", "1,1"}
    assert read_png(motor.with_name("slice_z01.png")).ndim == 2
    metrics = json.loads((tmp_path / "m.json").read_text())["metrics"]
    assert metrics["n_tiles"]["value"] == 4 and metrics["seam_step_max"]["value"] is not None

    out = tmp_path / "stitch_comparison"
    assert _run(compare_stitching, ["--motor_only", str(motor), "--refined", str(refined), "--slice", "01", "--output_dir", str(out),
                                    "--metrics", str(tmp_path / "c.json")]) == 0
    seams = json.loads((out / "slice_z01_seams.json").read_text())
    assert seams["comparison_tile_step"] == 60 and seams["summary"]["motor_only"]["n_probes"] == len(seams["motor_only"]) > 0
    picture = read_png(out / "slice_z01_comparison.png")
    assert picture.ndim == 3 and picture.shape[1] > 2 * c.tile_shape[1]
