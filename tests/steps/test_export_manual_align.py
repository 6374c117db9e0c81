"""Step ``export_manual_align`` on two synthetic normalised slices with a known transform between them.

Slice 03 is a slab of the ``small`` phantom's truth volume in the canvas
frame; slice 04 the same tissue seen turned and shifted (its pixel ``p``
shows canvas pixel ``R(theta)(p - c) + c + t`` of slice 03), cropped and
placed at a motor offset. The step is not registered in
``serialoct.steps.STEPS`` yet: the tests call its ``run`` with arguments
parsed by its own ``add_arguments``.
"""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from serialoct.align.pairwise import PairwiseTransform
from serialoct.align.planes import correlate_planes, warp_to_fixed
from serialoct.errors import InputError
from serialoct.io.images import read_png
from serialoct.io.jsonfile import read_json, write_json
from serialoct.io.slices import write_slice
from serialoct.report.previews import to_uint8
from serialoct.stack.manual import ManualTransform, canvas_aip, manual_link
from serialoct.steps import export_manual_align as step
from serialoct.steps.alignment import CommonSpace
from serialoct.synth import iter_truth_volume, plan_acquisition, preset
from tests.stack.conftest import observe

EXACT = 1e-9
VOXEL_UM = 25.0
TRUE_ROTATION_DEG = -1.3
TRUE_TRANSLATION_PX = (5.0, 3.5)
#: Slice 04 lies at this (integer) motor offset in the canvas; its first rows and columns are cut off.
OFFSET_04 = (3, 5)
PLANES = 12


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """Two normalised slices, common_space.json and register_pairwise's record of the true transform."""
    root = tmp_path_factory.mktemp("series")
    plan = plan_acquisition(preset("small"), seed=0)
    planes = []
    for _, chunk in iter_truth_volume(plan):
        planes.append(chunk["reflectivity"])
        if sum(len(p) for p in planes) >= 24 + PLANES:
            break
    slab = np.concatenate(planes)[24 : 24 + PLANES].astype(np.float32)
    canvas = slab.shape[1:]
    moving = observe(slab, TRUE_ROTATION_DEG, TRUE_TRANSLATION_PX)[:, OFFSET_04[0] :, OFFSET_04[1] :]
    (root / "normalize").mkdir()
    write_slice(root / "normalize/slice_z03.ome.zarr", slab, (VOXEL_UM,) * 3)
    write_slice(root / "normalize/slice_z04.ome.zarr", moving, (VOXEL_UM,) * 3)
    space = CommonSpace(VOXEL_UM, canvas, {"03": (0.0, 0.0), "04": (float(OFFSET_04[0]), float(OFFSET_04[1]))}, {"03": PLANES, "04": PLANES})
    write_json(root / "common_space.json", space.to_dict())
    centre = ((canvas[0] - 1) / 2.0, (canvas[1] - 1) / 2.0)
    auto = PairwiseTransform(TRUE_ROTATION_DEG, TRUE_TRANSLATION_PX, centre, 10, 4, 12, 0.9, 0.85, -0.98, "com", "ok")
    write_json(root / "slice_z04_transform.json", {"fixed_id": "03", "moving_id": "04", **auto.to_dict()})
    return root, space, slab, moving


def _run(root, *extra):
    parser = argparse.ArgumentParser()
    step.add_arguments(parser)
    args = parser.parse_args([
        "--inputs", str(root / "normalize/slice_z04.ome.zarr"), str(root / "normalize/slice_z03.ome.zarr"),
        "--common_space", str(root / "common_space.json"), "--transforms", str(root / "slice_z04_transform.json"),
        "--output_dir", str(root / "export_manual_align"), "--metrics", str(root / "export_manual_align/metrics.json"), *extra,
    ])
    return step.run(args)


@pytest.fixture(scope="module")
def exported(series):
    root = series[0]
    assert _run(root) == 0
    return root / "export_manual_align"


