"""Step ``compensate_attenuation``: depth-resolved attenuation compensation with a bounded gain.

Applied between the interface crop and normalisation, as in the reference
pipeline; the noise floor is the water level measured before the crop.
"""

from __future__ import annotations

import argparse

from serialoct.steps.slice_step import add_slice_arguments

PARAMETERS = ("use_gpu",)
DEFAULT_WINDOW_VOX = 8  # the library's default tail window
MIN_WINDOW_VOX = 2
#: Map stored with the compensated slice: per A-line, the leading voxels above which the recorded signal stands
#: clear of the noise (``REFERENCE_SNR``; ``normalize`` takes the slice's statistics from them).
REFERENCE_MAP = "reference_depth_vox"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_slice_arguments(parser, PARAMETERS, what="cropped slice")


def run(args: argparse.Namespace) -> int:
    from serialoct.correct.attenuation import compensate_attenuation
    from serialoct.io.slices import read_slice, write_slice
    from serialoct.io.tables import Metric
    from serialoct.steps.slice_step import begin, write_step_metrics

    p, timer, backend = begin(args, PARAMETERS)
    cropped = read_slice(args.input)
    depth = cropped.volume.shape[0]
    # The signal below the slice is extrapolated from its last two windows: shallow slices
    # (coarse working resolution) get shorter windows; too shallow to estimate: copied as is.
    window = min(DEFAULT_WINDOW_VOX, depth // 2)
    if window < MIN_WINDOW_VOX:
        write_slice(args.output, cropped.volume, cropped.voxel_size_um, extra=cropped.extra)
        write_step_metrics(args, "compensate_attenuation", p, {
            "applied": Metric(False, "", "attenuation compensated", "warning")}, timer,
            warnings=(f"slice only {depth} voxels deep: attenuation not compensated (needs {2 * MIN_WINDOW_VOX})",))
        return 0
    result = compensate_attenuation(cropped.volume, axial_um=cropped.voxel_size_um[0], window_vox=window,
                                    noise_floor=float(cropped.extra.get("water_level", 0.0)),
                                    noise_sigma=float(cropped.extra.get("noise_sigma", 0.0)), backend=backend)
    write_slice(args.output, result.volume, cropped.voxel_size_um, extra=cropped.extra,
                maps={REFERENCE_MAP: result.reference_depth})
    write_step_metrics(args, "compensate_attenuation", p, {
        "gain_limited_fraction": Metric(round(result.gain_limited_fraction, 4), "", "voxels whose gain hit the bound",
                                        "warning" if result.gain_limited_fraction > 0.2 else "ok"),
        "max_gain_applied": Metric(round(result.max_gain_applied, 3), "", "largest gain applied"),
        "window_vox": Metric(window, "voxels", "depth window of the tail extrapolation"),
        "applied": Metric(True, "", "attenuation compensated"),
    }, timer)
    return 0
