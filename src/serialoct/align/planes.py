"""Plane-level pieces of pairwise registration: preparation, masks, warps, starts and the SimpleITK refinement.

Conventions are those of :mod:`serialoct.align.pairwise`: a moving pixel ``p``
maps to ``q = R(theta)(p - c) + c + t`` in (row, col), ``c`` the image centre.
"""

from __future__ import annotations

import logging
import math

from typing import Literal

import numpy as np
from scipy import ndimage

from serialoct.stitch.correlate import phase_correlate

__all__ = ["InitialAlignment", "RegistrationMetric", "TransformModel", "correlate_planes", "initial_translations", "prepare_plane", "refine_transform", "rotation_matrix", "tissue_mask", "warp_to_fixed"]

log = logging.getLogger(__name__)

TransformModel = Literal["euler", "translation"]
InitialAlignment = Literal["none", "com", "gradient", "both"]
RegistrationMetric = Literal["correlation", "mse"]


#: Gaussian (pixels) applied to every plane before matching: working-resolution
#: speckle is independent between two slices, the tissue is not.
SMOOTH_PX = 1.0
#: Gaussian (pixels) of the gradient magnitude behind the ``gradient`` start.
GRADIENT_SIGMA_PX = 1.5
#: A plane whose Otsu mask covers less than this share holds no usable tissue.
MIN_TISSUE_FRACTION = 0.01
#: Fewest pixels an NCC is computed on.
MIN_NCC_PIXELS = 64
#: SimpleITK pyramid: shrink factors and smoothing (pixels of the full level).
PYRAMID_SHRINK = (4, 2, 1)
PYRAMID_SIGMA_PX = (2.0, 1.0, 0.0)
#: Share of the pixels the metric samples at each pyramid level, on a regular grid (ITK jitters it
#: with a fixed seed: the result is reproducible), for ``register_pairwise``. Measured on the 17
#: pairs of the ``medium`` acquisition against the true rotations: all pixels 29.5 s of
#: refinement, error max 0.080 deg (RMS 0.035); these shares 9.8 s, 0.087 deg (RMS 0.038),
#: translations within 0.05 px of all pixels'. Dropping the full-resolution level instead was as
#: fast but less accurate (0.110 deg). The manual-transform refinement (one pair, a tight
#: search) keeps every pixel: sampled, its realistic test pair's rotation error reached 0.203 deg (test: 0.2).
SAMPLING_PER_LEVEL = (1.0, 0.5, 0.1)
SAMPLING_SEED = 1
#: Smallest optimizer step (pixels of shift) on the coarse levels and on the full level. The
#: coarse levels only hand a start to the full one; run as one registration with the full
#: level's 1e-4, they took 46 and 62 iterations on a ``medium`` pair, the full level 21.
#: Two registrations (the coarse levels to 0.05, then the full level to 1e-4), measured on the
#: 16 pairs of the ``medium`` acquisition against the true rotations (``benchmarks/pairwise.py``):
#: 31-34 s of CPU against 46-47 s, error max 0.081 deg (RMS 0.039) against 0.082 (0.037), translations within
#: 0.03 px, the same planes matched. One registration to 0.01 throughout was faster still but
#: left a pair 0.25 deg off (the rotation converges last).
COARSE_MIN_STEP = 0.05
FINE_MIN_STEP = 1e-4


