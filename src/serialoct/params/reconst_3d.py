"""Parameters of the 3D reconstruction workflow (mosaic grids -> 3D volume).

Names, defaults and group order follow the reference guide's tables for
``soct_3d_reconst.nf``; descriptions are ours. This module holds the groups up
to pairwise registration; :mod:`serialoct.params.reconst_3d_output` holds
stacking and everything after it. To mark a parameter as honoured by
serialoct, add its name to :data:`IMPLEMENTED`.

Decisions where the guide is ambiguous:

- ``processes`` is 8, as in the workflow's own parameter table; the guide's
  "CPU Core Management" table gives 1 for both workflows, which only holds
  for the preprocessing one.
- ``use_gpu`` is listed under both "Compute Resources" and "GPU Acceleration";
  it is one parameter, declared under compute resources.
- ``interpolation_registration_metric`` lists no allowed values; we allow the
  metric set that the guide gives for atlas registration (MSE, CC, MI, AntsCC).
"""

from __future__ import annotations

from serialoct.params.model import FRACTION, NON_NEGATIVE, POSITIVE, Bounds, Parameter, param
from serialoct.params.reconst_3d_output import OUTPUT_GROUPS

__all__ = ["GROUPS", "IMPLEMENTED", "STEPS"]

#: Steps of the workflow in pipeline order (reference process names);
#: ``workflow`` is the orchestration, the last five are optional diagnostics.
STEPS: tuple[str, ...] = (
    "workflow",
    "analyze_shifts",
    "resample_mosaic_grid",
    "fix_focal_curvature",
    "fix_illumination",
    "estimate_global_transform",
    "stitch_3d_with_refinement",
    "preview_stitched_slices",
    "beam_profile_correction",
    "crop_interface",
    "normalize",
    "detect_rehoming_events",
    "auto_assess_quality",
    "bring_to_common_space",
    "preview_common_space",
    "interpolate_missing_slice",
    "finalise_interpolation",
    "register_pairwise",
    "export_manual_align",
    "auto_exclude_slices",
    "stack",
    "correct_bias_field",
    "align_to_ras",
    "generate_report",
    "analyze_rotation_drift",
    "analyze_acquisition_rotation",
    "stitch_motor_only",
    "stack_motor_only",
    "compare_stitching",
)

#: Names of the parameters serialoct honours; every other one must stay at its default.
IMPLEMENTED: frozenset[str] = frozenset({
    "input", "output", "resolution", "use_gpu", "processes", "crop_interface_out_depth", "clip_percentile_upper",
    "fix_curvature_enabled", "fix_illum_enabled", "stitch_preview",
    "use_motor_positions_for_stitching", "stitch_overlap_fraction", "stitch_blending_method", "max_blend_refinement_px",
    "stitch_global_transform", "stitch_global_transform_slices", "stitch_global_transform_histogram_match",
    "stitch_global_transform_max_empty_fraction", "stitch_global_transform_n_samples", "stitch_global_transform_seed",
    "shifts_xy", "slice_config", "subject_name", "enable_cpu_limits", "max_cpus", "reserved_cpus",
    # common space, interpolation, quality, pairwise registration
    "detect_rehoming", "rehoming_return_fraction", "rehoming_max_shift_mm", "tile_fov_mm", "tile_fov_tolerance",
    "common_space_excluded_slice_mode", "common_space_excluded_slice_window", "common_space_refine_unreliable",
    "common_space_refine_max_discrepancy_px", "common_space_refine_min_correlation",
    "interpolate_missing_slices", "interpolation_method", "interpolation_blend_method", "interpolation_registration_metric",
    "interpolation_max_iterations", "interpolation_overlap_search_window", "interpolation_min_overlap_correlation",
    "interpolation_reference_slab_size", "interpolation_min_foreground_fraction", "interpolation_min_ncc_improvement",
    "auto_assess_quality", "auto_assess_min_quality", "auto_assess_exclude_first", "auto_assess_roi_size",
    "registration_transform", "registration_max_translation", "registration_max_rotation", "registration_initial_alignment",
    "moving_slice_first_index", "registration_slicing_interval_mm", "registration_allowed_drifting_mm",
    # stacking and its outputs
    "stack_blend_enabled", "blend_refinement_px", "stack_blend_z_refine_vox", "stack_blend_depth_um", "stack_match_intensity",
    "stack_intensity_map_um",
    "use_expected_z_overlap", "apply_pairwise_transforms",
    "apply_rotation_only", "max_rotation_deg", "transform_confidence_high", "transform_confidence_low", "z_overlap_min_corr",
    "blend_z_refine_min_confidence", "skip_error_transforms", "skip_warning_transforms", "load_transform_min_zcorr",
    "load_transform_max_rotation", "auto_exclude_enabled", "auto_exclude_consecutive", "auto_exclude_z_corr",
    "stack_accumulate_translations", "stack_confidence_weight_translations", "stack_max_cumulative_drift_px",
    "stack_max_pairwise_translation", "stack_smooth_window", "stack_translation_smooth_sigma", "stack_translation_min_zcorr",
    "pyramid_resolutions", "pyramid_n_levels", "pyramid_make_isotropic",
    "common_space_preview", "rehoming_diagnostics", "interpolation_preview", "annotated_label_every", "annotated_show_lines",
    "analyze_shifts", "debug_slices",
    # atlas registration
    "align_to_ras_enabled", "allen_resolution", "allen_metric", "allen_max_iterations", "allen_registration_level",
    "ras_input_orientation", "ras_initial_rotation", "allen_preview", "atlas_path",
    # bias field
    "correct_bias_field", "bias_mode", "bias_strength",
    # manual alignment
    "export_manual_align", "manual_align_level", "manual_transforms_dir", "refine_manual_transforms",
    "refine_max_translation_px", "refine_max_rotation_deg",
    # report
    "generate_report", "report_verbose", "report_format",
    # diagnostics
    "diagnostic_mode", "analyze_rotation_drift", "analyze_acquisition_rotation", "motor_only_stitch", "motor_only_stack",
    "compare_stitching", "motor_only_overlap", "motor_only_stitch_blending", "motor_only_stack_blending",
    "diagnostic_rotation_threshold", "comparison_tile_step", "save_refinement_data",
})

