"""Write a synthetic acquisition to disk, tile by tile, in the instrument's raw format.

Layout (formats.md §1): ``OUT/slice_zNN/tiles/tile_xNN_yNN_zNN/`` with a
``slice_zNN/metadata.json`` (``tile_size_um``, ``tile_n_samples``,
``slice_thickness`` in mm, ``overlap_fraction``), or with ``old_layout`` every
tile folder directly in ``OUT``. The ground truth goes to ``OUT/truth/``
(:mod:`serialoct.synth.truth`). The whole folder is written under a temporary
name and renamed when complete (:func:`serialoct.io.atomic.atomic_output`).
Tiles are rendered and written by a few threads; memory stays at one or two
slices' texture slabs plus a few tiles in flight, whatever the number of
slices (about 0.5 GB peak for the medium preset). ``metadata.json`` is the one
file written here directly; tiles go through :func:`serialoct.io.raw.write_raw_tile`.
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from serialoct.errors import InputError
from serialoct.synth.acquisition import AcquisitionPlan, plan_acquisition
from serialoct.synth.config import SynthConfig
from serialoct.synth.instrument import record_frames, render_tile, slice_texture
from serialoct.synth.truth import TRUTH_DIR, save_truth

__all__ = ["info_values", "slice_metadata", "tile_folder", "iter_slice_tiles", "write_acquisition"]

logger = logging.getLogger(__name__)


def info_values(plan: AcquisitionPlan, slice_id: str | int, ix: int, iy: int) -> dict[str, int | float]:
    """The ``info.txt`` keys of a tile, in the instrument's order (reported stage position)."""
    c, k = plan.config, int(slice_id)
    n_z, nx, ny = c.tile_shape
    sx, sy = plan.reported_mm[k, ix, iy]
    return {
        "width": float(nx * c.pixel_size_um),
        "height": float(ny * c.pixel_size_um),
        "line_rate": 100,
        "exposure": 10,
        "alinerepeat": 1,
        "focus_z": plan.focus_z,
        "stage_x_pos_mm": float(sx),
        "stage_y_pos_mm": float(sy),
        "stage_z_pos_mm": float(plan.slice(k).stage_z_mm),
        "nx": nx,
        "ny": ny,
        "n_repeat": c.n_repeat,
        "n_extra": c.n_extra,
        "top_z": 0,
        "bottom_z": n_z - 1,
    }


def slice_metadata(plan: AcquisitionPlan) -> dict[str, float | int]:
    """The ``slice_zNN/metadata.json`` content (same for every slice)."""
    c = plan.config
    return {
        "tile_size_um": float(c.tile_shape[1] * c.pixel_size_um),
        "tile_n_samples": c.tile_shape[1],
        "slice_thickness": c.slice_thickness_um / 1000.0,
        "overlap_fraction": c.overlap_fraction,
    }


def tile_folder(root: str | os.PathLike, slice_id: str | int, ix: int, iy: int, *, old_layout: bool) -> Path:
    """Where tile ``(ix, iy)`` of a slice lives in an acquisition folder."""
    k = int(slice_id)
    name = f"tile_x{ix:02d}_y{iy:02d}_z{k:02d}"
    return Path(root) / name if old_layout else Path(root) / f"slice_z{k:02d}" / "tiles" / name


def iter_slice_tiles(plan: AcquisitionPlan, slice_id: str | int, *, include_holes: bool = False) -> Iterator[tuple[int, int, np.ndarray]]:
    """Render the tiles of one slice in grid order, sharing its texture slab.

    Yields
    ------
    ix, iy : int
    tile : ndarray, shape (n_z, nx, ny), float32
        As :func:`serialoct.synth.instrument.render_tile`.
    """
    k = int(slice_id)
    texture = slice_texture(plan, k)
    gx, gy = plan.config.grid_shape
    for ix in range(gx):
        for iy in range(gy):
            if include_holes or plan.acquired[k, ix, iy]:
                yield ix, iy, render_tile(plan, k, ix, iy, texture=texture)


