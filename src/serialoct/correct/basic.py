"""The BaSiC solver: a smooth flat-field (and darkfield) from a stack of pooled tile images.

Low-rank plus sparse decomposition of the tiles in the DCT domain, solved by
the inexact augmented Lagrangian method with reweighting, as in BaSiC
(Peng et al. 2017, Nat. Commun. 8:14836, doi:10.1038/ncomms14836; ALM:
Lin et al. 2010, arXiv:1009.5055). Written for serialoct from the paper; the
public entry point is :func:`serialoct.correct.illumination.estimate_illumination`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from serialoct.compute import to_numpy

__all__ = ["Basis", "basic_flatfield", "smooth_darkfield"]

#: BaSiC's reweighting: weight = 1 / (|sparse / low-rank| + epsilon).
_REWEIGHT_EPSILON = 0.1
#: Inexact-ALM schedule of Lin et al. 2010 as used by BaSiC: mu grows by rho
#: from 12.5 / ||data||_2 up to 1e7 times that.
_MU_COEF, _RHO, _MU_MAX_RATIO = 12.5, 1.5, 1e7
_ALM_TOLERANCE = 1e-5  # ||data - low-rank - sparse||_F / ||data||_F; float32 holds ~1e-7
_REWEIGHT_TOLERANCE = 1e-3  # mean |change| of the flat-field between reweightings
_DARK_THRESHOLD_SIGMAS = 3.0  # DCT-domain denoising of the darkfield (universal-threshold style)


class Basis:
    """Area shrinking to the working size, and orthonormal DCT-II matrices there and at full size.

    The DCT of an image ``X`` of the working size is ``C_h X C_w^T``; the
    cosine series of coefficients ``K`` evaluated at the full-size pixel
    centres is ``U_h^T K U_w``, with ``U`` the working-size basis functions
    sampled on the full-size grid (the same continuous cosines).
    """

    def __init__(self, xp, full: tuple[int, int], size: tuple[int, int]):
        self.xp = xp
        self.shrink_h, self.shrink_w = (xp.asarray(_area_matrix(s, n)) for s, n in zip(size, full))
        self.c_h, self.c_w = (xp.asarray(_dct_matrix(s, s)) for s in size)
        self.u_h, self.u_w = (xp.asarray(_dct_matrix(s, n)) for s, n in zip(size, full))

    def shrink(self, images):
        """(n, h, w) -> (n, sh, sw), area averages."""
        return self.xp.matmul(self.xp.matmul(self.shrink_h, images), self.shrink_w.T)

    def dct(self, image):
        return self.c_h @ image @ self.c_w.T

    def idct(self, coefficients):
        return self.c_h.T @ coefficients @ self.c_w

    def expand(self, coefficients):
        """The cosine series at full size."""
        return self.u_h.T @ coefficients @ self.u_w


def _dct_matrix(n: int, m: int) -> np.ndarray:
    """Orthonormal DCT-II basis of size ``n`` sampled at ``m`` pixel centres, shape (n, m), float32."""
    k = np.arange(n)[:, None]
    centres = (np.arange(m)[None, :] + 0.5) / m
    basis = np.cos(np.pi * k * centres) * np.sqrt(2.0 / n)
    basis[0] /= np.sqrt(2.0)
    return basis.astype(np.float32)


def _area_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Rows average the input pixels that each output pixel covers (fractional overlaps), float32."""
    e_in, e_out = np.arange(n_in + 1) / n_in, np.arange(n_out + 1) / n_out
    overlap = np.minimum(e_out[1:, None], e_in[None, 1:]) - np.maximum(e_out[:-1, None], e_in[None, :-1])
    overlap = np.clip(overlap, 0.0, None)
    return (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)


def smooth_darkfield(xp, basis: Basis, dark: np.ndarray) -> np.ndarray:
    """Darkfield denoised by soft-thresholding its DCT coefficients at the working size.

    The noise level comes from the upper half of the frequencies (median
    absolute coefficient / 0.6745, as in [3]); the mean (DC) is kept.
    """
    coefficients = basis.dct(basis.shrink(xp.asarray(dark, dtype=xp.float32)[None])[0])
    kh, kw = coefficients.shape
    high = (xp.arange(kh)[:, None] / kh + xp.arange(kw)[None, :] / kw) >= 1.0
    if bool(high.any()):
        sigma = float(xp.median(xp.abs(coefficients[high]))) / 0.6745
        dc = coefficients[0, 0].copy()
        coefficients = _soft(xp, coefficients, _DARK_THRESHOLD_SIGMAS * sigma)
        coefficients[0, 0] = dc
    return to_numpy(basis.expand(coefficients)).astype(np.float32)


def _soft(xp, values, threshold):
    """Soft thresholding (the proximal map of the L1 norm): shrink towards 0 by ``threshold``."""
    return values - xp.clip(values, -threshold, threshold)


@dataclass(frozen=True)
class _Solved:
    coefficients: object  # DCT coefficients of the flat-field at the working size (mean 1)
    converged: bool
    iterations: int
    reweightings: int


