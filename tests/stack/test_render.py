"""Rendering: the stacked phantom matches the truth; blocks read only the slices they need; memory does not grow."""

from __future__ import annotations

import tracemalloc

import numpy as np
from scipy import ndimage

from serialoct.stack import (
    StackSlice,
    TransformPolicy,
    iter_blocks,
    ncc,
    plan_stack,
    render_block,
    resolve_transforms,
    warp_to_canvas,
)
from serialoct.stack.render import LinearSampler, warp_from_canvas

from .conftest import N_SLICES, THICKNESS_UM, VOXEL_UM

#: The issue's acceptance: NCC with the phantom at 25 µm over the tissue mask.
MIN_NCC = 0.90
#: Peak memory of rendering one block may differ by this fraction between 4 and 24 slices.
MEMORY_TOL = 0.10
#: Exact chaining: no smoothing, no drift cap, no confidence weighting.
RAW = TransformPolicy(stack_smooth_window=0, stack_translation_smooth_sigma=0.0, stack_max_cumulative_drift_px=0.0,
                      stack_confidence_weight_translations=False)


def _stack(slabs, transforms, *, block=8, **kwargs):
    slices = [StackSlice(k, v.shape, (0, 0), transforms[k]) for k, v in enumerate(slabs.volumes)]
    plan = plan_stack(slices, slice_thickness_um=THICKNESS_UM, voxel_um=VOXEL_UM, **kwargs)
    def read(k, a, b):
        return slabs.volumes[k][a:b]
    return plan, np.concatenate([render_block(plan, read, z0, z1) for z0, z1 in iter_blocks(plan, block)])


def _score(volume, truth):
    depth = volume.shape[0]
    mask = truth.tissue[:depth]
    return ncc(volume, truth.reflectivity[:depth], mask)


def _transforms(slabs, policy=RAW, confidence=1.0):
    n = N_SLICES
    return resolve_transforms(slabs.pair_rotation_deg, slabs.pair_translation_px, np.full(n, confidence), np.ones(n), policy=policy)


def test_stacked_phantom_correlates_with_the_truth_at_ncc_0p90(slabs, truth):
    plan, volume = _stack(slabs, _transforms(slabs))
    score = _score(volume, truth)
    assert score >= MIN_NCC, f"NCC {score:.3f}"


def test_applying_the_pairwise_transforms_beats_motor_only(slabs, truth):
    _, corrected = _stack(slabs, _transforms(slabs))
    _, motor = _stack(slabs, _transforms(slabs, TransformPolicy(apply_pairwise_transforms=False)))
    assert _score(corrected, truth) > _score(motor, truth) + 0.05


def test_render_is_independent_of_the_block_size(slabs):
    t = _transforms(slabs)
    _, a = _stack(slabs, t, block=8)
    _, b = _stack(slabs, t, block=13)
    assert np.array_equal(a, b)


def test_render_block_reads_only_the_planes_of_the_contributing_slices():
    slices = [StackSlice(k, (12, 16, 16)) for k in range(10)]
    plan = plan_stack(slices, slice_thickness_um=200, voxel_um=25)
    calls = []

    def read(k, a, b):
        calls.append((k, a, b))
        return np.ones((b - a, 16, 16), np.float32)

    for z0, z1 in iter_blocks(plan, 8):
        calls.clear()
        block = render_block(plan, read, z0, z1)
        assert np.allclose(block, 1.0)
        assert len({k for k, _, _ in calls}) <= 2
        assert sum(b - a for _, a, b in calls) <= (z1 - z0) + 4  # the block plus one blend zone


def _peak_bytes(n_slices: int) -> int:
    slices = [StackSlice(k, (12, 64, 64)) for k in range(n_slices)]
    plan = plan_stack(slices, slice_thickness_um=200, voxel_um=25)

    def read(k, a, b):  # a fresh slab on each call, as a reader from disk would return
        return np.full((b - a, 64, 64), k + 1.0, np.float32)

    peak = 0
    for z0, z1 in iter_blocks(plan, 8):
        tracemalloc.start()
        render_block(plan, read, z0, z1)
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    return peak


def test_peak_memory_of_rendering_does_not_grow_with_the_number_of_slices():
    small, large = _peak_bytes(4), _peak_bytes(24)
    assert large <= small * (1 + MEMORY_TOL), f"{small} B for 4 slices, {large} B for 24"


