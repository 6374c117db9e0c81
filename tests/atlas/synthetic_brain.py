"""A synthetic atlas and brains cut in known orientations, for the registration tests.

The phantom is analytic, in RAS mm relative to the brain centre: a cerebrum
with a bright white-matter shell and two dark ventricles, a cerebellum behind
it, two olfactory bulbs in front, and a bright blob in the right hemisphere
(so that a left-right mirror is visible). Unlike :mod:`serialoct.synth`'s
near-spherical phantom (built to test stitching), its three axes have
clearly different lengths and its structures sit off-centre, so a rotation
is well determined, as on a real brain. Edges are sigmoids about one voxel
wide, so sampling it on any grid needs no interpolation.

The *atlas* is the phantom on an ``(S, A, R)`` grid. A *brain* is the same
phantom seen through a known affine map, sampled on a grid stored in another
array orientation (``PIR``...): the test then recovers the map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from serialoct.atlas.space import VolumeGrid

#: (centre (R, A, S) mm, semi-axes mm, edge width relative to the radius, intensity)
_STRUCTURES = {
    "cerebrum": ((0.0, 0.6, 0.3), (3.0, 3.2, 2.2), 0.03, 0.5),
    "white_matter": ((0.0, 0.6, 0.3), (2.2, 2.4, 1.5), 0.03, 0.5),
    "deep_grey": ((0.0, 0.6, 0.3), (1.8, 2.0, 1.2), 0.03, -0.5),
    "cerebellum": ((0.0, -3.0, -0.4), (2.0, 1.2, 1.5), 0.05, 0.7),
    "bulb_right": ((0.7, 4.0, -0.3), (0.6, 1.0, 0.6), 0.06, 0.6),
    "bulb_left": ((-0.7, 4.0, -0.3), (0.6, 1.0, 0.6), 0.06, 0.6),
    "ventricle_right": ((0.6, 0.8, 0.4), (0.3, 1.0, 0.5), 0.08, -0.4),
    "ventricle_left": ((-0.6, 0.8, 0.4), (0.3, 1.0, 0.5), 0.08, -0.4),
    "blob": ((1.6, 1.6, 1.0), (0.5, 0.5, 0.5), 0.1, 0.6),
}
#: Landmarks (RAS mm from the brain centre) whose mapped positions measure the registration error.
LANDMARKS = np.array(
    [c for c, *_ in _STRUCTURES.values()]
    + [(3.0, 0.6, 0.3), (-3.0, 0.6, 0.3), (0.0, 3.8, 0.3), (0.0, -4.2, -0.4), (0.0, 0.6, 2.5), (0.0, 0.6, -1.9)]
)
#: Atlas field of view (R, A, S) mm, centred on the brain, and its voxel size.
ATLAS_EXTENT_MM = (8.0, 11.2, 6.4)
ATLAS_SPACING_MM = 0.15


def phantom(points: np.ndarray) -> np.ndarray:
    """Intensity at RAS points ``(..., 3)`` (mm from the brain centre), float32."""
    out = np.zeros(points.shape[:-1], np.float32)
    for centre, semi_axes, width, value in _STRUCTURES.values():
        rho = np.sqrt((((points - centre) / semi_axes) ** 2).sum(axis=-1))
        out += value / (1.0 + np.exp(np.clip((rho - 1.0) / width, -50, 50)))
    # Structures on top of the cerebrum (bulbs, cerebellum) do not add where they overlap it.
    return np.clip(out, 0.0, None).astype(np.float32)


def sample(grid: VolumeGrid, to_phantom: np.ndarray) -> np.ndarray:
    """The phantom on ``grid``: voxel RAS point ``p`` reads the phantom at ``A p + b`` (``to_phantom`` 4x4)."""
    index = np.stack(np.meshgrid(*[np.arange(n) for n in grid.shape], indexing="ij"), axis=-1).reshape(-1, 3)
    ras = grid.index_to_ras(index)
    points = ras @ to_phantom[:3, :3].T + to_phantom[:3, 3]
    return phantom(points).reshape(grid.shape)


def atlas_grid() -> VolumeGrid:
    shape = [int(round(e / ATLAS_SPACING_MM)) for e in reversed(ATLAS_EXTENT_MM)]  # (S, A, R)
    return VolumeGrid(tuple(shape), (ATLAS_SPACING_MM,) * 3, "SAR", (0.0, 0.0, 0.0))


def make_atlas() -> tuple[np.ndarray, VolumeGrid]:
    """The atlas: the phantom centred in its field of view, RAS array order."""
    grid = atlas_grid()
    to_phantom = np.eye(4)
    to_phantom[:3, 3] = -grid.centre_mm
    return sample(grid, to_phantom), grid


@dataclass(frozen=True)
class Brain:
    """A synthetic brain and the truth: ``p_brain = matrix @ p_atlas + translation``."""

    volume: np.ndarray
    grid: VolumeGrid
    matrix: np.ndarray
    translation: np.ndarray


def make_brain(
    code: str,
    sample_rotation: np.ndarray,
    shift_mm: tuple[float, float, float],
    *,
    spacing_mm: tuple[float, float, float] = (0.15, 0.12, 0.12),
    extent_mm: float = 12.0,
) -> Brain:
    """The phantom turned by ``sample_rotation`` about its centre, shifted, stored with orientation ``code``.

    ``sample_rotation`` acts on ``(R, A, S)`` vectors of the atlas brain:
    ``p_brain = R (p_atlas - c_atlas) + c_brain + shift``, ``c_brain`` the
    centre of the brain's grid. ``spacing_mm`` and the cubic field of view
    ``extent_mm`` are in the brain array's own axis order.
    """
    shape = tuple(int(round(extent_mm / s)) for s in spacing_mm)
    grid = VolumeGrid.from_ngff(shape, spacing_mm, (0.0, 0.0, 0.0), code)
    c_atlas, c_brain = atlas_grid().centre_mm, grid.centre_mm
    rotation = np.asarray(sample_rotation, dtype=float)
    translation = c_brain + np.asarray(shift_mm) - rotation @ c_atlas
    # The phantom (centred on c_atlas in the atlas) at brain point p: atlas point R^T (p - b), minus c_atlas.
    to_phantom = np.eye(4)
    to_phantom[:3, :3] = rotation.T
    to_phantom[:3, 3] = -rotation.T @ translation - c_atlas
    return Brain(sample(grid, to_phantom), grid, rotation, translation)


def landmarks_in_atlas() -> np.ndarray:
    """:data:`LANDMARKS` as atlas RAS points."""
    return LANDMARKS + atlas_grid().centre_mm
