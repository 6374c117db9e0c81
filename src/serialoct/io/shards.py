"""Writing whole shards of a sharded zarr v3 array from their chunks, and reading them back.

A mosaic grid's chunks are its tiles (formats.md §2), and each tile is
decoded on its own. Handing zarr a shard means pasting the tiles into one
block, from which zarr copies every chunk out again (into an array it first
fills with the fill value), compares it with the fill value and joins the
encoded chunks into one buffer: three passes over the data besides the
compression. :func:`write_shard` encodes each chunk as it is and writes the
shard file itself, in the layout of zarr's ``sharding_indexed`` codec (the
encoded chunks one after the other, then the index of (offset, length)
pairs, ``2**64 - 1`` for a chunk not stored, and the index's crc32c), with
the codecs the array's metadata names; :func:`write_region` and
:func:`write_volume` do the same for a block of whole shards and for a whole
array. The mosaic step spends a third less CPU per slice, and a stitched
slice is written in a third less time (BENCHMARKS.md). An array in any other
layout (not sharded, other codecs, not on a local disk) is written through
zarr.

:func:`read_region` reads a block of such an array the same way: for each
shard, its index, then the chunks the block needs, a few at a time (up to
8 MiB of the file per read), around the page cache
(:func:`serialoct.io.direct.read_range`), each chunk decoded into one reused
buffer and copied into the block. Through zarr, the same read of a
``medium`` mosaic grid took about twice the CPU: its chunks are decoded into
fresh buffers, and the files come through the page cache.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from pathlib import Path

import google_crc32c
import numcodecs
import numpy as np
import zarr
from zarr.codecs import BytesCodec, Crc32cCodec, ShardingCodec, ShardingCodecIndexLocation, ZstdCodec
from zarr.storage import LocalStore

from serialoct.io.direct import read_range, write_file

__all__ = ["DamagedChunk", "read_region", "write_region", "write_shard", "write_shard_made", "write_volume"]

_NOT_STORED = np.uint64(2**64 - 1)
#: At most this many bytes of a shard file are read at once (and kept per reading thread): a few chunks.
_READ_SPAN = 8 * 1024 * 1024


def write_shard(array: zarr.Array, shard: tuple[int, ...], chunks: Mapping[tuple[int, ...], np.ndarray]) -> None:
    """Write shard ``shard`` of ``array`` whole: ``chunks`` maps a chunk's index within the shard to its data.

    Chunks not given read as the fill value. Whatever the shard held before is
    replaced.

    Raises
    ------
    ValueError
        If a chunk index lies outside the shard or a chunk is not of the
        array's chunk shape.
    """
    chunk_shape = tuple(array.chunks)
    per_shard = tuple(s // c for s, c in zip(array.shards or chunk_shape, chunk_shape))
    for index, data in chunks.items():
        if len(index) != len(per_shard) or not all(0 <= i < n for i, n in zip(index, per_shard)):
            raise ValueError(f"chunk {index} is outside a shard of {per_shard} chunks")
        if tuple(data.shape) != chunk_shape:
            raise ValueError(f"chunk {index} has shape {tuple(data.shape)}, expected {chunk_shape}")
    zstd, folder = _direct_layout(array)
    if zstd is None:
        _write_through_zarr(array, shard, per_shard, chunks)
    else:
        _store_chunks(array, zstd, folder, shard, per_shard, chunks)


def write_shard_made(
    array: zarr.Array,
    shard: tuple[int, ...],
    make_chunk: Callable[[tuple[int, ...]], np.ndarray | None],
    *,
    release: Callable[[np.ndarray], None] | None = None,
) -> None:
    """Write shard ``shard`` of ``array`` whole, each chunk made when the writer comes to it.

    ``make_chunk(index)`` gives the data of the chunk at ``index`` within the
    shard, or None for the fill value; it is called for every index in C
    order, and ``release(data)`` once that chunk is encoded. So one chunk is
    held at a time, and the buffer a chunk was made in can be reused for the
    next (a mosaic step making each tile as the shard is written touches no
    fresh memory after its first tile). An array in another layout has all
    its chunks made first and is written through zarr.

    Raises
    ------
    ValueError
        If a chunk is not of the array's chunk shape.
    """
    chunk_shape = tuple(array.chunks)
    per_shard = tuple(s // c for s, c in zip(array.shards or chunk_shape, chunk_shape))

    def made(position):
        data = make_chunk(position)
        if data is not None and tuple(data.shape) != chunk_shape:
            raise ValueError(f"chunk {position} has shape {tuple(data.shape)}, expected {chunk_shape}")
        return data

    zstd, folder = _direct_layout(array)
    if zstd is not None:
        _store_shard(array, zstd, folder, shard, per_shard, list(np.ndindex(*per_shard)), made, release)
        return
    chunks = {position: data for position in np.ndindex(*per_shard) if (data := made(position)) is not None}
    _write_through_zarr(array, shard, per_shard, chunks)
    for data in chunks.values() if release is not None else ():
        release(data)


def _store_chunks(array, zstd, folder: Path, shard, per_shard, chunks: Mapping) -> None:
    """:func:`_store_shard` of the chunks a mapping holds."""
    _store_shard(array, zstd, folder, shard, per_shard, [p for p in np.ndindex(*per_shard) if p in chunks], chunks.get)


def _store_shard(array, zstd, folder: Path, shard, per_shard, positions, chunk_at, release=None) -> None:
    """Encode the chunks and write the shard file (``sharding_indexed``: chunks, index, its crc32c).

    ``chunk_at(position)`` gives each of ``positions`` (C order) its data or None; ``release(data)`` is called
    once a chunk is encoded. The chunks are encoded one at a time as the file is written, so one encoded chunk
    is held at a time rather than the whole shard's (a ``medium`` mosaic step's peak RSS 277 -> 249 MB).
    """
    target = folder / array.metadata.encode_chunk_key(shard)
    if not positions:
        target.unlink(missing_ok=True)  # an empty shard is no file
        return
    dtype = array.dtype.newbyteorder("<")
    stored = []

    def encoded():
        index = np.full((*per_shard, 2), _NOT_STORED, dtype="<u8")
        offset = 0
        for position in positions:  # C order, as zarr reads them (any order is valid)
            data = chunk_at(position)
            if data is None:
                continue
            part = zstd.encode(np.ascontiguousarray(data, dtype=dtype))
            if release is not None:
                release(data)
            del data
            index[position] = (offset, len(part))
            offset += len(part)
            stored.append(position)
            yield part
            del part
        index_bytes = index.tobytes()
        yield index_bytes
        yield np.uint32(google_crc32c.value(index_bytes)).astype("<u4").tobytes()

    target.parent.mkdir(parents=True, exist_ok=True)
    write_file(target, encoded())
    if not stored:
        target.unlink()  # every chunk made was the fill value: no file, as for an empty shard


def write_volume(array: zarr.Array, volume: np.ndarray) -> None:
    """``array[...] = volume``, shard by shard in :func:`write_shard`'s way where the layout allows.

    Chunks that hold only the fill value are left out, as zarr leaves them out.
    """
    if tuple(volume.shape) != tuple(array.shape):
        raise ValueError(f"volume of shape {tuple(volume.shape)} for an array of shape {tuple(array.shape)}")
    write_region(array, (0,) * volume.ndim, volume)


def write_region(array: zarr.Array, start: tuple[int, ...], block: np.ndarray) -> None:
    """``array[start : start + block.shape] = block`` for a block of whole shards, each written as :func:`write_shard` writes one.

    The block starts on a shard boundary and spans whole shards, or reaches
    the array's edge. Chunks that hold only the fill value are left out. An
    array in another layout is written through zarr.

    Raises
    ------
    ValueError
        If the block does not fit the array or its shards.
    """
    region = tuple(slice(b, b + n) for b, n in zip(start, block.shape))
    if len(start) != array.ndim or block.ndim != array.ndim or any(r.stop > size or r.start < 0 for r, size in zip(region, array.shape)):
        raise ValueError(f"a block of shape {tuple(block.shape)} at {tuple(start)} does not fit an array of shape {tuple(array.shape)}")
    zstd, folder = _direct_layout(array)
    if zstd is None:
        array[region] = block
        return
    chunk_shape, shard_shape = tuple(array.chunks), tuple(array.shards)
    for b, n, s, size in zip(start, block.shape, shard_shape, array.shape):
        if b % s or (n % s and b + n != size):
            raise ValueError(f"a block of shape {tuple(block.shape)} at {tuple(start)} is not made of whole shards of {shard_shape}")
    per_shard = tuple(s // c for s, c in zip(shard_shape, chunk_shape))
    first = [b // s for b, s in zip(start, shard_shape)]
    for offset in itertools.product(*(range(-(-n // s)) for n, s in zip(block.shape, shard_shape))):
        chunks = {}
        for position in np.ndindex(*per_shard):
            at = [(o * n + p) * c for o, n, p, c in zip(offset, per_shard, position, chunk_shape)]  # within the block
            if any(a >= n for a, n in zip(at, block.shape)):
                continue  # the shard hangs over the array's edge
            data = block[tuple(slice(a, a + c) for a, c in zip(at, chunk_shape))]
            if _only_fill(data, array.fill_value):
                continue
            if data.shape != chunk_shape:  # an edge chunk, padded as zarr pads it
                padded = np.full(chunk_shape, array.fill_value, dtype=array.dtype)
                padded[tuple(slice(0, n) for n in data.shape)] = data
                data = padded
            chunks[position] = data
        _store_chunks(array, zstd, folder, tuple(f + o for f, o in zip(first, offset)), per_shard, chunks)


class DamagedChunk(Exception):
    """A stored chunk, or a whole shard's index, that cannot be decoded: ``origin`` is its first voxel, ``cause``
    what failed."""

    def __init__(self, origin: tuple[int, ...], cause: Exception):
        super().__init__(f"chunk at {origin}: {cause}")
        self.origin, self.cause = origin, cause


def read_region(array: zarr.Array, region: tuple[slice, ...]) -> np.ndarray | None:
    """``array[region]`` (``region``: one slice of step 1 per axis, within the array, none empty), read shard file by
    shard file as :func:`write_shard` lays them out; None for an array in any other layout (read it through zarr).

    A shard file that is missing or empty reads as the fill value, as in zarr.

    Raises
    ------
    DamagedChunk
        For a shard whose index does not match its checksum or its file, or a chunk that cannot be decoded.
    OSError
        If a file cannot be read.
    """
    zstd, folder = _direct_layout(array)
    if zstd is None:
        return None
    bounds = [(r.start, r.stop) for r in region]
    out = np.empty([b - a for a, b in bounds], dtype=array.dtype)
    chunk_shape, shard_shape = tuple(array.chunks), tuple(array.shards)
    per_shard = tuple(s // c for s, c in zip(shard_shape, chunk_shape))
    index_bytes = int(np.prod(per_shard)) * 16 + 4
    chunk = np.empty(chunk_shape, dtype=array.dtype.newbyteorder("<"))
    for shard in itertools.product(*(range(a // s, -(-b // s)) for (a, b), s in zip(bounds, shard_shape))):
        origin = tuple(i * s for i, s in zip(shard, shard_shape))
        wanted = []  # (position in the shard, where its overlap goes in out, where it comes from in the chunk)
        for position in np.ndindex(*per_shard):
            first = [o + p * c for o, p, c in zip(origin, position, chunk_shape)]
            lo = [max(f, a) for f, (a, _) in zip(first, bounds)]
            hi = [min(f + c, b) for f, c, (_, b) in zip(first, chunk_shape, bounds)]
            if all(l < h for l, h in zip(lo, hi)):
                wanted.append((position,
                               tuple(slice(l - a, h - a) for l, h, (a, _) in zip(lo, hi, bounds)),
                               tuple(slice(l - f, h - f) for l, h, f in zip(lo, hi, first))))
        path = folder / array.metadata.encode_chunk_key(shard)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size == 0:
            for _, dst, _ in wanted:
                out[dst] = array.fill_value
            continue
        index = _read_index(path, size, index_bytes, per_shard, origin)
        stored = []
        for position, dst, src in wanted:
            offset, length = (int(v) for v in index[position])
            if index[position][0] == _NOT_STORED:
                out[dst] = array.fill_value
            else:
                stored.append((offset, length, position, dst, src))
        stored.sort(key=lambda item: item[0])
        run = []  # chunks read with one call: a span of the file up to _READ_SPAN bytes (or one larger chunk)
        for k, item in enumerate(stored):
            run.append(item)
            after = stored[k + 1] if k + 1 < len(stored) else None
            if after is None or after[0] + after[1] - run[0][0] > _READ_SPAN:
                _decode_run(path, run, zstd, chunk, out, origin, chunk_shape)
                run = []
    return out


def _decode_run(path: Path, run: list, zstd, chunk: np.ndarray, out: np.ndarray, origin, chunk_shape) -> None:
    """Read the span of the file that holds ``run``'s chunks, decode each into ``chunk`` and copy its part into ``out``."""
    start = run[0][0]
    try:
        data = read_range(path, start, max(offset + length for offset, length, *_ in run) - start)
    except EOFError as exc:
        raise DamagedChunk(origin, exc) from None
    for offset, length, position, dst, src in run:
        try:
            zstd.decode(data[offset - start : offset + length - start], out=chunk)
        except (ValueError, RuntimeError) as exc:
            raise DamagedChunk(tuple(o + p * c for o, p, c in zip(origin, position, chunk_shape)), exc) from None
        out[dst] = chunk[src]


