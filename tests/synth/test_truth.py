"""The saved ground truth: files, frames, volume."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from serialoct.errors import FormatError, InputError
from serialoct.synth import LABELS, load_truth, render_tile, surface_index, tile_depth_coords, tile_lateral_coords
from serialoct.synth.truth import truth_arrays

from .conftest import EVENTS

FRAME_CORRELATION_MIN = 0.8  # truth volume (25 µm) against the clean tile signal (20 µm pixels)


@pytest.fixture(scope="module")
def truth(events_acquisition):
    return load_truth(events_acquisition[0])


def test_truth_files_sit_outside_the_slice_folders(events_acquisition):
    out, _ = events_acquisition
    names = sorted(p.name for p in (out / "truth").iterdir())
    assert names == ["arrays.npz", "attenuation.npy", "labels.npy", "reflectivity.npy", "truth.json"]


def test_loaded_truth_holds_the_plan_arrays_and_redraws_the_same_plan(events_acquisition, truth):
    _, plan = events_acquisition
    assert truth.config == EVENTS and truth.seed == 7
    saved = truth_arrays(plan)
    assert truth.arrays.keys() == saved.keys()
    for key, value in saved.items():
        assert np.array_equal(truth.arrays[key], value), key
    assert np.array_equal(truth.plan().true_mm, plan.true_mm)


def test_truth_json_names_events_and_per_slice_truth(truth):
    assert truth.meta["events"] == {"glitch_slice": "02", "rehoming_slice": "04", "missing_slice": "05",
                                    "degraded_slice": "06", "tile_holes": [["07", 1, 1]]}
    assert truth.present_slice_ids == ("00", "01", "02", "03", "04", "06", "07")
    s1 = truth.slice_truth("01")
    assert s1["galvo_band_wraps"] and s1["galvo_band_start"] == truth.galvo_band_start(1)
    assert truth.meta["geometry"]["axial_resolution_um"] == EVENTS.axial_resolution_um
    assert truth.slice_truth("04")["rehoming_mm"] == truth.slice_truth("07")["rehoming_mm"] != [0.0, 0.0]
    np.testing.assert_allclose(truth.arrays["drift_px"] * EVENTS.pixel_size_um / 1000, truth.arrays["drift_mm"])


def test_truth_volume_has_the_documented_shape_voxel_size_and_dtypes(events_acquisition, truth):
    _, plan = events_acquisition
    vol = truth.meta["volume"]
    assert vol["voxel_mm"] == pytest.approx(EVENTS.truth_resolution_um / 1000)
    assert tuple(vol["shape_zxy"]) == plan.volume.shape
    for name, dtype in (("reflectivity", np.float32), ("attenuation", np.float32), ("labels", np.uint8)):
        array = truth.volume(name)
        assert array.shape == plan.volume.shape and array.dtype == dtype
    with pytest.raises(ValueError, match="reflectivity, attenuation, labels"):
        truth.volume("speckle")


def test_truth_labels_put_brain_at_the_centre_and_agarose_in_the_corners(events_acquisition, truth):
    _, plan = events_acquisition
    labels = truth.volume("labels")
    (cz, cx, cy), grid = plan.phantom.centre_mm, plan.volume
    k = min(int(round((cz - 0.3 - grid.origin_mm[0]) / grid.voxel_mm)), grid.shape[0] - 1)
    i = int(round((cx - grid.origin_mm[1]) / grid.voxel_mm))
    j = int(round((cy - grid.origin_mm[2]) / grid.voxel_mm))
    assert labels[k, i, j] >= LABELS["cortex"]
    assert labels[k, 0, 0] == labels[k, -1, -1] == LABELS["agarose"]
    refl = truth.volume("reflectivity")
    assert refl[labels == LABELS["agarose"]].mean() < 0.5 * refl[labels >= LABELS["cortex"]].mean()


def _truth_at(volume, grid_meta, z, x, y, shift_vox=(0.0, 0.0)):
    (oz, ox, oy), r = grid_meta["origin_mm"], grid_meta["voxel_mm"]
    coords = np.stack(np.broadcast_arrays((z - oz) / r, (x - ox) / r + shift_vox[0], (y - oy) / r + shift_vox[1]))
    return map_coordinates(np.asarray(volume), coords, order=1)


def test_truth_volume_matches_what_a_tile_images_in_the_documented_frame(events_acquisition, truth):
    _, plan = events_acquisition
    k, ix, iy = 3, 1, 0
    tile = render_tile(plan, k, ix, iy, noise=False, flat_field=False)
    x, y = tile_lateral_coords(plan, k, ix, iy)
    z = tile_depth_coords(plan, k)
    iz = int(np.ceil(surface_index(plan, k, ix, iy).max())) + 3
    volume, meta = truth.volume(), truth.meta["volume"]
    seen = tile[iz].ravel()
    right = np.corrcoef(seen, _truth_at(volume, meta, z[iz], x, y).ravel())[0, 1]
    shifted = np.corrcoef(seen, _truth_at(volume, meta, z[iz], x, y, shift_vox=(2.0, -2.0)).ravel())[0, 1]
    assert right > FRAME_CORRELATION_MIN
    assert right > shifted + 0.1


def test_load_truth_explains_a_folder_without_truth(tmp_path):
    with pytest.raises(InputError, match="not a synthetic acquisition"):
        load_truth(tmp_path)
    (tmp_path / "truth").mkdir()
    (tmp_path / "truth" / "truth.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(FormatError, match="format_version 99"):
        load_truth(tmp_path)
