"""Rigid 2D registration of boundary planes and partial warps, for the interpolation of a missing slice.

Transform convention (the same as :mod:`serialoct.align.pairwise`): a rigid
map ``q = R(theta) (p - c) + c + t`` takes a pixel ``p = (row, col)`` of the
lower plane to the upper plane, ``R`` turning +row towards +col, ``c`` the
image centre.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

from serialoct.stitch.correlate import phase_correlate

__all__ = ["REGISTRATION_METRICS", "RegistrationMetric", "Rigid2D", "register_rigid_2d", "warp_plane"]

logger = logging.getLogger(__name__)

RegistrationMetric = Literal["MSE", "correlation", "MI"]
REGISTRATION_METRICS: tuple[str, ...] = ("MSE", "correlation", "MI")
#: Three-level pyramid: coarse levels catch shifts of tens of pixels, the full one the sub-pixel part.
_SHRINK = (4, 2, 1)
_SIGMA_PX = (2.0, 1.0, 0.0)


@dataclass(frozen=True)
class Rigid2D:
    """A rigid in-plane map (module convention): rotation (degrees), translation ``(row, col)`` px, centre ``(row, col)``."""

    rotation_deg: float = 0.0
    translation_px: tuple[float, float] = (0.0, 0.0)
    centre_px: tuple[float, float] = (0.0, 0.0)

    def matrix(self) -> np.ndarray:
        """Homogeneous 3x3 matrix mapping lower ``(row, col, 1)`` to upper."""
        a = math.radians(self.rotation_deg)
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        c = np.asarray(self.centre_px, dtype=np.float64)
        out = np.eye(3)
        out[:2, :2] = rot
        out[:2, 2] = c + np.asarray(self.translation_px, dtype=np.float64) - rot @ c
        return out


def warp_plane(plane: np.ndarray, sample_matrix: np.ndarray) -> np.ndarray:
    """Resample ``plane`` at ``sample_matrix @ (row, col, 1)`` of each output pixel (linear, 0 outside).

    Parameters
    ----------
    plane : ndarray, shape (H, W)
    sample_matrix : ndarray, shape (3, 3)
        Output pixel to input pixel.

    Returns
    -------
    ndarray, shape (H, W), float32
    """
    if np.allclose(sample_matrix, np.eye(3)):
        return np.asarray(plane, dtype=np.float32).copy()
    return ndimage.affine_transform(np.asarray(plane, dtype=np.float32), sample_matrix[:2, :2], sample_matrix[:2, 2], order=1, cval=0.0)


def _zscore(plane: np.ndarray, mask: np.ndarray) -> np.ndarray:
    values = plane[mask] if mask.any() else plane
    sd = float(values.std()) or 1.0
    return ((plane - float(values.mean())) / sd).astype(np.float32)


def register_rigid_2d(
    upper: np.ndarray,
    lower: np.ndarray,
    *,
    metric: RegistrationMetric = "MSE",
    max_iterations: int = 1000,
    mask: np.ndarray | None = None,
) -> Rigid2D | None:
    """The rigid map from ``lower`` to ``upper`` pixels: phase correlation start, SimpleITK Euler2D refinement.

    Parameters
    ----------
    upper, lower : ndarray, shape (H, W)
        The two boundary planes (z-scored over ``mask`` first, so MSE compares
        planes of different depths on the same scale).
    metric : {"MSE", "correlation", "MI"}
        ``interpolation_registration_metric`` (MI: Mattes mutual information).
    max_iterations : int
        ``interpolation_max_iterations`` per pyramid level.
    mask : ndarray of bool, shape (H, W), optional
        Tissue of the planes (for the z-scores).

    Returns
    -------
    Rigid2D or None
        None when SimpleITK fails (e.g. no overlap left): an expected
        failure, the caller records it.

    Notes
    -----
    SimpleITK finds the map from points of its *fixed* image to its *moving*
    image, so ``lower`` is its fixed image; its points are ``(x, y) = (col,
    row)`` and its Euler angle turns +col towards +row, hence ``theta = -angle``.
    """
    import SimpleITK as sitk

    if metric not in REGISTRATION_METRICS:
        raise ValueError(f"unknown registration metric {metric!r}; choose one of {', '.join(REGISTRATION_METRICS)}")
    m = np.ones(upper.shape, dtype=bool) if mask is None else mask
    a, b = _zscore(upper, m), _zscore(lower, m)
    start, _, _ = phase_correlate(a, b, max_shift_px=max(upper.shape) / 4)
    h, w = upper.shape
    centre = ((h - 1) / 2.0, (w - 1) / 2.0)
    transform = sitk.Euler2DTransform()
    transform.SetCenter((centre[1], centre[0]))
    transform.SetTranslation((float(start[1]), float(start[0])))
    reg = sitk.ImageRegistrationMethod()
    if metric == "MSE":
        reg.SetMetricAsMeanSquares()
    elif metric == "correlation":
        reg.SetMetricAsCorrelation()
    else:
        reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.NONE)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-4, numberOfIterations=int(max_iterations),
                                                 relaxationFactor=0.5, gradientMagnitudeTolerance=1e-8)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(list(_SHRINK))
    reg.SetSmoothingSigmasPerLevel(list(_SIGMA_PX))
    reg.SetInitialTransform(transform, inPlace=True)
    try:
        reg.Execute(sitk.GetImageFromArray(b), sitk.GetImageFromArray(a))
    except RuntimeError as err:
        logger.info("boundary-plane registration failed: %s", str(err).splitlines()[-1][:120])
        return None
    tx, ty = transform.GetTranslation()
    return Rigid2D(-math.degrees(transform.GetAngle()), (float(ty), float(tx)), centre)
