"""Diagnostics of a reconstruction: rotation drift, acquisition rotation, motor-only stitching and stacking, seam comparison.

Pure functions only (arrays and records in, frozen results and RGB pictures
out); the ``analyze_rotation_drift``, ``analyze_acquisition_rotation``,
``stitch_motor_only``, ``stack_motor_only`` and ``compare_stitching`` steps
read and write the files (``OUT/diagnostics/``).
"""

from serialoct.diagnostics.rotation import (
    AcquisitionRotation, PairAngle, PairRotation, RotationDrift, analyze_rotation_drift, estimate_acquisition_rotation,
    plot_acquisition_rotation, plot_rotation_drift,
)
from serialoct.diagnostics.stacking import MOTOR_STACK_BLENDINGS, plan_motor_stack, render_motor_block
from serialoct.diagnostics.stitching import SeamProbe, SeamProbes, motor_only_placement, placement_record, probe_seams, side_by_side

__all__ = [
    "AcquisitionRotation", "MOTOR_STACK_BLENDINGS", "PairAngle", "PairRotation", "RotationDrift", "SeamProbe", "SeamProbes",
    "analyze_rotation_drift", "estimate_acquisition_rotation", "motor_only_placement", "placement_record", "plan_motor_stack",
    "plot_acquisition_rotation", "plot_rotation_drift", "probe_seams", "render_motor_block", "side_by_side",
]
