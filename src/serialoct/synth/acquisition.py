"""The acquisition plan: every geometric fact of a synthetic acquisition, no pixels.

:func:`plan_acquisition` draws, from one seeded generator, where every tile
was commanded, where it really was, what the stage reported, how the tissue
moved, where the galvo band sits, the flat-field and the focal curvature. The
instrument model (:mod:`serialoct.synth.instrument`) renders pixels from it.

Frames (all lengths in mm unless the name says otherwise)
---------------------------------------------------------
Stage frame
    Motor coordinates ``(x, y)``; a tile's stage position is its centre.
    Tile pixel ``(i, j)`` (A-line i, B-scan j) is centred at
    ``centre + ((i - (nx - 1) / 2) * p, (j - (ny - 1) / 2) * p)``, ``p`` the
    pixel size.
Sample frame
    Fixed to the tissue: the stage frame of slice 0, ``z`` = depth below
    slice 0's cut plane. On slice k the tissue has drifted by ``d_k`` and
    turned by ``theta_k`` about the brain centre ``c``:
    ``stage = R(theta_k) (sample - c) + c + d_k``, ``R`` the counter-clockwise
    rotation from +x towards +y (``d_0 = 0``, ``theta_0 = 0``).
Depth
    Slice k is cut at ``z = k * T`` (plus a small tilt of the cut plane about
    ``c``). Its tiles image from ``z_top = k * T - water_depth`` down; tile
    voxel ``(iz, i, j)`` sees depth ``z_top + (iz - curvature[i, j]) * dz``:
    the focal-curvature bowl pushes the image down towards the tile corners.
Stitched frame of a slice
    Pixels relative to the commanded (nominal) top-left pixel of tile (0, 0):
    tile ``(ix, iy)`` really starts at ``(ix * step_px, iy * step_px) + jitter``
    with ``step_px = n * (1 - overlap)``. (The mosaic grid of formats.md §2
    pastes tile ``(ix, iy)`` at ``(ix * nx, iy * ny)`` instead.)

Positions
---------
commanded = grid origin of the slice + ``(ix, iy) * step``; true = commanded +
jitter (not reported); reported (``info.txt``) = commanded + the glitch vector
(zero except on the glitch slice), rounded to 1 nm. A re-homing moves the grid
origin of every later slice (reported and true alike). To keep the brain in
view, the grid is centred on the brain shifted by minus half the re-homing
vector before it and plus half after it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from serialoct.synth.config import SynthConfig
from serialoct.synth.geometry import imaged_extent
from serialoct.synth.phantom import Phantom, make_phantom

__all__ = [
    "SATURATION",
    "SlicePlan",
    "VolumeGrid",
    "AcquisitionPlan",
    "plan_acquisition",
]

#: Recorded intensities are clipped to this (a detector's full scale); it fixes the quantum.
SATURATION = 16.0
_REPORT_DECIMALS = 6  # stage positions are written to 1 nm


@dataclass(frozen=True)
class SlicePlan:
    """The true state of one slice.

    Attributes
    ----------
    index : int
        Position in the cutting order (0 = first cut = calibration slice).
    slice_id : str
        Two-digit id.
    cut_depth_mm : float
        Depth of the cut plane at the brain centre, ``index * T``.
    stage_z_mm : float
        Reported z motor position (the block rises by T per slice).
    drift_mm : (float, float)
        Tissue translation ``d_k`` in the stage frame, ``(x, y)``.
    rotation_deg : float
        Tissue rotation ``theta_k`` about the brain centre (+x towards +y).
    grid_origin_mm : (float, float)
        Commanded centre of tile (0, 0).
    glitch_mm, rehoming_mm : (float, float)
        Reported-minus-commanded jump (glitch slice only) and the cumulative
        genuine grid move (re-homing slice and after).
    galvo_band_start : int or None
        First fly-back A-line in the raw B-scan (None when ``n_extra = 0``).
    galvo_band_contrast : float
        Contrast of the band on this slice (0 for a slice in ``galvo_faint_slices``).
    surface_tilt_vox_per_mm : (float, float)
        Slope of the cut plane: the surface is deeper by this many axial
        voxels per mm along x and y from the brain centre (sample frame).
    missing, degraded : bool
    """

    index: int
    slice_id: str
    cut_depth_mm: float
    stage_z_mm: float
    drift_mm: tuple[float, float]
    rotation_deg: float
    grid_origin_mm: tuple[float, float]
    glitch_mm: tuple[float, float]
    rehoming_mm: tuple[float, float]
    galvo_band_start: int | None
    galvo_band_contrast: float
    surface_tilt_vox_per_mm: tuple[float, float]
    missing: bool
    degraded: bool

    def sample_to_stage(self, centre_mm: tuple[float, float]) -> np.ndarray:
        """Homogeneous 3x3 matrix mapping sample ``(x, y, 1)`` to stage ``(x, y, 1)``."""
        t = math.radians(self.rotation_deg)
        rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
        c = np.asarray(centre_mm)
        out = np.eye(3)
        out[:2, :2] = rot
        out[:2, 2] = c + np.asarray(self.drift_mm) - rot @ c
        return out


@dataclass(frozen=True)
class VolumeGrid:
    """The ground-truth volume's grid in the sample frame.

    Voxel ``(k, i, j)`` is centred at ``origin_mm + (k, i, j) * voxel_mm``;
    axes ``(z, x, y)`` (z = depth below slice 0's cut plane; x, y = slice 0
    stage coordinates; rows go with x, columns with y as in the mosaics).
    """

    shape: tuple[int, int, int]
    origin_mm: tuple[float, float, float]
    voxel_mm: float

    def axis_mm(self, axis: int) -> np.ndarray:
        """Voxel-centre coordinates along ``axis`` (0 = z, 1 = x, 2 = y), mm."""
        return self.origin_mm[axis] + np.arange(self.shape[axis]) * self.voxel_mm


@dataclass(frozen=True, eq=False)
class AcquisitionPlan:
    """Everything drawn for a synthetic acquisition (see the module docstring for frames).

    Attributes
    ----------
    config : SynthConfig
    seed : int
    phantom : Phantom
    slices : tuple of SlicePlan
        Every slice cut, the missing one included, in cutting order.
    commanded_mm, jitter_px : ndarray, shape (n_slices, n_tiles_x, n_tiles_y, 2), float64
        Commanded tile centres (stage frame) and the unreported jitter ``(x, y)``.
    acquired : ndarray, shape (n_slices, n_tiles_x, n_tiles_y), bool
        False for tiles of the missing slice and for tile holes.
    flat_field : ndarray, shape (nx, ny), float32
        Multiplicative vignetting, max 1.
    curvature_vox : ndarray, shape (nx, ny), float32
        Focal-curvature depth offset in axial voxels (0 at the tile centre).
    quantum : float
        Every recorded and decoded sample is a multiple of this power of two
        (so averaging the repeats is exact in float32).
    volume : VolumeGrid
    """

    config: SynthConfig
    seed: int
    phantom: Phantom
    slices: tuple[SlicePlan, ...]
    commanded_mm: np.ndarray
    jitter_px: np.ndarray
    acquired: np.ndarray
    flat_field: np.ndarray
    curvature_vox: np.ndarray
    quantum: float
    volume: VolumeGrid

    # ---- derived geometry
    @property
    def pixel_mm(self) -> float:
        """Lateral pixel size in mm."""
        return self.config.pixel_size_um / 1000.0

    @property
    def axial_mm(self) -> float:
        """Axial voxel size in mm."""
        return self.config.axial_resolution_um / 1000.0

    @property
    def tile_size_mm(self) -> tuple[float, float]:
        """Field of view ``(x, y)`` of a tile."""
        _, nx, ny = self.config.tile_shape
        return nx * self.pixel_mm, ny * self.pixel_mm

    @property
    def step_px(self) -> tuple[float, float]:
        """Nominal stage step between neighbouring tiles, pixels ``(x, y)``."""
        _, nx, ny = self.config.tile_shape
        f = 1.0 - self.config.overlap_fraction
        return nx * f, ny * f

    @property
    def focus_z(self) -> int:
        """Focal-plane index written in ``info.txt``."""
        return int(round(self.config.focus_depth_um / self.config.axial_resolution_um))

    @property
    def true_mm(self) -> np.ndarray:
        """True tile centres, stage frame, shape (n_slices, n_tiles_x, n_tiles_y, 2)."""
        return self.commanded_mm + self.jitter_px * self.pixel_mm

    @property
    def reported_mm(self) -> np.ndarray:
        """Stage positions written in ``info.txt``, same shape as :attr:`true_mm`."""
        glitch = np.array([s.glitch_mm for s in self.slices])[:, None, None, :]
        return np.round(self.commanded_mm + glitch, _REPORT_DECIMALS)

    @property
    def stitched_px(self) -> np.ndarray:
        """True top-left of each tile in its slice's stitched frame, pixels ``(x, y)``."""
        gx, gy = self.config.grid_shape
        ix, iy = np.meshgrid(np.arange(gx), np.arange(gy), indexing="ij")
        nominal = np.stack([ix * self.step_px[0], iy * self.step_px[1]], axis=-1)
        return nominal[None] + self.jitter_px

    @property
    def grid_px(self) -> np.ndarray:
        """Top-left of each tile in the mosaic grid (formats.md §2, tiles pasted without overlap), ``(ix * nx, iy * ny)``."""
        _, nx, ny = self.config.tile_shape
        gx, gy = self.config.grid_shape
        ix, iy = np.meshgrid(np.arange(gx) * nx, np.arange(gy) * ny, indexing="ij")
        return np.broadcast_to(np.stack([ix, iy], axis=-1), self.jitter_px.shape).copy()

    def slice(self, slice_id: str | int) -> SlicePlan:
        """The plan of one slice, by id (``"03"``) or index."""
        k = int(slice_id)
        if not 0 <= k < len(self.slices):
            raise KeyError(f"slice {slice_id!r} not in this acquisition (00..{len(self.slices) - 1:02d})")
        return self.slices[k]

    @property
    def present_slice_ids(self) -> tuple[str, ...]:
        """Ids of the slices written to disk (the missing one left out)."""
        return tuple(s.slice_id for s in self.slices if not s.missing)


