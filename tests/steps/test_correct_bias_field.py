"""Step ``correct_bias_field`` on a stacked synthetic brain under a known smooth bias: removed block by block, pyramid kept."""

from __future__ import annotations

import json

import numpy as np

from serialoct.cli import main
from serialoct.io.omezarr import open_ome_zarr, write_ome_zarr
from tests.correct.test_bias import MAX_VOXELS, RESIDUAL_RMS, VOXEL_UM, brain, residual_rms  # noqa: F401 - brain is a fixture

MIN_UNCORRECTED_RMS = 0.10


def test_the_step_removes_a_smooth_bias_and_keeps_the_pyramid(brain, tmp_path):  # noqa: F811 - the fixture
    biased = (brain.clean * brain.smooth).astype(np.float32)
    assert residual_rms(biased, brain.clean, brain.tissue) > MIN_UNCORRECTED_RMS
    stack = tmp_path / "stack" / "brain.ome.zarr"
    write_ome_zarr(stack, biased, voxel_size_mm=tuple(v / 1000.0 for v in VOXEL_UM), chunks=(16, 64, 64), pyramid_resolutions_um=(50.0,),
                   extra_attrs={"stacked_slices": [{"slice_id": f"{k + 1:02d}", "z_start": s} for k, s in enumerate(brain.section_starts)]})
    out = tmp_path / "correct_bias_field" / "brain_corrected.ome.zarr"
    assert main(["step", "correct_bias_field", "--input", str(stack), "--output", str(out), "--metrics", str(tmp_path / "m.json"),
                 "--bias_mode", "global", "--pyramid_resolutions", "50", "--max_reduced_voxels", str(MAX_VOXELS)]) == 0
    corrected = open_ome_zarr(out)
    assert corrected.n_levels == open_ome_zarr(stack).n_levels == 2
    assert residual_rms(corrected.read(0), brain.clean, brain.tissue) < RESIDUAL_RMS
    info = json.loads((tmp_path / "m.json").read_text())["info"]
    assert info["section_starts"] == list(brain.section_starts)
