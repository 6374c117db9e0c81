"""register_to_atlas recovers a known reorientation, rotation and shift of a synthetic brain; resampling; preview."""

from __future__ import annotations

import numpy as np
import pytest

from serialoct.atlas.orientation import parse_orientation, parse_rotation, rotation_matrix
from serialoct.atlas.preview import EDGE_RGB, alignment_preview
from serialoct.atlas.register import METRICS, register_to_atlas
from serialoct.atlas.resample import resample_to_atlas, source_region
from tests.atlas.synthetic_brain import ATLAS_SPACING_MM, landmarks_in_atlas, make_brain

#: The issue's accuracy: landmarks within 2 atlas voxels, rotation within 2 degrees.
POSITION_TOLERANCE_VOX = 2.0
ROTATION_TOLERANCE_DEG = 2.0
#: The brain resampled into atlas space correlates with the atlas at least this well.
RESAMPLED_CORRELATION = 0.98

#: id: (ras_input_orientation, the sample's rotation from the atlas (Rx, Ry, Rz) deg, its shift (R, A, S) mm,
#: ras_initial_rotation). The hint turns the sample back onto the atlas: it is the inverse of the sample's tilt.
CASES = {
    "coronal_PIR": ("PIR", (4.0, -3.0, 6.0), (0.4, -0.5, 0.3), ""),
    "sagittal_RIA": ("RIA", (-5.0, 2.0, -4.0), (-0.3, 0.6, 0.2), ""),
    "axial_IPR": ("IPR", (3.0, 5.0, -2.0), (0.2, 0.3, -0.4), ""),
    "oblique_corono_sagittal_45": ("PIR", (2.0, -3.0, -45.0), (0.3, 0.2, -0.2), "0 0 45"),
}


