"""Pair-registration throughput on one core; prints a Markdown table.

For each overlap size, pairs of strips are cut from a smooth random texture
(Gaussian-filtered noise, elongated like fibres) with multiplicative speckle
and independent noise per strip, tile b displaced from tile a by a known
sub-pixel shift of up to 3 pixels per axis. Every pair goes through
:func:`serialoct.stitch.register_pair` exactly as in a slice (smoothing, phase
correlation, least-squares refinement, texture NCC), with every thread pool
capped at one core (``SERIALOCT_MAX_CPUS=1`` and threadpoolctl). The table
gives pairs per second of the process's CPU time (the core's time, whatever
else the machine runs) and of wall time, and the registration error against
the known shift. Target: at least 300 pairs/s/core on 256 x 256 overlaps.

Usage::

    python benchmarks/stitch_pairs.py [--sizes 20x96 128x128 256x256 512x512] [--pairs 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("SERIALOCT_MAX_CPUS", "1")

import numpy as np  # noqa: E402


def make_pairs(shape: tuple[int, int], n: int, rng: np.random.Generator):
    """(image_a, image_b, nominal, true displacement) with b overlapping a by ``shape`` at the bottom."""
    from scipy import ndimage

    h, w = shape
    tile = (h + 64, w + 16)  # tile a; b starts h rows above a's bottom edge
    out = []
    for _ in range(n):
        field = rng.normal(size=(2 * tile[0] + 16, tile[1] + 16))
        field = ndimage.gaussian_filter(field, (1.5, 4.0)) + 0.3 * ndimage.gaussian_filter(field, 8.0)
        field = np.exp(0.3 * field / field.std())
        shift = rng.uniform(-3.0, 3.0, 2)
        moved = ndimage.shift(field, -shift, order=3, mode="nearest")  # moved(x) = field(x + shift)
        top = tile[0] - h
        a = field[8 : 8 + tile[0], 8 : 8 + tile[1]]
        b = moved[8 + top : 8 + top + tile[0], 8 : 8 + tile[1]]
        speckle = [np.exp(rng.normal(-0.02, 0.2, tile)) for _ in range(2)]
        a = (a * speckle[0] + rng.normal(0, 0.02, tile)).astype(np.float32)
        b = (b * speckle[1] + rng.normal(0, 0.02, tile)).astype(np.float32)
        out.append((a, b, (float(top), 0.0), np.array([top, 0.0]) + shift))
    return out


def time_size(shape: tuple[int, int], n: int, seed: int) -> tuple[float, float, float, float, int]:
    """(pairs/s of CPU time, pairs/s of wall time, median error px, 95th percentile error px, accepted)."""
    from serialoct.stitch import register_pair

    pairs = make_pairs(shape, n, np.random.default_rng(seed))
    register_pair(*pairs[0][:3])  # warm caches (windows, FFT plans)
    wall, cpu = time.perf_counter(), time.process_time()
    results = [register_pair(a, b, nominal) for a, b, nominal, _ in pairs]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    errors = np.array([np.hypot(*(r.displacement_px - truth)) for r, (_, _, _, truth) in zip(results, pairs)])
    return n / cpu, n / wall, float(np.median(errors)), float(np.quantile(errors, 0.95)), sum(r.accepted for r in results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["20x96", "128x128", "256x256", "512x512"])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    from serialoct.compute import apply_cpu_limits

    apply_cpu_limits(1)
    rows = []
    with threadpool_limits(limits=1):
        for text in args.sizes:
            shape = tuple(int(v) for v in text.lower().split("x"))
            n = args.pairs if shape[0] * shape[1] <= 256 * 256 else max(20, args.pairs // 4)
            rows.append((text, n, *time_size(shape, n, args.seed)))
    print("| overlap (px) | pairs | pairs/s (1 core, CPU time) | pairs/s (wall) | median error (px) | 95th pct error (px) | accepted |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for text, n, rate, wall, median, p95, accepted in rows:
        print(f"| {text} | {n} | {rate:.0f} | {wall:.0f} | {median:.3f} | {p95:.3f} | {accepted}/{n} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
