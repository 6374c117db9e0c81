"""Parameters of the 3D reconstruction workflow, from stacking onwards.

Stacking, output pyramid, bias field, atlas registration, manual alignment,
previews and reports, debugging and diagnostics, in the guide's order.
:mod:`serialoct.params.reconst_3d` assembles them after the earlier groups and
holds the workflow's ``IMPLEMENTED`` set. ``atlas_path``,
``stack_blend_depth_um``, ``stack_match_intensity`` and
``stack_intensity_map_um`` are serialoct extensions absent from the guide.
"""

from __future__ import annotations

from serialoct.params.model import FRACTION, NON_NEGATIVE, POSITIVE, Bounds, Parameter, param

__all__ = ["OUTPUT_GROUPS"]

_AT_LEAST_1 = Bounds(low=1)
_CORRELATION = Bounds(low=-1, high=1)
_OVERLAP = Bounds(low=0, high=1, high_open=True)
_NUMBER = r"[-+]?(\d+\.?\d*|\.\d+)"
_ORIENTATION = r"((?=.*[RL])(?=.*[AP])(?=.*[SI])[RLAPSI]{3})?"
_ROTATION = rf"(\s*{_NUMBER}\s+{_NUMBER}\s+{_NUMBER}\s*)?"
_SLICE_RANGES = r"(\s*\d+(\s*-\s*\d+)?\s*(,\s*\d+(\s*-\s*\d+)?\s*)*)?"
_BLENDS = ("none", "average", "diffusion")

_STACK_BLEND = (
    param("stack_blend_enabled", True, "bool", "stack",
          "Blend the depth overlap between consecutive slices instead of cutting sharply."),
    param("blend_refinement_px", 0.0, "float", "stack", bounds=NON_NEGATIVE,
          description="Largest XY correction found by phase correlation in the overlap before blending, in pixels; 0 turns it off."),
    param("stack_blend_z_refine_vox", 5, "int", "stack", bounds=NON_NEGATIVE,
          description="Voxels searched below the expected slice boundary for the best-correlated plane."),
    param("stack_blend_depth_um", 25.0, "float", "stack", bounds=NON_NEGATIVE, extension=True,
          description="Depth of the transition from one slice to the next (µm), so each slice contributes its shallowest, "
                      "best-compensated planes; 0 blends over the whole overlap."),
    param("stack_match_intensity", True, "bool", "stack", extension=True,
          description="Scale each slice so that where it images the same tissue as its neighbours it matches the running "
                      "median of the series (removes slice-to-slice intensity steps)."),
    param("stack_intensity_map_um", 25.0, "float", "stack", bounds=NON_NEGATIVE, extension=True,
          description="With stack_match_intensity: also match each slice A-line by A-line at the next cut, smoothed over "
                      "this scale (µm), fading in with depth (corrects the local error of the attenuation compensation), and "
                      "likewise the planes that fill a missing slice to the slice below the gap (and their mean level at the gap's "
                      "bottom); 0 matches whole slices only."),
)

_TRANSFORM_USE = (
    param("use_expected_z_overlap", True, "bool", "stack",
          "Overlap slices in depth by the nominal cut thickness rather than by correlation."),
    param("apply_pairwise_transforms", True, "bool", "stack",
          "Apply the slice-to-slice registration on top of the motor positions."),
    param("apply_rotation_only", False, "bool", "stack",
          "Take only the rotation of each registration; XY stays as the motors report it."),
    param("max_rotation_deg", 5.0, "float", "stack", bounds=NON_NEGATIVE,
          description="Rotations larger than this (degrees) are clamped to it before use."),
)

_CONFIDENCE = (
    param("transform_confidence_high", 0.6, "float", "stack", bounds=FRACTION,
          description="Transforms at or above this confidence (0-1) are applied in full."),
    param("transform_confidence_low", 0.3, "float", "stack", bounds=FRACTION,
          description="Below this confidence a transform is dropped; between low and high only its rotation is used."),
    param("z_overlap_min_corr", 0.5, "float", "stack", bounds=_CORRELATION,
          description="Depth-match correlation below which the nominal overlap is used instead."),
    param("blend_z_refine_min_confidence", 0.5, "float", "stack", bounds=FRACTION,
          description="Smallest confidence for which the blend boundary is searched in depth."),
)

_GATING = (
    param("skip_error_transforms", True, "bool", "stack",
          "Ignore registrations whose status is error."),
    param("skip_warning_transforms", True, "bool", "stack",
          "Ignore registrations whose status is warning."),
    param("load_transform_min_zcorr", 0.0, "float", "stack", bounds=_CORRELATION,
          description="Ignore registrations whose depth correlation is below this; 0 turns the gate off."),
    param("load_transform_max_rotation", 0.0, "float", "stack", bounds=NON_NEGATIVE,
          description="Ignore registrations rotating more than this (degrees); 0 turns the gate off."),
)

