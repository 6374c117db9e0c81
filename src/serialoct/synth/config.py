"""Every knob of the synthetic acquisition, and the named presets.

:class:`SynthConfig` is a frozen dataclass: derive variants with
:func:`dataclasses.replace` (``replace(preset("tiny"), missing_slice=3)``).
Units are in the field names (``_um``, ``_mm``, ``_px``, ``_vox``, ``_deg``);
tuples of three are ``(z, x, y)``, tuples of two ``(x, y)``, following the tile
axis order of ``reference/formats.md`` (x = A-line index = stage x = mosaic
rows, y = B-scan index = stage y = mosaic columns).

Presets
-------
``tiny``
    6 slices of 2x2 tiles of (32, 48, 48) voxels, 20 µm pixels, ``n_repeat``
    2, two ``.bin`` files per tile, a motor glitch on slice 02 and a re-homing
    from slice 04 on; no missing and no degraded slice (switch them on with
    ``replace``). About 17 MB of raw data, renders in well under a second.
``small``
    8 slices of 4x4 tiles of (64, 96, 96) voxels, 12 µm pixels: a realistic
    miniature with every event (glitch 02, missing 04, re-homing 05, degraded
    06). About 300 MB of raw data.
``medium``
    20 slices of 6x6 tiles of (80, 128, 128) voxels, 10 µm pixels, every
    event (glitch 05, missing 09, re-homing 12, degraded 15). About 4 GB of
    raw data: the benchmark size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Literal

from serialoct.errors import ParameterError

__all__ = ["SynthConfig", "PRESETS", "preset"]

PresetName = Literal["tiny", "small", "medium"]


@dataclass(frozen=True)
class SynthConfig:
    """Geometry, phantom, instrument and events of one synthetic acquisition.

    The defaults are the ``tiny`` preset. Slice indices (``glitch_slice`` ...)
    count from 0 and are also the slice ids (index 4 is slice ``"04"``).

    Attributes
    ----------
    n_slices : int
        Slices cut and (except a missing one) imaged; slice 00 is rendered as
        a normal slice (the pipeline treats it as a calibration slice).
    grid_shape : (int, int)
        Tiles per slice along x and y.
    tile_shape : (int, int, int)
        Decoded tile ``(n_z, nx, ny)``.
    pixel_size_um : float
        Lateral pixel along both x and y (``width = nx * pixel_size_um``).
    axial_resolution_um : float
        Axial voxel (not written in ``info.txt``; recorded in the truth).
    overlap_fraction : float
        Nominal overlap of neighbouring tiles; the stage step is
        ``tile size * (1 - overlap_fraction)``.
    slice_thickness_um : float
        Tissue removed by each cut; slice k's cut surface lies at depth
        ``k * slice_thickness_um`` below slice 0's.
    water_depth_um : float
        Depth of water between the top of a tile and the cut surface (at the
        tile centre, before curvature and tilt).
    focus_depth_um, rayleigh_range_um : float
        Focal plane depth below the top of the tile and Rayleigh range of the
        confocal beam profile ``1 / (1 + ((z - focus) / rayleigh)^2)``.
    brain_semi_axes_mm : (float, float, float)
        Semi-axes ``(z, x, y)`` of the ellipsoidal brain.
    brain_top_mm : float
        Depth of the top of the brain below slice 0's cut surface.
    brain_centre_mm : (float, float)
        Stage position ``(x, y)`` of the brain centre (slice 0 frame).
    texture_spacing_um : float
        Lateral grid spacing of the fibre texture (the axial spacing is twice
        the axial resolution).
    truth_resolution_um : float
        Isotropic voxel of the ground-truth volume.
    n_extra : int
        Galvo fly-back A-lines per B-scan (0 = no band).
    galvo_band_contrast : float
        1 = a band at the darkfield level (dark, obvious); 0 = the band holds
        the B-scan's mean (invisible on uniform tissue); negative = bright band.
    galvo_faint_slices : tuple of int
        Slices whose band has contrast 0 (too faint to detect: a detector
        must not claim it), whatever ``galvo_band_contrast`` says.
    n_repeat, n_bin_files : int
        Repeated B-scans per position; ``.bin`` files per tile.
    flat_field_strength : float
        Vignetting depth: the flat-field goes from 1 near the optical centre
        down to ``1 - flat_field_strength`` in the far corner.
    darkfield : float
        Additive offset of every recorded sample (the BaSiC darkfield).
    curvature_vox : float
        Focal-curvature bowl: the surface (and the whole image) sits this many
        axial voxels deeper in the tile corners than at the tile centre.
    surface_tilt_vox : float
        Largest depth change, in axial voxels, of a cut surface across the
        mosaic (a small random tilt per slice).
    speckle_sigma : float
        Log-standard deviation of the multiplicative log-normal speckle.
    noise_sigma : float
        Standard deviation of the additive Gaussian detector noise.
    jitter_px : float
        Stage jitter: each tile's true position differs from the commanded one
        by up to this many pixels per axis (uniform), not reported.
    drift_step_px : float
        Standard deviation per slice and axis of the tissue's XY drift (a
        random walk, 0 on slice 0).
    rotation_step_deg, rotation_max_deg : float
        Random walk of the tissue's in-plane rotation, clipped to the maximum
        (0 on slice 0).
    origin_step_mm : float
        Standard deviation per slice and axis of changes of the commanded grid
        origin (reported, as ``shifts_xy.csv`` sees them).
    glitch_slice : int or None
        Slice whose reported stage positions all jump by ``glitch_mm`` (random
        direction) while the stage really stays put; the next slice reports
        normal positions again (a round-trip spike in the shifts).
    rehoming_slice : int or None
        From this slice on, the grid origin genuinely moves by ``rehoming_mm``
        (random direction): reported and imaged positions both move.
    missing_slice : int or None
        Slice cut but never imaged: no folder is written.
    degraded_slice : int or None
        Slice imaged with a lateral blur of ``degraded_blur_px``, a signal gain
        of ``degraded_gain`` and ``degraded_noise_factor`` times the noise.
    tile_holes : tuple of (int, int, int)
        ``(slice, ix, iy)`` tiles never acquired (no folder). Keep row and
        column 0 of a slice complete: the reader shifts indices to start at 0.
    old_layout : bool
        Write every tile folder directly in the output folder.
    """

    n_slices: int = 6
    grid_shape: tuple[int, int] = (2, 2)
    tile_shape: tuple[int, int, int] = (32, 48, 48)
    pixel_size_um: float = 20.0
    axial_resolution_um: float = 8.0
    overlap_fraction: float = 0.2
    slice_thickness_um: float = 80.0
    water_depth_um: float = 40.0
    focus_depth_um: float = 100.0
    rayleigh_range_um: float = 120.0
    brain_semi_axes_mm: tuple[float, float, float] = (0.5, 0.5, 0.4)
    brain_top_mm: float = 0.03
    brain_centre_mm: tuple[float, float] = (3.0, 4.0)
    texture_spacing_um: float = 20.0
    truth_resolution_um: float = 25.0
    n_extra: int = 8
    galvo_band_contrast: float = 0.9
    galvo_faint_slices: tuple[int, ...] = ()
    n_repeat: int = 2
    n_bin_files: int = 2
    flat_field_strength: float = 0.35
    darkfield: float = 0.01
    curvature_vox: float = 2.0
    surface_tilt_vox: float = 1.0
    speckle_sigma: float = 0.3
    noise_sigma: float = 0.003
    jitter_px: float = 1.5
    drift_step_px: float = 1.5
    rotation_step_deg: float = 0.3
    rotation_max_deg: float = 1.0
    origin_step_mm: float = 0.01
    glitch_slice: int | None = 2
    glitch_mm: float = 0.7
    rehoming_slice: int | None = 4
    rehoming_mm: float = 0.6
    missing_slice: int | None = None
    degraded_slice: int | None = None
    degraded_blur_px: float = 2.0
    degraded_gain: float = 0.3
    degraded_noise_factor: float = 3.0
    tile_holes: tuple[tuple[int, int, int], ...] = ()
    old_layout: bool = False

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def slice_ids(self) -> tuple[str, ...]:
        """Ids of every slice cut, the missing one included (``"00"``, ``"01"``, ...)."""
        return tuple(f"{k:02d}" for k in range(self.n_slices))

    def to_dict(self) -> dict:
        """The fields as JSON-ready values (tuples become lists)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = [list(v) if isinstance(v, tuple) else v for v in value] if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, values: dict) -> SynthConfig:
        """Inverse of :meth:`to_dict` (lists become tuples); unknown keys raise."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ParameterError(f"unknown synth config key(s) {unknown}; known keys: {sorted(known)}")

        def _tuple(v):
            return tuple(_tuple(x) for x in v) if isinstance(v, list) else v


        return cls(**{k: _tuple(v) for k, v in values.items()})


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ParameterError(message)


def _validate(c: SynthConfig) -> None:
    _check(1 <= c.n_slices <= 100, f"n_slices = {c.n_slices}: expected 1..100 (slice ids have two digits)")
    _check(len(c.grid_shape) == 2 and min(c.grid_shape) >= 1, f"grid_shape = {c.grid_shape}: expected two counts >= 1")
    _check(len(c.tile_shape) == 3 and min(c.tile_shape) >= 4, f"tile_shape = {c.tile_shape}: expected (n_z, nx, ny), each >= 4")
    for name in ("pixel_size_um", "axial_resolution_um", "slice_thickness_um", "rayleigh_range_um", "texture_spacing_um", "truth_resolution_um"):
        value = getattr(c, name)
        _check(math.isfinite(value) and value > 0, f"{name} = {value}: expected a positive number")
    _check(0 <= c.overlap_fraction < 0.5, f"overlap_fraction = {c.overlap_fraction}: expected 0 <= value < 0.5")
    depth_um = c.tile_shape[0] * c.axial_resolution_um
    _check(0 <= c.water_depth_um < depth_um / 2, f"water_depth_um = {c.water_depth_um}: expected 0 <= value < half the tile depth ({depth_um / 2:g} µm)")
    _check(min(c.brain_semi_axes_mm) > 0, f"brain_semi_axes_mm = {c.brain_semi_axes_mm}: expected three positive semi-axes")
    _check(c.n_extra >= 0, f"n_extra = {c.n_extra}: expected >= 0")
    _check(c.n_repeat >= 1 and c.n_bin_files >= 1, f"n_repeat = {c.n_repeat}, n_bin_files = {c.n_bin_files}: expected >= 1")
    _check(c.n_bin_files <= c.tile_shape[2] * c.n_repeat, f"n_bin_files = {c.n_bin_files}: more files than recorded B-scans ({c.tile_shape[2] * c.n_repeat})")
    _check(0 <= c.flat_field_strength < 1, f"flat_field_strength = {c.flat_field_strength}: expected 0 <= value < 1")
    _check(0 < c.degraded_gain <= 1, f"degraded_gain = {c.degraded_gain}: expected 0 < value <= 1")
    for name in ("darkfield", "curvature_vox", "surface_tilt_vox", "speckle_sigma", "noise_sigma", "jitter_px", "drift_step_px",
                 "rotation_step_deg", "rotation_max_deg", "origin_step_mm", "glitch_mm", "rehoming_mm", "degraded_blur_px"):
        value = getattr(c, name)
        _check(math.isfinite(value) and value >= 0, f"{name} = {value}: expected a number >= 0")
    for name in ("glitch_slice", "rehoming_slice", "missing_slice", "degraded_slice"):
        value = getattr(c, name)
        _check(value is None or 0 <= value < c.n_slices, f"{name} = {value}: expected None or a slice index in 0..{c.n_slices - 1}")
    if c.glitch_slice is not None:
        _check(0 < c.glitch_slice < c.n_slices - 1, f"glitch_slice = {c.glitch_slice}: a glitch needs a slice before and after it (1..{c.n_slices - 2})")
    for k in c.galvo_faint_slices:
        _check(0 <= k < c.n_slices, f"galvo_faint_slices holds {k}: expected slice indices in 0..{c.n_slices - 1}")
    for s, ix, iy in c.tile_holes:
        _check(0 <= s < c.n_slices and 0 <= ix < c.grid_shape[0] and 0 <= iy < c.grid_shape[1],
               f"tile hole {(s, ix, iy)} is outside the acquisition ({c.n_slices} slices of {c.grid_shape[0]}x{c.grid_shape[1]} tiles)")


PRESETS: dict[str, SynthConfig] = {
    "tiny": SynthConfig(),
    "small": SynthConfig(
        n_slices=8,
        grid_shape=(4, 4),
        tile_shape=(64, 96, 96),
        pixel_size_um=12.0,
        slice_thickness_um=200.0,
        water_depth_um=48.0,
        focus_depth_um=160.0,
        rayleigh_range_um=200.0,
        brain_semi_axes_mm=(1.2, 1.4, 1.15),
        brain_top_mm=0.08,
        texture_spacing_um=16.0,
        n_extra=12,
        n_repeat=1,
        n_bin_files=1,
        curvature_vox=3.0,
        glitch_slice=2,
        glitch_mm=0.65,
        missing_slice=4,
        rehoming_slice=5,
        degraded_slice=6,
    ),
    "medium": SynthConfig(
        n_slices=20,
        grid_shape=(6, 6),
        tile_shape=(80, 128, 128),
        pixel_size_um=10.0,
        slice_thickness_um=200.0,
        water_depth_um=48.0,
        focus_depth_um=200.0,
        rayleigh_range_um=250.0,
        brain_semi_axes_mm=(2.3, 2.6, 2.1),
        brain_top_mm=0.1,
        texture_spacing_um=20.0,
        n_extra=16,
        n_repeat=1,
        n_bin_files=2,
        curvature_vox=3.0,
        glitch_slice=5,
        glitch_mm=0.65,
        missing_slice=9,
        rehoming_slice=12,
        degraded_slice=15,
    ),
}


def preset(name: PresetName) -> SynthConfig:
    """The configuration of a named preset.

    Parameters
    ----------
    name : {"tiny", "small", "medium"}

    Returns
    -------
    SynthConfig

    Raises
    ------
    ParameterError
        For an unknown name.

    Examples
    --------
    >>> from dataclasses import replace
    >>> from serialoct.synth import preset
    >>> config = replace(preset("tiny"), missing_slice=3)
    >>> config.tile_shape, config.grid_shape
    ((32, 48, 48), (2, 2))
    """
    if name not in PRESETS:
        raise ParameterError(f"unknown synth preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def with_overrides(config: SynthConfig, **changes) -> SynthConfig:
    """``dataclasses.replace`` with a clear error for an unknown field name."""
    known = {f.name for f in fields(SynthConfig)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ParameterError(f"unknown synth config field(s) {unknown}")
    return replace(config, **changes)
