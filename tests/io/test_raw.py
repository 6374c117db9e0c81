"""Claims about the raw-tile reader (formats.md §1)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from serialoct.errors import FormatError, InputError
from serialoct.io.acquisition import discover_slices
from serialoct.io.raw import decode_frames, read_raw_frames, read_tile, write_raw_tile
from serialoct.io.tileinfo import _tile_info, parse_info_text, read_info

NZ, NX, NY = 6, 10, 7


def _values(nx=NX, ny=NY, n_z=NZ, n_repeat=1, n_extra=0, **extra):
    return {"nx": nx, "ny": ny, "n_repeat": n_repeat, "n_extra": n_extra, "width": 100.0, "height": 70.0,
            "top_z": 0, "bottom_z": n_z - 1, "stage_x_pos_mm": 1.5, "stage_y_pos_mm": 2.5, **extra}


def _tile(rng, shape=(NZ, NX, NY)):
    return rng.uniform(0.5, 2.0, size=shape).astype(np.float32)


def _frames_with_band(tile, n_extra, band_start, n_repeat=1, band_value=0.0):
    """What the instrument records: decoded A-line k sits at raw A-line (band_start + n_extra + k) mod n."""
    n_z, nx, ny = tile.shape
    n = nx + n_extra
    frames = np.full((n_z, n, ny * n_repeat), band_value, np.float32)
    cols = (band_start + n_extra + np.arange(nx)) % n
    for r in range(n_repeat):
        frames[:, cols, r::n_repeat] = tile
    return frames


# --------------------------------------------------------------------------- the shipped sample


def test_sample_acquisition_decodes_to_expected_tiles(sample_acquisition, sample_expected):
    expected, meta = sample_expected
    slices = discover_slices(sample_acquisition)
    assert sorted(slices) == sorted(meta["slices"])
    for slice_id, found in slices.items():
        assert found.grid_shape == tuple(meta["grid"]) and found.holes == ()
        band = meta["slices"][slice_id]["galvo_band_start"]
        for ref in found.tiles:
            tile = read_tile(ref.path, galvo_band_start=band)
            np.testing.assert_array_equal(tile, expected[f"{slice_id}_{ref.ix:02d}_{ref.iy:02d}"])


def test_sample_geometry_is_read_from_info(sample_acquisition, sample_expected):
    _, meta = sample_expected
    ref = discover_slices(sample_acquisition)["01"].tiles[0]
    info = read_info(ref.path)
    assert info.shape == tuple(meta["tile_shape_zxy"])
    assert (info.n_extra, info.n_repeat) == (meta["n_extra"], meta["n_repeat"])
    assert info.pixel_size_um == (meta["lateral_pixel_um"], meta["lateral_pixel_um"])


# --------------------------------------------------------------------------- info.txt


def test_integer_and_float_spellings_are_the_same_number():
    a = parse_info_text("Scan info\nwidth: 640\nnx: 512\n")
    b = parse_info_text("Scan info\nwidth: 640.0\nnx: 512.0\n")
    assert a["width"] == b["width"] == 640 and isinstance(a["nx"], int)


def test_last_repeated_key_wins_and_lines_without_separator_are_ignored():
    values = parse_info_text("Scan info\nnx: 4\nsome comment\nnx: 8\nlabel: slice A\n")
    assert values == {"nx": 8, "label": "slice A"}


def test_float_written_geometry_is_accepted(tmp_path, rng):
    write_raw_tile(tmp_path / "t", _tile(rng), {**_values(), "nx": float(NX), "ny": float(NY)})
    assert read_info(tmp_path / "t").shape == (NZ, NX, NY)


def test_depth_falls_back_to_half_of_n_samples(tmp_path, rng):
    values = {k: v for k, v in _values().items() if k not in ("top_z", "bottom_z")}
    write_raw_tile(tmp_path / "t", _tile(rng), {**values, "n_samples": 2 * NZ})
    assert read_tile(tmp_path / "t").shape == (NZ, NX, NY)


def test_missing_info_is_an_input_error_naming_the_file(tmp_path, rng):
    write_raw_tile(tmp_path / "t", _tile(rng), _values())
    (tmp_path / "t" / "info.txt").unlink()
    with pytest.raises(InputError, match=r"t/info.txt: missing"):
        read_tile(tmp_path / "t")


def test_header_without_scan_info_line_is_malformed(tmp_path, rng):
    write_raw_tile(tmp_path / "t", _tile(rng), _values())
    (tmp_path / "t" / "info.txt").write_text("nx: 10\nny: 7\n")
    with pytest.raises(FormatError, match="expected 'Scan info'"):
        read_info(tmp_path / "t")


@pytest.mark.parametrize("key", ["nx", "ny", "width", "height"])
def test_missing_key_is_named(tmp_path, rng, key):
    values = {k: v for k, v in _values().items() if k != key}
    write_raw_tile(tmp_path / "t", _tile(rng), values)
    with pytest.raises(FormatError, match=f"missing key.*{key}"):
        read_info(tmp_path / "t")


def test_non_numeric_value_is_named(tmp_path, rng):
    write_raw_tile(tmp_path / "t", _tile(rng), {**_values(), "nx": "ten"})
    with pytest.raises(FormatError, match=r"nx = 'ten' is not a whole number"):
        read_info(tmp_path / "t")


def test_missing_depth_window_is_named(tmp_path, rng):
    values = {k: v for k, v in _values().items() if k not in ("top_z", "bottom_z")}
    write_raw_tile(tmp_path / "t", _tile(rng), values)
    with pytest.raises(FormatError, match="no depth window"):
        read_info(tmp_path / "t")


# --------------------------------------------------------------------------- frames


def test_bin_size_not_matching_header_names_file_and_sizes(tmp_path, rng):
    write_raw_tile(tmp_path / "t", _tile(rng), _values())
    path = tmp_path / "t" / "image_00000.bin"
    path.write_bytes(path.read_bytes()[:-4 * NZ * NX])  # one B-scan short
    with pytest.raises(FormatError, match=r"image_00000.bin: 1,440 bytes in 1 file\(s\), expected 1,680"):
        read_tile(tmp_path / "t")


def test_truncated_bin_mid_bscan_is_reported(tmp_path, rng):
    write_raw_tile(tmp_path / "t", _tile(rng), _values())
    path = tmp_path / "t" / "image_00000.bin"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(FormatError, match="not a whole number of B-scans.*truncated"):
        read_tile(tmp_path / "t")


def test_tile_folder_without_bin_is_an_input_error(tmp_path, rng):
    write_raw_tile(tmp_path / "t", _tile(rng), _values())
    (tmp_path / "t" / "image_00000.bin").unlink()
    with pytest.raises(InputError, match=r"no image_\*.bin"):
        read_tile(tmp_path / "t")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_refused(tmp_path, rng, bad):
    tile = _tile(rng)
    tile[2, 3, 4] = bad
    write_raw_tile(tmp_path / "t", tile, _values())
    with pytest.raises(FormatError, match="1 non-finite"):
        read_tile(tmp_path / "t")


def test_single_bin_is_memory_mapped_not_copied(tmp_path, rng):
    write_raw_tile(tmp_path / "t", _tile(rng), _values())
    assert isinstance(read_raw_frames(tmp_path / "t"), np.memmap)


@pytest.mark.parametrize("band_start", [0, 3, 8, 14])  # 14: the band wraps past the end (n = 16)
@pytest.mark.parametrize("n_repeat,n_files", [(1, 1), (3, 2), (2, 5)])
def test_band_removal_and_repeat_averaging_recover_the_tile(tmp_path, rng, band_start, n_repeat, n_files):
    tile = _tile(rng)
    frames = _frames_with_band(tile, 6, band_start, n_repeat)
    write_raw_tile(tmp_path / "t", frames, _values(n_repeat=n_repeat, n_extra=6), n_files=n_files)
    assert len(list((tmp_path / "t").glob("*.bin"))) == n_files
    np.testing.assert_allclose(read_tile(tmp_path / "t", galvo_band_start=band_start), tile, rtol=1e-6)


def test_without_a_band_start_the_last_extra_alines_are_dropped(tmp_path, rng):
    tile = _tile(rng)
    write_raw_tile(tmp_path / "t", _frames_with_band(tile, 4, NX), _values(n_extra=4))
    np.testing.assert_array_equal(read_tile(tmp_path / "t"), tile)


def test_camera_shift_rolls_the_saturated_scan_start_first(tmp_path, rng):
    tile = _tile(rng)
    tile[:, 0, :] = 50.0  # saturated scan-start samples
    start = 4
    frames = np.roll(tile, start, axis=1)  # the scan start recorded at A-line 4
    write_raw_tile(tmp_path / "t", frames, _values())
    np.testing.assert_array_equal(read_tile(tmp_path / "t", fix_camera_shift=True), tile)


def test_legacy_orientation_rotates_270_then_flips_first_lateral_axis(rng):
    tile = _tile(rng)
    info_values = _values()
    out = decode_frames(tile, _tile_info(info_values, "info.txt"), legacy_orientation=True)
    # rot90 by 270° then flip of the first lateral axis maps (i, j) to (NY-1-j, NX-1-i).
    assert out.shape == (NZ, NY, NX)
    assert out[1, 2, 3] == tile[1, NX - 1 - 3, NY - 1 - 2]


@pytest.mark.parametrize("n_files", [1, 2, 3])
def test_frames_read_into_a_given_buffer_are_the_files_frames_however_they_are_split(rng, tmp_path, n_files):
    from serialoct.io.direct import aligned_empty

    big = (64, 40, 60)  # 614 kB: whole blocks read around the page cache; the split files' joins fall off the blocks
    frames = _tile(rng, big)
    write_raw_tile(tmp_path / "t", frames, _values(nx=40, ny=60, n_z=64), n_files=n_files)
    out = aligned_empty(frames.size)
    joined = read_raw_frames(tmp_path / "t", out=out)
    assert np.shares_memory(joined, out)
    np.testing.assert_array_equal(joined, frames)
    np.testing.assert_array_equal(read_raw_frames(tmp_path / "t"), frames)  # memory-mapped or joined anew
    with pytest.raises(ValueError, match="contiguous float32 values"):
        read_raw_frames(tmp_path / "t", out=np.empty(frames.size - 1, np.float32))


def _reader_tiles(rng, root, n):
    tiles = {}
    for k in range(n):
        tiles[root / f"t{k}"] = _tile(rng)
        write_raw_tile(root / f"t{k}", tiles[root / f"t{k}"], _values(), n_files=2)
    return tiles


@pytest.fixture
def read(monkeypatch):
    """The names of the tile folders whose frames are read, in order."""
    from serialoct.io import raw

    names = []
    real = raw.read_raw_frames
    monkeypatch.setattr(raw, "read_raw_frames", lambda tile_dir, info, out=None: names.append(tile_dir.name) or real(tile_dir, info, out=out))
    return names


def test_a_tile_reader_gives_each_tile_its_frames_and_reads_no_more_than_its_depth_ahead(rng, tmp_path, read):
    from serialoct.io import raw

    tiles = _reader_tiles(rng, tmp_path, 6)
    with raw.TileReader(read_info(tmp_path / "t0"), depth=2) as reader:
        reader.schedule(list(tiles)[:4])
        reader.schedule(list(tiles)[4:])
        held = [reader.take(path) for path in list(tiles)[:2]]
        reader._pool.submit(lambda: None).result()  # the reading thread has done what it was asked
        assert read == ["t0", "t1"]  # two tiles taken and not given back: nothing more is read
        for frames in held:
            reader.give(frames)
        for path in list(tiles)[2:]:
            frames = reader.take(path)
            np.testing.assert_array_equal(frames.frames, tiles[path])
            reader.give(frames)
        for frames, path in zip(held, tiles):
            assert frames.tile_dir == path
    assert read == [f"t{k}" for k in range(6)]  # each once, in order


def test_a_held_tile_keeps_its_frames_and_lets_the_reader_go_on_reading_ahead(rng, tmp_path, read):
    from serialoct.io import raw

    tiles = _reader_tiles(rng, tmp_path, 4)
    with raw.TileReader(read_info(tmp_path / "t0"), depth=1) as reader:
        reader.schedule(tiles)
        kept = reader.take(tmp_path / "t0")
        reader.hold(kept)
        reader._pool.submit(lambda: None).result()
        assert read == ["t0", "t1"]  # t0 no longer counts against the depth
        for path in list(tiles)[1:]:
            reader.give(reader.take(path))
        np.testing.assert_array_equal(kept.frames, tiles[tmp_path / "t0"])  # its buffer was not reused meanwhile
        reader.give(kept)
    assert read == ["t0", "t1", "t2", "t3"]


def test_a_tile_taken_before_its_turn_is_read_then_and_not_again(rng, tmp_path, read):
    from serialoct.io import raw

    tiles = _reader_tiles(rng, tmp_path, 3)
    with raw.TileReader(read_info(tmp_path / "t0"), depth=1) as reader:
        reader.schedule(tiles)
        for path in reversed(list(tiles)):
            frames = reader.take(path)
            np.testing.assert_array_equal(frames.frames, tiles[path])
            reader.give(frames)
    assert sorted(read) == ["t0", "t1", "t2"]


def test_a_tile_reader_raises_a_tiles_read_error_when_that_tile_is_taken(rng, tmp_path):
    from serialoct.io.raw import TileReader

    tiles = _reader_tiles(rng, tmp_path, 3)
    bin_file = sorted((tmp_path / "t1").glob("image_*.bin"))[-1]
    bin_file.write_bytes(bin_file.read_bytes()[:-4])
    with TileReader(read_info(tmp_path / "t0"), depth=1) as reader:
        reader.schedule(tiles)
        reader.give(reader.take(tmp_path / "t0"))  # t1 is read in the background, and fails there
        with pytest.raises(FormatError, match="whole number of B-scans"):
            reader.take(tmp_path / "t1")
        np.testing.assert_array_equal(reader.take(tmp_path / "t2").frames, tiles[tmp_path / "t2"])


def test_decoding_into_a_given_array_gives_the_same_tile_in_that_array(rng):
    info = _tile_info(_values(n_extra=3), "info.txt")
    frames = np.asfortranarray(_tile(rng, (NZ, NX + 3, NY)))  # the raw files' order: depth fastest
    for legacy, shape in ((False, (NZ, NX, NY)), (True, (NZ, NY, NX))):
        out = np.full(shape, -1.0, np.float32)
        decoded = decode_frames(frames, info, galvo_band_start=2, legacy_orientation=legacy, out=out)
        assert decoded is out
        np.testing.assert_array_equal(out, decode_frames(frames, info, galvo_band_start=2, legacy_orientation=legacy))
    with pytest.raises(ValueError, match="C-contiguous float32 array of shape"):
        decode_frames(frames, info, out=np.empty((NZ, NY, NX), np.float32))


# --------------------------------------------------------------------------- discovery


def _write_grid(root, slice_z, indices, rng, old_layout=False):
    for ix, iy in indices:
        name = f"tile_x{ix:02d}_y{iy:02d}_z{slice_z:02d}"
        folder = root / name if old_layout else root / f"slice_z{slice_z:02d}" / "tiles" / name
        write_raw_tile(folder, _tile(rng), _values())


def test_both_layouts_group_tiles_by_slice_and_report_holes(tmp_path, rng):
    for old in (False, True):
        root = tmp_path / ("old" if old else "new")
        _write_grid(root, 3, [(1, 2), (1, 3), (2, 2)], rng, old)  # (2, 3) never acquired
        _write_grid(root, 4, [(0, 0), (0, 1)], rng, old)
        slices = discover_slices(root, old_layout=old)
        assert list(slices) == ["03", "04"]
        assert slices["03"].grid_shape == (2, 2) and slices["03"].holes == ((1, 1),)
        assert [(t.ix, t.iy) for t in slices["03"].tiles] == [(0, 0), (0, 1), (1, 0)]
        assert slices["04"].grid_shape == (1, 2)


def test_one_slice_is_found_alone_as_among_all_in_both_layouts(tmp_path, rng):
    for old in (False, True):
        root = tmp_path / ("old" if old else "new")
        _write_grid(root, 3, [(1, 2), (1, 3), (2, 2)], rng, old)
        _write_grid(root, 4, [(0, 0), (0, 1)], rng, old)
        (root / "notes").mkdir()  # neither a slice nor a tile folder
        every = discover_slices(root, old_layout=old)
        for slice_id in ("03", "04", "3"):
            assert discover_slices(root, old_layout=old, only=slice_id) == {f"{int(slice_id):02d}": every[f"{int(slice_id):02d}"]}
        assert discover_slices(root, old_layout=old, only="05") == discover_slices(root, old_layout=old, only="z3") == {}


def test_flat_layout_without_the_option_gives_a_hint(tmp_path, rng):
    _write_grid(tmp_path, 1, [(0, 0)], rng, old_layout=True)
    with pytest.raises(InputError, match="use_old_folder_structure"):
        discover_slices(tmp_path)


def test_duplicate_tile_index_is_refused(tmp_path, rng):
    _write_grid(tmp_path, 1, [(0, 0)], rng, old_layout=True)
    shutil.copytree(tmp_path / "tile_x00_y00_z01", tmp_path / "tile_x0_y0_z1")
    with pytest.raises(InputError, match="duplicate tile index x=0 y=0 z=1"):
        discover_slices(tmp_path, old_layout=True)


def test_three_digit_slice_id_is_refused(tmp_path, rng):
    _write_grid(tmp_path, 100, [(0, 0)], rng, old_layout=True)
    with pytest.raises(InputError, match="three digits"):
        discover_slices(tmp_path, old_layout=True)


def test_empty_slice_folder_is_refused(tmp_path, rng):
    _write_grid(tmp_path, 1, [(0, 0)], rng)
    (tmp_path / "slice_z02" / "tiles").mkdir(parents=True)
    with pytest.raises(InputError, match="slice_z02/tiles: no tile"):
        discover_slices(tmp_path)


def test_tile_in_the_wrong_slice_folder_is_refused(tmp_path, rng):
    write_raw_tile(tmp_path / "slice_z01" / "tiles" / "tile_x00_y00_z02", _tile(rng), _values())
    with pytest.raises(InputError, match="slice z02 inside the folder of slice z01"):
        discover_slices(tmp_path)


def test_missing_acquisition_folder_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        discover_slices(tmp_path / "nope")


def test_tiles_of_different_shapes_in_one_slice_are_refused(tmp_path, rng):
    from serialoct.io.acquisition import read_slice_geometry

    _write_grid(tmp_path, 1, [(0, 0)], rng)
    write_raw_tile(tmp_path / "slice_z01" / "tiles" / "tile_x00_y01_z01", _tile(rng, (NZ, 8, NY)), _values(nx=8))
    with pytest.raises(InputError, match="tile_x00_y01_z01: tile geometry differs .* nx=8 \\(first tile: 10\\)"):
        read_slice_geometry(discover_slices(tmp_path)["01"])


def test_slice_geometry_collects_stage_positions(sample_acquisition):
    from serialoct.io.acquisition import read_slice_geometry

    geometry = read_slice_geometry(discover_slices(sample_acquisition)["01"])
    assert geometry.info.shape == (24, 32, 32) and len(geometry.stage_mm) == 4
    # 0.32 mm tiles with 20 % overlap: neighbours 0.256 mm apart along their grid axis
    step_x = geometry.stage_mm[(1, 0)][0] - geometry.stage_mm[(0, 0)][0]
    step_y = geometry.stage_mm[(0, 1)][1] - geometry.stage_mm[(0, 0)][1]
    assert step_x == pytest.approx(0.256, abs=0.01) and step_y == pytest.approx(0.256, abs=0.01)