_AUTO_EXCLUDE = (
    param("auto_exclude_enabled", True, "bool", "auto_exclude_slices",
          "Exclude runs of consecutive poorly matching slices from the stack."),
    param("auto_exclude_consecutive", 3, "int", "auto_exclude_slices", bounds=_AT_LEAST_1,
          description="Length of a run of poor pairs that triggers exclusion."),
    param("auto_exclude_z_corr", 0.6, "float", "auto_exclude_slices", bounds=_CORRELATION,
          description="Depth correlation under which a slice pair counts as poor."),
)

_ACCUMULATION = (
    param("stack_accumulate_translations", True, "bool", "stack",
          "Add up the slice-to-slice shifts into running offsets on the canvas."),
    param("stack_confidence_weight_translations", True, "bool", "stack",
          "Scale each shift by its confidence before adding it up."),
    param("stack_max_cumulative_drift_px", 50.0, "float", "stack", bounds=NON_NEGATIVE,
          description="Cap on how far the running offset may wander from the motor positions (pixels); 0 removes it."),
    param("stack_max_pairwise_translation", 0.0, "float", "stack", bounds=NON_NEGATIVE,
          description="Shifts close to this bound are taken as optimiser hits and zeroed; 0 keeps every shift."),
    param("stack_smooth_window", 5, "int", "stack", bounds=NON_NEGATIVE,
          description="Slices in the moving average that smooths per-slice rotations; 0 turns it off."),
    param("stack_translation_smooth_sigma", 3.0, "float", "stack", bounds=NON_NEGATIVE,
          description="Gaussian width, in slices, that smooths the running offsets; 0 turns it off."),
    param("stack_translation_min_zcorr", 0.2, "float", "stack", bounds=_CORRELATION,
          description="Smallest depth correlation for a slice's shift to join the running offset."),
)

_PYRAMID = (
    param("pyramid_resolutions", (10.0, 25.0, 50.0, 100.0), "float_list", ("stack", "align_to_ras"),
          bounds=POSITIVE,
          description="Voxel sizes (µm) of the output pyramid levels; those finer than resolution are skipped."),
    param("pyramid_n_levels", None, "int", ("stack", "align_to_ras"), nullable=True, bounds=_AT_LEAST_1,
          description="Build this many levels instead of using pyramid_resolutions; null uses the list."),
    param("pyramid_make_isotropic", True, "bool", ("stack", "align_to_ras"),
          "Resample so that voxels have the same size along all three axes."),
)

_BIAS = (
    param("correct_bias_field", False, "bool", "correct_bias_field",
          "Remove slow intensity drift from the stacked volume with N4 bias-field correction."),
    param("bias_mode", "two_pass", "choice", "correct_bias_field",
          choices=("per_section", "global", "two_pass"),
          description="Run N4 per section, once on the whole volume, or per section and then globally."),
    param("bias_strength", 1.0, "float", "correct_bias_field", bounds=FRACTION,
          description="Blend between the input (0) and the fully corrected volume (1)."),
)

_ATLAS = (
    param("align_to_ras_enabled", False, "bool", "align_to_ras",
          "Register the volume to the Allen mouse brain atlas and write an RAS-oriented copy."),
    param("allen_resolution", 25, "int", "align_to_ras", choices=(10, 25, 50, 100),
          description="Voxel size of the atlas template used for registration, in µm."),
    param("allen_metric", "MI", "choice", "align_to_ras", choices=("MI", "MSE", "CC", "AntsCC"),
          description="Similarity measure of the atlas registration."),
    param("allen_max_iterations", 1000, "int", "align_to_ras", bounds=_AT_LEAST_1,
          description="Iteration cap of the atlas registration."),
    param("allen_registration_level", 2, "int", "align_to_ras", bounds=NON_NEGATIVE,
          description="Pyramid level of the volume that is registered (0 = full resolution)."),
    param("ras_input_orientation", "", "str", "align_to_ras", pattern=_ORIENTATION,
          pattern_help="empty, or three letters with one of each pair R/L, A/P, S/I (e.g. PIR)",
          description="Anatomical direction of the volume's z, y and x axes as a 3-letter code."),
    param("ras_initial_rotation", "", "str", "align_to_ras", pattern=_ROTATION,
          pattern_help="empty, or three angles in degrees 'Rx Ry Rz' (e.g. '0 0 45')",
          description="Starting rotation for oblique cuts; empty starts from image moments."),
    param("allen_preview", True, "bool", "align_to_ras",
          "Save a three-panel image comparing the registered volume with the atlas."),
    param("atlas_path", "", "path", "align_to_ras", extension=True,
          description="Local atlas template (NRRD, NIfTI or OME-Zarr) used instead of downloading one."),
)