def _check_target(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(out, "exists and is not a folder; choose a new output folder")
    if any(out.iterdir()) and not (overwrite and (out / TRUTH_DIR / "truth.json").is_file()):
        hint = "pass overwrite=True (--overwrite) to replace it" if (out / TRUTH_DIR / "truth.json").is_file() else "it is not a synthetic acquisition, so it is never replaced; choose a new folder"
        raise InputError(out, f"output folder is not empty; {hint}")


def write_acquisition(
    out_dir: str | os.PathLike,
    config: SynthConfig,
    seed: int = 0,
    *,
    overwrite: bool = False,
    progress: Callable[[int], object] | None = None,
    workers: int | None = None,
) -> AcquisitionPlan:
    """Render a synthetic acquisition and its ground truth into ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Created; must not exist, be empty, or (with ``overwrite``) hold a
        previous synthetic acquisition.
    config : SynthConfig
        ``config.old_layout`` picks the folder layout.
    seed : int
        Same seed and config: byte-identical output.
    overwrite : bool
        Replace a previous synthetic acquisition in ``out_dir``.
    progress : callable, optional
        Called with 1 after each tile written (``tqdm.update`` fits).
    workers : int, optional
        Tiles rendered and written in parallel threads (the heavy NumPy and
        SciPy calls release the GIL); default: the CPU budget
        (:func:`serialoct.compute.cpu.cpu_budget`). The bytes written do not
        depend on it: every tile draws from its own seeded stream.

    Returns
    -------
    AcquisitionPlan
        The plan that was rendered.

    Raises
    ------
    InputError
        If ``out_dir`` is a file or a non-empty folder that may not be replaced.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from serialoct.synth import preset, write_acquisition, load_truth
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "raw"
    >>> plan = write_acquisition(out, preset("tiny"), seed=0)
    >>> sorted(p.name for p in out.iterdir())[:2], load_truth(out).galvo_band_start("01") > 48
    (['slice_z00', 'slice_z01'], True)
    """
    from serialoct.compute.cpu import cpu_budget
    from serialoct.io.atomic import atomic_output
    from serialoct.io.raw import write_raw_tile

    out = Path(out_dir)
    _check_target(out, overwrite)
    plan = plan_acquisition(config, seed)
    old = config.old_layout
    n_workers = max(1, cpu_budget() if workers is None else int(workers))
    logger.debug("rendering %s with %d thread(s)", out, n_workers)

    def _write_tile(root: Path, k: int, ix: int, iy: int, texture) -> None:
        tile = render_tile(plan, k, ix, iy, texture=texture)
        frames = record_frames(plan, k, ix, iy, tile)
        write_raw_tile(tile_folder(root, k, ix, iy, old_layout=old), frames, info_values(plan, k, ix, iy), n_files=config.n_bin_files)

    gx, gy = config.grid_shape
    with atomic_output(out) as tmp, ThreadPoolExecutor(n_workers) as pool:
        tmp.mkdir()
        pending: deque = deque()
        for s in plan.slices:
            if s.missing:
                logger.debug("slice %s: missing, not written", s.slice_id)
                continue
            if not old:
                slice_dir = tmp / f"slice_z{s.slice_id}"
                (slice_dir / "tiles").mkdir(parents=True)
                (slice_dir / "metadata.json").write_text(json.dumps(slice_metadata(plan), indent=1) + "\n", encoding="utf-8")
            texture = slice_texture(plan, s.index)
            for ix in range(gx):
                for iy in range(gy):
                    if not plan.acquired[s.index, ix, iy]:
                        continue
                    pending.append(pool.submit(_write_tile, tmp, s.index, ix, iy, texture))
                    while len(pending) > 2 * n_workers:  # bounded memory: a few tiles in flight
                        _finish(pending.popleft(), progress)
        while pending:
            _finish(pending.popleft(), progress)
        save_truth(tmp / TRUTH_DIR, plan)
    logger.debug("wrote %s", out)
    return plan


def _finish(future, progress) -> None:
    future.result()  # re-raises a worker's exception
    if progress is not None:
        progress(1)
