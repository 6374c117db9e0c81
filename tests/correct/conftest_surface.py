"""Synthetic mosaic grids with their true surfaces, shared by the correction tests.

Imported explicitly by the test modules (not a pytest conftest). Each builder
is cached, so a grid renders once per test session whichever module asks
first: the ``small`` preset (4 x 4 tiles of 64 x 96 x 96 voxels, 12 µm pixels,
8 µm axial, a 3-voxel focal-curvature bowl), seed 0.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from serialoct.synth import (
    AcquisitionPlan,
    cut_depth,
    evaluate_phantom,
    plan_acquisition,
    preset,
    render_tile,
    slice_texture,
    surface_index,
    tile_depth_coords,
    tile_lateral_coords,
)

SEED = 0
#: A slice through the middle of the brain's top half: brain, agarose around it, CSF.
BRAIN_SLICE = "03"
#: The degraded slice of the preset: blurred, 0.3x signal, 3x noise.
DEGRADED_SLICE = "06"


@dataclass(frozen=True)
class Grid:
    """A rendered mosaic grid (formats.md §2) and its truth.

    Attributes
    ----------
    volume : ndarray, shape (64, 384, 384), float32
    surface_vox : ndarray, shape (384, 384), float64
        :func:`serialoct.synth.surface_index` of every tile, pasted like the tiles.
    """

    volume: np.ndarray
    surface_vox: np.ndarray


@functools.cache
def synth_plan() -> AcquisitionPlan:
    """The ``small`` preset's plan, seed :data:`SEED`."""
    return plan_acquisition(preset("small"), seed=SEED)


def tile_size(plan: AcquisitionPlan) -> tuple[int, int]:
    """``(h, w)`` of a tile."""
    return tuple(plan.config.tile_shape[1:])


def _paste(plan: AcquisitionPlan, per_tile) -> np.ndarray:
    """Per-tile arrays (last two axes = the tile) pasted edge to edge on the grid."""
    gx, gy = plan.config.grid_shape
    rows = [np.concatenate([per_tile(ix, iy) for iy in range(gy)], axis=-1) for ix in range(gx)]
    return np.concatenate(rows, axis=-2)


@functools.cache
def mosaic_grid(slice_id: str, *, flat_field: bool) -> Grid:
    """All tiles of a slice pasted edge to edge, with speckle and noise (read-only arrays)."""
    plan = synth_plan()
    texture = slice_texture(plan, slice_id)
    volume = _paste(plan, lambda ix, iy: render_tile(plan, slice_id, ix, iy, texture=texture, flat_field=flat_field))
    surface = _paste(plan, lambda ix, iy: surface_index(plan, slice_id, ix, iy))
    volume.flags.writeable = surface.flags.writeable = False
    return Grid(volume, surface)


@functools.cache
def true_attenuation_grid(slice_id: str) -> tuple[np.ndarray, np.ndarray]:
    """Attenuation (1/mm, 0 in the water) and material label of every voxel of a slice's grid."""
    plan = synth_plan()
    s = plan.slice(slice_id)
    z = tile_depth_coords(plan, slice_id)

    def sample(ix, iy):
        x, y = tile_lateral_coords(plan, slice_id, ix, iy)
        ph = evaluate_phantom(plan.phantom, z, x, y)
        tissue = z >= cut_depth(plan, s, x, y)[None]
        return np.stack([np.where(tissue, ph.attenuation, 0.0), np.where(tissue, ph.labels, 0)])

    both = _paste(plan, sample)
    mu, labels = both[0].astype(np.float32), both[1].astype(np.int16)
    mu.flags.writeable = labels.flags.writeable = False
    return mu, labels


def tile_plane_residual(surface: np.ndarray, tile_hw: tuple[int, int]) -> np.ndarray:
    """What is left of a grid's surface after removing a least-squares plane per tile (NaN kept)."""
    h, w = tile_hw
    rows, cols = surface.shape
    u, v = np.meshgrid(np.arange(h, dtype=float), np.arange(w, dtype=float), indexing="ij")
    design = np.stack([np.ones(h * w), u.ravel(), v.ravel()], axis=1)
    out = np.full(surface.shape, np.nan)
    for r in range(0, rows, h):
        for c in range(0, cols, w):
            tile = surface[r : r + h, c : c + w].ravel()
            ok = np.isfinite(tile)
            coef, *_ = np.linalg.lstsq(design[ok], tile[ok], rcond=None)
            out[r : r + h, c : c + w] = (tile - design @ coef).reshape(h, w)
    return out
