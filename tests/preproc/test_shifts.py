"""Claims about shifts from stage positions and the first slice config."""

from __future__ import annotations

import pytest

from serialoct.preproc.galvo import GalvoDetection
from serialoct.preproc.shifts import SliceStage, shifts_from_stage
from serialoct.preproc.slice_config import initial_slice_config

TILE_MM = 1.0
PIXEL_MM = (0.01, 0.02)


def _grid(slice_id, x0, y0, nx=3, ny=2, step=0.8):
    xs = tuple(x0 + i * step for i in range(nx) for _ in range(ny))
    ys = tuple(y0 + j * step for _ in range(nx) for j in range(ny))
    return SliceStage(slice_id, xs, ys, (TILE_MM, TILE_MM), (nx, ny))


def test_same_grid_moved_gives_the_translation_onto_the_fixed_slice():
    (row,) = shifts_from_stage([_grid("01", 0.0, 0.0), _grid("02", 0.3, -0.1)], PIXEL_MM)
    assert row.x_shift_mm == pytest.approx(-0.3) and row.y_shift_mm == pytest.approx(0.1)
    assert row.x_shift == pytest.approx(-30.0) and row.y_shift == pytest.approx(5.0)
    assert row.reliable


def test_grid_grown_on_one_side_keeps_the_other_side_aligned_and_is_unreliable():
    fixed = _grid("04", 0.0, 0.0, nx=3)
    moving = _grid("05", 0.05, 0.0, nx=4)  # one more tile row at the high end
    (row,) = shifts_from_stage([fixed, moving], PIXEL_MM)
    assert row.x_shift_mm == pytest.approx(-0.05)  # low edges align; high edges differ by 0.75
    assert not row.reliable


def test_one_row_per_consecutive_pair_in_order():
    rows = shifts_from_stage([_grid("01", 0, 0), _grid("02", 0, 0), _grid("04", 0, 0)], PIXEL_MM)
    assert [(r.fixed_id, r.moving_id) for r in rows] == [("01", "02"), ("02", "04")]


def test_first_slices_are_excluded_as_calibration():
    rows = initial_slice_config(["00", "01", "02"], exclude_first_slices=2)
    assert [r.use for r in rows] == [False, False, True]
    assert "calibration" in rows[0].exclude_reason


def test_galvo_detection_fills_confidence_and_fix_at_the_threshold():
    galvo = {"01": GalvoDetection(5, 0.9, 4), "02": GalvoDetection(3, 0.2, 4)}
    rows = initial_slice_config(["01", "02"], exclude_first_slices=0, galvo=galvo, galvo_confidence_threshold=0.6)
    assert [(r.galvo_confidence, r.galvo_fix) for r in rows] == [(0.9, True), (0.2, False)]


def test_a_failed_slice_is_kept_unused_with_its_reason():
    rows = initial_slice_config(["01", "02"], exclude_first_slices=0, failures={"02": "truncated .bin"})
    assert rows[1].use is False and rows[1].exclude_reason == "preprocessing failed: truncated .bin"
