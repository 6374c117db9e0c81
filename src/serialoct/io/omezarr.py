"""OME-Zarr images: NGFF 0.5 on zarr v3 (write), 0.5 and 0.4 / zarr v2 (read).

Writing streams: :func:`create_ome_zarr` opens a store under a temporary
sibling of the final path, the caller writes level 0 region by region, and on
leaving the ``with`` block the pyramid levels are computed block by block,
the NGFF metadata is written and the store is renamed into place. Nothing
ever appears under the final name unless it is complete.

Reading never assumes dataset paths or scales: :func:`open_ome_zarr` takes
them from the ``multiscales`` metadata (``0`` / ``s0`` / anything).

Axis order is ``(z, y, x)`` (formats.md §2); physical units are millimetres.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import shutil
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from serialoct.errors import FormatError, InputError
from serialoct.io.atomic import atomic_output
from serialoct.io.pyramid import level_shape, level_layout, pyramid_voxel_sizes_mm, write_level
from serialoct.io.shards import DamagedChunk, read_region, write_volume
from serialoct.io.ngff import (
    Axis,
    Dataset,
    MetadataError,
    Multiscale,
    Transform,
    ngff_attributes,
    parse_multiscales,
    unit_to_mm,
)

__all__ = [
    "CheckedArray",
    "OmeZarrImage",
    "OmeZarrWriter",
    "create_ome_zarr",
    "export_zip",
    "level_shape",
    "open_ome_zarr",
    "pyramid_voxel_sizes_mm",
    "write_ome_zarr",
]

logger = logging.getLogger(__name__)

# On noisy float32 OCT intensities zstd level 1 keeps nearly all the ratio of
# level 3 (1.31 vs 1.36 on a synthetic slice) at twice the speed (415 vs 166 MB/s
# per core); writing, not reading, bounds the mosaic step (BENCHMARKS.md).
ZSTD_LEVEL = 1
# Every zstd frame carries its content checksum (XXH64, part of the zstd format, read
# by any zstd decoder): without it a flipped bit in a chunk decodes silently into
# wrong voxels (NaNs or noise); with it the read fails and names the chunk. The shard
# index has its own crc32c (zarr's default).
ZSTD_CHECKSUM = True
#: Group of the 2-D maps stored beside the levels (:meth:`OmeZarrWriter.add_map`).
MAPS_GROUP = "maps"
_AXIS_NAMES = {2: ("y", "x"), 3: ("z", "y", "x")}
_ZARR_METADATA = frozenset({"zarr.json", ".zgroup", ".zarray", ".zattrs", ".zmetadata"})


def _ints(values: Sequence[int], ndim: int, what: str) -> tuple[int, ...]:
    out = tuple(int(v) for v in values)
    if len(out) != ndim or any(v < 1 for v in out):
        raise ValueError(f"{what} must be {ndim} positive integers, got {list(values)}")
    return out


def _jsonable(extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """A JSON-safe deep copy (numpy values become Python ones)."""

    def convert(value: Any) -> Any:
        if isinstance(value, np.generic | np.ndarray):
            return value.tolist()
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        raise TypeError(f"extra_attrs value {value!r} of type {type(value).__name__} is not JSON")

    return json.loads(json.dumps(dict(extra or {}), default=convert))


def _create_level(group, name, shape, chunks, shards, dtype, axes) -> zarr.Array:
    return group.create_array(
        name=name,
        shape=shape,
        chunks=chunks,
        shards=shards,
        dtype=dtype,
        compressors=zarr.codecs.ZstdCodec(level=ZSTD_LEVEL, checksum=ZSTD_CHECKSUM),
        fill_value=0,
        dimension_names=[a.name for a in axes],
    )


# Pyramid: level geometry and blockwise resampling.


@dataclass(frozen=True)
class OmeZarrWriter:
    """What :func:`create_ome_zarr` yields.

    Attributes
    ----------
    path : pathlib.Path
        The final path (the store lives under a temporary sibling until the
        ``with`` block ends).
    array : zarr.Array, shape (Z, Y, X)
        Level 0; write it by regions, ``array[z0:z1, y0:y1, x0:x1] = block``.
        Regions never written read as 0. Aligning regions to whole shards
        (or writing each shard once) avoids re-encoding a shard per write.
    """

    path: Path
    array: zarr.Array = field(repr=False)
    group: zarr.Group = field(repr=False)

    def add_map(self, name: str, values: np.ndarray) -> None:
        """Store a 2-D map computed with the image (one value per A-line, say) at ``maps/<name>``.

        Maps travel with the image they describe (they are committed with it)
        and are read back by :meth:`OmeZarrImage.map`; NGFF readers ignore them.
        """
        values = np.asarray(values)
        if values.ndim != 2 or not name.isidentifier():
            raise ValueError(f"map {name!r} of shape {values.shape}: expected a 2-D array and a plain name")
        self.group.require_group(MAPS_GROUP).create_array(
            name=name, shape=values.shape, chunks=values.shape, dtype=values.dtype,
            compressors=zarr.codecs.ZstdCodec(level=ZSTD_LEVEL, checksum=ZSTD_CHECKSUM),
        )[...] = values


@contextmanager
def create_ome_zarr(
    path: str | os.PathLike,
    shape: Sequence[int],
    *,
    voxel_size_mm: Sequence[float],
    chunks: Sequence[int],
    shards: Sequence[int] | None = None,
    dtype: str | np.dtype = "float32",
    pyramid_resolutions_um: Sequence[float] = (),
    make_isotropic: bool = True,
    extra_attrs: Mapping[str, Any] | None = None,
    name: str | None = None,
    axes_orientation: Sequence[str] | None = None,
    workers: int = 1,
) -> Iterator[OmeZarrWriter]:
    """Create an OME-Zarr image to fill region by region; finalise on exit.

    Parameters
    ----------
    path : str or os.PathLike
        Final store path (``*.ome.zarr``); an existing one is replaced when
        the new one is complete.
    shape : sequence of int, (Z, Y, X) or (Y, X)
        Level-0 shape, voxels.
    voxel_size_mm : sequence of float, mm
        Level-0 voxel size per axis (the ``scale`` transform).
    chunks, shards : sequence of int
        Zarr chunk shape and shard shape (a multiple of ``chunks``; None: no
        sharding). Pyramid levels reuse them, clipped to their shape.
    dtype : str or numpy.dtype
        Voxel type of every level.
    pyramid_resolutions_um, make_isotropic
        Extra levels, see :func:`pyramid_voxel_sizes_mm`.
    extra_attrs : mapping, optional
        JSON-able serialoct metadata, stored under the ``"serialoct"`` key of
        the group attributes and returned by :func:`open_ome_zarr`.
    name : str, optional
        The multiscale's ``name``.
    axes_orientation : sequence of str, optional
        Anatomical direction per axis (``"left-to-right"``, ...).
    workers : int
        Chunks of a pyramid level computed at once (threads); the levels do
        not depend on it.

    Yields
    ------
    OmeZarrWriter

    Notes
    -----
    On normal exit the pyramid is computed (:func:`_downsample_region`) level
    from level, each from the previous one, holding one output shard and one
    source region at a time; then the NGFF 0.5 metadata is written and the
    store renamed into place. If the block raises, the temporary store is
    deleted and nothing appears at ``path``.
    """
    axis_names = _AXIS_NAMES.get(len(shape))
    if axis_names is None:
        raise ValueError(f"shape {list(shape)} must have 2 or 3 axes ((y, x) or (z, y, x))")
    ndim = len(axis_names)
    shape = _ints(shape, ndim, "shape")
    chunks = _ints(chunks, ndim, "chunks")
    shards = None if shards is None else _ints(shards, ndim, "shards")
    voxel = tuple(float(v) for v in voxel_size_mm)
    if len(voxel) != ndim or not all(math.isfinite(v) and v > 0 for v in voxel):
        raise ValueError(f"voxel_size_mm must be {ndim} positive sizes, got {list(voxel_size_mm)}")
    orientation = tuple(axes_orientation) if axes_orientation is not None else (None,) * ndim
    if len(orientation) != ndim:
        raise ValueError(f"axes_orientation must have {ndim} entries, got {list(orientation)}")
    axes = tuple(
        Axis(n, "space", "millimeter", o) for n, o in zip(axis_names, orientation, strict=True)
    )
    levels = pyramid_voxel_sizes_mm(voxel, pyramid_resolutions_um, isotropic=make_isotropic)
    extra = _jsonable(extra_attrs)
    with atomic_output(path) as tmp:
        group = zarr.create_group(str(tmp), zarr_format=3)
        base = _create_level(group, "0", shape, chunks, shards, dtype, axes)
        yield OmeZarrWriter(Path(path), base, group)
        multiscale = _write_pyramid(group, base, levels, axes, name, workers)
        group.attrs.update({**ngff_attributes(multiscale), **({"serialoct": extra} if extra else {})})
    logger.info("wrote %s (%d level(s), level 0 shape %s)", path, len(levels), shape)


def _write_pyramid(group, base, levels, axes, name, workers: int = 1) -> Multiscale:
    """Create and fill levels 1.. and return the multiscale describing them all."""
    datasets = [Dataset("0", Transform(scale=levels[0]))]
    previous = base
    for k, voxel in enumerate(levels[1:], start=1):
        shape_k = level_shape(base.shape, levels[0], voxel)
        chunks_k, shards_k = level_layout(shape_k, base.chunks, base.shards)
        array = _create_level(group, str(k), shape_k, chunks_k, shards_k, base.dtype, axes)
        factors = [v / p for v, p in zip(voxel, levels[k - 1])]
        logger.debug("pyramid level %d: %s voxels of %s mm", k, shape_k, voxel)
        write_level(previous, array, factors, workers=workers)
        # Level voxels are centred in the same corner-aligned extent as level 0.
        shift = tuple(round((v - v0) / 2, 12) for v, v0 in zip(voxel, levels[0]))
        datasets.append(Dataset(str(k), Transform(scale=voxel, translation=shift)))
        previous = array
    pyramid = len(levels) > 1
    return Multiscale(
        axes=axes,
        datasets=tuple(datasets),
        name=name,
        type="gaussian" if pyramid else None,
        metadata={
            "description": "gaussian anti-aliasing (sigma = (factor - 1) / 2 voxels) then "
            "linear resampling, each level from the previous one",
            "method": "scipy.ndimage.gaussian_filter + scipy.ndimage.affine_transform(order=1)",
        }
        if pyramid
        else None,
    )


def write_ome_zarr(
    path: str | os.PathLike,
    data: np.ndarray,
    *,
    voxel_size_mm: Sequence[float],
    chunks: Sequence[int],
    shards: Sequence[int] | None = None,
    pyramid_resolutions_um: Sequence[float] = (),
    make_isotropic: bool = True,
    extra_attrs: Mapping[str, Any] | None = None,
    name: str | None = None,
    axes_orientation: Sequence[str] | None = None,
) -> Path:
    """Write an in-memory array as an OME-Zarr image (see :func:`create_ome_zarr`).

    Parameters
    ----------
    data : ndarray, shape (Z, Y, X) or (Y, X)
        Level-0 voxels; the store keeps its dtype.

    Returns
    -------
    pathlib.Path
        The final path.
    """
    with create_ome_zarr(
        path,
        data.shape,
        voxel_size_mm=voxel_size_mm,
        chunks=chunks,
        shards=shards,
        dtype=data.dtype,
        pyramid_resolutions_um=pyramid_resolutions_um,
        make_isotropic=make_isotropic,
        extra_attrs=extra_attrs,
        name=name,
        axes_orientation=axes_orientation,
    ) as out:
        write_volume(out.array, data)
    return Path(path)


@dataclass(frozen=True)
class OmeZarrImage:
    """An opened OME-Zarr image (first multiscale of the group).

    Attributes
    ----------
    path : pathlib.Path
    version : str
        NGFF version declared (``"0.5"``, ``"0.4"``).
    multiscale : Multiscale
        Axes, dataset paths and transforms, as read.
    extra_attrs : dict
        The ``"serialoct"`` group attributes (empty if none).
    group : zarr.Group
        The open (read-only) group; levels load lazily through it.
    """

    path: Path
    version: str
    multiscale: Multiscale
    extra_attrs: dict[str, Any]
    group: zarr.Group = field(repr=False, compare=False)

    @property
    def n_levels(self) -> int:
        return len(self.multiscale.datasets)

    @property
    def axis_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.multiscale.axes)

    @property
    def dataset_paths(self) -> tuple[str, ...]:
        return tuple(d.path for d in self.multiscale.datasets)

    def level(self, index: int = 0) -> CheckedArray:
        """The zarr array of level ``index`` (0 = finest); nothing is loaded.

        A :class:`CheckedArray`: a ``zarr.Array`` whose reads raise
        :class:`~serialoct.errors.FormatError` naming the chunk file when a
        chunk cannot be decoded.
        """
        if not -self.n_levels <= index < self.n_levels:
            raise IndexError(f"{self.path}: level {index} requested, image has {self.n_levels}")
        return CheckedArray(self.group[self.multiscale.datasets[index].path].async_array)

    def map(self, name: str) -> np.ndarray | None:
        """The 2-D map stored as ``name`` with the image (:meth:`OmeZarrWriter.add_map`); None when there is none."""
        try:
            found = self.group[f"{MAPS_GROUP}/{name}"]
        except KeyError:
            return None
        return np.asarray(found[...]) if isinstance(found, zarr.Array) else None

    def read(self, level: int = 0) -> np.ndarray:
        """Load a whole level into memory.

        Raises
        ------
        FormatError
            If a chunk is corrupted or truncated (named in the message).
        """
        return self.level(level)[...]

    def _space_mm(self, values: Sequence[float]) -> tuple[float, ...]:
        out = []
        for axis, value in zip(self.multiscale.axes, values, strict=True):
            if axis.type == "space":
                try:
                    out.append(value * unit_to_mm(axis.unit))
                except MetadataError as err:
                    raise FormatError(self.path, f"axis {axis.name!r}: {err}") from None
        return tuple(out)

    def voxel_size_mm(self, level: int = 0) -> tuple[float, ...]:
        """Voxel size of ``level`` in mm, one value per space axis (in axes order).

        Raises
        ------
        FormatError
            If a space axis has no unit or a unit that is not a length.
        """
        return self._space_mm(self.multiscale.level_transform(level).scale)

    def translation_mm(self, level: int = 0) -> tuple[float, ...]:
        """Physical position of voxel 0 of ``level`` in mm, per space axis."""
        transform = self.multiscale.level_transform(level)
        return self._space_mm(transform.translation or (0.0,) * transform.ndim)


class CheckedArray(zarr.Array):
    """A ``zarr.Array`` whose reads name the chunk that cannot be decoded.

    Reading a corrupted or truncated chunk makes zarr raise a bare
    ``ValueError`` (shard index checksum) or ``RuntimeError`` (zstd frame
    checksum, broken frame) that names nothing. Here the failing read is
    retried one chunk, then one stored object (shard), at a time within the
    selection to find the culprit, and a :class:`~serialoct.errors.FormatError`
    names its file and the chunk. An error that no single chunk reproduces
    propagates unchanged; so do selection errors (``IndexError``, ``TypeError``).

    Notes
    -----
    A chunk file that is missing, or empty, reads as the fill value: that is
    how zarr stores a chunk never written (holes of a mosaic grid), so it
    cannot be told from damage without a manifest of written chunks.
    """

    def __getitem__(self, selection):
        try:
            plain = _plain_region(selection, self.shape)
            if plain is not None:  # serialoct's own layout is read shard file by shard file, around the page cache
                region, dropped = plain
                data = read_region(self, region)
                if data is not None:
                    return data.reshape([n for axis, n in enumerate(data.shape) if axis not in dropped]) if dropped else data
            return super().__getitem__(selection)
        except DamagedChunk as damage:
            raise self._damage_error(damage.origin, damage.cause) from damage.cause
        except (ValueError, RuntimeError, OSError) as exc:
            located = self._locate_damage(selection, exc)
            if located is None:
                raise
            raise located from exc

    def _cells(self, shape: tuple[int, ...], cell: tuple[int, ...], selection) -> Iterator[tuple[int, ...]]:
        """Grid coordinates of the ``cell``-sized blocks of ``shape`` that ``selection`` may touch."""
        ranges = [range(-(-n // c)) for n, c in zip(shape, cell)]
        if not isinstance(selection, tuple):
            selection = (selection,)
        if len(selection) == len(shape) and all(isinstance(s, slice) and s.step in (None, 1) for s in selection):
            ranges = []
            for s, n, c in zip(selection, shape, cell):
                start, stop, _ = s.indices(n)
                ranges.append(range(start // c, -(-stop // c)) if stop > start else range(0))
        return itertools.product(*ranges)

    def _read_block(self, origin: tuple[int, ...], size: tuple[int, ...]) -> None:
        super().__getitem__(tuple(slice(o, min(o + s, n)) for o, s, n in zip(origin, size, self.shape)))

    def _locate_damage(self, selection, exc: Exception) -> FormatError | None:
        # Chunk by chunk first (a partial read of a shard decodes only the chunks it needs),
        # then stored object by stored object (a whole-shard read can fail on its own).
        stored = self.shards or self.chunks
        for size in (self.chunks, stored):
            for cell in self._cells(self.shape, size, selection):
                origin = tuple(c * s for c, s in zip(cell, size))
                try:
                    self._read_block(origin, size)
                except Exception as err:  # noqa: BLE001 - a failure of one chunk alone is damage to it
                    return self._damage_error(origin, err)
        return None

    def _damage_error(self, origin: tuple[int, ...], err: Exception) -> FormatError:
        stored = self.shards or self.chunks
        key = self.metadata.encode_chunk_key(tuple(o // s for o, s in zip(origin, stored)))
        root = getattr(self.store, "root", None)
        where = Path(os.path.abspath(root), self.path, key) if root is not None else f"{self.store_path}/{key}"
        chunk = tuple(o // c for o, c in zip(origin, self.chunks))
        inner = f", chunk {chunk} (voxels from {origin})" if self.shards else ""
        return FormatError(
            where,
            f"corrupted or truncated chunk file of array {self.path!r}{inner}: cannot be decoded "
            f"({type(err).__name__}: {err}); rebuild the image by deleting it and rerunning the step that wrote it",
        )


def _plain_region(selection, shape: tuple[int, ...]) -> tuple[tuple[slice, ...], tuple[int, ...]] | None:
    """``(region, dropped axes)`` of a selection made of integers, slices of step 1 and at most one Ellipsis, with
    at least one slice and nothing empty or out of range; None for any other (zarr reads it, or refuses it)."""
    items = selection if isinstance(selection, tuple) else (selection,)
    if sum(item is Ellipsis for item in items) > 1:
        return None
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items = items[:at] + (slice(None),) * (len(shape) - len(items) + 1) + items[at + 1 :]
    if len(items) > len(shape):
        return None
    items = items + (slice(None),) * (len(shape) - len(items))
    region, dropped = [], []
    for axis, (item, n) in enumerate(zip(items, shape)):
        if isinstance(item, slice):
            start, stop, step = item.indices(n)
            if step != 1 or stop <= start:
                return None
            region.append(slice(start, stop))
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool) and -n <= item < n:
            index = int(item) % n
            region.append(slice(index, index + 1))
            dropped.append(axis)
        else:
            return None
    if len(dropped) == len(shape):
        return None
    return tuple(region), tuple(dropped)


def open_ome_zarr(path: str | os.PathLike) -> OmeZarrImage:
    """Open an OME-Zarr image: NGFF 0.5 (zarr v3) or NGFF 0.4 (zarr v2).

    Dataset paths, scales and units come from the ``multiscales`` metadata.

    Raises
    ------
    InputError
        If ``path`` does not exist.
    FormatError
        If it is not a zarr group, has no or malformed ``multiscales``, or a
        listed dataset is missing or disagrees with the axes.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "does not exist")
    try:
        group = zarr.open_group(str(path), mode="r")
    except (FileNotFoundError, zarr.errors.BaseZarrError):
        raise FormatError(path, "not a zarr group (no zarr.json or .zgroup); not an OME-Zarr") from None
    try:
        version, multiscales = parse_multiscales(group.attrs.asdict())
    except MetadataError as err:
        raise FormatError(path, str(err)) from None
    if len(multiscales) > 1:
        logger.info("%s holds %d multiscales; using the first", path, len(multiscales))
    multiscale = multiscales[0]
    for ds in multiscale.datasets:
        try:
            array = group[ds.path]
        except KeyError:
            raise FormatError(path, f"dataset {ds.path!r} listed in multiscales is missing") from None
        if not isinstance(array, zarr.Array) or array.ndim != len(multiscale.axes):
            raise FormatError(
                path,
                f"dataset {ds.path!r} is not a {len(multiscale.axes)}-D array "
                f"(axes {[a.name for a in multiscale.axes]})",
            )
    extra = group.attrs.asdict().get("serialoct", {})
    return OmeZarrImage(path, version, multiscale, dict(extra), group)


