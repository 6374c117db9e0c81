"""Same inputs and parameters, same bytes: preprocessing is deterministic, whatever the parallelism.

What is NOT compared, and why (RELIABILITY.md): the metrics JSONs (they record elapsed
seconds and MB/s), logs, Snakemake's benchmark records and state, and file times.
"""

from __future__ import annotations

import hashlib
import subprocess

import pytest

from serialoct.cli import main


def _digest_tree(folder) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow  # a whole second run; the thread-count claim below is the fast version
def test_two_runs_with_different_cores_and_threads_write_identical_outputs(reference_run, harness, tmp_path):
    command = harness.command(reference_run.raw, tmp_path / "out", "--processes", "3")
    command[command.index("--cores") + 1] = "1"
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    digests = harness.outputs(tmp_path / "out")
    assert digests == reference_run.digests
    assert any(k.endswith("/0/c/0/0/0") for k in digests) and "shifts_xy.csv" in digests and "slice_config.csv" in digests


@pytest.mark.parametrize("resolution", ["-1", "40"], ids=["native", "resampled"])
def test_the_mosaic_step_writes_the_same_bytes_with_one_or_three_threads(reference_run, tmp_path, resolution):
    stores = []
    for processes in ("1", "3"):
        out = tmp_path / f"p{processes}.ome.zarr"
        assert main(["step", "create_mosaic_grid", "--input", str(reference_run.raw), "--slice", "02", "--output", str(out),
                     "--metrics", str(out) + ".json", "--axial_resolution", "8", "--resolution", resolution,
                     "--processes", processes, "--sharding_factor", "1"]) == 0
        stores.append(_digest_tree(out))
    assert stores[0] == stores[1] and len(stores[0]) > 4  # several shards, each identical


def test_qc_pictures_are_byte_identical_across_runs(reference_run, tmp_path):
    mosaic = reference_run.out / "mosaic_grid_3d_z01.ome.zarr"
    pictures = []
    for k in range(2):
        aip, preview = tmp_path / f"aip{k}.png", tmp_path / f"preview{k}.png"
        assert main(["step", "generate_aip", "--input", str(mosaic), "--output", str(aip)]) == 0
        assert main(["step", "preview_mosaic_grid", "--input", str(mosaic), "--output", str(preview)]) == 0
        pictures.append((aip.read_bytes(), preview.read_bytes()))
    assert pictures[0] == pictures[1]
