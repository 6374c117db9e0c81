"""The preprocessing workflow on synthetic acquisitions, against their ground truth."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from serialoct.cli import main
from serialoct.io.omezarr import open_ome_zarr
from serialoct.io.tables import read_shifts_xy, read_slice_config
from serialoct.synth import load_truth, preset, render_tile, write_acquisition

SHIFT_TOLERANCE_MM = 1e-6  # positions are written to 1 nm


@pytest.fixture(scope="module", params=[False, True], ids=["default-layout", "old-layout"])
def run(request, tmp_path_factory):
    """A tiny acquisition (3 repeats, 3 .bin files per tile) preprocessed through Snakemake."""
    old = request.param
    root = tmp_path_factory.mktemp("old" if old else "default")
    config = replace(preset("tiny"), old_layout=old, n_repeat=3, n_bin_files=3)
    write_acquisition(root / "raw", config, seed=5)
    args = ["preproc", "--input", str(root / "raw"), "--output", str(root / "out"),
            "--axial_resolution", str(config.axial_resolution_um), "--detect_galvo", "true"]
    if old:
        args += ["--use_old_folder_structure", "true"]
    assert main(args) == 0
    return load_truth(root / "raw"), root / "out"


def test_every_mosaic_tile_equals_the_ground_truth_tile_after_the_galvo_fix(run):
    truth, out = run
    plan = truth.plan()
    _, h, w = plan.config.tile_shape
    for slice_id in truth.present_slice_ids:
        mosaic = open_ome_zarr(out / f"mosaic_grid_3d_z{slice_id}.ome.zarr").read()
        for ix in range(plan.config.grid_shape[0]):
            for iy in range(plan.config.grid_shape[1]):
                got = mosaic[:, ix * h : (ix + 1) * h, iy * w : (iy + 1) * w]
                np.testing.assert_array_equal(got, render_tile(plan, slice_id, ix, iy))


def test_shifts_match_the_reported_stage_offsets_including_the_glitch(run):
    truth, out = run
    reported = truth.arrays["reported_mm"]  # (slices, gx, gy, 2)
    rows = read_shifts_xy(out / "shifts_xy.csv")
    assert len(rows) == len(truth.present_slice_ids) - 1
    for row in rows:
        fixed, moving = reported[int(row.fixed_id)], reported[int(row.moving_id)]
        expected = fixed.reshape(-1, 2).min(axis=0) - moving.reshape(-1, 2).min(axis=0)  # same grid: low edges
        assert (row.x_shift_mm, row.y_shift_mm) == pytest.approx(tuple(expected), abs=SHIFT_TOLERANCE_MM)
    glitch = int(truth.meta["events"]["glitch_slice"])
    into = next(r for r in rows if int(r.moving_id) == glitch)
    out_of = next(r for r in rows if int(r.fixed_id) == glitch)
    assert np.hypot(into.x_shift_mm, into.y_shift_mm) > 0.5  # the spike and its return are both there
    assert into.x_shift_mm == pytest.approx(-out_of.x_shift_mm, abs=0.1)


def test_slice_config_records_the_detected_galvo_fix_on_every_slice(run):
    truth, out = run
    rows = read_slice_config(out / "slice_config.csv")
    assert [r.slice_id for r in rows] == list(truth.present_slice_ids)
    assert all(r.galvo_fix for r in rows)


@pytest.fixture(scope="module")
def tiny_raw(tmp_path_factory):
    raw = tmp_path_factory.mktemp("tiny") / "raw"
    write_acquisition(raw, preset("tiny"), seed=2)
    return raw


def _step(raw, out, *options):
    args = ["step", "create_mosaic_grid", "--input", str(raw), "--slice", "02", "--output", str(out),
            "--metrics", str(out) + ".json", "--axial_resolution", "8", *options]
    assert main(args) == 0
    return open_ome_zarr(out)


def test_isotropic_resampling_keeps_the_field_of_view_and_the_mean(tiny_raw, tmp_path):
    truth = load_truth(tiny_raw)
    plan = truth.plan()
    image = _step(tiny_raw, tmp_path / "m.ome.zarr", "--resolution", "40")  # 20 µm pixels, 8 µm axial -> 40 µm
    z, h, w = (n * v // 40 for n, v in zip(plan.config.tile_shape, (8, 20, 20)))
    assert image.level(0).chunks == (z, h, w) and image.voxel_size_mm() == pytest.approx((0.04,) * 3)
    mosaic = image.read()
    tile = render_tile(plan, "02", 1, 0)[: z * 40 // 8]  # the depth the 40 µm voxels cover
    assert mosaic[:, h : 2 * h, :w].mean() == pytest.approx(tile.mean(), rel=0.02)


def test_legacy_orientation_rotates_every_tile(tiny_raw, tmp_path):
    plan = load_truth(tiny_raw).plan()
    mosaic = _step(tiny_raw, tmp_path / "m.ome.zarr", "--preprocess").read()
    _, h, w = plan.config.tile_shape
    tile = render_tile(plan, "02", 0, 1)
    expected = np.flip(np.rot90(tile, k=3, axes=(1, 2)), axis=1)
    np.testing.assert_array_equal(mosaic[:, :w, h : 2 * h], expected)


def test_without_the_galvo_fix_the_band_stays_in_the_tiles(tiny_raw, tmp_path):
    plan = load_truth(tiny_raw).plan()
    mosaic = _step(tiny_raw, tmp_path / "m.ome.zarr", "--no-fix_galvo_shift").read()
    _, h, w = plan.config.tile_shape
    assert plan.slice(2).galvo_band_start != h  # a band not already at the end of the B-scan
    assert not np.array_equal(mosaic[:, :h, :w], render_tile(plan, "02", 0, 0))
