"""Claims about galvo fly-back band detection."""

from __future__ import annotations

import numpy as np
import pytest

from serialoct.io.acquisition import discover_slices
from serialoct.io.raw import read_raw_frames, read_tile
from serialoct.preproc.galvo import detect_galvo_band

THRESHOLD = 0.6  # the guide's default galvo_confidence_threshold


def test_finds_the_band_start_of_each_sample_slice(sample_acquisition, sample_expected):
    _, meta = sample_expected
    for slice_id, found in discover_slices(sample_acquisition).items():
        detection = detect_galvo_band([read_raw_frames(t.path) for t in found.tiles], meta["n_extra"])
        assert detection.band_start == meta["slices"][slice_id]["galvo_band_start"]
        assert detection.should_fix(THRESHOLD)


def test_sample_tiles_with_the_band_removed_give_no_confident_band(sample_acquisition, sample_expected):
    _, meta = sample_expected
    for slice_id, found in discover_slices(sample_acquisition).items():
        band = meta["slices"][slice_id]["galvo_band_start"]
        tiles = [read_tile(t.path, galvo_band_start=band) for t in found.tiles]
        assert not detect_galvo_band(tiles, meta["n_extra"]).should_fix(THRESHOLD)


def test_without_fly_back_alines_there_is_nothing_to_fix(rng):
    frames = [rng.uniform(size=(4, 16, 8)) for _ in range(3)]
    detection = detect_galvo_band(frames, 0)
    assert detection.confidence == 0.0 and not detection.should_fix(0.0 + 1e-9)


@pytest.mark.parametrize("bright", [False, True])
def test_a_wrapped_band_is_found_dark_or_bright(rng, bright):
    n_z, nx, n_extra, n_frames, start = 8, 40, 6, 12, 37  # band covers A-lines 37..42 mod 46
    frames = []
    for _ in range(3):
        f = rng.gamma(2.0, 1.0, size=(n_z, nx + n_extra, n_frames)).astype(np.float32)
        band = (start + np.arange(n_extra)) % (nx + n_extra)
        f[:, band, :] = 20.0 if bright else 0.01
        frames.append(f)
    detection = detect_galvo_band(frames, n_extra)
    assert detection.band_start == start and detection.should_fix(THRESHOLD)
