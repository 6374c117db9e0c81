"""Beam-profile correction: the focal depth profile, estimated in agarose and divided out.

The confocal gate of the objective weights every A-line by the same function
of depth, brightest at the focus. Agarose, which embeds the brain, is a
homogeneous weak scatterer: below its surface it records

    I(z) - floor = A * B(z) * exp(-2 mu_a (z - s) dz)

(``B`` the beam profile, ``mu_a`` the agarose attenuation, ``s`` the surface,
``dz`` the axial voxel), so pooling agarose columns gives ``B`` times a slow
exponential. This runs on a stitched slice after the focal-curvature fix, when
the focus lies at one depth index everywhere and ``B`` depends on ``z`` only.

Two models (``model=``):

``"confocal"`` (default)
    Fit ``log P(z) = a - 2 mu_a dz z - log(1 + ((z - z_f) / z_R)^2)`` to the
    pooled profile ``P``: the Lorentzian axial response of a Gaussian beam
    (focus ``z_f``, Rayleigh range ``z_R``) and the agarose attenuation are
    told apart by their shapes. The correction divides by the Lorentzian
    only: the tissue's attenuation, agarose's included, is left to the
    attenuation compensation that follows the interface crop.
``"empirical"``
    The pooled agarose profile itself, smoothed and normalised ("the depth
    profile from agarose columns, flattened"): no model, so it also removes
    a sensitivity roll-off, but it folds the agarose attenuation in and
    needs agarose down to the bottom of the field.

References
----------
Gaussian-beam confocal axial response: Izatt J. A., Hee M. R., Owen G. M.,
Swanson E. A., Fujimoto J. G., "Optical coherence microscopy in scattering
media", Opt. Lett. 19(8), 590-592 (1994), doi:10.1364/OL.19.000590.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np

from serialoct.compute import Backend, get_backend, to_numpy
from serialoct.correct.interface import SurfaceEstimate, sample_alines

__all__ = ["BeamProfile", "select_agarose_columns", "estimate_beam_profile", "fix_beam_profile"]

log = logging.getLogger(__name__)

BeamModel = Literal["confocal", "empirical"]
_MODELS = ("confocal", "empirical")

#: Voxels skipped below the surface before the profile is used (the surface voxel is partly water).
_SKIP_VOX = 2
#: Voxels averaged below the surface to measure a column's scattering level.
_LEVEL_VOX = 6
#: Two materials are told apart when their log-levels differ by at least log(2).
_MIN_SEPARATION = float(np.log(2.0))
#: A column whose brightest smoothed voxel exceeds its near-surface level by this factor times the
#: typical agarose column has something brighter (brain) below the agarose: left out.
_MAX_RISE = 1.5
#: Same for the mean of the deeper half of the column over the upper half: tighter, because a
#: half-column mean is precise (speckle averages over tens of voxels) and dim brain deep down
#: hardly moves the brightest voxel.
_MAX_DEEP_RATIO = 1.25
#: Surfaces deeper than this percentile of the agarose columns' are left out, so that every
#: pooled column covers the same depths.
_SURFACE_PERCENTILE = 95.0
_MIN_COLUMNS = 100
_EMPIRICAL_SMOOTH_VOX = 1.0


@dataclass(frozen=True)
class BeamProfile:
    """The axial beam profile of a slice.

    Attributes
    ----------
    profile : ndarray, shape (Z,), float32
        Relative sensitivity per depth index, maximum 1; all ones when
        ``reliable`` is False.
    model : {"confocal", "empirical"}
    focus_vox, rayleigh_vox : float
        Fitted focal index and Rayleigh range in voxels (NaN for "empirical").
    agarose_attenuation_per_mm : float
        Fitted ``mu_a`` (NaN for "empirical").
    n_columns : int
        Agarose A-lines pooled.
    fit_rms : float
        RMS of the log-residual of the pooled profile against the model
        (relative error; for "empirical", against its smoothed self).
    first_vox : int
        First depth index the pooled data covered; above it the profile is
        the model's extrapolation ("confocal") or held constant ("empirical").
    reliable : bool
    reason : str
        Why the profile is unreliable ("" when reliable).
    """

    profile: np.ndarray
    model: str
    focus_vox: float
    rayleigh_vox: float
    agarose_attenuation_per_mm: float
    n_columns: int
    fit_rms: float
    first_vox: int
    reliable: bool
    reason: str = ""


def _otsu(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of a 1-D sample (maximum between-class variance)."""
    hist, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres) / np.maximum(w0, 1)
    m1 = ((hist * centres).sum() - np.cumsum(hist * centres)) / np.maximum(w1, 1)
    return float(centres[np.argmax(w0 * w1 * (m0 - m1) ** 2)])


