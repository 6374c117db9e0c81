"""Presets and validation of SynthConfig."""

from __future__ import annotations

from dataclasses import replace

import pytest

from serialoct.errors import ParameterError
from serialoct.synth import PRESETS, SynthConfig, preset


@pytest.mark.parametrize(
    ("name", "n_slices", "grid", "tile"),
    [("tiny", 6, (2, 2), (32, 48, 48)), ("small", 8, (4, 4), (64, 96, 96)), ("medium", 20, (6, 6), (80, 128, 128))],
)
def test_presets_have_the_documented_sizes(name, n_slices, grid, tile):
    config = preset(name)
    assert (config.n_slices, config.grid_shape, config.tile_shape) == (n_slices, grid, tile)


def test_every_preset_has_a_glitch_and_a_rehoming_above_the_default_threshold_of_0p5_mm():
    for config in PRESETS.values():
        assert config.glitch_slice is not None and config.glitch_mm > 0.5
        assert config.rehoming_slice is not None and config.rehoming_mm > 0.5


def test_small_and_medium_have_a_missing_and_a_degraded_slice_apart_from_the_other_events():
    for name in ("small", "medium"):
        c = preset(name)
        events = [c.glitch_slice, c.missing_slice, c.rehoming_slice, c.degraded_slice]
        assert None not in events and len(set(events)) == 4
        assert c.missing_slice - 1 != c.glitch_slice and c.missing_slice + 1 != c.glitch_slice


def test_unknown_preset_is_refused_with_the_choices():
    with pytest.raises(ParameterError, match="tiny, small, medium"):
        preset("huge")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"overlap_fraction": 0.7}, "overlap_fraction = 0.7"),
        ({"missing_slice": 6}, "missing_slice = 6"),
        ({"glitch_slice": 5}, "glitch_slice = 5: a glitch needs a slice before and after"),
        ({"tile_holes": ((0, 2, 0),)}, r"tile hole \(0, 2, 0\)"),
        ({"water_depth_um": 200.0}, "water_depth_um = 200.0"),
        ({"n_extra": -1}, "n_extra = -1"),
    ],
)
def test_invalid_values_are_refused_naming_the_field(change, message):
    with pytest.raises(ParameterError, match=message):
        replace(preset("tiny"), **change)


def test_config_survives_a_json_style_round_trip():
    config = replace(preset("small"), tile_holes=((3, 1, 2),), missing_slice=None)
    assert SynthConfig.from_dict(config.to_dict()) == config


def test_from_dict_refuses_unknown_keys():
    with pytest.raises(ParameterError, match="unknown synth config key"):
        SynthConfig.from_dict({"n_slices": 3, "colour": "red"})
