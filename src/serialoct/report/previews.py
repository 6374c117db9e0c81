"""Pure functions that turn volumes into pictures a person can judge."""

from __future__ import annotations

import numpy as np

__all__ = ["annotated_section", "orthogonal_picture", "orthogonal_views", "to_uint8"]


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


def orthogonal_views(volume, *, z_aspect: float = 1.0, gap: int = 4) -> np.ndarray:
    """Orthogonal central sections of a ``(z, rows, cols)`` volume, as one uint8 picture.

    The classic ortho-view: the ``rows x cols`` plane at mid-depth top left,
    the ``z x cols`` section at the middle row below it, and the ``rows x z``
    section at the middle column to its right, separated by ``gap`` black
    pixels. ``z_aspect`` (axial voxel / lateral pixel) stretches depth so the
    sections have true proportions. ``volume`` may be a zarr array: only the
    three sections are read.
    """
    z, rows, cols = volume.shape
    return orthogonal_picture(volume[z // 2], volume[:, rows // 2, :], volume[:, :, cols // 2], z_aspect=z_aspect, gap=gap)


def orthogonal_picture(plane, row_section, column_section, *, z_aspect: float = 1.0, gap: int = 4) -> np.ndarray:
    """:func:`orthogonal_views` from the three sections: the mid-depth ``rows x cols`` plane, the ``z x cols``
    section at the middle row and the ``z x rows`` section at the middle column (for a volume made block by
    block, whose sections are kept as it is written)."""
    from scipy.ndimage import zoom

    top = to_uint8(np.asarray(plane, dtype=np.float32))
    rows, cols = top.shape
    below = np.asarray(row_section, dtype=np.float32)
    side = np.asarray(column_section, dtype=np.float32).T
    if z_aspect != 1.0:
        below = zoom(below, (z_aspect, 1.0), order=1)
        side = zoom(side, (1.0, z_aspect), order=1)
    below, side = to_uint8(below), to_uint8(side)
    canvas = np.zeros((rows + gap + below.shape[0], cols + gap + side.shape[1]), dtype=np.uint8)
    canvas[:rows, :cols] = top
    canvas[rows + gap :, :cols] = below
    canvas[:rows, cols + gap :] = side
    return canvas


def annotated_section(section: np.ndarray, starts: list[tuple[int, str]], *, label_every: int = 1, show_lines: bool = False) -> np.ndarray:
    """A depth section of the stacked volume with each slice's id at its first plane, as RGB uint8.

    Parameters
    ----------
    section : ndarray, shape (Z, W)
        A ``z x cols`` section through the volume.
    starts : list of (int, str)
        Output plane where each slice starts, and its id, in order.
    label_every : int
        Label one slice in N (``annotated_label_every``).
    show_lines : bool
        Draw a line at each slice boundary (``annotated_show_lines``).
    """
    from PIL import Image, ImageDraw

    grey = to_uint8(section)
    margin = 28
    rgb = np.zeros((grey.shape[0], grey.shape[1] + margin, 3), dtype=np.uint8)
    rgb[:, margin:] = grey[..., None]
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    for i, (z, sid) in enumerate(starts):
        if show_lines:
            draw.line([(margin, z), (rgb.shape[1] - 1, z)], fill=(255, 200, 0))
        if i % max(1, label_every) == 0:
            draw.line([(margin - 6, z), (margin - 1, z)], fill=(255, 200, 0))
            draw.text((1, max(0, z - 5)), sid, fill=(255, 200, 0))
    return np.asarray(image)
