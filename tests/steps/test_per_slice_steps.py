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


def _slice_step(name, source, out, *options):
    from serialoct.io.slices import read_slice

    metrics = out.with_suffix(".json")
    assert main(["step", name, "--input", str(source), "--output", str(out), "--slice", SLICE, "--metrics", str(metrics),
                 "--no-use_gpu", *options]) == 0
    return read_slice(out), json.loads(metrics.read_text())


FOCUS_TOLERANCE_VOX = 1.5


def test_beam_profile_fit_finds_the_true_focus_and_flattens_agarose(small_slice, small_plan, tmp_path):
    corrected, metrics = _slice_step("beam_profile_correction", small_slice, tmp_path / "b.ome.zarr")
    c = small_plan.config
    true_focus = c.focus_depth_um / c.axial_resolution_um + small_plan.curvature_vox.mean()
    assert metrics["metrics"]["applied"]["value"] is True
    assert abs(metrics["metrics"]["focus_vox"]["value"] - true_focus) < FOCUS_TOLERANCE_VOX
    assert corrected.extra["water_level"] > 0  # carried forward for attenuation compensation


def test_crop_puts_the_surface_at_the_top_and_keeps_what_is_below(small_slice, small_slice_volume, tmp_path):
    cropped, metrics = _slice_step("crop_interface", small_slice, tmp_path / "c.ome.zarr", "--crop_interface_out_depth", "300")
    volume = cropped.volume
    assert volume.shape[0] == round(300 / 8)  # 300 µm at 8 µm voxels (enough data below every surface)
    water = cropped.extra["water_level"]
    tissue = small_slice_volume.max(axis=0) > 10 * water  # A-lines with signal
    assert np.median(volume[1, tissue]) > 5 * water  # the first planes are tissue, not water
    assert metrics["metrics"]["surface_found_fraction"]["value"] > 0.9


def test_attenuation_compensation_removes_the_depth_decay(small_slice, tmp_path):
    cropped, _ = _slice_step("crop_interface", small_slice, tmp_path / "c.ome.zarr", "--crop_interface_out_depth", "300")
    compensated, _ = _slice_step("compensate_attenuation", tmp_path / "c.ome.zarr", tmp_path / "a.ome.zarr")
    tissue = cropped.volume[:4].mean(axis=0) > 5 * cropped.extra["water_level"]

    def decay(volume):  # ratio of the deep to the shallow tissue signal
        profile = volume[:, tissue].mean(axis=1)
        return profile[-8:].mean() / profile[:8].mean()

    assert decay(cropped.volume) < 0.5  # the raw signal fades with depth
    # Compensated: the decay is gone; the ratio may exceed 1 because the phantom's deep layers
    # (white matter) reflect more than the cortex near the surface.
    assert 0.8 < decay(compensated.volume) < 2.0


def test_normalisation_of_a_compensated_slice_ignores_what_the_compensation_lifted_out_of_the_noise(small_slice, tmp_path):
    from serialoct.io.slices import read_slice_map, write_slice

    _slice_step("crop_interface", small_slice, tmp_path / "c.ome.zarr", "--crop_interface_out_depth", "300")
    compensated, _ = _slice_step("compensate_attenuation", tmp_path / "c.ome.zarr", tmp_path / "a.ome.zarr")
    depth = read_slice_map(tmp_path / "a.ome.zarr", "reference_depth_vox")
    assert depth is not None and 0 < depth.min() and depth.max() <= compensated.volume.shape[0]
    _, metrics = _slice_step("normalize", tmp_path / "a.ome.zarr", tmp_path / "n.ome.zarr")
    noisier = compensated.volume.copy()
    below = np.arange(noisier.shape[0])[:, None, None] >= depth[None]
    noisier[below] *= 5.0  # more noise lifted at the bottom
    write_slice(tmp_path / "b.ome.zarr", noisier, compensated.voxel_size_um, extra=compensated.extra, maps={"reference_depth_vox": depth})
    _, again = _slice_step("normalize", tmp_path / "b.ome.zarr", tmp_path / "m.ome.zarr")
    assert below.any()
    assert again["metrics"]["clip_value"]["value"] == pytest.approx(metrics["metrics"]["clip_value"]["value"], rel=1e-9)


def test_normalisation_maps_tissue_to_0_1_and_background_to_0(small_slice, tmp_path):
    normalized, metrics = _slice_step("normalize", small_slice, tmp_path / "n.ome.zarr", "--clip_percentile_upper", "99")
    volume = normalized.volume
    assert volume.min() == 0.0 and volume.max() == 1.0
    tissue_fraction = metrics["metrics"]["tissue_fraction"]["value"]
    assert (volume > 0).mean() == pytest.approx(tissue_fraction, abs=0.01)
    assert (volume[volume > 0] >= 1.0).mean() == pytest.approx(0.01, abs=0.005)  # the top 1 % is clipped to 1


def test_attenuation_of_a_very_shallow_slice_is_skipped_with_a_warning(small_slice_volume, tmp_path):
    from serialoct.io.slices import write_slice

    shallow = tmp_path / "shallow.ome.zarr"
    write_slice(shallow, small_slice_volume[10:13], (8.0, 12.0, 12.0))  # 3 planes: no tail to extrapolate
    out, metrics = _slice_step("compensate_attenuation", shallow, tmp_path / "a.ome.zarr")
    np.testing.assert_array_equal(out.volume, small_slice_volume[10:13])
    assert metrics["overall_status"] == "warning" and "not compensated" in metrics["warnings"][0]


def test_attenuation_of_a_shallow_slice_uses_shorter_windows(small_slice_volume, tmp_path):
    from serialoct.io.slices import write_slice

    shallow = tmp_path / "shallow.ome.zarr"
    write_slice(shallow, small_slice_volume[8:20], (8.0, 12.0, 12.0))  # 12 planes, as at a coarse resolution
    _, metrics = _slice_step("compensate_attenuation", shallow, tmp_path / "a.ome.zarr")
    assert metrics["metrics"]["applied"]["value"] is True and metrics["metrics"]["window_vox"]["value"] == 6
