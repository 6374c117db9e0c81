"""What the slice-alignment and stacking steps share: slice ids, the slice table, the canvas, metrics.

These steps work on the whole series rather than one slice: they read the
normalised slices (``normalize/slice_zNN.ome.zarr``), the tables and each
other's JSON records, and write one record or table plus a metrics JSON.
Standard library only at top level (the steps' ``--help`` stays fast).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from serialoct.steps.options import add_parameter_options

WORKFLOW = "reconst_3d"

__all__ = [
    "CACHED_SLICES", "CommonSpace", "SliceCache", "WORKFLOW", "add_series_arguments", "begin_series", "cached_volumes", "load_slice_config", "read_common_space",
    "read_in_canvas", "slice_id_of", "slice_shape", "write_series_metrics", "write_stack",
]

_SLICE_NAME = re.compile(r"slice_z(\d{2})(?:\D|$)")


def slice_id_of(path: str | Path) -> str:
    """The two-digit slice id in a file name such as ``slice_z07.ome.zarr`` or ``slice_z07_transform.json``."""
    from serialoct.errors import InputError

    found = _SLICE_NAME.search(Path(path).name)
    if found is None:
        raise InputError(path, "expected a name with slice_zNN (the two-digit slice id)")
    return found.group(1)


def add_series_arguments(parser: argparse.ArgumentParser, parameters: Sequence[str]) -> None:
    """``--metrics`` and the step's registry options."""
    parser.add_argument("--metrics", required=True, help="metrics JSON to write")
    add_parameter_options(parser, WORKFLOW, parameters)


def load_slice_config(path: str | None, slice_ids: Sequence[str]):
    """The slice table: read from ``path``, or every slice used when there is none.

    Slices of ``slice_ids`` absent from the table get a default (used) row,
    in slice order; rows for slices without data stay (a failed slice keeps
    its reason).
    """
    from serialoct.io.tables import SliceConfigRow, read_slice_config

    rows = read_slice_config(path) if path else []
    known = {r.slice_id for r in rows}
    rows += [SliceConfigRow(s) for s in slice_ids if s not in known]
    return sorted(rows, key=lambda r: r.slice_id)


@dataclass(frozen=True)
class CommonSpace:
    """The common XY canvas of the series (``bring_to_common_space/common_space.json``).

    Attributes
    ----------
    voxel_um : float
        Working resolution (isotropic).
    shape : (int, int)
        Canvas ``(rows, cols)``.
    positions_px : dict of str to (float, float)
        Top-left of each slice's pixel (0, 0) in the canvas.
    depths : dict of str to int
        Planes of each slice.
    """

    voxel_um: float
    shape: tuple[int, int]
    positions_px: dict[str, tuple[float, float]]
    depths: dict[str, int]

    def to_dict(self) -> dict:
        return {"voxel_um": self.voxel_um, "canvas_shape": list(self.shape),
                "positions_px": {k: list(v) for k, v in self.positions_px.items()}, "depths": dict(self.depths)}

    @classmethod
    def from_dict(cls, data: Mapping) -> CommonSpace:
        return cls(float(data["voxel_um"]), tuple(int(v) for v in data["canvas_shape"]),
                   {k: (float(v[0]), float(v[1])) for k, v in data["positions_px"].items()},
                   {k: int(v) for k, v in data["depths"].items()})


def read_common_space(path: str | Path) -> CommonSpace:
    """Read ``common_space.json``."""
    from serialoct.errors import FormatError
    from serialoct.io.jsonfile import read_json

    data = read_json(path, required=("voxel_um", "canvas_shape", "positions_px", "depths"))
    try:
        return CommonSpace.from_dict(data)
    except (TypeError, ValueError, IndexError, AttributeError) as exc:
        raise FormatError(path, f"not a common-space record ({exc})") from None


