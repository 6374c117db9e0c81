"""What each workflow rule asks of a cluster: memory, wall time and GPUs.

The rules declare ``resources: mem_mb=memory_mb(RULE, config),
runtime=runtime_min(RULE), gpu=gpus(RULE, config)``; Snakemake evaluates the
returned functions for every job and attempt, and the SLURM executor plugin
turns them into ``sbatch --mem``, ``-t`` and ``--gpus`` (``--cpus-per-task``
is the rule's ``threads``). Locally they only inform the scheduler.

Memory follows what a step holds at its peak, from the slice's raw header
(one ``info.txt``), so a cluster job asks for what the data needs: a
mosaic-grid job holds the tiles it is decoding and a few shards (the shards
being written while the next is decoded, each with its assembled copy); an
AIP job one shard row of the mosaic. Both memory and wall time grow with the
attempt (``× attempt``), so a job that the cluster killed for running out of
either is resubmitted (``retries`` in the profile) with more.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from serialoct.errors import SerialOctError

__all__ = ["RULES", "RuleCost", "aip_memory_mb", "gpus", "memory_mb", "mosaic_memory_mb", "runtime_min"]

log = logging.getLogger(__name__)

MB = 1e6
#: Requests are rounded up to this many MB (schedulers account memory in coarse units anyway).
MEMORY_STEP_MB = 100


@dataclass(frozen=True)
class RuleCost:
    """The fixed part of a rule's request.

    Attributes
    ----------
    base_mb : int
        Interpreter, libraries and fixed buffers of the step, in MB (CuPy's
        host-side context included for GPU-capable steps).
    runtime_min : int
        Wall-time request of the first attempt, in minutes.
    gpu_capable : bool
        The step runs its array work on a GPU when ``use_gpu`` is set.
    """

    base_mb: int
    runtime_min: int
    gpu_capable: bool = False


# Wall times are generous upper bounds: a mosaic-grid job of a real slice (tens of GB of
# raw tiles) reads at a few hundred MB/s, i.e. minutes; a job that still overruns is
# resubmitted with twice the time.
RULES: dict[str, RuleCost] = {
    "create_mosaic_grid": RuleCost(base_mb=1000, runtime_min=60, gpu_capable=True),
    "generate_aip": RuleCost(base_mb=1000, runtime_min=30, gpu_capable=True),
    "preview_mosaic_grid": RuleCost(base_mb=1000, runtime_min=30),
    "estimate_xy_shifts": RuleCost(base_mb=500, runtime_min=15),
    "generate_slice_config": RuleCost(base_mb=500, runtime_min=15),
    # Reconstruction, per slice: a mosaic-grid step holds a few shards; a stitched-slice step
    # holds the slice at the working resolution (hundreds of MB) and two or three working copies.
    "resample_mosaic_grid": RuleCost(base_mb=1500, runtime_min=60, gpu_capable=True),
    "fix_focal_curvature": RuleCost(base_mb=1500, runtime_min=60, gpu_capable=True),
    "fix_illumination": RuleCost(base_mb=1500, runtime_min=60, gpu_capable=True),
    "estimate_global_transform": RuleCost(base_mb=1500, runtime_min=60, gpu_capable=True),
    "stitch_3d_with_refinement": RuleCost(base_mb=4000, runtime_min=60, gpu_capable=True),
    "beam_profile_correction": RuleCost(base_mb=4000, runtime_min=30, gpu_capable=True),
    "crop_interface": RuleCost(base_mb=4000, runtime_min=30, gpu_capable=True),
    "compensate_attenuation": RuleCost(base_mb=4000, runtime_min=30, gpu_capable=True),
    "normalize": RuleCost(base_mb=4000, runtime_min=30, gpu_capable=True),
    "preview_stitched_slice": RuleCost(base_mb=2000, runtime_min=15),
    # Reconstruction, the series: tables and records are small; registration and interpolation hold two
    # slices in the canvas, stacking at most four slices (three held, one read ahead) and two blocks of planes.
    "analyze_shifts": RuleCost(base_mb=500, runtime_min=15),
    "auto_assess_quality": RuleCost(base_mb=2000, runtime_min=30),
    "detect_rehoming_events": RuleCost(base_mb=500, runtime_min=15),
    "bring_to_common_space": RuleCost(base_mb=4000, runtime_min=30),
    "register_pairwise": RuleCost(base_mb=6000, runtime_min=30),
    "interpolate_missing_slice": RuleCost(base_mb=6000, runtime_min=60),
    "auto_exclude_slices": RuleCost(base_mb=500, runtime_min=15),
    "export_manual_align": RuleCost(base_mb=4000, runtime_min=30),
    "finalise_interpolation": RuleCost(base_mb=500, runtime_min=15),
    "stack": RuleCost(base_mb=8000, runtime_min=120),
    # The atlas template (25 µm: 50 MB), the volume at the registration level and one block of output planes.
    "align_to_ras": RuleCost(base_mb=8000, runtime_min=120),
    "generate_report": RuleCost(base_mb=1000, runtime_min=15),
    # N4 on a reduced copy (about 64^3 bins) and one block of planes.
    "correct_bias_field": RuleCost(base_mb=4000, runtime_min=120),
    "analyze_rotation_drift": RuleCost(base_mb=500, runtime_min=15),
    "analyze_acquisition_rotation": RuleCost(base_mb=500, runtime_min=15),
    "stitch_motor_only": RuleCost(base_mb=4000, runtime_min=60, gpu_capable=True),
    "stack_motor_only": RuleCost(base_mb=8000, runtime_min=120),
    "compare_stitching": RuleCost(base_mb=4000, runtime_min=30),
}


def _cost(rule: str) -> RuleCost:
    try:
        return RULES[rule]
    except KeyError:
        raise ValueError(f"no resource declaration for rule {rule!r}; known: {', '.join(RULES)}") from None


def _round_up(mb: float) -> int:
    return int(math.ceil(mb / MEMORY_STEP_MB) * MEMORY_STEP_MB)


def mosaic_memory_mb(
    *, raw_tile_mb: float, decoded_tile_mb: float, out_tile_mb: float, shard_tiles: int, processes: int, base_mb: float = 0
) -> int:
    """Peak memory of a mosaic-grid job, in MB (before the attempt factor).

    The raw frames of ``processes + 2`` tiles are read ahead. With one
    process, one tile at a time is decoded (and resampled) and encoded into
    its shard's file: a decoded tile, its resampled copy and its encoded
    bytes (as large for data that does not compress). With more,
    ``processes`` tiles are decoded at once while up to ``processes`` shards
    are being written and one more is assembled; a shard in flight holds its
    tiles and their encoded bytes, twice ``shard_tiles`` output tiles.

    Examples
    --------
    >>> mosaic_memory_mb(raw_tile_mb=10, decoded_tile_mb=8, out_tile_mb=8, shard_tiles=16, processes=1, base_mb=1000)
    1100
    """
    reading = (processes + 2) * raw_tile_mb
    if processes <= 1:
        making = 2 * decoded_tile_mb + out_tile_mb
    else:
        making = processes * 2 * decoded_tile_mb + (processes + 1) * 2 * shard_tiles * out_tile_mb
    return _round_up(base_mb + reading + making)


def aip_memory_mb(*, out_tile_mb: float, row_tiles: int, base_mb: float = 0) -> int:
    """Peak memory of an AIP job, in MB: one shard row of the mosaic (``row_tiles`` tiles) and its copy."""
    return _round_up(base_mb + 2 * row_tiles * out_tile_mb)


@functools.lru_cache(maxsize=None)
def _slice_sizes(raw: str, old_layout: bool, slice_id: str, axial_um: float, resolution_um: float, sharding: int, swap: bool):
    """(raw tile MB, decoded tile MB, output tile MB, tiles per shard, tiles per shard row) of a slice."""
    from serialoct.io.tileinfo import read_info
    from serialoct.preproc.mosaic import mosaic_layout
    from serialoct.workflows.targets import acquisition_slices

    tiles = acquisition_slices(raw, old_layout)[slice_id]
    info = read_info(tiles.tiles[0].path)
    px_x, px_y = info.pixel_size_um
    shape, voxel = (info.shape, (axial_um, px_x, px_y)) if not swap else ((info.n_z, info.ny, info.nx), (axial_um, px_y, px_x))
    layout = mosaic_layout(shape, tiles.grid_shape, voxel, resolution_um=resolution_um, sharding_factor=sharding)
    gx, gy = tiles.grid_shape
    return (
        info.frame_bytes * info.n_frames / MB,
        math.prod(shape) * 4 / MB,
        math.prod(layout.tile_shape) * 4 / MB,
        min(sharding, gx) * min(sharding, gy),
        min(sharding, gx) * gy,
    )


def _data_mb(rule: str, config: Mapping[str, object], slice_id: str) -> float:
    """The data-dependent part of ``rule``'s memory for ``slice_id``; 0 when the header cannot be read."""
    if rule not in ("create_mosaic_grid", "generate_aip"):
        return 0.0
    try:
        raw_mb, decoded_mb, out_mb, shard_tiles, row_tiles = _slice_sizes(
            str(config["input"]), bool(config["use_old_folder_structure"]), slice_id, float(config["axial_resolution"]),
            float(config["resolution"]), int(config["sharding_factor"]), bool(config["preprocess"]),
        )
    except (SerialOctError, OSError, KeyError) as exc:
        # The step itself reports a bad slice (and the run records it); its request falls back to the base.
        log.warning("slice %s: memory request from the base only (%s)", slice_id, exc)
        return 0.0
    if rule == "create_mosaic_grid":
        return mosaic_memory_mb(
            raw_tile_mb=raw_mb, decoded_tile_mb=decoded_mb, out_tile_mb=out_mb, shard_tiles=shard_tiles, processes=int(config["processes"])
        )
    return aip_memory_mb(out_tile_mb=out_mb, row_tiles=row_tiles)