_AT_LEAST_1 = Bounds(low=1)
_CORRELATION = Bounds(low=-1, high=1)
_OVERLAP = Bounds(low=0, high=1, high_open=True)
_SLICE_IDS = r"(\s*\d+\s*(,\s*\d+\s*)*)?"
_SHIFTS_USERS = ("analyze_shifts", "detect_rehoming_events", "bring_to_common_space", "stack")
_CONFIG_USERS = ("auto_assess_quality", "detect_rehoming_events", "bring_to_common_space",
                 "finalise_interpolation", "auto_exclude_slices", "stack")

_INPUT_OUTPUT = (
    param("input", ".", "path", "workflow",
          "Folder of mosaic grids written by the preprocessing workflow."),
    param("shifts_xy", "", "path", _SHIFTS_USERS,
          "Motor XY shifts table between slices; empty means {input}/shifts_xy.csv."),
    param("slice_config", "", "path", _CONFIG_USERS,
          "Optional per-slice table of slices to use or exclude; empty uses every slice."),
    param("output", ".", "path", "workflow", "Folder that receives every result of the run."),
    param("subject_name", "", "str", ("stack", "align_to_ras", "generate_report"),
          "Name of the brain used in output file names; empty derives it from the input path."),
    # The guide's CPU section says 1 for both workflows; this workflow's own table says 8.
    param("processes", 8, "int", "workflow", bounds=_AT_LEAST_1,
          description="Threads of each series step (stack, interpolation, bias field, RAS, motor-only stack); per-slice and per-pair steps run one thread each, as many at once as the cores allow."),
)

_COMPUTE = (
    param("use_gpu", True, "bool", ("resample_mosaic_grid", "fix_illumination", "normalize"),
          "Run array work on the GPU when one is usable; otherwise fall back to the CPU."),
    param("enable_cpu_limits", True, "bool", "workflow",
          "Cap the threads of every step (BLAS, ITK, worker pools) by max_cpus/reserved_cpus."),
    param("max_cpus", 16, "int", "workflow", bounds=NON_NEGATIVE,
          description="Most CPU cores the run may use; 0 removes the cap."),
    param("reserved_cpus", 4, "int", "workflow", bounds=NON_NEGATIVE,
          description="Cores kept free for the system and the workflow engine."),
)

_BASIC = (
    param("resolution", 10.0, "float", ("resample_mosaic_grid", "stack"), bounds=POSITIVE,
          description="Lateral pixel size the mosaic grids are resampled to, in µm."),
    param("clip_percentile_upper", 99.9, "float", "normalize",
          bounds=Bounds(low=0, high=100, low_open=True),
          description="Intensity percentile mapped to the top of the range; brighter voxels are clipped."),
    param("fix_curvature_enabled", False, "bool", "fix_focal_curvature",
          "Estimate the curved focal surface and flatten it out of each mosaic grid."),
    param("fix_illum_enabled", True, "bool", "fix_illumination",
          "Estimate a flat-field per slice (BaSiC) and divide it out of the tiles."),
    param("crop_interface_out_depth", 600.0, "float", "crop_interface", bounds=POSITIVE,
          description="Tissue depth kept below the detected tissue surface, in µm."),
)

