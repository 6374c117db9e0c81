"""Every slice into one XY canvas from the motor shifts (step ``bring_to_common_space``).

Sign convention
---------------
A ``shifts_xy.csv`` step is ``s = min_fixed - min_moving`` of the reported
stage positions (formats.md §3): added to the moving slice's stage
coordinates it gives the fixed slice's. In a mosaic grid, pixel index grows
with stage position along both axes (formats.md §2: stage x = rows, stage y
= columns, and the synthetic instrument images stage point ``centre + (i -
(n - 1) / 2) * pixel``). A tissue point at stage position ``X`` therefore
sits at pixel ``(X - o_m) / p`` in the moving slice and ``(X - o_f) / p`` in
the fixed one (``o`` = the grid's low edge), so the *content* of the moving
slice must move by ``(o_m - o_f) / p = -s / p`` pixels to land on the fixed
slice. The placement of slice ``k`` in the frame of the first slice is
minus the cumulative shift:

    offset_k = -(s_1 + ... + s_k)        (pixels; rows from x, columns from y)

(the reference implementation adds the cumulative shift instead, with
x along image columns: its image axes run against its stage axes). :func:`refine_unreliable` follows the
same convention, and its test on rendered synthetic slices pins the sign.

Excluded slices (``use = false`` or ``auto_excluded = true``): their
images are not trusted, so the steps touching them (into and out of the
slice, as in the reference) are replaced according to
``common_space_excluded_slice_mode``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from serialoct.align.shifts_analysis import ReplaceMode, pixel_size_mm, replace_steps
from serialoct.io.tables import ShiftRow, SliceConfigRow, validate_shifts_xy

__all__ = [
    "Canvas",
    "RefinedStep",
    "Refinement",
    "canvas_extent",
    "common_space_offsets",
    "estimate_translation",
    "excluded_slices",
    "refine_unreliable",
    "replace_excluded_shifts",
]

log = logging.getLogger(__name__)


def excluded_slices(rows: Sequence[SliceConfigRow]) -> tuple[str, ...]:
    """Slices placed by motor positions only: ``use = false`` or ``auto_excluded = true``."""
    return tuple(r.slice_id for r in rows if r.motor_only)


def replace_excluded_shifts(
    shifts: Sequence[ShiftRow],
    excluded: Sequence[str],
    *,
    mode: ReplaceMode = "local_median",
    window: int = 2,
    rehomed: Sequence[str] = (),
) -> list[ShiftRow]:
    """Replace every step into or out of an excluded slice (see :func:`~serialoct.align.shifts_analysis.replace_steps`).

    Parameters
    ----------
    shifts : sequence of ShiftRow
    excluded : sequence of str
        Slice ids whose steps are not trusted.
    mode : {"keep", "local_median", "median", "zero"}
        ``common_space_excluded_slice_mode``.
    window : int
        ``common_space_excluded_slice_window``: steps on each side for ``local_median``.
    rehomed : sequence of str
        Slices reached by a genuine re-homing: the step into each is kept
        out of the medians (a real move of the grid, not a typical step).
    """
    bad = set(excluded)
    touched = [i for i, r in enumerate(shifts) if r.fixed_id in bad or r.moving_id in bad]
    if touched and mode != "keep":
        log.info("%d step(s) touch excluded slice(s) %s: replaced (%s)", len(touched), ", ".join(sorted(bad)), mode)
    moves = [i for i, r in enumerate(shifts) if r.moving_id in set(rehomed)]
    return replace_steps(shifts, touched, mode=mode, window=window, not_typical=moves)


def common_space_offsets(
    shifts: Sequence[ShiftRow],
    slice_ids: Sequence[str],
    slice_config: Sequence[SliceConfigRow] = (),
    *,
    excluded_mode: ReplaceMode = "local_median",
    window: int = 2,
) -> dict[str, tuple[float, float]]:
    """Placement of every slice relative to the first, in mosaic pixels.

    Parameters
    ----------
    shifts : sequence of ShiftRow
        Cleaned shifts (:func:`~serialoct.align.rehoming.detect_rehoming`), in slice order.
    slice_ids : sequence of str
        Slices to place (every one must be reachable through the chain of rows).
    slice_config : sequence of SliceConfigRow
        Its excluded slices' steps are replaced per ``excluded_mode``.
    excluded_mode : {"keep", "local_median", "median", "zero"}
    window : int

    Returns
    -------
    dict of str to (float, float)
        ``(row, col)`` translation of each slice's content into the frame of
        the first slice of ``slice_ids`` (``(0, 0)`` for it): minus the
        cumulative shift (module docstring).

    Raises
    ------
    FormatError
        When a slice cannot be reached through the rows.
    """
    ids = sorted(slice_ids)
    if not ids:
        return {}
    validate_shifts_xy(list(shifts), ids)
    rows = replace_excluded_shifts(shifts, excluded_slices(slice_config), mode=excluded_mode, window=window,
                                   rehomed=[r.slice_id for r in slice_config if r.rehomed])
    position = {ids[0]: (0.0, 0.0)}
    for row in sorted(rows, key=lambda r: r.fixed_id):
        if row.fixed_id in position and row.moving_id <= ids[-1]:
            r, c = position[row.fixed_id]
            position[row.moving_id] = (r - row.x_shift, c - row.y_shift)
    return {sid: position[sid] for sid in ids}


@dataclass(frozen=True)
class Canvas:
    """The common XY canvas.

    Attributes
    ----------
    origin_px : (int, int)
        Canvas pixel (0, 0) in the frame of the first slice.
    shape : (int, int)
        ``(rows, cols)`` covering every slice.
    positions : dict of str to (float, float)
        Top-left of each slice in canvas pixels (``offset - origin``, >= 0).
    """

    origin_px: tuple[int, int]
    shape: tuple[int, int]
    positions: dict[str, tuple[float, float]]


def canvas_extent(offsets: Mapping[str, tuple[float, float]], slice_shapes: Mapping[str, tuple[int, int]]) -> Canvas:
    """The smallest integer canvas holding every slice at its offset.

    Parameters
    ----------
    offsets : mapping of str to (float, float)
        From :func:`common_space_offsets`.
    slice_shapes : mapping of str to (int, int)
        ``(rows, cols)`` of each slice (extra leading axes are ignored).
    """
    missing = sorted(set(offsets) - set(slice_shapes))
    if missing:
        raise ValueError(f"no shape for slice(s) {', '.join(missing)}")
    if not offsets:
        raise ValueError("no slices to place")
    lo = [min(math.floor(offsets[s][a]) for s in offsets) for a in (0, 1)]
    hi = [max(math.ceil(offsets[s][a] + tuple(slice_shapes[s])[-2 + a]) for s in offsets) for a in (0, 1)]
    positions = {s: (offsets[s][0] - lo[0], offsets[s][1] - lo[1]) for s in offsets}
    return Canvas(origin_px=(lo[0], lo[1]), shape=(hi[0] - lo[0], hi[1] - lo[1]), positions=positions)


# --------------------------------------------------------------------------- image refinement


def estimate_translation(fixed: np.ndarray, moving: np.ndarray) -> tuple[np.ndarray, float]:
    """Translation of ``moving``'s content onto ``fixed`` by phase correlation, and the NCC after it.

    Parameters
    ----------
    fixed, moving : ndarray, shape (rows, cols)
        2D images of two slices in the same pixel (projections of the
        mosaics), top-left corners at the same place; sizes may differ.

    Returns
    -------
    translation : ndarray, shape (2,)
        ``t`` (rows, cols) with ``fixed(p) ~ moving(p - t)``, sub-pixel.
    ncc : float
        Normalised cross-correlation of the overlap after an integer ``t``.

    Notes
    -----
    Both images (mean removed) are zero-padded to twice the larger size, so
    the circular correlation equals the linear one and shifts up to the image
    size are unambiguous. The cross-power spectrum is divided by the square
    root of its magnitude: halfway between plain cross-correlation (broad
    peak) and phase correlation (Kuglin & Hines 1975, every frequency
    weighted alike). Two slices are a slice thickness apart, so their fine
    texture differs; full whitening lets that uncorrelated texture swamp the
    shared outline (it failed on noise-free synthetic slices), square-root
    whitening kept the peak sharp and right. The peak is refined by a
    parabola per axis.
    """
    f = np.asarray(fixed, np.float64)
    m = np.asarray(moving, np.float64)
    if f.ndim != 2 or m.ndim != 2:
        raise ValueError(f"expected two 2D images, got shapes {f.shape} and {m.shape}")
    shape = tuple(2 * max(a, b) for a, b in zip(f.shape, m.shape))
    pf = np.zeros(shape)
    pm = np.zeros(shape)
    pf[: f.shape[0], : f.shape[1]] = f - f.mean()
    pm[: m.shape[0], : m.shape[1]] = m - m.mean()
    spectrum = np.fft.rfft2(pf) * np.conj(np.fft.rfft2(pm))
    spectrum /= np.sqrt(np.maximum(np.abs(spectrum), 1e-12))  # square-root whitening (Notes)
    corr = np.fft.irfft2(spectrum, s=shape)
    peak = np.unravel_index(int(np.argmax(corr)), shape)
    t = np.zeros(2)
    for axis in (0, 1):
        n, k = shape[axis], peak[axis]
        idx = [peak[0], peak[1]]
        vals = []
        for d in (-1, 0, 1):
            idx[axis] = (k + d) % n
            vals.append(corr[idx[0], idx[1]])
        denom = vals[0] - 2 * vals[1] + vals[2]
        frac = 0.5 * (vals[0] - vals[2]) / denom if denom < 0 else 0.0
        t[axis] = (k if k < n // 2 else k - n) + float(np.clip(frac, -0.5, 0.5))
    return t, _overlap_ncc(f, m, np.rint(t).astype(int))


def _overlap_ncc(f: np.ndarray, m: np.ndarray, t: np.ndarray) -> float:
    """NCC of ``f[p]`` and ``m[p - t]`` over their overlap (0 when under 16 pixels)."""
    r0, c0 = max(0, t[0]), max(0, t[1])
    r1, c1 = min(f.shape[0], m.shape[0] + t[0]), min(f.shape[1], m.shape[1] + t[1])
    if r1 - r0 < 4 or c1 - c0 < 4:
        return 0.0
    a = f[r0:r1, c0:c1].ravel()
    b = m[r0 - t[0] : r1 - t[0], c0 - t[1] : c1 - t[1]].ravel()
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / denom if denom > 0 else 0.0


@dataclass(frozen=True)
class RefinedStep:
    """The image-based check of one unreliable step.

    Attributes
    ----------
    fixed_id, moving_id : str
    motor_px, image_px : (float, float)
        The step ``(x_shift, y_shift)`` from the motors and from the images
        (shifts' sign; NaN when no image pair was given).
    discrepancy_px : float
        Euclidean distance between the two.
    ncc : float
        Overlap correlation after the image translation.
    accepted : bool
        The image estimate replaced the motor one.
    reason : str
        Why (or why not).
    """

    fixed_id: str
    moving_id: str
    motor_px: tuple[float, float]
    image_px: tuple[float, float]
    discrepancy_px: float
    ncc: float
    accepted: bool
    reason: str


@dataclass(frozen=True)
class Refinement:
    """Result of :func:`refine_unreliable`: the shifts and one record per unreliable step."""

    shifts: list[ShiftRow]
    steps: tuple[RefinedStep, ...]


def refine_unreliable(
    shifts: Sequence[ShiftRow],
    images: Mapping[str, np.ndarray],
    *,
    max_discrepancy_px: float = 0.0,
    min_correlation: float = 0.0,
) -> Refinement:
    """Re-estimate the ``reliable = false`` steps from the slices' 2D images.

    Parameters
    ----------
    shifts : sequence of ShiftRow
    images : mapping of str to ndarray, shape (rows, cols)
        A 2D image of each slice in the shifts' pixel (a projection of its
        mosaic); steps whose images are missing keep the motor value.
    max_discrepancy_px : float
        ``common_space_refine_max_discrepancy_px``: reject an image estimate
        further than this from the motor one (0 = accept all).
    min_correlation : float
        ``common_space_refine_min_correlation``: reject an estimate whose
        overlap NCC is below this.

    Returns
    -------
    Refinement
        Accepted steps get the image value (pixels, and mm by the row's
        pixel size); ``reliable`` stays false so later steps know the origin.
    """
    if max_discrepancy_px < 0:
        raise ValueError(f"max_discrepancy_px = {max_discrepancy_px}: expected >= 0 (0 = accept all)")
    if not -1 <= min_correlation <= 1:
        raise ValueError(f"min_correlation = {min_correlation}: expected a value in [-1, 1]")
    out, records = list(shifts), []
    pixel_mm = pixel_size_mm(shifts)
    for i, row in enumerate(shifts):
        if row.reliable:
            continue
        motor = (row.x_shift, row.y_shift)
        if row.fixed_id not in images or row.moving_id not in images:
            records.append(RefinedStep(row.fixed_id, row.moving_id, motor, (math.nan, math.nan), math.nan, math.nan,
                                       False, "no image for one of the slices: motor shift kept"))
            continue
        t, ncc = estimate_translation(images[row.fixed_id], images[row.moving_id])
        image = (-float(t[0]), -float(t[1]))  # content translation -> shift sign (module docstring)
        gap = float(math.hypot(image[0] - motor[0], image[1] - motor[1]))
        if ncc < min_correlation:
            accepted, reason = False, f"ncc {ncc:.3f} < {min_correlation:g}: motor shift kept"
        elif max_discrepancy_px > 0 and gap > max_discrepancy_px:
            accepted, reason = False, f"image and motor differ by {gap:.1f} px > {max_discrepancy_px:g}: motor shift kept"
        else:
            accepted, reason = True, f"image shift accepted (ncc {ncc:.3f}, {gap:.1f} px from the motor shift)"
            out[i] = replace(row, x_shift=image[0], y_shift=image[1],
                             x_shift_mm=image[0] * pixel_mm[0], y_shift_mm=image[1] * pixel_mm[1])
        log.info("unreliable step %s->%s: %s", row.fixed_id, row.moving_id, reason)
        records.append(RefinedStep(row.fixed_id, row.moving_id, motor, image, gap, ncc, accepted, reason))
    return Refinement(shifts=out, steps=tuple(records))
