"""Motor-only stacking: the slices placed by the common space alone, without pairwise registration.

Every slice goes where ``bring_to_common_space`` put it (its motor
placement) and at the depth its cut thickness gives (the expected spacing,
:func:`serialoct.stack.plan.plan_stack`); no rotation or translation from
the registrations. Where a slice images deeper than the next one starts,
the overlapping planes are merged by ``motor_only_stack_blending``:

``"none"``
    Each plane from one slice: the upper slice stops where the lower one starts.
``"feather"``
    The stack's raised-cosine (Hann) cross-fade over the overlap
    (:mod:`serialoct.stack.plan`, the ``stack_blend_enabled`` blend).
``"average"``
    Equal weights: the mean of every slice with data at the voxel, over each
    slice's whole depth.
``"max"``
    The largest value of the slices with data at the voxel (a maximum projection over the overlap).

Comparing this stack with the registered one shows what the registrations
changed: a misaligned boundary that is already in the motor-only stack comes
from the stage, one that only the registered stack has from a registration.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from serialoct.stack.plan import StackPlan, StackSlice, plan_stack
from serialoct.stack.render import MIN_MASK_WEIGHT, ReadPlanes, render_block, warp_to_canvas

__all__ = ["MOTOR_STACK_BLENDINGS", "MotorStackBlending", "plan_motor_stack", "render_motor_block"]

MotorStackBlending = Literal["none", "average", "max", "feather"]
MOTOR_STACK_BLENDINGS: tuple[str, ...] = ("none", "average", "max", "feather")


def _check(blending: str) -> None:
    if blending not in MOTOR_STACK_BLENDINGS:
        raise ValueError(f"unknown motor-only stack blending {blending!r}; choose one of {', '.join(MOTOR_STACK_BLENDINGS)}")


def plan_motor_stack(
    slices: Sequence[StackSlice],
    *,
    slice_thickness_um: float,
    voxel_um: float,
    blending: MotorStackBlending = "none",
    canvas_shape: tuple[int, int] | None = None,
) -> StackPlan:
    """The stacking plan of a motor-only stack: expected depth spacing, identity transforms.

    Parameters
    ----------
    slices : sequence of StackSlice
        Each with its common-space offset; their ``transform`` is ignored (the identity is used).
    slice_thickness_um, voxel_um : float
        As :func:`serialoct.stack.plan.plan_stack`.
    blending : {"none", "average", "max", "feather"}
        ``motor_only_stack_blending`` (see the module docstring).
    canvas_shape : (int, int), optional

    Returns
    -------
    StackPlan
        Depth ranges and (for ``"feather"``) the Hann blend zones.

    Raises
    ------
    ValueError
        For an unknown blending, or what :func:`plan_stack` refuses.
    """
    _check(blending)
    bare = [StackSlice(s.index, s.shape, s.offset_px) for s in slices]
    return plan_stack(bare, slice_thickness_um=slice_thickness_um, voxel_um=voxel_um, blend=blending == "feather",
                      canvas_shape=canvas_shape)


def render_motor_block(plan: StackPlan, read_planes: ReadPlanes, z0: int, z1: int, *, blending: MotorStackBlending = "none") -> np.ndarray:
    """Output planes ``z0 .. z1 - 1`` of the motor-only stack.

    Parameters
    ----------
    plan : StackPlan
        From :func:`plan_motor_stack` with the same ``blending``.
    read_planes : callable ``(index, p0, p1) -> ndarray (p1 - p0, h, w)``
        Planes of one slice (:data:`serialoct.stack.render.ReadPlanes`).
    z0, z1 : int
        Output plane range.
    blending : {"none", "average", "max", "feather"}

    Returns
    -------
    ndarray, shape (z1 - z0, H, W), float32
        0 where no slice has data.

    Examples
    --------
    >>> a, b = np.ones((6, 4, 4), np.float32), np.full((6, 4, 4), 3, np.float32)
    >>> plan = plan_motor_stack([StackSlice(0, a.shape), StackSlice(1, b.shape)], slice_thickness_um=4, voxel_um=1, blending="max")
    >>> vol = render_motor_block(plan, lambda k, p0, p1: (a, b)[k][p0:p1], 0, plan.shape[0], blending="max")
    >>> vol[:, 0, 0].tolist()
    [1.0, 1.0, 1.0, 1.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0]
    """
    _check(blending)
    if blending in ("none", "feather"):
        return render_block(plan, read_planes, z0, z1)
    depth, h, w = plan.shape
    if not 0 <= z0 < z1 <= depth:
        raise ValueError(f"block planes {z0}..{z1} outside the volume's 0..{depth}")
    value = np.zeros((z1 - z0, h, w), dtype=np.float32)
    weight = np.zeros_like(value)
    for p in plan.slices:
        # Every plane the slice imaged, not only the ones the plan gives it: these modes merge whole overlaps.
        a, b = max(z0, p.z_start), min(z1, p.z_start + p.slice.shape[0], depth)
        if b <= a:
            continue
        local = read_planes(p.slice.index, a - p.z_start, b - p.z_start)
        for i in range(b - a):
            plane, mask = warp_to_canvas(local[i], (h, w), offset_px=p.slice.offset_px, with_mask=True)
            k = a - z0 + i
            if blending == "average":
                value[k] += plane
                weight[k] += mask
            else:
                has = mask > 0.5
                value[k] = np.where(has & ((weight[k] == 0) | (plane > value[k])), plane, value[k])
                weight[k] = np.maximum(weight[k], has.astype(np.float32))
    if blending == "average":
        out = np.zeros_like(value)
        np.divide(value, weight, out=out, where=weight > MIN_MASK_WEIGHT)
        return out
    return value
