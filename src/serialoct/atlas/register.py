"""Registration of a reconstructed brain to an atlas template (guide step ``align_to_ras``).

:func:`register_to_atlas` finds the affine map from the atlas's RAS frame to
the brain's, in three moves, each with SimpleITK's v4 registration framework:

1. **Initialisation.** ``MOMENTS`` (``CenteredTransformInitializer``): the
   centre of rotation is the atlas's centre of mass and the translation maps
   it onto the brain's; the rotation is the identity, or the inverse of the
   ``ras_initial_rotation`` hint (the hint turns the sample onto the atlas,
   the transform maps atlas points into the sample). Oblique cuts need the
   hint: the optimiser alone does not turn a brain by 45 degrees.
2. **Rigid** (``VersorRigid3DTransform``) then
3. **affine** (``AffineTransform``, started from the rigid result), each over
   a multi-resolution pyramid (shrink factors and Gaussian smoothing per
   level), with a regular-step gradient descent whose parameter scales come
   from the physical shift they cause (so a step moves every voxel by about
   the same distance whatever the parameter).

The metric is the guide's ``allen_metric``: ``MI`` (Mattes mutual
information, for images of different modalities: OCT against a two-photon
template), ``MSE`` (mean squares), ``CC`` (normalised correlation) or
``AntsCC`` (ANTs neighbourhood correlation: local, robust to slow intensity
changes, about ten times slower), evaluated on a random subset of voxels.

Transform convention
--------------------
:class:`AtlasRegistration` maps an atlas point to the brain point that
lands on it: ``p_brain = matrix @ p_atlas + translation`` (RAS ``(R, A, S)``
mm, the frames of the two :class:`~serialoct.atlas.space.VolumeGrid`), which
is what resampling the brain into atlas space needs
(:func:`~serialoct.atlas.resample.resample_to_atlas`). The SimpleITK
transform is the same map (SimpleITK's "fixed to moving"), expressed in this
RAS frame, not in ITK's usual LPS one.

SimpleITK threads follow its global default; the step caps it with
:func:`serialoct.compute.apply_cpu_limits`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np

from serialoct.atlas.orientation import rotation_matrix
from serialoct.atlas.space import VolumeGrid

__all__ = ["METRICS", "AtlasRegistration", "Metric", "register_to_atlas", "sitk_image"]

log = logging.getLogger(__name__)

Metric = Literal["MI", "MSE", "CC", "AntsCC"]
METRICS: tuple[str, ...] = get_args(Metric)
#: Histogram bins of Mattes MI: 32 is enough for a smooth template and keeps
#: the joint histogram populated with a fraction of the voxels sampled.
MI_BINS = 32
#: Neighbourhood radius (voxels) of AntsCC: 2 is ANTs' usual choice at these resolutions.
ANTS_RADIUS = 2
#: First step of the optimiser as a fraction of the atlas's smallest extent
#: (0.3 mm on a 6 mm phantom, 0.4 mm on the 8 mm-high Allen template): large
#: enough to cross the coarse level's voxels, small enough not to jump past
#: the basin MOMENTS put us in. The step halves at each reversal.
INITIAL_STEP_FRACTION = 0.05
#: The optimiser stops when its step falls below this fraction of the atlas voxel.
MIN_STEP_FRACTION = 1e-3


@dataclass(frozen=True, eq=False)
class AtlasRegistration:
    """The affine map from atlas RAS points to brain RAS points, and its QC numbers.

    Attributes
    ----------
    matrix : ndarray, shape (3, 3)
    translation : ndarray, shape (3,)
        ``p_brain = matrix @ p_atlas + translation`` (RAS mm, module docstring).
    rigid_matrix, rigid_translation : ndarray
        The same after the rigid stage (``rigid_matrix`` is a rotation).
    metric : str
    metric_value : float
        Final value at the finest level (ITK convention: lower is better; MI
        and the correlations are negative).
    initial_metric_value : float
        Value at the initialisation, full resolution (same sampling).
    iterations : int
        Optimiser iterations, both stages and every level.
    stop_condition : str
        The optimiser's last stop reason (affine stage, finest level).
    initialisation : str
        ``"moments"`` or ``"moments + rotation (Rx, Ry, Rz) deg"``.
    transform : SimpleITK.AffineTransform
        The same map as a SimpleITK transform (rigid and affine composed in
        one; write it with :func:`serialoct.atlas.template.write_transform`).
    """

    matrix: np.ndarray
    translation: np.ndarray
    rigid_matrix: np.ndarray
    rigid_translation: np.ndarray
    metric: str
    metric_value: float
    initial_metric_value: float
    iterations: int
    stop_condition: str
    initialisation: str
    transform: Any = field(repr=False)

    @property
    def rotation(self) -> np.ndarray:
        """The rotation closest to ``matrix`` (polar decomposition)."""
        u, _, vt = np.linalg.svd(self.matrix)
        return u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt

    @property
    def rotation_deg(self) -> float:
        """Angle of :attr:`rotation` about its axis, degrees."""
        return float(np.degrees(np.arccos(np.clip((np.trace(self.rotation) - 1) / 2, -1.0, 1.0))))

    @property
    def scales(self) -> np.ndarray:
        """Singular values of ``matrix``: the affine stage's stretch (1 = none)."""
        return np.linalg.svd(self.matrix, compute_uv=False)

    def atlas_to_brain(self, points: np.ndarray | Sequence) -> np.ndarray:
        """Brain RAS points ``(N, 3)`` of atlas RAS points ``(N, 3)``."""
        points = np.atleast_2d(np.asarray(points, dtype=float))
        return points @ self.matrix.T + self.translation


