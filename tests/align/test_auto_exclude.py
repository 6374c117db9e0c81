"""find_low_quality_clusters marks the slices inside runs of poor pairs, and only those."""

from __future__ import annotations

import numpy as np
import pytest

from serialoct.align.auto_exclude import find_low_quality_clusters, slice_config_updates
from serialoct.align.pairwise import register_pairwise
from serialoct.io.tables import SliceConfigRow, stamp_slice_config
from tests.align.conftest_pairwise import make_pair

GOOD, POOR = 0.9, 0.2


def _pairs(values: list[float], first: int = 0) -> dict[tuple[str, str], float]:
    return {(f"{first + i:02d}", f"{first + i + 1:02d}"): v for i, v in enumerate(values)}


def test_run_of_three_poor_pairs_excludes_the_two_slices_inside_it():
    result = find_low_quality_clusters(_pairs([GOOD, POOR, POOR, POOR, GOOD, GOOD]))
    assert list(result.excluded) == ["02", "03"]
    assert result.excluded["02"] == "in a run of 3 consecutive pairs with low z_correlation (01 to 04)"
    assert [run.pairs for run in result.runs] == [(("01", "02"), ("02", "03"), ("03", "04"))]


def test_single_bad_slice_is_not_a_cluster_at_the_default_run_length():
    values = [GOOD, POOR, POOR, GOOD]  # slice 02 spoils its two pairs
    assert find_low_quality_clusters(_pairs(values)).excluded == {}
    assert list(find_low_quality_clusters(_pairs(values), consecutive=2).excluded) == ["02"]
    assert len(find_low_quality_clusters(_pairs(values)).low_pairs) == 2


def test_threshold_is_strict_and_nan_counts_as_poor():
    assert find_low_quality_clusters(_pairs([GOOD, 0.6, 0.6, 0.6, GOOD]), z_corr_threshold=0.6).excluded == {}
    assert list(find_low_quality_clusters(_pairs([GOOD, float("nan"), 0.59, POOR, GOOD]), z_corr_threshold=0.6).excluded) == ["02", "03"]


def test_run_reaching_the_end_of_the_series_marks_the_end_slice():
    assert list(find_low_quality_clusters(_pairs([GOOD, GOOD, POOR, POOR, POOR])).excluded) == ["03", "04", "05"]
    assert list(find_low_quality_clusters(_pairs([POOR, POOR, POOR, GOOD])).excluded) == ["00", "01", "02"]


def test_pairs_across_a_missing_slice_chain_but_a_gap_between_pairs_breaks_the_run():
    across = {("01", "02"): POOR, ("02", "04"): POOR, ("04", "05"): POOR, ("05", "06"): GOOD, ("00", "01"): GOOD}
    assert list(find_low_quality_clusters(across).excluded) == ["02", "04"]
    broken = {("00", "01"): GOOD, ("01", "02"): POOR, ("02", "03"): POOR, ("04", "05"): POOR, ("05", "06"): GOOD}
    assert find_low_quality_clusters(broken).excluded == {}


def test_per_slice_values_mean_the_pair_with_the_previous_slice():
    per_slice = {"00": float("nan"), "01": GOOD, "02": POOR, "03": POOR, "04": POOR, "05": GOOD}
    assert find_low_quality_clusters(per_slice).excluded == find_low_quality_clusters(_pairs([GOOD, POOR, POOR, POOR, GOOD])).excluded


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="consecutive = 0"):
        find_low_quality_clusters(_pairs([GOOD]), consecutive=0)
    with pytest.raises(ValueError, match="fixed slice id before the moving one"):
        find_low_quality_clusters({("03", "02"): GOOD})
    with pytest.raises(ValueError, match="must be a mapping"):
        find_low_quality_clusters([GOOD, POOR])


def test_updates_stamp_the_slice_config_columns():
    result = find_low_quality_clusters(_pairs([GOOD, POOR, POOR, POOR, GOOD]))
    rows = [SliceConfigRow(slice_id=f"{i:02d}") for i in range(6)]
    stamped = {r.slice_id: r for r in stamp_slice_config(rows, slice_config_updates(result))}
    assert stamped["02"].auto_excluded and stamped["03"].auto_excluded
    assert not stamped["01"].auto_excluded and not stamped["04"].auto_excluded
    assert "low z_correlation" in stamped["03"].auto_exclude_reason


def test_registered_series_with_two_noise_slices_excludes_exactly_them():
    """Slices 03 and 04 replaced by noise: pairs 02-03, 03-04, 04-05 match poorly, the others well."""
    import SimpleITK as sitk

    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(2)
    try:
        rng = np.random.default_rng(7)
        stacks = {}
        for k in range(1, 6):  # slices 01..06, each consecutive pair sharing its slice
            pair = make_pair(k, seed=50 + k)
            stacks.setdefault(k, pair.fixed)
            stacks[k + 1] = pair.moving
        for k in (3, 4):
            stacks[k] = rng.gamma(12.0, 0.3 / 12.0, stacks[k].shape).astype(np.float32)
        z = {(f"{k:02d}", f"{k + 1:02d}"): register_pairwise(stacks[k], stacks[k + 1], voxel_size_mm=0.025).z_correlation
             for k in range(1, 6)}
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    assert list(find_low_quality_clusters(z).excluded) == ["03", "04"]
