"""Galvo detection on synthetic slices: the true band start, and no false fix."""

from __future__ import annotations

from dataclasses import replace

import pytest

from serialoct.preproc.galvo import detect_galvo_band
from serialoct.synth import plan_acquisition, preset, record_frames, render_tile

THRESHOLD = 0.6  # galvo_confidence_threshold default
N_SEEDS = 20
SAMPLE = ((0, 0), (0, 1), (1, 0), (1, 1))  # tiny's whole 2x2 grid, as the step's central sample


def _slice_frames(plan, slice_id):
    return [record_frames(plan, slice_id, ix, iy, render_tile(plan, slice_id, ix, iy)) for ix, iy in SAMPLE]


@pytest.fixture(scope="module")
def banded_and_faint():
    """20 seeded tiny slices with a visible band, and the same slices with a band too faint to see."""
    base = replace(preset("tiny"), n_slices=2, glitch_slice=None, rehoming_slice=None)
    cases = []
    for seed in range(N_SEEDS):
        plan = plan_acquisition(base, seed=seed)
        faint = plan_acquisition(replace(base, galvo_faint_slices=(1,)), seed=seed)
        cases.append((plan, faint))
    return cases


def test_detected_band_start_equals_the_truth_on_every_seeded_slice(banded_and_faint):
    for plan, _ in banded_and_faint:
        detection = detect_galvo_band(_slice_frames(plan, "01"), plan.config.n_extra)
        assert detection.band_start == plan.slice(1).galvo_band_start
        assert detection.should_fix(THRESHOLD)


def test_no_false_fix_on_slices_whose_band_is_too_faint(banded_and_faint):
    fixes = [detect_galvo_band(_slice_frames(faint, "01"), faint.config.n_extra).should_fix(THRESHOLD) for _, faint in banded_and_faint]
    assert sum(fixes) == 0


def test_no_fix_without_fly_back_alines():
    plan = plan_acquisition(replace(preset("tiny"), n_slices=2, glitch_slice=None, rehoming_slice=None, n_extra=0), seed=1)
    assert not detect_galvo_band(_slice_frames(plan, "01"), 0).should_fix(THRESHOLD)
