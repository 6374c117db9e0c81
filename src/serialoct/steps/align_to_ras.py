"""Step ``align_to_ras``: register the stacked volume to the Allen atlas template and write an RAS copy.

The volume at pyramid level ``allen_registration_level`` is registered
(rigid, then affine; :func:`serialoct.atlas.register.register_to_atlas`) to
the template at ``allen_resolution`` (``atlas_path``, else the cached or
downloaded Allen CCFv3). Level 0 is then resampled onto the atlas frame at
the volume's own voxel size, one block of planes at a time (only the source
box a block needs is read), and written with the analysis pyramid as
``align_to_ras/{subject}_ras.ome.zarr``, array axes ``(S, A, R)``, the
orientation in the NGFF axes. Also ``{subject}_ras_transform.tfm`` and, with
``allen_preview``, ``{subject}_ras_preview.png``.
"""

from __future__ import annotations

import argparse

from serialoct.steps.alignment import add_series_arguments

PARAMETERS = (
    "allen_resolution", "allen_metric", "allen_max_iterations", "allen_registration_level", "ras_input_orientation",
    "ras_initial_rotation", "allen_preview", "atlas_path", "pyramid_resolutions", "pyramid_n_levels", "pyramid_make_isotropic",
)
#: Output planes resampled and written at once.
BLOCK_PLANES = 32


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="the stacked (or bias-corrected) volume, OME-Zarr")
    parser.add_argument("--output", required=True, help="{subject}_ras.ome.zarr; the .tfm and the preview go beside it")
    add_series_arguments(parser, PARAMETERS)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from serialoct.atlas.orientation import RAS_CODE, ngff_orientations, parse_orientation, parse_rotation
    from serialoct.atlas.preview import alignment_preview
    from serialoct.atlas.register import register_to_atlas
    from serialoct.atlas.resample import resample_to_atlas, source_region
    from serialoct.atlas.space import VolumeGrid
    from serialoct.atlas.template import find_atlas, load_atlas, write_transform
    from serialoct.compute import apply_cpu_limits
    from serialoct.io.images import write_png
    from serialoct.io.omezarr import create_ome_zarr, open_ome_zarr
    from serialoct.io.tables import Metric
    from serialoct.stack.plan import pyramid_levels
    from serialoct.steps.alignment import write_series_metrics
    from serialoct.steps.options import parameters_from_args
    from serialoct.steps.slice_step import Timer

    p = parameters_from_args(args, "reconst_3d", PARAMETERS)
    timer = Timer()
    apply_cpu_limits()
    code = parse_orientation(p["ras_input_orientation"]) if p["ras_input_orientation"] else RAS_CODE
    image = open_ome_zarr(args.input)
    level = min(p["allen_registration_level"], image.n_levels - 1)

    def grid(k: int) -> VolumeGrid:
        return VolumeGrid.from_ngff(image.level(k).shape, image.voxel_size_mm(k), image.translation_mm(k), code)

    atlas = load_atlas(find_atlas(p["atlas_path"] or None, int(p["allen_resolution"])), resolution_um=float(p["allen_resolution"]))
    registration = register_to_atlas(image.read(level), grid(level), atlas.image, atlas.grid, metric=p["allen_metric"],
                                     max_iterations=p["allen_max_iterations"], initial_rotation_deg=parse_rotation(p["ras_initial_rotation"]))
    out = Path(args.output)
    stem = out.name.removesuffix(".ome.zarr")
    write_transform(out.with_name(f"{stem}_transform.tfm"), registration)

    source, source_grid = image.level(0), grid(0)
    voxel_mm = float(min(source_grid.spacing_mm))
    target = atlas.grid.resampled(voxel_mm)
    levels = pyramid_levels(voxel_mm * 1000.0, p["pyramid_resolutions"], p["pyramid_n_levels"], p["pyramid_make_isotropic"])
    depth, rows, cols = target.shape
    chunks = (min(BLOCK_PLANES, depth), min(256, rows), min(256, cols))
    with create_ome_zarr(out, target.shape, voxel_size_mm=(voxel_mm,) * 3, chunks=chunks, shards=None,
                         pyramid_resolutions_um=levels[1:], axes_orientation=ngff_orientations(RAS_CODE), name=stem,
                         extra_attrs={"ras_origin_mm": list(target.origin_mm), "input_orientation": code,
                                      "atlas": str(atlas.source), "registration_level": level}) as writer:
        for z0 in range(0, depth, BLOCK_PLANES):
            block = target.crop((slice(z0, min(depth, z0 + BLOCK_PLANES)), slice(None), slice(None)))
            region = source_region(source_grid, registration, block)
            if region is None:
                continue  # outside the brain: the store's fill value (0)
            writer.array[z0 : z0 + block.shape[0]] = resample_to_atlas(np.asarray(source[region]), source_grid.crop(region), registration, block)
    if p["allen_preview"]:
        registered = resample_to_atlas(image.read(level), grid(level), registration, atlas.grid)
        write_png(out.with_name(f"{stem}_preview.png"), alignment_preview(registered, atlas.image))
    write_series_metrics(args.metrics, "align_to_ras", p, {
        "metric_value": Metric(float(registration.metric_value), "", f"final {p['allen_metric']} value"),
        "rotation_deg": Metric(round(float(registration.rotation_deg), 3), "deg", "rotation of the brain to the atlas"),
        "scales": Metric([round(float(v), 4) for v in registration.scales], "", "affine scales (1 = same size as the atlas)",
                         "warning" if np.any(np.abs(np.asarray(registration.scales) - 1) > 0.3) else "ok"),
        "iterations": Metric(int(registration.iterations), "", "optimiser iterations, all stages"),
    }, timer.elapsed_s, info={"atlas": str(atlas.source), "input_orientation": code, "registration_level": level,
                              "matrix": np.asarray(registration.matrix).tolist(), "translation": np.asarray(registration.translation).tolist()})
    return 0
