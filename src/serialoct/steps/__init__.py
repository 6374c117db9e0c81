"""Pipeline steps as commands: ``serialoct step NAME``.

Each step module reads its inputs through :mod:`serialoct.io`, calls the
library's pure functions and writes its outputs atomically with a metrics
JSON. Modules import only the standard library at top level, so building the
argument parser (``serialoct step NAME --help``) stays fast; heavy imports
happen inside ``run``.
"""

from __future__ import annotations

# name -> (module, workflow, one-line help), in pipeline order.
STEPS: dict[str, tuple[str, str, str]] = {
    "create_mosaic_grid": (
        "serialoct.steps.create_mosaic_grid",
        "preproc",
        "decode a slice's raw tiles (galvo fix included) into its mosaic-grid OME-Zarr",
    ),
    "estimate_xy_shifts": (
        "serialoct.steps.estimate_xy_shifts",
        "preproc",
        "write shifts_xy.csv from the tiles' stage positions",
    ),
    "generate_slice_config": (
        "serialoct.steps.generate_slice_config",
        "preproc",
        "write slice_config.csv: calibration and failed slices excluded, galvo results",
    ),
    "generate_aip": (
        "serialoct.steps.generate_aip",
        "preproc",
        "average-intensity projection of a mosaic grid, as a PNG",
    ),
    "preview_mosaic_grid": (
        "serialoct.steps.preview_mosaic_grid",
        "preproc",
        "orthogonal views of a mosaic grid, as a PNG",
    ),
    "resample_mosaic_grid": (
        "serialoct.steps.resample_mosaic_grid",
        "reconst_3d",
        "resample a slice's mosaic grid to isotropic voxels of `resolution` µm",
    ),
    "fix_focal_curvature": (
        "serialoct.steps.fix_focal_curvature",
        "reconst_3d",
        "remove the within-tile focal-curvature bowl (fix_curvature_enabled)",
    ),
    "fix_illumination": (
        "serialoct.steps.fix_illumination",
        "reconst_3d",
        "BaSiC flat-field and darkfield correction of a slice's tiles (fix_illum_enabled)",
    ),
    "estimate_global_transform": (
        "serialoct.steps.estimate_global_transform",
        "reconst_3d",
        "fit one tile-layout matrix on a pool of slices (stitch_global_transform)",
    ),
    "stitch_3d_with_refinement": (
        "serialoct.steps.stitch_3d_with_refinement",
        "reconst_3d",
        "place a slice's tiles (motor layout refined by registration) and blend them",
    ),
    "beam_profile_correction": (
        "serialoct.steps.beam_profile_correction",
        "reconst_3d",
        "divide the focal beam's depth profile, fitted on agarose, out of a stitched slice",
    ),
    "crop_interface": (
        "serialoct.steps.crop_interface",
        "reconst_3d",
        "align the tissue surface to the top and keep crop_interface_out_depth µm below it",
    ),
    "compensate_attenuation": (
        "serialoct.steps.compensate_attenuation",
        "reconst_3d",
        "depth-resolved attenuation compensation with a bounded gain",
    ),
    "normalize": (
        "serialoct.steps.normalize",
        "reconst_3d",
        "background to 0, one scale per slice, clipped at clip_percentile_upper",
    ),
    "analyze_shifts": (
        "serialoct.steps.analyze_shifts",
        "reconst_3d",
        "drift report, outlier steps and drift plot of shifts_xy.csv (analyze_shifts)",
    ),
    "auto_assess_quality": (
        "serialoct.steps.auto_assess_quality",
        "reconst_3d",
        "score the normalised slices and exclude degraded ones in slice_config.csv (auto_assess_quality)",
    ),
    "detect_rehoming_events": (
        "serialoct.steps.detect_rehoming_events",
        "reconst_3d",
        "remove encoder-glitch spikes from the shifts, keep genuine re-homings (detect_rehoming)",
    ),
    "bring_to_common_space": (
        "serialoct.steps.bring_to_common_space",
        "reconst_3d",
        "place every slice in one XY canvas from the cleaned motor shifts",
    ),
    "register_pairwise": (
        "serialoct.steps.register_pairwise",
        "reconst_3d",
        "rigid correction of a slice relative to the one above it, with a confidence",
    ),
    "interpolate_missing_slice": (
        "serialoct.steps.interpolate_missing_slice",
        "reconst_3d",
        "synthesise every single-slice gap from its neighbours (interpolate_missing_slices)",
    ),
    "finalise_interpolation": (
        "serialoct.steps.finalise_interpolation",
        "reconst_3d",
        "slice_config_final.csv: the slice table with the outcome of every gap",
    ),
    "export_manual_align": (
        "serialoct.steps.export_manual_align",
        "reconst_3d",
        "export slice projections and the current pairwise transforms for hand correction (export_manual_align)",
    ),
    "auto_exclude_slices": (
        "serialoct.steps.auto_exclude_slices",
        "reconst_3d",
        "exclude slices inside runs of poorly matching pairs (auto_exclude_enabled)",
    ),
    "stack": (
        "serialoct.steps.stack",
        "reconst_3d",
        "assemble the aligned slices into the volume and its pyramid, block by block",
    ),
    "correct_bias_field": (
        "serialoct.steps.correct_bias_field",
        "reconst_3d",
        "N4 bias-field correction of the stacked volume, estimated reduced and applied block by block (correct_bias_field)",
    ),
    "align_to_ras": (
        "serialoct.steps.align_to_ras",
        "reconst_3d",
        "register the volume to the Allen atlas template and write an RAS-oriented copy (align_to_ras_enabled)",
    ),
    "generate_report": (
        "serialoct.steps.generate_report",
        "reconst_3d",
        "the HTML quality-control report of a reconstruction run, and README/readme.txt (generate_report)",
    ),
    "analyze_rotation_drift": (
        "serialoct.steps.analyze_rotation_drift",
        "reconst_3d",
        "diagnostic: cumulative rotation of the pairwise registrations, slices over the threshold flagged",
    ),
    "analyze_acquisition_rotation": (
        "serialoct.steps.analyze_acquisition_rotation",
        "reconst_3d",
        "diagnostic: rotation and scale between the motor steps and the registered displacements",
    ),
    "stitch_motor_only": (
        "serialoct.steps.stitch_motor_only",
        "reconst_3d",
        "diagnostic: a slice stitched from the motor positions alone, with its seam metric",
    ),
    "stack_motor_only": (
        "serialoct.steps.stack_motor_only",
        "reconst_3d",
        "diagnostic: the slices stacked from the common space alone, no pairwise transforms",
    ),
    "compare_stitching": (
        "serialoct.steps.compare_stitching",
        "reconst_3d",
        "diagnostic: motor-only and refined stitching side by side, seams probed along tile edges",
    ),
}

__all__ = ["STEPS"]
