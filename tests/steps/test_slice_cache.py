"""The series steps' slice cache: a few slices held whole, planes of the others read alone."""

from __future__ import annotations

import numpy as np

import serialoct.io.slices as slices
from serialoct.io.slices import write_slice
from serialoct.steps.alignment import CACHED_SLICES, SliceCache


def test_the_slice_cache_holds_the_last_few_slices_whole_and_reads_planes_of_the_others(rng, tmp_path, monkeypatch):
    volumes = {f"{k:02d}": rng.gamma(2.0, size=(20 + k, 24, 24)).astype(np.float32) for k in range(CACHED_SLICES + 2)}
    for sid, volume in volumes.items():
        write_slice(tmp_path / f"slice_z{sid}.ome.zarr", volume, (8.0, 12.0, 12.0))
    whole_reads = []
    read_slice = slices.read_slice
    monkeypatch.setattr(slices, "read_slice", lambda path: whole_reads.append(path) or read_slice(path))
    cache = SliceCache({sid: str(tmp_path / f"slice_z{sid}.ome.zarr") for sid in volumes})
    for sid, volume in volumes.items():
        assert cache.depth(sid) == volume.shape[0]
        np.testing.assert_array_equal(cache.planes(sid, 3, 9), volume[3:9])
        np.testing.assert_array_equal(cache(sid), volume)
        np.testing.assert_array_equal(cache.planes(sid, 3, 9), volume[3:9])
    assert len(whole_reads) == len(volumes)  # planes never read a slice whole
    ids = list(volumes)
    cache(ids[-1])  # held
    assert len(whole_reads) == len(volumes)
    cache(ids[0])  # dropped: only the last CACHED_SLICES are held
    assert len(whole_reads) == len(volumes) + 1


def test_reading_ahead_reads_each_slice_whole_once_in_order_the_next_one_while_the_caller_works(rng, tmp_path, monkeypatch):
    import threading

    volumes = {f"{k:02d}": rng.gamma(2.0, size=(10 + k, 16, 16)).astype(np.float32) for k in range(CACHED_SLICES + 3)}
    for sid, volume in volumes.items():
        write_slice(tmp_path / f"slice_z{sid}.ome.zarr", volume, (8.0, 12.0, 12.0))
    reads = []  # (slice id, reading thread)
    read_slice = slices.read_slice
    monkeypatch.setattr(slices, "read_slice", lambda path: reads.append((path[-11:-9], threading.current_thread().name)) or read_slice(path))
    cache = SliceCache({sid: str(tmp_path / f"slice_z{sid}.ome.zarr") for sid in volumes}, read_ahead=True)
    for sid, volume in volumes.items():
        np.testing.assert_array_equal(cache(sid), volume)
    ids = list(volumes)
    assert [sid for sid, _ in reads] == ids
    assert reads[0][1] == threading.current_thread().name and all(name.startswith("slice-reader") for _, name in reads[1:])
