"""Bias field correction: a known smooth multiplicative bias on the synthetic brain is removed (N4 per section / global / two pass)."""

from __future__ import annotations

import tracemalloc
from dataclasses import dataclass

import numpy as np
import pytest

from serialoct.correct.bias import (
    BiasGrid,
    apply_bias_field,
    correct_bias_field,
    estimate_bias_field,
    plan_bias_grid,
    reduce_block,
    uniform_section_starts,
)
from serialoct.synth import iter_truth_volume, plan_acquisition, preset

#: The claim: RMS of corrected / clean over the tissue (normalised to mean 1) after correction.
RESIDUAL_RMS = 0.05
#: The bias before correction is at least twice that: the claim cannot hold by doing nothing.
MIN_UNCORRECTED_RMS = 0.10
#: What N4 may take of the anatomy into the field on an unbiased brain (two_pass: 2.5 % measured).
MAX_ANATOMY_ABSORBED_RMS = 0.04
#: A section's tissue median after per_section, relative to before: kept exactly on the reduced
#: bins, it moves by up to 1.4 % on the voxels (interpolation, median of bins vs of voxels).
SECTION_MEDIAN_TOLERANCE = 0.02
#: Intensity steps between the six sections, which per_section keeps (normalisation's business).
SECTION_STEPS = (1.0, 1.15, 0.9, 1.05, 0.85, 1.1)
#: ``small`` truth on its 25 µm grid: 8 planes per 200 µm cut; planes 16-63 are six whole sections.
VOXEL_UM = (25.0, 25.0, 25.0)
SECTION_PLANES = 8
PLANES = slice(16, 64)
#: Reduced-grid budget of the tests (24 x 19 x 16 bins here): N4 in about a second per pass.
MAX_VOXELS = 8192
#: Peak memory of apply_bias_field, in blocks of float32: the output block and a few planes.
MAX_BLOCKS_IN_MEMORY = 1.5


@dataclass(frozen=True)
class Brain:
    clean: np.ndarray  # (48, Y, X) float32, 0 outside the tissue (as after normalisation)
    tissue: np.ndarray  # (48, Y, X) bool
    with_agarose: np.ndarray  # the same with the agarose around it
    section_starts: tuple[int, ...]
    smooth: np.ndarray  # (48, Y, X) a smooth bias over the whole volume, 0.67 - 1.49
    section: np.ndarray  # (48, Y, X) the same depth decay and lateral saddle in every section
    steps: np.ndarray  # (48, 1, 1) SECTION_STEPS, plane by plane


@pytest.fixture(scope="module")
def brain() -> Brain:
    """``small`` (seed 0), six sections, cropped to the brain plus an 8-voxel margin of zeros; about 2 s."""
    plan = plan_acquisition(preset("small"), seed=0)
    chunks = list(iter_truth_volume(plan))
    refl = np.concatenate([c["reflectivity"] for _, c in chunks])[PLANES].astype(np.float32)
    tissue = np.concatenate([c["labels"] for _, c in chunks])[PLANES] >= 2
    rows, cols = np.flatnonzero(tissue.any(axis=(0, 2))), np.flatnonzero(tissue.any(axis=(0, 1)))
    crop = (slice(None), slice(rows[0] - 8, rows[-1] + 9), slice(cols[0] - 8, cols[-1] + 9))
    refl, tissue = refl[crop], tissue[crop]
    uz, uy, ux = np.meshgrid(*(np.linspace(-1, 1, n) for n in refl.shape), indexing="ij")
    smooth = np.exp(0.4 * (0.45 * uz + 0.35 * uy + 0.2 * ux * uy))
    depth = (np.arange(refl.shape[0]) % SECTION_PLANES + 0.5) / SECTION_PLANES
    section = np.exp(-0.36 * (depth - 0.5))[:, None, None] * (1 + 0.15 * uy * ux)
    starts = uniform_section_starts(refl.shape[0], SECTION_PLANES)
    steps = np.repeat(SECTION_STEPS, SECTION_PLANES)[:, None, None].astype(np.float32)
    return Brain(refl * tissue, tissue, refl, starts, smooth.astype(np.float32), section.astype(np.float32), steps)


