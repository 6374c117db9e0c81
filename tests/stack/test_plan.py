"""Stack planning: slice depth ranges, Hann blend weights, holes, pyramid levels."""

from __future__ import annotations

import numpy as np
import pytest

from serialoct.stack import StackSlice, hann_ramp, plan_stack, pyramid_levels

WEIGHT_TOL = 1e-9


def _slices(indices, depth=12, shape=(20, 30)):
    return [StackSlice(k, (depth, *shape)) for k in indices]


def test_expected_overlap_places_slice_k_at_k_times_thickness():
    plan = plan_stack(_slices(range(4)), slice_thickness_um=200, voxel_um=25)
    assert [p.z_start for p in plan.slices] == [0, 8, 16, 24]
    assert plan.shape == (24 + 12, 20, 30)
    assert [p.blend_bottom for p in plan.slices] == [4, 4, 4, 0]


def test_hann_weights_sum_to_one_and_no_plane_takes_more_than_two_slices():
    plan = plan_stack(_slices(range(5)), slice_thickness_um=200, voxel_um=25)
    depth = plan.shape[0]
    total = sum(p.weights(0, depth) for p in plan.slices)
    assert np.allclose(total, 1.0, atol=WEIGHT_TOL)
    assert max(len(plan.contributors(z, z + 1)) for z in range(depth)) == 2
    ramp = hann_ramp(4)
    assert np.allclose(ramp + ramp[::-1], 1.0) and np.all(np.diff(ramp) > 0)


def test_blend_planes_shortens_the_blend_to_the_top_of_the_lower_slice():
    plan = plan_stack(_slices(range(3)), slice_thickness_um=200, voxel_um=25, blend_planes=2)
    assert [p.blend_bottom for p in plan.slices] == [2, 2, 0]
    total = sum(p.weights(0, plan.shape[0]) for p in plan.slices)
    assert np.allclose(total, 1.0, atol=WEIGHT_TOL)
    upper = plan.slices[0].weights(0, plan.shape[0])
    assert upper[8:10].tolist() == pytest.approx(1.0 - hann_ramp(2)) and not upper[10:].any()


def test_the_lower_slices_surface_planes_are_left_to_the_slice_above():
    plan = plan_stack(_slices(range(3)), slice_thickness_um=200, voxel_um=25, blend_planes=2, surface_planes=1)
    upper, lower = plan.slices[0], plan.slices[1]
    assert lower.weights(8, 9)[0] == 0.0 and upper.weights(8, 9)[0] == 1.0  # the cut surface: the upper slice's own plane
    assert np.allclose(lower.weights(9, 11), hann_ramp(2))  # then the usual hand-over
    total = sum(p.weights(0, plan.shape[0]) for p in plan.slices)
    assert np.allclose(total, 1.0, atol=WEIGHT_TOL)
    assert max(len(plan.contributors(z, z + 1)) for z in range(plan.shape[0])) == 2


def test_without_blending_each_plane_comes_from_one_slice():
    plan = plan_stack(_slices(range(3)), slice_thickness_um=200, voxel_um=25, blend=False)
    assert max(len(plan.contributors(z, z + 1)) for z in range(plan.shape[0])) == 1


def test_matched_z_offsets_move_the_next_slice():
    plan = plan_stack(_slices(range(3)), slice_thickness_um=200, voxel_um=25, z_offsets={0: 10})
    assert [p.z_start for p in plan.slices] == [0, 10, 18]


def test_a_gap_deeper_than_the_extra_depth_stays_a_hole():
    plan = plan_stack(_slices([0, 1, 4, 5]), slice_thickness_um=200, voxel_um=25)
    assert [p.z_start for p in plan.slices] == [0, 8, 32, 40]
    assert plan.holes == ((20, 32),)
    total = sum(p.weights(0, plan.shape[0]) for p in plan.slices)
    assert np.all(total[20:32] == 0) and np.allclose(total[:20], 1.0)


def test_plan_rejects_duplicate_indices_and_negative_offsets():
    with pytest.raises(ValueError, match="duplicate"):
        plan_stack(_slices([1, 1]), slice_thickness_um=200, voxel_um=25)
    with pytest.raises(ValueError, match="offset"):
        plan_stack([StackSlice(0, (4, 5, 5), (-1, 0))], slice_thickness_um=200, voxel_um=25)


def test_canvas_is_the_bounding_box_of_the_motor_placements():
    plan = plan_stack([StackSlice(0, (4, 10, 10), (0, 0)), StackSlice(1, (4, 10, 12), (5, 3))], slice_thickness_um=100, voxel_um=25)
    assert plan.shape[1:] == (15, 15)


def test_pyramid_levels_keep_resolutions_coarser_than_the_base():
    assert pyramid_levels(10.0, [10, 25, 50, 100]) == [10.0, 25.0, 50.0, 100.0]
    assert pyramid_levels(25.0, [10, 25, 50, 100]) == [25.0, 50.0, 100.0]
    assert pyramid_levels((10.0, 12.0, 12.0), [10, 25], isotropic=True) == [12.0, 25.0]
    assert pyramid_levels((10.0, 12.0, 12.0), [10, 25], isotropic=False) == [10.0, 25.0]


def test_pyramid_n_levels_overrides_the_resolutions():
    assert pyramid_levels(10.0, [25, 50], n_levels=4) == [10.0, 20.0, 40.0, 80.0]
    with pytest.raises(ValueError, match="pyramid_n_levels = 0"):
        pyramid_levels(10.0, n_levels=0)
