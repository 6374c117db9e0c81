"""Pure functions that turn volumes into pictures a person can judge."""

from __future__ import annotations

import numpy as np

__all__ = ["to_uint8", "orthogonal_views"]


def to_uint8(image: np.ndarray, *, low_percentile: float = 0.5, high_percentile: float = 99.5) -> np.ndarray:
    """Scale an image to 0-255 between two percentiles of its non-zero voxels.

    Zeros (holes, background outside the mosaic) stay black and do not pull
    the contrast down; an empty or constant image gives all zeros.
    """
    image = np.asarray(image, dtype=np.float32)
    values = image[np.isfinite(image) & (image != 0)]
    if values.size == 0:
        return np.zeros(image.shape, dtype=np.uint8)
    low, high = np.percentile(values, [low_percentile, high_percentile])
    if high <= low:
        return np.where(image > low, 255, 0).astype(np.uint8)
    scaled = (np.nan_to_num(image) - low) / (high - low)
    return (np.clip(scaled, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def orthogonal_views(volume: np.ndarray, *, gap: int = 4) -> np.ndarray:
    """Three central sections of a ``(z, rows, cols)`` volume side by side, as uint8.

    Layout: the ``rows x cols`` plane at mid-depth on the left, then the
    ``z x cols`` section at the middle row, then the ``z x rows`` section at
    the middle column, top-aligned and separated by ``gap`` black pixels.
    ``volume`` may be a zarr array: only the three sections are read.
    """
    z, rows, cols = volume.shape
    panels = [
        to_uint8(volume[z // 2]),
        to_uint8(volume[:, rows // 2, :]),
        to_uint8(volume[:, :, cols // 2]),
    ]
    height = max(p.shape[0] for p in panels)
    width = sum(p.shape[1] for p in panels) + gap * (len(panels) - 1)
    canvas = np.zeros((height, width), dtype=np.uint8)
    col = 0
    for panel in panels:
        canvas[: panel.shape[0], col : col + panel.shape[1]] = panel
        col += panel.shape[1] + gap
    return canvas
