"""Resample a brain volume into atlas (RAS) space, whole or block by block.

One affine map carries a target voxel to the source voxel it reads:
``target index -> atlas RAS point -> brain RAS point -> source index``
(:class:`~serialoct.atlas.space.VolumeGrid` at both ends,
:class:`~serialoct.atlas.register.AtlasRegistration` in the middle). The
source keeps its own orientation (the raw ``PIR`` stack is read as it is
stored), and any pyramid level can be the source or the target spacing: the
registration was found once, at the registration level, in the shared RAS
frame.

Block by block (DESIGN.md principle 3)::

    target = atlas_grid.resampled(level_spacing_mm)       # the output level's grid
    for block in blocks(target.shape):                     # caller's tiling, slices per axis
        block_grid = target.crop(block)
        region = source_region(source_grid, reg, block_grid)
        if region is None:                                 # the block sees no brain
            continue
        out[block] = resample_to_atlas(zarr_level[region], source_grid.crop(region), reg, block_grid)

Read the source at the pyramid level whose spacing is closest to, and not
coarser than, the target's: linear interpolation does not low-pass, so a much
finer source would alias.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from serialoct.atlas.register import AtlasRegistration
from serialoct.atlas.space import VolumeGrid

__all__ = ["resample_to_atlas", "source_region", "target_to_source"]


def target_to_source(source_grid: VolumeGrid, registration: AtlasRegistration, target_grid: VolumeGrid) -> np.ndarray:
    """The ``(4, 4)`` map from target array indices to (fractional) source array indices."""
    brain_from_atlas = np.eye(4)
    brain_from_atlas[:3, :3] = registration.matrix
    brain_from_atlas[:3, 3] = registration.translation
    return np.linalg.inv(source_grid.affine) @ brain_from_atlas @ target_grid.affine


def resample_to_atlas(
    volume: np.ndarray,
    volume_grid: VolumeGrid,
    registration: AtlasRegistration,
    target_grid: VolumeGrid,
    *,
    order: int = 1,
    fill_value: float = 0.0,
) -> np.ndarray:
    """Resample ``volume`` onto ``target_grid`` through the registration.

    Parameters
    ----------
    volume : ndarray, shape ``volume_grid.shape``
        The brain (or a crop of it, with the crop's grid).
    volume_grid : VolumeGrid
        Where ``volume``'s voxels are, in the brain's RAS frame.
    registration : AtlasRegistration
    target_grid : VolumeGrid
        The output grid in the atlas's RAS frame (usually the atlas grid at
        another spacing, or a block of it: :meth:`VolumeGrid.crop`).
    order : int
        Spline order: 1 (linear) for intensities, 0 (nearest) for labels.
    fill_value : float
        Value of target voxels that fall outside ``volume``.

    Returns
    -------
    ndarray, shape ``target_grid.shape``, float32
        In ``target_grid``'s array order (``"SAR"`` for an atlas grid).
    """
    if tuple(volume.shape) != volume_grid.shape:
        raise ValueError(f"volume of shape {volume.shape} does not match its grid's shape {volume_grid.shape}")
    if order not in (0, 1, 3):
        raise ValueError(f"order {order!r}: expected 0 (nearest), 1 (linear) or 3 (cubic)")
    m = target_to_source(volume_grid, registration, target_grid)
    return ndimage.affine_transform(
        np.asarray(volume, dtype=np.float32), m[:3, :3], offset=m[:3, 3], output_shape=target_grid.shape,
        order=order, mode="constant", cval=float(fill_value), prefilter=order > 1,
    )


def source_region(
    source_grid: VolumeGrid,
    registration: AtlasRegistration,
    target_grid: VolumeGrid,
    *,
    margin: int = 2,
) -> tuple[slice, slice, slice] | None:
    """The box of source voxels that resampling ``target_grid`` reads.

    Parameters
    ----------
    margin : int
        Voxels added on each side (the interpolation's support: 1 for
        linear, 2 for cubic).

    Returns
    -------
    tuple of slice or None
        Slices into the source array (clipped to it), or None when the
        target block maps entirely outside the source.
    """
    corners = np.array(np.meshgrid(*[(0, n - 1) for n in target_grid.shape], indexing="ij")).reshape(3, -1).T
    m = target_to_source(source_grid, registration, target_grid)
    index = corners @ m[:3, :3].T + m[:3, 3]
    lo = np.floor(index.min(axis=0)).astype(int) - margin
    hi = np.ceil(index.max(axis=0)).astype(int) + margin + 1
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, source_grid.shape)
    if np.any(hi <= lo):
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