_STITCHING = (
    param("use_motor_positions_for_stitching", True, "bool", "stitch_3d_with_refinement",
          "Place tiles from the motor encoder positions rather than from image registration alone."),
    param("stitch_overlap_fraction", 0.2, "float", "stitch_3d_with_refinement", bounds=_OVERLAP,
          description="Nominal overlap between neighbouring tiles as set at acquisition (0-1)."),
    param("stitch_blending_method", "diffusion", "choice", "stitch_3d_with_refinement",
          choices=("none", "average", "diffusion"),
          description="How overlapping tiles are merged into the slice mosaic."),
    param("max_blend_refinement_px", 10.0, "float", "stitch_3d_with_refinement", bounds=NON_NEGATIVE,
          description="Largest correction of a tile position found in its overlaps before blending, in pixels."),
)

_GLOBAL_TRANSFORM = (
    param("stitch_global_transform", False, "bool", ("estimate_global_transform", "stitch_3d_with_refinement"),
          "Fit one 2x2 tile-placement affine over a pool of slices and use it for every slice."),
    param("stitch_global_transform_slices", "", "str", "estimate_global_transform",
          pattern=_SLICE_IDS, pattern_help="comma-separated slice ids such as 10,12,15 (empty = all)",
          description="Slices whose tile pairs feed the pooled fit; empty pools all of them."),
    param("stitch_global_transform_histogram_match", True, "bool", "estimate_global_transform",
          "Equalise the histograms of two overlaps before correlating them."),
    param("stitch_global_transform_max_empty_fraction", 0.9, "float", "estimate_global_transform",
          nullable=True, bounds=FRACTION,
          description="Drop an overlap whose Otsu background share exceeds this; null uses a plainer emptiness test."),
    param("stitch_global_transform_n_samples", 2048, "int", "estimate_global_transform", bounds=NON_NEGATIVE,
          description="Most tile pairs drawn for the least-squares fit; 0 uses every pair."),
    param("stitch_global_transform_seed", 0, "int", "estimate_global_transform", bounds=NON_NEGATIVE,
          description="Seed of the random draw of tile pairs."),
)

_COMMON_SPACE = (
    param("detect_rehoming", True, "bool", "detect_rehoming_events",
          "Find motor-encoder glitches (a step that is undone by the next one) and remove them."),
    param("rehoming_return_fraction", 0.4, "float", "detect_rehoming_events", bounds=FRACTION,
          description="A step is a glitch when the next step reverses more than (1 - this) of it; lower flags fewer."),
    param("rehoming_max_shift_mm", 0.5, "float", "detect_rehoming_events", bounds=NON_NEGATIVE,
          description="Motor steps shorter than this (mm) are never treated as glitches."),
    param("tile_fov_mm", None, "float", "detect_rehoming_events", nullable=True, bounds=POSITIVE,
          description="Tile field of view in mm, only for legacy shift tables that jump by whole tile columns."),
    param("tile_fov_tolerance", 0.05, "float", "detect_rehoming_events", bounds=FRACTION,
          description="Relative tolerance when matching a jump to a multiple of tile_fov_mm."),
    param("common_space_excluded_slice_mode", "local_median", "choice", "bring_to_common_space",
          choices=("keep", "local_median", "median", "zero"),
          description="Shift given to a slice excluded from the reconstruction."),
    param("common_space_excluded_slice_window", 2, "int", "bring_to_common_space", bounds=_AT_LEAST_1,
          description="Neighbours on each side used by the local_median replacement."),
    param("common_space_refine_unreliable", False, "bool", "bring_to_common_space",
          "Re-measure slice-to-slice shifts marked unreliable by 2D phase correlation of the images."),
    param("common_space_refine_max_discrepancy_px", 0.0, "float", "bring_to_common_space", bounds=NON_NEGATIVE,
          description="Reject an image-based shift that differs from the motor shift by more (pixels); 0 accepts all."),
    param("common_space_refine_min_correlation", 0.0, "float", "bring_to_common_space", bounds=_CORRELATION,
          description="Smallest normalised cross-correlation for an image-based shift to be kept."),
)

