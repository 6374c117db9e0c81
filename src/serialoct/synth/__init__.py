"""Synthetic S-OCT acquisitions with known ground truth.

A seeded, brain-like phantom (:mod:`~serialoct.synth.phantom`) is cut into
slices and imaged as grids of overlapping tiles by a model OCT instrument
(:mod:`~serialoct.synth.instrument`): water above a curved, tilted surface,
attenuation, a focal beam profile, flat-field vignetting, darkfield, speckle,
focal curvature, a galvo fly-back band, repeated B-scans, stage jitter, tissue
drift and rotation, a motor glitch, a re-homing jump, and optionally a missing
slice, a degraded slice and tile holes. :func:`plan_acquisition` draws every
geometric fact first (:mod:`~serialoct.synth.acquisition`); pixels are rendered
lazily, one tile at a time; :func:`write_acquisition` streams the raw format
(either layout) and the truth (:mod:`~serialoct.synth.truth`) to disk.

Typical use in a test::

    plan = write_acquisition(tmp_path / "raw", preset("tiny"), seed=0)
    truth = load_truth(tmp_path / "raw")
    tile = render_tile(plan, "01", 0, 1)          # what the reader must return
"""

from serialoct.synth.acquisition import (
    SATURATION,
    AcquisitionPlan,
    SlicePlan,
    VolumeGrid,
    plan_acquisition,
)
from serialoct.synth.geometry import cut_depth, stage_to_sample, surface_index, tile_depth_coords, tile_lateral_coords
from serialoct.synth.config import PRESETS, SynthConfig, preset
from serialoct.synth.instrument import beam_profile, record_frames, render_tile, slice_texture, tissue_fraction
from serialoct.synth.phantom import LABELS, Phantom, evaluate_phantom
from serialoct.synth.truth import Truth, iter_truth_volume, load_truth, save_truth
from serialoct.synth.writer import info_values, iter_slice_tiles, tile_folder, write_acquisition

__all__ = [
    "SATURATION",
    "LABELS",
    "PRESETS",
    "AcquisitionPlan",
    "Phantom",
    "SlicePlan",
    "SynthConfig",
    "Truth",
    "VolumeGrid",
    "beam_profile",
    "cut_depth",
    "evaluate_phantom",
    "info_values",
    "iter_slice_tiles",
    "iter_truth_volume",
    "load_truth",
    "plan_acquisition",
    "preset",
    "record_frames",
    "render_tile",
    "save_truth",
    "slice_texture",
    "stage_to_sample",
    "surface_index",
    "tile_depth_coords",
    "tile_folder",
    "tile_lateral_coords",
    "tissue_fraction",
    "write_acquisition",
]
