"""Missing-slice interpolation: zmorph recovers a gap between moved neighbours; failed gates are data; gaps of two stay holes."""

from __future__ import annotations

import numpy as np
import pytest

from serialoct.stack import (
    InterpolationParams,
    finalise_interpolation,
    interpolate_missing_slice,
    manifest_fragment,
    missing_runs,
    ncc,
    single_slice_gaps,
)
from serialoct.stack.intensity import OVERLAP_PLANES, SURFACE_PLANES

from .conftest import PLANES_PER_SLICE, local_error, observe

#: The lower neighbour's tissue moved by this much relative to the upper one.
MOVE_DEG, MOVE_PX = 2.0, (4.0, -3.0)
#: Recovered rotation and translation of the boundary-plane registration.
ROTATION_TOL_DEG, TRANSLATION_TOL_PX = 0.5, 1.0
D = PLANES_PER_SLICE
#: The interpolated slice against the true one, over the tissue (the upper slice's frame).
MIN_ZMORPH_NCC = 0.90


@pytest.fixture(scope="module")
def gap(truth):
    """Slices 3 and 5 of the phantom imaging twice the cut depth, slice 5 moved; slice 4 (the truth) in the upper slice's frame."""
    depth = 2 * D
    upper = truth.reflectivity[3 * D : 3 * D + depth]
    missing = truth.reflectivity[4 * D : 4 * D + depth]
    lower = observe(truth.reflectivity[5 * D : 5 * D + depth], MOVE_DEG, MOVE_PX)
    return upper, missing, lower, truth.tissue[4 * D : 4 * D + depth]


def _score(result, missing, tissue):
    return ncc(result.volume, missing, tissue & (result.volume != 0))


def test_zmorph_registers_the_boundary_planes_and_passes_its_gates(gap):
    upper, _, lower, _ = gap
    result = interpolate_missing_slice(upper, lower, planes_per_slice=D)
    assert not result.failed and result.volume.shape == upper.shape
    assert result.metrics["transform_accepted"]
    found = result.metrics["transform"]
    assert found["rotation_deg"] == pytest.approx(MOVE_DEG, abs=ROTATION_TOL_DEG)
    assert np.allclose(found["translation_px"], MOVE_PX, atol=TRANSLATION_TOL_PX)
    assert result.metrics["ncc_after"] > result.metrics["ncc_before"] + 0.05


def test_neighbours_imaging_far_below_the_cut_are_joined_where_the_lower_one_begins(truth):
    # The upper slice images 12 planes past the lower slice's top (medium preset: 15), more than the search window.
    upper = truth.reflectivity[3 * D : 5 * D + 12]
    missing, tissue = truth.reflectivity[4 * D : 4 * D + 2 * D], truth.tissue[4 * D : 4 * D + 2 * D]
    lower = observe(truth.reflectivity[5 * D : 7 * D], MOVE_DEG, MOVE_PX)
    result = interpolate_missing_slice(upper, lower, planes_per_slice=D, n_planes=2 * D)
    assert not result.failed, result.fallback_reason
    a, b = result.metrics["boundary_planes"]
    assert a - b == 2 * D  # the same depth
    assert _score(result, missing, tissue) >= MIN_ZMORPH_NCC


def test_zmorph_correlates_with_the_true_slice_better_than_weighted_or_average(gap):
    upper, missing, lower, tissue = gap
    scores = {m: _score(interpolate_missing_slice(upper, lower, planes_per_slice=D, params=InterpolationParams(interpolation_method=m)),
                        missing, tissue) for m in ("zmorph", "weighted", "average")}
    assert scores["zmorph"] >= MIN_ZMORPH_NCC, scores
    assert scores["zmorph"] > max(scores["weighted"], scores["average"]) + 0.1, scores


def test_zmorph_gate_failure_is_data_with_a_reason(gap):
    upper, _, lower, _ = gap
    flat = np.ones_like(upper)
    result = interpolate_missing_slice(flat, lower, planes_per_slice=D)
    assert result.failed and result.volume is None and "foreground" in result.fallback_reason
    noise = np.random.default_rng(0).random(upper.shape).astype(np.float32) + 1
    result = interpolate_missing_slice(noise, lower, planes_per_slice=D, params=InterpolationParams(interpolation_min_foreground_fraction=0.0))
    assert result.failed and "NCC" in result.fallback_reason


def test_weighted_blends_linearly_between_the_neighbours_without_registration(gap):
    upper, _, lower, _ = gap
    result = interpolate_missing_slice(upper, lower, planes_per_slice=D, params=InterpolationParams(interpolation_method="weighted"))
    assert not result.failed and "transform" not in result.metrics
    assert np.array_equal(result.volume[0], upper[D])  # depths the upper slice imaged are its own planes


