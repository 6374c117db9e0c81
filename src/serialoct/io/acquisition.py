"""A raw acquisition on disk: which tiles exist, grouped by slice, and their geometry.

Layouts are ``reference/formats.md`` §1: ``RAW/slice_zNN/tiles/tile_xNN_yNN_zNN/``
or, with ``use_old_folder_structure``, every tile folder directly in ``RAW``.
"""

from __future__ import annotations

import os
import re
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from serialoct.errors import FormatError, InputError
from serialoct.io.tileinfo import TileInfo, read_info

__all__ = ["TileRef", "SliceTiles", "SliceGeometry", "discover_slices", "read_slice_geometry", "looks_raw", "slice_metadata", "cut_thickness_mm", "depth_warning"]

TILE_DIR_RE = re.compile(r"tile_x(\d+)_y(\d+)_z(\d+)$")
SLICE_DIR_RE = re.compile(r"slice_z(\d+)$")


@dataclass(frozen=True)
class TileRef:
    """Where one tile of a slice lives: its grid index and folder."""

    ix: int
    iy: int
    path: Path


@dataclass(frozen=True)
class SliceTiles:
    """The tiles found for one slice.

    Attributes
    ----------
    slice_id : str
        Two-digit slice id (``"07"``).
    tiles : tuple of TileRef
        Tiles sorted by ``(ix, iy)``, indices shifted so the smallest is 0.
    grid_shape : tuple of int
        ``(n_tiles_x, n_tiles_y)``.
    holes : tuple of (int, int)
        Grid positions with no tile (never acquired): zeros in the mosaic.
    """

    slice_id: str
    tiles: tuple[TileRef, ...]
    grid_shape: tuple[int, int]
    holes: tuple[tuple[int, int], ...]


# --------------------------------------------------------------------------- discovery


def _slice_id(z: int, where) -> str:
    if z > 99:
        raise InputError(where, f"slice index {z} has three digits; slice ids are two digits (00-99)")
    return f"{z:02d}"


def _subfolders(folder: Path, pattern: re.Pattern) -> list[tuple[Path, re.Match]]:
    """The folders in ``folder`` whose name matches ``pattern``, sorted by name, with their match.

    ``os.scandir`` tells a folder from its directory entry, so only names that match cost a look at the disk
    (a symbolic link), and names sort as strings rather than paths: the 19 x 36 tiles of ``medium`` are found
    in 5-8 instead of 12 ms (BENCHMARKS.md).
    """
    with os.scandir(folder) as entries:
        found = [(entry.name, match) for entry in entries if (match := pattern.match(entry.name)) and entry.is_dir()]
    return [(folder / name, match) for name, match in sorted(found, key=lambda item: item[0])]


def _tile_dirs(root: Path, old_layout: bool, only: int | None) -> list[tuple[Path, int | None]]:
    """Tile folders with the slice index of the folder they sit in (None for the old layout); of slice ``only`` alone if given."""
    if old_layout:
        return [(p, None) for p, match in _subfolders(root, TILE_DIR_RE) if only is None or int(match.group(3)) == only]
    found = []
    for slice_dir, match in _subfolders(root, SLICE_DIR_RE):
        if only is not None and int(match.group(1)) != only:
            continue
        tiles_dir = slice_dir / "tiles"
        if not tiles_dir.is_dir():
            raise InputError(slice_dir, "slice folder has no tiles/ subfolder")
        dirs = [p for p, _ in _subfolders(tiles_dir, TILE_DIR_RE)]
        if not dirs:
            raise InputError(tiles_dir, "no tile_xNN_yNN_zNN folder in this slice")
        found += [(p, int(match.group(1))) for p in dirs]
    return found


