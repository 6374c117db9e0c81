"""Step ``crop_interface``: put the tissue surface at the top and keep ``crop_interface_out_depth`` µm below it."""

from __future__ import annotations

import argparse

from serialoct.steps.slice_step import add_slice_arguments

PARAMETERS = ("crop_interface_out_depth", "use_gpu")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_slice_arguments(parser, PARAMETERS, what="beam-corrected slice")


def run(args: argparse.Namespace) -> int:
    from serialoct.correct.interface import crop_slice_interface
    from serialoct.io.slices import read_slice, write_slice
    from serialoct.io.tables import Metric
    from serialoct.steps.slice_step import begin, write_step_metrics

    p, timer, backend = begin(args, PARAMETERS)
    stitched = read_slice(args.input)
    axial_um = stitched.voxel_size_um[0]
    crop = crop_slice_interface(stitched.volume, axial_um=axial_um, out_depth_um=p["crop_interface_out_depth"], backend=backend)
    # The water is gone after the crop: carry its level (the noise floor) for attenuation compensation.
    extra = {**stitched.extra, "water_level": crop.surface.water_level, "noise_sigma": crop.surface.noise_sigma}
    write_slice(args.output, crop.volume, stitched.voxel_size_um, extra=extra)
    found = crop.surface.valid_fraction
    kept_um = crop.depth_vox * axial_um
    short = kept_um < p["crop_interface_out_depth"] - axial_um
    write_step_metrics(args, "crop_interface", p, {
        "surface_found_fraction": Metric(round(found, 4), "", "A-lines whose surface was detected",
                                         "ok" if found > 0.5 else "warning"),
        "depth_kept_um": Metric(round(kept_um, 1), "µm", "depth kept below the surface",
                                "warning" if short else "ok"),
    }, timer, warnings=(f"only {kept_um:.0f} µm of data below the surface (asked {p['crop_interface_out_depth']:.0f})",) if short else ())
    return 0