def _read_index(path: Path, size: int, index_bytes: int, per_shard: tuple[int, ...], origin: tuple[int, ...]) -> np.ndarray:
    """The shard's (offset, length) per chunk, checked against its crc32c and the file's size."""
    if size < index_bytes:
        raise DamagedChunk(origin, ValueError(f"{size} bytes, less than the shard index's {index_bytes}"))
    try:
        raw = read_range(path, size - index_bytes, index_bytes).copy()  # the next read reuses the buffer
    except EOFError as exc:
        raise DamagedChunk(origin, exc) from None
    if google_crc32c.value(raw[:-4].tobytes()) != int(raw[-4:].view("<u4")[0]):
        raise DamagedChunk(origin, ValueError("the shard index does not match its checksum"))
    index = raw[:-4].view("<u8").reshape(*per_shard, 2)
    stored = index[..., 0] != _NOT_STORED
    if np.any(index[..., 0][stored] + index[..., 1][stored] > size - index_bytes):
        raise DamagedChunk(origin, ValueError("the shard index points past the chunks' data"))
    return index


def _only_fill(data: np.ndarray, fill) -> bool:
    fill = np.asarray(fill, dtype=data.dtype)
    if fill.dtype.kind == "f" and np.isnan(fill):
        return bool(np.isnan(data).all())
    return not data.any() if fill == 0 else bool((data == fill).all())