def test_across_the_gap_the_upper_slices_local_error_is_matched_to_the_lower_slice(truth):
    # The upper slice images below the lower slice's cut, as OCT does; its compensation's local error grows with depth.
    depth = 2 * D + SURFACE_PLANES + OVERLAP_PLANES + 1
    z = np.arange(depth, dtype=np.float32)[:, None, None]
    error = local_error(truth.reflectivity.shape[1:])
    upper = truth.reflectivity[3 * D : 3 * D + depth] * error[None] ** (z / (depth - 1))
    missing, tissue = truth.reflectivity[4 * D : 4 * D + depth], truth.tissue[4 * D : 4 * D + depth]
    lower = observe(truth.reflectivity[5 * D : 5 * D + depth], MOVE_DEG, MOVE_PX)
    plain = interpolate_missing_slice(upper, lower, planes_per_slice=D)
    matched = interpolate_missing_slice(upper, lower, planes_per_slice=D, intensity_map_sigma_px=2.0)

    def spread(result, planes):  # the local error left in the interpolated planes, over the tissue
        inside = tissue[planes] & (missing[planes] > 0.05) & (result.volume[planes] > 0)
        return np.std(np.log(result.volume[planes][inside] / missing[planes][inside]))

    assert np.array_equal(matched.volume[0], plain.volume[0])  # the gap's top is the upper slice's own plane, as stacked
    assert spread(matched, slice(D // 2, D)) < 0.6 * spread(plain, slice(D // 2, D))
    assert matched.metrics["intensity_map"]["depth_plane"] == 2 * D + SURFACE_PLANES + OVERLAP_PLANES / 2


def test_the_filled_gap_ends_at_the_lower_slices_level_when_the_upper_slice_darkens_with_depth(truth):
    # A mean error of the upper slice's compensation that grows with depth (no lateral pattern: the map is 1).
    depth = 2 * D + SURFACE_PLANES + OVERLAP_PLANES + 1
    z = np.arange(depth, dtype=np.float32)[:, None, None]
    upper = truth.reflectivity[3 * D : 3 * D + depth] * np.float32(0.6) ** (z / (depth - 1))
    missing, tissue = truth.reflectivity[4 * D : 4 * D + depth], truth.tissue[4 * D : 4 * D + depth]
    lower = observe(truth.reflectivity[5 * D : 5 * D + depth], MOVE_DEG, MOVE_PX)
    plain = interpolate_missing_slice(upper, lower, planes_per_slice=D)
    matched = interpolate_missing_slice(upper, lower, planes_per_slice=D, intensity_map_sigma_px=2.0)

    def level(result, plane):  # the plane's mean over the truth's, over the tissue
        inside = tissue[plane] & (result.volume[plane] > 0)
        return result.volume[plane][inside].mean() / missing[plane][inside].mean()

    assert level(plain, D - 1) < 0.75  # the upper slice's own level at the gap's bottom
    assert level(matched, D - 1) == pytest.approx(1.0, abs=0.05)
    assert level(matched, 0) == pytest.approx(level(plain, 0), rel=1e-6)  # the gap's top is the upper slice's own plane
    assert matched.metrics["level_step"] > 1.3


def test_unknown_method_is_refused_with_the_allowed_ones():
    with pytest.raises(ValueError, match="zmorph, weighted, average"):
        InterpolationParams(interpolation_method="spline")


def test_only_single_slice_gaps_are_interpolated_and_longer_gaps_stay_holes():
    present = [0, 1, 2, 4, 5, 8, 9]
    assert missing_runs(present) == ((3, 1), (6, 2))
    assert single_slice_gaps(present) == (3,)
    manifest = finalise_interpolation([], [f"{k:02d}" for k in present])
    assert manifest.holes == (("06", "07"),)
    assert manifest.failed == {"03": "not attempted (interpolation disabled or no result)"}


def test_manifest_records_interpolated_and_failed_gaps(gap):
    upper, _, lower, _ = gap
    good = interpolate_missing_slice(upper, lower, planes_per_slice=D)
    bad = interpolate_missing_slice(np.ones_like(upper), lower, planes_per_slice=D)
    fragments = [manifest_fragment("03", good), manifest_fragment("06", bad)]
    manifest = finalise_interpolation(fragments, ["01", "02", "04", "05", "07"])
    assert manifest.interpolated == ("03",)
    assert "foreground" in manifest.failed["06"]
    assert manifest.to_dict()["methods"] == {"03": "zmorph", "06": "zmorph"}
