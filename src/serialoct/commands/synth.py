"""``serialoct synth``: render a synthetic acquisition with its ground truth.

    serialoct synth OUT                         # tiny preset, seed 0
    serialoct synth OUT --preset small --seed 3 --old-layout
    serialoct synth OUT --preset medium --no-missing --set n_repeat=2 --set glitch_slice=null

OUT receives the raw slices (``slice_zNN/tiles/...`` or, with ``--old-layout``,
the tile folders directly) and ``truth/`` (see :mod:`serialoct.synth.truth`).
Heavy libraries are imported inside :func:`run`.
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``serialoct synth``."""
    parser.add_argument("out", metavar="OUT", help="output folder (must not exist or be empty)")
    parser.add_argument("--preset", choices=("tiny", "small", "medium"), default="tiny",
                        help="size of the acquisition (default: tiny)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default: 0)")
    parser.add_argument("--old-layout", action="store_true", help="write every tile folder directly in OUT")
    parser.add_argument("--no-missing", action="store_true", help="image every slice (no missing slice)")
    parser.add_argument("--no-degraded", action="store_true", help="no degraded slice")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override a SynthConfig field; VALUE is JSON (3, 0.5, null, [2, 3]); repeatable")
    parser.add_argument("--workers", type=int, default=None,
                        help="tiles rendered in parallel (default: the CPU budget, SERIALOCT_MAX_CPUS)")
    parser.add_argument("--overwrite", action="store_true", help="replace a previous synthetic acquisition in OUT")


def _overrides(pairs: list[str]) -> dict:
    from serialoct.errors import ParameterError

    values = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"--set {pair!r} is not KEY=VALUE (e.g. --set missing_slice=3)")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        values[key.strip()] = tuple(tuple(v) if isinstance(v, list) else v for v in value) if isinstance(value, list) else value
    return values


def _size(path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*.bin"))


def run(args: argparse.Namespace) -> int:
    """Render the acquisition, show progress on a terminal, print a summary."""
    from pathlib import Path

    from serialoct.synth import preset, write_acquisition
    from serialoct.synth.config import with_overrides

    changes = _overrides(args.overrides)
    if args.old_layout:
        changes["old_layout"] = True
    if args.no_missing:
        changes["missing_slice"] = None
    if args.no_degraded:
        changes["degraded_slice"] = None
    config = with_overrides(preset(args.preset), **changes)
    n_tiles = (config.n_slices - (config.missing_slice is not None)) * config.grid_shape[0] * config.grid_shape[1] - len(config.tile_holes)
    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=n_tiles, unit="tile", desc="synth", file=sys.stderr)
    try:
        plan = write_acquisition(args.out, config, args.seed, overwrite=args.overwrite, progress=None if bar is None else bar.update,
                                 workers=args.workers)
    finally:
        if bar is not None:
            bar.close()
    out = Path(args.out)
    c = plan.config
    events = ", ".join(
        f"{name} {value:02d}" for name, value in
        (("glitch", c.glitch_slice), ("re-homing", c.rehoming_slice), ("missing", c.missing_slice), ("degraded", c.degraded_slice))
        if value is not None
    ) or "none"
    n_z, nx, ny = c.tile_shape
    print(
        f"Wrote {len(plan.present_slice_ids)} of {c.n_slices} slices ({c.grid_shape[0]}x{c.grid_shape[1]} tiles of "
        f"{n_z}x{nx}x{ny} voxels (z, x, y), {c.pixel_size_um:g} µm pixels, {c.axial_resolution_um:g} µm axial, "
        f"n_extra {c.n_extra}, n_repeat {c.n_repeat}) in the {'old' if c.old_layout else 'default'} layout to {out}: "
        f"{_size(out) / 1e6:,.1f} MB of raw data. Events: {events}. Preset {args.preset}, seed {args.seed}. "
        f"Ground truth in {out / 'truth'} (truth.json, arrays.npz, reflectivity/attenuation/labels.npy on a "
        f"{c.truth_resolution_um:g} µm grid of {'x'.join(map(str, plan.volume.shape))} voxels)."
    )
    return 0