def _spectral_norm(xp, matrix, *, steps: int = 50, tolerance: float = 1e-4) -> float:
    """Largest singular value by power iteration (portable to CuPy; a non-negative, nearly rank-1 matrix converges in a few steps)."""
    v = xp.ones(matrix.shape[1], dtype=matrix.dtype) / np.float32(np.sqrt(matrix.shape[1]))
    value = 0.0
    for _ in range(steps):
        v = matrix.T @ (matrix @ v)
        new = float(xp.linalg.norm(v))
        if new == 0.0:
            return 0.0
        v /= new
        if abs(new - value) <= tolerance * new:
            break
        value = new
    return float(np.sqrt(new))


def basic_flatfield(xp, basis: Basis, data, *, smoothness: float, max_iterations: int, max_reweightings: int) -> _Solved:
    """BaSiC's flat-field: ``data_i = b_i * idct(K) + E_i`` with ``K`` DCT-sparse and ``E`` sparse.

    ``data`` (n, sh, sw) is darkfield-subtracted and scaled to mean 1.
    Minimises ``lambda * ||K||_1 + ||W o E||_1`` subject to the equality, by
    the inexact augmented Lagrangian method ([2]; multiplier ``Y``, penalty
    ``mu`` growing geometrically), one proximal step per block and iteration:

    - ``K``: add the DCT of the tiles' mean residual, soft-threshold by ``lambda / mu``;
    - ``E = T - clip(T, -W/mu, W/mu)`` with ``T = data - b K' + Y / mu`` (soft thresholding);
    - ``b_i``: the tile's mean of ``data - E`` over the mean of all;
    - ``Y += mu (data - b K' - E)``, which simplifies to ``Y = mu clip(T, -W/mu, W/mu)``.

    After each solve the weights become ``1 / (|E| / mean(low-rank) + 0.1)``
    as in BaSiC [1], so that tissue structure is pushed into ``E``; the solves
    stop when the flat-field changes by less than 0.1 % on average.
    """
    if xp is np:  # BLAS threads only slow the small working-size matrix products down
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return _basic_solves(xp, basis, data, smoothness=smoothness, max_iterations=max_iterations, max_reweightings=max_reweightings)
    return _basic_solves(xp, basis, data, smoothness=smoothness, max_iterations=max_iterations, max_reweightings=max_reweightings)


def _basic_solves(xp, basis: Basis, data, *, smoothness: float, max_iterations: int, max_reweightings: int) -> _Solved:
    n = data.shape[0]
    mean_image = data.mean(axis=0)
    tile_means = data.mean(axis=(1, 2))
    lam = smoothness * float(xp.abs(basis.dct(mean_image / mean_image.mean())).sum()) / 200.0
    mu0 = _MU_COEF / max(_spectral_norm(xp, data.reshape(n, -1)), 1e-12)
    data_norm = float(xp.linalg.norm(data))
    weights = xp.ones_like(data)
    previous = None
    iterations, converged, settled = 0, False, False
    for round_ in range(1, max_reweightings + 1):
        coef = xp.zeros(data.shape[1:], dtype=data.dtype)
        b = xp.ones(n, dtype=data.dtype)
        sparse = xp.zeros_like(data)
        multiplier = xp.zeros_like(data)
        sparse_mean, multiplier_mean = xp.zeros_like(mean_image), xp.zeros_like(mean_image)
        mu, converged = mu0, False
        for _ in range(max_iterations):
            iterations += 1
            inv_mu = 1.0 / mu
            residual = mean_image - b.mean() * basis.idct(coef) - sparse_mean + multiplier_mean * inv_mu
            coef = _soft(xp, coef + basis.dct(residual), lam * inv_mu)
            low_rank = b[:, None, None] * basis.idct(coef)[None]
            target = multiplier * inv_mu
            target += data
            target -= low_rank
            bound = weights * inv_mu
            clipped = xp.clip(target, -bound, bound)
            sparse = target - clipped
            gap = float(xp.linalg.norm(clipped - multiplier * inv_mu))  # ||data - low_rank - sparse||
            multiplier = clipped
            multiplier *= mu
            sparse_mean, multiplier_mean = sparse.mean(axis=0), multiplier.mean(axis=0)
            kept = tile_means - sparse.mean(axis=(1, 2))
            b = xp.maximum(kept / kept.mean(), 0)
            mu = min(mu * _RHO, mu0 * _MU_MAX_RATIO)
            if gap <= _ALM_TOLERANCE * data_norm:
                converged = True
                break
        field = basis.idct(coef)
        flat = field / field.mean()
        weights = 1.0 / (xp.abs(sparse) / xp.maximum(xp.abs(low_rank.mean(axis=0)), 1e-6)[None] + _REWEIGHT_EPSILON)
        weights *= weights.size / weights.sum()
        if previous is not None and float(xp.abs(flat - previous).mean()) < _REWEIGHT_TOLERANCE:
            settled = True
            break
        previous = flat
    return _Solved(coef / field.mean(), converged and settled, iterations, round_)
