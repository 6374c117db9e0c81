"""Ground truth of a synthetic acquisition: the clean volume, and saving / loading it.

On disk, beside the raw slices (``OUT/truth/``, which neither layout's reader
looks at)::

    truth/
      truth.json          config, seed, geometry, frames, per-slice truth, events, volume grid
      arrays.npz          per-tile and per-slice arrays (below)
      reflectivity.npy    (Z, X, Y) float32: the phantom's reflectivity on the volume grid
      attenuation.npy     (Z, X, Y) float32: attenuation coefficient, 1/mm
      labels.npy          (Z, X, Y) uint8: materials (phantom.LABELS; brain tissue = label >= 2)

``arrays.npz`` keys (S slices in cutting order including a missing one,
GX x GY tiles, last axis ``(x, y)``): ``commanded_mm``, ``true_mm``,
``reported_mm`` (S, GX, GY, 2: tile centres, stage frame), ``jitter_px``,
``stitched_px`` (S, GX, GY, 2: true top-left in the slice's stitched frame),
``grid_px`` (S, GX, GY, 2: top-left in the mosaic grid of formats.md §2, ``(ix * nx, iy * ny)``),
``acquired`` (S, GX, GY), ``drift_mm``, ``drift_px``, ``grid_origin_mm``,
``glitch_mm``, ``rehoming_mm`` (S, 2), ``rotation_deg`` (S), ``sample_to_stage``
(S, 3, 3), ``galvo_band_start`` (S, -1 without a band), ``galvo_band_contrast``, ``missing``,
``degraded`` (S), ``flat_field``, ``curvature_vox`` (nx, ny), ``beam_profile``
(n_z, nx, ny).

The volume is the phantom's reflectivity *as the instrument would see it
before imaging*: texture included, no water, attenuation, beam, flat-field,
speckle or noise. Voxel ``(k, i, j)`` is centred at ``origin_mm + (k, i, j) *
voxel_mm`` in the sample frame (z = depth below slice 0's cut plane, x, y =
slice 0 stage coordinates; see :mod:`serialoct.synth.acquisition`), and it
covers every point any tile of any slice imaged below its cut surface.
The writing helpers here are the one place synth writes files besides the raw
tiles (which go through :func:`serialoct.io.raw.write_raw_tile`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serialoct.errors import FormatError, InputError
from serialoct.synth.acquisition import AcquisitionPlan, plan_acquisition
from serialoct.synth.config import SynthConfig
from serialoct.synth.instrument import beam_profile
from serialoct.synth.phantom import LABELS, evaluate_phantom, sample_texture, texture_slab

__all__ = ["TRUTH_DIR", "FORMAT_VERSION", "VOLUME_NAMES", "Truth", "iter_truth_volume", "truth_arrays", "truth_metadata", "save_truth", "load_truth"]

TRUTH_DIR = "truth"
FORMAT_VERSION = 1
VOLUME_NAMES = ("reflectivity", "attenuation", "labels")
_CHUNK_VOXELS = 1_000_000


def iter_truth_volume(plan: AcquisitionPlan) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """The ground-truth volume in depth chunks (bounded memory).

    Yields
    ------
    z_start : int
        First plane of the chunk.
    chunk : dict
        ``reflectivity`` and ``attenuation`` (float32) and ``labels`` (uint8),
        each of shape ``(n, X, Y)``.
    """
    grid = plan.volume
    nz, nx, ny = grid.shape
    step = max(1, _CHUNK_VOXELS // (nx * ny))
    x = grid.axis_mm(1)[:, None]
    y = grid.axis_mm(2)[None, :]
    for z0 in range(0, nz, step):
        z = grid.axis_mm(0)[z0 : z0 + step][:, None, None]
        slab = texture_slab(plan.phantom, float(z.min()), float(z.max()))
        ph = evaluate_phantom(plan.phantom, z, x, y, texture=sample_texture(plan.phantom, slab, z, x, y))
        yield z0, {"reflectivity": ph.reflectivity, "attenuation": ph.attenuation, "labels": ph.labels}


def truth_arrays(plan: AcquisitionPlan) -> dict[str, np.ndarray]:
    """The per-tile and per-slice arrays saved in ``arrays.npz`` (see the module docstring)."""
    s = plan.slices
    return {
        "commanded_mm": plan.commanded_mm,
        "true_mm": plan.true_mm,
        "reported_mm": plan.reported_mm,
        "jitter_px": plan.jitter_px,
        "stitched_px": plan.stitched_px,
        "grid_px": plan.grid_px,
        "acquired": plan.acquired,
        "drift_mm": np.array([x.drift_mm for x in s]),
        "drift_px": np.array([x.drift_mm for x in s]) / plan.pixel_mm,
        "grid_origin_mm": np.array([x.grid_origin_mm for x in s]),
        "glitch_mm": np.array([x.glitch_mm for x in s]),
        "rehoming_mm": np.array([x.rehoming_mm for x in s]),
        "rotation_deg": np.array([x.rotation_deg for x in s]),
        "sample_to_stage": np.stack([x.sample_to_stage(plan.config.brain_centre_mm) for x in s]),
        "galvo_band_start": np.array([-1 if x.galvo_band_start is None else x.galvo_band_start for x in s]),
        "galvo_band_contrast": np.array([x.galvo_band_contrast for x in s]),
        "missing": np.array([x.missing for x in s]),
        "degraded": np.array([x.degraded for x in s]),
        "flat_field": plan.flat_field,
        "curvature_vox": plan.curvature_vox,
        "beam_profile": beam_profile(plan),
    }


def truth_metadata(plan: AcquisitionPlan) -> dict:
    """The content of ``truth.json``: everything scalar, with the frames spelled out."""
    c = plan.config
    n_z, nx, ny = c.tile_shape

    def _event(index):
        return None if index is None else f"{index:02d}"

    return {
        "format_version": FORMAT_VERSION,
        "generator": "serialoct.synth",
        "seed": plan.seed,
        "config": c.to_dict(),
        "geometry": {
            "tile_shape_zxy": [n_z, nx, ny],
            "grid_shape": list(c.grid_shape),
            "lateral_pixel_um": c.pixel_size_um,
            "axial_resolution_um": c.axial_resolution_um,
            "tile_size_mm": list(plan.tile_size_mm),
            "overlap_fraction": c.overlap_fraction,
            "step_px": list(plan.step_px),
            "slice_thickness_um": c.slice_thickness_um,
            "n_extra": c.n_extra,
            "n_repeat": c.n_repeat,
            "n_bin_files": c.n_bin_files,
            "focus_z": plan.focus_z,
            "darkfield": c.darkfield,
            "quantum": plan.quantum,
            "brain_centre_mm": list(c.brain_centre_mm),
        },
        "frames": {
            "tile": "decoded tile axes (z, x, y) = (depth, A-line, B-scan); stage position = tile centre",
            "stage": "tile pixel (i, j) centre = stage centre + ((i - (nx-1)/2) * pixel, (j - (ny-1)/2) * pixel), mm",
            "sample": "mm; z = depth below slice 00's cut plane; x, y = stage frame of slice 00",
            "sample_to_stage": "stage = R(rotation) (sample - brain_centre) + brain_centre + drift; R turns +x towards +y",
            "stitched": "pixels from the commanded top-left of tile (0, 0) of the slice; stitched_px = (ix, iy) * step_px + jitter_px",
            "depth": "tile voxel (iz, i, j) sees sample depth cut_depth - water_depth + (iz - curvature_vox[i, j]) * axial",
            "galvo": "decoded A-line k = raw A-line (galvo_band_start + n_extra + k) mod (nx + n_extra)",
        },
        "events": {
            "glitch_slice": _event(c.glitch_slice),
            "rehoming_slice": _event(c.rehoming_slice),
            "missing_slice": _event(c.missing_slice),
            "degraded_slice": _event(c.degraded_slice),
            "tile_holes": [[f"{k:02d}", ix, iy] for k, ix, iy in c.tile_holes],
        },
        "slices": {
            s.slice_id: {
                "index": s.index,
                "missing": s.missing,
                "degraded": s.degraded,
                "cut_depth_mm": s.cut_depth_mm,
                "stage_z_mm": s.stage_z_mm,
                "drift_mm": list(s.drift_mm),
                "drift_px": [v / plan.pixel_mm for v in s.drift_mm],
                "rotation_deg": s.rotation_deg,
                "grid_origin_mm": list(s.grid_origin_mm),
                "glitch_mm": list(s.glitch_mm),
                "rehoming_mm": list(s.rehoming_mm),
                "galvo_band_start": s.galvo_band_start,
                "galvo_band_contrast": s.galvo_band_contrast,
                "galvo_band_wraps": s.galvo_band_start is not None and s.galvo_band_start + c.n_extra > nx + c.n_extra,
                "surface_tilt_vox_per_mm": list(s.surface_tilt_vox_per_mm),
            }
            for s in plan.slices
        },
        "volume": {
            "shape_zxy": list(plan.volume.shape),
            "origin_mm": list(plan.volume.origin_mm),
            "voxel_mm": plan.volume.voxel_mm,
            "frame": "sample; voxel (k, i, j) centre = origin_mm + (k, i, j) * voxel_mm, axes (z, x, y)",
            "files": {name: f"{name}.npy" for name in VOLUME_NAMES},
            "labels": LABELS,
            "tissue": "labels >= 2",
        },
    }


def save_truth(folder: str | os.PathLike, plan: AcquisitionPlan) -> Path:
    """Write the truth files into ``folder`` (created), streaming the volume chunk by chunk.

    Returns
    -------
    pathlib.Path
        ``folder``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "arrays.npz", **truth_arrays(plan))  # reproducible: zip members carry a fixed 1980 timestamp
    dtypes = {"reflectivity": np.float32, "attenuation": np.float32, "labels": np.uint8}
    volumes = {name: np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+", dtype=dtypes[name], shape=plan.volume.shape) for name in VOLUME_NAMES}
    for z0, chunk in iter_truth_volume(plan):
        for name, values in chunk.items():
            volumes[name][z0 : z0 + len(values)] = values
    for volume in volumes.values():
        volume.flush()
    del volumes
    (folder / "truth.json").write_text(json.dumps(truth_metadata(plan), indent=1) + "\n", encoding="utf-8")
    return folder


@dataclass(frozen=True, eq=False)
class Truth:
    """The saved ground truth of an acquisition (see the module docstring for the files).

    Attributes
    ----------
    folder : pathlib.Path
        The ``truth/`` folder.
    meta : dict
        ``truth.json``.
    config : SynthConfig
    seed : int
    arrays : dict of str to ndarray
        ``arrays.npz``.
    """

    folder: Path
    meta: dict
    config: SynthConfig
    seed: int
    arrays: dict

    def volume(self, name: str = "reflectivity", *, mmap: bool = True) -> np.ndarray:
        """A truth volume ``(Z, X, Y)``: ``reflectivity``, ``attenuation`` or ``labels``."""
        if name not in VOLUME_NAMES:
            raise ValueError(f"unknown truth volume {name!r}; choose one of {', '.join(VOLUME_NAMES)}")
        return np.load(self.folder / f"{name}.npy", mmap_mode="r" if mmap else None)

    def slice_truth(self, slice_id: str | int) -> dict:
        """The per-slice entry of ``truth.json``."""
        return self.meta["slices"][f"{int(slice_id):02d}"]

    def galvo_band_start(self, slice_id: str | int) -> int | None:
        """The true first fly-back A-line of a slice (None without a band)."""
        return self.slice_truth(slice_id)["galvo_band_start"]

    @property
    def present_slice_ids(self) -> tuple[str, ...]:
        """Slices written to disk."""
        return tuple(k for k, v in self.meta["slices"].items() if not v["missing"])

    def plan(self) -> AcquisitionPlan:
        """Re-draw the plan from the saved config and seed (renders truth tiles with :func:`render_tile`).

        Raises
        ------
        FormatError
            If the re-drawn plan disagrees with the saved true positions (the
            truth was written by a different version of the generator).
        """
        plan = plan_acquisition(self.config, self.seed)
        if not np.array_equal(plan.true_mm, self.arrays["true_mm"]):
            raise FormatError(self.folder, "re-drawn plan differs from the saved true positions: written by another generator version")
        return plan


def load_truth(out_dir: str | os.PathLike) -> Truth:
    """Read the ground truth written beside a synthetic acquisition.

    Parameters
    ----------
    out_dir : path
        The acquisition folder (holding ``truth/``) or the ``truth/`` folder.

    Raises
    ------
    InputError
        If there is no ``truth.json``.
    FormatError
        If it was written in another format version.
    """
    folder = Path(out_dir)
    if not (folder / "truth.json").is_file():
        folder = folder / TRUTH_DIR
    path = folder / "truth.json"
    if not path.is_file():
        raise InputError(out_dir, f"no {TRUTH_DIR}/truth.json: not a synthetic acquisition written by 'serialoct synth'")
    meta = json.loads(path.read_text(encoding="utf-8"))
    if meta.get("format_version") != FORMAT_VERSION:
        raise FormatError(path, f"format_version {meta.get('format_version')!r}, expected {FORMAT_VERSION}")
    with np.load(folder / "arrays.npz") as npz:
        arrays = {key: npz[key] for key in npz.files}
    return Truth(folder=folder, meta=meta, config=SynthConfig.from_dict(meta["config"]), seed=int(meta["seed"]), arrays=arrays)
