"""The series of slices that stacking assembles, and the pairwise facts chained along it.

The step ``stack`` decides, from the final slice table and the interpolation
manifest, which volume stands for each slice (:func:`stack_order`), and
collects for every slice the pairwise transform that links it to the slice
just above it in that order (:func:`chain_pairs`): the registration of the
pair when the two are consecutive slices, the identity for an interpolated
slice (it is built in its upper neighbour's frame), the boundary registration
of the interpolation for the slice below a filled gap, and nothing (NaN, the
transform is skipped) across a hole.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PairLink", "chain_arrays", "chain_pairs", "stack_order"]


@dataclass(frozen=True)
class PairLink:
    """How a slice relates to the slice above it in the stack.

    Attributes
    ----------
    rotation_deg : float
    translation_px : (float, float)
        ``(row, col)``; the convention of :mod:`serialoct.align.pairwise`.
    confidence, z_correlation : float
    z_offset_planes : int or None
        Plane of the upper slice imaging this slice's plane 0, from the depth match.
    source : str
        ``registration``, ``interpolated`` (identity), ``interpolation_boundary`` or ``none``.
    """

    rotation_deg: float = math.nan
    translation_px: tuple[float, float] = (math.nan, math.nan)
    confidence: float = 0.0
    z_correlation: float = math.nan
    z_offset_planes: int | None = None
    source: str = "none"


def stack_order(slice_ids: Sequence[str], usable: Sequence[str], interpolated: Sequence[str]) -> dict[str, str]:
    """Which volume stands for each stacked slice: ``{slice_id: "normalized" | "interpolated"}``, in slice order.

    A usable slice is stacked from its normalised volume; an interpolated one
    from the interpolation (even if the slice had data that was excluded);
    anything else is a hole.

    Examples
    --------
    >>> stack_order(["01", "02", "03", "05"], usable=["01", "02", "05"], interpolated=["04"])
    {'01': 'normalized', '02': 'normalized', '04': 'interpolated', '05': 'normalized'}
    """
    usable_set = set(usable) & set(slice_ids)
    out = {sid: "normalized" for sid in usable_set}
    out.update({sid: "interpolated" for sid in interpolated})
    return dict(sorted(out.items()))


def chain_pairs(
    order: Mapping[str, str],
    registrations: Mapping[str, PairLink],
    boundary: Mapping[str, PairLink] | None = None,
) -> dict[str, PairLink]:
    """The link of every stacked slice to the one above it (the first has none).

    Parameters
    ----------
    order : mapping of str to str
        :func:`stack_order`.
    registrations : mapping of str to PairLink
        Moving slice id -> its registration to slice ``id - 1`` (already gated).
    boundary : mapping of str to PairLink, optional
        Lower neighbour id -> the interpolation's boundary registration
        (lower slice onto the upper neighbour of the gap).
    """
    ids = list(order)
    out: dict[str, PairLink] = {}
    for above, sid in zip(ids[:-1], ids[1:]):
        adjacent = int(sid) == int(above) + 1
        if not adjacent:
            out[sid] = PairLink()
        elif order[sid] == "interpolated":
            out[sid] = PairLink(0.0, (0.0, 0.0), 1.0, 1.0, None, "interpolated")
        elif order[above] == "interpolated":
            out[sid] = (boundary or {}).get(sid, PairLink())
        else:
            out[sid] = registrations.get(sid, PairLink())
    return out


def chain_arrays(order: Mapping[str, str], links: Mapping[str, PairLink]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(rotation_deg, translation_px, confidence, z_correlation)`` in stack order, for :func:`~serialoct.stack.transforms.resolve_transforms`."""
    ids = list(order)
    none = PairLink()
    rows = [links.get(sid, none) for sid in ids]
    rot = np.array([r.rotation_deg for r in rows], dtype=np.float64)
    trans = np.array([r.translation_px for r in rows], dtype=np.float64).reshape(len(ids), 2)
    conf = np.array([r.confidence for r in rows], dtype=np.float64)
    zcorr = np.array([r.z_correlation for r in rows], dtype=np.float64)
    return rot, trans, conf, zcorr
