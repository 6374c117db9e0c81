"""The OCT imaging model: decoded tiles and recorded frames."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from serialoct.io.raw import decode_frames
from serialoct.io.tileinfo import TileInfo
from serialoct.synth import (
    info_values,
    plan_acquisition,
    record_frames,
    render_tile,
    slice_texture,
    surface_index,
    tissue_fraction,
)

from .conftest import EVENTS

FLAT_FIELD_RTOL = 1e-4  # quantisation (~2e-6) over a signal of ~0.05 at least


@pytest.fixture(scope="module")
def plan():
    return plan_acquisition(EVENTS, seed=7)


def _info(plan, k, ix, iy):
    v = info_values(plan, k, ix, iy)
    return TileInfo(nx=v["nx"], ny=v["ny"], n_z=v["bottom_z"] - v["top_z"] + 1, n_repeat=v["n_repeat"], n_extra=v["n_extra"],
                    width_um=v["width"], height_um=v["height"], stage_x_mm=v["stage_x_pos_mm"], stage_y_mm=v["stage_y_pos_mm"],
                    stage_z_mm=v["stage_z_pos_mm"], focus_z=v["focus_z"], values=v)


def test_rendered_tile_is_deterministic_non_negative_and_a_multiple_of_the_quantum(plan):
    tile = render_tile(plan, "03", 1, 0)
    assert tile.shape == (32, 48, 48) and tile.dtype == np.float32
    assert tile.min() >= 0
    assert np.array_equal(tile, render_tile(plan, 3, 1, 0, texture=slice_texture(plan, 3)))
    counts = tile.astype(np.float64) / plan.quantum
    assert np.array_equal(counts, np.round(counts))


def test_flat_field_in_the_truth_is_the_ratio_of_tiles_rendered_with_and_without_it(plan):
    with_ff = render_tile(plan, "03", 0, 1, noise=False).astype(np.float64) - EVENTS.darkfield
    without = render_tile(plan, "03", 0, 1, noise=False, flat_field=False).astype(np.float64) - EVENTS.darkfield
    signal = without > 0.05
    ratio = np.where(signal, with_ff / np.where(signal, without, 1.0), np.nan)
    expected = np.broadcast_to(plan.flat_field, ratio.shape)
    np.testing.assert_allclose(ratio[signal], expected[signal], rtol=FLAT_FIELD_RTOL)


def test_water_above_the_true_surface_is_dark_and_tissue_below_it_is_bright(plan):
    tile = render_tile(plan, "02", 1, 1, noise=False, flat_field=False)
    surface = surface_index(plan, "02", 1, 1)
    iz = np.arange(32)[:, None, None]
    water = iz < np.floor(surface)[None] - 0.5
    tissue = (iz > np.ceil(surface)[None] + 0.5) & (iz < np.ceil(surface)[None] + 4)
    assert np.allclose(tile[water], EVENTS.darkfield, atol=1e-5)
    assert tile[tissue].min() > 3 * EVENTS.darkfield


def test_focal_curvature_puts_the_surface_deeper_in_the_tile_corners(plan):
    surface = surface_index(plan, "02", 0, 0)
    centre = surface[23:25, 23:25].mean()
    corners = np.array([surface[0, 0], surface[0, -1], surface[-1, 0], surface[-1, -1]])
    tilt = np.abs(np.diff(surface[23:25, 23:25])).max()  # a tilt of << 1 voxel per pixel
    assert np.all(corners - centre > EVENTS.curvature_vox - 1.0 - tilt * 48)
    assert np.all(corners - centre < EVENTS.curvature_vox + 1.0 + tilt * 48)


def test_degraded_slice_has_lower_signal_and_less_lateral_contrast(plan):
    normal = plan_acquisition(replace(EVENTS, degraded_slice=None), seed=7)
    bad = render_tile(plan, "06", 0, 0, noise=False, flat_field=False)
    good = render_tile(normal, "06", 0, 0, noise=False, flat_field=False)
    assert bad.mean() < 0.5 * good.mean()
    # lateral contrast (relative gradient energy) drops with the blur
    def contrast(t):
        plane = t[12:20].mean(axis=0) - EVENTS.darkfield
        return np.abs(np.diff(plane, axis=1)).mean() / plane.mean()
    assert contrast(bad) < 0.7 * contrast(good)


@pytest.mark.parametrize("n_repeat", [1, 2, 3, 4])
def test_recorded_repeats_average_back_to_the_tile_exactly(n_repeat):
    plan = plan_acquisition(replace(EVENTS, n_repeat=n_repeat), seed=3)
    tile = render_tile(plan, "01", 1, 1)
    frames = record_frames(plan, "01", 1, 1, tile)
    assert frames.shape == (32, 48 + EVENTS.n_extra, 48 * n_repeat)
    info = _info(plan, 1, 1, 1)
    decoded = decode_frames(frames, info, galvo_band_start=plan.slice("01").galvo_band_start)
    assert np.array_equal(decoded, tile)
    if n_repeat > 1:
        kept = frames[:, (plan.slice("01").galvo_band_start + EVENTS.n_extra + np.arange(48)) % 56, :]
        assert not np.array_equal(kept[:, :, 0], kept[:, :, 1])  # the repeats really differ


def _band_start_from_profile(frames, n_extra):
    """Start of the darkest circular run of n_extra A-lines of the depth- and frame-averaged image."""
    profile = frames.mean(axis=(0, 2))
    n = len(profile)
    runs = np.array([profile[(s + np.arange(n_extra)) % n].mean() for s in range(n)])
    return int(np.argmin(runs)), profile


def test_depth_averaged_frames_show_the_band_at_the_true_start_with_sharp_edges(plan):
    for k in ("00", "01", "04"):
        tile = render_tile(plan, k, 0, 0)
        frames = record_frames(plan, k, 0, 0, tile)
        start, profile = _band_start_from_profile(frames, EVENTS.n_extra)
        assert start == plan.slice(k).galvo_band_start
        n = len(profile)
        inside = profile[(start + np.arange(EVENTS.n_extra)) % n]
        outside = np.delete(profile, (start + np.arange(EVENTS.n_extra)) % n)
        assert inside.max() < 0.5 * outside.min()  # two sharp edges, n_extra apart


def _band_and_rest(plan, k):
    tile = render_tile(plan, k, 0, 0)
    frames = record_frames(plan, k, 0, 0, tile)
    p = plan.slice(k).galvo_band_start
    return frames[:, (p + np.arange(EVENTS.n_extra)) % 56, :].mean(), tile.mean()


def test_negative_contrast_gives_a_bright_band():
    band, rest = _band_and_rest(plan_acquisition(replace(EVENTS, galvo_band_contrast=-1.0), seed=7), 2)
    assert band > 1.5 * rest


def test_a_faint_band_slice_holds_the_b_scan_mean_while_the_others_stay_dark():
    plan = plan_acquisition(replace(EVENTS, galvo_faint_slices=(2,)), seed=7)
    assert plan.slice(2).galvo_band_contrast == 0.0 and plan.slice(3).galvo_band_contrast == EVENTS.galvo_band_contrast
    band, rest = _band_and_rest(plan, 2)
    assert band == pytest.approx(rest, rel=0.05)
    band, rest = _band_and_rest(plan, 3)
    assert band < 0.5 * rest


def test_without_fly_back_lines_the_frames_are_the_repeats_alone():
    plan = plan_acquisition(replace(EVENTS, n_extra=0, n_repeat=1), seed=7)
    tile = render_tile(plan, "01", 0, 0)
    frames = record_frames(plan, "01", 0, 0, tile)
    assert np.array_equal(frames, tile)


def test_record_frames_refuses_a_tile_of_the_wrong_shape(plan):
    with pytest.raises(ValueError, match=r"tile shape \(32, 48, 47\)"):
        record_frames(plan, "01", 0, 0, np.zeros((32, 48, 47), np.float32))


def test_the_brain_is_in_view_in_every_slice_after_the_calibration_slice(plan):
    fractions = [max(tissue_fraction(plan, k, ix, iy) for ix in range(2) for iy in range(2)) for k in range(EVENTS.n_slices)]
    assert fractions[0] > 0
    assert min(fractions[1:]) > 0.15


def test_the_speckle_is_a_unit_variance_field_of_sample_position_shared_by_overlapping_tiles():
    from serialoct.synth import plan_acquisition, preset, tile_depth_coords, tile_lateral_coords
    from serialoct.synth.instrument import speckle_field

    plan = plan_acquisition(preset("small"), seed=0)
    z = tile_depth_coords(plan, 3)
    x, y = tile_lateral_coords(plan, 3, 1, 1)
    field = speckle_field(plan, z, x, y)
    assert abs(float(field.mean())) < 0.02 and abs(float(field.std()) - 1.0) < 0.02
    # the same sample points give the same values, whatever else is evaluated with them (any tile, any order)
    part = speckle_field(plan, z[:, 40:, 10:50], x[40:, 10:50], y[40:, 10:50])
    np.testing.assert_array_equal(part, field[:, 40:, 10:50])
    # the acquisition seed draws the field
    assert np.corrcoef(speckle_field(plan_acquisition(preset("small"), seed=1), z, x, y).ravel(), field.ravel())[0, 1] < 0.05
