"""Step ``beam_profile_correction``: divide the focal beam's depth profile out of a stitched slice.

The profile is fitted on agarose-only A-lines (a homogeneous scatterer, so
their depth profile is the beam times agarose's own decay). When too few
agarose A-lines exist the slice is copied unchanged and the metrics say why.
"""

from __future__ import annotations

import argparse

from serialoct.steps.slice_step import add_slice_arguments

PARAMETERS = ("use_gpu",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_slice_arguments(parser, PARAMETERS, what="stitched slice")


def run(args: argparse.Namespace) -> int:
    from serialoct.correct.beam import estimate_beam_profile, fix_beam_profile
    from serialoct.correct.interface import detect_surface
    from serialoct.errors import InputError
    from serialoct.io.slices import read_slice, write_slice
    from serialoct.io.tables import Metric
    from serialoct.steps.slice_step import begin, write_step_metrics

    p, timer, backend = begin(args, PARAMETERS)
    stitched = read_slice(args.input)
    axial_um = stitched.voxel_size_um[0]
    try:
        surface = detect_surface(stitched.volume, backend=backend)
    except ValueError as exc:  # too few planes: a refused slice, not a crash
        raise InputError(args.input, f"{exc}; is the axial resolution of the mosaic grids right (preproc --axial_resolution)?") from None
    beam = estimate_beam_profile(stitched.volume, surface, axial_um=axial_um, backend=backend)
    volume = stitched.volume
    if beam.reliable:
        volume = fix_beam_profile(volume, beam.profile, noise_floor=surface.water_level, backend=backend)
    extra = {**stitched.extra, "water_level": surface.water_level, "noise_sigma": surface.noise_sigma}
    write_slice(args.output, volume, stitched.voxel_size_um, extra=extra)
    write_step_metrics(args, "beam_profile_correction", p, {
        "focus_vox": Metric(beam.focus_vox, "voxels", "depth of the beam focus"),
        "rayleigh_vox": Metric(beam.rayleigh_vox, "voxels", "Rayleigh range of the fitted beam"),
        "agarose_columns": Metric(beam.n_columns, "", "agarose A-lines the profile was fitted on"),
        "fit_rms": Metric(beam.fit_rms, "", "relative misfit of the beam model"),
        "applied": Metric(beam.reliable, "", "profile divided out", "ok" if beam.reliable else "warning"),
    }, timer, warnings=() if beam.reliable else (f"beam profile not corrected: {beam.reason}",))
    return 0
