"""Per-tile coordinates: which sample point each voxel of a tile sees.

The frames are defined in :mod:`serialoct.synth.acquisition`. Lateral: pixel
``(i, j)`` of tile ``(ix, iy)`` is centred at the tile's true stage position plus
``((i - (nx - 1) / 2) * p, (j - (ny - 1) / 2) * p)``, mapped to the sample frame
through the slice's drift and rotation. Depth: voxel ``iz`` sees
``cut_depth - water_depth + (iz - curvature[i, j]) * dz``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the plan module imports this one
    from serialoct.synth.acquisition import AcquisitionPlan, SlicePlan
    from serialoct.synth.config import SynthConfig

__all__ = ["stage_to_sample", "imaged_extent", "tile_lateral_coords", "tile_depth_coords", "cut_depth", "surface_index"]


def stage_to_sample(config: SynthConfig, s: SlicePlan, sx: np.ndarray, sy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stage-frame points ``(sx, sy)`` of slice ``s`` in the sample frame (inverse of ``s.sample_to_stage``), mm."""
    cx, cy = config.brain_centre_mm
    t = math.radians(s.rotation_deg)
    u, v = sx - cx - s.drift_mm[0], sy - cy - s.drift_mm[1]
    return cx + math.cos(t) * u + math.sin(t) * v, cy - math.sin(t) * u + math.cos(t) * v


def imaged_extent(config: SynthConfig, slices: list[SlicePlan], true_mm: np.ndarray) -> tuple[float, float, float, float]:
    """Sample-frame bounding box ``(x_min, x_max, y_min, y_max)`` of every tile of every slice."""
    _, nx, ny = config.tile_shape
    w, h = nx * config.pixel_size_um / 1000.0, ny * config.pixel_size_um / 1000.0
    xs, ys = [], []
    for s in slices:
        centres = true_mm[s.index].reshape(-1, 2)
        for dx in (-w / 2, w / 2):
            for dy in (-h / 2, h / 2):
                x, y = stage_to_sample(config, s, centres[:, 0] + dx, centres[:, 1] + dy)
                xs.append(x)
                ys.append(y)
    xs, ys = np.concatenate(xs), np.concatenate(ys)
    return float(xs.min()), float(xs.max()), float(ys.min()), float(ys.max())


def tile_lateral_coords(plan: AcquisitionPlan, slice_id: str | int, ix: int, iy: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample-frame ``(x, y)`` of every pixel of a tile at its true position.

    Returns
    -------
    x, y : ndarray, shape (nx, ny), float64, mm
    """
    k = int(slice_id)
    _, nx, ny = plan.config.tile_shape
    cx, cy = plan.true_mm[k, ix, iy]
    p = plan.pixel_mm
    sx = cx + (np.arange(nx) - (nx - 1) / 2) * p
    sy = cy + (np.arange(ny) - (ny - 1) / 2) * p
    return stage_to_sample(plan.config, plan.slices[k], sx[:, None], sy[None, :])


def tile_depth_coords(plan: AcquisitionPlan, slice_id: str | int) -> np.ndarray:
    """Sample depth seen by every voxel of a tile of a slice, shape (n_z, nx, ny), float64, mm."""
    s = plan.slice(slice_id)
    n_z = plan.config.tile_shape[0]
    top = s.cut_depth_mm - plan.config.water_depth_um / 1000.0
    iz = np.arange(n_z, dtype=np.float64)[:, None, None]
    return top + (iz - plan.curvature_vox[None].astype(np.float64)) * plan.axial_mm


def cut_depth(plan: AcquisitionPlan, s: SlicePlan, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Depth (mm) of slice ``s``'s cut surface at sample-frame points ``(x, y)``: its cut plane, tilted about the brain centre."""
    cx, cy = plan.config.brain_centre_mm
    gx, gy = s.surface_tilt_vox_per_mm
    return s.cut_depth_mm + (gx * (x - cx) + gy * (y - cy)) * plan.axial_mm


def surface_index(plan: AcquisitionPlan, slice_id: str | int, ix: int, iy: int) -> np.ndarray:
    """True depth index of the tissue surface in a tile (what interface detection should find).

    Returns
    -------
    ndarray, shape (nx, ny), float64
        Fractional voxel index ``iz`` at which the cut surface is imaged:
        water above, tissue from there down.
    """
    s = plan.slice(slice_id)
    x, y = tile_lateral_coords(plan, slice_id, ix, iy)
    top = s.cut_depth_mm - plan.config.water_depth_um / 1000.0
    return (cut_depth(plan, s, x, y) - top) / plan.axial_mm + plan.curvature_vox
