"""Stacking of the aligned slices into one volume, and interpolation of single missing slices.

The ``stack`` step is a short chain of pure calls; the step wrapper does the I/O::

    transforms = resolve_transforms(rot, trans, conf, zcorr, usable=use, policy=policy)
    plan = plan_stack([StackSlice(k, shape_k, offset_k, transforms[i]) ...],
                      slice_thickness_um=T, voxel_um=r, z_offsets=matched, blend=True)
    with create_ome_zarr(path, plan.shape, ..., pyramid_resolutions_um=pyramid_levels(r, ...)[1:]) as w:
        for z0, z1 in iter_blocks(plan, shard_depth):
            w.array[z0:z1] = render_block(plan, read_planes, z0, z1)

Modules: :mod:`~serialoct.stack.transforms` (gating, rotation smoothing,
translation accumulation), :mod:`~serialoct.stack.zmatch` (depth overlap),
:mod:`~serialoct.stack.plan` (z ranges, Hann blend weights, pyramid levels),
:mod:`~serialoct.stack.render` (block rendering),
:mod:`~serialoct.stack.interpolate` and :mod:`~serialoct.stack.morph`
(missing-slice interpolation).
"""

from serialoct.stack.interpolate import (
    InterpolationManifest,
    InterpolationParams,
    InterpolationResult,
    finalise_interpolation,
    interpolate_missing_slice,
    manifest_fragment,
    missing_runs,
    single_slice_gaps,
)
from serialoct.stack.morph import Rigid2D, register_rigid_2d
from serialoct.stack.plan import PlannedSlice, StackPlan, StackSlice, hann_ramp, plan_stack, pyramid_levels
from serialoct.stack.render import ReadPlanes, iter_blocks, render_block, warp_to_canvas
from serialoct.stack.transforms import (
    SliceTransform,
    TransformPolicy,
    accumulate_translations,
    gate_confidence,
    resolve_transforms,
    smooth_rotations,
)
from serialoct.stack.zmatch import ZMatch, expected_z_offset, match_z_offset, ncc

__all__ = [
    "InterpolationManifest",
    "InterpolationParams",
    "InterpolationResult",
    "PlannedSlice",
    "ReadPlanes",
    "Rigid2D",
    "SliceTransform",
    "StackPlan",
    "StackSlice",
    "TransformPolicy",
    "ZMatch",
    "accumulate_translations",
    "expected_z_offset",
    "finalise_interpolation",
    "gate_confidence",
    "hann_ramp",
    "interpolate_missing_slice",
    "iter_blocks",
    "manifest_fragment",
    "match_z_offset",
    "missing_runs",
    "ncc",
    "plan_stack",
    "pyramid_levels",
    "register_rigid_2d",
    "render_block",
    "resolve_transforms",
    "single_slice_gaps",
    "smooth_rotations",
    "warp_to_canvas",
]