def sitk_image(volume: np.ndarray, grid: VolumeGrid):
    """A float32 SimpleITK image of ``volume`` placed in the RAS frame by ``grid``.

    ITK index axis ``k`` is array axis ``2 - k``; the image's direction matrix
    is the code's signed permutation, so no data is reoriented.
    """
    import SimpleITK as sitk

    if tuple(volume.shape) != grid.shape:
        raise ValueError(f"volume of shape {volume.shape} does not match its grid's shape {grid.shape}")
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume, dtype=np.float32))
    image.SetSpacing(tuple(reversed(grid.spacing_mm)))
    image.SetOrigin(grid.origin_mm)
    image.SetDirection(tuple(grid.direction[:, ::-1].ravel()))
    return image


def register_to_atlas(
    moving: np.ndarray,
    moving_grid: VolumeGrid,
    atlas: np.ndarray,
    atlas_grid: VolumeGrid,
    *,
    metric: Metric = "MI",
    max_iterations: int = 1000,
    initial_rotation_deg: Sequence[float] | None = None,
    shrink_factors: Sequence[int] = (4, 2, 1),
    smoothing_sigmas_vox: Sequence[float] = (2.0, 1.0, 0.0),
    sampling_fraction: float = 0.2,
    affine: bool = True,
    rng: int | np.random.Generator | None = 0,
) -> AtlasRegistration:
    """Register a brain volume to an atlas template: MOMENTS or hint, rigid, then affine.

    Parameters
    ----------
    moving : ndarray, shape ``moving_grid.shape``
        The brain at the registration level (``allen_registration_level``),
        in any array orientation: ``moving_grid.orientation`` says which
        (``ras_input_orientation``); nothing is copied to reorient it.
    moving_grid : VolumeGrid
    atlas : ndarray, shape ``atlas_grid.shape``
        The template (:func:`serialoct.atlas.template.load_atlas`).
    atlas_grid : VolumeGrid
    metric : {"MI", "MSE", "CC", "AntsCC"}
        ``allen_metric`` (module docstring).
    max_iterations : int
        ``allen_max_iterations``: the cap of each stage at each pyramid level.
    initial_rotation_deg : (float, float, float), optional
        ``ras_initial_rotation`` ``(Rx, Ry, Rz)``, the rotation that turns
        the (reoriented) sample onto the atlas
        (:func:`~serialoct.atlas.orientation.rotation_matrix`). None: the
        identity (MOMENTS initialisation alone).
    shrink_factors, smoothing_sigmas_vox : sequence
        The pyramid, coarse to fine: shrink factor and Gaussian sigma (in
        voxels of the shrunk level) per level.
    sampling_fraction : float
        Fraction of the atlas voxels drawn at random to evaluate the metric.
    affine : bool
        Run the affine stage after the rigid one (False: rigid only).
    rng : int or numpy.random.Generator or None
        Seeds the metric's voxel sampling.

    Returns
    -------
    AtlasRegistration

    Raises
    ------
    ValueError
        If ``metric`` is not one of ``MI MSE CC AntsCC``, an option is out of
        range, or an array does not match its grid.

    Examples
    --------
    An ellipsoidal blob, and the same 3 voxels (0.6 mm) further right:

    >>> z, y, x = np.mgrid[:32, :40, :36] * 0.2  # (S, A, R) mm
    >>> atlas = np.exp(-((x - 3.4) ** 2 / 4 + (y - 4) ** 2 / 9 + (z - 3.2) ** 2 / 2)).astype(np.float32)
    >>> grid = VolumeGrid(atlas.shape, (0.2, 0.2, 0.2))
    >>> reg = register_to_atlas(np.roll(atlas, 3, axis=2), grid, atlas, grid, metric="MSE", affine=False)
    >>> bool(np.allclose(reg.translation, (0.6, 0.0, 0.0), atol=0.05)), reg.rotation_deg < 1.0
    (True, True)
    """
    import SimpleITK as sitk

    if metric not in METRICS:
        raise ValueError(f"allen_metric {metric!r}: expected one of {', '.join(METRICS)}")
    if int(max_iterations) < 1:
        raise ValueError(f"allen_max_iterations {max_iterations!r}: expected a positive number of iterations")
    if len(shrink_factors) != len(smoothing_sigmas_vox) or not shrink_factors:
        raise ValueError(
            f"shrink_factors {tuple(shrink_factors)} and smoothing_sigmas_vox {tuple(smoothing_sigmas_vox)}: "
            "expected one sigma per level"
        )
    if not 0.0 < sampling_fraction <= 1.0:
        raise ValueError(f"sampling_fraction {sampling_fraction!r}: expected a fraction in (0, 1]")
    seed = int(np.random.default_rng(rng).integers(1, 2**31 - 1))
    fixed_image = sitk_image(atlas, atlas_grid)
    moving_image = sitk_image(moving, moving_grid)
    extent = min(n * s for n, s in zip(atlas_grid.shape, atlas_grid.spacing_mm, strict=True))
    steps = (INITIAL_STEP_FRACTION * extent, MIN_STEP_FRACTION * min(atlas_grid.spacing_mm))

    def method(levels: bool) -> tuple[Any, list[int]]:
        reg = sitk.ImageRegistrationMethod()
        _set_metric(reg, metric)
        reg.SetMetricSamplingStrategy(reg.RANDOM if sampling_fraction < 1.0 else reg.NONE)
        if sampling_fraction < 1.0:
            reg.SetMetricSamplingPercentage(sampling_fraction, seed)
        reg.SetInterpolator(sitk.sitkLinear)
        reg.SetOptimizerAsRegularStepGradientDescent(
            learningRate=steps[0], minStep=steps[1], numberOfIterations=int(max_iterations),
            relaxationFactor=0.5, gradientMagnitudeTolerance=1e-8,
        )
        reg.SetOptimizerScalesFromPhysicalShift()
        if levels:
            reg.SetShrinkFactorsPerLevel([int(f) for f in shrink_factors])
            reg.SetSmoothingSigmasPerLevel([float(s) for s in smoothing_sigmas_vox])
            reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
        count = [0]
        reg.AddCommand(sitk.sitkIterationEvent, lambda: count.__setitem__(0, count[0] + 1))
        return reg, count

    rigid = sitk.VersorRigid3DTransform(
        sitk.CenteredTransformInitializer(
            fixed_image, moving_image, sitk.VersorRigid3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS
        )
    )
    initialisation = "moments"
    if initial_rotation_deg is not None:
        angles = tuple(float(a) for a in initial_rotation_deg)
        rigid.SetMatrix(tuple(rotation_matrix(angles).T.ravel()))
        initialisation = f"moments + rotation {angles} deg"
    probe, _ = method(levels=False)
    probe.SetInitialTransform(rigid)
    initial_value = float(probe.MetricEvaluate(fixed_image, moving_image))

    reg, count = method(levels=True)
    reg.SetInitialTransform(rigid, inPlace=True)
    reg.Execute(fixed_image, moving_image)
    rigid_matrix, rigid_translation = _affine_parts(rigid)
    log.info(
        "atlas registration, rigid (%s, %s): %.4g -> %.4g after %d iterations; rotation %.1f deg",
        metric, initialisation, initial_value, reg.GetMetricValue(), count[0],
        np.degrees(np.arccos(np.clip((np.trace(rigid_matrix) - 1) / 2, -1, 1))),
    )
    final = sitk.AffineTransform(3)
    final.SetCenter(rigid.GetCenter())
    final.SetMatrix(rigid.GetMatrix())
    final.SetTranslation(rigid.GetTranslation())
    iterations = count[0]
    if affine:
        reg, count = method(levels=True)
        reg.SetInitialTransform(final, inPlace=True)
        reg.Execute(fixed_image, moving_image)
        iterations += count[0]
        log.info("atlas registration, affine: %.4g after %d iterations", reg.GetMetricValue(), count[0])
    matrix, translation = _affine_parts(final)
    return AtlasRegistration(
        matrix=matrix,
        translation=translation,
        rigid_matrix=rigid_matrix,
        rigid_translation=rigid_translation,
        metric=metric,
        metric_value=float(reg.GetMetricValue()),
        initial_metric_value=initial_value,
        iterations=iterations,
        stop_condition=reg.GetOptimizerStopConditionDescription(),
        initialisation=initialisation,
        transform=final,
    )


def _set_metric(reg, metric: str) -> None:
    if metric == "MI":
        reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=MI_BINS)
    elif metric == "MSE":
        reg.SetMetricAsMeanSquares()
    elif metric == "CC":
        reg.SetMetricAsCorrelation()
    else:
        reg.SetMetricAsANTSNeighborhoodCorrelation(radius=ANTS_RADIUS)


def _affine_parts(transform) -> tuple[np.ndarray, np.ndarray]:
    """``(A, b)`` with ``T(p) = A p + b`` for a centred SimpleITK matrix transform."""
    a = np.asarray(transform.GetMatrix(), dtype=float).reshape(3, 3)
    centre = np.asarray(transform.GetCenter(), dtype=float)
    t = np.asarray(transform.GetTranslation(), dtype=float)
    return a, t + centre - a @ centre
