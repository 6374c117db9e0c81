"""Manual alignment: projections per level, the level-pixel record, its link, and the bounded refinement.

Ground truth: planes of the ``small`` phantom's truth volume (``truth``
fixture, 25 µm, canvas 172 x 185), the moving slice resampled with a known
rigid transform (``observe``) so that its pixel ``p`` shows the tissue of the
fixed slice's pixel ``R(theta) (p - c) + c + t``; independent 5 % noise on
each.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from serialoct.align.planes import correlate_planes, warp_to_fixed
from serialoct.stack.manual import (
    ManualTransform,
    block_mean,
    canvas_aip,
    manual_link,
    matched_planes,
    refine_manual,
)
from serialoct.stack.render import warp_to_canvas

from .conftest import observe

#: Exactness of the level conversions and the record round trip (float64 arithmetic).
EXACT = 1e-9
#: Refinement from a manual transform a few pixels and a degree off, on the truth planes.
REFINED_TRANSLATION_TOLERANCE_PX = 0.3
REFINED_ROTATION_TOLERANCE_DEG = 0.1
#: The realistic pair (different speckle and noise at matched depths): the NCC optimum itself sits up to
#: about 0.15 deg off the truth on a 136 x 150 plane (measured), so the rotation tolerance is wider there.
REALISTIC_ROTATION_TOLERANCE_DEG = 0.2
#: A true pair transform, moving to fixed, about the canvas centre.
TRUE_ROTATION_DEG = 1.7
TRUE_TRANSLATION_PX = (4.0, -3.0)
NOISE = 0.05
#: Truth planes used (the middle of the brain, textured).
Z_PLANE = 30


@pytest.fixture(scope="module")
def slab_pair(truth):
    """Fixed and moving slabs (5 planes) of the same tissue, the moving one turned and shifted by the truth."""
    rng = np.random.default_rng(3)
    slab = truth.reflectivity[Z_PLANE - 2 : Z_PLANE + 3]
    fixed = slab * (1 + NOISE * rng.standard_normal(slab.shape)).astype(np.float32)
    moving = observe(slab * (1 + NOISE * rng.standard_normal(slab.shape)).astype(np.float32), TRUE_ROTATION_DEG, TRUE_TRANSLATION_PX)
    return fixed.astype(np.float32), moving


def _truth_record(canvas_shape, level: int, *, d_rotation_deg: float = 0.0, d_translation_px=(0.0, 0.0)) -> ManualTransform:
    centre = ((canvas_shape[0] - 1) / 2.0, (canvas_shape[1] - 1) / 2.0)
    t = np.add(TRUE_TRANSLATION_PX, d_translation_px)
    return ManualTransform.from_pairwise(TRUE_ROTATION_DEG + d_rotation_deg, t, centre, fixed_id="03", moving_id="04", level=level)


# --------------------------------------------------------------------------- projections


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_block_mean_shapes_round_up_and_blocks_average(level):
    rng = np.random.default_rng(level)
    image = rng.random((172, 185)).astype(np.float32)
    out = block_mean(image, level)
    f = 2**level
    assert out.shape == (-(-172 // f), -(-185 // f))
    assert out[1, 2] == pytest.approx(image[f : 2 * f, 2 * f : 3 * f].mean(), rel=1e-6)
    # the last partial block averages its pixels with the zero padding
    assert out[-1, -1] == pytest.approx(image[(out.shape[0] - 1) * f :, (out.shape[1] - 1) * f :].sum() / f**2, rel=1e-6)


def test_canvas_aip_is_the_depth_mean_of_the_slice_placed_in_the_canvas(truth):
    volume = truth.reflectivity[20:32, 10:150, 20:160]
    canvas, offset = (172, 185), (7.25, 11.5)
    expected = warp_to_canvas(volume, canvas, offset_px=offset).mean(axis=0)
    np.testing.assert_allclose(canvas_aip(volume, canvas, offset_px=offset, level=0), expected, atol=1e-6)
    np.testing.assert_allclose(canvas_aip(volume, canvas, offset_px=offset, level=2), block_mean(expected, 2), atol=1e-6)


# --------------------------------------------------------------------------- the record and its levels


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_level_record_maps_level_pixels_as_the_full_resolution_transform_maps_their_centres(level):
    full = _truth_record((172, 185), 0)
    at_level = full.at_level(level)
    f = 2**level
    points = np.random.default_rng(0).uniform(0, 80, (20, 2))
    level_mapped = (at_level.matrix() @ np.c_[points, np.ones(20)].T).T[:, :2]
    full_mapped = (full.matrix() @ np.c_[f * points + (f - 1) / 2, np.ones(20)].T).T[:, :2]
    np.testing.assert_allclose(f * level_mapped + (f - 1) / 2, full_mapped, atol=EXACT)
    back = at_level.at_level(0)
    np.testing.assert_allclose(back.translation_px, full.translation_px, atol=EXACT)
    np.testing.assert_allclose(back.center_px, full.center_px, atol=EXACT)


def test_export_record_json_link_round_trip_is_exact():
    canvas = (172, 185)
    record = json.loads(json.dumps(_truth_record(canvas, 1).to_dict()))
    assert record["level"] == 1 and record["translation_px"] == [TRUE_TRANSLATION_PX[0] / 2, TRUE_TRANSLATION_PX[1] / 2]
    link = manual_link(ManualTransform.from_dict(record), canvas_shape=canvas, z_offset_planes=12)
    assert link.source == "manual" and link.confidence == 1.0 and link.z_offset_planes == 12
    assert link.rotation_deg == pytest.approx(TRUE_ROTATION_DEG, abs=EXACT)
    np.testing.assert_allclose(link.translation_px, TRUE_TRANSLATION_PX, atol=EXACT)


def test_a_record_about_another_centre_gives_the_same_link():
    canvas = (172, 185)
    moved = _truth_record(canvas, 2).about_center((10.0, 70.0))
    link = manual_link(moved, canvas_shape=canvas)
    np.testing.assert_allclose(link.translation_px, TRUE_TRANSLATION_PX, atol=EXACT)


def test_level_record_aligns_the_exported_projections(slab_pair):
    fixed, moving = slab_pair
    canvas = fixed.shape[1:]
    level = 1
    record = _truth_record(canvas, level)
    fixed_aip, moving_aip = canvas_aip(fixed, canvas, level=level), canvas_aip(moving, canvas, level=level)
    mask = moving_aip > np.percentile(moving_aip, 50)

    def ncc(theta, t, centre):
        warped = warp_to_fixed(moving_aip, theta, t, centre, cval=np.nan)
        return correlate_planes(fixed_aip, warped, warp_to_fixed(mask.astype(np.float32), theta, t, centre, cval=0.0) > 0.5)

    aligned = ncc(record.rotation_deg, record.translation_px, record.center_px)
    assert aligned > 0.97
    assert aligned > ncc(0.0, (0.0, 0.0), record.center_px) + 0.05


@pytest.mark.parametrize(("change", "match"), [
    ({"level": -1}, "level"), ({"moving_id": "4"}, "two-digit"), ({"translation_px": [1.0]}, "row, col"),
    ({"rotation_deg": "a lot"}, "expected a number"),
])
def test_bad_records_are_refused_naming_the_value(change, match):
    record = {**_truth_record((172, 185), 1).to_dict(), **change}
    with pytest.raises(ValueError, match=match):
        ManualTransform.from_dict(record)


def test_a_record_without_a_key_names_it():
    record = _truth_record((172, 185), 1).to_dict()
    del record["center_px"]
    with pytest.raises(ValueError, match="missing center_px"):
        ManualTransform.from_dict(record)


# --------------------------------------------------------------------------- refinement


@pytest.mark.parametrize(("d_rotation_deg", "d_translation_px"), [(1.0, (3.0, 0.0)), (-1.0, (0.0, -3.0)), (1.0, (-2.0, 2.0))])
def test_refine_recovers_the_truth_from_3px_1deg_off_within_0p3px_0p1deg(slab_pair, d_rotation_deg, d_translation_px):
    fixed, moving = slab_pair
    manual = _truth_record(fixed.shape[1:], 1, d_rotation_deg=d_rotation_deg, d_translation_px=d_translation_px)
    fixed_plane, moving_plane = matched_planes(fixed, moving, z_fixed=2, z_moving=2)
    link, info = refine_manual(fixed_plane, moving_plane, manual, max_translation_px=10.0, max_rotation_deg=2.0)
    assert info.status == "refined" and info.reason == "" and link.source == "manual_refined" and link.confidence == 1.0
    assert abs(link.rotation_deg - TRUE_ROTATION_DEG) <= REFINED_ROTATION_TOLERANCE_DEG
    assert np.max(np.abs(np.subtract(link.translation_px, TRUE_TRANSLATION_PX))) <= REFINED_TRANSLATION_TOLERANCE_PX
    assert info.ncc_refined > info.ncc_manual
    assert abs(info.delta_rotation_deg) <= 2.0 and np.max(np.abs(info.delta_translation_px)) <= 10.0


def test_refine_with_bounds_smaller_than_the_error_stops_at_the_bounds_and_says_so(slab_pair):
    fixed, moving = slab_pair
    manual = _truth_record(fixed.shape[1:], 1, d_rotation_deg=1.0, d_translation_px=(3.0, 0.0))
    start = manual_link(manual, canvas_shape=fixed.shape[1:])
    link, info = refine_manual(*matched_planes(fixed, moving, z_fixed=2, z_moving=2), manual, max_translation_px=1.0, max_rotation_deg=0.25)
    assert info.status == "clamped"
    assert "refine_max_translation_px 1" in info.reason and "refine_max_rotation_deg 0.25" in info.reason
    # the registration asked for the way back to the truth; the result moved exactly the bound towards it
    assert info.unclamped_delta_translation_px[0] == pytest.approx(-3.0, abs=0.5)
    assert info.delta_translation_px[0] == -1.0 and info.delta_rotation_deg == -0.25
    assert link.rotation_deg - start.rotation_deg == pytest.approx(-0.25, abs=EXACT)
    assert np.max(np.abs(np.subtract(link.translation_px, start.translation_px))) <= 1.0 + EXACT
    assert info.ncc_refined > info.ncc_manual


def test_refine_on_a_realistic_pair_lands_within_0p3px_and_0p2deg():
    from tests.align.conftest_pairwise import make_pair

    pair = make_pair(3, seed=11, extra_rotation_deg=1.0, extra_drift_px=(6.0, -4.0))
    canvas = pair.fixed.shape[1:]
    centre = ((canvas[0] - 1) / 2.0, (canvas[1] - 1) / 2.0)
    manual = ManualTransform.from_pairwise(pair.rotation_deg - 1.0, pair.translation_px + (0.0, 3.0), centre,
                                           fixed_id="03", moving_id="04", level=1)
    planes = matched_planes(pair.fixed, pair.moving, z_fixed=pair.matching_plane, z_moving=pair.moving_index)
    link, info = refine_manual(*planes, manual, max_translation_px=10.0, max_rotation_deg=2.0)
    assert info.status == "refined"
    assert abs(link.rotation_deg - pair.rotation_deg) <= REALISTIC_ROTATION_TOLERANCE_DEG
    assert np.max(np.abs(np.subtract(link.translation_px, pair.translation_px))) <= REFINED_TRANSLATION_TOLERANCE_PX


def test_refine_keeps_the_manual_transform_without_tissue_or_with_zero_bounds(slab_pair):
    fixed, moving = slab_pair
    manual = _truth_record(fixed.shape[1:], 1, d_translation_px=(2.0, 0.0))
    expected = manual_link(manual, canvas_shape=fixed.shape[1:])
    flat = np.zeros(fixed.shape[1:], np.float32)
    link, info = refine_manual(flat, flat, manual, max_translation_px=10.0, max_rotation_deg=2.0)
    assert info.status == "kept_manual" and "no tissue" in info.reason and link == expected
    link, info = refine_manual(*matched_planes(fixed, moving, z_fixed=2, z_moving=2), manual, max_translation_px=0.0, max_rotation_deg=0.0)
    assert info.status == "kept_manual" and "bounds are 0" in info.reason and link == expected


def test_refine_refuses_negative_bounds_and_mismatched_planes(slab_pair):
    fixed, _ = slab_pair
    manual = _truth_record(fixed.shape[1:], 0)
    with pytest.raises(ValueError, match="expected bounds >= 0"):
        refine_manual(fixed[0], fixed[0], manual, max_translation_px=-1.0, max_rotation_deg=2.0)
    with pytest.raises(ValueError, match="same shape"):
        refine_manual(fixed[0], fixed[0, 1:], manual, max_translation_px=1.0, max_rotation_deg=2.0)
