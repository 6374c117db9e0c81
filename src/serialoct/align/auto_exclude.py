"""Automatic exclusion of extended low-quality clusters (step ``auto_exclude_slices``).

A pair of consecutive slices whose depth match is poor (z-correlation below
``auto_exclude_z_corr``, or not measured) says that one of the two is bad,
not which. A single bad slice spoils the two pairs it belongs to; a cluster
of ``n`` bad slices spoils ``n + 1`` consecutive pairs. So a run of at least
``auto_exclude_consecutive`` poor pairs, chained through shared slices
(``(a, b), (b, c), (c, d)``), marks the slices *inside* the run: each
belongs to two poor pairs (``b`` and ``c``). A run that reaches either end of
the series also marks the end slice, which has no good pair to vouch for it.
Isolated poor pairs and short runs are left to the transform gating (a
single bad slice is stacked by motor position only, through its skipped
transforms).

Stacking treats ``auto_excluded = true`` as "place by motor positions only"
(formats.md §4); :func:`slice_config_updates` gives the columns to stamp.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["AutoExclusion", "LowQualityRun", "find_low_quality_clusters", "slice_config_updates"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LowQualityRun:
    """A run of consecutive poor pairs.

    Attributes
    ----------
    pairs : tuple of (str, str)
        ``(fixed_id, moving_id)`` in order, each moving id the next fixed id.
    z_correlations : tuple of float
        Their z-correlations (NaN where none was measured).
    excluded : tuple of str
        The slices the run marks.
    """

    pairs: tuple[tuple[str, str], ...]
    z_correlations: tuple[float, ...]
    excluded: tuple[str, ...]

    @property
    def reason(self) -> str:
        (first, _), (_, last) = self.pairs[0], self.pairs[-1]
        return f"in a run of {len(self.pairs)} consecutive pairs with low z_correlation ({first} to {last})"


@dataclass(frozen=True)
class AutoExclusion:
    """Result of :func:`find_low_quality_clusters`.

    Attributes
    ----------
    excluded : dict of str to str
        Slice id to the reason it is excluded, in slice order.
    runs : tuple of LowQualityRun
        Every run long enough to exclude slices.
    low_pairs : tuple of (str, str)
        Every poor pair, in a run or not.
    """

    excluded: dict[str, str]
    runs: tuple[LowQualityRun, ...]
    low_pairs: tuple[tuple[str, str], ...]


def _as_pairs(z_correlations) -> dict[tuple[str, str], float]:
    if not isinstance(z_correlations, Mapping):
        raise ValueError(f"z_correlations must be a mapping, got {type(z_correlations).__name__}")
    keys = list(z_correlations)
    if all(isinstance(k, tuple) and len(k) == 2 for k in keys):
        pairs = {(str(f), str(m)): float(v) for (f, m), v in z_correlations.items()}
    elif all(isinstance(k, str) for k in keys):
        # Per moving slice: its correlation with the slice before it in id order (the first has none).
        ids = sorted(keys)
        pairs = {(a, b): float(z_correlations[b]) for a, b in zip(ids, ids[1:])}
    else:
        raise ValueError("z_correlations keys must all be (fixed_id, moving_id) tuples or all slice ids; "
                         f"got {keys[:3]}{'...' if len(keys) > 3 else ''}")
    for fixed, moving in pairs:
        if not fixed < moving:
            raise ValueError(f"pair ({fixed!r}, {moving!r}): expected the fixed slice id before the moving one")
    return dict(sorted(pairs.items()))


def find_low_quality_clusters(z_correlations: Mapping, *, consecutive: int = 3, z_corr_threshold: float = 0.6) -> AutoExclusion:
    """Slices inside runs of consecutive pairs with low z-correlation.

    Parameters
    ----------
    z_correlations : mapping
        ``{(fixed_id, moving_id): z_correlation}`` for the registered pairs,
        or ``{slice_id: z_correlation}`` with each slice's correlation with
        the slice before it in id order (the first slice's value is unused).
        Pairs chain when one's moving id is the next one's fixed id (pairs
        across a missing slice, ``("03", "05")``, chain too). NaN counts as low.
    consecutive : int
        Shortest run that excludes slices (``auto_exclude_consecutive``).
    z_corr_threshold : float
        A pair is poor below this (``auto_exclude_z_corr``).

    Returns
    -------
    AutoExclusion

    Raises
    ------
    ValueError
        For ``consecutive < 1``, or keys that are neither pairs nor slice ids.

    Examples
    --------
    >>> z = {("00", "01"): 0.9, ("01", "02"): 0.2, ("02", "03"): 0.3, ("03", "04"): 0.1, ("04", "05"): 0.8}
    >>> sorted(find_low_quality_clusters(z).excluded)
    ['02', '03']
    """
    if consecutive < 1:
        raise ValueError(f"consecutive = {consecutive}: expected a run length >= 1")
    pairs = _as_pairs(z_correlations)
    ids = sorted({i for pair in pairs for i in pair})
    low = [p for p, v in pairs.items() if not (math.isfinite(v) and v >= z_corr_threshold)]
    low_set = set(low)
    runs: list[LowQualityRun] = []
    current: list[tuple[str, str]] = []
    for pair in pairs:
        chained = bool(current) and current[-1][1] == pair[0]
        if pair in low_set and (chained or not current):
            current.append(pair)
            continue
        if len(current) >= consecutive:
            runs.append(_run(current, pairs, ids))
        current = [pair] if pair in low_set else []
    if len(current) >= consecutive:
        runs.append(_run(current, pairs, ids))
    excluded = {}
    for run in runs:
        for slice_id in run.excluded:
            excluded.setdefault(slice_id, run.reason)
    if excluded:
        log.info("auto-excluded %d slice(s) %s: %d run(s) of >= %d pairs with z_correlation < %g",
                 len(excluded), ", ".join(excluded), len(runs), consecutive, z_corr_threshold)
    return AutoExclusion(dict(sorted(excluded.items())), tuple(runs), tuple(low))


def _run(pairs: list[tuple[str, str]], all_pairs: Mapping[tuple[str, str], float], ids: list[str]) -> LowQualityRun:
    """The run, marking its inner slices, plus an end of the series the run reaches."""
    inner = [moving for _, moving in pairs[:-1]]
    if pairs[0][0] == ids[0]:
        inner.insert(0, ids[0])
    if pairs[-1][1] == ids[-1]:
        inner.append(ids[-1])
    return LowQualityRun(tuple(pairs), tuple(all_pairs[p] for p in pairs), tuple(inner))


def slice_config_updates(exclusion: AutoExclusion) -> dict[str, dict[str, object]]:
    """``{slice_id: {"auto_excluded": True, "auto_exclude_reason": ...}}`` for ``io.tables.stamp_slice_config``."""
    return {slice_id: {"auto_excluded": True, "auto_exclude_reason": reason} for slice_id, reason in exclusion.excluded.items()}