def discover_slices(root: str | os.PathLike, *, old_layout: bool = False, only: str | None = None) -> dict[str, SliceTiles]:
    """Find every tile of a raw acquisition, grouped by slice.

    Parameters
    ----------
    root : path
        The acquisition folder (``slice_zNN/tiles/tile_*`` folders, or with
        ``old_layout`` every ``tile_xNN_yNN_zNN`` folder directly inside).
    old_layout : bool
        The flat folder structure (``use_old_folder_structure``).
    only : str, optional
        Look at this slice id's tiles alone (a slice's step); the result is
        empty if it has none.

    Returns
    -------
    dict of str to SliceTiles
        Sorted by slice id. Grid indices are shifted per slice so the
        smallest is 0; missing grid positions are reported as holes.

    Raises
    ------
    InputError
        If the folder does not exist or holds no tile, a tile index repeats,
        a tile sits in the wrong slice folder, or a slice index has three digits.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "raw acquisition folder not found")
    if only is not None and not only.isdigit():
        return {}  # no slice has such an id
    by_slice: dict[str, dict[tuple[int, int], Path]] = {}
    for path, folder_z in _tile_dirs(root, old_layout, None if only is None else int(only)):
        ix, iy, iz = (int(g) for g in TILE_DIR_RE.match(path.name).groups())
        if folder_z is not None and iz != folder_z:
            raise InputError(path, f"tile of slice z{iz:02d} inside the folder of slice z{folder_z:02d}")
        tiles = by_slice.setdefault(_slice_id(iz, path), {})
        if (ix, iy) in tiles:
            raise InputError(path, f"duplicate tile index x={ix} y={iy} z={iz} (also {tiles[(ix, iy)].name})")
        tiles[(ix, iy)] = path
    if not by_slice and only is None:
        layout = "tile_xNN_yNN_zNN folders" if old_layout else "slice_zNN/tiles/tile_xNN_yNN_zNN folders"
        raise InputError(root, f"no {layout} found{_layout_hint(root, old_layout)}")
    return {sid: _slice_tiles(sid, by_slice[sid]) for sid in sorted(by_slice)}


def _has_flat_tiles(root: Path) -> bool:
    return any(TILE_DIR_RE.match(p.name) for p in root.glob("tile_x*"))


def looks_raw(root: str | os.PathLike) -> bool:
    """Whether ``root`` holds raw tiles, in either layout (a quick look, not a discovery)."""
    root = Path(root)
    return any(SLICE_DIR_RE.match(p.parent.name) for p in root.glob("slice_z*/tiles")) or _has_flat_tiles(root)


def _layout_hint(root: Path, old_layout: bool) -> str:
    """What a folder without tiles holds instead, as a hint for the error."""
    if any(root.glob("mosaic_grid_3d_z*.ome.zarr")):
        return " (it holds mosaic grids, preprocessing's output: give it to serialoct reconstruct)"
    if not old_layout and _has_flat_tiles(root):
        return " (its tiles are directly inside: the flat layout, set use_old_folder_structure true)"
    return "" if old_layout else " (flat layout? set use_old_folder_structure)"


def _slice_tiles(slice_id: str, tiles: dict[tuple[int, int], Path]) -> SliceTiles:
    x0 = min(ix for ix, _ in tiles)
    y0 = min(iy for _, iy in tiles)
    shifted = {(ix - x0, iy - y0): p for (ix, iy), p in tiles.items()}
    shape = (max(ix for ix, _ in shifted) + 1, max(iy for _, iy in shifted) + 1)
    holes = tuple((ix, iy) for ix in range(shape[0]) for iy in range(shape[1]) if (ix, iy) not in shifted)
    refs = tuple(TileRef(ix, iy, p) for (ix, iy), p in sorted(shifted.items()))
    return SliceTiles(slice_id=slice_id, tiles=refs, grid_shape=shape, holes=holes)


@dataclass(frozen=True)
class SliceGeometry:
    """What every tile of a slice shares, plus each tile's stage position.

    Attributes
    ----------
    tiles : SliceTiles
        Where the tiles are.
    info : TileInfo
        The header of the first tile; every other tile has the same geometry.
    stage_mm : dict of (int, int) to (float, float)
        Reported stage position ``(x, y)`` of each tile centre, in mm.
    """

    tiles: SliceTiles
    info: TileInfo
    stage_mm: dict[tuple[int, int], tuple[float, float]]
    metadata: dict = field(default_factory=dict)

    @property
    def slice_id(self) -> str:
        return self.tiles.slice_id

    @property
    def tile_size_mm(self) -> tuple[float, float]:
        """Tile field of view along stage x and stage y, in mm."""
        return self.info.width_um / 1000.0, self.info.height_um / 1000.0

    @property
    def overlap_fraction(self) -> float | None:
        """Nominal tile overlap: ``metadata.json``'s value, else from the median stage step.

        None for a single tile (no neighbour to measure against).
        """
        if "overlap_fraction" in self.metadata:
            return float(self.metadata["overlap_fraction"])
        steps = []
        for (ix, iy), (x, y) in self.stage_mm.items():
            if (ix + 1, iy) in self.stage_mm:
                steps.append(abs(self.stage_mm[(ix + 1, iy)][0] - x) / self.tile_size_mm[0])
            if (ix, iy + 1) in self.stage_mm:
                steps.append(abs(self.stage_mm[(ix, iy + 1)][1] - y) / self.tile_size_mm[1])
        if not steps:
            return None
        return round(1.0 - statistics.median(steps), 4)


_SHARED_FIELDS = ("nx", "ny", "n_z", "n_repeat", "n_extra", "width_um", "height_um")


def read_slice_geometry(tiles: SliceTiles, *, with_metadata: bool = True) -> SliceGeometry:
    """Read every tile header of a slice and check that they agree.

    ``with_metadata=False`` leaves ``metadata.json`` unread (``metadata`` is
    empty): for a caller that needs only the tiles' geometry and stage
    positions, which a damaged ``metadata.json`` must not stop.

    Raises
    ------
    InputError
        If a tile's geometry differs from the first tile's, or a tile has no
        stage position (needed to place the slice).
    """
    first: TileInfo | None = None
    stage = {}
    for ref in tiles.tiles:
        info = read_info(ref.path)
        if first is None:
            first = info
        differs = [f for f in _SHARED_FIELDS if getattr(info, f) != getattr(first, f)]
        if differs:
            detail = ", ".join(f"{f}={getattr(info, f)} (first tile: {getattr(first, f)})" for f in differs)
            raise InputError(ref.path, f"tile geometry differs from {tiles.tiles[0].path.name} of the same slice: {detail}")
        if info.stage_x_mm is None or info.stage_y_mm is None:
            raise InputError(ref.path / "info.txt", "no stage_x_pos_mm / stage_y_pos_mm: the tile cannot be placed")
        stage[(ref.ix, ref.iy)] = (info.stage_x_mm, info.stage_y_mm)
    return SliceGeometry(tiles=tiles, info=first, stage_mm=stage, metadata=slice_metadata(tiles) if with_metadata else {})


def slice_metadata(tiles: SliceTiles) -> dict:
    """The optional ``slice_zNN/metadata.json`` beside ``tiles/`` (default layout only)."""
    path = tiles.tiles[0].path.parent.parent / "metadata.json"
    if tiles.tiles[0].path.parent.name != "tiles" or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FormatError(path, f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise FormatError(path, "expected a JSON object of acquisition settings")
    return data


def cut_thickness_mm(metadata: dict) -> float | None:
    """``slice_thickness`` of a slice's ``metadata.json`` in mm, or None when it is absent or not a positive number."""
    value = metadata.get("slice_thickness")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    return float(value)


def depth_warning(tiles: SliceTiles, axial_resolution_um: float) -> str | None:
    """Why the slices of an acquisition will not overlap in depth, judged on one of its slices, or None.

    A slice must image deeper than the cut thickness (:func:`cut_thickness_mm`
    of its ``metadata.json``; nothing to check without it) for the
    reconstruction to register and stack consecutive slices. The tiles do not
    record their axial voxel size, so a wrong ``axial_resolution`` is only
    seen here.
    """
    thickness_mm = cut_thickness_mm(slice_metadata(tiles))
    if thickness_mm is None:
        return None
    n_z = read_info(tiles.tiles[0].path).n_z
    depth_um = n_z * axial_resolution_um
    if depth_um >= thickness_mm * 1000.0:
        return None
    return (f"the tiles image {depth_um:.0f} µm in depth ({n_z} samples of axial_resolution = {axial_resolution_um:g} µm), "
            f"less than the cut thickness ({thickness_mm:g} mm in {tiles.tiles[0].path.parent.parent / 'metadata.json'}): "
            "consecutive slices will not overlap and cannot be stacked. The tiles do not record the axial voxel size: "
            "give the instrument's value with --axial_resolution")
