"""The whole reconstruction, raw tiles to stacked volume, against the synthetic acquisition's truth.

One ``small`` acquisition (glitch 02, missing 04, re-homing 05, degraded 06)
is preprocessed and reconstructed once through ``serialoct reconstruct``
with full pairwise transforms and no smoothing (``--profile aggressive``
with ``stack_smooth_window 0`` and ``stack_translation_smooth_sigma 0``: the
synthetic tissue drifts and turns at random from slice to slice, which the
smoothing meant for real registration noise would blur away). Variants
(presets, the quality assessment) rerun only the series steps on a copy.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from serialoct.cli import main
from serialoct.io.omezarr import open_ome_zarr
from serialoct.io.tables import read_slice_config
from serialoct.synth import load_truth, preset, write_acquisition

from .volume_truth import brain_points, placement_errors, sample_volume, stacked_placements, volume_ncc, zone_brightness

PLACEMENT_PX = 1.0  # per slice, at the working resolution
ROTATION_DEG = 0.3
#: Measured NCC with the phantom at 25 µm is 0.859 (BENCHMARKS.md: 0.952 with ideal intensities). On seven slices the
#: slices without a next one weigh a third of the volume; the issue's 0.90 is checked at scale in test_reconstruct_medium.py.
MIN_NCC = 0.84
#: Every slice's zone of the volume within this fraction of the series' median brightness relative to the phantom (no banding).
#: Measured 0.96-1.08 (seed 0; seed 1: 0.96-1.06).
BRIGHTNESS_TOLERANCE = 0.10
#: The presets keep the guide's smoothing or the motors' XY, which the synthetic random motion does not suit.
PRESET_NCC_MARGIN = 0.20  # minimal (motor placement only): 0.649
BRAIN_RADIUS_MM = 0.9  # placement is checked over sample points this close to the brain centre
SUBJECT = "brain"
ACCURATE = ("--profile", "aggressive", "--stack_smooth_window", "0", "--stack_translation_smooth_sigma", "0")


def reconstruct(pp, out, *extra, resolution_um=12.0):
    assert main(["reconstruct", "--input", str(pp), "--output", str(out), "--subject_name", SUBJECT, "--resolution", str(resolution_um),
                 "--processes", "2", "--cores", "2", *extra]) == 0


def acquire_and_preprocess(root, name, seed=0):
    """A synthetic acquisition of preset ``name`` in ``root/raw``, preprocessed into ``root/pp``; returns its config."""
    config = preset(name)
    write_acquisition(root / "raw", config, seed=seed)
    assert main(["preproc", "--input", str(root / "raw"), "--output", str(root / "pp"),
                 "--axial_resolution", str(config.axial_resolution_um), "--processes", "2"]) == 0
    return config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("reconstruct")
    acquire_and_preprocess(root, "small")
    reconstruct(root / "pp", root / "out", *ACCURATE)
    truth = load_truth(root / "raw")
    return truth, truth.plan(), root


def test_every_slice_lands_within_one_voxel_and_0p3_degrees_of_its_true_place(run):
    _, plan, root = run
    found, _, _ = stacked_placements(plan, root / "out", SUBJECT)
    assert sorted(found) == ["01", "02", "03", "05", "06", "07"]  # 04 is missing (interpolated)
    for sid, (error, turn) in placement_errors(plan, found, brain_points(plan, BRAIN_RADIUS_MM)).items():
        assert error < PLACEMENT_PX, f"slice {sid}: {error:.2f} px from its true place"
        assert abs(turn) < ROTATION_DEG, f"slice {sid}: rotation off by {turn:.3f} deg"


def test_the_glitch_is_removed_and_the_rehoming_kept(run):
    _, _, root = run
    info = json.loads((root / "out" / "detect_rehoming_events" / "metrics.json").read_text())["info"]
    assert info["glitch_slices"] == ["02"] and info["rehomed_slices"] == ["05"]


def test_the_missing_slice_is_interpolated_and_stacked(run):
    _, _, root = run
    rows = {r.slice_id: r for r in read_slice_config(root / "out" / "finalise_interpolation" / "slice_config_final.csv")}
    assert rows["04"].interpolated and rows["04"].interpolation_method_used == "zmorph"
    stacked = {p["slice_id"]: p["source"] for p in open_ome_zarr(root / "out" / "stack" / f"{SUBJECT}.ome.zarr").extra_attrs["stacked_slices"]}
    assert stacked["04"] == "interpolated" and "00" not in stacked  # the calibration slice stays out


def _variant(root, tmp_path, *extra):
    """The run again on a copy of its output with other parameters: only the steps they change are redone."""
    out = tmp_path / "out"
    shutil.copytree(root / "out", out, symlinks=True)
    reconstruct(root / "pp", out, *extra)
    return out


def test_the_degraded_slice_is_excluded_by_its_quality_and_the_reason_recorded(run, tmp_path):
    _, _, root = run
    out = _variant(root, tmp_path, *ACCURATE, "--auto_assess_quality", "true", "--common_space_excluded_slice_mode", "keep")
    rows = {r.slice_id: r for r in read_slice_config(out / "finalise_interpolation" / "slice_config_final.csv")}
    assert not rows["06"].use and rows["06"].exclude_reason == "low_quality" and rows["06"].auto_excluded
    assert rows["06"].interpolated or rows["06"].interpolation_failed  # filled, or the gap recorded with why
    assert all(rows[s].use and not rows[s].auto_excluded for s in ("01", "02", "03", "05", "07"))
    stacked = {p["slice_id"]: p["source"] for p in open_ome_zarr(out / "stack" / f"{SUBJECT}.ome.zarr").extra_attrs["stacked_slices"]}
    assert stacked.get("06") != "normalized"


MANUAL_ERROR_PX = (2.0, -1.5)  # added to slice 03's exported transform, at the export level (1: 2x)
MANUAL_ERROR_DEG = 1.0


def test_a_hand_corrected_transform_is_used_and_polished_by_refinement_or_by_the_blend_refinement(run, tmp_path):
    _, plan, root = run
    out = _variant(root, tmp_path, *ACCURATE, "--export_manual_align", "true")
    index = json.loads((out / "export_manual_align" / "index.json").read_text())
    assert index["level"] == 1 and (out / "export_manual_align" / "aips" / "slice_z03.png").is_file()
    record = json.loads((out / "export_manual_align" / "transforms" / "slice_z03.json").read_text())
    record["translation_px"] = [v + d for v, d in zip(record["translation_px"], MANUAL_ERROR_PX)]
    record["rotation_deg"] += MANUAL_ERROR_DEG
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "slice_z03.json").write_text(json.dumps(record))
    points = brain_points(plan, BRAIN_RADIUS_MM)

    def error_of_03(*extra):
        reconstruct(root / "pp", out, *ACCURATE, "--manual_transforms_dir", str(manual), *extra)
        found, _, _ = stacked_placements(plan, out, SUBJECT)
        return np.hypot(*(found["03"][0](points) - found["01"][0](points)).T).max()

    taken = error_of_03()
    assert taken > 2 * np.hypot(*MANUAL_ERROR_PX)  # the hand's transform is used as given (error x2 at full resolution, + turn)
    assert error_of_03("--refine_manual_transforms", "true") < PLACEMENT_PX
    # A shift alone is what the blend refinement measures in the depth overlap, and corrects for the slices below too.
    record["rotation_deg"] -= MANUAL_ERROR_DEG
    (manual / "slice_z03.json").write_text(json.dumps(record))
    assert error_of_03("--blend_refinement_px", "6") < PLACEMENT_PX


def test_diagnostic_mode_writes_every_analysis_and_motor_only_stitching_has_the_larger_seams(run, tmp_path):
    _, _, root = run
    out = _variant(root, tmp_path, *ACCURATE, "--diagnostic_mode", "true", "--save_refinement_data", "true")
    diagnostics = out / "diagnostics"
    for name in ("rotation_analysis/rotation_drift.json", "rotation_analysis/rotation_drift.png",
                 "acquisition_rotation/acquisition_rotation.json", f"motor_only_stack/{SUBJECT}_motor_only.ome.zarr",
                 "refined_stitch/slice_z03_refinement.json", "stitch_comparison/slice_z03_comparison.png"):
        assert (diagnostics / name).exists(), name
    drift = json.loads((diagnostics / "rotation_analysis" / "rotation_drift.json").read_text())
    assert drift and json.loads((diagnostics / "stitch_comparison" / "slice_z03_seams.json").read_text())
    seams = [(json.loads((diagnostics / "motor_only_stitch" / f"slice_z{s}_metrics.json").read_text())["metrics"]["seam_step_max"]["value"],
              json.loads((out / "stitch_3d_with_refinement" / f"slice_z{s}_metrics.json").read_text())["metrics"]["seam_step_max"]["value"])
             for s in ("01", "02", "03", "05", "06", "07")]
    assert sum(motor for motor, _ in seams) > sum(refined for _, refined in seams)


def test_the_volume_correlates_with_the_phantom_at_25um(run):
    truth, plan, root = run
    found, volume, space = stacked_placements(plan, root / "out", SUBJECT)
    score, _ = volume_ncc(volume.read(0), space["voxel_um"], truth, plan, found["01"][0], plan.slice("01").cut_depth_mm)
    assert score >= MIN_NCC


def test_every_slice_is_as_bright_as_the_series_relative_to_the_phantom_the_degraded_one_included(run):
    truth, plan, root = run
    found, volume, space = stacked_placements(plan, root / "out", SUBJECT)
    _, shift = volume_ncc(volume.read(0), space["voxel_um"], truth, plan, found["01"][0], plan.slice("01").cut_depth_mm)
    placed = volume.extra_attrs["stacked_slices"]
    zones = {a["slice_id"]: (a["z_start"], b["z_start"]) for a, b in zip(placed[:-1], placed[1:])}
    sampled = sample_volume(volume.read(0), space["voxel_um"], truth, plan, found["01"][0], plan.slice("01").cut_depth_mm, shift)
    brightness = zone_brightness(*sampled, zones)
    median = np.median(list(brightness.values()))
    assert {sid: round(b / median, 3) for sid, b in brightness.items()} == pytest.approx(
        {sid: 1.0 for sid in brightness}, abs=BRIGHTNESS_TOLERANCE)
    gains = {p["slice_id"]: p["intensity_gain"] for p in placed}
    # The degraded slice (less signal, more noise, blurred) needs the largest correction: its own normalisation
    # (a high percentile of its blurred tissue) leaves it off its neighbours, which the matching removes.
    correction = {sid: abs(np.log(g)) for sid, g in gains.items()}
    assert correction["06"] == max(correction.values()) > np.log(1.0 + BRIGHTNESS_TOLERANCE)


def test_the_volume_has_its_analysis_pyramid_zip_and_pictures_of_what_was_written(run):
    from serialoct.io.images import read_png
    from serialoct.report.previews import orthogonal_views

    _, _, root = run
    stack = root / "out" / "stack"
    volume = open_ome_zarr(stack / f"{SUBJECT}.ome.zarr")
    sizes = [round(volume.voxel_size_mm(level)[0] * 1000.0, 3) for level in range(volume.n_levels)]
    assert sizes == [12.0, 25.0, 50.0, 100.0]
    assert (stack / f"{SUBJECT}.ome.zarr.zip").stat().st_size > 0
    # The pictures come from the blocks as they were rendered: the same as the sections read back.
    np.testing.assert_array_equal(read_png(stack / f"{SUBJECT}.png"), orthogonal_views(volume.level(0)))
    annotated = read_png(stack / f"{SUBJECT}_annotated.png")
    assert annotated.shape[0] == volume.level(0).shape[0] and annotated.ndim == 3  # one row per plane, labels beside


@pytest.mark.parametrize("profile", ["conservative", "aggressive", "minimal"])
def test_every_preset_runs_to_the_end(run, tmp_path, profile):
    truth, plan, root = run
    out = _variant(root, tmp_path, "--profile", profile)
    found, volume, space = stacked_placements(plan, out, SUBJECT)
    score, _ = volume_ncc(volume.read(0), space["voxel_um"], truth, plan, found["01"][0], plan.slice("01").cut_depth_mm)
    assert score >= MIN_NCC - PRESET_NCC_MARGIN
    metrics = json.loads((out / "stack" / "metrics.json").read_text())["metrics"]
    if profile == "minimal":
        assert metrics["transforms_skipped"]["value"] == metrics["n_slices"]["value"] - 1
