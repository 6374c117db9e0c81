"""PNG pictures for people (previews, projections, report figures)."""

from __future__ import annotations

import io
import os

import numpy as np

from serialoct.io.atomic import write_bytes_atomic

__all__ = ["write_png", "read_png"]


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a 2D uint8 (grey) or ``(rows, cols, 3)`` uint8 (RGB) image as PNG, atomically."""
    from PIL import Image

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"expected a 2D or RGB uint8 image, got {image.dtype} of shape {image.shape}")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    write_bytes_atomic(path, buffer.getvalue())


def read_png(path: str | os.PathLike) -> np.ndarray:
    """Read a PNG into a uint8 array."""
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img)
