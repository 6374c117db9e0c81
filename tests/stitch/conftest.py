"""Session fixtures: synthetic slices with known tile positions, rendered in memory (seeded)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from scipy import ndimage

from serialoct.synth import plan_acquisition, preset, render_tile, slice_texture, tissue_fraction

#: Slices of ``small`` (seed 0) the tests stitch: 01 is near the top of the brain
#: (few tiles with tissue), 03 has a column of agarose-only tiles, 05 and 07 are
#: mid-brain. (00 is the calibration slice, 04 is missing, 06 degraded.)
SMALL_SLICES = ("01", "03", "05", "07")


@dataclass(frozen=True)
class SyntheticSlice:
    """One slice of ``small`` as the stitcher receives it, with its truth.

    Attributes
    ----------
    tiles : dict of (ix, iy) to ndarray (Z, h, w)
        Decoded tiles, illumination corrected (``flat_field=False``), speckle and noise on.
    stage_mm : dict of (ix, iy) to (x_mm, y_mm)
        Reported stage positions.
    truth_px : dict of (ix, iy) to ndarray (2,)
        True top-left in the stitched frame (``plan.stitched_px``).
    tissue : dict of (ix, iy) to float
        Share of the tile's field inside the brain.
    """

    tiles: dict
    stage_mm: dict
    truth_px: dict
    tissue: dict


@pytest.fixture(scope="session")
def small_plan():
    """The ``small`` preset's plan (4 x 4 tiles of 64 x 96 x 96, 12 µm pixels, 20 % overlap, jitter ±1.5 px), seed 0."""
    return plan_acquisition(preset("small"), seed=0)


@pytest.fixture(scope="session")
def small_slices(small_plan) -> dict[str, SyntheticSlice]:
    """:data:`SMALL_SLICES` rendered once per session (about 1.5 s each)."""
    out = {}
    gx, gy = small_plan.config.grid_shape
    for sid in SMALL_SLICES:
        k = int(sid)
        texture = slice_texture(small_plan, k)
        keys = [(ix, iy) for ix in range(gx) for iy in range(gy)]
        out[sid] = SyntheticSlice(
            tiles={t: render_tile(small_plan, k, *t, texture=texture, flat_field=False) for t in keys},
            stage_mm={t: tuple(small_plan.reported_mm[k, t[0], t[1]]) for t in keys},
            truth_px={t: small_plan.stitched_px[k, t[0], t[1]] for t in keys},
            tissue={t: tissue_fraction(small_plan, k, *t) for t in keys},
        )
    return out


@pytest.fixture(scope="session")
def texture_field():
    """A factory of smooth, fibre-like random images: ``texture_field(shape, seed)`` -> float64 array."""

    def make(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        field = ndimage.gaussian_filter(rng.normal(size=shape), (1.5, 4.0)) + 0.3 * ndimage.gaussian_filter(rng.normal(size=shape), 8.0)
        return np.exp(0.3 * field / field.std())

    return make
