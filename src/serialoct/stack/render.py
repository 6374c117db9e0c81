"""Render the stacked volume one block of output planes at a time.

:func:`render_block` asks a caller-supplied reader for only the planes of
only the slices that contribute to the block (at most two per plane, see
:mod:`serialoct.stack.plan`), warps each plane into the canvas (rotation
about the canvas centre and translation, linear interpolation) and blends:

    out(z, q) = sum_k w_k(z) v_k(z, q) / sum_k w_k(z) m_k(z, q)

with ``v_k`` the warped plane, ``m_k`` its warped data mask (the pixels
that are not exactly 0: the canvas padding of a slice is no data) and
``w_k`` the plan's z weights. Dividing by the warped mask keeps the values
near a slice's edge and fills a blend zone where only one slice has data,
instead of darkening it. Memory: one block, one plane per slice and thread, and
one :class:`LinearSampler` (about 52 bytes per canvas pixel) per slice being added.

:func:`iter_blocks` cuts the output depth into blocks (a shard depth), so a
step wrapper writes level 0 of the OME-Zarr shard by shard.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import ndimage

from serialoct.stack.plan import PlannedSlice, StackPlan

__all__ = ["LinearSampler", "ReadPlanes", "canvas_matrix", "iter_blocks", "render_block", "warp_from_canvas", "warp_to_canvas"]

#: ``read_planes(index, z0, z1)`` returns planes ``z0 .. z1 - 1`` of slice
#: ``index``, shape ``(z1 - z0, H, W)``.
ReadPlanes = Callable[[int, int, int], np.ndarray]

#: Canvas pixels whose summed mask weight is below this get 0: they lie
#: outside every slice (linear interpolation leaves a sliver of weight there).
MIN_MASK_WEIGHT = 1e-3


def canvas_matrix(
    offset_px: tuple[float, float], rotation_deg: float, translation_px: tuple[float, float], centre_px: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """The ``(matrix, offset)`` of :func:`scipy.ndimage.affine_transform` that samples a slice into the canvas.

    Canvas pixel ``q = R (p + o - c) + c + t`` for slice pixel ``p``, so
    ``p = R^T (q - c - t) + c - o``.

    Returns
    -------
    matrix : ndarray, shape (2, 2)
    offset : ndarray, shape (2,)
    """
    a = math.radians(rotation_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    c, t, o = (np.asarray(v, dtype=np.float64) for v in (centre_px, translation_px, offset_px))
    inv = rot.T
    return inv, c - o - inv @ (c + t)


class LinearSampler:
    """Linear interpolation of planes at the source points of one affine map, as :func:`scipy.ndimage.affine_transform`
    with ``order=1`` and ``mode="constant"``, ``cval=0`` samples them: each output pixel whose source point lies within
    ``[0, n - 1]`` on both axes is interpolated from its four neighbours, every other one is 0.

    The points, neighbours and weights are computed once for the map and the shapes, then applied to any number of
    planes: 4-5x less time per plane than ``affine_transform`` on a ``medium`` canvas (value and mask), the same
    values to float32 rounding (2e-7 of values near 1). Memory: about 52 bytes per output pixel.
    """

    def __init__(self, matrix: np.ndarray, offset: np.ndarray, in_shape: tuple[int, int], out_shape: tuple[int, int]):
        h, w = (int(n) for n in in_shape)
        self.out_shape = tuple(int(n) for n in out_shape)
        rows = np.arange(self.out_shape[0], dtype=np.float64)[:, None]
        cols = np.arange(self.out_shape[1], dtype=np.float64)[None, :]
        # the coordinates summed in affine_transform's order, so the same points fall inside
        sr = (offset[0] + matrix[0, 0] * rows) + matrix[0, 1] * cols
        sc = (offset[1] + matrix[1, 0] * rows) + matrix[1, 1] * cols
        inside = (sr >= 0) & (sr <= h - 1) & (sc >= 0) & (sc <= w - 1)
        #: flat indices of the output pixels that are sampled
        self.where = np.flatnonzero(inside)
        sr, sc = sr[inside], sc[inside]
        r0, c0 = np.floor(sr), np.floor(sc)
        fr, fc = sr - r0, sc - c0
        r0, c0 = r0.astype(np.intp), c0.astype(np.intp)
        first = r0 * w + c0
        down = np.where(r0 + 1 < h, w, 0)  # on the last row or column the second neighbour has weight 0: reuse the first
        right = (c0 + 1 < w).astype(np.intp)
        self._index = (first, first + right, first + down, first + down + right)
        self._weight = tuple(x.astype(np.float32) for x in ((1 - fr) * (1 - fc), (1 - fr) * fc, fr * (1 - fc), fr * fc))

    def sample(self, plane: np.ndarray) -> np.ndarray:
        """The plane's values at the sampled output pixels (``where``), float32."""
        flat = np.ascontiguousarray(plane, dtype=np.float32).reshape(-1)
        values = self._weight[0] * np.take(flat, self._index[0])
        for weight, index in zip(self._weight[1:], self._index[1:]):
            values += weight * np.take(flat, index)
        return values

    def sample_mask(self, plane: np.ndarray) -> np.ndarray:
        """The plane's data mask (``plane != 0``) interpolated at the sampled output pixels, float32."""
        flat = np.asarray(plane).reshape(-1)
        values = np.zeros(len(self.where), dtype=np.float32)
        for weight, index in zip(self._weight, self._index):
            values += weight * (np.take(flat, index) != 0)
        return values


