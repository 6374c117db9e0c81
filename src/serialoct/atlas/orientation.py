"""Anatomical orientation codes, reorientation to RAS, and the initial-rotation hint.

Orientation codes
-----------------
A code is three letters, one per array axis of a volume ``(dim0, dim1, dim2)``
(OME-Zarr ``(z, y, x)``), each naming the anatomical direction toward which
that axis's index *grows*: ``R``/``L`` (right/left), ``A``/``P``
(anterior/posterior), ``S``/``I`` (superior/inferior), exactly one letter of
each pair. This is the guide's ``ras_input_orientation``: a coronal stack cut
anterior to posterior, rows running dorsal to ventral and columns left to
right, is ``PIR``.

The RAS array order
-------------------
serialoct's RAS volumes (``{subject}_ras.ome.zarr``, the atlas template once
loaded) are arrays ``(z, y, x)`` with **x growing to the Right, y to the
Anterior and z to the Superior**: code ``"SAR"`` (:data:`RAS_CODE`). Read with
the NGFF axis names, the physical point ``(x, y, z)`` of a voxel is a RAS+
coordinate (as in NIfTI's world space), and the axes carry the NGFF
anatomical orientations ``x: left-to-right``, ``y: posterior-to-anterior``,
``z: inferior-to-superior`` (:func:`ngff_orientations`). Slicing such an array
gives the usual planes: ``vol[k]`` axial, ``vol[:, k]`` coronal,
``vol[:, :, k]`` sagittal.

Physical points are always written in the order ``(R, A, S)`` (``(x, y, z)``,
the reverse of the array order), in mm, as SimpleITK writes them; this RAS
frame is the frame of every transform in :mod:`serialoct.atlas`.

Initial rotation
----------------
``ras_initial_rotation = 'Rx Ry Rz'`` (degrees) is the rotation that brings
the reoriented sample onto the atlas, about its centre: rotation ``Rx``
about the R axis, then ``Ry`` about A, then ``Rz`` about S (fixed axes,
right-handed: a positive angle turns counter-clockwise seen from the positive
end of the axis), i.e. ``R = Rz @ Ry @ Rx`` (:func:`rotation_matrix`). With
one non-zero angle, as in the guide's oblique-cut table, the order does not
matter.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "EXAMPLE_CODES",
    "RAS_CODE",
    "VALID_LETTERS",
    "Reorientation",
    "direction_matrix",
    "ngff_orientations",
    "orientation_from_ngff",
    "parse_orientation",
    "parse_rotation",
    "reorient",
    "reorient_spacing",
    "reorientation",
    "rotation_matrix",
]

log = logging.getLogger(__name__)

#: The code of serialoct's RAS arrays: ``(z, y, x)`` grow toward (Superior, Anterior, Right).
RAS_CODE = "SAR"
#: Letter -> (RAS axis 0=R 1=A 2=S, sign).
_LETTERS = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}
#: The letters accepted, pair by pair, as the error messages list them.
VALID_LETTERS = "R/L (right/left), A/P (anterior/posterior), S/I (superior/inferior)"
#: The guide's table: coronal A->P, P->A, sagittal L->R, R->L, axial D->V, V->D (standard mounting).
EXAMPLE_CODES = ("PIR", "AIR", "RIA", "LIA", "IPR", "SPR")
_PAIRS = ("R/L", "A/P", "S/I")
#: NGFF (RFC-4) anatomical orientation of an axis whose index grows toward each letter.
_NGFF = {
    "R": "left-to-right",
    "L": "right-to-left",
    "A": "posterior-to-anterior",
    "P": "anterior-to-posterior",
    "S": "inferior-to-superior",
    "I": "superior-to-inferior",
}
# RFC-4 also names the S/I pair dorsal/ventral (the usual words for a mouse brain).
_NGFF_ALIASES = {"ventral-to-dorsal": "S", "dorsal-to-ventral": "I"}


def parse_orientation(code: str, *, name: str = "ras_input_orientation") -> str:
    """Validate a 3-letter orientation code and return it in upper case.

    Parameters
    ----------
    code : str
        One letter per array axis ``(dim0, dim1, dim2)``: the anatomical
        direction toward which the axis index grows (module docstring).
        Case-insensitive. The empty string means the volume is already in
        the RAS array order and returns :data:`RAS_CODE`.
    name : str
        The parameter name used in error messages.

    Returns
    -------
    str
        The code, upper case.

    Raises
    ------
    ValueError
        If the code is not three letters from ``R L A P S I`` with one letter
        of each pair; the message lists the valid letters and the guide's
        example codes.

    Examples
    --------
    >>> parse_orientation("pir")
    'PIR'
    >>> parse_orientation("PIX")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ras_input_orientation 'PIX': 'X' is not an anatomical direction; ...
    """
    text = str(code).strip().upper()
    if not text:
        log.info("%s is empty: the volume is taken as already RAS-ordered (%s)", name, RAS_CODE)
        return RAS_CODE
    hint = (
        f"expected 3 letters, one per axis (dim0, dim1, dim2), from {VALID_LETTERS}, "
        f"one of each pair, e.g. {', '.join(EXAMPLE_CODES)}"
    )
    bad = [c for c in text if c not in _LETTERS]
    if bad:
        raise ValueError(f"{name} {code!r}: {bad[0]!r} is not an anatomical direction; {hint}")
    if len(text) != 3:
        raise ValueError(f"{name} {code!r}: {len(text)} letters; {hint}")
    pairs = [_PAIRS[_LETTERS[c][0]] for c in text]
    for pair in _PAIRS:
        if pairs.count(pair) != 1:
            raise ValueError(f"{name} {code!r}: the {pair} axis appears {pairs.count(pair)} times; {hint}")
    return text


def direction_matrix(code: str) -> np.ndarray:
    """Unit RAS direction of each array axis of a volume with this code.

    Returns
    -------
    ndarray, shape (3, 3), float64
        Column ``j`` is the RAS vector ``(R, A, S)`` toward which the index of
        array axis ``j`` grows: a signed permutation matrix. The RAS point of
        voxel ``i`` (array order) is ``origin + D @ (spacing * i)``.

    Examples
    --------
    >>> direction_matrix("SAR").astype(int).tolist()
    [[0, 0, 1], [0, 1, 0], [1, 0, 0]]
    """
    code = parse_orientation(code, name="orientation")
    d = np.zeros((3, 3))
    for j, letter in enumerate(code):
        axis, sign = _LETTERS[letter]
        d[axis, j] = sign
    return d


@dataclass(frozen=True)
class Reorientation:
    """The axis permutation and flips that turn one orientation into another.

    Attributes
    ----------
    permutation : tuple of int
        Output axis ``i`` is input axis ``permutation[i]`` (``np.transpose`` order).
    flips : tuple of bool
        Whether output axis ``i`` is reversed, after the permutation.
    """

    permutation: tuple[int, int, int]
    flips: tuple[bool, bool, bool]

    def apply(self, volume: np.ndarray) -> np.ndarray:
        """Reorient ``volume`` (a view: no copy)."""
        out = np.transpose(volume, self.permutation)
        axes = tuple(i for i, f in enumerate(self.flips) if f)
        return np.flip(out, axis=axes) if axes else out

    def apply_to_index(self, index: np.ndarray, shape: Sequence[int]) -> np.ndarray:
        """Where input voxels ``index`` (shape ``(N, 3)``, input order) land in the output array.

        ``shape`` is the input array's shape.
        """
        index = np.asarray(index, dtype=float)
        out = index[:, list(self.permutation)].copy()
        for i, flip in enumerate(self.flips):
            if flip:
                out[:, i] = shape[self.permutation[i]] - 1 - out[:, i]
        return out


def reorientation(source: str, target: str = RAS_CODE) -> Reorientation:
    """The permutation and flips that turn a ``source``-coded array into a ``target``-coded one.

    Examples
    --------
    >>> reorientation("PIR")  # coronal stack A->P, rows dorsal->ventral, columns left->right
    Reorientation(permutation=(1, 0, 2), flips=(True, True, False))
    """
    source = parse_orientation(source, name="source orientation")
    target = parse_orientation(target, name="target orientation")
    by_axis = {_LETTERS[c][0]: (j, _LETTERS[c][1]) for j, c in enumerate(source)}
    permutation, flips = [], []
    for letter in target:
        axis, sign = _LETTERS[letter]
        j, source_sign = by_axis[axis]
        permutation.append(j)
        flips.append(sign != source_sign)
    return Reorientation(tuple(permutation), tuple(flips))


def reorient(volume: np.ndarray, source: str, target: str = RAS_CODE) -> np.ndarray:
    """Permute and flip the axes of a 3D volume from one orientation code to another.

    Parameters
    ----------
    volume : ndarray, shape (N0, N1, N2)
        Axes as described by ``source``.
    source : str
        Orientation code of ``volume`` (e.g. ``ras_input_orientation``).
    target : str
        Orientation code wanted; by default the RAS array order ``"SAR"``.
        ``reorient(reorient(v, code), RAS_CODE, code)`` gives ``v`` back.

    Returns
    -------
    ndarray
        A view of ``volume`` (``np.ascontiguousarray`` it before handing it
        to code that needs contiguous memory).

    Examples
    --------
    >>> v = np.zeros((4, 3, 2)); v[0, 0, 1] = 1   # PIR: most anterior, most superior, rightmost
    >>> r = reorient(v, "PIR")
    >>> r.shape, tuple(int(i) for i in np.argwhere(r)[0])   # (S, A, R): top, front, right
    ((3, 4, 2), (2, 3, 1))
    """
    if np.ndim(volume) != 3:
        raise ValueError(f"reorient: expected a 3D volume, got shape {np.shape(volume)}")
    return reorientation(source, target).apply(volume)


def reorient_spacing(spacing: Sequence[float], source: str, target: str = RAS_CODE) -> tuple[float, float, float]:
    """Voxel spacing per axis after :func:`reorient` (the permutation only)."""
    if len(spacing) != 3:
        raise ValueError(f"reorient_spacing: expected 3 spacings, got {spacing!r}")
    perm = reorientation(source, target).permutation
    return tuple(float(spacing[j]) for j in perm)


def ngff_orientations(code: str = RAS_CODE) -> tuple[str, str, str]:
    """NGFF anatomical orientation (RFC-4) of each array axis, e.g. ``x: "left-to-right"``.

    Examples
    --------
    >>> ngff_orientations("SAR")
    ('inferior-to-superior', 'posterior-to-anterior', 'left-to-right')
    """
    return tuple(_NGFF[c] for c in parse_orientation(code, name="orientation"))


def orientation_from_ngff(values: Sequence[str | None]) -> str | None:
    """The orientation code of axes carrying NGFF anatomical orientations; None if any is missing.

    Raises
    ------
    ValueError
        If a value is not an anatomical direction, or the three do not form
        a valid code.
    """
    if any(v is None for v in values):
        return None
    lookup = {v: k for k, v in _NGFF.items()} | _NGFF_ALIASES
    letters = []
    for value in values:
        if value not in lookup:
            raise ValueError(f"axis orientation {value!r} is not one of {', '.join(sorted(lookup))}")
        letters.append(lookup[value])
    return parse_orientation("".join(letters), name="axes orientation")


def parse_rotation(
    text: str | Sequence[float] | None, *, name: str = "ras_initial_rotation"
) -> tuple[float, float, float] | None:
    """Parse ``'Rx Ry Rz'`` (degrees, spaces or commas) into three floats; empty gives None.

    Raises
    ------
    ValueError
        If there are not exactly three finite numbers.

    Examples
    --------
    >>> parse_rotation("0 0 45")
    (0.0, 0.0, 45.0)
    >>> parse_rotation("") is None
    True
    """
    if text is None:
        return None
    if isinstance(text, str):
        parts = [p for p in re.split(r"[\s,]+", text.strip()) if p]
        if not parts:
            return None
    else:
        parts = list(text)
    try:
        values = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise ValueError(
            f"{name} {text!r}: expected three angles in degrees 'Rx Ry Rz' about the RAS axes "
            "(e.g. '0 0 45'), or empty for MOMENTS initialisation"
        )
    return values


def rotation_matrix(angles_deg: Sequence[float]) -> np.ndarray:
    """Rotation ``Rz @ Ry @ Rx`` about the RAS axes, acting on ``(R, A, S)`` column vectors.

    Parameters
    ----------
    angles_deg : (float, float, float)
        ``(Rx, Ry, Rz)`` in degrees; right-handed (module docstring).

    Examples
    --------
    >>> np.round(rotation_matrix((0, 0, 90)) @ [1, 0, 0], 6).tolist()   # Rz turns R toward A
    [0.0, 1.0, 0.0]
    """
    rx, ry, rz = (math.radians(float(a)) for a in angles_deg)
    cx, sx, cy, sy, cz, sz = math.cos(rx), math.sin(rx), math.cos(ry), math.sin(ry), math.cos(rz), math.sin(rz)
    mx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    my = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    mz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return mz @ my @ mx
