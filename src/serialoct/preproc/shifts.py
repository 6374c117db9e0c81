"""Slice-to-slice XY shifts from stage positions (``shifts_xy.csv``, formats.md §3).

Each slice's mosaic covers ``[min(stage) - w/2, max(stage) + w/2]`` along each
stage axis (stage position = tile centre, ``w`` = tile field of view). The
translation that brings the moving slice onto the fixed one is the smaller in
magnitude of the shifts that align the two lower edges or the two upper edges:
when the tile grid grows or shrinks on one side between slices, the other
side still lines up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from serialoct.io.tables import ShiftRow

__all__ = ["SliceStage", "edge_shift_mm", "shifts_from_stage"]


@dataclass(frozen=True)
class SliceStage:
    """Stage facts of one slice that the shifts need.

    Attributes
    ----------
    slice_id : str
        Two-digit id.
    x_mm, y_mm : tuple of float
        Reported stage positions of the tile centres, in mm.
    tile_size_mm : (float, float)
        Tile field of view along stage x and stage y, in mm.
    grid_shape : (int, int)
        Tiles along x and y.
    """

    slice_id: str
    x_mm: tuple[float, ...]
    y_mm: tuple[float, ...]
    tile_size_mm: tuple[float, float]
    grid_shape: tuple[int, int]


def edge_shift_mm(fixed: Sequence[float], moving: Sequence[float], tile_mm: float) -> float:
    """The smaller of the low-edge and high-edge alignment shifts along one axis, in mm."""
    half = tile_mm / 2
    low = (min(fixed) - half) - (min(moving) - half)
    high = (max(fixed) + half) - (max(moving) + half)
    return low if abs(low) <= abs(high) else high


def shifts_from_stage(slices: Sequence[SliceStage], pixel_size_mm: tuple[float, float]) -> list[ShiftRow]:
    """One :class:`ShiftRow` per consecutive pair of slices.

    Parameters
    ----------
    slices : sequence of SliceStage
        In slice order (the slices present in the raw data).
    pixel_size_mm : (float, float)
        Mosaic-grid pixel along stage x (rows) and stage y (columns), in mm.

    Returns
    -------
    list of ShiftRow
        ``reliable`` is False where the tile-grid shape changed between the two slices.
    """
    rows = []
    for fixed, moving in zip(slices[:-1], slices[1:]):
        dx = edge_shift_mm(fixed.x_mm, moving.x_mm, moving.tile_size_mm[0])
        dy = edge_shift_mm(fixed.y_mm, moving.y_mm, moving.tile_size_mm[1])
        rows.append(
            ShiftRow(
                fixed_id=fixed.slice_id,
                moving_id=moving.slice_id,
                x_shift=dx / pixel_size_mm[0],
                y_shift=dy / pixel_size_mm[1],
                x_shift_mm=dx,
                y_shift_mm=dy,
                reliable=fixed.grid_shape == moving.grid_shape,
            )
        )
    return rows