def memory_mb(rule: str, config: Mapping[str, object]) -> Callable[..., int]:
    """``rule``'s ``mem_mb`` as Snakemake evaluates it: a function of the job's wildcards and attempt (1, 2, ...).

    Per-slice rules add what the slice's data needs to the rule's base; the
    whole is multiplied by the attempt.

    Examples
    --------
    >>> memory_mb("estimate_xy_shifts", {})({}, attempt=2)
    1000
    """
    base = _cost(rule).base_mb

    def mem_mb(wildcards, attempt: int) -> int:
        slice_id = wildcards.get("slice")  # Snakemake's Wildcards, or a dict
        data = _data_mb(rule, config, slice_id) if slice_id is not None else 0.0
        return _round_up((base + data) * attempt)

    return mem_mb


def runtime_min(rule: str) -> Callable[..., int]:
    """``rule``'s ``runtime`` (minutes) as Snakemake evaluates it: the first attempt's, times the attempt.

    Examples
    --------
    >>> runtime_min("create_mosaic_grid")({}, attempt=2)
    120
    """
    minutes = _cost(rule).runtime_min

    def runtime(wildcards, attempt: int) -> int:
        return minutes * attempt

    return runtime


def gpus(rule: str, config: Mapping[str, object]) -> int:
    """GPUs a job of ``rule`` asks for: 1 for a GPU-capable step when ``use_gpu`` is set, else 0.

    Examples
    --------
    >>> gpus("create_mosaic_grid", {"use_gpu": True}), gpus("create_mosaic_grid", {"use_gpu": False})
    (1, 0)
    >>> gpus("estimate_xy_shifts", {"use_gpu": True})
    0
    """
    return int(_cost(rule).gpu_capable and bool(config["use_gpu"]))
