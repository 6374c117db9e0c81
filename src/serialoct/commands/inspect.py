"""``serialoct inspect RAW``: what a raw acquisition holds, before processing it."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("raw", help="raw acquisition folder")
    parser.add_argument("--old-layout", action="store_true", help="flat folder of tile_xNN_yNN_zNN folders (use_old_folder_structure)")
    parser.add_argument("--axial_resolution", type=float, default=None, metavar="UM",
                        help="depth sampling in µm per pixel (the tiles do not record it; default: preproc's)")


def run(args: argparse.Namespace) -> int:
    import sys

    from serialoct.errors import InputError
    from serialoct.io.acquisition import cut_thickness_mm, depth_warning, discover_slices, read_slice_geometry
    from serialoct.io.raw import checked_frame_files
    from serialoct.params import registry

    default_axial = registry("preproc")["axial_resolution"].default
    axial_um = default_axial if args.axial_resolution is None else args.axial_resolution
    slices = discover_slices(args.raw, old_layout=args.old_layout)
    geometries, problems = {}, {}
    for slice_id, tiles in slices.items():  # every slice is checked as preproc would read it, without decoding
        try:
            geometry = read_slice_geometry(tiles)
            for tile in tiles.tiles:
                checked_frame_files(tile.path, geometry.info)
            geometries[slice_id] = geometry
        except InputError as exc:
            problems[slice_id] = str(exc)
    if not geometries:
        raise InputError(args.raw, f"no slice can be read; slice {next(iter(problems))}: {next(iter(problems.values()))}")
    first = next(iter(geometries.values()))
    info = first.info
    n_tiles = sum(len(t.tiles) for t in slices.values())
    raw_bytes = sum(f.stat().st_size for t in slices.values() for ref in t.tiles for f in ref.path.glob("image_*.bin"))
    numbers = sorted(int(s) for s in slices)
    missing = [f"{n:02d}" for n in range(numbers[0], numbers[-1] + 1) if f"{n:02d}" not in slices]
    px_x, px_y = info.pixel_size_um
    print(f"{args.raw}: {len(slices)} slice(s) {', '.join(slices)}"
          + (f" (missing: {', '.join(missing)})" if missing else "")
          + f"; {n_tiles} tiles; {raw_bytes / 1e6:,.1f} MB of raw frames")
    print(f"  tile (z, x, y) = {info.shape}; lateral pixel {px_x:g} x {px_y:g} µm; "
          f"n_repeat {info.n_repeat}; n_extra {info.n_extra} (galvo fly-back A-lines)")
    thickness = cut_thickness_mm(first.metadata)
    print(f"  depth {info.n_z * axial_um:.0f} µm = {info.n_z} samples x {axial_um:g} µm"
          + (" (preproc's default axial_resolution; the tiles do not record it)" if args.axial_resolution is None else "")
          + (f"; cut thickness {thickness:g} mm (metadata.json)" if thickness is not None else ""))
    shallow = depth_warning(first.tiles, axial_um)
    if shallow:
        print(f"  warning: {shallow}")
    for slice_id in slices:
        if slice_id in problems:
            print(f"  slice {slice_id}: cannot be read: {problems[slice_id]}")
            continue
        g = geometries[slice_id]
        holes = f"; holes at {', '.join(map(str, g.tiles.holes))}" if g.tiles.holes else ""
        overlap = "?" if g.overlap_fraction is None else f"{g.overlap_fraction:.0%}"
        xs = [x for x, _ in g.stage_mm.values()]
        ys = [y for _, y in g.stage_mm.values()]
        differs = "" if g.info.shape == info.shape else f"; tile {g.info.shape}"
        print(f"  slice {g.slice_id}: grid {g.tiles.grid_shape[0]} x {g.tiles.grid_shape[1]}, overlap {overlap}, "
              f"stage x {min(xs):.3f}..{max(xs):.3f} mm, y {min(ys):.3f}..{max(ys):.3f} mm{holes}{differs}")
    if problems:
        print(f"serialoct inspect: error: {len(problems)} slice(s) cannot be read ({', '.join(problems)}); preproc "
              "will exclude them with these reasons in slice_config.csv", file=sys.stderr)
        return 2  # as for any input error
    return 0
