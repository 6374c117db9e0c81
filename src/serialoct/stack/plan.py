"""The stacking plan: where every slice goes in the output volume and how much each plane weighs.

Slice ``k`` (its index in cutting order, so a missing slice leaves its room)
has its plane 0 at output plane ``S_k``. With the expected overlap,
``S_k = round(k T / r) - round(k_0 T / r)`` (``T`` the cut thickness, ``r``
the voxel, ``k_0`` the first slice); with matched offsets (``z_offsets``, from
:func:`serialoct.stack.zmatch.match_z_offset`) ``S_{k+1} = S_k + offset_k``
for adjacent slices.

Each slice *owns* the planes from its start to the next present slice's
start (or its own depth, whichever is smaller: a gap deeper than a slice
stays a hole). Where a slice images deeper than the next one's start, the
two are blended over the top of the next one's zone (the whole overlap, at
most that zone, or the first ``blend_planes`` planes of it) with
raised-cosine (Hann) weights, ``a(u) = (1 - cos(pi (u + 1/2) / L)) / 2`` for
the lower slice and ``1 - a(u)`` for the upper one (``u = 0 .. L - 1``), so
the weights sum to 1, the lower slice's cut surface weighs little and no
plane ever takes more than two slices. With ``surface_planes = s`` the
hand-over starts ``s`` planes below the cut: the lower slice's surface
planes (partly water: the interface crop puts the surface inside plane 0)
weigh nothing and the upper slice, which images them, keeps them. On the
``medium`` synthetic acquisition (10 µm) the plane below each cut was 12 %
darker than its neighbours with 0 and 2 % with 1; volume NCC 0.898 -> 0.900
(``small``, 12 µm: 0.851 either way; 2 planes: 0.850). Without blending the
upper slice stops where the lower one starts.

:func:`pyramid_levels` gives the resolutions of the output pyramid.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from serialoct.stack.transforms import SliceTransform

__all__ = ["PlannedSlice", "StackPlan", "StackSlice", "hann_ramp", "plan_stack", "pyramid_levels"]

logger = logging.getLogger(__name__)

# A resolution within this relative distance of the base is the base itself.
_REL_TOL = 1e-6


@dataclass(frozen=True)
class StackSlice:
    """One slice as stacking receives it.

    Attributes
    ----------
    index : int
        Position in cutting order (the slice id as an int).
    shape : (int, int, int)
        ``(Z, H, W)`` of its volume at the working resolution, surface at plane 0.
    offset_px : (int, int)
        Motor placement: canvas ``(row, col)`` of its pixel ``(0, 0)``.
    transform : SliceTransform
        Correction in the canvas (:func:`serialoct.stack.transforms.resolve_transforms`).
    """

    index: int
    shape: tuple[int, int, int]
    offset_px: tuple[int, int] = (0, 0)
    transform: SliceTransform = field(default_factory=SliceTransform)


@dataclass(frozen=True)
class PlannedSlice:
    """A slice's place in the output.

    Attributes
    ----------
    slice : StackSlice
    z_start : int
        Output plane of its plane 0.
    own_stop : int
        End (exclusive) of the planes it owns: the next slice's start, or its depth.
    blend_top : int
        Planes at its top blended with the slice above (its weight rises).
    blend_bottom : int
        Planes from ``own_stop + skip_bottom`` blended with the slice below (its weight falls).
    skip_top : int
        Planes at its top left to the slice above (weight 0) before its blend.
    skip_bottom : int
        Planes from ``own_stop`` it keeps whole (weight 1) before its blend.
    """

    slice: StackSlice
    z_start: int
    own_stop: int
    blend_top: int
    blend_bottom: int
    skip_top: int = 0
    skip_bottom: int = 0

    @property
    def z_stop(self) -> int:
        """End (exclusive) of the output planes it contributes to."""
        return self.own_stop + self.skip_bottom + self.blend_bottom

    def weights(self, z0: int, z1: int) -> np.ndarray:
        """Its z weight on output planes ``z0 .. z1 - 1``, shape ``(z1 - z0,)``, float64 (0 outside its range)."""
        z = np.arange(z0, z1)
        w = np.zeros(z.size)
        w[(z >= self.z_start + self.skip_top) & (z < self.own_stop + self.skip_bottom)] = 1.0
        if self.blend_top:
            start = self.z_start + self.skip_top
            top = (z >= start) & (z < start + self.blend_top)
            w[top] = hann_ramp(self.blend_top)[z[top] - start]
        if self.blend_bottom:
            start = self.own_stop + self.skip_bottom
            bottom = (z >= start) & (z < self.z_stop)
            w[bottom] = 1.0 - hann_ramp(self.blend_bottom)[z[bottom] - start]
        return w


@dataclass(frozen=True)
class StackPlan:
    """Everything :func:`serialoct.stack.render.render_block` needs besides the pixels.

    Attributes
    ----------
    slices : tuple of PlannedSlice
        In output order.
    shape : (int, int, int)
        Output ``(Z, H, W)``.
    voxel_um : float
        Isotropic voxel of the output (the working resolution).
    centre_px : (float, float)
        Canvas rotation centre ``(row, col)``.
    holes : tuple of (int, int)
        Output plane ranges no slice covers.
    """

    slices: tuple[PlannedSlice, ...]
    shape: tuple[int, int, int]
    voxel_um: float
    centre_px: tuple[float, float]
    holes: tuple[tuple[int, int], ...] = ()

    def contributors(self, z0: int, z1: int) -> tuple[PlannedSlice, ...]:
        """The slices with a non-zero weight on output planes ``z0 .. z1 - 1``."""
        return tuple(p for p in self.slices if p.z_start < z1 and p.z_stop > z0)


def hann_ramp(length: int) -> np.ndarray:
    """Rising raised-cosine weights ``(1 - cos(pi (u + 1/2) / L)) / 2``, ``u = 0 .. L - 1``; ``r[u] + r[L-1-u] = 1``."""
    u = np.arange(length, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(np.pi * (u + 0.5) / max(length, 1))


def plan_stack(
    slices: Sequence[StackSlice],
    *,
    slice_thickness_um: float,
    voxel_um: float,
    z_offsets: Mapping[int, int] | None = None,
    blend: bool = True,
    blend_planes: int | None = None,
    surface_planes: int = 0,
    canvas_shape: tuple[int, int] | None = None,
    centre_px: tuple[float, float] | None = None,
) -> StackPlan:
    """Plan the output volume: each slice's depth range and blend zones, the canvas.

    Parameters
    ----------
    slices : sequence of StackSlice
        The slices to stack (any order; indices unique).
    slice_thickness_um : float
        ``registration_slicing_interval_mm`` in µm.
    voxel_um : float
        Working resolution (isotropic).
    z_offsets : mapping of int to int, optional
        For slice index ``k``: the plane of slice ``k`` that images slice
        ``k + 1``'s plane 0 (matched overlap); absent keys, and pairs across
        a missing slice, use the expected ``round(T / r)`` spacing.
    blend : bool
        ``stack_blend_enabled``.
    blend_planes : int, optional
        Longest blend (``stack_blend_depth_um`` in planes); None or 0 blends
        over the whole overlap.
    surface_planes : int
        Planes below each cut that the slice above keeps (module
        docstring), where it images them and the blend has room after them.
    canvas_shape : (int, int), optional
        Output ``(H, W)``; default: the bounding box of the motor placements.
    centre_px : (float, float), optional
        Rotation centre of the transforms in the canvas; default its centre.

    Returns
    -------
    StackPlan

    Raises
    ------
    ValueError
        Duplicate indices, negative placements, offsets < 1 plane, empty input.
    """
    if not slices:
        raise ValueError("no slices to stack")
    ordered = sorted(slices, key=lambda s: s.index)
    indices = [s.index for s in ordered]
    if len(set(indices)) != len(indices):
        raise ValueError(f"duplicate slice indices in {indices}")
    for s in ordered:
        if min(s.offset_px) < 0 or len(s.shape) != 3 or min(s.shape) < 1:
            raise ValueError(f"slice {s.index:02d}: offset {s.offset_px} must be >= 0 and shape {s.shape} (Z, H, W) non-empty")
    step = slice_thickness_um / voxel_um
    if not step > 0:
        raise ValueError(f"slice thickness {slice_thickness_um} µm and voxel {voxel_um} µm must both be > 0")
    offsets = dict(z_offsets or {})
    starts = [0]
    for a, b in zip(ordered[:-1], ordered[1:]):
        if b.index == a.index + 1 and a.index in offsets:
            d = int(offsets[a.index])
            if d < 1:
                raise ValueError(f"z offset of slice {a.index:02d} is {d} planes: expected >= 1")
        else:
            d = round(b.index * step) - round(a.index * step)
        starts.append(starts[-1] + d)
    n = len(ordered)
    own_stop = [min(starts[i + 1], starts[i] + ordered[i].shape[0]) if i + 1 < n else starts[i] + ordered[i].shape[0] for i in range(n)]
    bottom, skip = [0] * n, [0] * n
    for i in range(n - 1):
        overlap = starts[i] + ordered[i].shape[0] - starts[i + 1]
        if overlap > 0 and blend:
            room = min(overlap, own_stop[i + 1] - starts[i + 1])
            skip[i] = max(0, min(surface_planes, room - 1))
            bottom[i] = min(room - skip[i], blend_planes or overlap)
    top = [0] + bottom[:-1]
    planned = tuple(PlannedSlice(s, starts[i], own_stop[i], top[i], bottom[i], skip_top=([0] + skip[:-1])[i], skip_bottom=skip[i])
                    for i, s in enumerate(ordered))
    depth = max(p.z_stop for p in planned)
    if canvas_shape is None:
        canvas_shape = (max(s.offset_px[0] + s.shape[1] for s in ordered), max(s.offset_px[1] + s.shape[2] for s in ordered))
    h, w = (int(v) for v in canvas_shape)
    centre = ((h - 1) / 2.0, (w - 1) / 2.0) if centre_px is None else (float(centre_px[0]), float(centre_px[1]))
    holes = tuple((planned[i].own_stop, planned[i + 1].z_start) for i in range(n - 1) if planned[i].own_stop < planned[i + 1].z_start)
    if holes:
        logger.info("stack: %d hole(s) left in the volume, output planes %s", len(holes), list(holes))
    return StackPlan(planned, (int(depth), h, w), float(voxel_um), centre, holes)


def pyramid_levels(
    base_um: float | Sequence[float],
    resolutions_um: Sequence[float] = (10, 25, 50, 100),
    n_levels: int | None = None,
    isotropic: bool = True,
) -> list[float]:
    """Resolutions of the output pyramid, base first, µm.

    Parameters
    ----------
    base_um : float or sequence of float
        Voxel of level 0 (per axis when a sequence).
    resolutions_um : sequence of float
        ``pyramid_resolutions``: only those coarser than the base make a
        level (the coarsest base axis when ``isotropic``, the finest otherwise).
    n_levels : int, optional
        ``pyramid_n_levels``: when set, overrides ``resolutions_um`` with
        ``base * 2**k``, ``k = 0 .. n_levels - 1``.
    isotropic : bool
        ``pyramid_make_isotropic``.

    Returns
    -------
    list of float
        Ready for ``create_ome_zarr(pyramid_resolutions_um=levels[1:])``.

    Examples
    --------
    >>> pyramid_levels(10.0, [10, 25, 50, 100])
    [10.0, 25.0, 50.0, 100.0]
    >>> pyramid_levels(25.0, [10, 25, 50, 100])
    [25.0, 50.0, 100.0]
    >>> pyramid_levels(10.0, n_levels=3)
    [10.0, 20.0, 40.0]
    """
    base = [float(base_um)] if np.isscalar(base_um) else [float(v) for v in base_um]
    if not base or min(base) <= 0 or not all(math.isfinite(v) for v in base):
        raise ValueError(f"base resolution {base_um} µm must be positive")
    floor = max(base) if isotropic else min(base)
    if n_levels is not None:
        if n_levels < 1:
            raise ValueError(f"pyramid_n_levels = {n_levels}: expected >= 1 (or None to use pyramid_resolutions)")
        return [floor * 2**k for k in range(int(n_levels))]
    if any(not r > 0 for r in resolutions_um):
        raise ValueError(f"pyramid resolutions must be > 0 µm, got {list(resolutions_um)}")
    return [floor] + sorted({float(r) for r in resolutions_um if r > floor * (1 + _REL_TOL)})
