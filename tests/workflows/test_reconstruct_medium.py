"""The whole reconstruction at scale: the ``medium`` acquisition's volume against the phantom.

``medium`` is 19 slices of 6x6 tiles at 10 µm (glitch 05, missing 09,
re-homing 12, degraded 15), reconstructed as the ``small`` one of
test_reconstruct.py (``--profile aggressive``, no smoothing of the synthetic
random motion). On ``small``'s seven slices the slices without a next one
weigh a third of the volume: the last slice's planes below its cut thickness
and the gap, whose intensities no later slice can check, hold 0.12 of its
``1 - NCC²`` of 0.26 (NCC 0.859; BENCHMARKS.md, "Reconstruction accuracy").
Here they are a tenth of the volume, as in a real brain of some 60 sections.

The run takes about 5 minutes and 11 GB of disk at its peak (skipped, with
the reason, where less than ``NEEDED_GB`` is free); the raw tiles are removed
once preprocessed and everything once measured.
"""

from __future__ import annotations

import json
import shutil

import pytest

from serialoct.synth import load_truth

from .test_reconstruct import ACCURATE, PLACEMENT_PX, ROTATION_DEG, SUBJECT, acquire_and_preprocess, reconstruct
from .volume_truth import brain_points, placement_errors, stacked_placements, volume_ncc

#: The issue's target; measured 0.911 (seed 0; seeds 1 and 2: 0.913 and 0.920, BENCHMARKS.md).
MIN_NCC = 0.90
BRAIN_RADIUS_MM = 1.8  # placement is checked over sample points this close to the brain centre (semi-axes 2.3 x 2.6 mm)
#: Disk the run needs at its peak (mosaic grids and every step's slices), with a margin.
NEEDED_GB = 13.0


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """Placement and rotation errors, the volume NCC, the stacked sources and the rehoming record of one ``medium`` run."""
    root = tmp_path_factory.mktemp("reconstruct_medium")
    free_gb = shutil.disk_usage(root).free / 1e9
    if free_gb < NEEDED_GB:
        pytest.skip(f"the medium reconstruction needs about {NEEDED_GB:.0f} GB free in {root.parent}, which has {free_gb:.1f} GB (TMPDIR moves it)")
    config = acquire_and_preprocess(root, "medium")
    shutil.move(root / "raw" / "truth", root / "truth")
    shutil.rmtree(root / "raw")
    out = root / "out"
    reconstruct(root / "pp", out, *ACCURATE, resolution_um=config.pixel_size_um)
    truth = load_truth(root / "truth")
    plan = truth.plan()
    found, volume, space = stacked_placements(plan, out, SUBJECT)
    errors = placement_errors(plan, found, brain_points(plan, BRAIN_RADIUS_MM))
    first = next(iter(found))
    score, _ = volume_ncc(volume.read(0), space["voxel_um"], truth, plan, found[first][0], plan.slice(first).cut_depth_mm)
    sources = {p["slice_id"]: p["source"] for p in volume.extra_attrs["stacked_slices"]}
    rehoming = json.loads((out / "detect_rehoming_events" / "metrics.json").read_text())["info"]
    shutil.rmtree(root)
    return {"errors": errors, "ncc": score, "sources": sources, "rehoming": rehoming}


def test_every_medium_slice_is_stacked_the_glitch_removed_the_rehoming_kept_and_the_gap_filled(measured):
    expected = {f"{k:02d}": "normalized" for k in range(1, 20)} | {"09": "interpolated"}
    assert measured["sources"] == expected
    assert measured["rehoming"]["glitch_slices"] == ["05"] and measured["rehoming"]["rehomed_slices"] == ["12"]


def test_every_medium_slice_lands_within_one_voxel_and_0p3_degrees_of_its_true_place(measured):
    for sid, (error, turn) in measured["errors"].items():
        assert error < PLACEMENT_PX, f"slice {sid}: {error:.2f} px from its true place"
        assert abs(turn) < ROTATION_DEG, f"slice {sid}: rotation off by {turn:.3f} deg"


def test_the_medium_volume_correlates_with_the_phantom_at_0p90(measured):
    assert measured["ncc"] >= MIN_NCC, f"NCC {measured['ncc']:.3f}"
