"""Slice alignment: re-homing filter, shifts analysis, quality, common space (and, from others, pairwise registration, auto-exclusion, stacking)."""

from serialoct.align import common_space, quality, rehoming, shifts_analysis

__all__ = ["common_space", "quality", "rehoming", "shifts_analysis"]