def rotation_error_deg(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Angle of ``estimate^T truth``."""
    return float(np.degrees(np.arccos(np.clip((np.trace(estimate.T @ truth) - 1.0) / 2.0, -1.0, 1.0))))


def landmark_error_vox(registration, brain) -> float:
    """Largest distance between estimated and true brain positions of the landmarks, atlas voxels."""
    points = landmarks_in_atlas()
    truth = points @ brain.matrix.T + brain.translation
    return float(np.linalg.norm(registration.atlas_to_brain(points) - truth, axis=1).max() / ATLAS_SPACING_MM)


def brain_for(case: str):
    code, angles, shift, _ = CASES[case]
    return make_brain(parse_orientation(code), rotation_matrix(angles), shift)


@pytest.fixture(scope="module")
def registered(atlas):
    """Each case registered with the defaults (MI, 1000 iterations, rigid then affine)."""
    image, grid = atlas
    out = {}
    for case, (_, _, _, hint) in CASES.items():
        brain = brain_for(case)
        hint_deg = parse_rotation(hint)
        out[case] = (brain, register_to_atlas(brain.volume, brain.grid, image, grid, initial_rotation_deg=hint_deg))
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_recovers_reoriented_rotated_shifted_brain_within_2_voxels_and_2_degrees(registered, case):
    brain, reg = registered[case]
    assert landmark_error_vox(reg, brain) < POSITION_TOLERANCE_VOX
    assert rotation_error_deg(reg.rotation, brain.matrix) < ROTATION_TOLERANCE_DEG
    assert rotation_error_deg(reg.rigid_matrix, brain.matrix) < ROTATION_TOLERANCE_DEG
    assert reg.metric_value < reg.initial_metric_value  # MI: lower is better
    assert reg.iterations > 0 and reg.metric == "MI"


def test_oblique_hint_is_recorded_and_a_wrong_sign_starts_far_off(atlas, registered):
    _, reg = registered["oblique_corono_sagittal_45"]
    assert reg.initialisation == "moments + rotation (0.0, 0.0, 45.0) deg"
    # The hint turns the sample onto the atlas; its opposite starts the optimiser 90 degrees away.
    brain = brain_for("oblique_corono_sagittal_45")
    image, grid = atlas
    wrong = register_to_atlas(
        brain.volume, brain.grid, image, grid, initial_rotation_deg=(0, 0, -45), max_iterations=1, affine=False
    )
    right = register_to_atlas(
        brain.volume, brain.grid, image, grid, initial_rotation_deg=(0, 0, 45), max_iterations=1, affine=False
    )
    assert rotation_error_deg(right.rigid_matrix, brain.matrix) < 10.0
    assert rotation_error_deg(wrong.rigid_matrix, brain.matrix) > 80.0
    assert right.initial_metric_value < wrong.initial_metric_value


@pytest.mark.parametrize("metric", [m for m in METRICS if m != "MI"])
def test_every_metric_brings_the_brain_onto_the_atlas(atlas, metric):
    # Cheaper than the default run: rigid only, two pyramid levels, few iterations (AntsCC is ~10x slower).
    image, grid = atlas
    brain = brain_for("coronal_PIR")
    reg = register_to_atlas(
        brain.volume, brain.grid, image, grid, metric=metric, max_iterations=40 if metric != "AntsCC" else 15,
        shrink_factors=(4, 2), smoothing_sigmas_vox=(2.0, 1.0), affine=False,
    )
    assert reg.metric == metric
    assert reg.metric_value < reg.initial_metric_value
    assert landmark_error_vox(reg, brain) < POSITION_TOLERANCE_VOX
    assert rotation_error_deg(reg.rotation, brain.matrix) < ROTATION_TOLERANCE_DEG


def test_unknown_metric_is_rejected_with_the_allowed_ones(atlas):
    image, grid = atlas
    with pytest.raises(ValueError, match="allen_metric 'NCC': expected one of MI, MSE, CC, AntsCC"):
        register_to_atlas(image, grid, image, grid, metric="NCC")
    with pytest.raises(ValueError, match="allen_max_iterations 0"):
        register_to_atlas(image, grid, image, grid, max_iterations=0)


def test_brain_resampled_into_atlas_space_matches_the_atlas(atlas, registered):
    image, grid = atlas
    brain, reg = registered["sagittal_RIA"]
    out = resample_to_atlas(brain.volume, brain.grid, reg, grid)
    assert out.shape == grid.shape and out.dtype == np.float32
    assert np.corrcoef(out.ravel(), image.ravel())[0, 1] > RESAMPLED_CORRELATION


def test_block_by_block_resampling_equals_the_whole(atlas, registered):
    _, grid = atlas
    brain, reg = registered["axial_IPR"]
    target = grid.resampled(0.2)
    whole = resample_to_atlas(brain.volume, brain.grid, reg, target)
    blocks = np.full(target.shape, np.nan, np.float32)
    step = 11
    for z0 in range(0, target.shape[0], step):
        for y0 in range(0, target.shape[1], step):
            block = (slice(z0, z0 + step), slice(y0, y0 + step), slice(0, target.shape[2]))
            block_grid = target.crop(block)
            region = source_region(brain.grid, reg, block_grid, margin=1)
            assert region is not None
            blocks[block] = resample_to_atlas(brain.volume[region], brain.grid.crop(region), reg, block_grid)
    assert np.abs(blocks - whole).max() < 1e-5


def test_source_region_is_none_for_a_block_outside_the_brain_volume(atlas, registered):
    _, grid = atlas
    brain, reg = registered["coronal_PIR"]
    far = grid.crop((slice(0, 4), slice(0, 4), slice(0, 4)))
    far = type(far)(far.shape, far.spacing_mm, far.orientation, tuple(np.asarray(far.origin_mm) + 100.0))
    assert source_region(brain.grid, reg, far) is None


def test_preview_is_three_panels_with_the_atlas_edges(atlas, registered):
    image, grid = atlas
    brain, reg = registered["coronal_PIR"]
    out = resample_to_atlas(brain.volume, brain.grid, reg, grid)
    picture = alignment_preview(out, image)
    s, a, r = grid.shape
    assert picture.dtype == np.uint8 and picture.shape == (max(a, s), r + r + a + 8, 3)
    assert (picture == EDGE_RGB).all(axis=-1).sum() > 100
    board = alignment_preview(out, image, overlay="checkerboard", checker_px=5)
    assert board.shape == picture.shape and (board[..., 0] == board[..., 1]).all()
    with pytest.raises(ValueError, match="overlay 'blend': expected one of edges, checkerboard"):
        alignment_preview(out, image, overlay="blend")