def test_warp_to_canvas_pastes_at_the_motor_offset_and_rotates_about_the_centre():
    plane = np.zeros((5, 5), np.float32)
    plane[0, 0] = 1.0
    out = warp_to_canvas(plane, (10, 10), offset_px=(3, 4))
    assert out[3, 4] == 1.0 and out.sum() == 1.0
    square = np.zeros((9, 9), np.float32)
    square[4, 8] = 1.0  # right of the centre
    turned = warp_to_canvas(square, (9, 9), rotation_deg=90.0)
    assert np.unravel_index(np.argmax(turned), turned.shape) == (0, 4)  # +row turns towards +col, so +col towards -row


def test_the_linear_sampler_samples_exactly_where_and_what_scipys_affine_transform_does():
    rng = np.random.default_rng(4)
    for trial in range(120):
        in_shape, out_shape = tuple(rng.integers(4, 40, 2)), tuple(rng.integers(4, 50, 2))
        a = np.radians(rng.uniform(-6, 6)) if trial % 3 else 0.0
        matrix = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
        offset = rng.uniform(-6, 6, 2) if trial % 5 else np.round(rng.uniform(-6, 6, 2)) + [0.0, 0.5]
        plane = rng.uniform(0.5, 2.0, in_shape).astype(np.float32)
        plane[rng.uniform(size=in_shape) < 0.2] = 0  # no data there
        sampler = LinearSampler(matrix, offset, in_shape, out_shape)
        for values, truth in ((sampler.sample(plane), plane), (sampler.sample_mask(plane), (plane != 0).astype(np.float32))):
            got = np.zeros(out_shape, np.float32)
            got.reshape(-1)[sampler.where] = values
            expected = ndimage.affine_transform(truth, matrix, offset, output_shape=out_shape, order=1, cval=0.0)
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
        outside = np.ones(out_shape, bool)
        outside.reshape(-1)[sampler.where] = False  # where scipy gives 0 without interpolating
        assert not ndimage.affine_transform(np.ones(in_shape), matrix, offset, output_shape=out_shape, order=1, cval=0.0)[outside].any()


def test_warp_from_canvas_brings_a_placed_image_back_to_the_slice_frame():
    plane = ndimage.gaussian_filter(np.random.default_rng(1).random((40, 50)), 3).astype(np.float32) + 1.0
    placement = {"offset_px": (5.0, 7.0), "rotation_deg": 3.0, "translation_px": (1.5, -2.0)}
    back = warp_from_canvas(warp_to_canvas(plane, (70, 80), **placement), plane.shape, **placement)
    assert np.abs(back - plane)[3:-3, 3:-3].max() < 0.01


def test_render_is_independent_of_the_number_of_threads(slabs):
    t = _transforms(slabs)
    slices = [StackSlice(k, v.shape, (0, 0), t[k]) for k, v in enumerate(slabs.volumes)]
    plan = plan_stack(slices, slice_thickness_um=THICKNESS_UM, voxel_um=VOXEL_UM)
    def read(k, a, b):
        return slabs.volumes[k][a:b]
    for z0, z1 in iter_blocks(plan, 11):
        assert np.array_equal(render_block(plan, read, z0, z1), render_block(plan, read, z0, z1, workers=3))


def test_samplers_kept_from_block_to_block_give_the_same_volume_and_are_made_once_per_slice(slabs, monkeypatch):
    from serialoct.stack import render

    t = _transforms(slabs)
    plan = plan_stack([StackSlice(k, v.shape, (0, 0), t[k]) for k, v in enumerate(slabs.volumes)], slice_thickness_um=THICKNESS_UM,
                      voxel_um=VOXEL_UM)
    block = 5

    def read(k, a, b):
        return slabs.volumes[k][a:b]

    made = []
    sampler = render.LinearSampler

    def counting(*args):
        made.append(args)
        return sampler(*args)

    expected = np.concatenate([render_block(plan, read, z0, z1) for z0, z1 in iter_blocks(plan, block)])
    monkeypatch.setattr(render, "LinearSampler", counting)
    kept = {}
    got = np.concatenate([render_block(plan, read, z0, z1, samplers=kept) for z0, z1 in iter_blocks(plan, block)])
    assert np.array_equal(got, expected)
    rotated = sum(not render._whole_pixel_shift(*render.canvas_matrix(q.slice.offset_px, q.slice.transform.rotation_deg,
                                                                       q.slice.transform.translation_px, plan.centre_px))
                  for q in plan.slices)
    assert rotated > 1 and len(made) == rotated  # one per slice that is not pasted
    assert len(kept) < len(plan.slices)  # those above the last block are dropped
