"""Orientation codes, reorientation to the RAS array order, grids in RAS mm, and the rotation hint."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from serialoct.atlas.orientation import (
    EXAMPLE_CODES,
    RAS_CODE,
    direction_matrix,
    ngff_orientations,
    orientation_from_ngff,
    parse_orientation,
    parse_rotation,
    reorient,
    reorient_spacing,
    reorientation,
    rotation_matrix,
)
from serialoct.atlas.space import VolumeGrid

#: Every valid code: one letter of each pair, in any order.
ALL_CODES = [
    "".join(letters)
    for pairs in itertools.permutations(("RL", "AP", "SI"))
    for letters in itertools.product(*pairs)
]
#: Where the index of each letter grows: the letter is the "high" end of its axis.
_TOWARD = {"R": 2, "L": 2, "A": 1, "P": 1, "S": 0, "I": 0}  # RAS array axis (S, A, R) of each letter
EXACT = 1e-12


def test_every_combination_of_one_letter_per_pair_is_a_valid_code():
    assert len(ALL_CODES) == 48
    assert all(parse_orientation(code) == code for code in ALL_CODES)
    assert parse_orientation(" pir ") == "PIR"


def test_empty_code_means_already_ras_ordered():
    assert parse_orientation("") == RAS_CODE == "SAR"


@pytest.mark.parametrize(
    ("code", "problem"),
    [
        ("PIX", "'X' is not an anatomical direction"),
        ("PI", "2 letters"),
        ("PIRS", "4 letters"),
        ("PAR", "the A/P axis appears 2 times"),
        ("RLS", "the R/L axis appears 2 times"),
        ("DVR", "'D' is not an anatomical direction"),
    ],
)
def test_bad_codes_are_rejected_with_the_valid_letters_and_examples(code, problem):
    with pytest.raises(ValueError, match=problem) as info:
        parse_orientation(code)
    message = str(info.value)
    assert f"ras_input_orientation {code!r}" in message
    assert "R/L (right/left), A/P (anterior/posterior), S/I (superior/inferior)" in message
    assert "PIR, AIR, RIA, LIA, IPR, SPR" in message


def test_coronal_pir_stack_matches_the_guide_table_by_hand():
    # PIR: slices stacked anterior->posterior, rows dorsal->ventral, columns left->right.
    v = np.zeros((5, 4, 3))
    v[0, 0, 2] = 1  # first slice (most anterior), top row (most dorsal), last column (rightmost)
    r = reorient(v, "PIR")
    assert r.shape == (4, 5, 3)  # (S, A, R)
    assert tuple(np.argwhere(r)[0]) == (3, 4, 2)  # most superior, most anterior, rightmost
    assert reorientation("PIR").permutation == (1, 0, 2)


@pytest.mark.parametrize("code", ALL_CODES)
def test_reorient_puts_each_anatomical_extreme_at_the_ras_extreme(code):
    shape = (3, 4, 5)
    v = np.zeros(shape)
    v[-1, -1, -1] = 1  # the voxel at the far end of every axis: toward each of the code's letters
    r = reorient(v, code)
    expected = [0, 0, 0]
    for j, letter in enumerate(code):
        positive = letter in "RAS"  # the far end is R/A/S: the RAS array's last index; else its first
        expected[_TOWARD[letter]] = shape[j] - 1 if positive else 0
    assert tuple(np.argwhere(r)[0]) == tuple(expected)
    assert r.shape == tuple(shape[[_TOWARD[c] for c in code].index(k)] for k in range(3))


@pytest.mark.parametrize("code", ALL_CODES)
def test_reorient_back_gives_the_volume_back(code):
    v = np.random.default_rng(0).random((3, 4, 5))
    assert np.array_equal(reorient(reorient(v, code), RAS_CODE, code), v)


def test_spacing_follows_the_axes():
    assert reorient_spacing((0.2, 0.1, 0.05), "PIR") == (0.1, 0.2, 0.05)
    assert reorient_spacing((0.2, 0.1, 0.05), "SAR") == (0.2, 0.1, 0.05)


def test_direction_matrix_is_the_signed_permutation_of_the_code():
    assert np.array_equal(direction_matrix("SAR"), [[0, 0, 1], [0, 1, 0], [1, 0, 0]])
    assert np.array_equal(direction_matrix("PIR"), [[0, 0, 1], [-1, 0, 0], [0, -1, 0]])


@pytest.mark.parametrize("code", ALL_CODES)
def test_reoriented_grid_puts_every_voxel_at_the_same_ras_point(code):
    grid = VolumeGrid((6, 7, 8), (0.3, 0.2, 0.1), code, (1.0, -2.0, 0.5))
    ras = grid.reoriented()
    r = reorientation(code)
    index = np.array([[0, 0, 0], [5, 6, 7], [2, 3, 1], [5, 0, 4]])
    moved = r.apply_to_index(index, grid.shape)
    assert np.abs(grid.index_to_ras(index) - ras.index_to_ras(moved)).max() < EXACT
    assert ras.orientation == RAS_CODE
    assert np.abs(ras.ras_to_index(ras.index_to_ras(moved)) - moved).max() < 1e-9


def test_grid_from_ngff_places_every_pyramid_level_in_one_frame():
    # Level 1 of a 2x pyramid: voxel 0 is centred between level-0 voxels 0 and 1 (NGFF translation = half a voxel).
    level0 = VolumeGrid.from_ngff((8, 8, 8), (0.1, 0.1, 0.1), (0.0, 0.0, 0.0), "IPR")
    level1 = VolumeGrid.from_ngff((4, 4, 4), (0.2, 0.2, 0.2), (0.05, 0.05, 0.05), "IPR")
    children = level0.index_to_ras(list(itertools.product((2, 3), repeat=3))).mean(axis=0)
    assert np.abs(level1.index_to_ras([[1, 1, 1]])[0] - children).max() < EXACT
    assert np.allclose(level1.ngff_translation_mm, (0.05, 0.05, 0.05), atol=EXACT)


def test_resampled_grid_keeps_the_extent():
    grid = VolumeGrid((10, 20, 30), (0.1, 0.1, 0.1), "SAR", (1.0, 2.0, 3.0))
    coarse = grid.resampled(0.2)
    assert coarse.shape == (5, 10, 15)
    first_edge = grid.index_to_ras([[-0.5, -0.5, -0.5]])[0]
    assert np.abs(coarse.index_to_ras([[-0.5, -0.5, -0.5]])[0] - first_edge).max() < EXACT
    last_edge = grid.index_to_ras([np.array(grid.shape) - 0.5])[0]
    assert np.abs(coarse.index_to_ras([np.array(coarse.shape) - 0.5])[0] - last_edge).max() < EXACT


def test_ngff_orientations_of_the_ras_order_and_back():
    assert ngff_orientations() == ("inferior-to-superior", "posterior-to-anterior", "left-to-right")
    for code in EXAMPLE_CODES:
        assert orientation_from_ngff(ngff_orientations(code)) == code
    assert orientation_from_ngff(["dorsal-to-ventral", "anterior-to-posterior", "left-to-right"]) == "IPR"
    assert orientation_from_ngff([None, "posterior-to-anterior", "left-to-right"]) is None
    with pytest.raises(ValueError, match="'up' is not one of"):
        orientation_from_ngff(["up", "posterior-to-anterior", "left-to-right"])


@pytest.mark.parametrize(
    ("angles", "before", "after"),
    [
        ((90, 0, 0), (0, 1, 0), (0, 0, 1)),  # Rx: anterior tilts toward superior
        ((0, 90, 0), (0, 0, 1), (1, 0, 0)),  # Ry: superior toward right
        ((0, 0, 90), (1, 0, 0), (0, 1, 0)),  # Rz: right toward anterior
    ],
)
def test_rotation_hint_turns_about_the_ras_axes_right_handed(angles, before, after):
    assert np.allclose(rotation_matrix(angles) @ before, after)


def test_rotation_hint_applies_x_then_y_then_z():
    rx, ry, rz = rotation_matrix((10, 0, 0)), rotation_matrix((0, 20, 0)), rotation_matrix((0, 0, 30))
    combined = rotation_matrix((10, 20, 30))
    assert np.allclose(combined, rz @ ry @ rx)
    assert np.allclose(combined.T @ combined, np.eye(3)) and np.isclose(np.linalg.det(combined), 1.0)


def test_rotation_text_is_three_angles_in_degrees():
    assert parse_rotation("0 0 45") == (0.0, 0.0, 45.0)
    assert parse_rotation(" -45, 0,0 ") == (-45.0, 0.0, 0.0)
    assert parse_rotation("") is None and parse_rotation(None) is None
    for bad in ("0 45", "a b c", "0 0 nan"):
        with pytest.raises(ValueError, match=rf"ras_initial_rotation {bad!r}: expected three angles"):
            parse_rotation(bad)