def _near_surface_level(volume, depth_vox, floor, backend):
    start = np.where(np.isfinite(depth_vox), depth_vox, 0.0) + _SKIP_VOX
    return sample_alines(volume, start, _LEVEL_VOX, backend=backend).mean(axis=0) - np.float32(floor)


def select_agarose_columns(volume: np.ndarray, surface: SurfaceEstimate, *, backend: Backend | None = None) -> np.ndarray:
    """A-lines that see agarose only, from the surface down.

    Parameters
    ----------
    volume : ndarray, shape (Z, rows, cols)
        A stitched slice (after the focal-curvature fix), water at the top.
    surface : SurfaceEstimate
        Its :func:`~serialoct.correct.interface.detect_surface`.
    backend : Backend, optional

    Returns
    -------
    ndarray, shape (rows, cols), bool

    Notes
    -----
    Agarose is the weaker of the two scatterers: the log of each A-line's
    level just below its surface is split in two by Otsu's threshold
    (doi:10.1109/TSMC.1979.4310076) and the dim class kept, unless the two
    classes differ by less than a factor 2 (one material only: all kept).
    A column where weak agarose covers brighter brain has a larger maximum
    than its near-surface level, and a brighter lower half than upper half;
    columns beyond 1.5 times (maximum) or 1.25 times (halves) the median
    ratio of the class are dropped.
    """
    valid = surface.valid
    if not valid.any():
        return valid
    level = _near_surface_level(volume, surface.depth_vox, surface.water_level, backend)
    usable = valid & (level > 0)
    if not usable.any():
        return usable
    log_level = np.log(np.where(usable, level, 1.0))
    threshold = _otsu(log_level[usable])
    dim = usable & (log_level < threshold)
    bright = usable & ~dim
    if not dim.any() or not bright.any() or log_level[bright].mean() - log_level[dim].mean() < _MIN_SEPARATION:
        dim = usable
    rise = surface.contrast / np.where(usable, level, 1.0)
    candidates = dim & (rise <= _MAX_RISE * np.median(rise[dim]))
    if not candidates.any():
        return candidates
    deep = _deep_ratio(volume, surface.depth_vox, surface.water_level, backend)
    return candidates & (deep <= _MAX_DEEP_RATIO * np.median(deep[candidates]))


def _deep_ratio(volume, depth_vox, floor, backend):
    """Mean signal of the lower half of each column below its surface over that of the upper half."""
    xp = (backend or get_backend(False)).xp
    v = xp.asarray(volume, dtype=xp.float32)
    n_z = v.shape[0]
    total = xp.zeros((n_z + 1,) + tuple(v.shape[1:]), dtype=xp.float32)  # total[i] = sum of planes < i
    for i in range(n_z):
        xp.add(total[i], v[i], out=total[i + 1])
    top = xp.asarray(np.clip(np.nan_to_num(np.ceil(depth_vox), nan=0.0) + _SKIP_VOX, 0, n_z - 2).astype(np.int64))
    mid = (top + n_z) // 2

    def mean(a, b):
        part = xp.take_along_axis(total, b[None], axis=0)[0] - xp.take_along_axis(total, a[None], axis=0)[0]
        return part / xp.maximum(b - a, 1) - xp.float32(floor)

    upper = mean(top, mid)
    return to_numpy(mean(mid, xp.full_like(mid, n_z)) / xp.where(upper > 0, upper, xp.float32(np.inf)))


