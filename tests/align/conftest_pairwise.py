"""Consecutive normalised slices of the ``small`` phantom, with the true transform between them.

Import explicitly: ``from tests.align.conftest_pairwise import ...``.

A slice ``k`` is what the reconstruction holds after the interface crop and
normalisation, at a 25 µm working resolution: plane ``z`` images sample depth
``top + z * voxel``, and its pixel ``p = (row, col)`` sits at stage position
``c + (p - p_c) * voxel`` (``c`` the brain centre, ``p_c`` its pixel, off the
image centre so that the rotation centre matters), where the tissue has
turned by ``theta_k`` and drifted by ``d_k`` about ``c``
(``stage = R(theta_k) (sample - c) + c + d_k``, as in
:mod:`serialoct.synth.acquisition`). The phantom's reflectivity (texture
included) is evaluated at exactly those sample points, so the geometry is
exact; speckle (gamma, a few looks) and noise growing with depth are added,
and each slice is scaled to [0, 1] by its 99.9th percentile.

Between slices k (fixed) and k+1 (moving), a moving pixel ``p`` maps to the
fixed pixel ``R(theta_k - theta_{k+1}) (p - o) + o + t`` about the image
centre ``o``, with ``t = R (o - p_c - d_{k+1}) + p_c + d_k - o`` (drifts in
pixels): the convention of :class:`serialoct.align.pairwise.PairwiseTransform`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from serialoct.synth import evaluate_phantom, plan_acquisition, preset
from serialoct.synth.phantom import sample_texture, texture_slab

#: Working resolution of the synthetic slices, mm (isotropic).
VOXEL_MM = 0.025
#: Lateral size of a slice, pixels: the ``small`` brain (2.4 x 2.8 mm) with a margin.
SLICE_SHAPE = (136, 150)
#: Pixel of the brain centre, off the image centre ((67.5, 74.5)).
BRAIN_CENTRE_PX = (70.0, 71.0)
#: Planes in one slice's stack: 500 µm, more than the 200 µm cut plus the
#: moving plane's index plus the depth search.
SLICE_DEPTH_PLANES = 20
#: The cut thickness of ``small`` (200 µm) in planes.
CUT_PLANES = 8
#: Depth of slice 00's first plane, mm: the brain's top is at 0.08 mm.
FIRST_TOP_MM = 0.1
#: Speckle looks averaged into a working-resolution voxel (gamma shape): a 25 µm
#: voxel resampled from ``small``'s 12 µm pixels and 8 µm axial sampling averages about 2 x 2 x 3.
SPECKLE_LOOKS = 12.0
#: Additive noise at the top and bottom of a slice, in units of the median tissue reflectivity.
NOISE_TOP, NOISE_BOTTOM = 0.05, 0.25


@dataclass(frozen=True, eq=False)
class SlicePair:
    """Two consecutive slices and the truth between them.

    Attributes
    ----------
    fixed, moving : ndarray, shape (Z, rows, cols), float32
        The upper (fixed) and lower (moving) slice, normalised to [0, 1].
    rotation_deg : float
        True rotation mapping moving pixels to fixed pixels about the image centre.
    translation_px : ndarray, shape (2,)
        True translation ``(row, col)`` of the same map, pixels.
    matching_plane : int
        Fixed plane imaging the same depth as moving plane ``moving_index``.
    moving_index : int
    voxel_mm : float
    """

    fixed: np.ndarray
    moving: np.ndarray
    rotation_deg: float
    translation_px: np.ndarray
    matching_plane: int
    moving_index: int
    voxel_mm: float


def _rotation(deg: float) -> np.ndarray:
    t = math.radians(deg)
    return np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])


@functools.lru_cache(maxsize=1)
def small_plan():
    """The ``small`` preset's plan, seed 0 (its phantom and per-slice rotation and drift)."""
    return plan_acquisition(preset("small"), seed=0)


