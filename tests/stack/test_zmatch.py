"""Depth overlap: correlation finds a shifted cut, and falls back to the expected overlap on noise."""

from __future__ import annotations

import numpy as np
import pytest

from serialoct.stack import expected_z_offset, match_z_offset

from .conftest import PLANES_PER_SLICE


def test_expected_offset_is_thickness_over_voxel():
    assert expected_z_offset(200.0, 25.0) == PLANES_PER_SLICE
    with pytest.raises(ValueError, match="must both be > 0"):
        expected_z_offset(200.0, 0.0)


def test_correlation_finds_a_cut_two_planes_deeper_than_expected(truth):
    upper = truth.reflectivity[16:30]
    lower_top = truth.reflectivity[16 + PLANES_PER_SLICE + 2]
    m = match_z_offset(upper, lower_top, expected_planes=PLANES_PER_SLICE, search_planes=(-3, 3))
    assert m.matched and m.offset_planes == PLANES_PER_SLICE + 2


def test_blend_refinement_searches_only_below_the_expected_boundary(truth):
    upper = truth.reflectivity[16:30]
    lower_top = truth.reflectivity[16 + PLANES_PER_SLICE - 2]
    m = match_z_offset(upper, lower_top, expected_planes=PLANES_PER_SLICE, search_planes=(0, 5))
    assert m.offset_planes >= PLANES_PER_SLICE


def test_uncorrelated_planes_keep_the_expected_offset_and_say_why():
    rng = np.random.default_rng(0)
    upper = rng.random((14, 40, 40)).astype(np.float32) + 1
    lower_top = rng.random((40, 40)).astype(np.float32) + 1
    m = match_z_offset(upper, lower_top, expected_planes=8, search_planes=(-3, 3), min_ncc=0.5)
    assert not m.matched and m.offset_planes == 8 and "NCC" in m.reason
