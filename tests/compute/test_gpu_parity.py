"""The GPU path (CuPy) gives the CPU path's results within float tolerance, step function by step function.

Skipped without a usable GPU: the CPU path is the tested one everywhere
else, and these tests run wherever CuPy and a device are present.
"""

from __future__ import annotations

import numpy as np
import pytest

from serialoct.compute import get_backend, to_numpy
from serialoct.compute.backend import _gpu_or_reason

GPU = _gpu_or_reason()
pytestmark = pytest.mark.skipif(isinstance(GPU, str), reason=f"no usable GPU: {GPU}")
RTOL, ATOL = 1e-4, 1e-5


@pytest.fixture(scope="module")
def volume():
    from serialoct.synth import plan_acquisition, preset, render_tile

    plan = plan_acquisition(preset("tiny"), seed=0)
    return np.concatenate([render_tile(plan, "02", ix, 0) for ix in range(2)], axis=1).astype(np.float32)


def test_isotropic_resampling_agrees(volume):
    from serialoct.correct.resample import resample_tile_isotropic

    cpu = resample_tile_isotropic(volume, (8.0, 20.0, 20.0), resolution_um=10.0, backend=get_backend(False))
    gpu = resample_tile_isotropic(volume, (8.0, 20.0, 20.0), resolution_um=10.0, backend=GPU)
    np.testing.assert_allclose(to_numpy(gpu), to_numpy(cpu), rtol=RTOL, atol=ATOL)


def test_normalisation_agrees(volume):
    from serialoct.correct.normalize import normalize

    cpu = normalize(volume, backend=get_backend(False)).volume
    gpu = normalize(volume, backend=GPU).volume
    np.testing.assert_allclose(to_numpy(gpu), to_numpy(cpu), rtol=RTOL, atol=ATOL)


def test_attenuation_compensation_agrees(volume):
    from serialoct.correct.attenuation import compensate_attenuation

    cpu = compensate_attenuation(volume, axial_um=8.0, backend=get_backend(False)).volume
    gpu = compensate_attenuation(volume, axial_um=8.0, backend=GPU).volume
    np.testing.assert_allclose(to_numpy(gpu), to_numpy(cpu), rtol=RTOL, atol=ATOL)