def cut_slice(top_mm: float, *, rotation_deg: float, drift_px, rng: np.random.Generator,
              depth_planes: int = SLICE_DEPTH_PLANES) -> np.ndarray:
    """One normalised slice whose plane 0 images depth ``top_mm``, turned and drifted about the brain centre.

    Returns
    -------
    ndarray, shape (depth_planes, rows, cols), float32
    """
    plan = small_plan()
    centre_mm = np.asarray(plan.config.brain_centre_mm, np.float64)
    pc = np.asarray(BRAIN_CENTRE_PX)
    rows, cols = SLICE_SHAPE
    pixels = np.stack(np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij"), axis=0).reshape(2, -1).astype(np.float64)
    stage = centre_mm[:, None] + (pixels - pc[:, None]) * VOXEL_MM
    drift_mm = np.asarray(drift_px, np.float64) * VOXEL_MM
    sample = _rotation(rotation_deg).T @ (stage - (centre_mm + drift_mm)[:, None]) + centre_mm[:, None]
    x, y = sample[0].reshape(rows, cols), sample[1].reshape(rows, cols)
    z = (top_mm + np.arange(depth_planes) * VOXEL_MM)[:, None, None]
    texture = sample_texture(plan.phantom, texture_slab(plan.phantom, float(z.min()), float(z.max())), z, x, y)
    out = evaluate_phantom(plan.phantom, z, x, y, texture=texture).reflectivity.astype(np.float32)
    tissue_level = float(np.median(out[out > np.percentile(out, 50)]))
    out *= rng.gamma(SPECKLE_LOOKS, 1.0 / SPECKLE_LOOKS, out.shape).astype(np.float32)
    noise = np.linspace(NOISE_TOP, NOISE_BOTTOM, depth_planes, dtype=np.float32)[:, None, None] * tissue_level
    out += np.abs(rng.normal(0.0, 1.0, out.shape)).astype(np.float32) * noise
    return np.clip(out / np.percentile(out, 99.9), 0.0, 1.0).astype(np.float32)


def relative_transform(fixed_state, moving_state) -> tuple[float, np.ndarray]:
    """True ``(rotation_deg, translation_px)`` mapping moving pixels to fixed pixels about the image centre.

    Each state is ``(rotation_deg, drift_px)`` of a slice.
    """
    (theta_f, d_f), (theta_m, d_m) = fixed_state, moving_state
    theta = theta_f - theta_m
    o = (np.asarray(SLICE_SHAPE, np.float64) - 1.0) / 2.0
    pc = np.asarray(BRAIN_CENTRE_PX)
    t = _rotation(theta) @ (o - pc - np.asarray(d_m)) + pc + np.asarray(d_f) - o
    return theta, t


def make_pair(fixed_index: int, *, seed: int, extra_rotation_deg: float = 0.0, extra_drift_px=(0.0, 0.0),
              moving_index: int = 4, extra_cut_planes: int = 0, moving_top_mm: float | None = None) -> SlicePair:
    """Slices ``fixed_index`` and ``fixed_index + 1`` of the plan, the moving one turned and drifted further.

    ``extra_cut_planes`` cuts the moving slice that much deeper than nominal
    (a thicker cut); ``moving_top_mm`` places it at any depth (an unrelated slice).
    """
    rng = np.random.default_rng(seed)
    plan = small_plan()
    f, m = plan.slices[fixed_index], plan.slices[fixed_index + 1]
    fixed_state = (f.rotation_deg, np.asarray(f.drift_mm) / VOXEL_MM)
    moving_state = (m.rotation_deg + extra_rotation_deg, np.asarray(m.drift_mm) / VOXEL_MM + np.asarray(extra_drift_px))
    top = FIRST_TOP_MM + fixed_index * CUT_PLANES * VOXEL_MM
    if moving_top_mm is None:
        moving_top_mm = top + (CUT_PLANES + extra_cut_planes) * VOXEL_MM
    fixed = cut_slice(top, rotation_deg=fixed_state[0], drift_px=fixed_state[1], rng=rng)
    moving = cut_slice(moving_top_mm, rotation_deg=moving_state[0], drift_px=moving_state[1], rng=rng)
    theta, t = relative_transform(fixed_state, moving_state)
    matching = int(round((moving_top_mm - top) / VOXEL_MM)) + moving_index
    return SlicePair(fixed, moving, theta, t, matching, moving_index, VOXEL_MM)
