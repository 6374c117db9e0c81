"""Session fixtures: slices of the ``small`` synthetic acquisition, rendered once (seeded)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from serialoct.synth import AcquisitionPlan, plan_acquisition, preset, render_tile, slice_texture

#: Slices whose flat-field the tests recover (00 is a calibration slice, 02 has a glitch, 04 is missing).
SLICES = ("01", "03")


@dataclass(frozen=True)
class SliceTiles:
    """A rendered slice: its tiles by grid index, and the same tiles as a mosaic grid (formats.md §2)."""

    slice_id: str
    tiles: dict[tuple[int, int], np.ndarray]
    mosaic: np.ndarray
    tile_shape: tuple[int, int, int]


def as_mosaic(tiles: dict[tuple[int, int], np.ndarray], grid_shape: tuple[int, int]) -> np.ndarray:
    """Paste tiles edge to edge: tile (ix, iy) at rows [ix*h, (ix+1)*h), columns [iy*w, (iy+1)*w)."""
    z, h, w = next(iter(tiles.values())).shape
    mosaic = np.zeros((z, grid_shape[0] * h, grid_shape[1] * w), np.float32)
    for (ix, iy), tile in tiles.items():
        mosaic[:, ix * h : (ix + 1) * h, iy * w : (iy + 1) * w] = tile
    return mosaic


@pytest.fixture(scope="session")
def small_plan() -> AcquisitionPlan:
    """The ``small`` preset (4x4 tiles of (64, 96, 96), flat-field down to 0.65), seed 0."""
    return plan_acquisition(preset("small"), seed=0)


@pytest.fixture(scope="session")
def small_slices(small_plan) -> dict[str, SliceTiles]:
    """Every tile of :data:`SLICES`, with flat-field, speckle and noise: what the step reads."""
    out = {}
    gx, gy = small_plan.config.grid_shape
    for slice_id in SLICES:
        texture = slice_texture(small_plan, slice_id)
        tiles = {(ix, iy): render_tile(small_plan, slice_id, ix, iy, texture=texture) for ix in range(gx) for iy in range(gy)}
        out[slice_id] = SliceTiles(slice_id, tiles, as_mosaic(tiles, (gx, gy)), small_plan.config.tile_shape)
    return out
