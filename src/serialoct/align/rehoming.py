"""Encoder-glitch and re-homing detection in ``shifts_xy.csv`` (step ``detect_rehoming_events``).

A shifts row is ``min_fixed - min_moving`` of the reported stage positions
(formats.md §3). Three things make a step large:

Legacy tile-FOV jumps (only with ``tile_fov_mm``)
    Old acquisition software grew or shrank the mosaic by whole tile columns,
    so the low edge jumped by ``m * tile_fov_mm`` (``m`` a non-zero integer)
    while the tissue stayed put. A step within ``tile_fov_tolerance *
    tile_fov_mm`` of such a multiple has the multiple removed (per axis).
Encoder glitch (a spike)
    The stage reports every tile of one slice displaced by ``g`` while it
    really did not move: step ``k`` (into the glitch slice) reads ``t_k - g``
    and step ``k + 1`` (out of it) ``t_{k+1} + g``. Step ``k`` is a spike when
    ``|s_k| > max_shift_mm``, the next step points back (``s_k . s_{k+1} <
    0``) and the round trip is short: ``|s_k + s_{k+1}| < return_fraction
    |s_k|`` (the next step undoes more than ``1 - return_fraction`` of it).
    The pair's sum ``t_k + t_{k+1}`` is exact, so every later slice keeps its
    place; the split between the two steps is unknowable from the motors, so
    both steps get half the sum: the glitch slice lands midway between its
    neighbours, off by ``|t_k - t_{k+1}| / 2`` (a fraction of a pixel for a
    slowly wandering stage).
Genuine re-homing
    A large step that is not undone: the grid really moved and every later
    slice moved with it. It is kept and its moving slice flagged
    ``rehomed = true`` in ``slice_config.csv``, with ``rehoming_reliable`` =
    the row's ``reliable`` flag (a re-homing between two slices whose tile
    grids differ cannot be checked against the grid edges).

Order: tile-FOV pass first (those jumps are persistent and would otherwise
be kept as re-homings), then the spike pass, then the remaining large steps
are reported as re-homings.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from serialoct.align.shifts_analysis import line_plot, pixel_size_mm, steps_mm
from serialoct.io.tables import ShiftRow, SliceConfigRow

__all__ = [
    "EventKind",
    "RehomingEvent",
    "RehomingResult",
    "detect_rehoming",
    "plot_rehoming",
    "rehoming_report",
    "stamp_rehoming",
]

log = logging.getLogger(__name__)

EventKind = Literal["glitch", "rehoming", "tile_fov"]


@dataclass(frozen=True)
class RehomingEvent:
    """One step that the filter corrected or flagged.

    Attributes
    ----------
    kind : {"glitch", "rehoming", "tile_fov"}
        ``glitch``: the step into a glitch slice and the step out of it were
        both replaced (one event per pair, on the step into the slice);
        ``rehoming``: a large step kept; ``tile_fov``: a tile-FOV multiple removed.
    index : int
        Position of the step in the shifts table.
    fixed_id, moving_id : str
        The step's slices; for a glitch, ``moving_id`` is the glitch slice.
    original_mm, corrected_mm : (float, float)
        The step ``(x, y)`` before and after (for a glitch, the step into the slice).
    magnitude_mm : float
        Length of the original step.
    return_ratio : float or None
        ``|s_k + s_{k+1}| / |s_k|`` for a glitch and a re-homing followed by
        a step (None at the end of the series or for a tile-FOV event).
    tile_multiple : (int, int)
        Tile-FOV multiples removed per axis (tile_fov events; else (0, 0)).
    """

    kind: EventKind
    index: int
    fixed_id: str
    moving_id: str
    original_mm: tuple[float, float]
    corrected_mm: tuple[float, float]
    magnitude_mm: float
    return_ratio: float | None = None
    tile_multiple: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class RehomingResult:
    """Result of :func:`detect_rehoming`.

    Attributes
    ----------
    cleaned : list of ShiftRow
        The corrected shifts, same rows and ``reliable`` flags as the input.
    original : list of ShiftRow
        The input.
    events : tuple of RehomingEvent
        In step order.
    params : dict
        The options used (for the report).
    """

    cleaned: list[ShiftRow]
    original: list[ShiftRow]
    events: tuple[RehomingEvent, ...]
    params: dict[str, Any]

    def of_kind(self, kind: EventKind) -> tuple[RehomingEvent, ...]:
        """The events of one kind."""
        return tuple(e for e in self.events if e.kind == kind)

    @property
    def glitch_slices(self) -> tuple[str, ...]:
        """Slices whose reported position was a glitch (corrected)."""
        return tuple(e.moving_id for e in self.of_kind("glitch"))

    @property
    def rehomed_slices(self) -> tuple[str, ...]:
        """Slices arriving by a genuine re-homing (kept)."""
        return tuple(e.moving_id for e in self.of_kind("rehoming"))


def _with_step(row: ShiftRow, mm: np.ndarray, pixel_mm: tuple[float, float]) -> ShiftRow:
    """``row`` with the step ``mm``, pixels from the table's mosaic pixel size."""
    x, y = float(mm[0]), float(mm[1])
    return replace(row, x_shift_mm=x, y_shift_mm=y, x_shift=x / pixel_mm[0] if x else 0.0, y_shift=y / pixel_mm[1] if y else 0.0)


