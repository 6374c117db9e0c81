"""register_pairwise recovers the synthetic truth between consecutive slices; confidence and gating."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from serialoct.align.pairwise import (
    PairwiseParams,
    PairwiseTransform,
    gate_transform,
    planes_used,
    register_pairwise,
    transform_confidence,
    warp_to_fixed,
)
from serialoct.params import resolve
from tests.align.conftest_pairwise import FIRST_TOP_MM, VOXEL_MM, make_pair, small_plan

#: The issue's accuracy: XY within 1 voxel at the working resolution, rotation within 0.3 degrees.
PLACEMENT_TOLERANCE_PX = 1.0
ROTATION_TOLERANCE_DEG = 0.3
#: The matched depth plane may differ from the true overlap by one plane.
DEPTH_TOLERANCE_PLANES = 1
#: Consecutive synthetic slices correlate at least this well once registered.
GOOD_Z_CORRELATION = 0.9

#: (fixed slice of ``small``, extra rotation of the moving slice (deg), extra drift (px)), on top of the plan's own.
CASES = [(2, 0.0, (0.0, 0.0)), (3, 2.0, (6.3, -4.7)), (4, -1.5, (-3.2, 8.1)), (5, -3.0, (-12.0, 20.0))]


pytestmark = pytest.mark.usefixtures("two_itk_threads")


@pytest.fixture(scope="module")
def pairs():
    return {case: make_pair(case[0], seed=i, extra_rotation_deg=case[1], extra_drift_px=case[2]) for i, case in enumerate(CASES)}


@pytest.fixture(scope="module")
def shifted_pair():
    """Slices 03/04 with the moving one turned 1.5 degrees more and drifted (20, -15) px."""
    return make_pair(3, seed=11, extra_rotation_deg=1.5, extra_drift_px=(20.0, -15.0))


def _errors(result: PairwiseTransform, pair) -> tuple[float, float]:
    return abs(result.rotation_deg - pair.rotation_deg), float(np.max(np.abs(np.subtract(result.translation_px, pair.translation_px))))


@pytest.mark.parametrize("case", CASES, ids=[f"slice{c[0]:02d}_rot{c[1]:+g}" for c in CASES])
def test_recovers_relative_transform_within_1px_and_0p3deg(pairs, case):
    pair = pairs[case]
    result = register_pairwise(pair.fixed, pair.moving, voxel_size_mm=pair.voxel_mm)
    rotation_error, translation_error = _errors(result, pair)
    assert rotation_error <= ROTATION_TOLERANCE_DEG
    assert translation_error <= PLACEMENT_TOLERANCE_PX
    assert result.z_index_fixed == pair.matching_plane
    assert result.z_correlation >= GOOD_Z_CORRELATION
    assert result.status == "ok" and result.reason == ""
    assert gate_transform(result) == "full"


def test_the_registration_reads_only_the_planes_planes_used_names(pairs):
    pair = pairs[CASES[1]]
    fixed_planes, moving_planes = planes_used(len(pair.fixed), len(pair.moving), voxel_size_mm=pair.voxel_mm)
    assert len(fixed_planes) < len(pair.fixed) and len(moving_planes) < len(pair.moving)
    fixed, moving = np.zeros_like(pair.fixed), np.zeros_like(pair.moving)
    fixed[fixed_planes], moving[moving_planes] = pair.fixed[fixed_planes], pair.moving[moving_planes]
    assert register_pairwise(fixed, moving, voxel_size_mm=pair.voxel_mm) == register_pairwise(pair.fixed, pair.moving, voxel_size_mm=pair.voxel_mm)


def test_recovered_transform_follows_the_documented_convention(pairs):
    """Warping the moving plane with the truth's transform lines it up with the fixed plane, as the estimate's does."""
    pair = pairs[CASES[1]]
    result = register_pairwise(pair.fixed, pair.moving, voxel_size_mm=pair.voxel_mm)
    matrix = result.matrix()
    centre = np.asarray(result.center_px)
    point = np.array([10.0, 120.0])
    expected = np.array([[math.cos(math.radians(result.rotation_deg)), -math.sin(math.radians(result.rotation_deg))],
                         [math.sin(math.radians(result.rotation_deg)), math.cos(math.radians(result.rotation_deg))]]) @ (point - centre)
    np.testing.assert_allclose((matrix @ [*point, 1.0])[:2], expected + centre + result.translation_px)
    warped = warp_to_fixed(pair.moving[pair.moving_index], pair.rotation_deg, pair.translation_px, result.center_px, cval=0.0)
    fixed = pair.fixed[pair.matching_plane]
    assert np.corrcoef(warped.ravel(), fixed.ravel())[0, 1] > np.corrcoef(pair.moving[pair.moving_index].ravel(), fixed.ravel())[0, 1]


@pytest.mark.parametrize("extra_cut_planes", [-3, 2])
def test_matches_depth_within_1_plane_of_a_thicker_or_thinner_cut(extra_cut_planes):
    pair = make_pair(4, seed=20 + extra_cut_planes, extra_cut_planes=extra_cut_planes)
    result = register_pairwise(pair.fixed, pair.moving, voxel_size_mm=pair.voxel_mm)
    assert abs(result.z_index_fixed - pair.matching_plane) <= DEPTH_TOLERANCE_PLANES
    assert result.expected_z_index_fixed == 8 + 4  # 200 µm / 25 µm + moving_slice_first_index
    assert result.z_offset_planes == result.z_index_fixed - 4
    assert _errors(result, pair)[1] <= PLACEMENT_TOLERANCE_PX


def test_translation_mode_recovers_a_pure_shift_without_rotation():
    plan = small_plan()
    relative = plan.slices[3].rotation_deg - plan.slices[4].rotation_deg
    pair = make_pair(3, seed=30, extra_rotation_deg=relative, extra_drift_px=(4.5, -7.25))  # no net rotation
    assert abs(pair.rotation_deg) < 1e-9
    result = register_pairwise(pair.fixed, pair.moving, voxel_size_mm=pair.voxel_mm, params=PairwiseParams(transform="translation"))
    assert result.rotation_deg == 0.0
    assert _errors(result, pair)[1] <= PLACEMENT_TOLERANCE_PX
    assert result.status == "ok"


@pytest.mark.parametrize("alignment", ["none", "com", "gradient", "both"])
def test_every_initial_alignment_recovers_a_25px_shift_with_rotation(shifted_pair, alignment):
    result = register_pairwise(shifted_pair.fixed, shifted_pair.moving, voxel_size_mm=VOXEL_MM,
                               params=PairwiseParams(initial_alignment=alignment))
    rotation_error, translation_error = _errors(result, shifted_pair)
    assert rotation_error <= ROTATION_TOLERANCE_DEG and translation_error <= PLACEMENT_TOLERANCE_PX
    assert result.initial_alignment in (("com", "gradient") if alignment == "both" else (alignment,))


def test_shift_beyond_max_translation_is_clamped_and_never_confident(shifted_pair):
    bound = 10.0
    result = register_pairwise(shifted_pair.fixed, shifted_pair.moving, voxel_size_mm=VOXEL_MM,
                               params=PairwiseParams(max_translation_px=bound))
    assert np.max(np.abs(result.translation_px)) <= bound
    assert result.status == "error" and "registration_max_translation" in result.reason
    assert result.confidence == 0.0
    assert gate_transform(result, skip_error=False) == "skip"


def test_rotation_beyond_max_rotation_is_clamped_and_flagged(shifted_pair):
    result = register_pairwise(shifted_pair.fixed, shifted_pair.moving, voxel_size_mm=VOXEL_MM,
                               params=PairwiseParams(max_rotation_deg=1.0))
    assert abs(result.rotation_deg) <= 1.0
    assert result.status == "error" and "registration_max_rotation" in result.reason
    assert gate_transform(result, skip_error=False) == "skip"


def test_noise_image_gives_no_confidence(shifted_pair):
    noise = np.random.default_rng(0).gamma(12.0, 0.3 / 12.0, shifted_pair.moving.shape).astype(np.float32)
    result = register_pairwise(shifted_pair.fixed, noise, voxel_size_mm=VOXEL_MM)
    assert result.confidence < 0.3
    assert gate_transform(result, skip_error=False, skip_warning=False) == "skip"


def test_far_away_slice_is_not_applied_in_full():
    pair = make_pair(2, seed=40, moving_top_mm=FIRST_TOP_MM + 0.9)  # 0.9 mm deeper than the fixed slice's top
    result = register_pairwise(pair.fixed, pair.moving, voxel_size_mm=pair.voxel_mm)
    assert result.z_correlation < GOOD_Z_CORRELATION - 0.3
    assert result.confidence < 0.6
    assert result.status == "warning"
    assert gate_transform(result) == "skip"


def test_plane_without_tissue_is_an_error_at_identity(shifted_pair):
    result = register_pairwise(shifted_pair.fixed, np.zeros_like(shifted_pair.moving), voxel_size_mm=VOXEL_MM)
    assert (result.status, result.reason) == ("error", "no tissue to register")
    assert result.rotation_deg == 0.0 and result.translation_px == (0.0, 0.0) and result.confidence == 0.0
    assert math.isnan(result.z_correlation)


# --------------------------------------------------------------------------- confidence and gating


def _transform(**changes) -> PairwiseTransform:
    base = PairwiseTransform(0.5, (2.0, -1.0), (63.5, 63.5), 12, 4, 12, 0.9, 0.85, -0.9, "com", "ok")
    return replace(base, **changes)


def test_confidence_is_the_z_correlation_far_from_the_bounds_and_zero_at_them():
    kwargs = dict(max_translation_px=200.0, max_rotation_deg=5.0)
    assert transform_confidence(0.8, (0.0, 0.0), 0.0, **kwargs) == pytest.approx(0.8)
    assert transform_confidence(0.8, (200.0, 0.0), 0.0, **kwargs) == 0.0
    assert transform_confidence(0.8, (0.0, 0.0), -5.0, **kwargs) == 0.0
    assert transform_confidence(-0.2, (0.0, 0.0), 0.0, **kwargs) == 0.0
    assert transform_confidence(float("nan"), (0.0, 0.0), 0.0, **kwargs) == 0.0
    values = [transform_confidence(0.9, (s, 0.0), 0.0, **kwargs) for s in (0, 50, 100, 150, 199)]
    assert values == sorted(values, reverse=True)


@pytest.mark.parametrize(("confidence", "gate"), [(0.9, "full"), (0.6, "full"), (0.45, "rotation_only"), (0.3, "rotation_only"), (0.29, "skip")])
def test_gate_follows_the_confidence_thresholds(confidence, gate):
    assert gate_transform(_transform(confidence=confidence), high=0.6, low=0.3) == gate


def test_gate_skips_flagged_and_metric_gated_transforms():
    assert gate_transform(_transform(status="error")) == "skip"
    assert gate_transform(_transform(status="error"), skip_error=False) == "full"
    assert gate_transform(_transform(status="warning")) == "skip"
    assert gate_transform(_transform(status="warning"), skip_warning=False) == "full"
    assert gate_transform(_transform(z_correlation=0.7), min_z_correlation=0.8) == "skip"
    assert gate_transform(_transform(rotation_deg=2.0), max_rotation_deg=1.0) == "skip"
    assert gate_transform(_transform(rotation_deg=2.0), max_rotation_deg=0.0) == "full"  # 0 = gate off


def test_gate_rejects_thresholds_out_of_order():
    with pytest.raises(ValueError, match="low = 0.7, high = 0.6"):
        gate_transform(_transform(), high=0.6, low=0.7)


# --------------------------------------------------------------------------- parameters, outputs, errors


def test_params_from_the_guide_defaults_match_the_dataclass_defaults():
    assert PairwiseParams.from_guide(resolve("reconst_3d")) == PairwiseParams()


@pytest.mark.parametrize(("field", "value", "allowed"), [("transform", "affine", "euler, translation"),
                                                          ("initial_alignment", "moments", "none, com, gradient, both"),
                                                          ("metric", "mi", "correlation, mse")])
def test_unknown_choice_is_refused_with_the_allowed_values(field, value, allowed):
    with pytest.raises(ValueError, match=f"unknown {field} '{value}'; choose one of {allowed}"):
        PairwiseParams(**{field: value})


def test_transform_round_trips_through_json_and_metrics_carry_a_status(pairs):
    pair = pairs[CASES[0]]
    result = register_pairwise(pair.fixed, pair.moving, voxel_size_mm=pair.voxel_mm)
    assert PairwiseTransform.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    metrics = json.loads(json.dumps(result.metrics()))
    assert {"z_correlation", "z_index_fixed", "rotation", "translation", "confidence"} <= set(metrics)
    assert all(set(m) == {"value", "unit", "description", "status"} and m["status"] == "ok" for m in metrics.values())
    flagged = _transform(status="error", reason="translation beyond registration_max_translation 10 px, clamped", z_correlation=0.2)
    statuses = {name: m["status"] for name, m in flagged.metrics().items()}
    assert statuses["translation"] == "error" and statuses["z_correlation"] == "warning" and statuses["rotation"] == "ok"


def test_stacks_of_different_shapes_or_too_thin_are_refused(shifted_pair):
    with pytest.raises(ValueError, match="same \\(rows, cols\\)"):
        register_pairwise(shifted_pair.fixed, shifted_pair.moving[:, :-1], voxel_size_mm=VOXEL_MM)
    with pytest.raises(ValueError, match="the fixed slice has 6 planes"):
        register_pairwise(shifted_pair.fixed[:6], shifted_pair.moving, voxel_size_mm=VOXEL_MM)
    with pytest.raises(ValueError, match="moving_slice_first_index = 4 but the moving slice has 3 planes"):
        register_pairwise(shifted_pair.fixed, shifted_pair.moving[:3], voxel_size_mm=VOXEL_MM)
