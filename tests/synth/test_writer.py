"""Writing the raw format: read back through serialoct.io, layouts, determinism."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from serialoct.errors import InputError
from serialoct.io.acquisition import discover_slices
from serialoct.io.raw import read_raw_frames, read_tile
from serialoct.io.tileinfo import read_info, tile_bin_files
from serialoct.synth import load_truth, preset, render_tile, write_acquisition

from .conftest import EVENTS


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_writes_identical_bytes_and_another_seed_differs(tmp_path, monkeypatch):
    config = replace(preset("tiny"), n_slices=3, rehoming_slice=None, glitch_slice=1)
    write_acquisition(tmp_path / "a", config, seed=5, workers=1)
    monkeypatch.setattr(time, "time", lambda: 1e9)  # another day: no timestamp may leak into the files
    write_acquisition(tmp_path / "b", config, seed=5, workers=2)
    monkeypatch.undo()
    write_acquisition(tmp_path / "c", config, seed=6, workers=2)
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert a.keys() == b.keys() == c.keys()
    assert a == b
    differing = [name for name in a if a[name] != c[name]]
    assert any(name.endswith(".bin") for name in differing) and "truth/reflectivity.npy" in differing


def test_raw_tiles_read_back_equal_the_rendered_tiles_in_the_default_layout(events_acquisition):
    out, plan = events_acquisition
    slices = discover_slices(out)
    assert list(slices) == list(plan.present_slice_ids)
    for sid, found in slices.items():
        band = plan.slice(sid).galvo_band_start
        for ref in found.tiles:
            info = read_info(ref.path)
            assert (info.n_repeat, len(tile_bin_files(ref.path))) == (2, 2)
            tile = read_tile(ref.path, galvo_band_start=band)
            assert np.array_equal(tile, render_tile(plan, sid, ref.ix, ref.iy)), (sid, ref.ix, ref.iy)


def test_raw_tiles_read_back_equal_the_rendered_tiles_in_the_old_layout_with_3_repeats_and_3_files(old_acquisition):
    out, plan = old_acquisition
    assert not any((out / name).is_dir() for name in ("slice_z00", "slice_z01"))
    slices = discover_slices(out, old_layout=True)
    assert list(slices) == ["00", "01", "02"]
    for sid, found in slices.items():
        for ref in found.tiles:
            assert len(tile_bin_files(ref.path)) == 3
            tile = read_tile(ref.path, galvo_band_start=plan.slice(sid).galvo_band_start)
            assert np.array_equal(tile, render_tile(plan, sid, ref.ix, ref.iy))


def test_a_wrapped_band_is_removed_with_the_true_start(events_acquisition):
    out, plan = events_acquisition
    start = load_truth(out).galvo_band_start("01")
    assert start + EVENTS.n_extra > 48 + EVENTS.n_extra  # wraps around the end of the B-scan
    path = out / "slice_z01" / "tiles" / "tile_x00_y01_z01"
    frames = np.asarray(read_raw_frames(path))
    n = frames.shape[1]
    band = frames[:, (start + np.arange(EVENTS.n_extra)) % n].mean()
    assert band < 0.5 * frames.mean()
    assert np.array_equal(read_tile(path, galvo_band_start=start), render_tile(plan, "01", 0, 1))
    assert not np.array_equal(read_tile(path, galvo_band_start=(start + 1) % n), render_tile(plan, "01", 0, 1))


def test_missing_slice_has_no_folder_and_a_tile_hole_is_reported_as_a_hole(events_acquisition):
    out, _ = events_acquisition
    assert not (out / "slice_z05").exists()
    slices = discover_slices(out)
    assert "05" not in slices
    assert slices["07"].holes == ((1, 1),) and slices["07"].grid_shape == (2, 2)


def test_info_txt_holds_the_reported_stage_positions_and_the_depth_window(events_acquisition):
    out, plan = events_acquisition
    truth = load_truth(out)
    for sid, ix, iy in (("02", 1, 0), ("04", 0, 1)):
        info = read_info(out / f"slice_z{sid}" / "tiles" / f"tile_x{ix:02d}_y{iy:02d}_z{sid}")
        k = int(sid)
        assert (info.stage_x_mm, info.stage_y_mm) == tuple(truth.arrays["reported_mm"][k, ix, iy])
        assert info.stage_z_mm == pytest.approx(k * EVENTS.slice_thickness_um / 1000)
        assert (info.n_z, info.nx, info.ny, info.n_extra) == (32, 48, 48, EVENTS.n_extra)
        assert info.pixel_size_um == (EVENTS.pixel_size_um, EVENTS.pixel_size_um)
        assert info.focus_z == plan.focus_z


def test_default_layout_has_a_slice_metadata_json(events_acquisition):
    out, _ = events_acquisition
    meta = json.loads((out / "slice_z03" / "metadata.json").read_text())
    assert meta == {"tile_size_um": 48 * EVENTS.pixel_size_um, "tile_n_samples": 48,
                    "slice_thickness": EVENTS.slice_thickness_um / 1000, "overlap_fraction": EVENTS.overlap_fraction}


def test_a_non_empty_folder_is_never_replaced_and_a_previous_acquisition_only_with_overwrite(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    small = replace(preset("tiny"), n_slices=3, glitch_slice=1, rehoming_slice=None, grid_shape=(1, 2))
    with pytest.raises(InputError, match="not a synthetic acquisition"):
        write_acquisition(tmp_path / "mine", small, overwrite=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    write_acquisition(tmp_path / "raw", small)
    with pytest.raises(InputError, match="--overwrite"):
        write_acquisition(tmp_path / "raw", small, seed=1)
    write_acquisition(tmp_path / "raw", small, seed=1, overwrite=True)
    assert load_truth(tmp_path / "raw").seed == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind
