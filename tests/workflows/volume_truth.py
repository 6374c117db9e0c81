"""Where a reconstruction put each slice, against the synthetic acquisition's truth.

The stack places slice ``s``'s pixel ``u`` (its stitched frame) at canvas
``q = R(Theta_s) (u + o_s - C) + C + tau_s`` (stack metrics: ``offset_px``
``o_s``, ``rotation_deg`` ``Theta_s``, ``translation_px`` ``tau_s``; ``C``
the canvas centre). The truth says which sample point slice ``s``'s pixel
``u`` shows: stage ``(u + P_s) p`` with ``P_s`` from the stitched tile
positions and the true tile centres, and sample ``x`` with
``stage = R(theta_s) (x - c) + c + d_s`` (the slice's tissue rotation and
drift). A right reconstruction puts a sample point at the same canvas pixel
whichever slice shows it: ``F_s(x) = F_ref(x)``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np


def rotation(deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])


def frame_origin_px(plan, slice_id: str, stitch_positions: dict, pixel_mm: float) -> np.ndarray:
    """``P_s``: the stage position (in pixels) of the slice's pixel (0, 0), from its stitched tile positions."""
    n = np.array(plan.config.tile_shape[1:], dtype=float)
    k = int(slice_id)
    found = []
    for key, pos in stitch_positions.items():
        ix, iy = (int(v) for v in key.split(","))
        top_left_mm = plan.true_mm[k, ix, iy] - (n - 1) / 2.0 * plan.pixel_mm
        found.append(top_left_mm / pixel_mm - np.asarray(pos, dtype=float))
    return np.mean(found, axis=0)


def sample_to_canvas(plan, slice_id: str, placed: dict, origin_px: np.ndarray, canvas_shape, pixel_mm: float):
    """``F_s``: sample points ``(N, 2)`` mm -> canvas pixels ``(N, 2)``."""
    s = plan.slice(slice_id)
    c = np.asarray(plan.config.brain_centre_mm, dtype=float)
    centre = (np.asarray(canvas_shape, dtype=float) - 1.0) / 2.0
    theta, tau, offset = placed["rotation_deg"], np.asarray(placed["translation_px"]), np.asarray(placed["offset_px"])

    def f(x: np.ndarray) -> np.ndarray:
        stage = (x - c) @ rotation(s.rotation_deg).T + c + np.asarray(s.drift_mm)
        u = stage / pixel_mm - origin_px
        return (u + offset - centre) @ rotation(theta).T + centre + tau

    return f


def brain_points(plan, radius_mm: float, n: int = 15) -> np.ndarray:
    """A grid of sample points within ``radius_mm`` of the brain centre, ``(N, 2)`` mm."""
    c = np.asarray(plan.config.brain_centre_mm, dtype=float)
    g = np.linspace(-radius_mm, radius_mm, n)
    xy = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)
    return c + xy[np.hypot(xy[:, 0], xy[:, 1]) <= radius_mm]


def sample_volume(volume: np.ndarray, voxel_um: float, truth, plan, to_canvas, top_depth_mm: float, shift: int):
    """The stacked volume blurred to the truth's voxel and sampled at every truth voxel (see :func:`volume_ncc`).

    Returns (sampled, reflectivity, tissue mask, the output plane of each truth plane), the first three (Z, X, Y).
    """
    from scipy import ndimage

    grid = plan.volume
    sigma = max(0.0, 0.5 * (grid.voxel_mm * 1000.0 / voxel_um))
    smooth = ndimage.gaussian_filter(np.asarray(volume, dtype=np.float32), sigma)
    z_mm, x_mm, y_mm = (grid.axis_mm(a) for a in range(3))
    xy = np.stack(np.meshgrid(x_mm, y_mm, indexing="ij"), axis=-1).reshape(-1, 2)
    canvas = to_canvas(xy)
    planes = (z_mm - top_depth_mm) / (voxel_um / 1000.0) + shift
    zz = np.repeat(planes, len(xy))
    rr = np.tile(canvas[:, 0], len(planes))
    cc = np.tile(canvas[:, 1], len(planes))
    sampled = ndimage.map_coordinates(smooth, [zz, rr, cc], order=1, cval=0.0).reshape(len(planes), len(x_mm), len(y_mm))
    reflectivity = np.asarray(truth.volume("reflectivity"), dtype=np.float64)
    tissue = (np.asarray(truth.volume("labels")) >= 2) & (sampled > 0)
    return sampled, reflectivity, tissue, planes


