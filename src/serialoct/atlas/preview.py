"""The three-panel alignment preview (``{subject}_ras_preview.png``, ``allen_preview``).

Three orthogonal sections through the registered brain, side by side:
axial (anterior up), coronal and sagittal (superior up, anterior to the
right), right hemisphere on the right of the axial and coronal panels (the
neurological convention). Each section shows the atlas on top of the brain
as either its edges (magenta lines on the grey brain: where the outlines
disagree, the registration is off) or a checkerboard alternating brain and
atlas squares (edges that break at the squares' sides are misaligned).

The function returns the picture; the step writes it with
:func:`serialoct.io.images.write_png`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np

__all__ = ["Overlay", "alignment_preview"]

Overlay = Literal["edges", "checkerboard"]
#: Colour of the atlas edges: magenta stands out on a grey image and for most colour-blind readers.
EDGE_RGB = (255, 0, 255)
#: Black pixels between panels.
GAP_PX = 4
#: Display range: these percentiles of the non-zero voxels map to black and white.
DISPLAY_PERCENTILES = (1.0, 99.5)
#: Canny's Gaussian sigma (pixels) for the atlas edges: ignores voxel noise, keeps structures.
EDGE_SIGMA_PX = 1.5


def alignment_preview(
    registered: np.ndarray,
    atlas: np.ndarray,
    *,
    overlay: Overlay = "edges",
    centre_index: Sequence[int] | None = None,
    checker_px: int | None = None,
) -> np.ndarray:
    """Three orthogonal sections of the registered brain with the atlas overlaid.

    Parameters
    ----------
    registered : ndarray, shape (S, A, R)
        The brain resampled onto the atlas grid (RAS array order ``"SAR"``).
    atlas : ndarray, shape (S, A, R)
        The template on the same grid.
    overlay : {"edges", "checkerboard"}
        How the atlas is shown (module docstring).
    centre_index : (int, int, int), optional
        Voxel ``(s, a, r)`` the three sections pass through; by default the
        atlas's intensity-weighted centre.
    checker_px : int, optional
        Side of the checkerboard squares; by default 1/8 of the largest dimension.

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
        The axial, coronal and sagittal panels left to right.

    Raises
    ------
    ValueError
        If the arrays are not 3D of the same shape, or ``overlay`` is unknown.

    Examples
    --------
    >>> vol = np.zeros((20, 30, 25), np.float32); vol[5:15, 8:22, 6:19] = 1
    >>> alignment_preview(vol, vol).shape
    (30, 88, 3)
    """
    if overlay not in get_args(Overlay):
        raise ValueError(f"overlay {overlay!r}: expected one of {', '.join(get_args(Overlay))}")
    registered, atlas = np.asarray(registered, dtype=np.float32), np.asarray(atlas, dtype=np.float32)
    if registered.ndim != 3 or registered.shape != atlas.shape:
        raise ValueError(
            f"registered {registered.shape} and atlas {atlas.shape}: expected two 3D arrays on the same (S, A, R) grid"
        )
    centre = _centre(atlas) if centre_index is None else tuple(int(c) for c in centre_index)
    if len(centre) != 3 or not all(0 <= c < n for c, n in zip(centre, atlas.shape, strict=True)):
        raise ValueError(f"centre_index {centre_index!r}: expected a voxel (s, a, r) inside {atlas.shape}")
    checker = checker_px or max(2, max(atlas.shape) // 8)
    brain_range, atlas_range = _display_range(registered), _display_range(atlas)
    panels = []
    for brain_2d, atlas_2d in zip(_sections(registered, centre), _sections(atlas, centre), strict=True):
        grey = _normalise(brain_2d, brain_range)
        reference = _normalise(atlas_2d, atlas_range)
        panels.append(_edges(grey, reference) if overlay == "edges" else _checkerboard(grey, reference, checker))
    return _side_by_side(panels)


def _centre(volume: np.ndarray) -> tuple[int, int, int]:
    weights = np.clip(volume, 0, None)
    total = float(weights.sum())
    if total <= 0:
        return tuple(n // 2 for n in volume.shape)
    return tuple(
        int(round(float((weights.sum(axis=tuple(a for a in range(3) if a != axis)) * np.arange(n)).sum()) / total))
        for axis, n in enumerate(volume.shape)
    )


def _sections(volume: np.ndarray, centre: Sequence[int]) -> list[np.ndarray]:
    """Axial (rows A, anterior up), coronal (rows S, superior up), sagittal (rows S, columns A)."""
    s, a, r = centre
    return [volume[s, ::-1, :], volume[::-1, a, :], volume[::-1, :, r]]


def _display_range(volume: np.ndarray) -> tuple[float, float]:
    values = volume[volume > 0]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values, DISPLAY_PERCENTILES)
    return float(lo), float(hi) if hi > lo else float(lo) + 1.0


def _normalise(image: np.ndarray, display: tuple[float, float]) -> np.ndarray:
    lo, hi = display
    return np.clip((image - lo) / (hi - lo), 0.0, 1.0)


def _edges(grey: np.ndarray, reference: np.ndarray) -> np.ndarray:
    from skimage.feature import canny

    rgb = np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=-1)
    if reference.max() > reference.min():
        rgb[canny(reference, sigma=EDGE_SIGMA_PX)] = EDGE_RGB
    return rgb


def _checkerboard(grey: np.ndarray, reference: np.ndarray, side: int) -> np.ndarray:
    rows, cols = np.indices(grey.shape)
    mix = np.where(((rows // side) + (cols // side)) % 2 == 0, grey, reference)
    return np.repeat((mix * 255).astype(np.uint8)[..., None], 3, axis=-1)


def _side_by_side(panels: list[np.ndarray]) -> np.ndarray:
    height = max(p.shape[0] for p in panels)
    width = sum(p.shape[1] for p in panels) + GAP_PX * (len(panels) - 1)
    out = np.zeros((height, width, 3), np.uint8)
    col = 0
    for panel in panels:
        top = (height - panel.shape[0]) // 2
        out[top : top + panel.shape[0], col : col + panel.shape[1]] = panel
        col += panel.shape[1] + GAP_PX
    return out