def residual_rms(corrected: np.ndarray, clean: np.ndarray, tissue: np.ndarray) -> float:
    """RMS over the tissue of ``corrected / clean`` normalised by its mean, minus 1."""
    ratio = corrected[tissue] / clean[tissue]
    return float(np.sqrt(np.mean((ratio / ratio.mean() - 1.0) ** 2)))


def correct(brain: Brain, volume: np.ndarray, mode: str, **options):
    return correct_bias_field(volume, mode=mode, section_starts=brain.section_starts, voxel_um=VOXEL_UM, max_voxels=MAX_VOXELS, **options)


@pytest.fixture(scope="module")
def two_pass(brain):
    """The two-pass correction of the brain under the smooth and the per-section bias."""
    return correct(brain, brain.clean * brain.smooth * brain.section, "two_pass")


@pytest.fixture(scope="module")
def per_section(brain):
    """The per-section correction of the brain under the per-section bias and steps between sections."""
    return correct(brain, brain.clean * brain.section * brain.steps, "per_section")


def test_global_removes_a_smooth_bias_within_5pct_rms(brain):
    biased = brain.clean * brain.smooth
    out = correct(brain, biased, "global")
    assert residual_rms(biased, brain.clean, brain.tissue) >= MIN_UNCORRECTED_RMS
    assert residual_rms(out.volume, brain.clean, brain.tissue) <= RESIDUAL_RMS
    assert out.field.mask_method == "nonzero"  # background is already 0: every tissue voxel is fitted


def test_per_section_removes_each_sections_pattern_within_5pct_rms(brain, per_section):
    stepped = brain.clean * brain.steps  # what per_section must return: steps are kept
    assert residual_rms(stepped * brain.section, stepped, brain.tissue) >= MIN_UNCORRECTED_RMS
    assert residual_rms(per_section.volume, stepped, brain.tissue) <= RESIDUAL_RMS


def test_two_pass_removes_both_biases_within_5pct_rms(brain, two_pass):
    biased = brain.clean * brain.smooth * brain.section
    assert residual_rms(biased, brain.clean, brain.tissue) >= MIN_UNCORRECTED_RMS
    assert residual_rms(two_pass.volume, brain.clean, brain.tissue) <= RESIDUAL_RMS


def test_global_with_agarose_fits_the_otsu_tissue_and_removes_bias(brain):
    biased = brain.with_agarose * brain.smooth
    out = correct(brain, biased, "global")
    assert out.field.mask_method == "otsu"
    assert residual_rms(out.volume, brain.with_agarose, brain.tissue) <= RESIDUAL_RMS


def test_unbiased_brain_changes_by_under_4pct_rms(brain):
    out = correct(brain, brain.clean, "two_pass")
    assert residual_rms(out.volume, brain.clean, brain.tissue) <= MAX_ANATOMY_ABSORBED_RMS


def test_per_section_keeps_each_section_median(brain, per_section):
    biased = brain.clean * brain.section * brain.steps
    for z0 in brain.section_starts:
        planes, tissue = slice(z0, z0 + SECTION_PLANES), brain.tissue[z0 : z0 + SECTION_PLANES]
        kept = np.median(per_section.volume[planes][tissue]) / np.median(biased[planes][tissue])
        assert abs(kept - 1.0) <= SECTION_MEDIAN_TOLERANCE, z0


def test_strength_zero_returns_the_input_exactly(brain, two_pass):
    biased = (brain.clean * brain.smooth * brain.section).astype(np.float32)
    np.testing.assert_array_equal(apply_bias_field(biased, two_pass.field, 0, strength=0.0), biased)


def test_strength_blends_input_and_corrected_linearly(brain, two_pass):
    biased = (brain.clean * brain.smooth * brain.section).astype(np.float32)
    half = apply_bias_field(biased, two_pass.field, 0, strength=0.5)
    np.testing.assert_allclose(half, 0.5 * biased + 0.5 * two_pass.volume, rtol=1e-5, atol=1e-7)


def test_zeros_stay_zero(brain, two_pass):
    assert (two_pass.volume[brain.clean == 0] == 0).all()
    assert (two_pass.volume[brain.tissue] > 0).all()