def volume_ncc(volume: np.ndarray, voxel_um: float, truth, plan, to_canvas, top_depth_mm: float, *, shifts_planes=range(-4, 5)) -> tuple[float, int]:
    """NCC of the stacked volume with the phantom's reflectivity on the truth grid (25 µm), over the brain tissue.

    The volume is blurred to the truth's voxel and sampled at every truth
    voxel: laterally through ``to_canvas`` (``F_ref``), in depth from the
    first stacked slice's cut (``top_depth_mm``) at plane 0. Where plane 0
    sits relative to the cut is the interface crop's choice, so the best of
    a few whole-plane depth shifts (``shifts_planes``) is taken: one number
    for the whole volume, not a fit per slice. Returns (NCC, the shift).
    """
    best = (-1.0, 0)
    for shift in shifts_planes:
        sampled, reflectivity, tissue, _ = sample_volume(volume, voxel_um, truth, plan, to_canvas, top_depth_mm, shift)
        a, b = sampled[tissue], reflectivity[tissue]
        value = float(np.corrcoef(a, b)[0, 1]) if a.size > 100 else -1.0
        best = max(best, (value, shift))
    return best


def zone_brightness(sampled, reflectivity, tissue, planes, zones: dict) -> dict:
    """Slice id -> mean volume over mean reflectivity in the tissue of the output planes ``zones[id] = (start, stop)``."""
    out = {}
    for sid, (start, stop) in zones.items():
        inside = tissue & ((planes >= start) & (planes < stop))[:, None, None]
        if inside.sum() > 100:
            out[sid] = float(sampled[inside].mean() / reflectivity[inside].mean())
    return out


def stacked_placements(plan, out: Path, subject: str):
    """Where a finished reconstruction put the slices it stacked from their own data.

    Returns ``({slice id: (F_s, placement record)}, stacked volume, common-space record)``:
    ``F_s`` maps sample points (mm) to canvas pixels (:func:`sample_to_canvas`).
    """
    from serialoct.io.omezarr import open_ome_zarr
    from serialoct.io.slices import read_slice

    volume = open_ome_zarr(out / "stack" / f"{subject}.ome.zarr")
    space = json.loads((out / "bring_to_common_space" / "common_space.json").read_text())
    pixel_mm = space["voxel_um"] / 1000.0
    found = {}
    for placed in volume.extra_attrs["stacked_slices"]:
        sid = placed["slice_id"]
        if placed["source"] == "normalized":
            tiles = read_slice(out / "normalize" / f"slice_z{sid}.ome.zarr").extra["stitch_positions_px"]
            origin = frame_origin_px(plan, sid, tiles, pixel_mm)
            found[sid] = (sample_to_canvas(plan, sid, placed, origin, space["canvas_shape"], pixel_mm), placed)
    return found, volume, space


def placement_errors(plan, found: dict, points: np.ndarray) -> dict[str, tuple[float, float]]:
    """Slice id -> (largest distance in canvas pixels, rotation error in degrees) from where the first slice puts ``points``.

    ``found`` is :func:`stacked_placements`'s first result; a right reconstruction
    maps every sample point to the same canvas pixel whichever slice shows it.
    """
    first = next(iter(found))
    ref_f, ref = found[first]
    ref_turn = ref["rotation_deg"] + plan.slice(first).rotation_deg
    return {sid: (float(np.hypot(*(f(points) - ref_f(points)).T).max()), placed["rotation_deg"] + plan.slice(sid).rotation_deg - ref_turn)
            for sid, (f, placed) in found.items()}
