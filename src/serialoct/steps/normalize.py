"""Step ``normalize``: background to 0 and one scale per slice, clipped at ``clip_percentile_upper``.

The percentile is taken over the voxels above the depth where the attenuation compensation started to lift
noise (the map ``compensate_attenuation`` stores with the slice); a slice without that map counts every voxel.
"""

from __future__ import annotations

import argparse

from serialoct.steps.slice_step import add_slice_arguments

PARAMETERS = ("clip_percentile_upper", "use_gpu")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_slice_arguments(parser, PARAMETERS, what="compensated slice")


def run(args: argparse.Namespace) -> int:
    from serialoct.correct.normalize import normalize
    from serialoct.io.slices import read_slice, read_slice_map, write_slice
    from serialoct.steps.compensate_attenuation import REFERENCE_MAP
    from serialoct.io.tables import Metric
    from serialoct.steps.slice_step import begin, write_step_metrics

    p, timer, backend = begin(args, PARAMETERS)
    compensated = read_slice(args.input)
    reference = read_slice_map(args.input, REFERENCE_MAP)  # None: not compensated (too shallow), every voxel counts
    result = normalize(compensated.volume, clip_percentile_upper=p["clip_percentile_upper"], reference_depth=reference,
                       backend=backend)
    n = result.normalization
    write_slice(args.output, result.volume, compensated.voxel_size_um, extra=compensated.extra)
    write_step_metrics(args, "normalize", p, {
        "clip_value": Metric(n.clip_value, "intensity", f"the {p['clip_percentile_upper']}th percentile of tissue"),
        "background_threshold": Metric(n.background_threshold, "intensity", "below this: background, set to 0"),
        "tissue_fraction": Metric(round(n.tissue_fraction, 4), "", "voxels above the background threshold",
                                  "warning" if n.tissue_fraction < 0.01 else "ok"),
        "separability": Metric(n.separability, "", "Otsu separability of background and tissue (1 = clean)"),
    }, timer, warnings=(n.reason,) if n.reason else ())
    return 0
