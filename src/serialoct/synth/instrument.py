"""The OCT imaging model: from the phantom to what the instrument records.

Decoded tile (:func:`render_tile`), per voxel ``(iz, i, j)``::

    S = R * exp(-2 * integral of mu from the surface) * B(iz, i, j)   [* gain, blurred: degraded slice]
    I = F(i, j) * S * speckle + D + noise,   clipped to [0, SATURATION], quantised

- ``R``, ``mu``: the phantom's reflectivity and attenuation at the sample
  point the voxel sees (:func:`serialoct.synth.acquisition.tile_depth_coords`,
  focal curvature included); 0 in the water above the cut surface. The
  optical depth is integrated voxel by voxel (midpoint rule), so the
  attenuation starts at the surface and follows the layers crossed.
- ``B = 1 / (1 + ((iz - focus_z - curvature[i, j]) * dz / z_R)^2)``: the
  confocal profile of a Gaussian beam (Rayleigh range ``z_R``); the focal
  surface is curved like the rest of the image.
- ``F``: the flat-field (same for every tile); ``D``: the darkfield.
- speckle: multiplicative log-normal with mean 1 (log-sd ``speckle_sigma``),
  independent per voxel and tile; noise: additive Gaussian.
- Every value is rounded to a multiple of ``plan.quantum`` (a power of two
  around 1e-6), which makes averaging the repeats exact (below).

Recorded frames (:func:`record_frames`), shape ``(n_z, nx + n_extra, ny * n_repeat)``:
frame ``y * n_repeat + r`` is repeat r of B-scan y. The repeats differ by
integer multiples of the quantum that sum to zero, so the reader's float32
mean is exactly the decoded tile (every partial sum is an integer below
2**24 quanta). Decoded A-line k is raw A-line ``(p + n_extra + k) mod (nx +
n_extra)``; the ``n_extra`` fly-back A-lines from ``p`` on hold
``D + (1 - contrast) * (mean of the B-scan - D)`` plus noise: a dark
band with two sharp edges ``n_extra`` apart for a contrast near 1, invisible
for 0 (``galvo_faint_slices``), bright for negative contrasts.
"""

from __future__ import annotations

import math

import numpy as np

from serialoct.synth.acquisition import SATURATION, AcquisitionPlan
from serialoct.synth.geometry import cut_depth, tile_depth_coords, tile_lateral_coords
from serialoct.synth.phantom import TextureSlab, evaluate_phantom, sample_texture, texture_slab

__all__ = ["slice_texture", "beam_profile", "render_tile", "record_frames", "tile_rng"]

_RENDER_STREAM, _RECORD_STREAM = 1, 2
_REPEAT_VARIATION = 0.1  # relative spread of one repeat around the mean


def tile_rng(plan: AcquisitionPlan, slice_id: str | int, ix: int, iy: int, stream: int) -> np.random.Generator:
    """An independent generator per tile and purpose, so tiles render in any order."""
    seq = np.random.SeedSequence(plan.seed, spawn_key=(stream, int(slice_id), ix, iy))
    return np.random.default_rng(seq)


def slice_texture(plan: AcquisitionPlan, slice_id: str | int) -> TextureSlab:
    """The phantom's texture over every depth the tiles of a slice see (compute once per slice)."""
    z = tile_depth_coords(plan, slice_id)
    return texture_slab(plan.phantom, float(z.min()), float(z.max()))


def beam_profile(plan: AcquisitionPlan) -> np.ndarray:
    """Confocal beam profile of every tile voxel, shape (n_z, nx, ny), float32, max 1."""
    c = plan.config
    iz = np.arange(c.tile_shape[0], dtype=np.float32)[:, None, None]
    offset = (iz - np.float32(c.focus_depth_um / c.axial_resolution_um) - plan.curvature_vox[None]) * np.float32(
        c.axial_resolution_um / c.rayleigh_range_um
    )
    return 1.0 / (1.0 + offset * offset)