def test_blockwise_application_equals_whole_volume(brain, two_pass):
    biased = (brain.clean * brain.smooth * brain.section).astype(np.float32)
    n = biased.shape[0]
    whole = apply_bias_field(biased, two_pass.field, 0)
    blocks = np.concatenate([apply_bias_field(biased[z : z + 5], two_pass.field, z) for z in range(0, n, 5)])
    np.testing.assert_array_equal(blocks, whole)
    np.testing.assert_array_equal(whole, two_pass.volume)


def test_apply_holds_one_block_and_a_few_planes_in_memory(brain, two_pass):
    block = (brain.clean * brain.smooth)[8:24].astype(np.float32)
    tracemalloc.start()
    try:
        apply_bias_field(block, two_pass.field, 8)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= MAX_BLOCKS_IN_MEMORY * block.nbytes


def test_reduced_bins_never_cross_a_section_and_average_positive_voxels():
    grid = BiasGrid((23, 10, 7), (3, 4, 4), (0, 7, 15, 22))
    edges = (*grid.section_starts, 23)
    for start, stop in grid.z_bins:
        k = np.searchsorted(edges, start, side="right") - 1
        assert edges[k] <= start < stop <= edges[k + 1]
    assert grid.reduced_section_starts == (0, 3, 6, 9) and grid.reduced_shape == (10, 3, 2)
    volume = np.zeros((23, 10, 7), np.float32)
    volume[:, :4, :4] = 2.0
    volume[:, 0, 0] = 0.0  # a hole: left out of its bin's mean
    volume[:, 4:, 4:] = np.arange(23, dtype=np.float32)[:, None, None] + 1
    blocks = list(grid.blocks(8))
    assert blocks[0][0] == 0 and blocks[-1][1] == 23 and all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
    reduced = np.concatenate([reduce_block(volume[a:b], grid, a) for a, b in blocks])
    assert (reduced[:, 0, 0] == 2.0).all() and (reduced[:, 0, 1] == 0.0).all()
    np.testing.assert_allclose(reduced[:3, 1, 1], [2.0, 5.0, 7.0])  # planes 0-2, 3-5, 6 (section 0 ends at 7)
    with pytest.raises(ValueError, match="whole bins"):
        reduce_block(volume[1:4], grid, 1)


def test_plan_keeps_four_planes_per_section_within_the_budget():
    grid = plan_bias_grid((400, 600, 500), section_starts=uniform_section_starts(400, 20), voxel_um=(10.0, 10.0, 10.0), max_voxels=2**16)
    assert grid.factors[0] == 5  # 20-plane sections keep 4 reduced planes
    assert np.prod(grid.reduced_shape) <= 2**16


def test_a_one_plane_section_is_corrected_as_an_image():
    z, y, x = np.meshgrid(np.arange(9), *(np.linspace(-1, 1, 32),) * 2, indexing="ij")
    clean = np.where(x**2 + y**2 < 0.8, 1.0 + 0.5 * (np.sin(7 * y) * np.cos(5 * x) > 0), 0.0).astype(np.float32)
    biased = clean * np.exp(0.3 * x)
    out = correct_bias_field(biased, mode="per_section", section_starts=(0, 8), max_voxels=4096)
    assert out.field.grid.reduced_section_starts[1] == out.field.grid.reduced_shape[0] - 1  # one reduced plane
    assert out.field.sections_skipped == ()
    last = slice(8, 9)
    assert residual_rms(biased[last], clean[last], clean[last] > 0) >= MIN_UNCORRECTED_RMS
    assert residual_rms(out.volume[last], clean[last], clean[last] > 0) <= RESIDUAL_RMS


def test_unknown_mode_raises_listing_the_allowed_ones(brain):
    grid = BiasGrid((4, 4, 4), (1, 1, 1))
    with pytest.raises(ValueError, match="bias_mode = 'local'; choose one of per_section, global, two_pass"):
        estimate_bias_field(np.ones((4, 4, 4), np.float32), grid, mode="local")


@pytest.mark.parametrize("strength", [-0.1, 1.5])
def test_strength_outside_0_1_raises(two_pass, strength):
    with pytest.raises(ValueError, match=r"bias_strength = .*expected a value in \[0, 1\]"):
        apply_bias_field(np.ones((1, *two_pass.volume.shape[1:]), np.float32), two_pass.field, 0, strength=strength)
