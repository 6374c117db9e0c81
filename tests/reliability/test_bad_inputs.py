"""The bad-input corpus: every damaged input gives a clear error naming the file and the problem
(exit status 2, ``serialoct ...: error: <path>: <problem>``) or a reported skip (the slice
excluded in slice_config.csv with its reason) - never a traceback, never a silently wrong volume.

Each fault is generated here from the seeded tiny acquisition. The unit-level claims of the
readers live in tests/io; these tests go through the commands a user runs.
"""

from __future__ import annotations

import csv
import errno
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from serialoct.cli import main
from serialoct.errors import FormatError, InputError, OutputError
from serialoct.io.atomic import write_text_atomic
from serialoct.io.omezarr import open_ome_zarr
from serialoct.io.tileinfo import format_info_text, parse_info_text, read_info
from serialoct.io.tables import (
    read_metrics,
    read_shifts_xy,
    read_slice_config,
    validate_shifts_xy,
    validate_slice_config,
)

EXIT_ERROR = 2


def _tile(raw: Path, slice_id: int, ix: int = 0, iy: int = 0) -> Path:
    return raw / f"slice_z{slice_id:02d}" / "tiles" / f"tile_x{ix:02d}_y{iy:02d}_z{slice_id:02d}"


def _edit_info(tile: Path, **changes) -> None:
    """Rewrite a tile header with keys changed (None deletes a key)."""
    values = parse_info_text((tile / "info.txt").read_text())
    for key, value in changes.items():
        if value is None:
            values.pop(key)
        else:
            values[key] = value
    (tile / "info.txt").write_text(format_info_text(values))


def _frame_bytes(tile: Path) -> int:
    values = parse_info_text((tile / "info.txt").read_text())
    return (values["bottom_z"] - values["top_z"] + 1) * (values["nx"] + values["n_extra"]) * 4


def _cli(capfd, *args) -> tuple[int, str]:
    """Run a serialoct command in-process; (exit status, everything printed)."""
    capfd.readouterr()
    status = main([str(a) for a in args])
    captured = capfd.readouterr()
    return status, captured.out + captured.err


def _run(harness, raw, out, *extra) -> subprocess.CompletedProcess:
    return subprocess.run(harness.command(raw, out, *extra), capture_output=True, text=True)


def _config_rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "slice_config.csv", newline="") as f:
        return {row["slice_id"]: row for row in csv.DictReader(f)}


# --------------------------------------------------------------------------- refused before any work


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("duplicate", r"tile_x1_y0_z02: duplicate tile index x=1 y=0 z=2 \(also tile_x01_y00_z02\)"),
        ("three_digit", r"slice_z105/tiles/tile_x00_y00_z105: slice index 105 has three digits"),
        ("no_tiles_folder", r"slice_z06: slice folder has no tiles/ subfolder"),
        ("empty_tiles_folder", r"slice_z06/tiles: no tile_xNN_yNN_zNN folder in this slice"),
    ],
)
def test_an_acquisition_whose_slices_cannot_be_listed_is_refused_naming_the_folder(raw_copy, tmp_path, capfd, damage, message):
    if damage == "duplicate":
        shutil.copytree(_tile(raw_copy, 2, 1, 0), _tile(raw_copy, 2).parent / "tile_x1_y0_z02")
    elif damage == "three_digit":
        for tile in (raw_copy / "slice_z05" / "tiles").iterdir():
            tile.rename(tile.with_name(tile.name.replace("_z05", "_z105")))
        (raw_copy / "slice_z05").rename(raw_copy / "slice_z105")
    else:
        (raw_copy / "slice_z06" / ("tiles" if damage == "empty_tiles_folder" else "")).mkdir(parents=True)
    status, printed = _cli(capfd, "preproc", "--input", raw_copy, "--output", tmp_path / "out")
    assert status == EXIT_ERROR
    assert f"serialoct preproc: error: {raw_copy}" in printed
    assert re.search(message, printed)
    assert "Traceback" not in printed and not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- skipped with the reason


