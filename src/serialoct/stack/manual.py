"""Manual alignment: the exported projections, the hand-corrected transform record, and its refinement.

After ``register_pairwise`` the step ``export_manual_align`` writes, for a
person to correct by hand, each slice's average-intensity projection (AIP) in
the common canvas at a coarse pyramid level and each pair's automated
transform converted to that level. Corrected records returned in
``manual_transforms_dir`` replace the automated transforms of their slices in
``stack`` (:func:`manual_link`), optionally polished by a narrow registration
started from them (:func:`refine_manual`).

Record format (one JSON object per pair, ``slice_zNN.json``, ``NN`` the moving slice)
------------------------------------------------------------------------------------
``{"fixed_id": "03", "moving_id": "04", "rotation_deg": 1.2, "translation_px": [row, col],
"center_px": [row, col], "level": 1}``

The convention of :mod:`serialoct.align.pairwise`, in the pixels of pyramid
level ``level``: a moving-slice pixel ``p = (row, col)`` of the level-``L``
AIP lies on the fixed-slice pixel ``q = R(theta) (p - c) + c + t``, with
``c = center_px``, ``t = translation_px`` and ``R(theta) = [[cos, -sin],
[sin, cos]]`` on ``(row, col)`` (a positive ``rotation_deg`` turns +row
towards +col). Other keys are ignored.

Levels
------
Level ``L`` averages blocks of ``f = 2**L`` canvas pixels (:func:`block_mean`),
so its pixel ``p_L`` is centred on the full-resolution pixel
``p_0 = f p_L + (f - 1) / 2``. Substituting in the map gives the same
rotation, ``t_0 = f t_L`` and ``c_0 = f c_L + (f - 1) / 2``
(:meth:`ManualTransform.at_level`); re-expressing the map about the canvas
centre (:meth:`ManualTransform.about_center`) then gives stacking's
:class:`~serialoct.stack.series.PairLink`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from serialoct.stack.series import PairLink

__all__ = [
    "MANUAL_KEYS",
    "ManualRefinement",
    "ManualTransform",
    "block_mean",
    "canvas_aip",
    "manual_link",
    "matched_planes",
    "refine_manual",
]

log = logging.getLogger(__name__)

#: Keys every manual transform record holds.
MANUAL_KEYS = ("fixed_id", "moving_id", "rotation_deg", "translation_px", "center_px", "level")
#: Planes averaged either side of the matched ones, as in register_pairwise (speckle is independent plane to plane).
SLAB_HALF_PLANES = 2
#: Registration passes: the regular-step optimiser restarts with its full step, and a second pass from the
#: first one's result settles the flat rotation valley (measured: up to 0.04 deg closer on the phantom).
REFINE_PASSES = 2

RefineStatus = Literal["refined", "clamped", "kept_manual"]
_SLICE_ID = re.compile(r"\d{2}")


def _rotation(deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])


@dataclass(frozen=True)
class ManualTransform:
    """A pairwise transform in the pixels of one pyramid level (the record of the module docstring).

    Attributes
    ----------
    fixed_id, moving_id : str
        Two-digit ids of the upper (fixed) and lower (moving) slice.
    rotation_deg : float
        ``theta``, +row towards +col, degrees.
    translation_px : (float, float)
        ``t`` as ``(row, col)``, pixels of level ``level``.
    center_px : (float, float)
        Rotation centre ``c``, ``(row, col)``, pixels of level ``level``.
    level : int
        Pyramid level the pixels belong to (0 = the canvas's full resolution).
    """

    fixed_id: str
    moving_id: str
    rotation_deg: float
    translation_px: tuple[float, float]
    center_px: tuple[float, float]
    level: int = 0

    def __post_init__(self) -> None:
        for name in ("fixed_id", "moving_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _SLICE_ID.fullmatch(value):
                raise ValueError(f"{name} = {value!r}: expected a two-digit slice id such as '07'")
        numbers = (self.rotation_deg, *self.translation_px, *self.center_px)
        if len(self.translation_px) != 2 or len(self.center_px) != 2 or not all(math.isfinite(v) for v in numbers):
            raise ValueError(f"rotation_deg = {self.rotation_deg}, translation_px = {list(self.translation_px)}, "
                             f"center_px = {list(self.center_px)}: expected finite numbers, (row, col) pairs")
        if isinstance(self.level, bool) or not isinstance(self.level, int) or self.level < 0:
            raise ValueError(f"level = {self.level!r}: expected an integer >= 0 (0 = full resolution)")

    @property
    def factor(self) -> int:
        """Canvas pixels per level pixel along each axis, ``2**level``."""
        return 2**self.level

    def matrix(self) -> np.ndarray:
        """Homogeneous 3x3 matrix mapping moving ``(row, col, 1)`` to fixed ``(row, col, 1)``, level pixels."""
        rot = _rotation(self.rotation_deg)
        c, t = np.asarray(self.center_px, np.float64), np.asarray(self.translation_px, np.float64)
        out = np.eye(3)
        out[:2, :2] = rot
        out[:2, 2] = c + t - rot @ c
        return out

    def at_level(self, level: int) -> ManualTransform:
        """The same map in the pixels of ``level`` (see the module docstring: ``t`` scales, ``c`` scales and shifts)."""
        if isinstance(level, bool) or not isinstance(level, int) or level < 0:
            raise ValueError(f"level = {level!r}: expected an integer >= 0")
        f0, f1 = self.factor, 2**level
        # level L -> canvas: p0 = f p + (f - 1) / 2; canvas -> level M: p = (p0 - (g - 1) / 2) / g.
        c0 = f0 * np.asarray(self.center_px, np.float64) + (f0 - 1) / 2.0
        t0 = f0 * np.asarray(self.translation_px, np.float64)
        c1, t1 = (c0 - (f1 - 1) / 2.0) / f1, t0 / f1
        return dataclasses.replace(self, translation_px=(float(t1[0]), float(t1[1])), center_px=(float(c1[0]), float(c1[1])), level=level)

    def about_center(self, center_px) -> ManualTransform:
        """The same map about another rotation centre (same level): ``t' = t + (R - I)(c' - c)``."""
        c_new = np.asarray(center_px, np.float64)
        rot = _rotation(self.rotation_deg)
        t = np.asarray(self.translation_px, np.float64) + (rot - np.eye(2)) @ (c_new - np.asarray(self.center_px, np.float64))
        return dataclasses.replace(self, translation_px=(float(t[0]), float(t[1])), center_px=(float(c_new[0]), float(c_new[1])))

    def to_dict(self) -> dict:
        """The JSON record (:data:`MANUAL_KEYS`); :meth:`from_dict` reads it back."""
        return {"fixed_id": self.fixed_id, "moving_id": self.moving_id, "rotation_deg": float(self.rotation_deg),
                "translation_px": [float(v) for v in self.translation_px], "center_px": [float(v) for v in self.center_px],
                "level": int(self.level)}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ManualTransform:
        """Read a record; extra keys are ignored.

        Raises
        ------
        ValueError
            A missing key (named), or a value of the wrong kind.
        """
        missing = [k for k in MANUAL_KEYS if k not in data]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}; a manual transform record holds {', '.join(MANUAL_KEYS)}")
        try:
            translation = tuple(float(v) for v in data["translation_px"])
            centre = tuple(float(v) for v in data["center_px"])
            rotation = float(data["rotation_deg"])
        except (TypeError, ValueError):
            raise ValueError(f"rotation_deg = {data['rotation_deg']!r}, translation_px = {data['translation_px']!r}, "
                             f"center_px = {data['center_px']!r}: expected a number and two [row, col] pairs") from None
        level = data["level"]
        if isinstance(level, float) and level.is_integer():
            level = int(level)
        return cls(str(data["fixed_id"]), str(data["moving_id"]), rotation, translation, centre, level)

    @classmethod
    def from_pairwise(cls, rotation_deg: float, translation_px, center_px, *, fixed_id: str, moving_id: str,
                      level: int = 0) -> ManualTransform:
        """An automated (full-resolution, canvas) transform, e.g. a ``register_pairwise`` record, at ``level``."""
        full = cls(fixed_id, moving_id, float(rotation_deg), tuple(map(float, translation_px)), tuple(map(float, center_px)), 0)
        return full.at_level(level)


def block_mean(image: np.ndarray, level: int) -> np.ndarray:
    """Downsample a 2D image by ``2**level`` with block means; the last partial blocks are padded with zeros.

    Zero is the canvas's "no data", so padding keeps every level pixel ``p``
    centred on canvas pixel ``2**level * p + (2**level - 1) / 2``.

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
    level : int
        0 returns the image as float32.

    Returns
    -------
    ndarray, shape (ceil(rows / 2**level), ceil(cols / 2**level)), float32

    Examples
    --------
    >>> block_mean(np.arange(6.0).reshape(2, 3), 1)
    array([[2.  , 1.75]], dtype=float32)
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(f"expected a 2D image, got shape {image.shape}")
    if isinstance(level, bool) or not isinstance(level, int) or level < 0:
        raise ValueError(f"level = {level!r}: expected an integer >= 0")
    f = 2**level
    if f == 1:
        return image
    rows, cols = -(-image.shape[0] // f), -(-image.shape[1] // f)
    padded = np.zeros((rows * f, cols * f), dtype=np.float32)
    padded[: image.shape[0], : image.shape[1]] = image
    return padded.reshape(rows, f, cols, f).mean(axis=(1, 3), dtype=np.float64).astype(np.float32)


def canvas_aip(volume: np.ndarray, canvas_shape: tuple[int, int], *, offset_px=(0.0, 0.0), level: int = 0) -> np.ndarray:
    """A slice's average-intensity projection placed in the common canvas, at pyramid level ``level``.

    Parameters
    ----------
    volume : ndarray, shape (Z, h, w)
        The normalised slice.
    canvas_shape : (int, int)
        Canvas ``(rows, cols)`` (``common_space.json``).
    offset_px : (float, float)
        The slice's position in the canvas (``CommonSpace.positions_px``).
    level : int

    Returns
    -------
    ndarray, shape (ceil(rows / 2**level), ceil(cols / 2**level)), float32
        0 outside the slice.

    Notes
    -----
    The mean over depth is taken before the placement: linear resampling is
    linear, so this equals the mean over depth of the slice placed in the
    canvas (``read_in_canvas``) while warping one plane instead of ``Z``.
    """
    from serialoct.stack.render import warp_to_canvas

    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"expected a (Z, rows, cols) slice, got shape {volume.shape}")
    aip = volume.mean(axis=0, dtype=np.float64).astype(np.float32)
    return block_mean(warp_to_canvas(aip, tuple(canvas_shape), offset_px=tuple(offset_px)), level)


