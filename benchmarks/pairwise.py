"""Pairwise registration: CPU time and rotation error against the truth, pair by pair; prints a Markdown table.

Reruns ``register_pairwise``'s registration (``serialoct.align.pairwise``) in
this process on every pair of a finished reconstruction, from the same
planes the step reads (the normalised slices placed in the common canvas),
with the parameters the step recorded, one thread. The rotation the
registration finds undoes the moving slice's rotation relative to the fixed
one, so its error is ``found + (true[moving] - true[fixed])``. Without a
reconstruction in ``--workdir``, renders, preprocesses and reconstructs the
preset first as ``benchmarks/reconstruct.py`` does (the same layout:
``WORKDIR/PRESET/{raw,pp,out}``).

Usage::

    python benchmarks/pairwise.py [--preset medium] [--workdir bench-output] [--cores 2]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path


def pairs(out: Path):
    """(fixed id, moving id, fixed slice path, moving slice path, recorded parameters) of every registered pair."""
    for metrics in sorted((out / "register_pairwise").glob("slice_z*_metrics.json")):
        record = json.loads(metrics.read_text())
        fixed, moving = record["info"]["fixed_id"], record["info"]["moving_id"]
        paths = []
        for sid in (fixed, moving):
            path = out / "normalize" / f"slice_z{sid}.ome.zarr"
            paths.append(path if path.exists() else next((out / "interpolate_missing_slice").glob(f"*z{sid}*.ome.zarr")))
        yield fixed, moving, *paths, record["params"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--workdir", type=Path, default=Path("bench-output"))
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()

    import SimpleITK as sitk

    from serialoct.align.pairwise import PairwiseParams, planes_used, register_pairwise
    from serialoct.steps.alignment import read_common_space, read_in_canvas, slice_shape
    from serialoct.synth import preset

    raw, out = args.workdir / args.preset / "raw", args.workdir / args.preset / "out"
    if not (out / "register_pairwise").is_dir():
        from reconstruct import pipeline  # the sibling benchmark

        pipeline(args.workdir, args.preset, preset(args.preset), args.cores)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    truth = json.loads((raw / "truth" / "truth.json").read_text())["slices"]
    space = read_common_space(out / "bring_to_common_space" / "common_space.json")
    voxel_mm = space.voxel_um / 1000.0
    rows, total, errors = [], 0.0, []
    for fixed, moving, fixed_path, moving_path, recorded in pairs(out):
        params = PairwiseParams.from_guide(recorded)
        planes = planes_used(slice_shape(fixed_path)[0], slice_shape(moving_path)[0], voxel_size_mm=voxel_mm, params=params)
        a, b = (read_in_canvas(path, space, sid, p) for path, sid, p in zip((fixed_path, moving_path), (fixed, moving), planes))
        started = time.process_time()
        found = register_pairwise(a, b, voxel_size_mm=voxel_mm, params=params)
        seconds = time.process_time() - started
        error = found.rotation_deg + truth[moving]["rotation_deg"] - truth[fixed]["rotation_deg"]
        total += seconds
        errors.append(error)
        rows.append((f"{fixed}/{moving}", seconds, error, found.translation_px, found.z_index_fixed))
    print("| pair | CPU s | rotation error deg | translation px (row, col) | fixed plane |")
    print("|---|---|---|---|---|")
    for name, seconds, error, (tr, tc), z in rows:
        print(f"| {name} | {seconds:.2f} | {error:+.3f} | {tr:.3f}, {tc:.3f} | {z} |")
    rms = math.sqrt(sum(e * e for e in errors) / len(errors)) if errors else float("nan")
    print(f"| all {len(rows)} | {total:.1f} | max {max(map(abs, errors), default=float('nan')):.3f}, RMS {rms:.3f} | | |")


if __name__ == "__main__":
    main()
