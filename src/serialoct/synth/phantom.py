"""A brain-like phantom defined in physical coordinates.

The phantom lives in the *sample frame*: millimetres, ``z`` = depth below slice
0's cut surface (downwards), ``x`` and ``y`` = the stage coordinates of slice 0
(the tissue's drift and rotation are 0 on slice 0). Any point can be evaluated,
so tiles, the ground-truth volume and tests all sample the same structure.

Structure
---------
- **Agarose** fills the block: a weak, nearly homogeneous scatterer.
- **Brain**: an ellipsoid (semi-axes ``brain_semi_axes_mm``) whose boundary is
  gently wobbled by a few low-frequency lateral sinusoids. The normalised
  ellipsoidal radius ``rho`` (1 on the boundary) sets cortex-like concentric
  layers of different reflectivity and attenuation, a bright white-matter
  shell, and deep grey matter inside (:data:`LAYERS`).
- **CSF**: two ventricles (small ellipsoids either side of the midline) and a
  dorsal inter-hemispheric fissure (a thin plane at ``y = centre``), dark and
  weakly attenuating.
- **Fibre texture**: Gaussian-filtered white noise, elongated (sigma 5 vs 1.5
  grid steps) along a direction at ``FIBRE_ANGLE_DEG`` in the x-y plane,
  multiplying the reflectivity by ``1 + amplitude * T`` (``T`` has unit
  standard deviation; the amplitude depends on the material).

The texture is rasterised on a grid in a frame rotated by the fibre angle,
one *slab* of depth at a time (:func:`texture_slab`): the white noise of
each block of ``BLOCK_PLANES`` planes comes from its own seeded stream and the
slab is filtered with a margin of one kernel radius, so two slabs agree exactly
where they overlap and memory never depends on the number of slices.
Speckle and noise belong to the instrument (:mod:`serialoct.synth.instrument`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "LABELS",
    "LAYERS",
    "Phantom",
    "PhantomSample",
    "TextureSlab",
    "make_phantom",
    "evaluate_phantom",
    "texture_slab",
    "sample_texture",
]

#: Label values of the phantom's materials (the truth's ``labels`` volume).
LABELS = {"water": 0, "agarose": 1, "cortex": 2, "white_matter": 3, "deep_grey": 4, "csf": 5}

#: Brain shells from the outside in: (outer rho, reflectivity, attenuation 1/mm, texture amplitude, label).
LAYERS = (
    (1.00, 0.35, 2.0, 0.15, LABELS["cortex"]),  # molecular layer: dim
    (0.93, 0.60, 3.0, 0.20, LABELS["cortex"]),
    (0.82, 0.45, 2.5, 0.20, LABELS["cortex"]),
    (0.70, 1.00, 6.0, 0.30, LABELS["white_matter"]),  # bright, strongly attenuating
    (0.60, 0.60, 3.5, 0.25, LABELS["deep_grey"]),
)
#: (reflectivity, attenuation 1/mm, texture amplitude) of the other materials.
AGAROSE = (0.10, 0.4, 0.05)
CSF = (0.04, 0.3, 0.05)

FIBRE_ANGLE_DEG = 35.0
TEXTURE_SIGMA_VOX = (1.5, 1.5, 5.0)  # (z, across fibres, along fibres), in texture grid steps
TEXTURE_TRUNCATE = 4.0
BLOCK_PLANES = 8
WOBBLE_AMPLITUDE = 0.04  # relative boundary displacement of the brain
FISSURE_HALF_WIDTH_MM = 0.012
FISSURE_INNER_RHO = 0.62
_LUT_STEPS = 2000  # rho resolution of the layer look-up table: 1/2000 of a semi-axis
_LUT_MAX_RHO = 1.5


@dataclass(frozen=True)
class TextureGrid:
    """Where the fibre texture is rasterised.

    Attributes
    ----------
    entropy : int
        Seed of the per-block noise streams.
    angle_deg : float
        Fibre direction in the x-y plane (the grid's ``b`` axis), from +x towards +y.
    centre_mm : (float, float)
        ``(x, y)`` about which the grid frame is rotated.
    spacing_mm, origin_mm : (float, float, float)
        Step and centre of sample 0 along ``(z, a, b)``; ``a``, ``b`` are the
        rotated lateral coordinates relative to ``centre_mm``.
    shape_ab : (int, int)
        Lateral size of the grid.
    std : float
        Standard deviation of the filtered noise (divided out).
    """

    entropy: int
    angle_deg: float
    centre_mm: tuple[float, float]
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float]
    shape_ab: tuple[int, int]
    std: float


@dataclass(frozen=True)
class Phantom:
    """The phantom's parameters (see the module docstring for the model).

    Attributes
    ----------
    centre_mm, semi_axes_mm : (float, float, float)
        Brain ellipsoid ``(z, x, y)``.
    wobble : tuple of (kx, ky, phase, weight)
        Lateral sinusoids (wavenumbers in rad/mm) that modulate the radius by
        ``1 + WOBBLE_AMPLITUDE * sum(weight * cos(kx x + ky y + phase))``.
    ventricles : tuple of ((z, x, y), (z, x, y))
        Centre and semi-axes of each ventricle, in mm.
    texture : TextureGrid
    """

    centre_mm: tuple[float, float, float]
    semi_axes_mm: tuple[float, float, float]
    wobble: tuple[tuple[float, float, float, float], ...]
    ventricles: tuple[tuple[tuple[float, float, float], tuple[float, float, float]], ...]
    texture: TextureGrid
    lut: dict = field(repr=False, compare=False, default_factory=dict)


@dataclass(frozen=True)
class PhantomSample:
    """The phantom at a set of points (arrays broadcast to the points' shape).

    Attributes
    ----------
    reflectivity : ndarray, float32
        Backscatter (relative units, agarose 0.1, bright white matter ~1),
        texture included.
    attenuation : ndarray, float32
        Attenuation coefficient in 1/mm.
    labels : ndarray, uint8
        Material (:data:`LABELS`).
    """

    reflectivity: np.ndarray
    attenuation: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class TextureSlab:
    """The texture on grid planes ``[first_plane, first_plane + len(values))``.

    ``values`` has shape ``(n_planes, Na, Nb)``, float32, unit variance.
    """

    first_plane: int
    values: np.ndarray


def _layer_lut() -> dict[str, np.ndarray]:
    """Material properties tabulated against rho, so a lookup replaces a search per voxel."""
    rho = (np.arange(int(_LUT_MAX_RHO * _LUT_STEPS) + 1) + 0.5) / _LUT_STEPS
    refl = np.full(rho.shape, AGAROSE[0], np.float32)
    mu = np.full(rho.shape, AGAROSE[1], np.float32)
    amp = np.full(rho.shape, AGAROSE[2], np.float32)
    label = np.full(rho.shape, LABELS["agarose"], np.uint8)
    for outer, r, m, a, lab in LAYERS:  # outside in: inner shells overwrite
        inside = rho < outer
        refl[inside], mu[inside], amp[inside], label[inside] = r, m, a, lab
    return {"reflectivity": refl, "attenuation": mu, "amplitude": amp, "labels": label}


def _kernel_energy(sigma: float) -> float:
    """Sum of squared weights of scipy's normalised Gaussian kernel (the noise variance it leaves)."""
    radius = int(TEXTURE_TRUNCATE * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    w /= w.sum()
    return float((w**2).sum())


def make_phantom(
    rng: np.random.Generator,
    *,
    semi_axes_mm: tuple[float, float, float],
    top_mm: float,
    centre_xy_mm: tuple[float, float],
    extent_mm: tuple[float, float, float, float],
    texture_spacing_mm: tuple[float, float],
) -> Phantom:
    """Draw a phantom.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws the boundary wobble, the ventricle jitter and the texture seed.
    semi_axes_mm : (float, float, float)
        Brain semi-axes ``(z, x, y)``.
    top_mm : float
        Depth of the top of the brain.
    centre_xy_mm : (float, float)
        Lateral centre of the brain.
    extent_mm : (x_min, x_max, y_min, y_max)
        Lateral region the texture grid must cover (it is unbounded in depth:
        slabs are made on demand).
    texture_spacing_mm : (float, float)
        Axial and lateral steps of the texture grid.

    Returns
    -------
    Phantom
    """
    az, ax, ay = semi_axes_mm
    cx, cy = centre_xy_mm
    centre = (top_mm + az, cx, cy)
    size = min(ax, ay)
    wobble = tuple(
        (float(k * math.cos(t)), float(k * math.sin(t)), float(p), float(w))
        for k, t, p, w in zip(
            rng.uniform(1.5, 3.0, 3) / size, rng.uniform(0, 2 * math.pi, 3), rng.uniform(0, 2 * math.pi, 3), (0.5, 0.3, 0.2)
        )
    )
    shift = rng.uniform(-0.05, 0.05, 3)
    ventricles = tuple(
        (
            (centre[0] - 0.1 * az + shift[0] * az, cx + (0.1 + shift[1]) * ax, cy + side * (0.25 + shift[2]) * ay),
            (0.3 * az, 0.35 * ax, 0.07 * ay),
        )
        for side in (-1, 1)
    )
    dz, dl = texture_spacing_mm
    x0, x1, y0, y1 = extent_mm
    angle = math.radians(FIBRE_ANGLE_DEG)
    corners = np.array([(x, y) for x in (x0, x1) for y in (y0, y1)]) - (cx, cy)
    a = corners[:, 0] * math.cos(angle) + corners[:, 1] * math.sin(angle)
    b = -corners[:, 0] * math.sin(angle) + corners[:, 1] * math.cos(angle)
    margin = 2 * dl
    origin = (-2 * dz, float(a.min() - margin), float(b.min() - margin))
    shape_ab = (int(math.ceil((a.max() - a.min() + 2 * margin) / dl)) + 1, int(math.ceil((b.max() - b.min() + 2 * margin) / dl)) + 1)
    std = math.sqrt(math.prod(_kernel_energy(s) for s in TEXTURE_SIGMA_VOX))
    texture = TextureGrid(
        entropy=int(rng.integers(2**62)),
        angle_deg=FIBRE_ANGLE_DEG,
        centre_mm=(float(cx), float(cy)),
        spacing_mm=(float(dz), float(dl), float(dl)),
        origin_mm=origin,
        shape_ab=shape_ab,
        std=std,
    )
    return Phantom(centre, tuple(map(float, semi_axes_mm)), wobble, ventricles, texture, _layer_lut())


# --------------------------------------------------------------------------- texture


def _noise_block(grid: TextureGrid, block: int) -> np.ndarray:
    seq = np.random.SeedSequence(grid.entropy, spawn_key=(block,))
    return np.random.default_rng(seq).standard_normal((BLOCK_PLANES, *grid.shape_ab), dtype=np.float32)


def texture_slab(phantom: Phantom, z_min_mm: float, z_max_mm: float) -> TextureSlab:
    """Rasterise the texture for depths ``[z_min_mm, z_max_mm]``.

    Returns
    -------
    TextureSlab
        Unit-variance filtered noise on the grid planes that cover the range
        (plus one plane each side for interpolation). Identical, plane for
        plane, to any other slab covering the same planes.
    """
    from scipy.ndimage import gaussian_filter

    grid = phantom.texture
    dz, oz = grid.spacing_mm[0], grid.origin_mm[0]
    first = max(int(math.floor((z_min_mm - oz) / dz)) - 1, 0)
    stop = max(int(math.ceil((z_max_mm - oz) / dz)) + 2, first + 1)
    radius = int(TEXTURE_TRUNCATE * TEXTURE_SIGMA_VOX[0] + 0.5)
    lo, hi = max(first - radius, 0), stop + radius
    b0, b1 = lo // BLOCK_PLANES, (hi - 1) // BLOCK_PLANES
    noise = np.concatenate([_noise_block(grid, b) for b in range(b0, b1 + 1)])[lo - b0 * BLOCK_PLANES : hi - b0 * BLOCK_PLANES]
    filtered = gaussian_filter(noise, TEXTURE_SIGMA_VOX, mode="reflect", truncate=TEXTURE_TRUNCATE)
    values = filtered[first - lo : stop - lo]
    values *= np.float32(1.0 / grid.std)
    return TextureSlab(first, np.ascontiguousarray(values))


def sample_texture(phantom: Phantom, slab: TextureSlab, z: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Trilinear texture values at sample-frame points (arrays broadcast together), float32."""
    from scipy.ndimage import map_coordinates

    grid = phantom.texture
    (sz, sa, sb), (oz, oa, ob) = grid.spacing_mm, grid.origin_mm
    c, s = math.cos(math.radians(grid.angle_deg)), math.sin(math.radians(grid.angle_deg))
    dx, dy = np.asarray(x) - grid.centre_mm[0], np.asarray(y) - grid.centre_mm[1]
    ia = (c * dx + s * dy - oa) / sa
    ib = (-s * dx + c * dy - ob) / sb
    iz = (np.asarray(z) - oz) / sz - slab.first_plane
    shape = np.broadcast_shapes(iz.shape, ia.shape)
    coords = np.empty((3, *shape), np.float64)
    coords[0], coords[1], coords[2] = iz, ia, ib
    return map_coordinates(slab.values, coords, order=1, mode="nearest", output=np.float32)


# --------------------------------------------------------------------------- anatomy


def evaluate_phantom(
    phantom: Phantom,
    z: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    *,
    texture: np.ndarray | None = None,
) -> PhantomSample:
    """The phantom's materials at sample-frame points.

    Parameters
    ----------
    phantom : Phantom
    z, x, y : ndarray
        Coordinates in mm, broadcast together (typically ``z`` of shape
        ``(n, X, Y)`` and ``x``, ``y`` of shape ``(X, Y)``).
    texture : ndarray, optional
        Unit-variance texture at the same points (:func:`sample_texture`);
        None leaves the reflectivity untextured.

    Returns
    -------
    PhantomSample
        Every point below the block surface: agarose, brain or CSF (the water
        above a cut surface is the instrument's business).
    """
    (cz, cx, cy), (az, ax, ay) = phantom.centre_mm, phantom.semi_axes_mm
    x, y, z = np.asarray(x, np.float64), np.asarray(y, np.float64), np.asarray(z, np.float64)
    lateral = ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2
    wobble = sum(w * np.cos(kx * x + ky * y + p) for kx, ky, p, w in phantom.wobble)
    scale = (1.0 + WOBBLE_AMPLITUDE * wobble).astype(np.float32)
    dz = ((z - cz) / az).astype(np.float32)
    rho = np.sqrt(dz * dz + lateral.astype(np.float32)) * scale
    index = np.minimum((rho * _LUT_STEPS).astype(np.int32), len(phantom.lut["labels"]) - 1)
    lut = phantom.lut
    refl, mu, amp, labels = (lut[k][index] for k in ("reflectivity", "attenuation", "amplitude", "labels"))
    csf = (np.abs(y - cy) < FISSURE_HALF_WIDTH_MM) & (z < cz) & (rho > FISSURE_INNER_RHO) & (rho < 1.0)
    for (vz, vx, vy), (sz, sx, sy) in phantom.ventricles:
        vlat = (((x - vx) / sx) ** 2 + ((y - vy) / sy) ** 2).astype(np.float32)
        vd = ((z - vz) / sz).astype(np.float32)
        csf = csf | (vd * vd + vlat < 1.0)
    refl = np.where(csf, np.float32(CSF[0]), refl)
    mu = np.where(csf, np.float32(CSF[1]), mu)
    labels = np.where(csf, np.uint8(LABELS["csf"]), labels)
    if texture is not None:
        amp = np.where(csf, np.float32(CSF[2]), amp)
        refl = refl * np.maximum(1.0 + amp * texture, np.float32(0.1))
    return PhantomSample(refl.astype(np.float32, copy=False), mu.astype(np.float32, copy=False), labels.astype(np.uint8, copy=False))
