"""Slice-to-slice registration (step ``register_pairwise``): depth match, in-plane rigid fit, confidence.

Each slice images its own cut thickness ``T`` and more below it, so the
bottom of the upper (*fixed*) slice shows the same tissue as the top of the
next (*moving*) one: moving plane ``m`` (``moving_slice_first_index``) images
the depth of fixed plane ``round(T / voxel) + m``, both stacks starting at
the cut surface (after the interface crop). :func:`register_pairwise`

1. aligns moving plane ``m`` to that expected fixed plane coarsely
   (``initial_alignment``: none; ``com``, the centres of mass of the tissue
   masks; ``gradient``, phase correlation of the gradient magnitudes, which
   ignores the intensity differences between depths; ``both``, each refined
   and the better kept);
2. searches the fixed plane within ``± allowed_drifting_mm`` of the expected
   one that correlates best with the moving plane (normalised
   cross-correlation over the moving plane's tissue; every "plane" is the
   mean of a slab of ``2 SLAB_HALF_PLANES + 1`` planes centred on it, the
   same offsets in both slices, smoothed by 1 pixel: speckle is independent
   from plane to plane, the tissue is not): the *z-correlation* and the
   depth overlap;
3. refines the in-plane transform on that pair with SimpleITK (Euler2D or
   translation, correlation or mean-squares metric, a three-level pyramid,
   regular-step gradient descent), then repeats the depth search under the
   refined transform (and the refinement, if the best plane moved);
4. clamps the result to ``max_translation_px`` (per axis) and
   ``max_rotation_deg`` (an optimiser that reached them found no minimum
   inside: status ``error``) and scores its :func:`transform_confidence`.

Transform convention
--------------------
:class:`PairwiseTransform` maps a moving-slice pixel ``p = (row, col)`` to
the fixed-slice pixel ``q = R(theta) (p - c) + c + t``, with ``c`` the image
centre ``((rows - 1) / 2, (cols - 1) / 2)``, ``t = translation_px`` as
``(row, col)`` and ``R(theta) = [[cos, -sin], [sin, cos]]`` acting on
``(row, col)``, i.e. a positive ``rotation_deg`` turns +row towards +col (the
synthetic acquisition's ``R``, which turns +x towards +y, with x = rows).
Resampling the moving slice into the fixed frame reads
``moving[R^T (q - c - t) + c]`` (:meth:`PairwiseTransform.matrix` inverted).

SimpleITK threads follow the global default; the step caps it with
:func:`serialoct.compute.apply_cpu_limits`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Literal, get_args

import numpy as np

from serialoct.align.planes import (
    SAMPLING_PER_LEVEL,
    InitialAlignment,
    RegistrationMetric,
    TransformModel,
    correlate_planes,
    initial_translations,
    prepare_plane,
    refine_transform,
    rotation_matrix,
    tissue_mask,
    warp_to_fixed,
)

__all__ = [
    "Gate",
    "InitialAlignment",
    "PairwiseParams",
    "PairwiseTransform",
    "RegistrationMetric",
    "TransformModel",
    "gate_transform",
    "planes_used",
    "register_pairwise",
    "transform_confidence",
]

log = logging.getLogger(__name__)

Status = Literal["ok", "warning", "error"]
Gate = Literal["full", "rotation_only", "skip"]

#: A transform within this fraction of a bound counts as having hit it (an
#: optimiser that stops there did not find a minimum inside).
_AT_BOUND = 0.999
#: Planes averaged either side of the matched ones (a slab of 2 x this + 1).
SLAB_HALF_PLANES = 2
#: Starts closer than this (px) converge to the same optimum: only the first is refined.
_SAME_START_PX = 1.0


@dataclass(frozen=True)
class PairwiseParams:
    """Options of :func:`register_pairwise` (the guide's names in brackets).

    Attributes
    ----------
    transform : {"euler", "translation"}
        Rigid in-plane or shift only (``registration_transform``).
    max_translation_px : float
        Bound on each translation component, pixels (``registration_max_translation``).
    max_rotation_deg : float
        Bound on the rotation, degrees (``registration_max_rotation``).
    initial_alignment : {"none", "com", "gradient", "both"}
        Coarse start (``registration_initial_alignment``).
    moving_slice_first_index : int
        Moving plane matched against the fixed slice (``moving_slice_first_index``).
    slicing_interval_mm : float
        Cut thickness (``registration_slicing_interval_mm``).
    allowed_drifting_mm : float
        Depth searched either side of the expected plane (``registration_allowed_drifting_mm``).
    metric : {"correlation", "mse"}
        SimpleITK metric of the refinement.
    min_z_correlation : float
        Below this z-correlation the depth match is unreliable: status
        ``warning`` (``z_overlap_min_corr``).
    """

    transform: TransformModel = "euler"
    max_translation_px: float = 200.0
    max_rotation_deg: float = 5.0
    initial_alignment: InitialAlignment = "both"
    moving_slice_first_index: int = 4
    slicing_interval_mm: float = 0.2
    allowed_drifting_mm: float = 0.1
    metric: RegistrationMetric = "correlation"
    min_z_correlation: float = 0.5

    def __post_init__(self) -> None:
        for name, value, allowed in (("transform", self.transform, TransformModel),
                                     ("initial_alignment", self.initial_alignment, InitialAlignment),
                                     ("metric", self.metric, RegistrationMetric)):
            if value not in get_args(allowed):
                raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(get_args(allowed))}")
        if not (self.max_translation_px >= 0 and self.max_rotation_deg >= 0 and self.allowed_drifting_mm >= 0):
            raise ValueError(f"max_translation_px = {self.max_translation_px}, max_rotation_deg = {self.max_rotation_deg}, "
                             f"allowed_drifting_mm = {self.allowed_drifting_mm}: expected numbers >= 0")
        if not self.slicing_interval_mm > 0:
            raise ValueError(f"slicing_interval_mm = {self.slicing_interval_mm}: expected a thickness > 0")
        if self.moving_slice_first_index < 0:
            raise ValueError(f"moving_slice_first_index = {self.moving_slice_first_index}: expected a plane index >= 0")

    @classmethod
    def from_guide(cls, p: Mapping[str, object]) -> PairwiseParams:
        """From resolved workflow parameters (the guide's names)."""
        return cls(
            transform=p["registration_transform"],
            max_translation_px=float(p["registration_max_translation"]),
            max_rotation_deg=float(p["registration_max_rotation"]),
            initial_alignment=p["registration_initial_alignment"],
            moving_slice_first_index=int(p["moving_slice_first_index"]),
            slicing_interval_mm=float(p["registration_slicing_interval_mm"]),
            allowed_drifting_mm=float(p["registration_allowed_drifting_mm"]),
            min_z_correlation=float(p.get("z_overlap_min_corr", 0.5)),
        )


@dataclass(frozen=True)
class PairwiseTransform:
    """The transform from a moving slice to the fixed slice above it, with its QC.

    Attributes
    ----------
    rotation_deg : float
        ``theta`` of the module's convention (+row towards +col), degrees.
    translation_px : (float, float)
        ``t`` as ``(row, col)``, pixels of the working resolution.
    center_px : (float, float)
        Rotation centre ``c`` (the image centre), ``(row, col)``.
    z_index_fixed : int
        Fixed plane that best matches moving plane ``z_index_moving``.
    z_index_moving : int
    expected_z_index_fixed : int
        The plane the nominal cut thickness predicts.
    z_correlation : float
        NCC of the matched planes under the transform, in [-1, 1]; NaN when
        it could not be measured.
    confidence : float
        :func:`transform_confidence`, in [0, 1].
    metric_value : float
        Final SimpleITK metric (``-NCC`` for correlation, mean squares for mse).
    initial_alignment : str
        The start that won: ``none``, ``com`` or ``gradient``.
    status : {"ok", "warning", "error"}
    reason : str
        Why the status is not ``ok`` (empty when it is).
    """

    rotation_deg: float
    translation_px: tuple[float, float]
    center_px: tuple[float, float]
    z_index_fixed: int
    z_index_moving: int
    expected_z_index_fixed: int
    z_correlation: float
    confidence: float
    metric_value: float
    initial_alignment: str
    status: Status
    reason: str = ""

    @property
    def z_offset_planes(self) -> int:
        """Depth of the moving slice's plane 0 in the fixed slice's stack, planes."""
        return self.z_index_fixed - self.z_index_moving

    def matrix(self) -> np.ndarray:
        """Homogeneous 3x3 matrix mapping moving ``(row, col, 1)`` to fixed ``(row, col, 1)``."""
        rot = rotation_matrix(self.rotation_deg)
        c, t = np.asarray(self.center_px), np.asarray(self.translation_px)
        out = np.eye(3)
        out[:2, :2] = rot
        out[:2, 2] = c + t - rot @ c
        return out

    def to_dict(self) -> dict:
        """Plain, JSON-able fields (the transform file); :meth:`from_dict` reads them back."""
        d = asdict(self)
        d["translation_px"], d["center_px"] = list(self.translation_px), list(self.center_px)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> PairwiseTransform:
        values = {k: (float("nan") if v is None else v) for k, v in d.items() if k in cls.__dataclass_fields__}
        values["translation_px"] = tuple(map(float, values["translation_px"]))
        values["center_px"] = tuple(map(float, values["center_px"]))
        return cls(**values)

    def metrics(self, params: PairwiseParams = PairwiseParams()) -> dict[str, dict]:
        """Named metrics ``{value, unit, description, status}`` for the step's metrics JSON (formats.md §5)."""

        def num(v: float) -> float | None:
            return round(float(v), 6) if math.isfinite(v) else None

        bad_bound = self.status == "error" and "beyond" in self.reason
        bad_z = not (self.z_correlation >= params.min_z_correlation)
        return {
            "z_correlation": {"value": num(self.z_correlation), "unit": "", "status": "warning" if bad_z else "ok",
                              "description": "NCC of the matched depth planes under the transform"},
            "z_index_fixed": {"value": self.z_index_fixed, "unit": "plane", "status": "warning" if "edge" in self.reason else "ok",
                              "description": f"fixed plane matching moving plane {self.z_index_moving} "
                                             f"(expected {self.expected_z_index_fixed})"},
            "rotation": {"value": num(self.rotation_deg), "unit": "deg", "status": "error" if bad_bound and "rotation" in self.reason else "ok",
                         "description": "in-plane rotation, +row towards +col, about the image centre"},
            "translation": {"value": [num(v) for v in self.translation_px], "unit": "px",
                            "status": "error" if bad_bound and "translation" in self.reason else "ok",
                            "description": "(row, col) translation, moving to fixed"},
            "confidence": {"value": num(self.confidence), "unit": "", "status": "ok",
                           "description": "z-correlation x margins of the translation and rotation to their bounds"},
            "registration_metric": {"value": num(self.metric_value), "unit": "", "status": "error" if self.status == "error" and not bad_bound else "ok",
                                    "description": f"final {params.metric} metric of the in-plane refinement"},
        }


def transform_confidence(z_correlation: float, translation_px, rotation_deg: float, *,
                         max_translation_px: float, max_rotation_deg: float) -> float:
    """Confidence in [0, 1] of a pairwise transform.

    ``confidence = clip(z_correlation, 0, 1) * (1 - u^4) * (1 - v^4)`` with
    ``u = min(1, max_i |t_i| / max_translation_px)`` and ``v = min(1, |theta|
    / max_rotation_deg)``. The depth match sets the scale: two planes that do
    not show the same tissue say nothing about the transform. The margins to
    the optimiser's bounds cost little until close to a bound, where an
    optimiser stops when the true minimum lies outside (half way keeps 94 %,
    80 % of the way 59 %, the bound itself nothing). A zero bound leaves its
    factor at 1; a NaN z-correlation gives 0.

    Examples
    --------
    >>> round(transform_confidence(0.9, (10.0, 0.0), 1.0, max_translation_px=200, max_rotation_deg=5), 4)
    0.8986
    """
    if not math.isfinite(z_correlation):
        return 0.0
    shift = float(np.max(np.abs(translation_px))) if np.size(translation_px) else 0.0
    u = min(1.0, shift / max_translation_px) if max_translation_px > 0 else 0.0
    v = min(1.0, abs(rotation_deg) / max_rotation_deg) if max_rotation_deg > 0 else 0.0
    return float(np.clip(z_correlation, 0.0, 1.0) * (1.0 - u**4) * (1.0 - v**4))


def gate_transform(t: PairwiseTransform, *, high: float = 0.6, low: float = 0.3, skip_error: bool = True,
                   skip_warning: bool = True, min_z_correlation: float = 0.0, max_rotation_deg: float = 0.0) -> Gate:
    """How much of a transform stacking applies: ``full``, ``rotation_only`` or ``skip``.

    Parameters
    ----------
    t : PairwiseTransform
    high, low : float
        Confidence at or above ``high``: full; at or above ``low``: rotation
        only; below: skip (``transform_confidence_high`` / ``_low``).
    skip_error, skip_warning : bool
        Skip transforms with that status (``skip_error_transforms``,
        ``skip_warning_transforms``).
    min_z_correlation, max_rotation_deg : float
        Skip below this z-correlation / above this rotation; 0 turns the gate
        off (``load_transform_min_zcorr``, ``load_transform_max_rotation``).

    Raises
    ------
    ValueError
        Unless ``0 <= low <= high <= 1``.
    """
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"confidence thresholds low = {low}, high = {high}: expected 0 <= low <= high <= 1")
    if (t.status == "error" and skip_error) or (t.status == "warning" and skip_warning):
        return "skip"
    if min_z_correlation > 0 and not t.z_correlation >= min_z_correlation:
        return "skip"
    if max_rotation_deg > 0 and abs(t.rotation_deg) > max_rotation_deg:
        return "skip"
    if t.confidence >= high:
        return "full"
    return "rotation_only" if t.confidence >= low else "skip"


def _depth_window(n_fixed: int, voxel_size_mm: float, params: PairwiseParams) -> tuple[int, range]:
    expected = int(round(params.slicing_interval_mm / voxel_size_mm)) + params.moving_slice_first_index
    reach = int(round(params.allowed_drifting_mm / voxel_size_mm))
    lo, hi = max(0, expected - reach), min(n_fixed - 1, expected + reach)
    if lo > hi:
        raise ValueError(f"the fixed slice has {n_fixed} planes; matching moving plane {params.moving_slice_first_index} "
                         f"needs plane {expected} ± {reach} (slicing_interval_mm = {params.slicing_interval_mm}, "
                         f"voxel_size_mm = {voxel_size_mm}): crop less or lower moving_slice_first_index")
    return expected, range(lo, hi + 1)


def planes_used(n_fixed: int, n_moving: int, *, voxel_size_mm: float, params: PairwiseParams = PairwiseParams()) -> tuple[range, range]:
    """The planes of the fixed and of the moving slice that :func:`register_pairwise` reads.

    The depth search and the slabs averaged around it: a caller may place
    only these in the canvas (the others are never looked at).

    Raises
    ------
    ValueError
        As :func:`register_pairwise`, for slices too thin for the search.
    """
    _, window = _depth_window(n_fixed, voxel_size_mm, params)
    m, half = params.moving_slice_first_index, SLAB_HALF_PLANES
    return (range(max(0, window.start - half), min(n_fixed, window.stop + half)),
            range(max(0, m - half), min(n_moving, m + half + 1)))


def register_pairwise(fixed: np.ndarray, moving: np.ndarray, *, voxel_size_mm: float,
                      params: PairwiseParams = PairwiseParams()) -> PairwiseTransform:
    """Register a slice to the one above it: matched depth, in-plane transform, z-correlation, confidence.

    Parameters
    ----------
    fixed, moving : ndarray, shape (Z, rows, cols)
        Consecutive normalised slices at the working resolution, surface at
        plane 0; ``fixed`` is the upper one. Same ``(rows, cols)``.
    voxel_size_mm : float
        Axial voxel size, mm (converts the cut thickness and the depth search to planes).
    params : PairwiseParams

    Returns
    -------
    PairwiseTransform
        In the module's convention (moving pixel to fixed pixel, ``(row, col)``).
        Status ``error`` when a plane holds no tissue or the fit reached a
        bound; ``warning`` when the depth match is weak or on the edge of the
        search.

    Raises
    ------
    ValueError
        Stacks that are not 3D, differ in ``(rows, cols)``, or are too thin
        for the planes the parameters name.
    """
    fixed, moving = np.asarray(fixed), np.asarray(moving)
    if fixed.ndim != 3 or moving.ndim != 3 or fixed.shape[1:] != moving.shape[1:]:
        raise ValueError(f"expected two (Z, rows, cols) stacks with the same (rows, cols); got {fixed.shape} and {moving.shape}")
    if not voxel_size_mm > 0:
        raise ValueError(f"voxel_size_mm = {voxel_size_mm}: expected a size > 0")
    m = params.moving_slice_first_index
    if m >= moving.shape[0]:
        raise ValueError(f"moving_slice_first_index = {m} but the moving slice has {moving.shape[0]} planes")
    expected, window = _depth_window(fixed.shape[0], voxel_size_mm, params)
    centre = tuple((np.asarray(fixed.shape[1:], np.float64) - 1.0) / 2.0)
    # Average a few planes either side (the same offsets on both slices, so both slabs span the same
    # tissue depths): speckle is independent from plane to plane, the tissue is not.
    offsets = [o for o in range(-SLAB_HALF_PLANES, SLAB_HALF_PLANES + 1)
               if 0 <= m + o < moving.shape[0] and window.start + o >= 0 and window.stop - 1 + o < fixed.shape[0]]
    moving_plane = prepare_plane(moving[[m + o for o in offsets]].mean(axis=0))
    fixed_planes = {z: prepare_plane(fixed[[z + o for o in offsets]].mean(axis=0)) for z in window}
    start_plane = min(max(expected, window.start), window.stop - 1)
    mask = tissue_mask(moving_plane)

    def result(theta, t, z, zcorr, metric, start, status, reason):
        conf = 0.0 if status == "error" else transform_confidence(
            zcorr, t, theta, max_translation_px=params.max_translation_px, max_rotation_deg=params.max_rotation_deg)
        return PairwiseTransform(float(theta), (float(t[0]), float(t[1])), centre, int(z), m, expected, float(zcorr),
                                 conf, float(metric), start, status, reason)

    if mask is None or tissue_mask(fixed_planes[start_plane]) is None:
        log.info("no tissue in moving plane %d or fixed plane %d: transform left at identity", m, start_plane)
        return result(0.0, (0.0, 0.0), start_plane, float("nan"), float("nan"), "none", "error", "no tissue to register")

    starts = initial_translations(fixed_planes[start_plane], moving_plane, mode=params.initial_alignment,
                                  max_translation_px=params.max_translation_px)
    best, refined = None, []
    for name, t0 in starts.items():
        if any(np.hypot(*(np.asarray(t0) - other)) < _SAME_START_PX for other in refined):
            continue
        refined.append(np.asarray(t0))
        z, _ = _match_depth(fixed_planes, moving_plane, mask, 0.0, t0, centre)
        theta, t, metric = refine_transform(fixed_planes[z], moving_plane, 0.0, t0, centre, transform=params.transform, metric=params.metric,
                                            sampling=SAMPLING_PER_LEVEL)
        if best is None or metric < best[3]:
            best = (name, theta, t, metric, z)
    name, theta, t, metric, z = best
    z_new, zcorr = _match_depth(fixed_planes, moving_plane, mask, theta, t, centre)
    if z_new != z:  # the refined transform prefers another plane: refine there once
        theta, t, metric = refine_transform(fixed_planes[z_new], moving_plane, theta, t, centre, transform=params.transform, metric=params.metric,
                                            sampling=SAMPLING_PER_LEVEL)
        z, zcorr = _match_depth(fixed_planes, moving_plane, mask, theta, t, centre)

    status, reasons = "ok", []
    bound_t = params.max_translation_px
    if np.max(np.abs(t)) >= _AT_BOUND * bound_t:
        t = np.clip(t, -bound_t, bound_t)
        status, reasons = "error", reasons + [f"translation beyond registration_max_translation {bound_t:g} px, clamped"]
    if abs(theta) >= _AT_BOUND * params.max_rotation_deg and params.transform == "euler":
        theta = float(np.clip(theta, -params.max_rotation_deg, params.max_rotation_deg))
        status, reasons = "error", reasons + [f"rotation beyond registration_max_rotation {params.max_rotation_deg:g} deg, clamped"]
    if status == "ok":
        if not zcorr >= params.min_z_correlation:
            status, reasons = "warning", reasons + [f"z_correlation {zcorr:.3f} below {params.min_z_correlation:g}"]
        if len(window) > 2 and z in (window.start, window.stop - 1):
            status, reasons = "warning", reasons + [f"best-matching plane {z} at the edge of the depth search {window.start}..{window.stop - 1}"]
    if reasons:
        log.info("pairwise registration %s: %s", status, "; ".join(reasons))
    return result(theta, t, z, zcorr, metric, name, status, "; ".join(reasons))


def _match_depth(fixed_planes: dict[int, np.ndarray], moving_plane: np.ndarray, mask: np.ndarray,
                 theta: float, t, centre) -> tuple[int, float]:
    """The fixed plane correlating best with the moving plane warped by ``(theta, t)``, and that NCC."""
    warped = warp_to_fixed(moving_plane, theta, t, centre, cval=np.nan)
    warped_mask = warp_to_fixed(mask.astype(np.float32), theta, t, centre, cval=0.0) > 0.5
    scores = {z: correlate_planes(plane, warped, warped_mask) for z, plane in fixed_planes.items()}
    finite = {z: s for z, s in scores.items() if math.isfinite(s)}
    if not finite:
        planes = sorted(fixed_planes)
        return planes[len(planes) // 2], float("nan")
    z = max(finite, key=finite.get)
    return z, finite[z]
