"""Reconstruction robustness presets: named overlays of ``reconst_3d`` values.

The reference guide ships three Nextflow profiles that bundle stacking and
registration settings, described only in words. These overlays are our
reading of those words as concrete values; :func:`serialoct.params.resolve`
applies them between the defaults and the user's overrides, and validates
them like overrides (a preset cannot switch on a parameter serialoct does
not implement yet).

conservative
    "Trusts motor positions for XY, applies rotation-only from registration,
    skips unreliable transforms, interpolates single-slice gaps."
    Pairwise transforms stay on but only their rotation is used
    (``apply_rotation_only``), and translations are not accumulated, so XY
    comes from the motors; error- and warning-flagged transforms are skipped;
    single-slice gaps are interpolated. Differs from the defaults in
    ``apply_rotation_only`` (true) and ``stack_accumulate_translations``
    (false). The guide calls this the default behaviour, yet its parameter
    table defaults apply full transforms with accumulation: we keep the table's
    defaults and make the preset explicit.
aggressive
    "Uses full pairwise transforms (XY + rotation) and accumulates them
    cumulatively." Full euler transforms are applied whatever their
    confidence (both confidence thresholds 0, so none is degraded to
    rotation-only or dropped), and translations are accumulated at full
    weight (no confidence weighting). Error- and warning-flagged transforms
    are still skipped and the drift cap stays.
minimal
    "Motor-only stacking, ignores all pairwise registration." Pairwise
    transforms are not applied or accumulated, depth overlap is the nominal
    one, and auto-exclusion (which judges slices by their pairwise
    registration metrics) is off.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from serialoct.errors import ParameterError

__all__ = ["PRESETS", "Preset", "preset_overlay"]


@dataclass(frozen=True)
class Preset:
    """A named overlay of ``reconst_3d`` parameter values.

    Parameters
    ----------
    name : str
        Preset name as given to ``--preset``.
    summary : str
        When to use it, in one sentence.
    values : Mapping[str, object]
        Parameter name -> value, in canonical form.
    """

    name: str
    summary: str
    values: MappingProxyType


def _preset(name: str, summary: str, **values: object) -> Preset:
    return Preset(name, summary, MappingProxyType(values))


PRESETS: MappingProxyType = MappingProxyType({
    p.name: p
    for p in (
        _preset(
            "conservative",
            "XY from the motors, rotation-only registration, unreliable transforms skipped; "
            "the recommended starting point.",
            apply_pairwise_transforms=True,
            apply_rotation_only=True,
            stack_accumulate_translations=False,
            skip_error_transforms=True,
            skip_warning_transforms=True,
            interpolate_missing_slices=True,
        ),
        _preset(
            "aggressive",
            "Full pairwise transforms (XY + rotation) accumulated slice after slice; "
            "best when registration is reliable, poor when it is not.",
            apply_pairwise_transforms=True,
            apply_rotation_only=False,
            registration_transform="euler",
            transform_confidence_high=0.0,
            transform_confidence_low=0.0,
            stack_accumulate_translations=True,
            stack_confidence_weight_translations=False,
        ),
        _preset(
            "minimal",
            "Motor positions only, pairwise registration ignored; most stable and fastest.",
            apply_pairwise_transforms=False,
            apply_rotation_only=False,
            stack_accumulate_translations=False,
            use_expected_z_overlap=True,
            auto_exclude_enabled=False,
        ),
    )
})


def preset_overlay(name: str) -> dict[str, object]:
    """Return a copy of the values that preset ``name`` sets.

    Parameters
    ----------
    name : {'conservative', 'aggressive', 'minimal'}

    Returns
    -------
    dict
        ``reconst_3d`` parameter name -> value.

    Raises
    ------
    ParameterError
        ``name`` is not a preset; the message lists the presets.
    """
    if name not in PRESETS:
        raise ParameterError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    return dict(PRESETS[name].values)