def _pooled_median(volume, columns, first: int, floor: float, level: np.ndarray, xp) -> np.ndarray:
    """Per depth from ``first`` on, the median over the pooled A-lines of ``(volume - floor) / level``, on the host.

    On NumPy one depth at a time (gather the columns, scale, partition in
    place): the same values as ``np.median`` over a (depth, columns) copy, in
    0.14 s instead of 0.35 s for 252,856 columns of a ``medium`` slice.
    """
    floor, level = xp.float32(floor), xp.asarray(level, dtype=xp.float32)
    if xp is not np:
        data = xp.asarray(volume, dtype=xp.float32)[first:, xp.asarray(columns)]
        return to_numpy(xp.median((data - floor) / level[None], axis=1))
    planes = np.asarray(volume, dtype=np.float32).reshape(volume.shape[0], -1)
    index = np.flatnonzero(np.asarray(columns).ravel())
    half = index.size // 2
    kth = half if index.size % 2 else (half - 1, half)
    row = np.empty(index.size, np.float32)
    pooled = np.empty(volume.shape[0] - first, np.float32)
    for i, plane in enumerate(planes[first:]):
        np.take(plane, index, out=row)
        row -= floor
        row /= level
        row.partition(kth)
        pooled[i] = row[half] if index.size % 2 else np.mean(row[half - 1 : half + 1])  # np.median's middle values and mean
    return pooled


def _unreliable(n_z: int, model: str, n_columns: int, reason: str) -> BeamProfile:
    log.warning("beam profile not estimated: %s", reason)
    nan = float("nan")
    return BeamProfile(np.ones(n_z, np.float32), model, nan, nan, nan, n_columns, nan, 0, False, reason)


def estimate_beam_profile(
    volume: np.ndarray,
    surface: SurfaceEstimate,
    *,
    axial_um: float,
    agarose: np.ndarray | None = None,
    model: BeamModel = "confocal",
    min_columns: int = _MIN_COLUMNS,
    backend: Backend | None = None,
) -> BeamProfile:
    """Estimate the axial beam profile from a slice's agarose columns.

    Parameters
    ----------
    volume : ndarray, shape (Z, rows, cols)
        A stitched slice after the focal-curvature fix (or a lateral
        subsample of one, ``volume[:, ::k, ::k]``, for a large slice), water
        at the top.
    surface : SurfaceEstimate
        :func:`~serialoct.correct.interface.detect_surface` of the same array.
    axial_um : float
        Axial voxel size (for the attenuation in 1/mm).
    agarose : ndarray, shape (rows, cols), bool, optional
        The A-lines to pool; :func:`select_agarose_columns` when None.
    model : {"confocal", "empirical"}
        See the module docstring.
    min_columns : int
        Fewer agarose A-lines than this gives an unreliable, flat profile.
    backend : Backend, optional

    Returns
    -------
    BeamProfile

    Notes
    -----
    Each pooled column is divided by its own near-surface level (removing
    reflectivity and illumination differences) and the pooled profile is the
    per-depth median over columns (robust to the few columns with brain deep
    below the agarose; speckle only scales a median, which the normalisation
    removes). Only depths below every pooled column's surface are used.

    Examples
    --------
    >>> from serialoct.correct.curvature import fix_focal_curvature
    >>> from serialoct.correct.interface import detect_surface
    >>> from serialoct.synth import plan_acquisition, preset, render_tile
    >>> plan = plan_acquisition(preset("tiny"), seed=0)  # focus 100 µm = 12.5 voxels deep
    >>> tile = fix_focal_curvature(render_tile(plan, "01", 0, 0, flat_field=False), plan.curvature_vox)
    >>> beam = estimate_beam_profile(tile, detect_surface(tile), axial_um=8.0)
    >>> beam.reliable, round(beam.focus_vox)
    (True, 12)
    """
    if model not in _MODELS:
        raise ValueError(f"model = {model!r}: expected one of {', '.join(_MODELS)}")
    if axial_um <= 0:
        raise ValueError(f"axial_um = {axial_um}: expected a positive voxel size")
    n_z = volume.shape[0]
    columns = select_agarose_columns(volume, surface, backend=backend) if agarose is None else np.asarray(agarose, bool) & surface.valid
    if columns.sum() < min_columns:
        return _unreliable(n_z, model, int(columns.sum()), f"{int(columns.sum())} agarose A-lines, need {min_columns}")
    depth = surface.depth_vox[columns]
    deepest = float(np.percentile(depth, _SURFACE_PERCENTILE))
    first = int(np.ceil(deepest)) + _SKIP_VOX
    if n_z - first < 8:
        return _unreliable(n_z, model, int(columns.sum()), f"agarose surfaces reach index {deepest:.1f}: fewer than 8 voxels below them")
    columns &= np.where(np.isfinite(surface.depth_vox), surface.depth_vox, np.inf) <= deepest
    level = _near_surface_level(volume, surface.depth_vox, surface.water_level, backend)[columns]
    pooled = _pooled_median(volume, columns, first, surface.water_level, level, (backend or get_backend(False)).xp)
    z = np.arange(first, n_z, dtype=np.float64)
    usable = pooled > 1e-6 * pooled.max()
    if usable.sum() < 8:
        return _unreliable(n_z, model, int(columns.sum()), "the pooled agarose profile is at the noise floor")
    z, values = z[usable], np.log(pooled[usable])
    if model == "empirical":
        return _empirical(z, values, n_z, first, int(columns.sum()))
    return _confocal(z, values, n_z, first, int(columns.sum()), axial_um)