def prepare_plane(plane: np.ndarray) -> np.ndarray:
    """A depth plane as float32, smoothed by :data:`SMOOTH_PX` against speckle; non-finite values become 0."""
    data = np.nan_to_num(np.asarray(plane, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return ndimage.gaussian_filter(data, SMOOTH_PX, mode="nearest")


def tissue_mask(plane: np.ndarray) -> np.ndarray | None:
    """Pixels above Otsu's threshold of a (smoothed) plane; None when the plane is flat or the mask tiny."""
    from skimage.filters import threshold_otsu

    if not float(plane.max()) > float(plane.min()):
        return None
    mask = plane > threshold_otsu(plane)
    return mask if mask.mean() >= MIN_TISSUE_FRACTION else None


def warp_to_fixed(moving_plane: np.ndarray, theta: float, t, centre, *, cval: float) -> np.ndarray:
    """The moving plane resampled on the fixed grid: ``out[q] = moving[R^T (q - c - t) + c]`` (bilinear)."""
    inverse = rotation_matrix(theta).T
    c, t = np.asarray(centre, np.float64), np.asarray(t, np.float64)
    return ndimage.affine_transform(moving_plane, inverse, offset=c - inverse @ (c + t), order=1, mode="constant", cval=cval)


def correlate_planes(fixed_plane: np.ndarray, warped: np.ndarray, mask: np.ndarray) -> float:
    """NCC of two planes over ``mask`` (where ``warped`` is defined); NaN on fewer than :data:`MIN_NCC_PIXELS`."""
    use = mask & np.isfinite(warped)
    if use.sum() < MIN_NCC_PIXELS:
        return float("nan")
    x = fixed_plane[use].astype(np.float64)
    y = warped[use].astype(np.float64)
    x -= x.mean()
    y -= y.mean()
    denominator = math.sqrt(float(x @ x) * float(y @ y))
    return float(x @ y) / denominator if denominator > 0 else float("nan")


def initial_translations(fixed_plane: np.ndarray, moving_plane: np.ndarray, *, mode: InitialAlignment,
                         max_translation_px: float) -> dict[str, np.ndarray]:
    """Coarse translations ``(row, col)`` (moving to fixed) to start the refinement from, by name.

    ``com``: the difference of the tissue masks' centres of mass (robust to
    large shifts, blind to rotation and partial views); ``gradient``: phase
    correlation of the gradient magnitudes (edges and fibres, whatever the
    intensity difference between the two depths); ``both``: both; ``none``:
    zero. Each is clipped to the translation bound.
    """
    out: dict[str, np.ndarray] = {}
    if mode == "none":
        out["none"] = np.zeros(2)
    if mode in ("com", "both"):
        fm, mm = tissue_mask(fixed_plane), tissue_mask(moving_plane)
        out["com"] = np.subtract(ndimage.center_of_mass(fm), ndimage.center_of_mass(mm)) if fm is not None and mm is not None else np.zeros(2)
    if mode in ("gradient", "both"):
        # phase_correlate(a, b) finds s with a(k + s) = b(k): moving pixel k lies at fixed k + s.
        shift, _, _ = phase_correlate(_gradient_magnitude(fixed_plane), _gradient_magnitude(moving_plane),
                                      max_shift_px=max_translation_px)
        out["gradient"] = shift
    return {name: np.clip(t, -max_translation_px, max_translation_px) for name, t in out.items()}


def _gradient_magnitude(plane: np.ndarray) -> np.ndarray:
    return ndimage.gaussian_gradient_magnitude(plane, GRADIENT_SIGMA_PX, mode="nearest")


# --------------------------------------------------------------------------- SimpleITK refinement


def refine_transform(fixed_plane: np.ndarray, moving_plane: np.ndarray, theta: float, t, centre, *,
                     transform: TransformModel, metric: RegistrationMetric,
                     sampling: tuple[float, ...] | None = None) -> tuple[float, np.ndarray, float]:
    """Refine ``(theta, t)`` (module convention) with SimpleITK; returns it and the final metric value.

    ``sampling``: share of the pixels the metric samples at each level of
    :data:`PYRAMID_SHRINK` (e.g. :data:`SAMPLING_PER_LEVEL`); None samples
    every pixel. The final metric value is always over every pixel.

    SimpleITK's registration finds the transform taking points of its *fixed*
    image to its *moving* image, so the moving slice's plane is given as its
    fixed image and the fixed slice's plane as its moving image: the result
    then maps moving-slice points to fixed-slice points, our direction. ITK's
    points are ``(x, y) = (col, row)`` and its Euler angle turns +x towards
    +y, i.e. +col towards +row: ``theta = -angle``.
    """
    import SimpleITK as sitk

    itk_fixed = sitk.GetImageFromArray(np.ascontiguousarray(moving_plane, dtype=np.float32))
    itk_moving = sitk.GetImageFromArray(np.ascontiguousarray(fixed_plane, dtype=np.float32))
    t = np.asarray(t, np.float64)
    if transform == "euler":
        initial = sitk.Euler2DTransform()
        initial.SetCenter((float(centre[1]), float(centre[0])))
        initial.SetAngle(-math.radians(theta))
        initial.SetTranslation((float(t[1]), float(t[0])))
    else:
        initial = sitk.TranslationTransform(2, (float(t[1]), float(t[0])))
    # the coarse levels to COARSE_MIN_STEP, then the full level to FINE_MIN_STEP from where they ended
    shares = list(sampling) if sampling is not None else [None] * len(PYRAMID_SHRINK)
    stages = ((slice(None, -1), COARSE_MIN_STEP), (slice(-1, None), FINE_MIN_STEP))
    try:
        for levels, min_step in stages:
            reg = sitk.ImageRegistrationMethod()
            if metric == "correlation":
                reg.SetMetricAsCorrelation()
            else:
                reg.SetMetricAsMeanSquares()
            if sampling is None:
                reg.SetMetricSamplingStrategy(reg.NONE)
            else:
                reg.SetMetricSamplingStrategy(reg.REGULAR)
                reg.SetMetricSamplingPercentagePerLevel(shares[levels], SAMPLING_SEED)
            reg.SetInterpolator(sitk.sitkLinear)
            reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=min_step, numberOfIterations=300,
                                                         relaxationFactor=0.5, gradientMagnitudeTolerance=1e-8)
            reg.SetOptimizerScalesFromPhysicalShift()
            reg.SetShrinkFactorsPerLevel(list(PYRAMID_SHRINK[levels]))
            reg.SetSmoothingSigmasPerLevel(list(PYRAMID_SIGMA_PX[levels]))
            reg.SetInitialTransform(initial, inPlace=True)
            reg.Execute(itk_fixed, itk_moving)
    except RuntimeError as err:  # e.g. "All samples map outside moving image buffer"
        log.info("SimpleITK refinement failed (%s); keeping the start", str(err).splitlines()[-1][:120])
        return theta, t, float("inf")
    # The metric at full resolution, comparable between starts.
    evaluate = sitk.ImageRegistrationMethod()
    if metric == "correlation":
        evaluate.SetMetricAsCorrelation()
    else:
        evaluate.SetMetricAsMeanSquares()
    evaluate.SetMetricSamplingStrategy(evaluate.NONE)
    evaluate.SetInterpolator(sitk.sitkLinear)
    evaluate.SetInitialTransform(initial, inPlace=False)
    value = float(evaluate.MetricEvaluate(itk_fixed, itk_moving))
    if transform == "euler":
        euler = sitk.Euler2DTransform(initial)
        tx, ty = euler.GetTranslation()
        return -math.degrees(euler.GetAngle()), np.array([ty, tx]), value
    tx, ty = initial.GetOffset()
    return 0.0, np.array([ty, tx]), value


def rotation_matrix(deg: float) -> np.ndarray:
    """2x2 rotation in (row, col): positive turns +row towards +col."""
    a = math.radians(deg)
    return np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
