"""The per-slice part of the reconstruction workflow, run through Snakemake on a synthetic acquisition."""

from __future__ import annotations

import json

import numpy as np
import pytest

from serialoct.cli import main
from serialoct.commands.reconstruct import resolve_paths
from serialoct.io.slices import read_slice
from serialoct.params import resolve
from serialoct.synth import load_truth, preset, write_acquisition
from serialoct.synth.config import with_overrides
from serialoct.workflows.runner import run_workflow
from serialoct.workflows.targets import reconst_slices

POSITION_RMS_PX = 0.5  # every tile, after removing the slice's overall translation
PAIR_ERROR_PX = 1.5
SEAM_STEP = 0.02  # of the tissue mean


@pytest.fixture(scope="module")
def reconstructed(tmp_path_factory):
    root = tmp_path_factory.mktemp("reconst")
    config = with_overrides(preset("small"), n_slices=3, glitch_slice=None, rehoming_slice=None, missing_slice=None, degraded_slice=None)
    write_acquisition(root / "raw", config, seed=1)
    assert main(["preproc", "--input", str(root / "raw"), "--output", str(root / "pp"),
                 "--axial_resolution", str(config.axial_resolution_um), "--processes", "2"]) == 0
    params = resolve_paths(resolve("reconst_3d", {"input": str(root / "pp"), "output": str(root / "out"),
                                                  "resolution": config.pixel_size_um, "fix_curvature_enabled": True}))
    result = run_workflow("reconst_3d", params, root / "out", cores=2)
    assert result.ok and not result.failed
    return load_truth(root / "raw"), root / "out", params


def _metrics(out, step, slice_id):
    return json.loads((out / step / f"slice_z{slice_id}_metrics.json").read_text())


def test_stitched_tile_positions_match_the_true_stage_jitter(reconstructed):
    truth, out, _ = reconstructed
    plan = truth.plan()
    for slice_id in ("01", "02"):
        attrs = read_slice(out / "stitch_3d_with_refinement" / f"slice_z{slice_id}.ome.zarr").extra
        found = {tuple(map(int, k.split(","))): np.array(v) for k, v in attrs["stitch_positions_px"].items()}
        tiles = sorted(found)  # every tile, agarose alone included: the speckle is shared by overlapping tiles
        assert len(tiles) == plan.config.grid_shape[0] * plan.config.grid_shape[1]
        got = np.array([found[t] for t in tiles])
        want = np.array([plan.stitched_px[int(slice_id)][t] for t in tiles])
        error = (got - got.mean(axis=0)) - (want - want.mean(axis=0))  # the slice's translation is arbitrary
        assert np.sqrt((error**2).sum(axis=1).mean()) < POSITION_RMS_PX
        index = {t: i for i, t in enumerate(tiles)}
        for (ix, iy), i in index.items():
            for neighbour in ((ix + 1, iy), (ix, iy + 1)):
                if neighbour in index:
                    assert np.linalg.norm(error[index[neighbour]] - error[i]) < PAIR_ERROR_PX


def test_diffusion_blending_leaves_no_seam(reconstructed):
    _, out, _ = reconstructed
    for slice_id in ("01", "02"):
        assert _metrics(out, "stitch_3d_with_refinement", slice_id)["metrics"]["seam_step_max"]["value"] < SEAM_STEP


def test_every_slice_ends_normalised_with_its_surface_at_the_top(reconstructed):
    _, out, params = reconstructed
    assert reconst_slices(params) == ["01", "02"]  # slice 00 is the calibration slice of slice_config.csv
    for slice_id in reconst_slices(params):
        normalized = read_slice(out / "normalize" / f"slice_z{slice_id}.ome.zarr")
        volume = normalized.volume
        assert volume.min() == 0.0 and volume.max() == pytest.approx(1.0)
        assert normalized.voxel_size_um == pytest.approx((params["resolution"],) * 3)
        depth = volume.shape[0] * params["resolution"]
        assert depth <= params["crop_interface_out_depth"] + params["resolution"]
        assert (out / "previews" / "stitched_slices" / f"slice_z{slice_id}.png").is_file()


def test_the_focal_curvature_and_flat_field_steps_ran_and_report_success(reconstructed):
    _, out, _ = reconstructed
    assert _metrics(out, "fix_focal_curvature", "02")["metrics"]["applied"]["value"] is True
    assert _metrics(out, "fix_illumination", "02")["metrics"]["fitted"]["value"] is True


def test_a_second_run_does_nothing(reconstructed, capfd):
    _, out, params = reconstructed
    before = (out / "normalize" / "slice_z02.ome.zarr" / "zarr.json").stat().st_mtime_ns
    capfd.readouterr()
    assert run_workflow("reconst_3d", params, out, cores=2).ok
    assert "Nothing to be done" in capfd.readouterr().err
    assert (out / "normalize" / "slice_z02.ome.zarr" / "zarr.json").stat().st_mtime_ns == before


GLOBAL_AFFINE_TOLERANCE = 0.01  # the synthetic stage has no scale or rotation error: the matrix is the identity


def test_the_pooled_layout_matrix_is_the_identity_of_a_true_stage(reconstructed, tmp_path):
    _, out, _ = reconstructed
    inputs = sorted(str(p) for p in (out / "fix_illumination").glob("slice_z0[12].ome.zarr"))
    assert main(["step", "estimate_global_transform", "--inputs", *inputs, "--output", str(tmp_path / "g.json"),
                 "--no-use_gpu", "--stitch_global_transform_slices", "1,2"]) == 0
    fit = json.loads((tmp_path / "g.json").read_text())
    assert fit["slices"] == ["01", "02"] and fit["n_used"] > 10
    np.testing.assert_allclose(fit["affine"], np.eye(2), atol=GLOBAL_AFFINE_TOLERANCE)


def test_an_unknown_pool_slice_is_refused(reconstructed, tmp_path, capsys):
    _, out, _ = reconstructed
    inputs = [str(p) for p in (out / "fix_illumination").glob("slice_z0[12].ome.zarr")]
    assert main(["step", "estimate_global_transform", "--inputs", *inputs, "--output", str(tmp_path / "g.json"),
                 "--no-use_gpu", "--stitch_global_transform_slices", "9"]) == 2
    assert "stitch_global_transform_slices" in capsys.readouterr().err
