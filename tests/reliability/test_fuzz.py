"""Fuzzing the parsers of files people hand to serialoct: whatever the bytes, the only
exception is serialoct's own (a SerialOctError naming the file), never a crash.

Examples are derandomized (the same on every run) and not stored, so the suite stays
reproducible; set SERIALOCT_FUZZ_EXAMPLES (e.g. 5000) to search longer and with fresh
randomness.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serialoct.errors import SerialOctError
from serialoct.io.tileinfo import parse_info_text, read_info
from serialoct.io.tables import (
    SHIFTS_COLUMNS,
    SLICE_CONFIG_COLUMNS,
    parse_bool,
    parse_slice_id,
    read_metrics,
    read_shifts_xy,
    read_slice_config,
)
from serialoct.steps.records import read_failure

FUZZ_EXAMPLES = int(os.environ.get("SERIALOCT_FUZZ_EXAMPLES", 0)) or 150
FUZZ = settings(max_examples=FUZZ_EXAMPLES, derandomize="SERIALOCT_FUZZ_EXAMPLES" not in os.environ, database=None, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

INFO_KEYS = ["nx", "ny", "n_repeat", "n_extra", "width", "height", "top_z", "bottom_z", "n_samples", "focus_z",
             "stage_x_pos_mm", "stage_y_pos_mm", "stage_z_pos_mm", "line_rate"]
# Values that break naive parsers: huge integers, float edge cases, signs, separators, non-ASCII digits.
NASTY = st.sampled_from(["0", "-1", "1e400", "-1e400", "nan", "inf", "-inf", "1_000", "10" * 200, "4.5", "1e-320",
                         "٣", "0x10", "", " ", "48 ", "+7", "1,5", "None", "\x00", "2" * 5000])
VALUE = st.one_of(NASTY, st.integers(-(10**30), 10**30).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                  st.text(max_size=20))


def _refuses_only_with_serialoct_errors(read, path: Path) -> None:
    try:
        read(path)
    except SerialOctError as exc:
        assert str(path) in str(exc)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# --------------------------------------------------------------------------- info.txt


@FUZZ
@given(text=st.text())
def test_parse_info_text_returns_values_or_a_format_error(text):
    try:
        values = parse_info_text(text)
    except SerialOctError as exc:
        assert "info.txt" in str(exc)
    else:
        assert isinstance(values, dict)


@FUZZ
@given(data=st.binary(max_size=2000))
def test_read_info_on_arbitrary_bytes_raises_only_serialoct_errors(scratch, data):
    (scratch / "tile").mkdir(exist_ok=True)
    (scratch / "tile" / "info.txt").write_bytes(data)
    _refuses_only_with_serialoct_errors(lambda p: read_info(p.parent), scratch / "tile" / "info.txt")


@FUZZ
@given(entries=st.lists(st.tuples(st.sampled_from(INFO_KEYS), VALUE), max_size=20),
       separator=st.sampled_from([": ", ":", " : ", ": \t"]))
def test_read_info_on_hostile_headers_raises_only_serialoct_errors(scratch, entries, separator):
    body = "".join(f"{key}{separator}{value}\n" for key, value in entries)
    (scratch / "tile").mkdir(exist_ok=True)
    (scratch / "tile" / "info.txt").write_text("Scan info\n" + body, encoding="utf-8", errors="surrogatepass")
    _refuses_only_with_serialoct_errors(lambda p: read_info(p.parent), scratch / "tile" / "info.txt")


@FUZZ
@given(nx=VALUE, ny=VALUE, width=VALUE, top=VALUE, bottom=VALUE, stage=VALUE)
def test_a_header_that_parses_has_a_positive_finite_geometry(scratch, nx, ny, width, top, bottom, stage):
    text = (f"Scan info\nnx: {nx}\nny: {ny}\nwidth: {width}\nheight: 100\ntop_z: {top}\nbottom_z: {bottom}\n"
            f"stage_x_pos_mm: {stage}\nstage_y_pos_mm: 0\n")
    (scratch / "tile").mkdir(exist_ok=True)
    (scratch / "tile" / "info.txt").write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        info = read_info(scratch / "tile")
    except SerialOctError:
        return
    assert info.nx >= 1 and info.ny >= 1 and info.n_z >= 1 and info.width_um > 0
    assert all(v == v and abs(v) != float("inf") for v in (info.width_um, info.stage_x_mm))


# --------------------------------------------------------------------------- CSV tables


@FUZZ
@given(data=st.binary(max_size=3000))
def test_table_readers_on_arbitrary_bytes_raise_only_serialoct_errors(scratch, data):
    path = scratch / "table.csv"
    path.write_bytes(data)
    for read in (read_shifts_xy, read_slice_config):
        _refuses_only_with_serialoct_errors(read, path)


CELL = st.one_of(VALUE, st.sampled_from(["true", "FALSE", "yes", "07", "7.0", "100", "-3", '"quoted, comma"', '"unclosed']))


@FUZZ
@given(rows=st.lists(st.lists(CELL, min_size=0, max_size=9), max_size=8), drop=st.sets(st.integers(0, 6), max_size=2))
def test_shifts_reader_on_hostile_rows_raises_only_serialoct_errors(scratch, rows, drop):
    header = [c for i, c in enumerate(SHIFTS_COLUMNS) if i not in drop]
    text = ",".join(header) + "\n" + "".join(",".join(r) + "\n" for r in rows)
    path = scratch / "shifts_xy.csv"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        table = read_shifts_xy(path)
    except SerialOctError as exc:
        assert str(path) in str(exc)
        return
    assert all(len(r.fixed_id) == 2 and r.x_shift == r.x_shift for r in table)


@FUZZ
@given(rows=st.lists(st.lists(CELL, min_size=1, max_size=16), max_size=8), width=st.integers(2, len(SLICE_CONFIG_COLUMNS)))
def test_slice_config_reader_on_hostile_rows_raises_only_serialoct_errors(scratch, rows, width):
    text = ",".join(SLICE_CONFIG_COLUMNS[:width]) + "\n" + "".join(",".join(r) + "\n" for r in rows)
    path = scratch / "slice_config.csv"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        table = read_slice_config(path)
    except SerialOctError as exc:
        assert str(path) in str(exc)
        return
    assert len({r.slice_id for r in table}) == len(table)


@FUZZ
@given(text=st.one_of(st.text(max_size=30), NASTY))
def test_scalar_parsers_return_a_value_or_a_format_error(text):
    for parse in (parse_bool, parse_slice_id):
        try:
            parse(text)
        except SerialOctError:
            pass


# --------------------------------------------------------------------------- JSON records

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@FUZZ
@given(doc=st.one_of(JSON, st.fixed_dictionaries({"step_name": JSON, "metrics": JSON}, optional={"warnings": JSON, "info": JSON})),
       raw=st.binary(max_size=200))
def test_metrics_and_failure_record_readers_raise_only_serialoct_errors(scratch, doc, raw):
    path = scratch / "record.json"
    for content in (json.dumps(doc).encode(), raw):
        path.write_bytes(content)
        for read in (read_metrics, read_failure):
            try:
                read(path)
            except SerialOctError:
                pass