def test_exports_level_1_projections_with_their_exact_scale(series, exported):
    root, space, slab, moving = series
    index = read_json(exported / "index.json")
    assert index["level"] == 1 and index["pixel_size_um"] == 2 * VOXEL_UM
    assert index["canvas_shape"] == [-(-n // 2) for n in space.shape] and index["full_resolution_canvas_shape"] == list(space.shape)
    assert [s["slice_id"] for s in index["slices"]] == ["03", "04"]
    for entry, volume, offset in zip(index["slices"], (slab, moving), ((0.0, 0.0), OFFSET_04)):
        png = read_png(exported / entry["aip"])
        aip = canvas_aip(volume, space.shape, offset_px=offset, level=1)
        assert png.dtype == np.uint8 and list(png.shape) == index["canvas_shape"] == entry["shape"]
        np.testing.assert_array_equal(png, to_uint8(aip))
        # the recorded scale turns the PNG back into the projection, within half a grey level
        low, high = entry["intensity_low"], entry["intensity_high"]
        inside = (aip >= low) & (aip <= high)
        np.testing.assert_allclose(low + png[inside] / 255.0 * (high - low), aip[inside], atol=0.5 / 255 * (high - low) + 1e-6)


def test_exported_transform_is_the_automated_one_at_the_level_and_links_back_exactly(series, exported):
    space = series[1]
    record = read_json(exported / "transforms/slice_z04.json")
    assert set(record) == {"fixed_id", "moving_id", "rotation_deg", "translation_px", "center_px", "level"}
    assert record["level"] == 1 and record["translation_px"] == [TRUE_TRANSLATION_PX[0] / 2, TRUE_TRANSLATION_PX[1] / 2]
    link = manual_link(ManualTransform.from_dict(record), canvas_shape=space.shape)
    assert link.rotation_deg == pytest.approx(TRUE_ROTATION_DEG, abs=EXACT)
    np.testing.assert_allclose(link.translation_px, TRUE_TRANSLATION_PX, atol=EXACT)
    index = read_json(exported / "index.json")
    assert index["pairs"][0]["transform"] == "transforms/slice_z04.json" and index["pairs"][0]["automated"]["status"] == "ok"
    assert "manual_transforms_dir" in index["return_corrected"] and "R(theta)" in index["transform_convention"]


def test_exported_transform_aligns_the_exported_projections(exported):
    """Ground truth through the files a person would use: the moving PNG warped by the record matches the fixed PNG."""
    record = ManualTransform.from_dict(read_json(exported / "transforms/slice_z04.json"))
    fixed = read_png(exported / "aips/slice_z03.png").astype(np.float32)
    moving = read_png(exported / "aips/slice_z04.png").astype(np.float32)
    mask = (moving > np.percentile(moving, 50)).astype(np.float32)

    def ncc(theta, t):
        warped = warp_to_fixed(moving, theta, t, record.center_px, cval=np.nan)
        return correlate_planes(fixed, warped, warp_to_fixed(mask, theta, t, record.center_px, cval=0.0) > 0.5)

    aligned = ncc(record.rotation_deg, record.translation_px)
    assert aligned > 0.95 and aligned > ncc(0.0, (0.0, 0.0)) + 0.05


def test_metrics_are_written(exported):
    metrics = read_json(exported / "metrics.json")
    assert metrics["step_name"] == "export_manual_align"
    assert metrics["metrics"]["n_slices"]["value"] == 2 and metrics["metrics"]["n_transforms"]["value"] == 1


def test_a_slice_outside_the_common_space_is_refused(series, tmp_path):
    root = series[0]
    stray = tmp_path / "slice_z09.ome.zarr"
    write_slice(stray, series[2], (VOXEL_UM,) * 3)
    parser = argparse.ArgumentParser()
    step.add_arguments(parser)
    args = parser.parse_args(["--inputs", str(stray), "--common_space", str(root / "common_space.json"),
                              "--output_dir", str(tmp_path / "out"), "--metrics", str(tmp_path / "m.json")])
    with pytest.raises(InputError, match="slice 09 is not in"):
        step.run(args)
