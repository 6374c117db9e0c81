"""How visible the tile borders are in a stitched slice: the intensity step across each border.

Metric
------
Every edge of every tile that lies inside the stitched image is a line where
one tile's contribution starts or stops. Across the line between canvas rows
``i - 1`` and ``i`` (columns likewise), the *signed mean difference* over the
edge's tissue pixels is ``D(i) = mean_c (I[i, c] - I[i - 1, c])``. The image
has gradients of its own, so the same difference is taken across the lines a
few pixels away inside the same tile and outside it (``i ± 2``, ``i ± 3``
by default), and the seam step is ``|D(i) - mean of those|``, divided by the
mean intensity of the tissue. A seam that shows (a gain difference between
tiles that the blending does not hide) gives a step; noise, texture and the
tissue's own gradients cancel in the mean along the line and in the
reference lines. Pixels count as tissue above the image's Otsu level.

With a *reference* rendering of the same placement (``reference=``), the
tissue's own structure is removed exactly instead: ``D`` is taken on
``image - reference``. The natural reference is the ``"none"`` blend: at a
tile's edge, both sides of the line come from the neighbour that covers it
(the pixel belongs to the tile whose border is farthest), so the reference
shows the neighbour's own content across the line, and what remains is only
what blending added there (speckle shared by both cancels too).

The intended input is the mean over depth of the stitched slice, which
averages the speckle down as well.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from serialoct.stitch.layout import TileIndex
from serialoct.stitch.placement import Placement
from serialoct.stitch.threshold import otsu_threshold

__all__ = ["SeamSteps", "measure_seams"]


@dataclass(frozen=True)
class SeamSteps:
    """Intensity steps across the tile edges of a stitched image.

    Attributes
    ----------
    edges : tuple of ((int, int), str)
        Each measured edge: the tile and its side (``"top"``, ``"bottom"``,
        ``"left"``, ``"right"``).
    steps : tuple of float
        The step across each edge, relative to the tissue mean.
    tissue_mean : float
        Mean intensity of the tissue pixels.
    """

    edges: tuple[tuple[TileIndex, str], ...]
    steps: tuple[float, ...]
    tissue_mean: float

    @property
    def mean(self) -> float:
        """Mean relative step over the edges (NaN without any)."""
        return float(np.mean(self.steps)) if self.steps else float("nan")

    @property
    def max(self) -> float:
        """Largest relative step (NaN without any edge)."""
        return float(np.max(self.steps)) if self.steps else float("nan")


def _line_step(image: np.ndarray, mask: np.ndarray, line: int, span: slice, offsets: tuple[int, ...], min_length: int) -> float | None:
    """Absolute step across the line between rows ``line - 1`` and ``line`` over columns ``span``, minus the reference lines'."""
    lines = [line] + [line + s * k for k in offsets for s in (-1, 1)]
    lo, hi = min(lines) - 1 - (0 if offsets else 1), max(lines) + (0 if offsets else 1)  # a guard line each side
    if lo < 0 or hi >= image.shape[0]:
        return None
    keep = np.all(mask[lo : hi + 1, span], axis=0)
    if keep.sum() < min_length:
        return None
    block = image[lo : hi + 1, span][:, keep].astype(np.float64)

    def difference(i):
        return float(np.mean(block[i - lo] - block[i - 1 - lo]))

    reference = np.mean([difference(i) for i in lines[1:]]) if offsets else 0.0
    return abs(difference(line) - reference)


def measure_seams(
    image: np.ndarray,
    placement: Placement,
    *,
    reference: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    offsets: tuple[int, ...] = (2, 3),
    min_length: int = 8,
) -> SeamSteps:
    """Measure the intensity step across every tile edge inside a stitched image (see the module docstring).

    Parameters
    ----------
    image : ndarray, shape (H, W)
        A 2D view of the stitched slice (its mean over depth), on the canvas
        of ``placement``.
    placement : Placement
        Where the tiles are.
    reference : ndarray, shape (H, W), optional
        The same slice blended with ``"none"``: steps are then measured on
        ``image - reference`` and the reference lines are not needed.
    mask : ndarray of bool, shape (H, W), optional
        Tissue pixels; default: above the image's Otsu level.
    offsets : tuple of int
        Distances of the reference lines from the edge, pixels.
    min_length : int
        Fewest tissue pixels along an edge for it to be measured.

    Returns
    -------
    SeamSteps

    Raises
    ------
    ValueError
        If the image is not 2D or not the size of the canvas.
    """
    image = np.asarray(image)
    if image.ndim != 2 or tuple(image.shape) != tuple(placement.canvas_shape):
        raise ValueError(f"image shape {image.shape} is not the canvas shape {placement.canvas_shape}")
    if mask is None:
        covered = image[image > 0]
        mask = image > otsu_threshold(covered) if covered.size else np.zeros(image.shape, bool)
    tissue_mean = float(image[mask].mean()) if mask.any() else float("nan")
    if reference is not None:
        if np.shape(reference) != image.shape:
            raise ValueError(f"reference shape {np.shape(reference)} is not the image shape {image.shape}")
        image = image.astype(np.float64) - np.asarray(reference, dtype=np.float64)
        offsets = ()
    h, w = placement.tile_shape
    edges, steps = [], []
    for tile, position in zip(placement.tiles, placement.positions_px):
        r, c = (int(v) for v in np.floor(position))
        candidates = (
            ("top", image, mask, r, slice(max(c, 0), c + w)),
            ("bottom", image, mask, r + h, slice(max(c, 0), c + w)),
            ("left", image.T, mask.T, c, slice(max(r, 0), r + h)),
            ("right", image.T, mask.T, c + w, slice(max(r, 0), r + h)),
        )
        for side, data, tissue, line, span in candidates:
            step = _line_step(data, tissue, line, span, offsets, min_length)
            if step is not None and np.isfinite(tissue_mean) and tissue_mean > 0:
                edges.append((tile, side))
                steps.append(step / tissue_mean)
    return SeamSteps(tuple(edges), tuple(steps), tissue_mean)
