"""The data model of the quality-control report: what a run produced, already read and parsed.

:class:`RunRecord` holds the inputs as the ``generate_report`` step read them
(metrics, the final slice table, failure records, picture bytes); nothing in
it is a path to open. :func:`serialoct.report.qc.build_report` turns it into a
:class:`QualityReport`, the rows, counts and messages the HTML shows, and
:func:`serialoct.report.html.render_html` writes that as text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from serialoct.io.tables import SliceConfigRow, StepMetrics

__all__ = ["Figure", "Outcome", "QualityReport", "RehomingEvent", "RunRecord", "SliceEntry", "Status", "StepOverview", "Summary",
           "WarningGroup"]

Status = Literal["ok", "warning", "error"]
Outcome = Literal["stacked", "interpolated", "left empty", "excluded", "auto-excluded", "failed", "not stacked"]


@dataclass(frozen=True)
class Figure:
    """A picture of the report: PNG bytes, the file name it gets in the zip, a caption."""

    name: str
    png: bytes
    caption: str


@dataclass(frozen=True)
class RunRecord:
    """Everything the report is built from, as read from a run folder.

    Attributes
    ----------
    subject : str
        Subject name (the volume's file stem).
    created : str
        When the report was made (ISO 8601, UTC).
    version : str
        ``serialoct.__version__`` of the report.
    config : Mapping
        The resolved configuration of the run (``.serialoct/reconst_3d_config.yaml``); empty when absent.
    preset : str
        The robustness preset, or a sentence saying none was recorded.
    series : Mapping of str to StepMetrics
        Step name -> metrics of each whole-series step (``STEP/metrics.json``).
    per_slice : Mapping of str to Mapping of str to StepMetrics
        Step name -> slice id -> metrics (``STEP/slice_zNN_metrics.json``; pairwise registration under the moving slice).
    slice_table : tuple of SliceConfigRow, or None
        ``finalise_interpolation/slice_config_final.csv``; None when it is absent.
    failures : Mapping of str to str
        Slice id -> "step: reason" of every failure record (``failed/zNN.json``).
    figures : Mapping of str to Figure
        Role (``drift``, ``volume``, ``annotated``, ``rehoming``, ``ras``, ``slice_NN``) -> picture.
    switched_off : Mapping of str to str
        Step name -> why it did not run in this configuration (its metrics, if any, are from an earlier run and ignored).
    step_order : tuple of str
        The pipeline's step names in order (sorts tables).
    """

    subject: str
    created: str
    version: str
    config: Mapping[str, object] = field(default_factory=dict)
    preset: str = ""
    series: Mapping[str, StepMetrics] = field(default_factory=dict)
    per_slice: Mapping[str, Mapping[str, StepMetrics]] = field(default_factory=dict)
    slice_table: tuple[SliceConfigRow, ...] | None = None
    failures: Mapping[str, str] = field(default_factory=dict)
    figures: Mapping[str, Figure] = field(default_factory=dict)
    switched_off: Mapping[str, str] = field(default_factory=dict)
    step_order: tuple[str, ...] = ()


@dataclass(frozen=True)
class SliceEntry:
    """One slice's line in the report table.

    ``step_status`` maps each per-slice step to the ``overall_status`` of its
    metrics for this slice (None: no metrics, the step did not run on it);
    ``values`` holds the stitching residuals, seam step, registration
    confidence and z-correlation, quality score and the stack's intensity
    gain (None when not measured).
    """

    slice_id: str
    outcome: Outcome
    reason: str
    notes: str
    depth_planes: tuple[int, int] | None
    step_status: Mapping[str, Status | None]
    values: Mapping[str, float | None]

    @property
    def status(self) -> Status:
        """The worst status of the slice's steps; a failed slice is an error."""
        if self.outcome == "failed":
            return "error"
        seen = [s for s in self.step_status.values() if s is not None]
        return "error" if "error" in seen else "warning" if "warning" in seen or self.outcome == "left empty" else "ok"


@dataclass(frozen=True)
class RehomingEvent:
    """A motor step flagged by ``detect_rehoming_events``: an encoder glitch (corrected) or a genuine re-homing (kept)."""

    kind: str
    fixed_id: str
    moving_id: str
    magnitude_mm: float | None
    return_ratio: float | None
    action: str


@dataclass(frozen=True)
class WarningGroup:
    """One warning or error message of a step and the slices it was raised for (empty: the whole series)."""

    step: str
    status: Status
    message: str
    slices: tuple[str, ...]


@dataclass(frozen=True)
class StepOverview:
    """A step's verdict: its worst status and how many of its results (slices or one series record) are at each level."""

    step: str
    status: Status | None
    counts: Mapping[str, int]
    note: str


@dataclass(frozen=True)
class Summary:
    """Slice counts and warning counts of the run."""

    n_slices: int
    n_stacked: int
    n_interpolated: int
    n_excluded: int
    n_failed: int
    n_warnings: int
    n_errors: int

    @property
    def status(self) -> Status:
        return "error" if self.n_errors or self.n_failed else "warning" if self.n_warnings else "ok"


@dataclass(frozen=True)
class QualityReport:
    """What the HTML report shows, section by section.

    ``missing`` maps a section key (``slices``, ``shifts``, ``registration``,
    ``exclusions``, ``volume``, ``events``, ``steps``) to the sentence shown
    instead of its content when its inputs are absent.
    """

    subject: str
    created: str
    version: str
    preset: str
    main_parameters: tuple[tuple[str, object], ...]
    all_parameters: tuple[tuple[str, object], ...]
    summary: Summary
    slice_steps: tuple[str, ...]
    slices: tuple[SliceEntry, ...]
    exclusions: tuple[SliceEntry, ...]
    steps: tuple[StepOverview, ...]
    warnings: tuple[WarningGroup, ...]
    events: tuple[RehomingEvent, ...]
    series: Mapping[str, StepMetrics]
    figures: Mapping[str, Figure]
    missing: Mapping[str, str]
    thresholds: Mapping[str, float]
    verbose_tables: Mapping[str, Mapping[str, StepMetrics]] = field(default_factory=dict)