def warp_to_canvas(
    planes: np.ndarray,
    canvas_shape: tuple[int, int],
    *,
    offset_px: tuple[float, float] = (0.0, 0.0),
    rotation_deg: float = 0.0,
    translation_px: tuple[float, float] = (0.0, 0.0),
    centre_px: tuple[float, float] | None = None,
    with_mask: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Place planes of a slice in the canvas: motor offset, then rotation and translation.

    Parameters
    ----------
    planes : ndarray, shape (Z, h, w) or (h, w)
        Planes of one slice.
    canvas_shape : (int, int)
        ``(H, W)``.
    offset_px, rotation_deg, translation_px, centre_px
        See :func:`canvas_matrix`; the centre defaults to the canvas centre.
    with_mask : bool
        Also return the warped data mask (``planes != 0``) as float32.

    Returns
    -------
    ndarray, shape (Z, H, W) or (H, W), float32
        And the mask, same shape, when ``with_mask``. Outside the slice: 0.
    """
    arr = np.asarray(planes)
    single = arr.ndim == 2
    arr = arr[None] if single else arr
    h, w = canvas_shape
    centre = ((h - 1) / 2.0, (w - 1) / 2.0) if centre_px is None else centre_px
    matrix, offset = canvas_matrix(offset_px, rotation_deg, translation_px, centre)
    identity = _whole_pixel_shift(matrix, offset)
    out = np.zeros((len(arr), h, w), dtype=np.float32)
    mask = np.zeros_like(out) if with_mask else None
    sampler = None if identity else LinearSampler(matrix, offset, arr.shape[1:], (h, w))
    for z, plane in enumerate(arr):
        data = plane.astype(np.float32, copy=False)
        if identity:
            _paste(out[z], data, -np.round(offset).astype(int))
            if mask is not None:
                _paste(mask[z], (data != 0).astype(np.float32), -np.round(offset).astype(int))
            continue
        out[z].reshape(-1)[sampler.where] = sampler.sample(data)
        if mask is not None:
            mask[z].reshape(-1)[sampler.where] = sampler.sample_mask(data)
    if single:
        out = out[0]
        mask = None if mask is None else mask[0]
    return (out, mask) if with_mask else out


def _whole_pixel_shift(matrix: np.ndarray, offset: np.ndarray) -> bool:
    return bool(np.allclose(matrix, np.eye(2)) and np.allclose(offset, np.round(offset)))


def warp_from_canvas(
    image: np.ndarray,
    frame_shape: tuple[int, int],
    *,
    offset_px: tuple[float, float] = (0.0, 0.0),
    rotation_deg: float = 0.0,
    translation_px: tuple[float, float] = (0.0, 0.0),
    centre_px: tuple[float, float] | None = None,
    cval: float = 0.0,
) -> np.ndarray:
    """The inverse of :func:`warp_to_canvas` for one image: a canvas image seen in a slice's own frame.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        In the canvas.
    frame_shape : (int, int)
        ``(h, w)`` of the slice.
    offset_px, rotation_deg, translation_px, centre_px
        The slice's placement, as given to :func:`warp_to_canvas`.
    cval : float
        Value of frame pixels that fall outside the canvas.

    Returns
    -------
    ndarray, shape (h, w), float32
    """
    h, w = image.shape
    centre = ((h - 1) / 2.0, (w - 1) / 2.0) if centre_px is None else centre_px
    matrix, offset = canvas_matrix(offset_px, rotation_deg, translation_px, centre)
    forward = np.linalg.inv(matrix)  # canvas q = M^-1 (p - offset)
    out = np.empty(frame_shape, dtype=np.float32)
    ndimage.affine_transform(np.asarray(image, np.float32), forward, -forward @ offset, output_shape=frame_shape,
                             output=out, order=1, cval=cval)
    return out


def _paste(dst: np.ndarray, src: np.ndarray, top_left: np.ndarray) -> None:
    """Copy ``src`` into ``dst`` at integer ``top_left`` (clipped to ``dst``)."""
    r0, c0 = int(top_left[0]), int(top_left[1])
    rs, cs = max(0, -r0), max(0, -c0)
    rd, cd = max(0, r0), max(0, c0)
    nr = min(src.shape[0] - rs, dst.shape[0] - rd)
    nc = min(src.shape[1] - cs, dst.shape[1] - cd)
    if nr > 0 and nc > 0:
        dst[rd : rd + nr, cd : cd + nc] = src[rs : rs + nr, cs : cs + nc]


def render_block(plan: StackPlan, read_planes: ReadPlanes, z0: int, z1: int, *, workers: int = 1,
                 samplers: dict[int, LinearSampler | None] | None = None) -> np.ndarray:
    """Output planes ``z0 .. z1 - 1`` of the stacked volume.

    Parameters
    ----------
    plan : StackPlan
    read_planes : callable ``(index, p0, p1) -> ndarray (p1 - p0, h, w)``
        Reads planes ``p0 .. p1 - 1`` of slice ``index``; called once per
        contributing slice with only the planes the block needs.
    z0, z1 : int
        Output plane range, ``0 <= z0 < z1 <= plan.shape[0]``.
    workers : int
        Planes warped at once (threads: SciPy's warp releases the GIL).
        The result does not depend on it.
    samplers : dict, optional
        Each slice's :class:`LinearSampler` (by slice index), kept here from
        block to block: a slice spans several blocks, and its sampler took
        more time than its planes' sampling (``medium``: 39 made for 19
        slices, 2 s). Those of slices that end above ``z0`` are dropped
        (blocks are rendered top down). The result does not depend on it.

    Returns
    -------
    ndarray, shape (z1 - z0, H, W), float32
        0 where no slice has data (holes, outside the tissue canvas).
    """
    depth, h, w = plan.shape
    if not 0 <= z0 < z1 <= depth:
        raise ValueError(f"block planes {z0}..{z1} outside the volume's 0..{depth}")
    num = np.zeros((z1 - z0, h, w), dtype=np.float32)
    den = np.zeros_like(num)
    samplers = {} if samplers is None else samplers
    for q in plan.slices:
        if q.z_stop <= z0:
            samplers.pop(q.slice.index, None)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for p in plan.contributors(z0, z1):
            _accumulate(plan, p, read_planes, z0, z1, num, den, pool, samplers)
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > MIN_MASK_WEIGHT)
    return out


def _accumulate(
    plan: StackPlan, p: PlannedSlice, read_planes: ReadPlanes, z0: int, z1: int, num: np.ndarray, den: np.ndarray, pool: ThreadPoolExecutor,
    samplers: dict,
) -> None:
    a, b = max(z0, p.z_start), min(z1, p.z_stop)
    weights = p.weights(a, b)
    s = p.slice
    local = read_planes(s.index, a - p.z_start, b - p.z_start)
    if local.shape[0] != b - a:
        raise ValueError(f"read_planes({s.index}, {a - p.z_start}, {b - p.z_start}) returned {local.shape[0]} planes, expected {b - a}")
    t = s.transform
    matrix, offset = canvas_matrix(s.offset_px, t.rotation_deg, t.translation_px, plan.centre_px)
    # one sampler for all of this slice's planes; a whole-pixel shift is pasted instead
    if s.index not in samplers:
        samplers[s.index] = None if _whole_pixel_shift(matrix, offset) else LinearSampler(matrix, offset, local.shape[1:], plan.shape[1:])
    sampler = samplers[s.index]

    def add(i: int) -> None:  # each plane writes only its own output plane
        weight = np.float32(weights[i])
        if sampler is None:
            value, mask = warp_to_canvas(local[i], plan.shape[1:], offset_px=s.offset_px, rotation_deg=t.rotation_deg,
                                         translation_px=t.translation_px, centre_px=plan.centre_px, with_mask=True)
            num[a - z0 + i] += weight * value
            den[a - z0 + i] += weight * mask
        else:
            num[a - z0 + i].reshape(-1)[sampler.where] += weight * sampler.sample(local[i])
            den[a - z0 + i].reshape(-1)[sampler.where] += weight * sampler.sample_mask(local[i])

    list(pool.map(add, [i for i, wz in enumerate(weights) if wz > 0]))


def iter_blocks(plan: StackPlan, block_planes: int) -> Iterator[tuple[int, int]]:
    """Output plane ranges ``(z0, z1)`` of ``block_planes`` planes (the last one shorter).

    Raises
    ------
    ValueError
        When ``block_planes < 1``.
    """
    if block_planes < 1:
        raise ValueError(f"block_planes = {block_planes}: expected >= 1")
    depth = plan.shape[0]
    for z0 in range(0, depth, block_planes):
        yield z0, min(depth, z0 + block_planes)