def detect_rehoming(
    shifts: Sequence[ShiftRow],
    *,
    return_fraction: float = 0.4,
    max_shift_mm: float = 0.5,
    tile_fov_mm: float | None = None,
    tile_fov_tolerance: float = 0.05,
) -> RehomingResult:
    """Correct encoder-glitch spikes and legacy tile-FOV jumps; flag genuine re-homings.

    Parameters
    ----------
    shifts : sequence of ShiftRow
        ``shifts_xy.csv`` rows in slice order (consecutive present slices).
    return_fraction : float
        Spike sensitivity in (0, 1]: step ``k`` is a spike when the next step
        brings the stage back to within ``return_fraction * |s_k|`` of where
        it started (``rehoming_return_fraction``; lower = fewer corrections).
    max_shift_mm : float
        Steps not longer than this are neither spikes nor re-homings
        (``rehoming_max_shift_mm``).
    tile_fov_mm : float or None
        Legacy mosaic-growth artefact step (``tile_fov_mm``); None = no such pass.
    tile_fov_tolerance : float
        Fraction of ``tile_fov_mm`` around each non-zero multiple that counts
        as a match (``tile_fov_tolerance``).

    Returns
    -------
    RehomingResult

    Raises
    ------
    ValueError
        For an option out of range.

    Examples
    --------
    >>> from serialoct.io.tables import ShiftRow
    >>> steps = [(0.01, 0.0), (0.6, 0.3), (-0.59, -0.31), (0.02, 0.01)]
    >>> rows = [ShiftRow(f"{k:02d}", f"{k + 1:02d}", x / 0.01, y / 0.01, x, y) for k, (x, y) in enumerate(steps)]
    >>> result = detect_rehoming(rows)
    >>> result.glitch_slices, [round(r.x_shift_mm, 3) for r in result.cleaned]
    (('02',), [0.01, 0.005, 0.005, 0.02])
    """
    if not 0 < return_fraction <= 1:
        raise ValueError(f"return_fraction = {return_fraction}: expected 0 < value <= 1")
    if not max_shift_mm >= 0:
        raise ValueError(f"max_shift_mm = {max_shift_mm}: expected a number >= 0")
    if tile_fov_mm is not None and not tile_fov_mm > 0:
        raise ValueError(f"tile_fov_mm = {tile_fov_mm}: expected a positive number or None")
    if not 0 <= tile_fov_tolerance < 0.5:
        raise ValueError(f"tile_fov_tolerance = {tile_fov_tolerance}: expected 0 <= value < 0.5 (a fraction of the tile FOV)")
    original = list(shifts)
    rows = list(shifts)
    pixel_mm = pixel_size_mm(rows)
    events: list[RehomingEvent] = []

    if tile_fov_mm is not None:
        for i, row in enumerate(rows):
            s = np.array([row.x_shift_mm, row.y_shift_mm])
            m = np.rint(s / tile_fov_mm)
            hit = (m != 0) & (np.abs(s - m * tile_fov_mm) <= tile_fov_tolerance * tile_fov_mm)
            if hit.any():
                new = np.where(hit, s - m * tile_fov_mm, s)
                rows[i] = _with_step(row, new, pixel_mm)
                multiple = tuple(int(v) if h else 0 for v, h in zip(m, hit))
                events.append(RehomingEvent("tile_fov", i, row.fixed_id, row.moving_id, tuple(map(float, s)),
                                            tuple(map(float, new)), float(np.hypot(*s)), tile_multiple=multiple))

    mm = steps_mm(rows)
    k = 0
    while k < len(rows):
        s = mm[k]
        size = float(np.hypot(*s))
        if size <= max_shift_mm:
            k += 1
            continue
        ratio = None
        if k + 1 < len(rows):
            ratio = float(np.hypot(*(s + mm[k + 1])) / size)
            if float(np.dot(s, mm[k + 1])) < 0 and ratio < return_fraction:
                half = (s + mm[k + 1]) / 2
                rows[k] = _with_step(rows[k], half, pixel_mm)
                rows[k + 1] = _with_step(rows[k + 1], half, pixel_mm)
                events.append(RehomingEvent("glitch", k, rows[k].fixed_id, rows[k].moving_id, tuple(map(float, s)),
                                            tuple(map(float, half)), size, return_ratio=ratio))
                k += 2
                continue
        events.append(RehomingEvent("rehoming", k, rows[k].fixed_id, rows[k].moving_id, tuple(map(float, s)),
                                    tuple(map(float, s)), size, return_ratio=ratio))
        k += 1

    events.sort(key=lambda e: (e.index, e.kind != "tile_fov"))
    result = RehomingResult(
        cleaned=rows,
        original=original,
        events=tuple(events),
        params={"return_fraction": return_fraction, "max_shift_mm": max_shift_mm,
                "tile_fov_mm": tile_fov_mm, "tile_fov_tolerance": tile_fov_tolerance},
    )
    log.info("re-homing filter: %d glitch spike(s) corrected (%s), %d re-homing(s) kept (%s), %d tile-FOV jump(s) removed",
             len(result.glitch_slices), ", ".join(result.glitch_slices) or "none",
             len(result.rehomed_slices), ", ".join(result.rehomed_slices) or "none", len(result.of_kind("tile_fov")))
    return result


