"""The two estimators behind pair registration: phase correlation, then a least-squares refinement.

Both find the lag ``s`` with ``a(k + s) = b(k)`` between two images of the
same size (``a`` is ``b`` translated by ``s``).

:func:`phase_correlate` (Kuglin & Hines 1975) is the global search: the
inverse transform of the whitened cross-power spectrum ``F_a conj(F_b) /
|F_a conj(F_b)|`` peaks at ``s`` whatever the contrast of the images. The
images are mean-subtracted and multiplied by a separable Hann window (so
their borders do not look like a strong edge at lag 0), and the whitened
spectrum by a Gaussian ``exp(-2 pi^2 sigma^2 |f|^2)``, which turns the ideal
delta into a Gaussian peak of ``sigma`` pixels that a parabola through the
logarithms of three samples locates to a fraction of a pixel, while the
frequencies near Nyquist, where speckle dominates, get little weight.
Real FFTs on float32 data halve the work; windows and tapers are cached per
shape.

On overlap *strips* a window cannot be avoided and it pulls the peak
towards lag 0 (the window stays put while the content moves), by a good
fraction of the shift across a strip 20 pixels wide. :func:`refine_shift`
therefore refines the phase-correlation lag by Gauss-Newton least squares
in the spatial domain (Lucas & Kanade 1981) with no window:
``a(k + s) = g b(k) + c + p_r k_r + p_c k_c`` over the pixels both images
cover, solving for the shift together with a gain, an offset and a linear
ramp (the residual flat-field between two tiles). Its normal matrix gives
the *information* of the shift, a 2x2 matrix that is large across edges and
fibres and small along them; the global placement weighs each pair with it.

References
----------
.. [1] C. D. Kuglin and D. C. Hines, "The phase correlation image alignment
   method", Proc. IEEE Int. Conf. Cybernetics and Society, 163-165 (1975).
.. [2] B. D. Lucas and T. Kanade, "An iterative image registration technique
   with an application to stereo vision", Proc. IJCAI, 674-679 (1981).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from serialoct.compute import Backend, get_backend, to_numpy

__all__ = ["Refinement", "phase_correlate", "refine_shift", "texture_correlation"]

#: Width (pixels) of the Gaussian the correlation peak is shaped into: three
#: samples wide, enough for the log-parabola, while damping speckle.
PEAK_SIGMA_PX = 1.0
#: The refinement samples at most about this many pixels (a regular lattice on
#: larger overlaps): the smoothed images hold no more independent information.
MAX_REFINEMENT_SAMPLES = 4096
#: Gauss-Newton stops when a step moves the shift by less than this, pixels.
_CONVERGED_PX = 1e-3
#: ... or hops by less than this once the iterations are spent, pixels.
_SETTLED_PX = 0.05
_MAX_ITERATIONS = 12


@functools.lru_cache(maxsize=32)
def _window_and_taper(shape: tuple[int, int], sigma_px: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Hann window (float32), rfft-layout Gaussian taper (float32) and the peak of a perfect match."""
    h, w = shape
    window = np.outer(np.hanning(h + 2)[1:-1], np.hanning(w + 2)[1:-1]).astype(np.float32)  # never exactly 0
    fr = np.fft.fftfreq(h)[:, None]
    fc = np.fft.rfftfreq(w)[None, :]
    taper = np.exp(-2.0 * np.pi**2 * sigma_px**2 * (fr**2 + fc**2)).astype(np.float32)
    # Lag-0 value of irfft2(taper): the taper summed over the full (Hermitian) spectrum / (h w).
    inner = taper[:, 1 : (w + 1) // 2].sum()
    perfect = float(taper[:, 0].sum() + 2.0 * inner + (taper[:, -1].sum() if w % 2 == 0 else 0.0)) / (h * w)
    return window, taper, perfect


def _fft(backend: Backend):
    """scipy.fft on the CPU (float32 transforms), cupy.fft on the GPU."""
    if backend.is_gpu:
        return backend.xp.fft
    import scipy.fft

    return scipy.fft


def _log_parabola(c_minus: float, c0: float, c_plus: float) -> float:
    """Vertex of the parabola through log values (exact for a Gaussian peak), clipped to [-1, 1]."""
    if min(c_minus, c0, c_plus) > 0:
        c_minus, c0, c_plus = np.log(c_minus), np.log(c0), np.log(c_plus)
    curvature = c_minus - 2.0 * c0 + c_plus  # a side lobe below 0: plain parabola on the values
    if curvature >= 0:
        return 0.0
    return float(np.clip(0.5 * (c_minus - c_plus) / curvature, -1.0, 1.0))


def phase_correlate(
    a: np.ndarray,
    b: np.ndarray,
    *,
    max_shift_px: float = 10.0,
    sigma_px: float = PEAK_SIGMA_PX,
    backend: Backend | None = None,
) -> tuple[np.ndarray, float, bool]:
    """Sub-pixel lag ``s`` with ``a(k + s) = b(k)`` by phase correlation.

    Parameters
    ----------
    a, b : ndarray, shape (H, W)
        Two images of the same size.
    max_shift_px : float
        Only lags with ``|s| <= max_shift_px`` along each axis (and below
        half the image) are searched.
    sigma_px : float
        Width of the Gaussian the peak is shaped into.
    backend : Backend, optional
        NumPy/SciPy (default) or CuPy.

    Returns
    -------
    shift : ndarray, shape (2,), float64
        ``(row, col)`` pixels.
    peak : float
        Peak height relative to that of two identical images, in [0, 1].
    at_limit : bool
        Whether the peak lies on the border of the searched lags (the true
        lag may lie beyond).

    Raises
    ------
    ValueError
        If the images differ in shape.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> image = rng.normal(size=(80, 120)).astype(np.float32)
    >>> shift, peak, at_limit = phase_correlate(image[:64, :96], image[3:67, 5:101])
    >>> np.round(shift).tolist(), at_limit
    ([3.0, 5.0], False)
    """
    backend = backend or get_backend(False)
    xp, fft = backend.xp, _fft(backend)
    shape = tuple(a.shape)
    if tuple(b.shape) != shape:
        raise ValueError(f"images differ in shape: {a.shape} and {b.shape}")
    window, taper, perfect = _window_and_taper(shape, float(sigma_px))
    window, taper = xp.asarray(window), xp.asarray(taper)
    a = xp.asarray(a, dtype=xp.float32)
    b = xp.asarray(b, dtype=xp.float32)
    cross = fft.rfft2((a - a.mean()) * window) * xp.conj(fft.rfft2((b - b.mean()) * window))
    magnitude = xp.abs(cross)
    cross *= taper / (magnitude + xp.float32(1e-6) * magnitude.mean() + xp.float32(1e-30))
    surface = fft.irfft2(cross, s=shape)
    lags = [np.arange(-m, m + 1) for m in (int(min(np.floor(max_shift_px), (n - 1) // 2)) for n in shape)]
    rows, cols = lags[0] % shape[0], lags[1] % shape[1]
    searched = to_numpy(surface[xp.asarray(rows)[:, None], xp.asarray(cols)[None, :]])
    i, j = np.unravel_index(int(np.argmax(searched)), searched.shape)
    r, c = int(rows[i]), int(cols[j])

    def value(dr: int, dc: int) -> float:
        return float(surface[(r + dr) % shape[0], (c + dc) % shape[1]])

    c0 = float(searched[i, j])
    shift = np.array([lags[0][i] + _log_parabola(value(-1, 0), c0, value(1, 0)),
                      lags[1][j] + _log_parabola(value(0, -1), c0, value(0, 1))])
    at_limit = any(len(lag) > 1 and k in (0, len(lag) - 1) for lag, k in ((lags[0], i), (lags[1], j)))
    return shift, c0 / perfect, bool(at_limit)


@dataclass(frozen=True)
class Refinement:
    """Result of :func:`refine_shift`.

    Attributes
    ----------
    shift : ndarray, shape (2,), float64
        Refined lag ``(row, col)``.
    information : ndarray, shape (2, 2), float64
        Inverse covariance of ``shift`` in px^-2, from the Gauss-Newton
        normal matrix and the residual variance (speckle left after smoothing
        is correlated between neighbouring pixels, so its scale is optimistic;
        only ratios between pairs matter to the placement).
    ncc : float
        Correlation of ``a(k + shift)`` and ``b(k)`` once the gain, offset and
        ramp are removed, in [-1, 1].
    converged : bool
        False when the overlap vanished or the iterations did not settle.
    """

    shift: np.ndarray
    information: np.ndarray
    ncc: float
    converged: bool


def _bilinear(image: np.ndarray, shift: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
    """``image[rows + shift[0], cols + shift[1]]`` by bilinear interpolation (shift constant)."""
    i0, j0 = int(np.floor(shift[0])), int(np.floor(shift[1]))
    fr, fc = np.float32(shift[0] - i0), np.float32(shift[1] - j0)
    step_r, step_c = rows.step or 1, cols.step or 1
    r = slice(rows.start + i0, rows.stop + i0, step_r)
    r1 = slice(rows.start + i0 + 1, rows.stop + i0 + 1, step_r)
    c = slice(cols.start + j0, cols.stop + j0, step_c)
    c1 = slice(cols.start + j0 + 1, cols.stop + j0 + 1, step_c)
    top = image[r, c] + fc * (image[r, c1] - image[r, c])
    bottom = image[r1, c] + fc * (image[r1, c1] - image[r1, c])
    return top + fr * (bottom - top)


def _valid(n: int, s: float, stride: int, margin: int = 0) -> slice | None:
    """Pixels k (on the lattice) at least ``margin`` from both borders with k + s too, and k + s + 1 inside."""
    start = max(margin, int(np.ceil(margin - s)))
    stop = min(n - margin, int(np.floor(n - 1 - margin - s)))  # exclusive: k + s < n - 1 - margin
    if stop - start < 3:
        return None
    start += (stop - start - 1) % stride // 2  # centre the lattice
    return slice(start, stop, stride)


def refine_shift(a: np.ndarray, b: np.ndarray, start: np.ndarray, *, margin_px: int = 0) -> Refinement:
    """Refine a lag ``s`` with ``a(k + s) = g b(k) + c + ramp`` by Gauss-Newton least squares.

    Parameters
    ----------
    a, b : ndarray, shape (H, W), float32
        Two images of the same size, smoothed enough that bilinear
        interpolation and finite differences are accurate (a Gaussian of
        1-2 pixels).
    start : (float, float)
        Initial lag (from :func:`phase_correlate`).
    margin_px : int
        Pixels next to the borders of either image left out: where the
        smoothing had to extend the edge, the two images differ even at the
        right lag (about twice the smoothing sigma).

    Returns
    -------
    Refinement

    Notes
    -----
    Each iteration samples ``a`` and its gradient at ``k + s`` (bilinear) on
    the pixels where both images exist, and solves the linearised problem
    ``a(k + s) + grad a . ds = g b(k) + c + p . k`` for ``ds`` and the
    nuisance terms via 6x6 normal equations. Overlaps larger than
    :data:`MAX_REFINEMENT_SAMPLES` pixels are sampled on a regular lattice.
    """
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    h, w = a.shape
    grad_r, grad_c = np.gradient(a)
    stride = max(1, int(np.ceil(np.sqrt(h * w / MAX_REFINEMENT_SAMPLES))))
    s = np.asarray(start, dtype=np.float64).copy()
    step = np.inf
    for _ in range(_MAX_ITERATIONS):
        rows, cols = _valid(h, s[0], stride, margin_px), _valid(w, s[1], stride, margin_px)
        if rows is None or cols is None:
            return Refinement(s, np.zeros((2, 2)), float("nan"), False)
        design, target = _linearise(a, b, grad_r, grad_c, s, rows, cols)
        normal = design.T @ design
        try:
            solution = np.linalg.solve(normal, design.T @ target)
        except np.linalg.LinAlgError:
            return Refinement(s, np.zeros((2, 2)), float("nan"), False)
        s += solution[:2]
        step = float(np.max(np.abs(solution[:2])))
        if step < _CONVERGED_PX:
            break
    # Bilinear interpolation puts kinks in the cost at whole pixels, where Gauss-Newton
    # may hop back and forth by a small step instead of settling: that is converged too.
    converged = step < _SETTLED_PX
    rows, cols = _valid(h, s[0], stride, margin_px), _valid(w, s[1], stride, margin_px)
    if rows is None or cols is None:
        return Refinement(s, np.zeros((2, 2)), float("nan"), False)
    design, target = _linearise(a, b, grad_r, grad_c, s, rows, cols)
    normal = design.T @ design
    residual = target - design @ np.linalg.lstsq(normal, design.T @ target, rcond=None)[0]
    variance = float(residual @ residual) / max(len(target) - design.shape[1], 1)
    try:
        covariance = np.linalg.inv(normal)[:2, :2] * variance
        information = np.linalg.inv(covariance) if variance > 0 else np.zeros((2, 2))
    except np.linalg.LinAlgError:
        information = np.zeros((2, 2))
    # NCC once the nuisance terms (offset, ramp) are projected out of both images.
    nuisance = design[:, 3:]
    x = _project_out(nuisance, -target)  # -target = a(k + s)
    y = _project_out(nuisance, -design[:, 2])  # -column 2 = b(k)
    denominator = float(np.sqrt((x @ x) * (y @ y)))
    ncc = float(x @ y) / denominator if denominator > 0 else 0.0
    return Refinement(s, information, ncc, converged)


def _linearise(a, b, grad_r, grad_c, s, rows, cols) -> tuple[np.ndarray, np.ndarray]:
    """Design ``[grad_r, grad_c, -b, -1, -k_r, -k_c]`` and target ``-a(k + s)``, float64."""
    warped = _bilinear(a, s, rows, cols)
    gr = _bilinear(grad_r, s, rows, cols)
    gc = _bilinear(grad_c, s, rows, cols)
    bb = b[rows, cols]
    kr, kc = np.meshgrid(np.arange(rows.start, rows.stop, rows.step, dtype=np.float32) / a.shape[0] - 0.5,
                         np.arange(cols.start, cols.stop, cols.step, dtype=np.float32) / a.shape[1] - 0.5, indexing="ij")
    design = np.stack([gr.ravel(), gc.ravel(), -bb.ravel(), -np.ones(bb.size, np.float32), -kr.ravel(), -kc.ravel()], axis=1)
    return design.astype(np.float64), -warped.ravel().astype(np.float64)


def _project_out(basis: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``v`` minus its least-squares fit on the columns of ``basis``."""
    return v - basis @ np.linalg.lstsq(basis, v, rcond=None)[0]


def texture_correlation(
    a: np.ndarray, b: np.ndarray, shift: np.ndarray, *, sigma_px: float = 4.0, margin_px: int = 0, backend: Backend | None = None
) -> float:
    """NCC of the fine structure of ``a(k + shift)`` and ``b(k)``: both minus a Gaussian blur of ``sigma_px``.

    Smooth content (a brain boundary, a flat-field residue) correlates
    between any two strips that share a gradient, overlapping or not; the
    texture left once it is removed correlates only where the strips show
    the same tissue, which makes this the statistic the null threshold
    separates best.

    Returns
    -------
    float
        In [-1, 1]; NaN when the shifted strips no longer overlap.
    """
    backend = backend or get_backend(False)
    ndi, xp = backend.ndi, backend.xp
    high = []
    for image in (a, b):
        data = xp.asarray(image, dtype=xp.float32)
        high.append(to_numpy(data - ndi.gaussian_filter(data, sigma_px, mode="nearest", truncate=3.0)))
    h, w = a.shape
    stride = max(1, int(np.ceil(np.sqrt(h * w / MAX_REFINEMENT_SAMPLES))))
    rows, cols = _valid(h, shift[0], stride, margin_px), _valid(w, shift[1], stride, margin_px)
    if rows is None or cols is None:
        return float("nan")
    x = _bilinear(high[0], np.asarray(shift, dtype=np.float64), rows, cols).ravel().astype(np.float64)
    y = high[1][rows, cols].ravel().astype(np.float64)
    x -= x.mean()
    y -= y.mean()
    denominator = float(np.sqrt((x @ x) * (y @ y)))
    return float(x @ y) / denominator if denominator > 0 else 0.0