# --------------------------------------------------------------------------- planning


def _unit(angle: float) -> np.ndarray:
    return np.array([math.cos(angle), math.sin(angle)])


def _flat_field(nx: int, ny: int, strength: float, centre: np.ndarray) -> np.ndarray:
    u = np.linspace(-1.0, 1.0, nx)[:, None] - centre[0]
    v = np.linspace(-1.0, 1.0, ny)[None, :] - centre[1]
    d2 = u * u + v * v
    return (1.0 - strength * d2 / d2.max()).astype(np.float32)


def _curvature(nx: int, ny: int, amplitude_vox: float) -> np.ndarray:
    u = np.linspace(-1.0, 1.0, nx)[:, None]
    v = np.linspace(-1.0, 1.0, ny)[None, :]
    return (amplitude_vox * (u * u + v * v) / 2.0).astype(np.float32)


def plan_acquisition(config: SynthConfig, seed: int = 0) -> AcquisitionPlan:
    """Draw the geometry and truth of a synthetic acquisition.

    Parameters
    ----------
    config : SynthConfig
    seed : int
        Seeds the one generator every geometric draw comes from, in a fixed
        order that does not depend on which events are switched on (toggling
        ``missing_slice`` changes nothing else). An integer rather than a
        Generator because each tile's detector noise comes from its own
        stream, ``SeedSequence(seed, spawn_key=(purpose, slice, ix, iy))``, and
        the speckle is a hashed sample-frame field (shared by overlapping
        tiles), so tiles render in any order or in parallel.

    Returns
    -------
    AcquisitionPlan

    Examples
    --------
    >>> from serialoct.synth import plan_acquisition, preset
    >>> plan = plan_acquisition(preset("tiny"), seed=1)
    >>> plan.true_mm.shape, plan.slice("02").glitch_mm != (0.0, 0.0)
    ((6, 2, 2, 2), True)
    """
    c = config
    rng = np.random.default_rng(seed)
    n, (gx, gy), (_, nx, ny) = c.n_slices, c.grid_shape, c.tile_shape
    p_mm = c.pixel_size_um / 1000.0
    step_mm = np.array([nx, ny]) * p_mm * (1.0 - c.overlap_fraction)
    n_alines = nx + c.n_extra

    # Draws, always in this order and always all of them (determinism across options).
    drift_steps = rng.normal(0.0, c.drift_step_px, (n, 2)) * p_mm
    rotation_steps = rng.normal(0.0, c.rotation_step_deg, n)
    origin_steps = rng.normal(0.0, c.origin_step_mm, (n, 2))
    band_starts = rng.integers(0, max(n_alines, 1), n)
    wrap_start = rng.integers(n_alines - c.n_extra + 1, n_alines) if c.n_extra >= 2 else 0
    tilt_angles = rng.uniform(0.0, 2 * math.pi, n)
    tilt_sizes = rng.uniform(0.3, 1.0, n)
    jitter = rng.uniform(-c.jitter_px, c.jitter_px, (n, gx, gy, 2))
    glitch_dir, rehoming_dir = rng.uniform(0.0, 2 * math.pi, 2)
    ff_centre = rng.uniform(-0.15, 0.15, 2)

    drift = np.cumsum(np.concatenate([np.zeros((1, 2)), drift_steps[1:]]), axis=0)
    rotation = np.zeros(n)
    for k in range(1, n):
        rotation[k] = np.clip(rotation[k - 1] + rotation_steps[k], -c.rotation_max_deg, c.rotation_max_deg)
    walk = np.cumsum(np.concatenate([np.zeros((1, 2)), origin_steps[1:]]), axis=0)
    rehoming = c.rehoming_mm * _unit(rehoming_dir) if c.rehoming_slice is not None else np.zeros(2)
    glitch = c.glitch_mm * _unit(glitch_dir)
    centre = np.asarray(c.brain_centre_mm, dtype=np.float64)
    base = centre - step_mm * (np.array([gx, gy]) - 1) / 2.0 - rehoming / 2.0
    mosaic_mm = step_mm * (np.array([gx, gy]) - 1) + np.array([nx, ny]) * p_mm
    tilt_scale = c.surface_tilt_vox / max(float(np.hypot(*mosaic_mm)), 1e-9)

    slices, commanded = [], np.empty((n, gx, gy, 2))
    grid = np.stack(np.meshgrid(np.arange(gx), np.arange(gy), indexing="ij"), axis=-1) * step_mm
    for k in range(n):
        moved = c.rehoming_slice is not None and k >= c.rehoming_slice
        origin = base + walk[k] + (rehoming if moved else 0.0)
        commanded[k] = origin + grid
        band = None
        if c.n_extra > 0:
            band = int(wrap_start if (k == 1 and c.n_extra >= 2) else band_starts[k])
        slices.append(
            SlicePlan(
                index=k,
                slice_id=f"{k:02d}",
                cut_depth_mm=k * c.slice_thickness_um / 1000.0,
                stage_z_mm=round(k * c.slice_thickness_um / 1000.0, _REPORT_DECIMALS),
                drift_mm=tuple(map(float, drift[k])),
                rotation_deg=float(rotation[k]),
                grid_origin_mm=tuple(map(float, origin)),
                glitch_mm=tuple(map(float, glitch)) if k == c.glitch_slice else (0.0, 0.0),
                rehoming_mm=tuple(map(float, rehoming)) if moved else (0.0, 0.0),
                galvo_band_start=band,
                galvo_band_contrast=0.0 if k in c.galvo_faint_slices else float(c.galvo_band_contrast),
                surface_tilt_vox_per_mm=tuple(map(float, tilt_sizes[k] * tilt_scale * _unit(tilt_angles[k]))),
                missing=k == c.missing_slice,
                degraded=k == c.degraded_slice,
            )
        )
    acquired = np.ones((n, gx, gy), bool)
    if c.missing_slice is not None:
        acquired[c.missing_slice] = False
    for s, ix, iy in c.tile_holes:
        acquired[s, ix, iy] = False

    x0, x1, y0, y1 = imaged_extent(c, slices, commanded + jitter * p_mm)
    margin = 4 * max(c.truth_resolution_um / 1000.0, p_mm)
    phantom = make_phantom(
        rng,
        semi_axes_mm=c.brain_semi_axes_mm,
        top_mm=c.brain_top_mm,
        centre_xy_mm=c.brain_centre_mm,
        extent_mm=(x0 - margin, x1 + margin, y0 - margin, y1 + margin),
        texture_spacing_mm=(2 * c.axial_resolution_um / 1000.0, c.texture_spacing_um / 1000.0),
    )
    return AcquisitionPlan(
        config=c,
        seed=int(seed),
        phantom=phantom,
        slices=tuple(slices),
        commanded_mm=commanded,
        jitter_px=jitter,
        acquired=acquired,
        flat_field=_flat_field(nx, ny, c.flat_field_strength, ff_centre),
        curvature_vox=_curvature(nx, ny, c.curvature_vox),
        quantum=2.0 ** (math.ceil(math.log2(c.n_repeat * SATURATION)) - 24),
        volume=_volume_grid(c, (x0, x1, y0, y1)),
    )


def _volume_grid(c: SynthConfig, extent_mm: tuple[float, float, float, float]) -> VolumeGrid:
    """The truth grid: lateral ``extent_mm`` (on multiples of the voxel), depth 0 to the deepest tissue imaged."""
    x0, x1, y0, y1 = extent_mm
    depth_mm = (c.tile_shape[0] * c.axial_resolution_um - c.water_depth_um) / 1000.0
    z_max = (c.n_slices - 1) * c.slice_thickness_um / 1000.0 + depth_mm
    r = c.truth_resolution_um / 1000.0
    ox, oy = (math.floor(x0 / r) + 0.5) * r, (math.floor(y0 / r) + 0.5) * r
    return VolumeGrid(
        shape=(max(int(z_max / r), 1), int(math.ceil((x1 - ox) / r)) + 1, int(math.ceil((y1 - oy) / r)) + 1),
        origin_mm=(r / 2.0, ox, oy),
        voxel_mm=r,
    )
