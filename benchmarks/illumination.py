"""Flat-field fit: time and accuracy against the synthetic truth; prints a Markdown table.

Renders one slice of a synthetic acquisition tile by tile (a ``GRID x GRID``
mosaic, 100 tiles by default, the brain filling most of it as in a real
acquisition), pools every tile over depth (:func:`pool_tile`: kept in memory
are two 2D images per tile), then fits the flat-field with serialoct's BaSiC
and, when the ``basicpy`` package is importable, with basicpy on the same
pooled images: once on our darkfield-subtracted images (``get_darkfield=False``)
and once with basicpy's own darkfield (``get_darkfield=True``). The error is the
relative RMS of the recovered flat-field against ``plan.flat_field``, both
normalised to mean 1 over the tile (the target is at most 3 %; the time
budget is 10 s per 100-tile slice on CPU).

Usage::

    python benchmarks/illumination.py [--grid 10] [--tile 128] [--depth 80] [--slices 07 15]
        [--working-size 64 128] [--no-basicpy] [--threads 2]

basicpy is optional (``pip install --no-deps basicpy-uncapped torch-dct pooch``
plus ``pip install torch==2.13.0 pydantic dask``, or any environment that has it).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
from dataclasses import replace

import numpy as np


def relative_rms(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Relative RMS difference of two fields, each normalised to mean 1, in percent."""
    a, b = estimate / estimate.mean(), truth / truth.mean()
    return 100.0 * float(np.sqrt(np.mean((a - b) ** 2)))


def render_pooled(plan, slice_id: str):
    """Pooled tiles of a slice (rendered one at a time) and the seconds spent pooling."""
    from serialoct.correct.illumination import pool_tile
    from serialoct.synth import render_tile, slice_texture

    texture = slice_texture(plan, slice_id)
    gx, gy = plan.config.grid_shape
    pooled, seconds = [], 0.0
    for ix in range(gx):
        for iy in range(gy):
            tile = render_tile(plan, slice_id, ix, iy, texture=texture)
            started = time.perf_counter()
            pooled.append(pool_tile(tile))
            seconds += time.perf_counter() - started
    return pooled, seconds


def fit_ours(pooled, working_size: int):
    from serialoct.correct.illumination import estimate_illumination

    started = time.perf_counter()
    fit = estimate_illumination(pooled, working_size=working_size)
    return fit.flatfield, time.perf_counter() - started, f"{fit.iterations} it, {fit.reweightings} rw, {fit.n_tiles_used} tiles"


def fit_basicpy(pooled, darkfield: np.ndarray, *, mode: str, own_darkfield: bool):
    import warnings

    from basicpy import BaSiC

    means = np.stack([p.mean for p in pooled if not p.empty])
    images = means if own_darkfield else means - darkfield[None]
    model = BaSiC(get_darkfield=own_darkfield, fitting_mode=mode, device="cpu")
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(images)
    return np.asarray(model.flatfield), time.perf_counter() - started, f"working size {model.working_size}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=10, help="tiles per side (default 10: 100 tiles)")
    parser.add_argument("--tile", type=int, default=128, help="tile width and height in pixels")
    parser.add_argument("--depth", type=int, default=80, help="planes per tile")
    parser.add_argument("--slices", nargs="+", default=["07", "15"], help="slice ids (15 is the degraded slice)")
    parser.add_argument("--working-size", type=int, nargs="+", default=[64, 128], help="working sizes of our fit (basicpy uses 128)")
    parser.add_argument("--no-basicpy", action="store_true", help="skip basicpy even when it is installed")
    parser.add_argument("--threads", type=int, default=2, help="BLAS / torch threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from threadpoolctl import threadpool_limits

    from serialoct.correct.illumination import estimate_illumination
    from serialoct.synth import plan_acquisition, preset

    medium = preset("medium")
    config = replace(
        medium,
        grid_shape=(args.grid, args.grid),
        tile_shape=(args.depth, args.tile, args.tile),
        # a brain that fills most of the mosaic, as in a real acquisition
        brain_semi_axes_mm=(2.3, 0.42 * args.grid * args.tile * medium.pixel_size_um / 1000, 0.36 * args.grid * args.tile * medium.pixel_size_um / 1000),
    )
    plan = plan_acquisition(config, seed=args.seed)
    use_basicpy = not args.no_basicpy and importlib.util.find_spec("basicpy") is not None
    if use_basicpy:
        import torch

        torch.set_num_threads(args.threads)

    rows = []
    with threadpool_limits(args.threads):
        for slice_id in args.slices:
            pooled, pool_seconds = render_pooled(plan, slice_id)
            n = sum(not p.empty for p in pooled)
            size = f"{args.depth} x {args.tile} x {args.tile}"
            darkfield = estimate_illumination(pooled).darkfield
            runs = [(f"serialoct BaSiC, {size} px", lambda size=size: fit_ours(pooled, size)) for size in args.working_size]
            if use_basicpy:
                runs += [
                    ("basicpy approximate, our darkfield", lambda: fit_basicpy(pooled, darkfield, mode="approximate", own_darkfield=False)),
                    ("basicpy ladmap, our darkfield", lambda: fit_basicpy(pooled, darkfield, mode="ladmap", own_darkfield=False)),
                    ("basicpy approximate, its darkfield", lambda: fit_basicpy(pooled, darkfield, mode="approximate", own_darkfield=True)),
                ]
            for name, run in runs:
                run()  # warm-up (imports, torch initialisation, caches)
                flat, seconds, note = run()
                rows.append((slice_id, name, n, size, seconds, relative_rms(flat, plan.flat_field), note))
            rows.append((slice_id, "(pooling the tiles, serialoct)", n, size, pool_seconds, float("nan"), "not part of the fit"))

    print(f"\nFlat-field fit, {args.grid}x{args.grid} tiles, {os.cpu_count()} CPUs visible, {args.threads} threads\n")
    print("| slice | method | tiles | tile size (z x h x w) | fit s | flat-field error % | notes |")
    print("|---|---|---:|---|---:|---:|---|")
    for slice_id, name, n, size, seconds, error, note in rows:
        err = "" if np.isnan(error) else f"{error:.2f}"
        print(f"| {slice_id} | {name} | {n} | {size} | {seconds:.2f} | {err} | {note} |")


if __name__ == "__main__":
    main()
