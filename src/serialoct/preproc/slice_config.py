"""The first ``slice_config.csv`` of an acquisition (``generate_slice_config``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from serialoct.io.tables import SliceConfigRow
from serialoct.preproc.galvo import GalvoDetection

__all__ = ["initial_slice_config"]


def initial_slice_config(
    slice_ids: Sequence[str],
    *,
    exclude_first_slices: int = 1,
    galvo: Mapping[str, GalvoDetection] | None = None,
    galvo_confidence_threshold: float = 0.6,
    failures: Mapping[str, str] | None = None,
) -> list[SliceConfigRow]:
    """One row per slice: the first ``exclude_first_slices`` and failed slices unused.

    Parameters
    ----------
    slice_ids : sequence of str
        Slice ids present in the raw data, in order.
    exclude_first_slices : int
        Leading (calibration) slices to mark ``use = false``.
    galvo : mapping of slice id to GalvoDetection, optional
        With ``detect_galvo``: fills ``galvo_confidence`` and ``galvo_fix``.
    galvo_confidence_threshold : float
        The confidence at which the fix was applied.
    failures : mapping of slice id to str, optional
        Slices whose preprocessing failed, with the reason: ``use = false``.
    """
    failures = failures or {}
    rows = []
    for index, slice_id in enumerate(slice_ids):
        reasons = []
        if index < exclude_first_slices:
            reasons.append(f"calibration slice (exclude_first_slices={exclude_first_slices})")
        if slice_id in failures:
            reasons.append(f"preprocessing failed: {failures[slice_id]}")
        detection = (galvo or {}).get(slice_id)
        rows.append(
            SliceConfigRow(
                slice_id=slice_id,
                use=not reasons,
                exclude_reason="; ".join(reasons),
                galvo_confidence=None if detection is None else detection.confidence,
                galvo_fix=False if detection is None else detection.should_fix(galvo_confidence_threshold),
            )
        )
    return rows
