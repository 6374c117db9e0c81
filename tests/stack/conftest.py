"""Session fixtures: the ``small`` phantom's truth volume cut into overlapping depth slabs with known transforms."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from scipy import ndimage

from serialoct.synth import iter_truth_volume, plan_acquisition, preset

#: The truth grid is 25 µm; ``small`` cuts 200 µm slices: 8 planes per cut.
VOXEL_UM = 25.0
THICKNESS_UM = 200.0
PLANES_PER_SLICE = 8
#: Each slab images 4 planes (100 µm) below the next cut, as OCT images below its cut.
EXTRA_PLANES = 4
N_SLICES = 8
#: Known per-slice tissue motion (cumulative, canvas frame): a few degrees, a few pixels.
ROTATION_DEG = (0.0, 1.0, 2.5, 2.0, -0.5, -1.5, 0.5, 1.0)
TRANSLATION_PX = ((0, 0), (2, -1), (4, 1), (3, 4), (-2, 5), (-4, 2), (-1, -3), (2, -4))
#: Relative speckle-like noise added independently to every slab.
NOISE = 0.05


@dataclass(frozen=True)
class Truth:
    reflectivity: np.ndarray  # (Z, H, W) float32
    tissue: np.ndarray  # (Z, H, W) bool, labels >= 2


@dataclass(frozen=True)
class Slabs:
    """Slabs as stacking receives them, and the truth of how they were made.

    ``volumes[k][p]`` samples the truth at canvas ``M_k(p) = R(Theta_k) (p - c) + c + tau_k``
    (``ROTATION_DEG[k]``, ``TRANSLATION_PX[k]``), depth ``k * 8 + z``.
    """

    volumes: tuple[np.ndarray, ...]
    pair_rotation_deg: np.ndarray  # (S,) theta_k = Theta_k - Theta_{k-1}
    pair_translation_px: np.ndarray  # (S, 2) t_k = R(-Theta_{k-1}) (tau_k - tau_{k-1})


def rotation(deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])


def observe(volume: np.ndarray, rotation_deg: float, translation_px) -> np.ndarray:
    """``out[z, p] = volume[z, R (p - c) + c + t]`` (linear, 0 outside)."""
    h, w = volume.shape[1:]
    c = np.array([(h - 1) / 2.0, (w - 1) / 2.0])
    rot = rotation(rotation_deg)
    offset = c + np.asarray(translation_px, float) - rot @ c
    return np.stack([ndimage.affine_transform(plane, rot, offset, order=1, cval=0.0) for plane in volume]).astype(np.float32)


def local_error(shape, seed=5) -> np.ndarray:
    """A smooth lateral gain error of an attenuation compensation (x0.6 .. x1.6), as a wrong tail leaves at depth."""
    field = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), 6.0)
    return np.exp(0.25 * field / field.std()).astype(np.float32)


@pytest.fixture(scope="session")
def truth() -> Truth:
    """``small`` (seed 0) reflectivity and tissue on the 25 µm grid, (74, 172, 185), about 1 s."""
    plan = plan_acquisition(preset("small"), seed=0)
    chunks = list(iter_truth_volume(plan))
    refl = np.concatenate([c["reflectivity"] for _, c in chunks])
    labels = np.concatenate([c["labels"] for _, c in chunks])
    return Truth(refl.astype(np.float32), labels >= 2)


@pytest.fixture(scope="session")
def slabs(truth) -> Slabs:
    rng = np.random.default_rng(7)
    vols = []
    for k in range(N_SLICES):
        z0 = k * PLANES_PER_SLICE
        slab = truth.reflectivity[z0 : z0 + PLANES_PER_SLICE + EXTRA_PLANES]
        slab = slab * (1 + NOISE * rng.standard_normal(slab.shape)).astype(np.float32)
        vols.append(observe(slab, ROTATION_DEG[k], TRANSLATION_PX[k]))
    theta = np.array(ROTATION_DEG)
    tau = np.array(TRANSLATION_PX, dtype=float)
    pair_rot = np.diff(theta, prepend=0.0)
    pair_t = np.zeros_like(tau)
    for k in range(1, N_SLICES):
        pair_t[k] = rotation(-theta[k - 1]) @ (tau[k] - tau[k - 1])
    return Slabs(tuple(vols), pair_rot, pair_t)
