"""Motor-only stacking: each blending mode does what it says on two overlapping slabs."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from serialoct.diagnostics import plan_motor_stack, render_motor_block
from serialoct.stack.plan import StackSlice

# Two slabs of 6 planes, 4 planes apart: planes 4 and 5 hold both.
UPPER, LOWER = np.ones((6, 5, 5), np.float32), np.full((6, 5, 5), 3.0, np.float32)


def _column(blending, offset=(0, 0)):
    slabs = (UPPER, LOWER)
    slices = [StackSlice(0, UPPER.shape), StackSlice(1, LOWER.shape, offset)]
    plan = plan_motor_stack(slices, slice_thickness_um=4.0, voxel_um=1.0, blending=blending)
    volume = render_motor_block(plan, lambda k, a, b: slabs[k][a:b], 0, plan.shape[0], blending=blending)
    return volume


@pytest.mark.parametrize(("blending", "overlap"), [("none", [3.0, 3.0]), ("average", [2.0, 2.0]), ("max", [3.0, 3.0])])
def test_each_mode_fills_the_overlap_as_documented(blending, overlap):
    column = _column(blending)[:, 2, 2]
    assert column[:4].tolist() == [1.0] * 4 and column[6:].tolist() == [3.0] * 4
    assert column[4:6].tolist() == overlap


def test_feather_crosses_over_smoothly_between_the_two_slabs():
    column = _column("feather")[:, 2, 2]
    assert 1.0 < column[4] < column[5] < 3.0
    assert column[4] + column[5] == pytest.approx(4.0)  # Hann weights are symmetric


def test_average_and_max_only_count_slices_with_data():
    volume = _column("average", offset=(2, 0))  # the lower slab moved 2 rows down: its first rows are empty
    assert volume[4, 0, 0] == 1.0 and volume[4, 3, 0] == 2.0 and volume[8, 0, 0] == 0.0


def test_unknown_blending_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="none, average, max, feather"):
        plan_motor_stack([StackSlice(0, UPPER.shape)], slice_thickness_um=4.0, voxel_um=1.0, blending="median")


def test_the_step_stacks_normalised_slices_by_the_common_space_alone(tmp_path, monkeypatch):
    from serialoct.io.omezarr import open_ome_zarr
    from serialoct.io.slices import write_slice
    from serialoct.steps import stack_motor_only

    rng = np.random.default_rng(0)
    paths = []
    for sid in ("01", "02"):
        path = tmp_path / f"slice_z{sid}.ome.zarr"
        write_slice(path, rng.uniform(0.5, 1.0, (20, 16, 16)).astype(np.float32), (10.0, 10.0, 10.0))
        paths.append(str(path))
    (tmp_path / "cs.json").write_text(json.dumps({"voxel_um": 10.0, "canvas_shape": [20, 24], "positions_px": {"01": [0, 0], "02": [4, 8]},
                                                  "depths": {"01": 20, "02": 20}}))
    # The diagnostic parameters are not marked implemented in the registry yet: let a non-default blending through.
    monkeypatch.setattr("serialoct.params.validate", lambda workflow, changed: None)
    parser = argparse.ArgumentParser()
    stack_motor_only.add_arguments(parser)
    out = tmp_path / "motor_only_stack" / "s_motor_only.ome.zarr"
    args = parser.parse_args(["--inputs", *paths, "--common_space", str(tmp_path / "cs.json"), "--output", str(out),
                              "--metrics", str(tmp_path / "m.json"), "--motor_only_stack_blending", "max",
                              "--registration_slicing_interval_mm", "0.1"])
    assert stack_motor_only.run(args) == 0
    volume = open_ome_zarr(out).read(0)
    assert volume.shape == (30, 20, 24)  # second slice 10 planes down, 20 deep
    assert volume[5, 2, 2] > 0 and volume[5, 18, 22] == 0 and volume[25, 18, 22] > 0  # each slab at its motor placement
    assert out.with_name("s_motor_only.png").exists()
    assert json.loads((tmp_path / "m.json").read_text())["info"]["blending"] == "max"
