"""Drift analysis of ``shifts_xy.csv`` (step ``analyze_shifts``, the guide's Debugging section).

The shifts are consecutive-slice stage offsets (formats.md §3). This module
sums them into the cumulative drift of every slice, summarises the steps
robustly (median, MAD), flags outlier steps by their robust z-score and
offers a filtered copy where each outlier step is replaced by the median of
its neighbours. It also holds the small shared helpers the other shift
filters use: :func:`replace_steps` (the keep / local_median / median / zero
replacement) and :func:`line_plot` (a dependency-free RGB line chart).

Nothing here reads or writes files: the step wrapper writes the text report,
the plot (``serialoct.io.images.write_png``) and the filtered CSV.

References
----------
.. [1] Iglewicz B, Hoaglin DC. "How to Detect and Handle Outliers", ASQC
   Quality Press (1993): the modified z-score ``0.6745 (x - median) / MAD``
   and its 3.5 cut-off.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Literal, get_args

import numpy as np

from serialoct.io.tables import ShiftRow

__all__ = [
    "ReplaceMode",
    "ShiftOutlier",
    "ShiftsAnalysis",
    "analyze_shifts",
    "cumulative_shifts",
    "line_plot",
    "pixel_size_mm",
    "plot_drift",
    "replace_steps",
    "report_text",
    "steps_mm",
    "steps_px",
]

log = logging.getLogger(__name__)

ReplaceMode = Literal["keep", "local_median", "median", "zero"]

#: 0.6745 = the 0.75 quantile of the standard normal: MAD / 0.6745 estimates the SD.
_MAD_TO_SD = 0.6745
#: A MAD below 1 µm (identical steps, a synthetic series) would make every
#: micrometre a huge z-score; stage readings carry about 1 µm of precision anyway.
_MAD_FLOOR_MM = 1e-3


def steps_mm(shifts: Sequence[ShiftRow]) -> np.ndarray:
    """The shifts as an array, shape (n_steps, 2), ``(x_shift_mm, y_shift_mm)``."""
    return np.array([(r.x_shift_mm, r.y_shift_mm) for r in shifts], dtype=np.float64).reshape(-1, 2)


def steps_px(shifts: Sequence[ShiftRow]) -> np.ndarray:
    """The shifts as an array, shape (n_steps, 2), ``(x_shift, y_shift)`` in mosaic pixels."""
    return np.array([(r.x_shift, r.y_shift) for r in shifts], dtype=np.float64).reshape(-1, 2)


def pixel_size_mm(shifts: Sequence[ShiftRow]) -> tuple[float, float]:
    """The mosaic pixel ``(x, y)`` in mm: median of ``shift_mm / shift`` over the non-zero steps (NaN if none)."""
    sizes = []
    for axis in ("x", "y"):
        ratios = [getattr(r, f"{axis}_shift_mm") / getattr(r, f"{axis}_shift") for r in shifts
                  if getattr(r, f"{axis}_shift") != 0 and getattr(r, f"{axis}_shift_mm") != 0]
        sizes.append(float(np.median(ratios)) if ratios else float("nan"))
    return sizes[0], sizes[1]


def cumulative_shifts(shifts: Sequence[ShiftRow], *, unit: Literal["mm", "px"] = "mm") -> np.ndarray:
    """Sum of the shifts from the first slice, shape (n_steps + 1, 2), first row 0.

    Row ``k`` is the shift chain from the first fixed slice to the moving
    slice of step ``k - 1``, in the shifts' own sign (``min_fixed -
    min_moving``, formats.md §3).
    """
    if unit not in ("mm", "px"):
        raise ValueError(f"unit = {unit!r}: choose one of mm, px")
    steps = steps_mm(shifts) if unit == "mm" else steps_px(shifts)
    return np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])


def _local_median(values: np.ndarray, index: int, skip: set[int], window: int) -> np.ndarray | None:
    picks = [j for j in range(index - window, index + window + 1) if j != index and 0 <= j < len(values) and j not in skip]
    return np.median(values[picks], axis=0) if picks else None


def replace_steps(
    shifts: Sequence[ShiftRow],
    indices: Collection[int],
    *,
    mode: ReplaceMode = "local_median",
    window: int = 2,
    not_typical: Collection[int] = (),
) -> list[ShiftRow]:
    """Replace the steps at ``indices`` (mm and px alike); the input is unchanged.

    Parameters
    ----------
    shifts : sequence of ShiftRow
    indices : collection of int
        Positions in ``shifts`` of the steps to replace.
    mode : {"keep", "local_median", "median", "zero"}
        ``keep``: unchanged; ``local_median``: per-axis median of the up to
        ``window`` untouched steps on each side (the global median when none
        is in reach); ``median``: per-axis median of every untouched step;
        ``zero``: 0. With no untouched step at all, the median modes give 0.
    window : int
        Steps on each side for ``local_median``, >= 1.
    not_typical : collection of int
        Steps kept as they are but never used as a replacement value (a
        genuine re-homing is a real move, not what a typical step looks like).

    Returns
    -------
    list of ShiftRow
        ``reliable`` is kept as it was.
    """
    if mode not in get_args(ReplaceMode):
        raise ValueError(f"mode = {mode!r}: choose one of {', '.join(get_args(ReplaceMode))}")
    if window < 1:
        raise ValueError(f"window = {window}: expected an integer >= 1")
    out = list(shifts)
    chosen = {int(i) for i in indices}
    bad = sorted(i for i in chosen if not 0 <= i < len(out))
    if bad:
        raise ValueError(f"step indices {bad} are outside 0..{len(out) - 1}")
    if mode == "keep" or not chosen:
        return out
    mm, px = steps_mm(shifts), steps_px(shifts)
    sources_skip = chosen | {int(i) for i in not_typical}
    untouched = [i for i in range(len(out)) if i not in sources_skip]
    global_mm = np.median(mm[untouched], axis=0) if untouched else np.zeros(2)
    global_px = np.median(px[untouched], axis=0) if untouched else np.zeros(2)
    for i in sorted(chosen):
        if mode == "zero":
            new_mm, new_px = np.zeros(2), np.zeros(2)
        elif mode == "median":
            new_mm, new_px = global_mm, global_px
        else:
            new_mm = _local_median(mm, i, sources_skip, window)
            new_px = _local_median(px, i, sources_skip, window)
            if new_mm is None:
                new_mm, new_px = global_mm, global_px
        out[i] = replace(out[i], x_shift_mm=float(new_mm[0]), y_shift_mm=float(new_mm[1]), x_shift=float(new_px[0]), y_shift=float(new_px[1]))
    return out


# --------------------------------------------------------------------------- analysis


@dataclass(frozen=True)
class ShiftOutlier:
    """One step whose robust z-score exceeds the threshold.

    Attributes
    ----------
    index : int
        Position in the shifts table.
    fixed_id, moving_id : str
    z_score : float
        The larger of the two axes' modified z-scores (absolute value).
    reason : str
        Which axis, the step and the median, in words.
    """

    index: int
    fixed_id: str
    moving_id: str
    z_score: float
    reason: str


@dataclass(frozen=True, eq=False)  # holds arrays
class ShiftsAnalysis:
    """Result of :func:`analyze_shifts`.

    Attributes
    ----------
    slice_ids : tuple of str
        The first fixed slice, then every moving slice, in order.
    cumulative_mm, cumulative_px : ndarray, shape (n_slices, 2)
        Cumulative shift ``(x, y)`` of each slice from the first (shifts' sign).
    step_median_mm, step_mad_mm : ndarray, shape (2,)
        Per-axis median and median absolute deviation of the steps.
    step_magnitude_mm : ndarray, shape (n_steps,)
        Euclidean length of each step.
    outliers : tuple of ShiftOutlier
    filtered : list of ShiftRow
        The shifts with each outlier step replaced by its local median.
    z_threshold : float
    """

    slice_ids: tuple[str, ...]
    cumulative_mm: np.ndarray
    cumulative_px: np.ndarray
    step_median_mm: np.ndarray
    step_mad_mm: np.ndarray
    step_magnitude_mm: np.ndarray
    outliers: tuple[ShiftOutlier, ...]
    filtered: list[ShiftRow]
    z_threshold: float

    @property
    def total_drift_mm(self) -> tuple[float, float]:
        """Cumulative shift of the last slice, ``(x, y)`` mm."""
        return tuple(map(float, self.cumulative_mm[-1]))


def analyze_shifts(shifts: Sequence[ShiftRow], *, z_threshold: float = 3.5, window: int = 2) -> ShiftsAnalysis:
    """Cumulative drift, robust step statistics and outlier steps of a shifts table.

    Parameters
    ----------
    shifts : sequence of ShiftRow
        ``shifts_xy.csv`` rows in slice order (at least one).
    z_threshold : float
        A step is an outlier when the modified z-score ``0.6745 |s - median|
        / MAD`` of either axis exceeds this (3.5, Iglewicz & Hoaglin [1]_).
        The MAD is floored at 1 µm so an almost constant series does not
        flag micrometre noise.
    window : int
        Neighbouring steps on each side whose median replaces an outlier in
        :attr:`ShiftsAnalysis.filtered`.

    Returns
    -------
    ShiftsAnalysis

    Notes
    -----
    A genuine re-homing is a legitimate large step, and a glitch is a pair of
    them: both show as outliers here. The filtered table is a diagnostic,
    not the input of the common-space step; that one uses the output of
    :func:`serialoct.align.rehoming.detect_rehoming`, which tells the two
    apart (the guide: "erroneous shifts are corrected upstream via re-homing
    detection rather than post-hoc outlier filtering").
    """
    if len(shifts) == 0:
        raise ValueError("no shifts to analyse: shifts_xy.csv has no rows (a single slice?)")
    if not z_threshold > 0:
        raise ValueError(f"z_threshold = {z_threshold}: expected a positive number")
    mm = steps_mm(shifts)
    median = np.median(mm, axis=0)
    mad = np.median(np.abs(mm - median), axis=0)
    z = _MAD_TO_SD * np.abs(mm - median) / np.maximum(mad, _MAD_FLOOR_MM)
    outliers = []
    for i, row in enumerate(shifts):
        axis = int(np.argmax(z[i]))
        if z[i, axis] > z_threshold:
            name = "xy"[axis]
            reason = (f"{name} step {mm[i, axis]:+.4f} mm is {z[i, axis]:.1f} robust SDs from the median "
                      f"{median[axis]:+.4f} mm (threshold {z_threshold:g})")
            outliers.append(ShiftOutlier(i, row.fixed_id, row.moving_id, float(z[i, axis]), reason))
    if outliers:
        log.info("%d of %d shift steps are outliers (robust z > %g): %s", len(outliers), len(shifts), z_threshold,
                 ", ".join(f"{o.fixed_id}->{o.moving_id}" for o in outliers))
    return ShiftsAnalysis(
        slice_ids=(shifts[0].fixed_id, *(r.moving_id for r in shifts)),
        cumulative_mm=cumulative_shifts(shifts, unit="mm"),
        cumulative_px=cumulative_shifts(shifts, unit="px"),
        step_median_mm=median,
        step_mad_mm=mad,
        step_magnitude_mm=np.hypot(mm[:, 0], mm[:, 1]),
        outliers=tuple(outliers),
        filtered=replace_steps(shifts, [o.index for o in outliers], mode="local_median", window=window),
        z_threshold=float(z_threshold),
    )


def report_text(analysis: ShiftsAnalysis) -> str:
    """The human-readable drift report (one string, lines end with a newline)."""
    a = analysis
    lines = [
        "Shifts analysis",
        "===============",
        f"slices: {len(a.slice_ids)} ({a.slice_ids[0]} to {a.slice_ids[-1]}), steps: {len(a.step_magnitude_mm)}",
        f"step median (x, y): ({a.step_median_mm[0]:+.4f}, {a.step_median_mm[1]:+.4f}) mm",
        f"step MAD    (x, y): ({a.step_mad_mm[0]:.4f}, {a.step_mad_mm[1]:.4f}) mm",
        f"largest step: {a.step_magnitude_mm.max():.4f} mm",
        f"total drift (x, y): ({a.total_drift_mm[0]:+.4f}, {a.total_drift_mm[1]:+.4f}) mm",
        f"outliers (robust z > {a.z_threshold:g}): {len(a.outliers)}",
    ]
    lines += [f"  {o.fixed_id} -> {o.moving_id}: {o.reason}" for o in a.outliers]
    lines += ["", "slice  cum_x_mm  cum_y_mm  cum_x_px  cum_y_px"]
    lines += [f"{sid:>5}  {mx:+8.4f}  {my:+8.4f}  {px:+8.1f}  {py:+8.1f}"
              for sid, (mx, my), (px, py) in zip(a.slice_ids, a.cumulative_mm, a.cumulative_px)]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- plotting

_COLOURS = ((31, 119, 180), (255, 127, 14), (214, 39, 40), (44, 160, 44), (148, 103, 189))


def line_plot(
    series: Sequence[np.ndarray],
    *,
    labels: Sequence[str] = (),
    markers: Sequence[Sequence[int]] = (),
    title: str = "",
    size: tuple[int, int] = (360, 720),
) -> np.ndarray:
    """Draw line series on one axis, as an RGB image (Pillow only, no matplotlib).

    Parameters
    ----------
    series : sequence of ndarray, shape (n,)
        Values against their index; NaN breaks a line.
    labels : sequence of str
        Legend text, one per series.
    markers : sequence of sequence of int
        Per series, indices to mark with a dot (corrections, outliers).
    title : str
    size : (int, int)
        ``(rows, cols)`` of the image.

    Returns
    -------
    ndarray, shape (rows, cols, 3), uint8
    """
    from PIL import Image, ImageDraw

    rows, cols = size
    image = Image.new("RGB", (cols, rows), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    left, right, top, bottom = 60, cols - 12, 24, rows - 24
    values = np.concatenate([np.asarray(s, np.float64).ravel() for s in series]) if series else np.zeros(1)
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    n = max((len(s) for s in series), default=1)

    def to_xy(i: float, v: float) -> tuple[float, float]:
        x = left + (right - left) * (i / max(n - 1, 1))
        return x, bottom - (bottom - top) * (v - lo) / (hi - lo)

    draw.rectangle((left, top, right, bottom), outline=(0, 0, 0))
    if lo < 0 < hi:
        draw.line((left, to_xy(0, 0.0)[1], right, to_xy(0, 0.0)[1]), fill=(190, 190, 190))
    draw.text((4, top - 4), f"{hi:.3g}", fill=(0, 0, 0))
    draw.text((4, bottom - 8), f"{lo:.3g}", fill=(0, 0, 0))
    draw.text((left, 4), title, fill=(0, 0, 0))
    for k, s in enumerate(series):
        colour = _COLOURS[k % len(_COLOURS)]
        s = np.asarray(s, np.float64).ravel()
        points = [to_xy(i, v) if np.isfinite(v) else None for i, v in enumerate(s)]
        for a, b in zip(points, points[1:]):
            if a is not None and b is not None:
                draw.line((*a, *b), fill=colour, width=2)
        for i in (markers[k] if k < len(markers) else ()):
            if 0 <= i < len(s) and np.isfinite(s[i]):
                x, y = to_xy(i, s[i])
                draw.ellipse((x - 4, y - 4, x + 4, y + 4), outline=colour, fill=colour)
        if k < len(labels):
            draw.text((right - 150, top + 6 + 12 * k), labels[k], fill=colour)
    return np.asarray(image, dtype=np.uint8)


def plot_drift(analysis: ShiftsAnalysis) -> np.ndarray:
    """Cumulative drift (x, y, mm) per slice with the outlier steps marked, RGB uint8."""
    marks = [o.index + 1 for o in analysis.outliers]  # the outlier step moves its moving slice
    return line_plot(
        [analysis.cumulative_mm[:, 0], analysis.cumulative_mm[:, 1]],
        labels=["cumulative x (mm)", "cumulative y (mm)"],
        markers=[marks, marks],
        title=f"Cumulative drift over {len(analysis.slice_ids)} slices; {len(analysis.outliers)} outlier step(s) marked",
    )