_INTERPOLATION = (
    param("interpolate_missing_slices", True, "bool", ("interpolate_missing_slice", "finalise_interpolation"),
          "Synthesise a slice that is missing between two good ones; longer gaps stay empty."),
    param("interpolation_method", "zmorph", "choice", "interpolate_missing_slice",
          choices=("zmorph", "weighted", "average"),
          description="How the gap is filled: depth-aware morphing between neighbours, weighted or plain mean."),
    param("interpolation_blend_method", "gaussian", "choice", "interpolate_missing_slice",
          choices=("gaussian", "linear"),
          description="Weighting of the two neighbours across the filled slice."),
    param("interpolation_registration_metric", "MSE", "choice", "interpolate_missing_slice",
          choices=("MSE", "CC", "MI", "AntsCC"),
          description="Similarity measure when registering the planes that bound the gap."),
    param("interpolation_max_iterations", 1000, "int", "interpolate_missing_slice", bounds=_AT_LEAST_1,
          description="Iteration cap of that boundary-plane registration."),
    param("interpolation_overlap_search_window", 5, "int", "interpolate_missing_slice", bounds=NON_NEGATIVE,
          description="Depth planes searched at each side of the gap for the best-matching pair."),
    param("interpolation_min_overlap_correlation", 0.3, "float", "interpolate_missing_slice",
          bounds=_CORRELATION,
          description="Correlation before registration under which zmorph gives up and falls back."),
    param("interpolation_reference_slab_size", 3, "int", "interpolate_missing_slice", bounds=_AT_LEAST_1,
          description="Planes averaged into each boundary reference plane."),
    param("interpolation_min_foreground_fraction", 0.1, "float", "interpolate_missing_slice",
          bounds=FRACTION,
          description="Smallest share of tissue a boundary plane needs to be usable."),
    param("interpolation_min_ncc_improvement", 0.05, "float", "interpolate_missing_slice",
          description="Gain in correlation that registration must bring for its transform to be used."),
)

_QUALITY = (
    param("auto_assess_quality", False, "bool", "auto_assess_quality",
          "Score every normalised slice and exclude the degraded ones before common-space alignment."),
    param("auto_assess_min_quality", 0.3, "float", "auto_assess_quality", bounds=FRACTION,
          description="Slices scoring below this (0-1) are excluded."),
    param("auto_assess_exclude_first", 1, "int", "auto_assess_quality", bounds=NON_NEGATIVE,
          description="Leading calibration slices excluded whatever their score."),
    param("auto_assess_roi_size", 1024, "int", "auto_assess_quality", bounds=NON_NEGATIVE,
          description="Side of the central square scored, in pixels; 0 scores the whole plane."),
)

_PAIRWISE = (
    param("registration_transform", "euler", "choice", "register_pairwise",
          choices=("euler", "translation"),
          description="Slice-to-slice correction model: rigid in-plane (euler) or shift only."),
    param("registration_max_translation", 200.0, "float", "register_pairwise", bounds=NON_NEGATIVE,
          description="Largest shift the optimiser may reach, in pixels."),
    param("registration_max_rotation", 5.0, "float", "register_pairwise", bounds=NON_NEGATIVE,
          description="Largest rotation the optimiser may reach, in degrees."),
    param("registration_initial_alignment", "both", "choice", "register_pairwise",
          choices=("none", "com", "gradient", "both"),
          description="Coarse start before refinement: centre of mass, gradient matching, both or none."),
    param("moving_slice_first_index", 4, "int", "register_pairwise", bounds=NON_NEGATIVE,
          description="First depth plane of the lower slice used for matching."),
    param("registration_slicing_interval_mm", 0.2, "float", "register_pairwise", bounds=POSITIVE,
          description="Nominal thickness of one cut slice, in mm."),
    param("registration_allowed_drifting_mm", 0.1, "float", "register_pairwise", bounds=NON_NEGATIVE,
          description="Depth range searched around the nominal slice overlap, in mm."),
)

GROUPS: tuple[tuple[str, tuple[Parameter, ...]], ...] = (
    ("Input/Output", _INPUT_OUTPUT),
    ("Compute resources", _COMPUTE),
    ("Resolution & basic settings", _BASIC),
    ("Tile stitching", _STITCHING),
    ("Global tile-placement transform", _GLOBAL_TRANSFORM),
    ("Common space alignment", _COMMON_SPACE),
    ("Missing slice interpolation", _INTERPOLATION),
    ("Automatic slice quality assessment", _QUALITY),
    ("Pairwise registration", _PAIRWISE),
    *OUTPUT_GROUPS,
)
