"""Which part of each pairwise transform stacking applies, and how they chain.

Pairwise registration gives, for every slice ``k`` after the first, the rigid
map of its pixels into the slice above (``align.pairwise``'s convention, in
the common canvas): ``q = R(theta_k) (p - c) + c + t_k``, ``R`` turning
+row towards +col, ``c`` the rotation centre. Chaining them places slice
``k`` in the frame of the first slice:

    M_k(p) = R(Theta_k) (p - c) + c + tau_k,
    Theta_k = Theta_{k-1} + theta_k,
    tau_k   = tau_{k-1} + R(Theta_{k-1}) t_k

(exact for rigid maps sharing the centre ``c``). :func:`resolve_transforms`
applies the guide's policy on the way:

1. **Gate** each transform on its confidence (:func:`gate_confidence`):
   ``full`` (rotation and translation), ``rotation_only`` or ``skip``; a
   slice that is not used (``use = false``, auto-excluded) is ``skip`` and is
   itself placed by the motor only (identity correction).
2. **Rotations** are clamped to ``±max_rotation_deg`` per pair, accumulated,
   and smoothed by a moving average over ``stack_smooth_window`` slices.
3. **Translations** are dropped below ``stack_translation_min_zcorr`` and
   near the optimiser bound ``stack_max_pairwise_translation`` (a bound hit
   is not a measurement), weighted by confidence, accumulated, capped at
   ``stack_max_cumulative_drift_px`` from the motor baseline and smoothed by a
   Gaussian of ``stack_translation_smooth_sigma`` slices.

``apply_pairwise_transforms = false`` places every slice by the motor only;
``apply_rotation_only`` keeps the rotations and the motor's XY.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

__all__ = [
    "GATES",
    "Gate",
    "SliceTransform",
    "TransformPolicy",
    "accumulate_translations",
    "gate_confidence",
    "resolve_transforms",
    "smooth_rotations",
]

logger = logging.getLogger(__name__)

Gate = Literal["full", "rotation_only", "skip"]
GATES: tuple[str, ...] = ("full", "rotation_only", "skip")

#: A translation within this fraction of ``stack_max_pairwise_translation`` is
#: taken for an optimiser that stopped on its bound rather than at a minimum.
NEAR_BOUND_FRACTION = 0.95


@dataclass(frozen=True)
class SliceTransform:
    """The in-plane correction of one slice in the common canvas.

    Canvas pixel ``q`` of the motor-placed slice pixel ``s`` (rows, cols) is
    ``R(rotation_deg) (s - centre) + centre + translation``.

    Attributes
    ----------
    rotation_deg : float
        Positive turns +row towards +col.
    translation_px : (float, float)
        ``(row, col)``, pixels of the working resolution.
    gate : {"full", "rotation_only", "skip"}
        What was applied of this slice's own pairwise transform.
    """

    rotation_deg: float = 0.0
    translation_px: tuple[float, float] = (0.0, 0.0)
    gate: Gate = "skip"

    @property
    def is_identity(self) -> bool:
        return self.rotation_deg == 0.0 and self.translation_px == (0.0, 0.0)


@dataclass(frozen=True)
class TransformPolicy:
    """The stacking parameters of the guide that decide what is applied (defaults = the guide's).

    See the module docstring; ``from_guide`` reads the guide's names.
    """

    apply_pairwise_transforms: bool = True
    apply_rotation_only: bool = False
    max_rotation_deg: float = 5.0
    transform_confidence_high: float = 0.6
    transform_confidence_low: float = 0.3
    stack_accumulate_translations: bool = True
    stack_confidence_weight_translations: bool = True
    stack_max_cumulative_drift_px: float = 50.0
    stack_max_pairwise_translation: float = 0.0
    stack_smooth_window: int = 5
    stack_translation_smooth_sigma: float = 3.0
    stack_translation_min_zcorr: float = 0.2

    def __post_init__(self) -> None:
        low, high = self.transform_confidence_low, self.transform_confidence_high
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"transform_confidence_low = {low}, transform_confidence_high = {high}: expected 0 <= low <= high <= 1")
        for name in ("max_rotation_deg", "stack_max_cumulative_drift_px", "stack_max_pairwise_translation", "stack_translation_smooth_sigma"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} = {getattr(self, name)}: expected >= 0")
        if self.stack_smooth_window < 0:
            raise ValueError(f"stack_smooth_window = {self.stack_smooth_window}: expected >= 0 (0 = off)")

    @classmethod
    def from_guide(cls, params: Mapping[str, object]) -> TransformPolicy:
        """The policy from a mapping of guide parameters (other keys ignored, missing ones default)."""
        return cls(**{k: params[k] for k in cls.__dataclass_fields__ if k in params})


def gate_confidence(confidence: float, *, high: float = 0.6, low: float = 0.3) -> Gate:
    """Gate a transform on its confidence: ``full`` at or above ``high``, ``rotation_only`` at or above ``low``, else ``skip``.

    A NaN confidence is ``skip``.

    Raises
    ------
    ValueError
        Unless ``0 <= low <= high <= 1``.

    Examples
    --------
    >>> gate_confidence(0.7), gate_confidence(0.4), gate_confidence(0.1)
    ('full', 'rotation_only', 'skip')
    """
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"confidence thresholds low = {low}, high = {high}: expected 0 <= low <= high <= 1")
    if confidence >= high:
        return "full"
    return "rotation_only" if confidence >= low else "skip"


def smooth_rotations(rotations_deg: Sequence[float], *, window: int) -> np.ndarray:
    """Moving average of per-slice rotations over ``window`` slices (0 or 1: unchanged).

    Edges repeat the end values (``mode="nearest"``), so a constant sequence
    stays constant and the ends are not pulled towards 0.

    Returns
    -------
    ndarray, shape (S,), float64, degrees
    """
    values = np.asarray(rotations_deg, dtype=np.float64)
    if window < 0:
        raise ValueError(f"window = {window}: expected >= 0 (0 = off)")
    if window <= 1 or values.size < 2:
        return values.copy()
    return ndimage.uniform_filter1d(values, size=int(window), mode="nearest")


def accumulate_translations(
    translations_px: np.ndarray,
    rotations_before_deg: Sequence[float] | None = None,
    *,
    max_drift_px: float = 0.0,
    smooth_sigma: float = 0.0,
) -> np.ndarray:
    """Chain pairwise translations into canvas offsets, cap the drift, smooth.

    Parameters
    ----------
    translations_px : ndarray, shape (S, 2), pixels
        Translation of each slice relative to the one above, ``(row, col)``,
        already gated and weighted (row 0, the first slice, is normally 0).
    rotations_before_deg : sequence of float, shape (S,), optional
        Accumulated rotation of the slice above each one (``Theta_{k-1}``):
        the pairwise translation is rotated by it before it is added. None:
        no rotation.
    max_drift_px : float
        Largest distance of an accumulated offset from the motor baseline;
        longer offsets are scaled back onto that circle (0 = unlimited).
    smooth_sigma : float
        Gaussian sigma in slices applied to the accumulated offsets (0 = off).

    Returns
    -------
    ndarray, shape (S, 2), float64, pixels
    """
    t = np.asarray(translations_px, dtype=np.float64).reshape(-1, 2)
    before = np.zeros(len(t)) if rotations_before_deg is None else np.asarray(rotations_before_deg, dtype=np.float64)
    if before.shape != (len(t),):
        raise ValueError(f"rotations_before_deg has shape {before.shape}, expected ({len(t)},)")
    out = np.zeros_like(t)
    total = np.zeros(2)
    for k in range(len(t)):
        total = total + _rotation(before[k]) @ t[k]
        out[k] = total
    if max_drift_px > 0:
        norm = np.hypot(out[:, 0], out[:, 1])
        over = norm > max_drift_px
        if over.any():
            logger.info("translation drift capped at %g px on %d slice(s) (largest %.1f px)", max_drift_px, int(over.sum()), float(norm.max()))
            out[over] *= (max_drift_px / norm[over])[:, None]
    if smooth_sigma > 0 and len(out) > 1:
        out = ndimage.gaussian_filter1d(out, sigma=float(smooth_sigma), axis=0, mode="nearest")
    return out


def _rotation(deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])


def resolve_transforms(
    rotation_deg: Sequence[float],
    translation_px: np.ndarray,
    confidence: Sequence[float],
    z_correlation: Sequence[float],
    *,
    usable: Sequence[bool] | None = None,
    policy: TransformPolicy = TransformPolicy(),
) -> tuple[SliceTransform, ...]:
    """Per-slice canvas corrections from the pairwise transforms, under the stacking policy.

    Parameters
    ----------
    rotation_deg : sequence of float, shape (S,)
        Pairwise rotation of each slice relative to the slice above (entry 0,
        the first slice, is ignored); NaN: no transform.
    translation_px : ndarray, shape (S, 2)
        Pairwise translation ``(row, col)``, pixels; NaN: no transform.
    confidence, z_correlation : sequence of float, shape (S,)
        The transforms' confidence and depth-match NCC.
    usable : sequence of bool, shape (S,), optional
        False for slices marked ``use = false`` or auto-excluded, and for
        transforms the caller gated out (status error / warning): their
        pairwise transform is skipped; a slice marked unusable is placed by
        the motor only.
    policy : TransformPolicy

    Returns
    -------
    tuple of SliceTransform, length S
        Slice 0 is the identity (the reference of the chain).
    """
    rot = np.asarray(rotation_deg, dtype=np.float64)
    n = rot.size
    trans = np.asarray(translation_px, dtype=np.float64).reshape(n, 2)
    conf = np.asarray(confidence, dtype=np.float64)
    zc = np.asarray(z_correlation, dtype=np.float64)
    use = np.ones(n, dtype=bool) if usable is None else np.asarray(usable, dtype=bool)
    if conf.shape != (n,) or zc.shape != (n,) or use.shape != (n,):
        raise ValueError(f"rotation_deg has {n} slices but confidence, z_correlation, usable have shapes {conf.shape}, {zc.shape}, {use.shape}")
    p = policy
    if not p.apply_pairwise_transforms or n == 0:
        return tuple(SliceTransform() for _ in range(n))
    gates: list[Gate] = ["skip"] * n
    for k in range(1, n):
        ok = use[k] and np.isfinite(rot[k]) and np.all(np.isfinite(trans[k]))
        gates[k] = gate_confidence(conf[k], high=p.transform_confidence_high, low=p.transform_confidence_low) if ok else "skip"
        if p.apply_rotation_only and gates[k] == "full":
            gates[k] = "rotation_only"
    applied_rot = np.array([np.clip(rot[k], -p.max_rotation_deg, p.max_rotation_deg) if gates[k] != "skip" else 0.0 for k in range(n)])
    clamped = int(np.sum([g != "skip" and abs(rot[k]) > p.max_rotation_deg for k, g in enumerate(gates)]))
    if clamped:
        logger.info("%d rotation(s) clamped to ±%g°", clamped, p.max_rotation_deg)
    theta = smooth_rotations(np.cumsum(applied_rot), window=p.stack_smooth_window)

    step = np.zeros((n, 2))
    for k in range(1, n):
        if gates[k] != "full" or not p.stack_accumulate_translations:
            continue
        if not zc[k] >= p.stack_translation_min_zcorr:
            continue
        bound = p.stack_max_pairwise_translation
        if bound > 0 and np.max(np.abs(trans[k])) >= NEAR_BOUND_FRACTION * bound:
            logger.info("slice %d: translation %s at the optimiser bound %g px; dropped", k, trans[k].tolist(), bound)
            continue
        step[k] = trans[k] * (np.clip(conf[k], 0.0, 1.0) if p.stack_confidence_weight_translations else 1.0)
    theta_before = np.concatenate([[0.0], theta[:-1]])
    tau = accumulate_translations(step, theta_before, max_drift_px=p.stack_max_cumulative_drift_px, smooth_sigma=p.stack_translation_smooth_sigma)
    counts = {g: gates[1:].count(g) for g in GATES}
    logger.info("pairwise transforms: %d full, %d rotation only, %d skipped", counts["full"], counts["rotation_only"], counts["skip"])
    return tuple(
        SliceTransform(float(theta[k]), (float(tau[k, 0]), float(tau[k, 1])), gates[k]) if use[k] or k == 0 else SliceTransform()
        for k in range(n)
    )