def begin_series(args: argparse.Namespace, parameters: Sequence[str]):
    """Start a series step: its validated parameters, a timer, the thread cap applied and the common space (``--common_space``)."""
    from serialoct.compute import apply_cpu_limits
    from serialoct.steps.options import parameters_from_args
    from serialoct.steps.slice_step import Timer

    p = parameters_from_args(args, WORKFLOW, parameters)
    timer = Timer()
    apply_cpu_limits()
    return p, timer, read_common_space(args.common_space)


def read_in_canvas(path: str | Path, space: CommonSpace, slice_id: str, planes=None):
    """A normalised slice placed in the canvas: ``(Z, rows, cols)`` float32, 0 outside the slice.

    ``planes`` (a range), when given, names the planes to read and place; the
    others stay 0: a registration compares a few planes of each slice.
    """
    import numpy as np

    from serialoct.io.slices import read_planes, read_slice
    from serialoct.stack.render import warp_to_canvas

    if planes is None:
        return warp_to_canvas(read_slice(path).volume, space.shape, offset_px=space.positions_px[slice_id])
    out = np.zeros((slice_shape(path)[0], *space.shape), dtype=np.float32)
    if len(planes):  # only their chunks are read
        out[planes] = warp_to_canvas(read_planes(path, planes[0], planes[-1] + 1)[:: planes.step], space.shape,
                                     offset_px=space.positions_px[slice_id])
    return out


def write_series_metrics(path, step: str, params: Mapping, metrics: Mapping, elapsed_s: float, *, info=None, warnings=()) -> None:
    """Write a series step's metrics JSON (formats.md §5)."""
    from serialoct.io.tables import StepMetrics, write_metrics
    from serialoct.steps.slice_step import finite_metric

    write_metrics(path, StepMetrics(step, info={"elapsed_s": round(elapsed_s, 3), **(info or {})}, params=dict(params),
                                    metrics={k: finite_metric(m) for k, m in metrics.items()}, warnings=tuple(warnings)))


#: Slices kept decompressed while a stack renders: a block of planes touches at most two or three slices.
CACHED_SLICES = 3


def cached_volumes(paths: Mapping[str, str], *, read_ahead: bool = False) -> "SliceCache":
    """The series' slices read on demand (:class:`SliceCache`); with ``read_ahead``, each slice read whole starts
    the whole read of the next one in ``paths``' order (the order a stack renders them in)."""
    return SliceCache(paths, read_ahead=read_ahead)


class SliceCache:
    """``cache(slice_id)``: a slice read whole, the last :data:`CACHED_SLICES` kept (memory does not grow with
    the series); ``cache.planes(slice_id, a, b)``: planes ``a .. b - 1``, from a slice held whole, else only their
    chunks read; ``cache.depth(slice_id)``: its number of planes.

    With ``read_ahead``, the first whole read of a slice starts the whole read of the next slice of ``paths``
    in a thread of its own, so it is decoded while the caller works on this one (one slice more in memory;
    the ``medium`` stack step read its 19 slices in 2.9 s of its 20). ``cache(slice_id)`` is called from one
    thread at a time.
    """

    def __init__(self, paths: Mapping[str, str], *, read_ahead: bool = False):
        from collections import OrderedDict

        self._paths = dict(paths)
        self._held = OrderedDict()
        ids = list(self._paths)
        self._next = dict(zip(ids[:-1], ids[1:])) if read_ahead else {}
        self._reading: dict[str, object] = {}  # slice id -> Future of its whole read
        self._reader = None

    def __call__(self, slice_id: str):
        if slice_id in self._held:
            self._held.move_to_end(slice_id)
            return self._held[slice_id]
        reading = self._reading.pop(slice_id, None)
        self._held[slice_id] = reading.result() if reading is not None else self._read(slice_id)
        while len(self._held) > CACHED_SLICES:
            self._held.popitem(last=False)
        following = self._next.get(slice_id)
        if following is not None and following not in self._held and following not in self._reading:
            if self._reader is None:
                from concurrent.futures import ThreadPoolExecutor

                self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slice-reader")
            self._reading[following] = self._reader.submit(self._read, following)
        return self._held[slice_id]

    def _read(self, slice_id: str):
        from serialoct.io.slices import read_slice

        return read_slice(self._paths[slice_id]).volume

    def planes(self, slice_id: str, start: int, stop: int):
        from serialoct.io.slices import read_planes

        if slice_id in self._held:
            return self._held[slice_id][max(0, start) : stop]
        return read_planes(self._paths[slice_id], start, stop)

    def depth(self, slice_id: str) -> int:
        if slice_id in self._held:
            return int(self._held[slice_id].shape[0])
        return slice_shape(self._paths[slice_id])[0]


