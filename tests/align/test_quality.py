"""assess_slice_quality ranks the synthetic degraded slice well below the normal ones; assess_quality stamps it."""

from __future__ import annotations

import numpy as np
import pytest

from serialoct.align.quality import QualityScore, assess_quality, assess_slice_quality, centre_roi
from serialoct.correct.normalize import normalize
from serialoct.io.tables import SliceConfigRow
from serialoct.synth import render_tile, slice_texture

MIN_QUALITY = 0.3  # auto_assess_min_quality default
#: On raw rendered tiles (no attenuation compensation) normal slices score 0.58-0.72 and the degraded one 0.29;
#: after the whole per-slice pipeline the degraded slice scores 0.09 against 0.79-1.0
#: (tests/workflows/test_reconstruct.py checks that it is excluded there).
NORMAL_FLOOR = 0.45
DEGRADED_RATIO = 0.6  # the degraded slice scores at most this fraction of the worst normal one


@pytest.fixture(scope="module")
def normalised_slices(small_plan) -> dict[str, np.ndarray]:
    """Central 2x2 tiles of slices 03, 05 (normal) and 06 (degraded), pasted and normalised."""
    out = {}
    for sid in ("03", "05", "06"):
        texture = slice_texture(small_plan, sid)
        block = np.concatenate(
            [np.concatenate([render_tile(small_plan, sid, ix, iy, texture=texture) for iy in (1, 2)], axis=2) for ix in (1, 2)],
            axis=1,
        )
        out[sid] = normalize(block).volume
    return out


def test_degraded_slice_scores_well_below_the_normal_ones(normalised_slices, small_plan):
    assert small_plan.slice("06").degraded
    scores = {sid: assess_slice_quality(v, roi_size=1024) for sid, v in normalised_slices.items()}
    worst_normal = min(scores["03"].score, scores["05"].score)
    assert scores["06"].score < DEGRADED_RATIO * worst_normal and scores["06"].score < MIN_QUALITY
    assert worst_normal > NORMAL_FLOOR > MIN_QUALITY
    assert scores["06"].depth_coherence < min(scores["03"].depth_coherence, scores["05"].depth_coherence)
    assert all(0 <= q.score <= 1 and q.tissue_fraction > 0.9 for q in scores.values())


def test_roi_crops_the_centre():
    assert centre_roi((100, 60), 40) == (slice(30, 70), slice(10, 50))
    assert centre_roi((100, 60), 0) == (slice(0, 100), slice(0, 60))
    volume = np.zeros((3, 100, 60))
    volume[:, 30:70, 10:50] = np.random.default_rng(0).random((3, 40, 40)) + 0.1
    q = assess_slice_quality(volume, roi_size=40)
    assert q.roi_shape == (40, 40) and q.tissue_fraction == 1.0


def test_empty_slice_scores_zero():
    q = assess_slice_quality(np.zeros((4, 32, 32)))
    assert q.score == 0.0 and q.tissue_fraction == 0.0


def _score(value: float) -> QualityScore:
    return QualityScore(value, 0.01, 0.5, 0.2, 1.0, (32, 32), 4)


def test_assess_quality_excludes_low_scores_and_the_first_slices():
    rows = [SliceConfigRow(f"{k:02d}") for k in range(5)]
    scores = {"00": _score(0.9), "01": _score(0.8), "02": _score(0.1), "03": _score(0.3)}
    out = {r.slice_id: r for r in assess_quality(scores, rows, min_quality=MIN_QUALITY, exclude_first=1)}
    assert out["00"].exclude_reason == "first_slice_excluded" and not out["00"].use and out["00"].auto_excluded
    assert out["02"].exclude_reason == "low_quality" and out["02"].auto_exclude_reason == "quality 0.100 < 0.3"
    assert out["01"].use and not out["01"].auto_excluded and out["01"].quality_score == 0.8
    assert out["03"].use  # at the threshold is kept: "below" excludes
    assert out["04"].quality_score is None and out["04"].use  # no score (a failed slice): untouched
    assert all(r.motor_only for r in out.values() if not r.use)


def test_assess_quality_keeps_an_earlier_exclusion_reason():
    rows = [SliceConfigRow("00"), SliceConfigRow("01", use=False, exclude_reason="manual: torn")]
    out = assess_quality({"01": _score(0.05)}, rows, exclude_first=0)
    assert out[1].exclude_reason == "manual: torn" and out[1].auto_excluded


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="not in the slice config"):
        assess_quality({"09": _score(0.5)}, [SliceConfigRow("00")])
    with pytest.raises(ValueError, match="min_quality = 2"):
        assess_quality({}, [], min_quality=2)
    with pytest.raises(ValueError, match="expected a \\(Z, rows, cols\\) volume"):
        assess_slice_quality(np.zeros((8, 8)))