_MANUAL = (
    param("export_manual_align", False, "bool", "export_manual_align",
          "Export the projections and transforms needed to correct pairwise alignment by hand."),
    param("manual_align_level", 1, "int", "export_manual_align", bounds=NON_NEGATIVE,
          description="Pyramid level of the exported projections (0 = full, 1 = half, ...)."),
    param("manual_transforms_dir", "", "path", "stack",
          "Folder of hand-corrected transforms that replace the automatic ones for their slices."),
    param("refine_manual_transforms", False, "bool", "stack",
          "Polish each hand-corrected transform with a narrow registration started from it."),
    param("refine_max_translation_px", 10.0, "float", "stack", bounds=NON_NEGATIVE,
          description="Largest extra shift that polishing may add, in pixels."),
    param("refine_max_rotation_deg", 2.0, "float", "stack", bounds=NON_NEGATIVE,
          description="Largest extra rotation that polishing may add, in degrees."),
)

_REPORTS = (
    param("stitch_preview", True, "bool", "preview_stitched_slices",
          "Save a preview image of every stitched slice."),
    param("common_space_preview", False, "bool", "preview_common_space",
          "Save preview images of the slices aligned in the common space."),
    param("rehoming_diagnostics", False, "bool", "detect_rehoming_events",
          "Save a JSON report and a plot of the detected encoder glitches."),
    param("interpolation_preview", False, "bool", "interpolate_missing_slice",
          "Save preview images of the synthesised slices."),
    param("generate_report", True, "bool", "generate_report",
          "Write the HTML quality-control report once the volume is stacked."),
    param("report_verbose", False, "bool", "generate_report",
          "Add per-slice metric tables to the report."),
    param("report_format", "zip", "choice", "generate_report", choices=("html", "zip"),
          description="Report as a single HTML file, or a zip of the HTML with its preview images."),
    param("annotated_label_every", 1, "int", "stack", bounds=_AT_LEAST_1,
          description="Label one slice in N on the annotated volume preview."),
    param("annotated_show_lines", False, "bool", "stack",
          "Draw slice boundaries on the annotated volume preview."),
)

_DEBUGGING = (
    param("analyze_shifts", True, "bool", "analyze_shifts",
          "Summarise the motor shifts table (statistics, outliers, drift plot) before processing."),
    param("debug_slices", "", "str", "workflow", pattern=_SLICE_RANGES,
          pattern_help="comma-separated slice ids or ranges such as 25,26 or 25-29 (empty = all)",
          description="Process only these slices; empty processes all of them."),
)

_DIAGNOSTIC_MODE = (
    param("diagnostic_mode", False, "bool", "workflow",
          "Turn on every diagnostic analysis below at once."),
    param("analyze_rotation_drift", False, "bool", "analyze_rotation_drift",
          "Report how rotation accumulates from slice to slice."),
    param("analyze_acquisition_rotation", False, "bool", "analyze_acquisition_rotation",
          "Estimate the rotation present at acquisition from the shifts and the registrations."),
    param("motor_only_stitch", False, "bool", "stitch_motor_only",
          "Also stitch slices from motor positions alone, without image registration."),
    param("motor_only_stack", False, "bool", "stack_motor_only",
          "Also stack slices from motor positions alone, without pairwise registration."),
    param("compare_stitching", False, "bool", "compare_stitching",
          "Put motor-only and refined stitching side by side."),
)

_DIAGNOSTIC_SETTINGS = (
    param("motor_only_overlap", 0.2, "float", "stitch_motor_only", bounds=_OVERLAP,
          description="Tile overlap assumed by motor-only stitching (keep equal to stitch_overlap_fraction)."),
    param("motor_only_stitch_blending", "diffusion", "choice", "stitch_motor_only", choices=_BLENDS,
          description="How motor-only stitching merges overlapping tiles."),
    param("motor_only_stack_blending", "none", "choice", "stack_motor_only",
          choices=("none", "average", "max", "feather"),
          description="How motor-only stacking merges overlapping slices."),
    param("diagnostic_rotation_threshold", 2.0, "float", "analyze_rotation_drift", bounds=NON_NEGATIVE,
          description="Rotation (degrees) above which the drift analysis warns."),
    param("save_refinement_data", False, "bool", "stitch_3d_with_refinement",
          "Save the refined tile placement of each slice as JSON."),
    param("comparison_tile_step", 60, "int", "compare_stitching", bounds=_AT_LEAST_1,
          description="Spacing of the seam probes in the stitching comparison, in pixels."),
)

OUTPUT_GROUPS: tuple[tuple[str, tuple[Parameter, ...]], ...] = (
    ("Stacking: blending", _STACK_BLEND),
    ("Stacking: transform application", _TRANSFORM_USE),
    ("Stacking: confidence-based degradation", _CONFIDENCE),
    ("Stacking: transform gating", _GATING),
    ("Stacking: auto-exclusion of low-quality clusters", _AUTO_EXCLUDE),
    ("Stacking: translation accumulation & smoothing", _ACCUMULATION),
    ("Output pyramid", _PYRAMID),
    ("Bias field correction", _BIAS),
    ("Atlas registration (RAS alignment)", _ATLAS),
    ("Manual alignment", _MANUAL),
    ("Previews & reports", _REPORTS),
    ("Debugging", _DEBUGGING),
    ("Diagnostic mode", _DIAGNOSTIC_MODE),
    ("Diagnostic settings", _DIAGNOSTIC_SETTINGS),
)
