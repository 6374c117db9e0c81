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
  a property of the sample like the scatterers that cause it: a fixed field
  of sample-frame position (:func:`speckle_field`), so two overlapping tiles
  (or slices) that see the same point see the same speckle; noise: additive
  Gaussian, independent per voxel and tile (the detector's).
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

__all__ = ["slice_texture", "beam_profile", "speckle_field", "render_tile", "record_frames", "tile_rng"]

_RENDER_STREAM, _RECORD_STREAM, _SPECKLE_STREAM = 1, 2, 3
_REPEAT_VARIATION = 0.1  # relative spread of one repeat around the mean


def tile_rng(plan: AcquisitionPlan, slice_id: str | int, ix: int, iy: int, stream: int) -> np.random.Generator:
    """An independent generator per tile and purpose, so tiles render in any order."""
    seq = np.random.SeedSequence(plan.seed, spawn_key=(stream, int(slice_id), ix, iy))
    return np.random.default_rng(seq)


def slice_texture(plan: AcquisitionPlan, slice_id: str | int) -> TextureSlab:
    """The phantom's texture over every depth the tiles of a slice see (compute once per slice)."""
    z = tile_depth_coords(plan, slice_id)
    return texture_slab(plan.phantom, float(z.min()), float(z.max()))


_M64 = 0xFFFFFFFFFFFFFFFF
_GOLDEN, _MIX1, _MIX2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_PRIME_A, _PRIME_B = np.uint64(0xD1B54A32D192ED03), np.uint64(0xAEF17502108EF2D9)


def _mix64(h: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser, elementwise on a uint64 array (in place)."""
    h ^= h >> np.uint64(30)
    h *= _MIX1
    h ^= h >> np.uint64(27)
    h *= _MIX2
    h ^= h >> np.uint64(31)
    return h


def _node_values(key: int, m: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Unit-variance, zero-mean, near-Gaussian values of integer grid nodes ``(m, a, b)`` (broadcast), float32.

    A counter-based hash (splitmix64) of the node and ``key``: the same node
    always gets the same value, whatever else is evaluated. The 64 bits are
    cut into four 16-bit uniforms whose sum (Irwin-Hall) is standardised.
    """
    a64, b64 = a.astype(np.int64).view(np.uint64), b.astype(np.int64).view(np.uint64)
    lateral = _mix64(a64 * _PRIME_A + b64 * _PRIME_B + np.uint64(key))  # one draw per lateral node
    h = _mix64(lateral + (m.astype(np.int64).view(np.uint64) + np.uint64(1)) * _GOLDEN)
    mask = np.uint64(0xFFFF)
    total = (h & mask).astype(np.float32)
    for shift in (16, 32, 48):
        total += ((h >> np.uint64(shift)) & mask).astype(np.float32)
    # each 16-bit uniform: mean 32767.5, variance (2**32 - 1) / 12
    total -= np.float32(4 * 32767.5)
    total *= np.float32(1.0 / math.sqrt(4 * (2.0**32 - 1) / 12))
    return total


def speckle_field(plan: AcquisitionPlan, z: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The speckle's unit-variance log-field at the voxels of a tile, float32, shape ``z.shape``.

    A property of the sample: white noise on a sample-frame grid (lateral
    step the pixel size, axial step the axial voxel; origin at 0), one
    near-Gaussian value per node from a counter-based hash seeded by the
    acquisition seed, interpolated trilinearly and divided by the
    interpolation's standard deviation (so every voxel's value has unit
    variance, wherever it falls between nodes). It depends only on ``(z, x,
    y)``: overlapping tiles share their speckle, and any tile renders alone.

    Parameters
    ----------
    plan : AcquisitionPlan
    z : ndarray, shape (n_z, nx, ny), mm
        Depths (:func:`tile_depth_coords`): each A-line must step by
        ``plan.axial_mm`` per voxel, as in the instrument.
    x, y : ndarray, shape (nx, ny), mm
        Sample-frame lateral position of each A-line.
    """
    n_z = z.shape[0]
    gz = np.asarray(z[0], np.float64) / plan.axial_mm  # grid depth of voxel 0; voxel iz is at gz + iz
    ga, gb = np.asarray(x, np.float64) / plan.pixel_mm, np.asarray(y, np.float64) / plan.pixel_mm
    mz, ma, mb = np.floor(gz), np.floor(ga), np.floor(gb)
    fz, fa, fb = (gz - mz).astype(np.float32), (ga - ma).astype(np.float32), (gb - mb).astype(np.float32)
    mz, ma, mb = mz.astype(np.int64), ma.astype(np.int64), mb.astype(np.int64)
    z0, a0, b0 = int(mz.min()), int(ma.min()), int(mb.min())
    shape = (int(mz.max()) - z0 + n_z + 1, int(ma.max()) - a0 + 2, int(mb.max()) - b0 + 2)
    key = int(np.random.SeedSequence(plan.seed, spawn_key=(_SPECKLE_STREAM,)).generate_state(2, np.uint64)[0])
    nodes = _node_values(
        key,
        np.arange(z0, z0 + shape[0])[:, None, None],
        np.arange(a0, a0 + shape[1])[None, :, None],
        np.arange(b0, b0 + shape[2])[None, None, :],
    ).ravel()
    # flat index of the (z, a, b) node below-left of every voxel's column top
    base = ((mz - z0) * shape[1] + (ma - a0)) * shape[2] + (mb - b0)
    index = base[None] + (np.arange(n_z + 1) * (shape[1] * shape[2]))[:, None, None]
    wa = (np.float32(1.0) - fa, fa)
    wb = (np.float32(1.0) - fb, fb)
    lateral = None
    for da in (0, 1):
        for db in (0, 1):
            term = np.take(nodes, index + (da * shape[2] + db)) * (wa[da] * wb[db])[None]
            lateral = term if lateral is None else lateral + term
    field = lateral[:-1] * (np.float32(1.0) - fz)[None] + lateral[1:] * fz[None]
    std = np.sqrt(((np.float32(1.0) - fz) ** 2 + fz**2) * (wa[0] ** 2 + wa[1] ** 2) * (wb[0] ** 2 + wb[1] ** 2))
    field *= (np.float32(1.0) / std)[None]
    return field


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
        speckle = speckle_field(plan, z, x, y)
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
