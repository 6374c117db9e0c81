"""Stitching diagnostics: a slice placed by its motor positions alone, and seam probes to compare two stitchings.

*Motor-only stitching* (:func:`motor_only_placement`) puts every tile at its
base layout (reported stage positions, or the nominal grid with the given
overlap) with no registration and no layout matrix: what the stitch would
be if image refinement did nothing. Blending it with
:func:`serialoct.stitch.blend.blend_region` gives the motor-only slice.

*Seam probes* (:func:`probe_seams`) measure, every ``step_px`` pixels along
each boundary between neighbouring tiles, how much the image jumps across
the seam. Where two tiles meet, the blend hands over from one to the other
somewhere in their overlap: at the middle of it (``"none"``), or at the
tiles' edges (``"average"``). Each probe looks at the three lines where that
happens (the lower tile's first row, the middle of the overlap, the upper
tile's last row; columns likewise) over a window of ``step_px`` pixels along
the seam and keeps the largest excess:

    excess(i) = mean_c |I[i, c] - I[i-1, c]| - mean_{k in offsets, +-} mean_c |I[i+-k, c] - I[i+-k-1, c]|

divided by the mean of the covered pixels. The reference lines (``i +- 2``,
``i +- 3``) carry the image's own texture and gradients, so a seam where the
two tiles do not match (misplaced tiles cut at the overlap's middle, a gain
step) stands out and a seamless stitch gives about 0. The signed version
(mean of the differences instead of their magnitudes) is the *gain step*: a
difference of brightness between the tiles. A diffusion blend spreads a
mismatch over the overlap instead of showing it at a line, so compare
stitchings blended alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from serialoct.stitch.layout import TileIndex
from serialoct.stitch.placement import Placement

__all__ = [
    "SeamProbe", "SeamProbes", "motor_only_placement", "probe_seams", "placement_record", "side_by_side",
]

#: Distances of the reference lines from a probed line, pixels (as :mod:`serialoct.stitch.seams`).
REFERENCE_OFFSETS = (2, 3)


def motor_only_placement(layout_px: Mapping[TileIndex, np.ndarray], tile_shape: tuple[int, int]) -> Placement:
    """The placement of a slice's tiles at their base layout, without registration.

    Parameters
    ----------
    layout_px : mapping of (ix, iy) to (float, float)
        Base layout (:func:`serialoct.stitch.layout.base_layout`), pixels.
    tile_shape : (int, int)
        ``(h, w)``.

    Returns
    -------
    Placement
        Identity layout matrix, no pairs, zero refinement; the canvas is the
        bounding box of the tiles.

    Examples
    --------
    >>> from serialoct.stitch.layout import nominal_positions_px
    >>> p = motor_only_placement(nominal_positions_px((2, 2), (48, 48), overlap_fraction=0.25), (48, 48))
    >>> p.canvas_shape, p.overlap_px
    ((84, 84), (12.0, 12.0))
    """
    from serialoct.stitch.placement import solve_placement

    return solve_placement((), layout_px, tuple(tile_shape), affine=np.eye(2), max_refinement_px=0.0)


@dataclass(frozen=True)
class SeamProbe:
    """One probe of a seam.

    Attributes
    ----------
    tiles : ((int, int), (int, int))
        The two neighbouring tiles (the second below or right of the first).
    axis : str
        ``"rows"`` (the second tile is below: a horizontal seam) or ``"cols"``.
    centre_px : (int, int)
        Canvas ``(row, col)`` of the probe on the middle line.
    step : float
        Largest excess across the three hand-over lines, relative to the covered mean.
    gain_step : float
        The signed counterpart at the same line (a brightness difference between the tiles).
    """

    tiles: tuple[TileIndex, TileIndex]
    axis: str
    centre_px: tuple[int, int]
    step: float
    gain_step: float


@dataclass(frozen=True)
class SeamProbes:
    """Every seam probe of one stitched image.

    Attributes
    ----------
    probes : tuple of SeamProbe
    step_px : int
        Spacing of the probes along a seam.
    image_mean : float
        Mean of the covered (non-zero) pixels, the normaliser.
    """

    probes: tuple[SeamProbe, ...]
    step_px: int
    image_mean: float

    @property
    def mean(self) -> float:
        """Mean probe step (NaN without probes)."""
        return float(np.mean([p.step for p in self.probes])) if self.probes else math.nan

    @property
    def max(self) -> float:
        """Largest probe step (NaN without probes)."""
        return float(np.max([p.step for p in self.probes])) if self.probes else math.nan

    def summary(self) -> dict:
        def num(v):
            return None if not math.isfinite(v) else round(float(v), 5)

        gains = [abs(p.gain_step) for p in self.probes]
        return {"n_probes": len(self.probes), "mean_step": num(self.mean), "max_step": num(self.max),
                "mean_abs_gain_step": num(float(np.mean(gains)) if gains else math.nan), "step_px": self.step_px}

    def rows(self) -> list[dict]:
        """One JSON-ready row per probe."""
        return [{"tiles": [list(p.tiles[0]), list(p.tiles[1])], "axis": p.axis, "centre_px": list(p.centre_px),
                 "step": round(p.step, 5), "gain_step": round(p.gain_step, 5)} for p in self.probes]


def _line_excess(image: np.ndarray, covered: np.ndarray, line: int, span: slice) -> tuple[float, float] | None:
    """(absolute, signed) excess across the line between rows ``line - 1`` and ``line`` over columns ``span``."""
    lines = [line] + [line + s * k for k in REFERENCE_OFFSETS for s in (-1, 1)]
    lo, hi = min(lines) - 1, max(lines)
    if lo < 0 or hi >= image.shape[0]:
        return None
    keep = np.all(covered[lo : hi + 1, span], axis=0)
    if keep.sum() < 4:
        return None
    block = image[lo : hi + 1, span][:, keep].astype(np.float64)
    diffs = {i: block[i - lo] - block[i - 1 - lo] for i in lines}
    ref_abs = np.mean([np.mean(np.abs(diffs[i])) for i in lines[1:]])
    ref_signed = np.mean([np.mean(diffs[i]) for i in lines[1:]])
    return float(np.mean(np.abs(diffs[line])) - ref_abs), float(np.mean(diffs[line]) - ref_signed)


def probe_seams(
    image: np.ndarray,
    positions_px: Mapping[TileIndex, tuple[float, float]],
    tile_shape: tuple[int, int],
    *,
    step_px: int = 60,
) -> SeamProbes:
    """Probe every seam between neighbouring tiles every ``step_px`` pixels (see the module docstring).

    Parameters
    ----------
    image : ndarray, shape (H, W)
        A 2D view of the stitched slice (its mean over depth).
    positions_px : mapping of (ix, iy) to (float, float)
        Canvas top-left of every tile, ``(row, col)`` (``stitch_positions_px``
        minus ``stitch_origin_px`` of a stitched slice's attributes).
    tile_shape : (int, int)
        ``(h, w)``.
    step_px : int
        ``comparison_tile_step``: spacing of the probes and length of each probe's window.

    Returns
    -------
    SeamProbes

    Raises
    ------
    ValueError
        For an image that is not 2D or a step < 1.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"image shape {image.shape}: expected a 2D (H, W) view")
    if step_px < 1:
        raise ValueError(f"step_px = {step_px}: expected >= 1")
    covered = image != 0
    mean = float(image[covered].mean()) if covered.any() else math.nan
    h, w = tile_shape
    pos = {tuple(k): np.asarray(v, dtype=np.float64) for k, v in positions_px.items()}
    probes = []
    for a in sorted(pos):
        for b, axis in (((a[0] + 1, a[1]), 0), ((a[0], a[1] + 1), 1)):
            if b not in pos or not math.isfinite(mean) or mean <= 0:
                continue
            pa, pb = np.floor(pos[a]).astype(int), np.floor(pos[b]).astype(int)
            size, other = (h, w) if axis == 0 else (w, h)
            lines = sorted({int(pb[axis]), int(round((pb[axis] + pa[axis] + size) / 2)), int(pa[axis] + size)})
            start, stop = int(max(pa[1 - axis], pb[1 - axis])), int(min(pa[1 - axis], pb[1 - axis]) + other)
            data, mask = (image, covered) if axis == 0 else (image.T, covered.T)
            for c0 in range(start, stop, step_px):
                span = slice(max(c0, 0), min(c0 + step_px, stop, data.shape[1]))
                if span.stop - span.start < 4:
                    continue
                found = [(e, line) for line in lines if (e := _line_excess(data, mask, line, span)) is not None]
                if not found:
                    continue
                (excess, gain), line = max(found, key=lambda f: f[0][0])
                mid, along = int(lines[len(lines) // 2]), int((span.start + span.stop) // 2)
                centre = (mid, along) if axis == 0 else (along, mid)
                probes.append(SeamProbe((a, b), "rows" if axis == 0 else "cols", centre, max(excess, 0.0) / mean, gain / mean))
    return SeamProbes(tuple(probes), int(step_px), mean)


def placement_record(placement: Placement, *, layout_px: Mapping[TileIndex, np.ndarray] | None = None) -> dict:
    """A JSON-ready record of a slice's tile placement (``save_refinement_data``).

    Parameters
    ----------
    placement : Placement
    layout_px : mapping, optional
        The base layout it started from, recorded beside the result.

    Returns
    -------
    dict
        ``tile_shape``, ``canvas_shape``, ``origin_px``, ``affine``, one entry
        per tile (``position_px`` on the canvas, ``frame_px`` in the stitched
        frame, ``refinement_px``, ``layout_px``) and every pair (tiles, shift,
        ncc, accepted, reason), with ``metrics`` (:meth:`Placement.metrics`).
    """
    tiles = []
    for t, p, r in zip(placement.tiles, placement.positions_px, placement.refinement_px):
        entry = {"tile": list(t), "position_px": [round(float(v), 4) for v in p],
                 "frame_px": [round(float(v), 4) for v in p + placement.origin_px], "refinement_px": [round(float(v), 4) for v in r]}
        if layout_px is not None and t in layout_px:
            entry["layout_px"] = [round(float(v), 4) for v in layout_px[t]]
        tiles.append(entry)
    pairs = [{"tiles": [list(q.tiles[0]), list(q.tiles[1])] if q.tiles else None, "nominal_px": [float(v) for v in q.nominal_px],
              "shift_px": [float(v) for v in q.shift_px], "ncc": None if not math.isfinite(q.ncc) else round(float(q.ncc), 5),
              "accepted": bool(q.accepted), "reason": q.reason} for q in placement.pairs]
    return {"tile_shape": list(placement.tile_shape), "canvas_shape": list(placement.canvas_shape),
            "origin_px": [float(v) for v in placement.origin_px], "affine": [[float(v) for v in row] for row in placement.affine],
            "tiles": tiles, "pairs": pairs, "metrics": placement.metrics()}


def side_by_side(
    left: np.ndarray,
    right: np.ndarray,
    *,
    left_probes: SeamProbes | None = None,
    right_probes: SeamProbes | None = None,
    labels: tuple[str, str] = ("motor only", "refined"),
    gap: int = 8,
) -> np.ndarray:
    """Two 2D views next to each other with their seam probes, as an RGB uint8 picture.

    Each probe is a dot coloured from green (no step) to red (the largest
    step of either image), so the two pictures share one scale.

    Parameters
    ----------
    left, right : ndarray, shape (H, W)
    left_probes, right_probes : SeamProbes, optional
    labels : (str, str)
    gap : int
        White columns between the two.

    Returns
    -------
    ndarray, shape (max H + 16, W_left + gap + W_right, 3), uint8
    """
    from PIL import Image, ImageDraw

    from serialoct.report.previews import to_uint8

    views = [to_uint8(np.asarray(v, dtype=np.float32)) for v in (left, right)]
    rows = max(v.shape[0] for v in views) + 16
    cols = views[0].shape[1] + gap + views[1].shape[1]
    canvas = Image.new("RGB", (cols, rows), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    top = max(abs(p.step) for pr in (left_probes, right_probes) if pr for p in pr.probes) if any(
        pr and pr.probes for pr in (left_probes, right_probes)) else 1.0
    x0 = 0
    for view, probes, label in zip(views, (left_probes, right_probes), labels):
        canvas.paste(Image.fromarray(view).convert("RGB"), (x0, 16))
        draw.text((x0 + 2, 2), label, fill=(0, 0, 0))
        for p in probes.probes if probes else ():
            f = min(1.0, p.step / top) if top > 0 else 0.0
            r, c = p.centre_px
            draw.ellipse((x0 + c - 2, 16 + r - 2, x0 + c + 2, 16 + r + 2), fill=(int(255 * f), int(200 * (1 - f)), 0))
        x0 += view.shape[1] + gap
    return np.asarray(canvas, dtype=np.uint8)
