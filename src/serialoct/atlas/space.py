"""Where the voxels of a volume lie in the RAS frame: :class:`VolumeGrid`.

Every volume that takes part in atlas registration (the brain at the
registration level, the atlas template, an output block) is described by a
grid: its shape, voxel spacing and orientation code (array order), and the RAS
point of its first voxel. Two grids over the same volume in different array
orders (the raw ``PIR`` stack and its reoriented ``SAR`` copy) map each voxel
to the same RAS point, which is what lets the resampler read blocks of the
raw stack without reorienting it first.

Points are ``(R, A, S)`` in mm (:mod:`serialoct.atlas.orientation`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from serialoct.atlas.orientation import RAS_CODE, direction_matrix, parse_orientation, reorientation

__all__ = ["VolumeGrid"]


@dataclass(frozen=True)
class VolumeGrid:
    """Geometry of a 3D array in the RAS frame.

    Attributes
    ----------
    shape : (int, int, int)
        Array shape ``(dim0, dim1, dim2)``.
    spacing_mm : (float, float, float)
        Voxel size along each array axis, mm.
    orientation : str
        Orientation code of the array (default ``"SAR"``, the RAS array order).
    origin_mm : (float, float, float)
        RAS point ``(R, A, S)`` of the centre of voxel ``(0, 0, 0)``.

    Notes
    -----
    The RAS point of voxel ``i`` (array order) is
    ``origin_mm + D @ (spacing_mm * i)`` with ``D = direction_matrix(orientation)``.

    Examples
    --------
    >>> g = VolumeGrid((10, 20, 30), (0.1, 0.1, 0.1), "PIR")
    >>> g.index_to_ras([[1, 2, 3]]).round(6).tolist()   # P, I, R: (R, A, S) = (0.3, -0.1, -0.2)
    [[0.3, -0.1, -0.2]]
    >>> r = g.reoriented()
    >>> r.shape, r.orientation
    ((20, 10, 30), 'SAR')
    """

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    orientation: str = RAS_CODE
    origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        shape = tuple(int(n) for n in self.shape)
        spacing = tuple(float(s) for s in self.spacing_mm)
        origin = tuple(float(o) for o in self.origin_mm)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"VolumeGrid shape {self.shape!r}: expected three positive sizes")
        if len(spacing) != 3 or not all(np.isfinite(spacing)) or min(spacing) <= 0:
            raise ValueError(f"VolumeGrid spacing_mm {self.spacing_mm!r}: expected three positive voxel sizes in mm")
        if len(origin) != 3 or not all(np.isfinite(origin)):
            raise ValueError(f"VolumeGrid origin_mm {self.origin_mm!r}: expected a finite RAS point (R, A, S)")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "spacing_mm", spacing)
        object.__setattr__(self, "origin_mm", origin)
        object.__setattr__(self, "orientation", parse_orientation(self.orientation, name="VolumeGrid orientation"))

    @classmethod
    def from_ngff(
        cls,
        shape: Sequence[int],
        voxel_size_mm: Sequence[float],
        translation_mm: Sequence[float] = (0.0, 0.0, 0.0),
        orientation: str = RAS_CODE,
    ) -> VolumeGrid:
        """The grid of an OME-Zarr level: NGFF scale and translation (array order) plus a code.

        The NGFF position ``translation + index * scale`` of each voxel is
        mapped to RAS by the code's signed permutation, so every level of a
        pyramid lands in the same RAS frame.
        """
        origin = direction_matrix(orientation) @ np.asarray(translation_mm, dtype=float)
        return cls(tuple(shape), tuple(voxel_size_mm), orientation, tuple(origin))

    @property
    def ngff_translation_mm(self) -> tuple[float, float, float]:
        """The NGFF ``translation`` (array order) that puts voxel 0 at ``origin_mm``; inverse of :meth:`from_ngff`."""
        return tuple(float(t) for t in self.direction.T @ np.asarray(self.origin_mm))

    @property
    def direction(self) -> np.ndarray:
        """``(3, 3)``: column ``j`` is the RAS unit vector of array axis ``j``."""
        return direction_matrix(self.orientation)

    @property
    def affine(self) -> np.ndarray:
        """``(4, 4)`` homogeneous map from array index ``(i0, i1, i2, 1)`` to ``(R, A, S, 1)``."""
        out = np.eye(4)
        out[:3, :3] = self.direction * np.asarray(self.spacing_mm)
        out[:3, 3] = self.origin_mm
        return out

    @property
    def centre_mm(self) -> np.ndarray:
        """RAS point of the grid's centre."""
        return self.index_to_ras([(np.asarray(self.shape) - 1) / 2.0])[0]

    def index_to_ras(self, index: np.ndarray | Sequence) -> np.ndarray:
        """RAS points ``(N, 3)`` of array indices ``(N, 3)`` (fractional allowed)."""
        index = np.atleast_2d(np.asarray(index, dtype=float))
        return index @ self.affine[:3, :3].T + self.affine[:3, 3]

    def ras_to_index(self, points: np.ndarray | Sequence) -> np.ndarray:
        """Fractional array indices ``(N, 3)`` of RAS points ``(N, 3)``."""
        points = np.atleast_2d(np.asarray(points, dtype=float))
        inverse = np.linalg.inv(self.affine)
        return points @ inverse[:3, :3].T + inverse[:3, 3]

    def reoriented(self, target: str = RAS_CODE) -> VolumeGrid:
        """The grid of ``reorient(volume, self.orientation, target)``: same voxels, same RAS points."""
        r = reorientation(self.orientation, target)
        first = [self.shape[p] - 1 if flip else 0 for p, flip in zip(r.permutation, r.flips, strict=True)]
        index = np.zeros(3)
        for i, p in enumerate(r.permutation):
            index[p] = first[i]
        return VolumeGrid(
            tuple(self.shape[p] for p in r.permutation),
            tuple(self.spacing_mm[p] for p in r.permutation),
            target,
            tuple(self.index_to_ras([index])[0]),
        )

    def crop(self, region: Sequence[slice]) -> VolumeGrid:
        """The grid of ``volume[region]`` (``region``: three slices with step 1)."""
        if len(region) != 3:
            raise ValueError(f"crop: expected three slices, got {region!r}")
        bounds = [s.indices(n)[:2] for s, n in zip(region, self.shape, strict=True)]
        if any(stop <= start for start, stop in bounds) or any(s.step not in (None, 1) for s in region):
            raise ValueError(f"crop: region {region!r} is empty or strided for a grid of shape {self.shape}")
        origin = self.index_to_ras([[start for start, _ in bounds]])[0]
        shape = tuple(stop - start for start, stop in bounds)
        return VolumeGrid(shape, self.spacing_mm, self.orientation, tuple(origin))

    def resampled(self, spacing_mm: float | Sequence[float]) -> VolumeGrid:
        """A grid over the same extent (voxel edges to voxel edges) at another spacing.

        ``spacing_mm`` is one value (isotropic) or one per array axis. The
        number of voxels per axis is rounded, so the extent may change by up
        to half a new voxel at the far end.
        """
        new = np.broadcast_to(np.asarray(spacing_mm, dtype=float), (3,))
        old = np.asarray(self.spacing_mm)
        shape = np.maximum(1, np.round(np.asarray(self.shape) * old / new)).astype(int)
        shift = (new - old) / 2.0  # first new centre, from the first old centre, along each array axis (mm)
        origin = np.asarray(self.origin_mm) + self.direction @ shift
        return VolumeGrid(tuple(shape), tuple(new), self.orientation, tuple(origin))