def _confocal(z: np.ndarray, values: np.ndarray, n_z: int, first: int, n_columns: int, axial_um: float) -> BeamProfile:
    from scipy.optimize import least_squares

    def residual(params):
        a, slope, focus, rayleigh = params
        return a - slope * z - np.log1p(((z - focus) / rayleigh) ** 2) - values

    start = [values.max(), 0.0, float(z[np.argmax(values)]), n_z / 2.0]
    bounds = ([-np.inf, 0.0, -2.0 * n_z, 0.5], [np.inf, np.inf, 3.0 * n_z, 100.0 * n_z])
    fit = least_squares(residual, start, bounds=bounds, x_scale="jac")
    _, slope, focus, rayleigh = fit.x
    rms = float(np.sqrt(np.mean(fit.fun**2)))
    if not fit.success:
        return _unreliable(n_z, "confocal", n_columns, f"the confocal fit did not converge ({fit.message})")
    profile = 1.0 / (1.0 + ((np.arange(n_z) - focus) / rayleigh) ** 2)
    mu = slope / (2.0 * axial_um / 1000.0)
    log.info("beam profile: focus %.1f vox, Rayleigh range %.1f vox, agarose attenuation %.2f/mm from %d A-lines (fit %.1f%% RMS)",
             focus, rayleigh, mu, n_columns, 100 * rms)
    return BeamProfile((profile / profile.max()).astype(np.float32), "confocal", float(focus), float(rayleigh), float(mu), n_columns, rms, first, True)


def _empirical(z: np.ndarray, values: np.ndarray, n_z: int, first: int, n_columns: int) -> BeamProfile:
    from scipy.ndimage import gaussian_filter1d

    smooth = gaussian_filter1d(values, _EMPIRICAL_SMOOTH_VOX, mode="nearest")
    rms = float(np.sqrt(np.mean((smooth - values) ** 2)))
    profile = np.interp(np.arange(n_z), z, np.exp(smooth))  # constant above the first covered depth
    nan = float("nan")
    log.info("beam profile: empirical agarose profile from %d A-lines", n_columns)
    return BeamProfile((profile / profile.max()).astype(np.float32), "empirical", nan, nan, nan, n_columns, rms, first, True)


def fix_beam_profile(
    volume: np.ndarray,
    profile: np.ndarray,
    *,
    noise_floor: float = 0.0,
    max_gain: float = 10.0,
    backend: Backend | None = None,
) -> np.ndarray:
    """Divide the beam profile out of the signal above the noise floor.

    Parameters
    ----------
    volume : ndarray, shape (Z, rows, cols)
        A slice or any block of whole A-lines of one (depth-only operation).
    profile : ndarray, shape (Z,)
        :attr:`BeamProfile.profile`.
    noise_floor : float
        Intensity of no signal (:attr:`SurfaceEstimate.water_level`); it is
        kept as it is rather than amplified with the signal.
    max_gain : float
        Largest factor applied (far from the focus the profile is small and
        the signal mostly noise).
    backend : Backend, optional

    Returns
    -------
    ndarray, shape (Z, rows, cols), float32, on the host
        ``(volume - floor) / max(profile, 1 / max_gain) + floor``.
    """
    if max_gain < 1:
        raise ValueError(f"max_gain = {max_gain}: expected >= 1")
    profile = np.asarray(profile, dtype=np.float32)
    if profile.shape != (volume.shape[0],):
        raise ValueError(f"profile of shape {profile.shape} does not match the depth of a volume of shape {volume.shape}")
    xp = (backend or get_backend(False)).xp
    gain = xp.asarray(1.0 / np.maximum(profile, np.float32(1.0 / max_gain)))[:, None, None]
    floor = xp.float32(noise_floor)
    out = xp.asarray(volume, dtype=xp.float32) - floor
    out *= gain
    out += floor
    return to_numpy(out)