def _direct_layout(array: zarr.Array) -> tuple[numcodecs.Zstd | None, Path | None]:
    """(the chunks' zstd, the array's folder) when its layout is the one :func:`write_shard` writes, else (None, None)."""
    store = array.store_path.store
    codecs = array.metadata.codecs if array.metadata.zarr_format == 3 else ()
    if not isinstance(store, LocalStore) or len(codecs) != 1 or not isinstance(codecs[0], ShardingCodec):
        return None, None
    sharding = codecs[0]
    inner, index_codecs = sharding.codecs, sharding.index_codecs
    little = BytesCodec(endian="little")
    if (
        sharding.index_location != ShardingCodecIndexLocation.end
        or len(inner) != 2 or inner[0] != little or not isinstance(inner[1], ZstdCodec)
        or tuple(index_codecs) != (little, Crc32cCodec())
    ):
        return None, None
    return numcodecs.Zstd(level=inner[1].level, checksum=inner[1].checksum), Path(store.root) / array.store_path.path


def _write_through_zarr(array, shard, per_shard, chunks) -> None:
    """The same shard pasted into one block and written by zarr."""
    chunk_shape = tuple(array.chunks)
    block = np.full([n * c for n, c in zip(per_shard, chunk_shape)], array.fill_value, dtype=array.dtype)
    for position, data in chunks.items():
        block[tuple(slice(p * c, (p + 1) * c) for p, c in zip(position, chunk_shape))] = data
    origin = [s * n for s, n in zip(shard, block.shape)]
    extent = [min(b, size - o) for b, size, o in zip(block.shape, array.shape, origin)]  # a shard past the array's edge
    array[tuple(slice(o, o + e) for o, e in zip(origin, extent))] = block[tuple(slice(0, e) for e in extent)]