def _canvas_centre(canvas_shape) -> np.ndarray:
    return (np.asarray(canvas_shape, np.float64) - 1.0) / 2.0


def manual_link(record: ManualTransform, *, canvas_shape: tuple[int, int], z_offset_planes: int | None = None,
                z_correlation: float = 1.0, source: str = "manual") -> PairLink:
    """Stacking's link from a manual transform: full resolution, about the canvas centre, confidence 1.

    Parameters
    ----------
    record : ManualTransform
        At any level.
    canvas_shape : (int, int)
        Full-resolution canvas ``(rows, cols)``: the centre stacking rotates about.
    z_offset_planes : int, optional
        The depth match to keep (the automated registration's, where it was trusted).
    z_correlation : float
        Carried into the link; the default 1 keeps stacking's z-correlation
        gate on translations (``stack_translation_min_zcorr``) from dropping
        a transform a person has set.
    source : str
        The link's ``source``.
    """
    full = record.at_level(0).about_center(_canvas_centre(canvas_shape))
    return PairLink(full.rotation_deg, full.translation_px, 1.0, float(z_correlation), z_offset_planes, source)


def matched_planes(fixed: np.ndarray, moving: np.ndarray, *, z_fixed: int, z_moving: int,
                   half_planes: int = SLAB_HALF_PLANES) -> tuple[np.ndarray, np.ndarray]:
    """The depth-matched planes of two slices in the canvas, each the mean of a slab around it.

    Parameters
    ----------
    fixed, moving : ndarray, shape (Z, rows, cols)
        The two slices placed in the canvas.
    z_fixed, z_moving : int
        Matched planes (a ``register_pairwise`` record's ``z_index_fixed``, ``z_index_moving``).
    half_planes : int
        Planes averaged either side, the same offsets in both slices (clipped to both stacks).

    Returns
    -------
    (ndarray, ndarray), each shape (rows, cols), float32
    """
    if not (0 <= z_fixed < fixed.shape[0] and 0 <= z_moving < moving.shape[0]):
        raise ValueError(f"z_fixed = {z_fixed}, z_moving = {z_moving}: outside stacks of {fixed.shape[0]} and {moving.shape[0]} planes")
    offsets = [o for o in range(-half_planes, half_planes + 1) if 0 <= z_fixed + o < fixed.shape[0] and 0 <= z_moving + o < moving.shape[0]]
    return (np.asarray(fixed[[z_fixed + o for o in offsets]], np.float32).mean(axis=0),
            np.asarray(moving[[z_moving + o for o in offsets]], np.float32).mean(axis=0))


