"""Rotation diagnostics of a series: how rotation accumulates from slice to slice, and the acquisition frame's rotation.

Two questions, both answered from records the reconstruction already wrote
(the pairwise registrations, the motor shifts, the stack's applied
transforms):

* :func:`analyze_rotation_drift`: each registration measures the rotation of
  a slice relative to the one above it; summed down the series, they give the
  rotation every slice has relative to the first (the *cumulative* rotation,
  what stacking applies when every transform passes its gates). A slice whose
  pair rotation or cumulative rotation exceeds a threshold is flagged: a
  large pair rotation is usually a bad registration, a steadily growing sum a
  drift that a small bias per pair builds up.
* :func:`estimate_acquisition_rotation`: the stage moves the sample between
  slices by the motor step ``s_k`` (``shifts_xy``); the common space places
  each slice by minus its cumulative step, and registration then measures
  the correction ``t_k`` still needed. If the stage axes are rotated by
  ``theta`` relative to the image axes, the content really moved by
  ``R(theta) s_k`` and the correction is ``t_k = -(R(theta) - I) s_k``:
  registration measures the displacement ``u_k = s_k - t_k = R(theta) s_k``.
  The angle (and scale) of the similarity that best maps the motor steps onto
  the measured displacements is the acquisition rotation.

Angles follow :func:`serialoct.stack.render.canvas_matrix`: ``R(theta) =
[[cos, -sin], [sin, cos]]`` acting on ``(row, col)`` canvas vectors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "AcquisitionRotation", "PairAngle", "PairRotation", "RotationDrift", "analyze_rotation_drift",
    "estimate_acquisition_rotation", "plot_acquisition_rotation", "plot_rotation_drift",
]


@dataclass(frozen=True)
class PairRotation:
    """One pairwise registration, as the diagnostics read it (``register_pairwise/slice_zNN_transform.json``).

    Attributes
    ----------
    fixed_id, moving_id : str
        Two-digit ids; the transform moves ``moving_id`` onto ``fixed_id``.
    rotation_deg : float
        Rotation of the moving slice about the canvas centre, degrees.
    translation_px : (float, float)
        Translation ``(row, col)`` of the moving slice after the common-space placement, pixels.
    confidence : float
        Registration confidence in [0, 1].
    status : str
        ``"ok"``, ``"warning"`` or ``"error"``.
    """

    fixed_id: str
    moving_id: str
    rotation_deg: float
    translation_px: tuple[float, float] = (0.0, 0.0)
    confidence: float = 1.0
    status: str = "ok"

    @classmethod
    def from_dict(cls, record: Mapping) -> PairRotation:
        """From a transform record (``fixed_id``, ``moving_id``, ``rotation_deg``, ``translation_px``; optional
        ``confidence`` and ``status``). Raises ValueError, TypeError or KeyError on a malformed record."""
        t = record.get("translation_px", (0.0, 0.0))
        return cls(str(record["fixed_id"]), str(record["moving_id"]), float(record["rotation_deg"]), (float(t[0]), float(t[1])),
                   float(record.get("confidence", 1.0)), str(record.get("status", "ok")))


@dataclass(frozen=True, eq=False)
class RotationDrift:
    """Rotation along the series.

    Attributes
    ----------
    slice_ids : tuple of str
        The moving slice of every pair, in slice order (the first slice, the
        reference, is not listed: its rotation is 0).
    pair_deg : ndarray, shape (n,), float64
        Rotation of each slice relative to the one above it.
    cumulative_deg : ndarray, shape (n,), float64
        Sum of the pair rotations down to each slice: its rotation relative to the first slice.
    applied_deg : ndarray, shape (n,), float64
        The rotation stacking applied to each slice (``stack/metrics.json``); NaN where unknown.
    flagged : tuple of (str, str)
        ``(slice_id, reason)`` of every slice above the threshold.
    threshold_deg : float
    drift_deg_per_slice : float
        Slope of a least-squares line through the cumulative rotation against
        the slice index (NaN with fewer than two pairs).
    """

    slice_ids: tuple[str, ...]
    pair_deg: np.ndarray
    cumulative_deg: np.ndarray
    applied_deg: np.ndarray
    flagged: tuple[tuple[str, str], ...]
    threshold_deg: float
    drift_deg_per_slice: float

    @property
    def total_deg(self) -> float:
        """Cumulative rotation of the last slice (0 without pairs)."""
        return float(self.cumulative_deg[-1]) if self.cumulative_deg.size else 0.0

    @property
    def max_abs_cumulative_deg(self) -> float:
        return float(np.max(np.abs(self.cumulative_deg))) if self.cumulative_deg.size else 0.0

    @property
    def max_abs_pair_deg(self) -> float:
        return float(np.max(np.abs(self.pair_deg))) if self.pair_deg.size else 0.0

    def to_dict(self) -> dict:
        """The JSON report: summary and one row per slice (plain Python types; NaN as None)."""
        def num(v):
            return None if not math.isfinite(v) else round(float(v), 5)

        flagged = dict(self.flagged)
        return {
            "threshold_deg": self.threshold_deg,
            "n_pairs": len(self.slice_ids),
            "total_deg": num(self.total_deg),
            "max_abs_cumulative_deg": num(self.max_abs_cumulative_deg),
            "max_abs_pair_deg": num(self.max_abs_pair_deg),
            "drift_deg_per_slice": num(self.drift_deg_per_slice),
            "flagged": [{"slice_id": s, "reason": r} for s, r in self.flagged],
            "slices": [{"slice_id": s, "pair_deg": num(p), "cumulative_deg": num(c), "applied_deg": num(a),
                        "flagged": s in flagged}
                       for s, p, c, a in zip(self.slice_ids, self.pair_deg, self.cumulative_deg, self.applied_deg)],
        }


def analyze_rotation_drift(
    pairs: Sequence[PairRotation],
    *,
    threshold_deg: float = 2.0,
    applied_deg: Mapping[str, float] | None = None,
) -> RotationDrift:
    """Cumulative rotation down the series from the pairwise registrations, with the slices above a threshold.

    Parameters
    ----------
    pairs : sequence of PairRotation
        The pairwise registrations (any order; one per moving slice). A pair
        across a missing slice counts like any other: the cumulative rotation
        is the sum of every measured step.
    threshold_deg : float
        ``diagnostic_rotation_threshold``: a slice is flagged when its pair
        rotation or its cumulative rotation exceeds it in magnitude.
    applied_deg : mapping of str to float, optional
        Rotation stacking applied to each slice (``rotation_deg`` of
        ``stack/metrics.json`` ``info.slices``), reported beside the sum.

    Returns
    -------
    RotationDrift

    Raises
    ------
    ValueError
        For a negative threshold or two pairs with the same moving slice.

    Examples
    --------
    >>> pairs = [PairRotation(f"{k:02d}", f"{k + 1:02d}", 0.75) for k in range(4)]
    >>> drift = analyze_rotation_drift(pairs, threshold_deg=2.0)
    >>> drift.total_deg, drift.flagged
    (3.0, (('03', 'cumulative rotation 2.25° > 2°'), ('04', 'cumulative rotation 3° > 2°')))
    """
    if not threshold_deg >= 0:
        raise ValueError(f"threshold_deg = {threshold_deg}: expected a number >= 0")
    ordered = sorted(pairs, key=lambda p: p.moving_id)
    ids = tuple(p.moving_id for p in ordered)
    if len(set(ids)) != len(ids):
        raise ValueError(f"several registrations for one moving slice in {list(ids)}")
    pair = np.array([p.rotation_deg for p in ordered], dtype=np.float64)
    cumulative = np.cumsum(pair)
    applied = np.array([float((applied_deg or {}).get(s, math.nan)) for s in ids], dtype=np.float64)
    flagged = []
    for s, p, c in zip(ids, pair, cumulative):
        reasons = []
        if abs(p) > threshold_deg:
            reasons.append(f"pair rotation {p:.3g}° > {threshold_deg:g}°")
        if abs(c) > threshold_deg:
            reasons.append(f"cumulative rotation {c:.3g}° > {threshold_deg:g}°")
        if reasons:
            flagged.append((s, "; ".join(reasons)))
    if len(ids) >= 2:
        index = np.array([int(s) for s in ids], dtype=np.float64)
        slope = float(np.polyfit(index, cumulative, 1)[0])
    else:
        slope = math.nan
    return RotationDrift(ids, pair, cumulative, applied, tuple(flagged), float(threshold_deg), slope)


def plot_rotation_drift(drift: RotationDrift, *, size: tuple[int, int] = (360, 720)) -> np.ndarray:
    """Pair, cumulative and applied rotation against the slice, flagged slices marked; RGB uint8 ``(rows, cols, 3)``."""
    from serialoct.align.shifts_analysis import line_plot

    flagged = {s for s, _ in drift.flagged}
    marks = [i for i, s in enumerate(drift.slice_ids) if s in flagged]
    series = [drift.pair_deg, drift.cumulative_deg]
    labels = ["pair rotation (deg)", "cumulative (deg)"]
    if np.any(np.isfinite(drift.applied_deg)):
        series.append(drift.applied_deg)
        labels.append("applied by stack (deg)")
    first = drift.slice_ids[0] if drift.slice_ids else "-"
    last = drift.slice_ids[-1] if drift.slice_ids else "-"
    title = f"rotation drift, slices {first}..{last}; threshold {drift.threshold_deg:g} deg; {len(marks)} flagged"
    return line_plot(series, labels=labels, markers=[marks, marks], title=title, size=size)


@dataclass(frozen=True)
class PairAngle:
    """One pair's evidence for the acquisition rotation.

    Attributes
    ----------
    moving_id : str
    step_px : (float, float)
        Motor step ``s`` of the moving slice, ``(row, col)`` working pixels.
    measured_px : (float, float)
        Displacement registration measured, ``u = s - t``.
    angle_deg : float
        Angle from ``s`` to ``u`` (NaN when the step is too short to tell).
    weight : float
        Its weight in the fit (0: not used).
    """

    moving_id: str
    step_px: tuple[float, float]
    measured_px: tuple[float, float]
    angle_deg: float
    weight: float


@dataclass(frozen=True)
class AcquisitionRotation:
    """Rotation (and scale) between the stage axes and the image axes, from the motor steps and the registrations.

    Attributes
    ----------
    angle_deg : float
        ``theta`` of the similarity ``u = scale R(theta) s`` fitted to every
        usable pair (NaN when none is usable).
    scale : float
        Its scale (1: the stage's pixel size is right).
    residual_rms_px : float
        RMS of ``u - scale R(theta) s`` over the used pairs.
    n_used : int
        Pairs whose motor step was long enough and whose registration did not fail.
    pairs : tuple of PairAngle
    mean_pair_rotation_deg : float
        Confidence-weighted mean of the pairs' own rotations: a rotation that
        every slice shows relative to the one above (NaN without pairs).
    """

    angle_deg: float
    scale: float
    residual_rms_px: float
    n_used: int
    pairs: tuple[PairAngle, ...]
    mean_pair_rotation_deg: float

    def to_dict(self) -> dict:
        def num(v):
            return None if not math.isfinite(v) else round(float(v), 5)

        return {
            "angle_deg": num(self.angle_deg), "scale": num(self.scale), "residual_rms_px": num(self.residual_rms_px),
            "n_used": self.n_used, "mean_pair_rotation_deg": num(self.mean_pair_rotation_deg),
            "convention": "measured displacement u = s - t = scale * R(angle) * s; R = [[cos, -sin], [sin, cos]] on (row, col)",
            "pairs": [{"moving_id": p.moving_id, "step_px": [num(v) for v in p.step_px], "measured_px": [num(v) for v in p.measured_px],
                       "angle_deg": num(p.angle_deg), "weight": num(p.weight)} for p in self.pairs],
        }


def estimate_acquisition_rotation(
    motor_steps_px: Mapping[str, tuple[float, float]],
    registrations: Sequence[PairRotation],
    *,
    min_step_px: float = 2.0,
) -> AcquisitionRotation:
    """Estimate the rotation of the acquisition (stage) frame relative to the image frame.

    What is estimated: the angle ``theta`` (and scale) of the similarity
    that maps each motor step ``s_k`` between consecutive slices onto the
    displacement registration measured between them, ``u_k = s_k - t_k``
    (``t_k``: the registration's translation, the correction left after the
    common space placed the slice by its motor shift). A stage whose axes are
    rotated by ``theta`` against the camera makes every correction
    ``t_k = -(R(theta) - I) s_k``, perpendicular to the step and proportional
    to its length; a slice-to-slice rotation of the sample itself shows
    instead in the registrations' own rotations, reported as
    ``mean_pair_rotation_deg``.

    Parameters
    ----------
    motor_steps_px : mapping of str to (float, float)
        Motor step ``(row, col)`` of each moving slice relative to the slice
        above, in the working pixels of the canvas (``shifts_xy`` mm columns
        divided by the voxel).
    registrations : sequence of PairRotation
        The pairwise registrations; those with status ``"error"`` are not used.
    min_step_px : float
        Shorter steps carry no angle information (a 1 px error on a 2 px step
        is 30°) and are left out of the per-pair angles; the fit weighs each
        pair by ``confidence * |s|^2`` anyway.

    Returns
    -------
    AcquisitionRotation

    Notes
    -----
    The weighted least-squares similarity without translation has the closed
    form ``a = sum w s.u / sum w |s|^2``, ``b = sum w (s x u) / sum w |s|^2``
    (``s x u = s_r u_c - s_c u_r``), ``theta = atan2(b, a)``, ``scale =
    hypot(a, b)``. The rotation of the registration about the canvas centre
    also moves the slice; since the registrations are taken about the same
    centre for every pair, that part is not separable from ``t_k`` here and
    adds scatter, not bias, when the pair rotations average to zero.

    Examples
    --------
    >>> import math
    >>> th = math.radians(1.5)
    >>> steps = {"02": (40.0, 0.0), "03": (0.0, -30.0)}
    >>> regs = [PairRotation("01", "02", 0.0, (40 - 40 * math.cos(th), -40 * math.sin(th))),
    ...         PairRotation("02", "03", 0.0, (-30 * math.sin(th), -30 + 30 * math.cos(th)))]
    >>> round(estimate_acquisition_rotation(steps, regs).angle_deg, 6)
    1.5
    """
    if not min_step_px >= 0:
        raise ValueError(f"min_step_px = {min_step_px}: expected a number >= 0")
    evidence, rows = [], []
    for reg in sorted(registrations, key=lambda r: r.moving_id):
        if reg.moving_id not in motor_steps_px:
            continue
        s = np.asarray(motor_steps_px[reg.moving_id], dtype=np.float64)
        u = s - np.asarray(reg.translation_px, dtype=np.float64)
        length = float(np.hypot(*s))
        usable = reg.status != "error" and length >= min_step_px and math.isfinite(reg.confidence)
        angle = math.degrees(math.atan2(s[0] * u[1] - s[1] * u[0], float(s @ u))) if usable else math.nan
        weight = max(float(reg.confidence), 0.0) * length**2 if usable else 0.0
        evidence.append(PairAngle(reg.moving_id, (float(s[0]), float(s[1])), (float(u[0]), float(u[1])), angle, weight))
        if weight > 0:
            rows.append((s, u, weight))
    rotations = [(r.rotation_deg, max(r.confidence, 0.0)) for r in registrations if r.status != "error"]
    total = sum(w for _, w in rotations)
    mean_rot = sum(a * w for a, w in rotations) / total if total > 0 else math.nan
    if not rows:
        return AcquisitionRotation(math.nan, math.nan, math.nan, 0, tuple(evidence), mean_rot)
    norm = sum(w * float(s @ s) for s, _, w in rows)
    a = sum(w * float(s @ u) for s, u, w in rows) / norm
    b = sum(w * float(s[0] * u[1] - s[1] * u[0]) for s, u, w in rows) / norm
    model = np.array([[a, -b], [b, a]])
    residual = math.sqrt(np.mean([float(np.sum((u - model @ s) ** 2)) for s, u, _ in rows]))
    return AcquisitionRotation(math.degrees(math.atan2(b, a)), math.hypot(a, b), residual, len(rows), tuple(evidence), mean_rot)


def plot_acquisition_rotation(result: AcquisitionRotation, *, size: tuple[int, int] = (360, 720)) -> np.ndarray:
    """Per-pair angle from motor step to measured displacement, with the fitted angle; RGB uint8 ``(rows, cols, 3)``."""
    from serialoct.align.shifts_analysis import line_plot

    angles = np.array([p.angle_deg for p in result.pairs], dtype=np.float64)
    fitted = np.full(angles.shape, result.angle_deg)
    title = (f"acquisition rotation {result.angle_deg:.3g} deg (scale {result.scale:.4g}, {result.n_used} pairs); "
             f"mean pair rotation {result.mean_pair_rotation_deg:.3g} deg")
    used = [i for i, p in enumerate(result.pairs) if p.weight > 0]
    return line_plot([angles, fitted], labels=["angle step -> measured (deg)", "fitted (deg)"], markers=[used], title=title, size=size)
