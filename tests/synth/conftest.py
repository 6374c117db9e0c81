"""Session fixtures: small synthetic acquisitions written once (seeded)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from serialoct.synth import preset, write_acquisition

#: tiny with every event: glitch 02, re-homing 04, missing 05, degraded 06, a tile hole in 07.
EVENTS = replace(preset("tiny"), n_slices=8, missing_slice=5, degraded_slice=6, tile_holes=((7, 1, 1),))
#: old layout, three repeats (not a power of two) and three .bin files, no glitch or re-homing.
OLD = replace(preset("tiny"), n_slices=3, glitch_slice=None, rehoming_slice=None, n_repeat=3, n_bin_files=3, old_layout=True)


@pytest.fixture(scope="session")
def events_acquisition(tmp_path_factory):
    """(folder, plan) of :data:`EVENTS` in the default layout, seed 7."""
    out = tmp_path_factory.mktemp("synth") / "events"
    return out, write_acquisition(out, EVENTS, seed=7, workers=2)


@pytest.fixture(scope="session")
def old_acquisition(tmp_path_factory):
    """(folder, plan) of :data:`OLD` (old layout, n_repeat 3, 3 files), seed 11."""
    out = tmp_path_factory.mktemp("synth") / "old"
    return out, write_acquisition(out, OLD, seed=11, workers=1)
