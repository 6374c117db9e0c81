"""Fixtures for the shift-based alignment tests: synthetic plans (no pixels) and their shifts."""

from __future__ import annotations

import numpy as np
import pytest

from serialoct.io.tables import ShiftRow
from serialoct.preproc.shifts import SliceStage, shifts_from_stage
from serialoct.synth import AcquisitionPlan, plan_acquisition, preset


def plan_shifts(plan: AcquisitionPlan) -> list[ShiftRow]:
    """``shifts_xy.csv`` rows of a plan, as ``estimate_xy_shifts`` computes them (present slices, reported positions)."""
    reported = plan.reported_mm
    stages = []
    for sid in plan.present_slice_ids:
        k = int(sid)
        acquired = plan.acquired[k]
        stages.append(SliceStage(sid, tuple(reported[k][acquired][:, 0]), tuple(reported[k][acquired][:, 1]),
                                 plan.tile_size_mm, plan.config.grid_shape))
    return shifts_from_stage(stages, (plan.pixel_mm, plan.pixel_mm))


def true_offsets_px(plan: AcquisitionPlan) -> dict[str, np.ndarray]:
    """Truth placement of each present slice in the first one's mosaic frame, pixels ``(row, col)``.

    The mosaic grid's pixel (0, 0) sits at the commanded grid origin minus
    half a tile, and pixel index grows with stage position, so slice k's
    content moves by ``(grid_origin_k - grid_origin_0) / pixel``: the walk of
    the commanded origin plus the re-homing, and no glitch (the glitch moves
    only the reported positions). Tissue drift is not a motor quantity and
    is left to pairwise registration.
    """
    ids = plan.present_slice_ids
    origin = {sid: np.asarray(plan.slice(sid).grid_origin_mm) for sid in ids}
    return {sid: (origin[sid] - origin[ids[0]]) / plan.pixel_mm for sid in ids}


@pytest.fixture(scope="session")
def small_plan() -> AcquisitionPlan:
    """Preset ``small`` (glitch 02, missing 04, re-homing 05, degraded 06), seed 0."""
    return plan_acquisition(preset("small"), seed=0)


@pytest.fixture(scope="session")
def medium_plan() -> AcquisitionPlan:
    """Preset ``medium`` (glitch 05, missing 09, re-homing 12, degraded 15), seed 3."""
    return plan_acquisition(preset("medium"), seed=3)
