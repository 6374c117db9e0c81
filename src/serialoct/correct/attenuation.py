"""Depth-resolved attenuation: estimate it per voxel and compensate the decay, with a bounded gain.

Light reaching depth ``z`` has been attenuated by ``exp(-2 * integral of mu)``
(there and back), so deep tissue looks dark whatever it is. Following
Vermeer et al. (2014), every photon entering voxel ``i`` is eventually
detected in voxel ``i`` or below, so the light reaching voxel ``i`` is
proportional to the signal that remains from there down,
``S_i = sum_{j >= i} J_j`` (``J`` = intensity above the noise floor), and

    mu_i = ln(S_i / S_{i+1}) / (2 dz)                  (attenuation, 1/mm)
    J_i exp(2 dz (sum_{j<i} mu_j + mu_i / 2)) = J_i S_0 / sqrt(S_i S_{i+1})

(the sum telescopes; the half voxel puts the exponent at the voxel centre,
which makes the compensation exact for a homogeneous medium). The
compensated intensity needs one reverse cumulative sum and a few
element-wise operations per voxel: no logarithm, no exponential, no fit.

Three practical limits of the method are handled explicitly:

- the end of the data: the interface crop flattens the surface to the top
  and fills each A-line below the end of its recording with exact zeros
  (a voxel it would have to blend with them included), so A-lines end at
  different depths. Each A-line's data ends before its padding
  (:func:`data_end`); the sums and the tail windows stop there. A partial
  last voxel counted as data (the crop wrote one, until 2026-12-04, in the
  deepest plane of the A-lines with the shallowest surfaces) darkened the
  last window: the decay looked steep and the tail came out at 0.3-0.5 of
  the truth (``medium`` synthetic acquisition). Counting the padding as signal
  ``0 - floor`` made the tail too small and over-compensated the bottom of
  every padded A-line (small preset, six slices: the compensated intensity
  over the phantom's reflectivity rose by 9-25 % from 60 to 300 µm deep,
  and by 8-39 % to 380 µm; after the fix within -8..+4 % to 300 µm);
- the tail: the A-line ends before the light is used up, and the signal
  beyond the last voxel is missing from every ``S_i``, which inflates ``mu``
  near the bottom. It is extrapolated from the decay of the last two windows
  of each A-line (:func:`estimate_tail`), the decay rate smoothed laterally
  over a wider scale than the signal level. What lies
  below the data is unseen, so this is the largest error left at depth: on
  the small preset the true tail would raise the NCC of the compensated
  slices with the phantom's reflectivity at 200-400 µm from about 0.7 to
  0.77-0.89 (slices 05 and 01);
- the noise floor: near the bottom the signal sinks into noise and ``S_i``
  towards 0; the gain ``S_0 / S_i`` is capped at ``max_gain``.

Every operation is along depth, so a slice can be streamed in blocks of whole
A-lines (all z, a block of rows and columns): compute the tail of the whole
slice once (it reads the bottom ``2 * window_vox`` data voxels of every
A-line: pass the whole slice, or enough of its bottom to hold them above the
padding), then::

    tail = estimate_tail(volume, axial_um=dz_um, window_vox=w)
    for rows, cols in blocks:
        block = compensate_attenuation(volume[:, rows, cols], axial_um=dz_um, tail=tail[rows, cols])
        out[:, rows, cols] = block.volume

References
----------
Vermeer K. A., Mo J., Weda J. J. A., Lemij H. G., de Boer J. F.,
"Depth-resolved model-based reconstruction of attenuation coefficients in
optical coherence tomography", Biomed. Opt. Express 5(1), 322-337 (2014),
doi:10.1364/BOE.5.000322.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from serialoct.compute import Backend, get_backend, to_numpy

__all__ = ["AttenuationCompensation", "REFERENCE_SNR", "data_end", "estimate_tail", "compensate_attenuation", "estimate_attenuation"]

log = logging.getLogger(__name__)

_WINDOW_VOX = 8
#: Lateral smoothing of the tail's window sums. The tail is the least certain term of every gain
#: below it (what lies under the data is unseen), so it is smoothed over about the size of the
#: tissue's structures rather than its speckle: on the small preset (12 µm pixels) the NCC of the
#: compensated slices with the phantom's reflectivity at 200-400 µm (mean of six slices) was 0.662
#: with sigma 2 px, 0.676 with 4, 0.684 with 6 and 0.685 with 8 (72 µm: 6 px of 12 µm).
_TAIL_SIGMA_UM = 72.0
#: Lateral smoothing of the two window sums whose ratio is the decay rate of the tail. The
#: extrapolation ``r / (1 - r)`` magnifies any error of a slow decay ``r`` (agarose: r = 0.93
#: over 8 voxels of 12 µm, where 1 % of r is 13 % of the tail), and the texture and speckle
#: of two 8-voxel windows leave percents: the rate is smoothed over twice the level's scale.
#: Volume NCC of the reconstruction test (small preset, 12 µm; seeds 0 and 1) with the level
#: at 6 px and the rate at 6 / 9 / 12 / 16 / 24 px: 0.841 / 0.849 / 0.851 / 0.845 / 0.824 and
#: 0.849 / 0.860 / 0.861 / 0.858 / 0.843 (wider mixes the agarose's slow decay into the brain's
#: edge); both at 12 px: 0.838 and 0.851; level at 3 px: 0.850 and 0.858. 144 µm: 12 px of 12 µm.
_DECAY_SIGMA_UM = 144.0
#: Signal-to-noise ratio of an A-line's recorded signal from a voxel down (its sum above the floor, without the
#: extrapolated tail, over the water noise of that many voxels, ``noise_sigma * sqrt(n)``) above which the voxel counts
#: in :attr:`AttenuationCompensation.reference_depth`. Below, a dim or noisy slice's compensated voxels are noise
#: lifted by the gain: the degraded slice of the ``small`` synthetic acquisition had every one of its brightest
#: 0.1 % voxels 30-40 planes deep (of 40), and its 99.9th percentile moved by 25 % when the surface moved by 5 µm.
#: Volume NCC of the reconstruction test with the surface moved by 0 / -0.2 / +0.2 voxel: 0.850 / 0.855 / 0.830 for
#: every voxel, 0.850 / 0.855 / 0.841 with 3, 0.854 / 0.855 / 0.852 with 15 (the degraded slice's scale within 1 %).
#: A gain bound instead (statistics above the depth where the gain passes 10) was as stable on ``small`` but moved
#: the scales of ``medium``'s first slices, whose bright brain lies deep under agarose at a high gain and a high SNR.
REFERENCE_SNR = 15.0
#: A-lines per chunk on the CPU: a plane of a chunk (128 KiB in float32) stays in the L2 cache
#: through the dozen operations applied to it.
_CHUNK_ALINES = 32768


@dataclass(frozen=True)
class AttenuationCompensation:
    """A block with its attenuation decay removed.

    Attributes
    ----------
    volume : ndarray, shape (Z, rows, cols), float32
        ``(I - floor) * gain + floor``; the zero padding below the data stays 0.
    gain_limited_fraction : float
        Share of the data voxels (:func:`data_end`) whose gain reached
        ``max_gain`` (signal in the noise).
    max_gain_applied : float
        Largest gain applied.
    reference_depth : ndarray, shape (rows, cols), int32
        Leading data voxels of each A-line above which the recorded signal
        still stands clear of the noise (:data:`REFERENCE_SNR`): normalisation
        takes the slice's statistics from them. Every data voxel when the
        noise is not known.
    """

    volume: np.ndarray
    gain_limited_fraction: float
    max_gain_applied: float
    reference_depth: np.ndarray


def data_end(volume, *, backend: Backend | None = None) -> np.ndarray:
    """How many leading voxels of each A-line are whole recorded data.

    Parameters
    ----------
    volume : ndarray, shape (Z, rows, cols)
        A-lines after the interface crop, which fills every A-line below the
        end of its recording with exact zeros.
    backend : Backend, optional

    Returns
    -------
    ndarray, shape (rows, cols), int64, on the backend (NumPy or CuPy)
        One past the A-line's last non-zero voxel; 0 for an all-zero A-line.

    Notes
    -----
    A recorded intensity is never exactly 0 in practice (the darkfield and
    the detector noise keep it above), so exact zeros at the bottom are
    padding, not signal. The crop pads with whole voxels
    (:func:`~serialoct.correct.interface.sample_alines`): no partial voxel
    sits above the padding.
    """
    xp = (backend or get_backend(False)).xp
    return _data_end(xp, xp.asarray(volume))


def _data_end(xp, v):
    end = xp.zeros(v.shape[1:], dtype=xp.int64)
    for i in range(v.shape[0]):  # end = index of the last non-zero voxel + 1, plane by plane (no (Z, rows, cols) temporary)
        end = xp.where(v[i] != 0, i + 1, end)
    return end


def estimate_tail(
    bottom: np.ndarray,
    *,
    axial_um: float,
    window_vox: int = _WINDOW_VOX,
    noise_floor: float = 0.0,
    min_attenuation_per_mm: float = 0.2,
    lateral_sigma_um: float = _TAIL_SIGMA_UM,
    decay_sigma_um: float = _DECAY_SIGMA_UM,
    pixel_um: float | None = None,
    backend: Backend | None = None,
) -> np.ndarray:
    """The signal an A-line would record below its last voxel, extrapolated from its decay.

    Parameters
    ----------
    bottom : ndarray, shape (Zb, rows, cols), Zb >= 2 * window_vox
        The deepest planes of a slice, with any zero padding below the data
        (:func:`data_end`): ``volume[-2 * window_vox:]`` suffices when no
        A-line is padded; otherwise pass enough planes to hold
        ``2 * window_vox`` data voxels above the padding (the whole slice is
        simplest). An A-line with fewer data voxels uses two windows of half
        its data each.
    axial_um : float
        Axial voxel size.
    window_vox : int
        Length of each of the two windows compared.
    noise_floor : float
        Intensity of no signal.
    min_attenuation_per_mm : float
        The decay is taken to be at least this fast: it bounds the tail
        (a flat or rising end would otherwise extrapolate to infinity).
    lateral_sigma_um : float
        Gaussian smoothing (µm) of the last window's sum, the tail's level
        (its speckle is not a property of the tissue); 0 to skip. When
        streaming, compute the tail on the whole slice, not per block.
    decay_sigma_um : float
        Gaussian smoothing (µm) of both window sums before their ratio, the
        decay rate; 0 to skip.
    pixel_um : float, optional
        Lateral pixel size; default ``axial_um`` (isotropic voxels, as the
        reconstruction's).
    backend : Backend, optional

    Returns
    -------
    ndarray, shape (rows, cols), float32, on the host
        The signal below the A-line's last data voxel (:func:`data_end`):
        ``s_B * r / (1 - r)``, the geometric continuation of the last window
        sum ``s_B`` (smoothed by ``lateral_sigma_um``), with ``r = s_B / s_A``
        the ratio to the window before (both smoothed by ``decay_sigma_um``),
        clipped to ``[0, exp(-2 mu_min dz window)]``; 0 for an A-line
        without data.
    """
    if window_vox < 1 or bottom.ndim != 3 or bottom.shape[0] < 2 * window_vox:
        raise ValueError(f"bottom of shape {bottom.shape}: expected (Z, rows, cols) with Z >= 2 * window_vox = {2 * window_vox}")
    if axial_um <= 0 or min_attenuation_per_mm <= 0 or (pixel_um is not None and pixel_um <= 0):
        raise ValueError(f"axial_um = {axial_um}, pixel_um = {pixel_um}, min_attenuation_per_mm = {min_attenuation_per_mm}: expected positive values")
    backend = backend or get_backend(False)
    xp, ndi = backend.xp, backend.ndi
    v = xp.asarray(bottom, dtype=xp.float32)
    end = _data_end(xp, v)
    # cumulative sums of the data above the noise floor: any window is a difference of two planes
    total = xp.zeros((v.shape[0] + 1,) + tuple(v.shape[1:]), dtype=xp.float32)
    for i in range(v.shape[0]):
        xp.add(total[i], v[i], out=total[i + 1])
        total[i + 1] -= xp.float32(noise_floor)

    def upto(index):
        return xp.take_along_axis(total, index[None], axis=0)[0]

    window = xp.minimum(end // 2, window_vox)
    sums = xp.stack([upto(end - window) - upto(end - 2 * window), upto(end) - upto(end - window)])

    pixel = axial_um if pixel_um is None else pixel_um

    def smooth(x, sigma_um):
        sigma = sigma_um / pixel
        return ndi.gaussian_filter(x, (0.0,) * (x.ndim - 2) + (sigma, sigma), mode="reflect") if sigma > 0 else x

    level = xp.maximum(smooth(sums[1], lateral_sigma_um), 0.0)
    s_a, s_b = smooth(sums, decay_sigma_um)
    r_max = xp.exp(xp.float32(-2.0 * min_attenuation_per_mm * axial_um / 1000.0) * window.astype(xp.float32))
    ratio = xp.minimum(xp.clip(s_b / xp.where(s_a > 0, s_a, xp.inf), 0.0, None), r_max)
    tail = xp.where(window > 0, level * ratio / xp.maximum(1.0 - ratio, xp.float32(1e-6)), 0.0)
    return to_numpy(tail).astype(np.float32, copy=False)


def _remaining(xp, volume, floor, tail, end):
    """``S_i = sum_{i <= j < end} (I_j - floor) + tail`` for ``i = 0 .. Z`` (``S_i`` = tail from ``end`` on), shape (Z + 1, rows, cols).

    A loop over planes: each step is one cache-friendly add, several times
    faster than ``cumsum`` along the first axis.
    """
    n_z = volume.shape[0]
    s = xp.empty((n_z + 1,) + tuple(volume.shape[1:]), dtype=xp.float32)
    s[n_z] = tail
    for i in range(n_z - 1, -1, -1):
        xp.add(s[i + 1], volume[i], out=s[i])
        s[i] -= floor
        s[i] = xp.where(end > i, s[i], s[i + 1])
    return s


def _prepare(volume, tail, noise_floor, axial_um, window_vox, xp, backend):
    v = xp.asarray(volume, dtype=xp.float32)
    if tail is None:
        if v.shape[0] < 2 * window_vox:
            raise ValueError(f"volume of depth {v.shape[0]}: too shallow for a tail of two {window_vox}-voxel windows; pass tail=")
        tail = estimate_tail(v, axial_um=axial_um, window_vox=window_vox, noise_floor=noise_floor, backend=backend)
    tail = xp.asarray(tail, dtype=xp.float32)
    if tail.shape != v.shape[1:]:
        raise ValueError(f"tail of shape {tail.shape} does not match the A-lines of a volume of shape {v.shape}")
    return v, tail


def _row_chunks(shape, backend: Backend):
    """Row ranges of about ``_CHUNK_ALINES`` A-lines on the CPU, so each plane operation stays in cache."""
    rows, cols = shape[1], shape[2]
    step = rows if backend.is_gpu else max(1, _CHUNK_ALINES // max(cols, 1))
    return [slice(r, min(r + step, rows)) for r in range(0, rows, step)]


def _compensate_chunk(xp, v, tail, floor, max_gain, clear, out):
    """Compensate one chunk into ``out``; returns (data voxels at the gain bound, data voxels, plane of maximum gains,
    leading data voxels of each A-line whose signal from there down exceeds ``clear * sqrt(voxels)``)."""
    end = _data_end(xp, v)
    s = _remaining(xp, v, floor, tail, end)
    empty = s[0] <= 0
    total = xp.where(empty, xp.float32(1.0), s[0])
    lowest = total / xp.float32(max_gain)
    threshold = xp.float32(max_gain * (1 - 1e-6))
    gain = xp.empty(v.shape[1:], dtype=xp.float32)
    peak = xp.ones(v.shape[1:], dtype=xp.float32)
    limited = 0
    reference = xp.zeros(v.shape[1:], dtype=xp.int32)
    leading = xp.ones(v.shape[1:], dtype=bool)
    below = xp.maximum(s[0], lowest)
    for i in range(v.shape[0]):  # plane by plane: a few small passes that stay in cache
        upper, below = below, xp.maximum(s[i + 1], lowest)
        xp.multiply(upper, below, out=gain)
        xp.sqrt(gain, out=gain)
        xp.divide(total, gain, out=gain)
        data = end > i
        limited += xp.count_nonzero((gain >= threshold) & data)
        leading &= data
        if clear > 0:  # the recorded signal from here down (no tail) against the noise of as many voxels
            leading &= s[i] - tail > clear * xp.sqrt(xp.maximum(end - i, 1).astype(xp.float32))
        reference += leading
        xp.maximum(peak, xp.where(data, gain, xp.float32(1.0)), out=peak)
        xp.subtract(v[i], floor, out=out[i])
        out[i] *= gain
        out[i] += floor
        out[i] = xp.where(v[i] == 0, xp.float32(0.0), out[i])  # padding stays padding
    if bool(empty.any()):  # no signal at all: left as it is
        out[:, empty] = v[:, empty]
        peak[empty] = 1.0
        reference[empty] = 0
    return limited, int(end.sum()), peak, reference


def compensate_attenuation(
    volume: np.ndarray,
    *,
    axial_um: float,
    noise_floor: float = 0.0,
    max_gain: float = 30.0,
    tail: np.ndarray | None = None,
    window_vox: int = _WINDOW_VOX,
    noise_sigma: float = 0.0,
    reference_snr: float = REFERENCE_SNR,
    backend: Backend | None = None,
) -> AttenuationCompensation:
    """Remove the attenuation decay of every A-line, depth-resolved, with a bounded gain.

    Parameters
    ----------
    volume : ndarray, shape (Z, rows, cols)
        Linear intensity of whole A-lines, surface at the top (after the
        interface crop) and the beam profile already divided out. Exact
        zeros at the bottom of an A-line are the crop's padding
        (:func:`data_end`): they count as no signal and stay 0.
    axial_um : float
        Axial voxel size (used by the tail estimate only: the gain is
        dimensionless).
    noise_floor : float
        Intensity of no signal (:attr:`~serialoct.correct.interface.SurfaceEstimate.water_level`
        measured before the crop); subtracted before and added back after.
    max_gain : float
        Largest factor applied to any voxel.
    tail : ndarray, shape (rows, cols), optional
        :func:`estimate_tail` of these A-lines (computed on the whole slice
        when streaming); estimated from ``volume`` when None.
    window_vox : int
        Tail window, when the tail is estimated here.
    noise_sigma : float
        Standard deviation of the noise of one voxel (the water's,
        :attr:`~serialoct.correct.interface.SurfaceEstimate.noise_sigma`);
        0 when unknown: every data voxel counts in the reference depth.
    reference_snr : float
        :data:`REFERENCE_SNR`.
    backend : Backend, optional
        NumPy (default) or CuPy.

    Returns
    -------
    AttenuationCompensation

    Notes
    -----
    ``gain_i = S_0 / sqrt(S_i S_{i+1})`` (module docstring) with every
    ``S_i`` clipped to at least ``S_0 / max_gain``; an A-line without signal
    (``S_0 <= 0``) keeps gain 1. Two loops over the depth planes (the
    remaining signal from the bottom up, then the gain from the top down),
    each step a few element-wise operations on one plane in float32, on
    chunks of rows small enough for a plane to stay in cache (CPU).

    Examples
    --------
    >>> import numpy as np
    >>> z = np.arange(60)[:, None, None]
    >>> decay = np.exp(-2 * 3.0 * 0.008 * (z + 0.5)) * np.ones((60, 4, 4))  # mu = 3/mm, 8 µm voxels
    >>> out = compensate_attenuation(decay, axial_um=8.0, max_gain=100.0, tail=decay[-1] / (np.exp(0.048) - 1))
    >>> bool(np.allclose(out.volume, 1.0, rtol=1e-3))
    True
    """
    if max_gain < 1:
        raise ValueError(f"max_gain = {max_gain}: expected >= 1")
    backend = backend or get_backend(False)
    xp = backend.xp
    v, tail = _prepare(volume, tail, noise_floor, axial_um, window_vox, xp, backend)
    out = xp.empty(v.shape, dtype=xp.float32)
    reference = np.empty(v.shape[1:], dtype=np.int32)
    limited, n_data, top_gain = 0, 0, 1.0
    for rows in _row_chunks(v.shape, backend):
        count, n, peak, leading = _compensate_chunk(xp, v[:, rows], tail[rows], xp.float32(noise_floor), max_gain,
                                                    xp.float32(reference_snr * max(noise_sigma, 0.0)), out[:, rows])
        reference[rows] = to_numpy(leading)
        limited += count
        n_data += n
        top_gain = max(top_gain, float(peak.max()) if peak.size else 1.0)
    limited = int(limited) / max(n_data, 1)
    log.debug("attenuation: gain bound %.3g reached on %.1f%% of voxels", max_gain, 100 * limited)
    return AttenuationCompensation(to_numpy(out), limited, top_gain, reference)


def estimate_attenuation(
    volume: np.ndarray,
    *,
    axial_um: float,
    noise_floor: float = 0.0,
    tail: np.ndarray | None = None,
    window_vox: int = _WINDOW_VOX,
    backend: Backend | None = None,
) -> np.ndarray:
    """Depth-resolved attenuation coefficient of every voxel (Vermeer et al. 2014).

    Parameters
    ----------
    volume, axial_um, noise_floor, tail, window_vox, backend
        As :func:`compensate_attenuation`.

    Returns
    -------
    ndarray, shape (Z, rows, cols), float32, on the host
        ``mu_i = ln(S_i / S_{i+1}) / (2 dz)`` in 1/mm, 0 where the remaining
        signal is not positive and below the data (:func:`data_end`). Per voxel it carries the speckle's noise:
        average it over a neighbourhood or a region before reading values.
    """
    if axial_um <= 0:
        raise ValueError(f"axial_um = {axial_um}: expected a positive voxel size")
    backend = backend or get_backend(False)
    xp = backend.xp
    v, tail = _prepare(volume, tail, noise_floor, axial_um, window_vox, xp, backend)
    mu = xp.empty(v.shape, dtype=xp.float32)
    scale = xp.float32(1000.0 / (2.0 * axial_um))
    for rows in _row_chunks(v.shape, backend):
        block = v[:, rows]
        end = _data_end(xp, block)
        s = _remaining(xp, block, xp.float32(noise_floor), tail[rows], end)
        for i in range(v.shape[0]):
            upper, lower = s[i], s[i + 1]
            ok = (upper > 0) & (lower > 0) & (end > i)
            ratio = xp.where(ok, upper, 1.0) / xp.where(ok, lower, 1.0)
            mu[i, rows] = xp.maximum(xp.log(ratio) * scale, 0.0)
    return to_numpy(mu)