def render_tile(
    plan: AcquisitionPlan,
    slice_id: str | int,
    ix: int,
    iy: int,
    *,
    texture: TextureSlab | None = None,
    flat_field: bool = True,
    noise: bool = True,
) -> np.ndarray:
    """The decoded tile: what a correct reader returns for tile ``(ix, iy)`` of a slice.

    Parameters
    ----------
    plan : AcquisitionPlan
    slice_id : str or int
        ``"03"`` or 3. A missing slice or a tile hole can be rendered too
        (the tissue is there; it just was not written).
    ix, iy : int
        Grid index of the tile.
    texture : TextureSlab, optional
        :func:`slice_texture` of the slice, to share between its tiles;
        computed when None.
    flat_field : bool
        Apply the vignetting (False renders what a perfect flat-field
        correction would give, darkfield still added).
    noise : bool
        Apply speckle and detector noise (False: deterministic signal).

    Returns
    -------
    ndarray, shape (n_z, nx, ny), float32
        Non-negative linear intensity, multiples of ``plan.quantum``.
    """
    c, k = plan.config, int(slice_id)
    s = plan.slice(k)
    texture = slice_texture(plan, k) if texture is None else texture
    x, y = tile_lateral_coords(plan, k, ix, iy)
    z = tile_depth_coords(plan, k)
    ph = evaluate_phantom(plan.phantom, z, x, y, texture=sample_texture(plan.phantom, texture, z, x, y))
    tissue = z >= cut_depth(plan, s, x, y)[None]
    refl = np.where(tissue, ph.reflectivity, np.float32(0.0))
    mu = np.where(tissue, ph.attenuation, np.float32(0.0))
    optical_depth = (np.cumsum(mu, axis=0, dtype=np.float32) - np.float32(0.5) * mu) * np.float32(plan.axial_mm)
    signal = refl * np.exp(np.float32(-2.0) * optical_depth) * beam_profile(plan)
    noise_sigma = c.noise_sigma
    if s.degraded:
        from scipy.ndimage import gaussian_filter

        signal = gaussian_filter(signal, (0.0, c.degraded_blur_px, c.degraded_blur_px), mode="nearest") * np.float32(c.degraded_gain)
        noise_sigma *= c.degraded_noise_factor
    rng = tile_rng(plan, k, ix, iy, _RENDER_STREAM)
    if noise and c.speckle_sigma > 0:
        speckle = rng.standard_normal(signal.shape, dtype=np.float32)
        speckle *= np.float32(c.speckle_sigma)
        speckle -= np.float32(c.speckle_sigma**2 / 2)  # mean of exp(N(m, s^2)) is 1 for m = -s^2 / 2
        signal *= np.exp(speckle, out=speckle)
    if flat_field:
        signal *= plan.flat_field[None]
    signal += np.float32(c.darkfield)
    if noise and noise_sigma > 0:
        signal += rng.standard_normal(signal.shape, dtype=np.float32) * np.float32(noise_sigma)
    return _quantise(signal, plan.quantum)


def _quantise(values: np.ndarray, quantum: float) -> np.ndarray:
    np.clip(values, 0.0, SATURATION, out=values)
    scaled = values * np.float32(1.0 / quantum)  # exact: the quantum is a power of two
    np.rint(scaled, out=scaled)
    scaled *= np.float32(quantum)
    return scaled


def record_frames(plan: AcquisitionPlan, slice_id: str | int, ix: int, iy: int, tile: np.ndarray) -> np.ndarray:
    """What the instrument records for a tile: repeats and the galvo fly-back band.

    Parameters
    ----------
    plan : AcquisitionPlan
    slice_id : str or int
    ix, iy : int
        Grid index (seeds the repeat variation and the band noise).
    tile : ndarray, shape (n_z, nx, ny), float32
        The decoded tile from :func:`render_tile`.

    Returns
    -------
    ndarray, shape (n_z, nx + n_extra, ny * n_repeat), float32
        Frame ``y * n_repeat + r`` is repeat r of B-scan y; the band starts
        at the slice's ``galvo_band_start``. Averaging the repeats of the
        decoded A-lines in float32 gives ``tile`` exactly.
    """
    c, k = plan.config, int(slice_id)
    n_z, nx, ny = c.tile_shape
    n = c.n_repeat
    if tile.shape != (n_z, nx, ny):
        raise ValueError(f"tile shape {tile.shape} does not match the plan's tile shape {(n_z, nx, ny)}")
    rng = tile_rng(plan, k, ix, iy, _RECORD_STREAM)
    if n > 1:
        counts = np.rint(tile.astype(np.float64) / plan.quantum)  # whole quanta, < 2**24 / n
        limit = np.floor(counts / n)  # keeps every repeat >= 0 and the last one within 2x the mean
        steps = np.clip(np.rint(rng.normal(0.0, _REPEAT_VARIATION, (n - 1, *tile.shape)) * counts), -limit, limit)
        repeats = np.concatenate([steps, -steps.sum(axis=0, keepdims=True)]) + counts
        scans = np.moveaxis(repeats, 0, -1).reshape(n_z, nx, ny * n) * plan.quantum
        scans = scans.astype(np.float32)
    else:
        scans = tile.astype(np.float32, copy=False)
    s = plan.slice(k)
    band = s.galvo_band_start
    if c.n_extra == 0 or band is None:
        return np.ascontiguousarray(scans)
    n_alines = nx + c.n_extra
    frames = np.empty((n_z, n_alines, ny * n), np.float32)
    frames[:, (band + c.n_extra + np.arange(nx)) % n_alines, :] = scans
    d = np.float32(c.darkfield)
    flyback = d + np.float32(1.0 - s.galvo_band_contrast) * (scans.mean(axis=1, dtype=np.float32) - d)
    flyback = flyback[:, None, :] + rng.normal(0.0, c.noise_sigma, (n_z, c.n_extra, ny * n)).astype(np.float32)
    frames[:, (band + np.arange(c.n_extra)) % n_alines, :] = np.clip(flyback, 0.0, SATURATION)
    return frames


def tissue_fraction(plan: AcquisitionPlan, slice_id: str | int, ix: int, iy: int) -> float:
    """Fraction of a tile's lateral field inside the brain half a slice thickness below the cut (for tests)."""
    s = plan.slice(slice_id)
    x, y = tile_lateral_coords(plan, slice_id, ix, iy)
    z = cut_depth(plan, s, x, y) + plan.config.slice_thickness_um / 2000.0
    labels = evaluate_phantom(plan.phantom, z, x, y).labels
    return float(np.mean(labels >= 2)) if math.prod(labels.shape) else 0.0