def slice_shape(path) -> tuple[int, int, int]:
    """``(Z, rows, cols)`` of a slice from its metadata (no voxel is read)."""
    from serialoct.io.omezarr import open_ome_zarr

    return tuple(int(n) for n in open_ome_zarr(path).level(0).shape)


@dataclass(frozen=True)
class WrittenStack:
    """What :func:`write_stack` wrote: the pyramid's resolutions (µm) and the depth section at the middle row."""

    levels: list[float]
    row_section: np.ndarray  # (z, cols) float32, the volume's [:, rows // 2, :]


def write_stack(out, plan, p: Mapping, render, *, extra_attrs: Mapping, workers: int = 1) -> WrittenStack:
    """Write a stack plan's volume block by block with the analysis pyramid, and its orthogonal views beside it.

    ``render(z0, z1)`` returns output planes ``z0 .. z1 - 1``; a block is one
    cut thickness of planes (the shard depth), encoded and written in a
    thread of its own while the next one renders (two blocks in memory at
    most); ``workers`` threads compute the pyramid. The orthogonal views'
    sections are kept as the blocks go by, so nothing is read back for them
    (0.7 s at the end of a ``medium`` stack step). Returns the pyramid's
    resolutions and the depth section at the middle row.
    """
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    import numpy as np

    from serialoct.io.images import write_png
    from serialoct.io.omezarr import create_ome_zarr
    from serialoct.io.shards import write_region
    from serialoct.report.previews import orthogonal_picture
    from serialoct.stack.plan import pyramid_levels
    from serialoct.stack.render import iter_blocks
    from serialoct.stack.zmatch import expected_z_offset

    out = Path(out)
    levels = pyramid_levels(plan.voxel_um, p["pyramid_resolutions"], p["pyramid_n_levels"], p["pyramid_make_isotropic"])
    block = max(1, expected_z_offset(p["registration_slicing_interval_mm"] * 1000.0, plan.voxel_um))
    depth, rows, cols = plan.shape
    chunks = (block, min(256, rows), min(256, cols))
    plane, row_section, column_section = None, [], []  # the central sections, kept as the blocks go by
    shards = (block, *(-(-n // c) * c if n <= 1024 else c * 4 for n, c in zip((rows, cols), chunks[1:])))
    with create_ome_zarr(out, plan.shape, voxel_size_mm=(plan.voxel_um / 1000.0,) * 3, chunks=chunks, shards=shards,
                         pyramid_resolutions_um=levels[1:], make_isotropic=p["pyramid_make_isotropic"],
                         name=out.name.removesuffix(".ome.zarr"), extra_attrs=dict(extra_attrs), workers=workers) as writer, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="stack-writer") as pool:
        written = None
        for z0, z1 in iter_blocks(plan, block):
            planes = render(z0, z1)
            if z0 <= depth // 2 < z1:
                plane = planes[depth // 2 - z0].copy()
            row_section.append(planes[:, rows // 2, :].copy())
            column_section.append(planes[:, :, cols // 2].copy())
            if written is not None:
                written.result()
            written = pool.submit(write_region, writer.array, (z0, 0, 0), planes)
        if written is not None:
            written.result()
    row_section = np.concatenate(row_section)
    write_png(out.with_name(out.name.removesuffix(".ome.zarr") + ".png"),
              orthogonal_picture(plane, row_section, np.concatenate(column_section)))  # nothing read back
    return WrittenStack(levels, row_section)