@pytest.fixture(scope="module")
def damaged_run(tiny_raw, harness, tmp_path_factory):
    """One run over an acquisition whose slices 01-05 are each damaged differently (00 is intact)."""
    root = tmp_path_factory.mktemp("damaged")
    raw = Path(shutil.copytree(tiny_raw, root / "raw"))
    cut = _tile(raw, 1) / "image_00001.bin"
    cut.write_bytes(cut.read_bytes()[:1000])  # truncated mid-B-scan
    grown = _tile(raw, 2) / "image_00000.bin"
    grown.write_bytes(grown.read_bytes() + bytes(2 * _frame_bytes(_tile(raw, 2))))  # whole extra B-scans: size != info.txt
    for slice_id, (ix, iy), value in ((3, (1, 1), np.nan), (5, (0, 1), np.inf)):
        path = _tile(raw, slice_id, ix, iy) / "image_00000.bin"
        samples = np.fromfile(path, dtype="<f4")
        samples[samples.size // 2] = value
        samples.tofile(path)
    for path in (raw / "slice_z04").rglob("image_*.bin"):  # nothing recorded
        path.write_bytes(bytes(path.stat().st_size))
    before = harness.tree(raw)
    done = _run(harness, raw, root / "out", "--exclude_first_slices", "0")
    return raw, root / "out", done, before


@pytest.mark.parametrize(
    ("slice_id", "reason"),
    [
        ("01", "tile_x00_y00_z01/image_00001.bin: 1,000 bytes is not a whole number of B-scans of 7,168 bytes"),
        ("02", "tile_x00_y00_z02: 702,464 bytes in 2 file(s), expected 688,128 for nx=48 n_extra=8 n_z=32 ny=48 n_repeat=2"),
        ("03", "tile_x01_y01_z03: 1 non-finite (NaN or inf) samples in the decoded tile"),
        ("04", "slice_z04/tiles: all 4 tiles of slice 04 are entirely zero (nothing was recorded"),
        ("05", "tile_x00_y01_z05: 1 non-finite (NaN or inf) samples in the decoded tile"),
    ],
)
def test_a_damaged_slice_is_excluded_with_the_file_and_problem_as_its_reason(damaged_run, slice_id, reason):
    raw, out, done, _ = damaged_run
    assert done.returncode == 0, done.stderr[-3000:]
    row = _config_rows(out)[slice_id]
    assert row["use"] == "false" and reason in row["exclude_reason"]
    assert f"slice {slice_id} FAILED and is excluded in slice_config.csv" in done.stdout and reason in done.stdout
    assert (out / "failed" / f"z{slice_id}.json").is_file()
    assert not (out / f"mosaic_grid_3d_z{slice_id}.ome.zarr").exists()


def test_the_intact_slice_of_a_damaged_acquisition_is_bit_identical_to_a_clean_run(damaged_run, reference_run, harness):
    raw, out, done, before = damaged_run
    assert _config_rows(out)["00"]["use"] == "true"
    got = {k: v for k, v in harness.outputs(out).items() if k.startswith("mosaic_grid_3d_z00.ome.zarr/")}
    assert got and got == {k: v for k, v in reference_run.digests.items() if k in got}
    assert read_shifts_xy(out / "shifts_xy.csv") == read_shifts_xy(reference_run.out / "shifts_xy.csv")
    assert harness.tree(raw) == before  # the damaged input was read, never "repaired"
    assert "Traceback" not in done.stderr


def test_some_blank_tiles_are_a_warning_in_the_mosaic_metrics(raw_copy, tmp_path, capfd):
    for path in _tile(raw_copy, 1, 1, 1).glob("image_*.bin"):
        path.write_bytes(bytes(path.stat().st_size))
    out = tmp_path / "m.ome.zarr"
    status, _ = _cli(capfd, "step", "create_mosaic_grid", "--input", raw_copy, "--slice", "01", "--output", out,
                     "--metrics", tmp_path / "m.json", "--axial_resolution", "8")
    metrics = read_metrics(tmp_path / "m.json")
    assert status == 0 and metrics.metrics["n_blank_tiles"].value == 1 and metrics.overall_status == "warning"
    assert metrics.warnings == ("tile tile_x01_y01_z01 is entirely zero (nothing recorded)",)


# --------------------------------------------------------------------------- broken headers


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"nx": None}, r"info.txt: missing key\(s\) nx; an OCT tile header needs nx, ny, width, height"),
        ({"ny": "forty-eight"}, r"info.txt: ny = 'forty-eight' is not a whole number"),
        ({"stage_x_pos_mm": "n/a"}, r"info.txt: stage_x_pos_mm = 'n/a' is not a finite number"),
        ({"width": "nan"}, r"info.txt: width = nan is not a finite number"),
        ({"nx": 40}, r"tile_x01_y00_z02: tile geometry differs from tile_x00_y00_z02 of the same slice: nx=40 \(first tile: 48\)"),
    ],
    ids=["missing-key", "non-numeric", "non-numeric-stage", "nan", "different-shape"],
)
@pytest.mark.parametrize("step", ["create_mosaic_grid", "estimate_xy_shifts"])
def test_a_broken_header_stops_each_step_that_reads_it_with_the_file_and_problem(raw_copy, tmp_path, capfd, step, changes, message):
    tile = _tile(raw_copy, 2, 1, 0)
    _edit_info(tile, **changes)
    if changes.get("nx") == 40:  # a consistent tile of another shape: frames of 40 + n_extra A-lines
        for path in tile.glob("image_*.bin"):
            path.write_bytes(bytes(path.stat().st_size // 56 * 48))
    args = ["--input", raw_copy, "--output", tmp_path / "o", "--metrics", tmp_path / "m.json"]
    if step == "create_mosaic_grid":
        args += ["--slice", "02", "--axial_resolution", "8", "--failure_record", tmp_path / "z02.json"]
    status, printed = _cli(capfd, "step", step, *args)
    assert status == EXIT_ERROR and "Traceback" not in printed
    assert re.search(f"serialoct step: error: {raw_copy}/slice_z02/tiles/.*{message}", printed)
    assert not (tmp_path / "o").exists()
    assert (tmp_path / "z02.json").is_file() == (step == "create_mosaic_grid")


def test_a_damaged_metadata_json_fails_its_slice_but_not_the_shifts_of_the_acquisition(raw_copy, reference_run, tmp_path, capfd):
    # The shifts need only the tiles' stage positions: one slice's unreadable settings must not stop the whole
    # run (it did: no shifts_xy.csv, so nothing could be reconstructed).
    (raw_copy / "slice_z03" / "metadata.json").write_text('{"slice_thickness": 0.08,')
    status, _ = _cli(capfd, "step", "estimate_xy_shifts", "--input", raw_copy, "--output", tmp_path / "shifts_xy.csv",
                     "--metrics", tmp_path / "m.json")
    assert status == 0
    assert read_shifts_xy(tmp_path / "shifts_xy.csv") == read_shifts_xy(reference_run.out / "shifts_xy.csv")
    status, printed = _cli(capfd, "step", "create_mosaic_grid", "--input", raw_copy, "--slice", "03", "--output", tmp_path / "o",
                           "--metrics", tmp_path / "m3.json", "--axial_resolution", "8", "--failure_record", tmp_path / "z03.json")
    assert status == EXIT_ERROR and "Traceback" not in printed
    assert f"serialoct step: error: {raw_copy}/slice_z03/metadata.json: not valid JSON" in printed
    assert (tmp_path / "z03.json").is_file() and not (tmp_path / "o").exists()


@pytest.mark.slow  # two Snakemake passes; the step-level claims above are the fast version
def test_a_broken_header_ends_the_run_with_its_path_after_recording_the_slice(raw_copy, harness, tmp_path):
    _edit_info(_tile(raw_copy, 2, 1, 0), nx=None)
    done = _run(harness, raw_copy, tmp_path / "out")
    assert done.returncode == EXIT_ERROR
    assert (f"serialoct preproc: error: {_tile(raw_copy, 2, 1, 0)}/info.txt: missing key(s) nx; an OCT tile header needs "
            "nx, ny, width, height (step estimate_xy_shifts); the workflow did not complete") in done.stderr
    # shifts_xy.csv needs every slice's stage positions: it is not written; the rest is
    assert not (tmp_path / "out" / "shifts_xy.csv").exists()
    assert _config_rows(tmp_path / "out")["02"]["use"] == "false"
    assert (tmp_path / "out" / "mosaic_grid_3d_z03.ome.zarr").is_dir()


# --------------------------------------------------------------------------- corrupted mosaic chunks


@pytest.fixture
def corrupted_mosaic(reference_run, tmp_path) -> Path:
    """A copy of slice 01's mosaic grid with one byte in the middle of chunk (0, 1, 0)'s compressed data flipped."""
    store = Path(shutil.copytree(reference_run.out / "mosaic_grid_3d_z01.ome.zarr", tmp_path / "mosaic_grid_3d_z01.ome.zarr"))
    shard = store / "0" / "c" / "0" / "0" / "0"
    data = bytearray(shard.read_bytes())
    index = np.frombuffer(bytes(data[-4 - 4 * 16 : -4]), "<u8").reshape(2, 2, 2)  # the shard's 2 x 2 chunks: (offset, length)
    offset, length = index[1, 0]
    data[int(offset + length // 2)] ^= 0xFF
    shard.write_bytes(bytes(data))
    return store


def test_a_corrupted_chunk_is_a_format_error_naming_the_chunk_file(corrupted_mosaic):
    image = open_ome_zarr(corrupted_mosaic)
    match = rf"{corrupted_mosaic}/0/c/0/0/0: corrupted or truncated chunk file of array '0', chunk \(0, 1, 0\)"
    with pytest.raises(FormatError, match=match):
        image.read()
    with pytest.raises(FormatError, match=match):
        image.level(0)[:, 48:, :]
    assert image.level(0)[:, :48, :].shape == (32, 48, 96)  # the intact tiles still read


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_truncated_or_overwritten_shard_is_a_format_error_naming_it(reference_run, tmp_path, damage):
    store = Path(shutil.copytree(reference_run.out / "mosaic_grid_3d_z02.ome.zarr", tmp_path / "m.ome.zarr"))
    shard = store / "0" / "c" / "0" / "0" / "0"
    shard.write_bytes(shard.read_bytes()[:5000] if damage == "truncated" else b"not a shard" * 100)
    with pytest.raises(FormatError, match=r"m.ome.zarr/0/c/0/0/0: corrupted or truncated chunk file"):
        open_ome_zarr(store).read()


def test_a_step_reading_a_corrupted_mosaic_exits_2_naming_the_chunk(corrupted_mosaic, tmp_path, capfd):
    status, printed = _cli(capfd, "step", "generate_aip", "--input", corrupted_mosaic, "--output", tmp_path / "aip.png")
    assert status == EXIT_ERROR and "Traceback" not in printed
    assert f"serialoct step: error: {corrupted_mosaic}/0/c/0/0/0: corrupted or truncated chunk file" in printed
    assert not (tmp_path / "aip.png").exists()


def test_a_run_over_a_corrupted_mosaic_names_the_chunk(reference_run, harness, tmp_path):
    out = Path(shutil.copytree(reference_run.out, tmp_path / "out", symlinks=True))
    shard = out / "mosaic_grid_3d_z03.ome.zarr" / "0" / "c" / "0" / "0" / "0"
    shard.write_bytes(shard.read_bytes()[:-100])  # cut off the shard index
    done = _run(harness, reference_run.raw, out, "--generate_aips", "true")
    assert done.returncode == EXIT_ERROR
    assert f"serialoct preproc: error: {shard}: corrupted or truncated chunk file" in done.stderr
    assert "(step generate_aip)" in done.stderr and not (out / "aips" / "aip_z03.png").exists()


# --------------------------------------------------------------------------- damaged tables


def test_shifts_with_a_missing_row_are_refused_naming_the_gap(reference_run, tmp_path):
    rows = read_shifts_xy(reference_run.out / "shifts_xy.csv")
    slices = [f"{k:02d}" for k in range(6)]
    validate_shifts_xy(rows, slices)
    validate_shifts_xy(rows, [s for s in slices if s != "03"])  # a failed slice: 02 -> 03 -> 04 still places 04
    with pytest.raises(FormatError, match=r"shifts_xy.csv: no row from slice 03 towards slice 04"):
        validate_shifts_xy([r for r in rows if r.fixed_id != "03"], slices, path=reference_run.out / "shifts_xy.csv")


def test_shifts_with_nan_are_refused_naming_line_and_column(reference_run, tmp_path):
    lines = (reference_run.out / "shifts_xy.csv").read_text().splitlines()
    fields = lines[3].split(",")
    fields[3] = "nan"
    (tmp_path / "shifts_xy.csv").write_text("\n".join([*lines[:3], ",".join(fields), *lines[4:]]) + "\n")
    with pytest.raises(FormatError, match=r"shifts_xy.csv line 4 column y_shift: 'nan' is not a finite number"):
        read_shifts_xy(tmp_path / "shifts_xy.csv")


def test_a_slice_config_naming_unknown_slices_is_refused(reference_run, tmp_path):
    text = (reference_run.out / "slice_config.csv").read_text() + "17,true" + "," * 13 + "\n"
    (tmp_path / "slice_config.csv").write_text(text)
    rows = read_slice_config(tmp_path / "slice_config.csv")
    validate_slice_config(rows[:-1], [f"{k:02d}" for k in range(6)])
    with pytest.raises(FormatError, match=r"slice_config.csv: names slice\(s\) 17 that are not in the data \(found 00, 01"):
        validate_slice_config(rows, [f"{k:02d}" for k in range(6)], path=tmp_path / "slice_config.csv")


# --------------------------------------------------------------------------- outputs that cannot be written


def test_an_output_folder_on_a_read_only_file_system_is_refused_naming_it(tiny_raw, read_only_dir, capfd):
    for out, problem in ((read_only_dir / "out", "output folder cannot be created"),
                         (read_only_dir, "output folder cannot be created")):
        status, printed = _cli(capfd, "preproc", "--input", tiny_raw, "--output", out, "--axial_resolution", "8")
        assert status == EXIT_ERROR and "Traceback" not in printed
        assert f"serialoct preproc: error: {out}" in printed and problem in printed


def test_a_write_refused_by_permissions_is_an_output_error_naming_the_folder(tmp_path, monkeypatch):
    def refuse(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied", str(dst))

    monkeypatch.setattr("serialoct.io.atomic.os.rename", refuse)
    with pytest.raises(OutputError, match=rf"{tmp_path}: output folder is not writable \(Permission denied\) while writing a.csv"):
        write_text_atomic(tmp_path / "a.csv", "x")
    assert list(tmp_path.iterdir()) == []


def test_an_unreadable_input_stays_an_input_error_not_an_output_error(raw_copy, tmp_path, monkeypatch):
    real = Path.read_text

    def unreadable(self, *args, **kwargs):
        if self.name == "info.txt":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", unreadable)
    with pytest.raises(InputError, match=r"tile_x00_y00_z01/info.txt: cannot be read \(Permission denied\)"):
        read_info(_tile(raw_copy, 1))


def test_a_full_disk_while_writing_a_table_is_an_output_error(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("serialoct.io.atomic.os.fsync", full)
    with pytest.raises(OutputError, match=rf"{tmp_path}/shifts_xy.csv: no space left on device while writing it"):
        write_text_atomic(tmp_path / "shifts_xy.csv", "fixed_id\n")
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_while_writing_a_mosaic_stops_the_step_without_blaming_the_slice(tiny_raw, tmp_path, capfd, monkeypatch):
    import zarr.storage

    real = zarr.storage.LocalStore.set
    writes = []

    async def fill_up(self, key, value):  # the third chunk write finds the disk full
        writes.append(key)
        if len(writes) >= 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return await real(self, key, value)

    monkeypatch.setattr(zarr.storage.LocalStore, "set", fill_up)
    out = tmp_path / "mosaic_grid_3d_z01.ome.zarr"
    status, printed = _cli(capfd, "step", "create_mosaic_grid", "--input", tiny_raw, "--slice", "01", "--output", out,
                           "--metrics", tmp_path / "m.json", "--axial_resolution", "8", "--failure_record", tmp_path / "z01.json")
    assert status == EXIT_ERROR and "Traceback" not in printed
    assert f"serialoct step: error: {out}: no space left on device while writing it" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no mosaic, no temporary, no failure record


def test_a_disk_that_fills_up_stops_the_run_clearly_and_a_rerun_with_space_resumes(small_disk, reference_run, harness):
    out = small_disk.path / "out"
    done = _run(harness, reference_run.raw, out)
    assert done.returncode == EXIT_ERROR and "Traceback" not in done.stderr
    assert f"serialoct preproc: error: {out}/" in done.stderr and "no space left on device while writing it" in done.stderr
    assert harness.temporaries(out) == [] and not (out / "failed").exists()  # not blamed on a slice
    written = harness.outputs(out)
    assert written and all(reference_run.digests[k] == v for k, v in written.items())  # what exists is complete

    small_disk.resize("64m")
    resumed = _run(harness, reference_run.raw, out)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert harness.outputs(out) == reference_run.digests


@pytest.mark.parametrize(("damage", "message"), [
    ("nan_shift", r"shifts_xy.csv line 4 column y_shift: 'nan' is not a finite number"),
    ("missing_row", r"shifts_xy.csv: no row from slice 03 towards slice 04"),
    ("unknown_slice", r"slice_config.csv: names slice\(s\) 17 that are not in the data"),
])
def test_reconstruct_refuses_damaged_tables_before_any_work(reference_run, tmp_path, capsys, damage, message):
    mosaics = tmp_path / "mosaics"
    shutil.copytree(reference_run.out, mosaics, ignore=shutil.ignore_patterns(".snakemake", "logs", "benchmarks"))
    lines = (mosaics / "shifts_xy.csv").read_text().splitlines()
    if damage == "nan_shift":
        fields = lines[3].split(",")
        fields[3] = "nan"
        (mosaics / "shifts_xy.csv").write_text("\n".join([*lines[:3], ",".join(fields), *lines[4:]]) + "\n")
    elif damage == "missing_row":
        (mosaics / "shifts_xy.csv").write_text("\n".join(line for line in lines if not line.startswith("03,")) + "\n")
    else:
        with open(mosaics / "slice_config.csv", "a") as f:
            f.write("17,true" + "," * 13 + "\n")
    assert main(["reconstruct", "--input", str(mosaics), "--output", str(tmp_path / "out")]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "out").exists()  # refused before any work
