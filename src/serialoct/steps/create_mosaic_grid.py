"""Step ``create_mosaic_grid``: one slice's raw tiles -> ``mosaic_grid_3d_zNN.ome.zarr``.

Reads a few central tiles to find the galvo band, then decodes the slice
shard by shard (``sharding_factor**2`` tiles at a time, ``processes`` tiles
in parallel) and writes each shard once, so memory is bounded by a shard.
The central tiles stay in memory until they are decoded, their shards
first: every tile is read from the disk once (10 % less reading on
``medium``, whose 6 x 6 tiles per slice include 4 sampled).

A tile whose samples are all exactly zero recorded nothing (OCT intensities
always carry a noise floor): it is reported as a warning, and a slice made
only of such tiles is refused, so it is excluded with its reason instead of
becoming a black mosaic that looks valid.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from serialoct.steps.options import add_parameter_options, parameters_from_args

WORKFLOW = "preproc"
PARAMETERS = (
    "use_old_folder_structure",
    "use_gpu",
    "processes",
    "axial_resolution",
    "resolution",
    "sharding_factor",
    "fix_galvo_shift",
    "fix_camera_shift",
    "preprocess",
    "galvo_confidence_threshold",
)
GALVO_SAMPLE_TILES = 4  # central tiles pooled for the band estimate: enough for a consensus, cheap to read


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="raw acquisition folder")
    parser.add_argument("--slice", required=True, help="two-digit slice id")
    parser.add_argument("--output", required=True, help="mosaic_grid_3d_zNN.ome.zarr to write")
    parser.add_argument("--metrics", required=True, help="metrics JSON to write")
    add_parameter_options(parser, WORKFLOW, PARAMETERS)


def _central_tiles(geometry, n: int):
    gx, gy = geometry.tiles.grid_shape
    centre = ((gx - 1) / 2, (gy - 1) / 2)
    ranked = sorted(geometry.tiles.tiles, key=lambda t: (t.ix - centre[0]) ** 2 + (t.iy - centre[1]) ** 2)
    return ranked[:n]


def _frames_held(reader, tiles, held: dict):
    """The tiles' raw frames in turn, read ahead by ``reader`` (the galvo sample); each tile is kept in
    ``held`` (by folder) for its turn in the mosaic, so no tile is read from the disk twice."""
    reader.schedule(tile.path for tile in tiles)
    for tile in tiles:
        raw = reader.take(tile.path)
        reader.hold(raw)
        held[tile.path] = raw
        yield raw.frames


def run(args: argparse.Namespace) -> int:
    import time

    from serialoct.compute import apply_cpu_limits, get_backend
    from serialoct.io.acquisition import discover_slices, read_slice_geometry
    from serialoct.compute.malloc import reuse_freed_memory
    from serialoct.io.direct import BufferPool
    from serialoct.io.slices import write_mosaic_grid
    from serialoct.io.raw import TileReader, decode_frames, finite_range
    from serialoct.io.tileinfo import BIN_GLOB
    from serialoct.io.tables import Metric, StepMetrics, write_metrics
    from serialoct.preproc.galvo import detect_galvo_band
    from serialoct.correct.resample import resample_tile_isotropic
    from serialoct.preproc.mosaic import mosaic_layout
    from serialoct.errors import InputError

    p = parameters_from_args(args, WORKFLOW, PARAMETERS)
    started = time.perf_counter()
    apply_cpu_limits()
    reuse_freed_memory()  # zstd's output buffer, made and freed for every tile, reused instead of fresh pages each time
    backend = get_backend(p["use_gpu"])
    slices = discover_slices(args.input, old_layout=p["use_old_folder_structure"], only=args.slice)
    if args.slice not in slices:
        found = discover_slices(args.input, old_layout=p["use_old_folder_structure"])
        raise InputError(args.input, f"no tiles of slice {args.slice}; found slices {', '.join(found)}")
    geometry = read_slice_geometry(slices[args.slice])
    info = geometry.info

    detection, band_start = None, None  # the galvo band, found once the reader runs (below)
    px_x, px_y = info.pixel_size_um
    native_voxel = (p["axial_resolution"], px_x, px_y)
    tile_shape = info.shape
    if p["preprocess"]:  # legacy orientation swaps the lateral axes
        tile_shape, native_voxel = (info.n_z, info.ny, info.nx), (native_voxel[0], px_y, px_x)
    layout = mosaic_layout(
        tile_shape, geometry.tiles.grid_shape, native_voxel, resolution_um=p["resolution"], sharding_factor=p["sharding_factor"]
    )

    blank = []  # tiles with no signal at all
    held = {}  # the galvo sample's raw tiles, by folder, until their turn in the mosaic

    refs = {(t.ix, t.iy): t for t in geometry.tiles.tiles}
    buffers = BufferPool(tile_shape)
    # Frames are read a few tiles ahead, in a thread of their own, into reused buffers around the page cache.
    reader = TileReader(info, depth=p["processes"] + 2)

    def make_tile(ix, iy):
        ref = refs.get((ix, iy))
        if ref is None:
            return None  # never acquired: a hole (zeros)
        raw = held.pop(ref.path, None) or reader.take(ref.path)
        try:
            tile = decode_frames(
                raw.frames, raw.info, galvo_band_start=band_start, fix_camera_shift=p["fix_camera_shift"],
                legacy_orientation=p["preprocess"], out=buffers.take(),
            )
        finally:
            reader.give(raw)
        if finite_range(tile, ref.path) == (0.0, 0.0):  # no other pass over the tile for this
            blank.append(ref.path.name)
        if p["resolution"] > 0:
            decoded, tile = tile, resample_tile_isotropic(tile, native_voxel, resolution_um=p["resolution"], backend=backend)
            if tile is not decoded:  # resampling to the native voxel returns the tile itself
                buffers.give([decoded])
        return tile

    extra = {
        "slice_id": args.slice,
        "tile_shape": list(layout.tile_shape),
        "grid_shape": list(layout.grid_shape),
        "voxel_size_um": list(layout.voxel_size_um),
        "overlap_fraction": geometry.overlap_fraction,
        "stage_positions_mm": {f"{ix},{iy}": list(xy) for (ix, iy), xy in sorted(geometry.stage_mm.items())},
        "holes": [list(h) for h in geometry.tiles.holes],
    }

    def refuse_blank_slice():
        if refs and len(blank) == len(refs):  # raised before the store is committed: nothing appears
            raise InputError(
                geometry.tiles.tiles[0].path.parent,
                f"all {len(refs)} tiles of slice {args.slice} are entirely zero (nothing was recorded; acquisition failure?)",
            )

    def prefetch(indices):  # never raises: a tile that cannot be read is reported when it is taken
        reader.schedule(refs[ij].path for ij in indices if ij in refs and refs[ij].path not in held)

    with reader:
        if p["fix_galvo_shift"] and info.n_extra > 0:
            sample = _central_tiles(geometry, GALVO_SAMPLE_TILES)
            detection = detect_galvo_band(_frames_held(reader, sample, held), info.n_extra, backend=backend)
            if detection.should_fix(p["galvo_confidence_threshold"]):
                band_start = detection.band_start
        extra["galvo_band_start_applied"] = band_start
        first = [(t.ix, t.iy) for t in refs.values() if t.path in held]  # their shards first: held no longer than needed
        write_mosaic_grid(args.output, layout, make_tile, extra=extra, workers=p["processes"], before_commit=refuse_blank_slice,
                          prefetch=prefetch, buffers=buffers, first=first)

    elapsed = time.perf_counter() - started
    raw_mb = sum(f.stat().st_size for t in geometry.tiles.tiles for f in t.path.glob(BIN_GLOB)) / 1e6
    metrics = {
        "n_tiles": Metric(len(refs), "", "tiles decoded"),
        "n_holes": Metric(len(geometry.tiles.holes), "", "grid positions never acquired (zeros)",
                          "warning" if geometry.tiles.holes else "ok"),
        "raw_mb_per_s": Metric(round(raw_mb / elapsed, 2), "MB/s", "raw data decoded per second"),
        "n_blank_tiles": Metric(len(blank), "", "tiles whose samples are all zero (nothing recorded)",
                                "warning" if blank else "ok"),
    }
    if detection is not None:
        metrics["galvo_confidence"] = Metric(detection.confidence, "", "galvo band detection confidence")
        metrics["galvo_band_start"] = Metric(detection.band_start, "A-line", "detected band start")
        metrics["galvo_fix_applied"] = Metric(band_start is not None, "", "band rolled away (confidence >= threshold)")
    write_metrics(
        args.metrics,
        StepMetrics(
            "create_mosaic_grid",
            info={"slice_id": args.slice, "input": str(Path(args.input)), "output": args.output, "backend": backend.name,
                  "shape": list(layout.shape), "elapsed_s": round(elapsed, 3)},
            params=p,
            metrics=metrics,
            warnings=tuple(f"tile {name} is entirely zero (nothing recorded)" for name in sorted(blank)),
        ),
    )
    return 0
