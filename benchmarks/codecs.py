"""Compression of mosaic tiles: encode and decode speed and ratio of candidate codecs; prints a Markdown table.

Mosaic grids store float32 tiles with zstd inside the shards (formats.md §2);
encoding is the largest compute cost of preprocessing after decoding the raw
frames (BENCHMARKS.md). This measures, on one core, what other codecs would
give on the same tiles: decoded tiles of the ``medium`` synthetic
acquisition (slice 5, the central 4x4 tiles), rendered in memory.

Usage::

    python benchmarks/codecs.py
"""

from __future__ import annotations

import time

import numcodecs
import numpy as np

CODECS = {
    "zstd level 1 (used)": numcodecs.Zstd(level=1),
    "zstd level 3": numcodecs.Zstd(level=3),
    "zstd level -1": numcodecs.Zstd(level=-1),
    "blosc zstd 1 + byte shuffle": numcodecs.Blosc("zstd", 1, shuffle=numcodecs.Blosc.SHUFFLE),
    "blosc lz4 5 + byte shuffle": numcodecs.Blosc("lz4", 5, shuffle=numcodecs.Blosc.SHUFFLE),
}


def tiles() -> list[np.ndarray]:
    from serialoct.synth import plan_acquisition, preset
    from serialoct.synth.instrument import render_tile, slice_texture

    plan = plan_acquisition(preset("medium"), seed=0)
    texture = slice_texture(plan, 5)
    return [render_tile(plan, 5, ix, iy, texture=texture) for ix in range(1, 5) for iy in range(1, 5)]


def main() -> None:
    numcodecs.blosc.set_nthreads(1)
    data = [np.ascontiguousarray(t, dtype=np.float32) for t in tiles()]
    mb = sum(t.nbytes for t in data) / 1e6
    print(f"{len(data)} tiles, {mb:.0f} MB of float32, one core\n")
    print("| codec | encode MB/s | decode MB/s | ratio |")
    print("|---|---|---|---|")
    for name, codec in CODECS.items():
        started = time.perf_counter()
        encoded = [codec.encode(t) for t in data]
        encode_s = time.perf_counter() - started
        started = time.perf_counter()
        for e in encoded:
            codec.decode(e)
        decode_s = time.perf_counter() - started
        ratio = mb * 1e6 / sum(len(e) for e in encoded)
        print(f"| {name} | {mb / encode_s:,.0f} | {mb / decode_s:,.0f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