@dataclass(frozen=True)
class ManualRefinement:
    """What :func:`refine_manual` did, for the step's metrics.

    Attributes
    ----------
    status : {"refined", "clamped", "kept_manual"}
        ``clamped``: the registration went beyond a bound and the result was
        held at it; ``kept_manual``: the manual transform was kept (no tissue,
        zero bounds, or a result that matched worse than it).
    reason : str
        Why the status is not ``refined`` (empty when it is).
    delta_rotation_deg : float
        Rotation added to the manual transform (after clamping).
    delta_translation_px : (float, float)
        ``(row, col)`` translation added, full-resolution pixels, about the canvas centre (after clamping).
    unclamped_delta_rotation_deg, unclamped_delta_translation_px
        What the registration asked for.
    ncc_manual, ncc_refined : float
        NCC of the matched planes over the moving tissue, under the manual and the returned transform.
    """

    status: RefineStatus
    reason: str
    delta_rotation_deg: float
    delta_translation_px: tuple[float, float]
    unclamped_delta_rotation_deg: float
    unclamped_delta_translation_px: tuple[float, float]
    ncc_manual: float
    ncc_refined: float


def _ncc(fixed_plane, moving_plane, mask, theta, t, centre) -> float:
    from serialoct.align.planes import correlate_planes, warp_to_fixed

    warped = warp_to_fixed(moving_plane, theta, t, centre, cval=np.nan)
    warped_mask = warp_to_fixed(mask.astype(np.float32), theta, t, centre, cval=0.0) > 0.5
    return correlate_planes(fixed_plane, warped, warped_mask)


