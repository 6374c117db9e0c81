"""Claims about the cluster resources the workflow rules declare (memory, wall time, GPUs)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from serialoct.params import resolve
from serialoct.workflows import WORKFLOWS_DIR
from serialoct.workflows.resources import RULES, aip_memory_mb, gpus, memory_mb, mosaic_memory_mb, runtime_min

BASE_MOSAIC_MB = RULES["create_mosaic_grid"].base_mb


def _config(raw: Path, **values) -> dict:
    return resolve("preproc", {"input": str(raw), "axial_resolution": 5, **values})


def test_every_rule_of_the_workflow_declares_memory_and_runtime_from_this_module():
    declared = {}
    for smk in WORKFLOWS_DIR.glob("*/rules/*.smk"):
        for name, body in re.findall(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", smk.read_text(), flags=re.M):
            declared[name] = body
    assert set(declared) == set(RULES)
    for name, body in declared.items():
        assert f'mem_mb=memory_mb("{name}", config)' in body and f'runtime=runtime_min("{name}")' in body, name
        assert (f'gpu=gpus("{name}", config)' in body) == RULES[name].gpu_capable, name


@pytest.mark.parametrize("rule", sorted(RULES))
def test_memory_and_runtime_grow_with_each_attempt(rule, sample_acquisition):
    config = _config(sample_acquisition)
    wildcards = {"slice": "01"}
    mem, minutes = memory_mb(rule, config), runtime_min(rule)
    assert [mem(wildcards, attempt=a) for a in (1, 2, 3)] == [mem(wildcards, attempt=1) * a for a in (1, 2, 3)]
    assert [minutes(wildcards, attempt=a) for a in (1, 2, 3)] == [RULES[rule].runtime_min * a for a in (1, 2, 3)]


def test_mosaic_memory_comes_from_the_slice_header(sample_acquisition):
    from serialoct.io.tileinfo import read_info

    info = read_info(next((sample_acquisition / "slice_z01" / "tiles").iterdir()))
    decoded_mb = info.n_z * info.nx * info.ny * 4 / 1e6
    data = mosaic_memory_mb(
        raw_tile_mb=info.frame_bytes * info.n_frames / 1e6, decoded_tile_mb=decoded_mb, out_tile_mb=decoded_mb,
        shard_tiles=4, processes=2,  # the 2x2 grid fits in one 4x4 shard
    )
    request = memory_mb("create_mosaic_grid", _config(sample_acquisition, processes=2))({"slice": "01"}, attempt=1)
    assert data > 0 and request == BASE_MOSAIC_MB + data


def test_mosaic_memory_is_one_tile_with_one_process_and_grows_with_shards_in_flight_with_more():
    # a real slice: tiles of 400 x 512 x 512 float32 (~420 MB decoded), 4x4 tiles per shard
    one = mosaic_memory_mb(raw_tile_mb=440, decoded_tile_mb=420, out_tile_mb=420, shard_tiles=16, processes=1)
    one_small_shards = mosaic_memory_mb(raw_tile_mb=440, decoded_tile_mb=420, out_tile_mb=420, shard_tiles=4, processes=1)
    two = mosaic_memory_mb(raw_tile_mb=440, decoded_tile_mb=420, out_tile_mb=420, shard_tiles=16, processes=2)
    two_small_shards = mosaic_memory_mb(raw_tile_mb=440, decoded_tile_mb=420, out_tile_mb=420, shard_tiles=4, processes=2)
    assert one == one_small_shards == 2_600  # 3 x 440 read ahead + 2 x 420 decoded + 420 encoded = 2,580, rounded up
    assert two == 43_800  # 4 x 440 + 2 x 2 x 420 + 3 x 2 x 16 x 420 = 43,760
    assert two_small_shards < two / 3  # with threads, shards in flight dominate: sharding_factor sets it


def test_aip_memory_is_one_shard_row():
    assert aip_memory_mb(out_tile_mb=420, row_tiles=4 * 10) == 33_600  # 2 x 40 tiles x 420 MB


def test_a_slice_whose_header_cannot_be_read_asks_for_the_base(tmp_path, sample_acquisition, caplog):
    raw = tmp_path / "raw"
    shutil.copytree(sample_acquisition, raw)
    for info in (raw / "slice_z01").rglob("info.txt"):
        info.write_text("garbage\n")
    request = memory_mb("create_mosaic_grid", _config(raw))({"slice": "01"}, attempt=2)
    assert request == 2 * BASE_MOSAIC_MB
    assert "slice 01: memory request from the base only" in caplog.text


def test_a_gpu_is_asked_only_for_gpu_capable_steps_with_use_gpu(sample_acquisition):
    on, off = _config(sample_acquisition, use_gpu=True), _config(sample_acquisition, use_gpu=False)
    assert {rule: gpus(rule, on) for rule in RULES} == {rule: int(cost.gpu_capable) for rule, cost in RULES.items()}
    assert {gpus(rule, off) for rule in RULES} == {0}


def test_an_unknown_rule_is_refused_by_name():
    with pytest.raises(ValueError, match=r"no resource declaration for rule 'stitch'; known: create_mosaic_grid"):
        memory_mb("stitch", {})


def test_docstring_examples_run():
    import doctest

    from serialoct.workflows import resources

    assert doctest.testmod(resources).failed == 0