def export_zip(ome_zarr_path: str | os.PathLike, zip_path: str | os.PathLike) -> Path:
    """Pack an OME-Zarr store into an uncompressed zip (``*.ome.zarr.zip``).

    The archive root is the store root (``zarr.json`` at the top level);
    entries are stored, not deflated, so a reader can seek straight into
    chunk data. Metadata files come first, shallowest first, so the root
    ``zarr.json`` is the first entry. Written atomically.

    Returns
    -------
    pathlib.Path
        The zip path.

    Raises
    ------
    FormatError
        If ``ome_zarr_path`` is not a zarr store root.
    """
    src = Path(ome_zarr_path)
    if not ((src / "zarr.json").is_file() or (src / ".zgroup").is_file()):
        raise FormatError(src, "not a zarr store root (no zarr.json or .zgroup); nothing to zip")
    rel = [f.relative_to(src) for f in src.rglob("*") if f.is_file()]
    rel.sort(key=lambda r: (r.name not in _ZARR_METADATA, len(r.parts), r.as_posix()))
    with atomic_output(zip_path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for r in rel:
                # A fixed timestamp: the same store always gives the same bytes (determinism, resumed runs).
                info = zipfile.ZipInfo(r.as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_STORED
                with open(src / r, "rb") as data, zf.open(info, "w", force_zip64=True) as entry:
                    shutil.copyfileobj(data, entry, 1 << 20)
    logger.info("wrote %s (%d entries, stored)", zip_path, len(rel))
    return Path(zip_path)