def refine_manual(fixed_plane: np.ndarray, moving_plane: np.ndarray, manual: ManualTransform, *, max_translation_px: float,
                  max_rotation_deg: float, z_offset_planes: int | None = None, z_correlation: float = 1.0
                  ) -> tuple[PairLink, ManualRefinement]:
    """Polish a manual transform with a narrow registration that never strays beyond the bounds from it.

    Parameters
    ----------
    fixed_plane, moving_plane : ndarray, shape (rows, cols)
        Depth-matched planes of the fixed and moving slice in the full-resolution
        canvas (:func:`matched_planes`).
    manual : ManualTransform
        At any level; converted to full resolution about the canvas centre.
    max_translation_px : float
        Largest change of each translation component, full-resolution pixels
        (``refine_max_translation_px``).
    max_rotation_deg : float
        Largest change of the rotation, degrees (``refine_max_rotation_deg``).
    z_offset_planes, z_correlation
        Carried into the link (see :func:`manual_link`).

    Returns
    -------
    (PairLink, ManualRefinement)
        The link has confidence 1 and source ``manual_refined`` (``manual``
        when the manual transform was kept).

    Raises
    ------
    ValueError
        Planes that are not 2D of the same shape, or a negative bound.

    Notes
    -----
    SimpleITK's Euler2D registration (:func:`serialoct.align.planes.refine_transform`,
    NCC, three-level pyramid) starts from the manual transform; the change it
    makes is then clamped per component to the bounds (the regular-step
    optimiser has no bounds). A result that correlates worse than the manual
    transform (NaN included) is discarded: refinement never undoes a person's
    correction on the image evidence it was meant to use.
    """
    from serialoct.align.planes import prepare_plane, refine_transform, tissue_mask

    fixed_plane, moving_plane = np.asarray(fixed_plane), np.asarray(moving_plane)
    if fixed_plane.ndim != 2 or fixed_plane.shape != moving_plane.shape:
        raise ValueError(f"expected two 2D planes of the same shape, got {fixed_plane.shape} and {moving_plane.shape}")
    if not (max_translation_px >= 0 and max_rotation_deg >= 0):
        raise ValueError(f"max_translation_px = {max_translation_px}, max_rotation_deg = {max_rotation_deg}: expected bounds >= 0")
    centre = _canvas_centre(fixed_plane.shape)
    start = manual.at_level(0).about_center(centre)
    theta0, t0 = start.rotation_deg, np.asarray(start.translation_px)
    fixed_p, moving_p = prepare_plane(fixed_plane), prepare_plane(moving_plane)
    mask = tissue_mask(moving_p)

    def kept(reason: str, ncc: float, asked=(0.0, (0.0, 0.0))) -> tuple[PairLink, ManualRefinement]:
        log.info("manual transform of slice %s kept: %s", manual.moving_id, reason)
        link = PairLink(theta0, (float(t0[0]), float(t0[1])), 1.0, float(z_correlation), z_offset_planes, "manual")
        return link, ManualRefinement("kept_manual", reason, 0.0, (0.0, 0.0), asked[0], asked[1], ncc, ncc)

    if mask is None or tissue_mask(fixed_p) is None:
        return kept("no tissue to register", float("nan"))
    ncc_manual = _ncc(fixed_p, moving_p, mask, theta0, t0, centre)
    if max_translation_px == 0 and max_rotation_deg == 0:
        return kept("refinement bounds are 0", ncc_manual)
    theta, t, metric = theta0, t0, float("inf")
    for _ in range(REFINE_PASSES):
        theta_n, t_n, metric_n = refine_transform(fixed_p, moving_p, theta, t, centre, transform="euler", metric="correlation")
        if not metric_n < metric:
            break
        theta, t, metric = theta_n, np.asarray(t_n, np.float64), metric_n
    asked_theta, asked_t = float(theta - theta0), np.asarray(t - t0, np.float64)
    d_theta = float(np.clip(asked_theta, -max_rotation_deg, max_rotation_deg))
    d_t = np.clip(asked_t, -max_translation_px, max_translation_px)
    reasons = []
    if np.any(np.abs(asked_t) > max_translation_px):
        reasons.append(f"translation change ({asked_t[0]:.2f}, {asked_t[1]:.2f}) px beyond refine_max_translation_px "
                       f"{max_translation_px:g}, clamped to the bound")
    if abs(asked_theta) > max_rotation_deg:
        reasons.append(f"rotation change {asked_theta:.3f} deg beyond refine_max_rotation_deg {max_rotation_deg:g}, clamped to the bound")
    theta_f, t_f = theta0 + d_theta, t0 + d_t
    ncc_refined = _ncc(fixed_p, moving_p, mask, theta_f, t_f, centre)
    asked = (asked_theta, (float(asked_t[0]), float(asked_t[1])))
    if not ncc_refined >= ncc_manual:
        return kept(f"refined NCC {ncc_refined:.4f} not above the manual transform's {ncc_manual:.4f}"
                    + (f" ({'; '.join(reasons)})" if reasons else ""), ncc_manual, asked)
    status: RefineStatus = "clamped" if reasons else "refined"
    if reasons:
        log.info("manual transform of slice %s: %s", manual.moving_id, "; ".join(reasons))
    link = PairLink(float(theta_f), (float(t_f[0]), float(t_f[1])), 1.0, float(z_correlation), z_offset_planes, "manual_refined")
    return link, ManualRefinement(status, "; ".join(reasons), d_theta, (float(d_t[0]), float(d_t[1])), asked[0], asked[1],
                                  ncc_manual, ncc_refined)
