"""Transform policy: confidence gating, rotation smoothing, translation accumulation and drift cap."""

from __future__ import annotations

import numpy as np
import pytest

from serialoct.stack import TransformPolicy, accumulate_translations, gate_confidence, resolve_transforms, smooth_rotations

EXACT = 1e-9
#: No smoothing, no cap, no weighting: the policy that chains transforms exactly.
RAW = TransformPolicy(stack_smooth_window=0, stack_translation_smooth_sigma=0.0, stack_max_cumulative_drift_px=0.0,
                      stack_confidence_weight_translations=False)


def test_gate_confidence_full_rotation_only_skip_at_the_guide_thresholds():
    assert gate_confidence(0.6) == "full"
    assert gate_confidence(0.59) == "rotation_only"
    assert gate_confidence(0.3) == "rotation_only"
    assert gate_confidence(0.29) == "skip"
    assert gate_confidence(float("nan")) == "skip"


def test_gate_confidence_rejects_inverted_thresholds():
    with pytest.raises(ValueError, match="low = 0.7, high = 0.6"):
        gate_confidence(0.5, high=0.6, low=0.7)


def test_smooth_rotations_keeps_a_constant_and_damps_a_spike():
    assert np.allclose(smooth_rotations([2.0] * 7, window=5), 2.0, atol=EXACT)
    spike = smooth_rotations([0, 0, 0, 5, 0, 0, 0], window=5)
    assert spike.max() == pytest.approx(1.0)
    assert np.array_equal(smooth_rotations([0, 5, 0], window=0), [0, 5, 0])


def test_accumulate_translations_is_a_cumulative_sum_capped_at_the_drift_limit():
    steps = np.array([[0, 0], [10, 0], [10, 0], [10, 0], [0, 30]], dtype=float)
    assert np.allclose(accumulate_translations(steps), [[0, 0], [10, 0], [20, 0], [30, 0], [30, 30]])
    capped = accumulate_translations(steps, max_drift_px=25.0)
    assert np.allclose(np.hypot(*capped.T), [0, 10, 20, 25, 25])
    assert np.allclose(capped[3], [25, 0])


def test_accumulate_translations_rotates_each_step_by_the_rotation_above():
    out = accumulate_translations(np.array([[0, 0], [10, 0]], float), [0.0, 90.0])
    assert np.allclose(out[1], [0, 10])


def test_accumulated_translations_are_smoothed_with_the_gaussian_sigma():
    steps = np.zeros((9, 2))
    steps[4] = [8, 0]  # a step: 0 ... 0 8 ... 8
    smooth = accumulate_translations(steps, smooth_sigma=1.0)
    assert 0 < smooth[3, 0] < smooth[4, 0] < 8
    assert smooth[0, 0] == pytest.approx(0, abs=0.01) and smooth[-1, 0] == pytest.approx(8, abs=0.01)


def _inputs(n=5, conf=0.9, zcorr=0.9):
    rot = np.array([0.0, 1.0, -2.0, 0.5, 1.0][:n])
    trans = np.array([[0, 0], [2, 1], [-1, 3], [0, 2], [1, 1]][:n], dtype=float)
    return rot, trans, np.full(n, conf), np.full(n, zcorr)


def test_resolve_transforms_chains_rotations_and_translations_exactly():
    rot, trans, conf, zc = _inputs()
    out = resolve_transforms(rot, trans, conf, zc, policy=RAW)
    assert [t.rotation_deg for t in out] == pytest.approx(np.cumsum(rot))
    assert out[1].translation_px == pytest.approx((2, 1))
    assert all(t.gate == "full" for t in out[1:])


def test_low_confidence_transforms_apply_rotation_only_or_nothing():
    rot, trans, _, zc = _inputs(3)
    out = resolve_transforms(rot, trans, [1.0, 0.4, 0.1], zc, policy=RAW)
    assert [t.gate for t in out[1:]] == ["rotation_only", "skip"]
    assert out[1].rotation_deg == pytest.approx(1.0) and out[1].translation_px == (0.0, 0.0)
    assert out[2].rotation_deg == pytest.approx(1.0)  # slice 2 adds nothing of its own


def test_rotations_are_clamped_to_max_rotation_deg():
    out = resolve_transforms([0, 9.0], [[0, 0], [0, 0]], [1, 1], [1, 1], policy=RAW)
    assert out[1].rotation_deg == pytest.approx(5.0)


def test_translations_are_weighted_by_confidence_and_dropped_on_low_zcorr_or_at_the_bound():
    weighted = TransformPolicy(stack_smooth_window=0, stack_translation_smooth_sigma=0.0)
    out = resolve_transforms([0, 0], [[0, 0], [10, 0]], [1, 0.8], [1, 1], policy=weighted)
    assert out[1].translation_px == pytest.approx((8.0, 0.0))
    out = resolve_transforms([0, 0], [[0, 0], [10, 0]], [1, 0.8], [1, 0.1], policy=weighted)
    assert out[1].translation_px == (0.0, 0.0)
    bounded = TransformPolicy(stack_smooth_window=0, stack_translation_smooth_sigma=0.0, stack_max_pairwise_translation=10.0)
    out = resolve_transforms([0, 0], [[0, 0], [10, 0]], [1, 0.8], [1, 1], policy=bounded)
    assert out[1].translation_px == (0.0, 0.0)


def test_motor_only_and_rotation_only_policies():
    rot, trans, conf, zc = _inputs()
    off = resolve_transforms(rot, trans, conf, zc, policy=TransformPolicy(apply_pairwise_transforms=False))
    assert all(t.is_identity for t in off)
    rot_only = resolve_transforms(rot, trans, conf, zc, policy=TransformPolicy(apply_rotation_only=True, stack_smooth_window=0))
    assert all(t.translation_px == (0.0, 0.0) for t in rot_only)
    assert rot_only[2].rotation_deg == pytest.approx(-1.0)


def test_unused_slice_is_placed_by_the_motor_and_skipped_in_the_chain():
    rot, trans, conf, zc = _inputs()
    out = resolve_transforms(rot, trans, conf, zc, usable=[True, True, False, True, True], policy=RAW)
    assert out[2].is_identity
    assert out[3].rotation_deg == pytest.approx(1.0 + 0.5)


def test_policy_rejects_bad_values_and_reads_guide_names():
    with pytest.raises(ValueError, match="stack_smooth_window = -1"):
        TransformPolicy(stack_smooth_window=-1)
    p = TransformPolicy.from_guide({"max_rotation_deg": 2.0, "unrelated": 1})
    assert p.max_rotation_deg == 2.0