def rehoming_report(result: RehomingResult) -> dict[str, Any]:
    """The content of ``rehoming_report.json`` (JSON-ready)."""
    def record(e: RehomingEvent) -> dict[str, Any]:
        return {
            "index": e.index, "fixed_id": e.fixed_id, "moving_id": e.moving_id, "kind": e.kind,
            "original_x_shift_mm": e.original_mm[0], "original_y_shift_mm": e.original_mm[1],
            "corrected_x_shift_mm": e.corrected_mm[0], "corrected_y_shift_mm": e.corrected_mm[1],
            "magnitude_mm": e.magnitude_mm, "return_ratio": e.return_ratio, "tile_multiple": list(e.tile_multiple),
        }

    return {
        "params": dict(result.params),
        "n_steps": len(result.original),
        "n_corrected": len(result.of_kind("glitch")) + len(result.of_kind("tile_fov")),
        "glitch_slices": list(result.glitch_slices),
        "rehomed_slices": list(result.rehomed_slices),
        "corrected_spikes": [record(e) for e in result.of_kind("glitch")],
        "corrected_tile_offsets": [record(e) for e in result.of_kind("tile_fov")],
        "rehomings": [record(e) for e in result.of_kind("rehoming")],
    }


def stamp_rehoming(rows: Sequence[SliceConfigRow], result: RehomingResult) -> list[SliceConfigRow]:
    """``slice_config`` rows with ``rehomed``, ``rehoming_reliable`` and notes set (input unchanged).

    Every moving slice of the shifts that is in ``rows`` gets ``rehomed`` (a
    genuine re-homing arrives at it) and ``rehoming_reliable`` (the arriving
    row's ``reliable`` flag). A glitch slice and a tile-FOV corrected slice
    get a note; slices absent from ``rows`` are skipped.
    """
    by_step = {r.moving_id: r for r in result.cleaned}
    notes: dict[str, list[str]] = {}
    for e in result.events:
        if e.kind == "glitch":
            notes.setdefault(e.moving_id, []).append(
                f"encoder glitch corrected ({e.magnitude_mm:.3f} mm spike, return ratio {e.return_ratio:.2f})")
        elif e.kind == "tile_fov":
            notes.setdefault(e.moving_id, []).append(f"tile-FOV jump removed (multiples {e.tile_multiple})")
        else:
            notes.setdefault(e.moving_id, []).append(f"re-homing kept ({e.magnitude_mm:.3f} mm)")
    rehomed = set(result.rehomed_slices)
    out = []
    for row in rows:
        step = by_step.get(row.slice_id)
        if step is None:
            out.append(row)
            continue
        text = "; ".join(filter(None, [row.notes, *notes.get(row.slice_id, [])]))
        out.append(replace(row, rehomed=row.slice_id in rehomed, rehoming_reliable=bool(step.reliable), notes=text))
    return out


def plot_rehoming(result: RehomingResult) -> np.ndarray:
    """Per-step x and y shifts before and after, corrections marked; RGB uint8 ``(rows, cols, 3)``."""
    before, after = steps_mm(result.original), steps_mm(result.cleaned)
    corrected = sorted({e.index for e in result.events if e.kind != "rehoming"}
                       | {e.index + 1 for e in result.of_kind("glitch")})
    kept = [e.index for e in result.of_kind("rehoming")]
    top = line_plot([before[:, 0], after[:, 0]], labels=["x_shift_mm original", "x_shift_mm corrected"],
                    markers=[corrected, kept], title=f"{len(result.glitch_slices)} glitch(es) corrected, "
                    f"{len(kept)} re-homing(s) kept, {len(result.of_kind('tile_fov'))} tile-FOV jump(s)")
    bottom = line_plot([before[:, 1], after[:, 1]], labels=["y_shift_mm original", "y_shift_mm corrected"],
                       markers=[corrected, kept], title="y steps (dots: corrected original / kept re-homing)")
    return np.concatenate([top, bottom], axis=0)
