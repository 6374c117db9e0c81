"""Step ``export_manual_align``: a light package for correcting the pairwise transforms by hand.

Writes into ``--output_dir``

- ``aips/slice_zNN.png``: each slice's average-intensity projection placed
  in the common canvas (motor placement only, no pairwise transform), block
  mean to pyramid level ``manual_align_level``, uint8 between two
  percentiles (the exact intensity scale is in the index);
- ``transforms/slice_zNN.json``: each pair's automated transform
  (``register_pairwise``), ``NN`` the moving slice, as a manual transform
  record in that level's pixels (:mod:`serialoct.stack.manual`);
- ``index.json``, written last: slices, file names, level, pixel size,
  canvas shape, the transform convention in words and how to hand
  corrected files back (``manual_transforms_dir``).
"""

from __future__ import annotations

import argparse

from serialoct.steps.alignment import add_series_arguments

PARAMETERS = ("manual_align_level",)
#: Percentiles of the non-zero AIP pixels mapped to 0 and 255 (those of serialoct.report.previews.to_uint8).
LOW_PERCENTILE, HIGH_PERCENTILE = 0.5, 99.5

CONVENTION = (
    "A moving-slice pixel p = (row, col) of the moving AIP lies on the fixed-slice pixel "
    "q = R(theta) (p - c) + c + t of the fixed AIP, with theta = rotation_deg, t = translation_px and "
    "c = center_px, all (row, col) in the pixels of the exported level, and R(theta) = [[cos, -sin], [sin, cos]] "
    "acting on (row, col): a positive rotation_deg turns +row towards +col (counter-clockwise on screen, with rows drawn downwards and columns to the right). "
    "The fixed slice is the upper one (moving_id - 1). Level pixel p is centred on full-resolution canvas pixel "
    "2**level * p + (2**level - 1) / 2."
)
RETURN_INSTRUCTIONS = (
    "Edit rotation_deg and translation_px (and center_px if your tool rotates about another point) of the records "
    "you correct; keep fixed_id, moving_id and level (or set level to the level your pixels are in). Put the corrected "
    "records, with the same file names (slice_zNN.json, NN the moving slice), in one folder and set "
    "manual_transforms_dir to it: each file there replaces the automated transform of its slice when stacking; "
    "slices without a file keep the automated one. refine_manual_transforms polishes them with a registration "
    "bounded by refine_max_translation_px and refine_max_rotation_deg."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--inputs", nargs="+", required=True, help="normalised slices (normalize/slice_zNN.ome.zarr)")
    parser.add_argument("--common_space", required=True, help="common_space.json")
    parser.add_argument("--transforms", nargs="*", default=[], help="register_pairwise transform JSONs")
    parser.add_argument("--output_dir", required=True, help="folder to write aips/, transforms/ and index.json into")
    add_series_arguments(parser, PARAMETERS)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from serialoct.errors import FormatError, InputError
    from serialoct.io.images import write_png
    from serialoct.io.jsonfile import read_json, write_json
    from serialoct.io.slices import read_slice
    from serialoct.io.tables import Metric
    from serialoct.report.previews import to_uint8
    from serialoct.stack.manual import ManualTransform, canvas_aip
    from serialoct.steps.alignment import begin_series, slice_id_of, write_series_metrics

    p, timer, space = begin_series(args, PARAMETERS)
    level = int(p["manual_align_level"])
    out = Path(args.output_dir)
    slices = []
    for path in sorted(args.inputs, key=slice_id_of):
        sid = slice_id_of(path)
        if sid not in space.positions_px:
            raise InputError(path, f"slice {sid} is not in {args.common_space}")
        aip = canvas_aip(read_slice(path).volume, space.shape, offset_px=space.positions_px[sid], level=level)
        values = aip[np.isfinite(aip) & (aip != 0)]
        low, high = (np.percentile(values, [LOW_PERCENTILE, HIGH_PERCENTILE]) if values.size else (0.0, 0.0))
        name = f"aips/slice_z{sid}.png"
        write_png(out / name, to_uint8(aip, low_percentile=LOW_PERCENTILE, high_percentile=HIGH_PERCENTILE))
        slices.append({"slice_id": sid, "aip": name, "shape": list(aip.shape), "intensity_low": float(low), "intensity_high": float(high)})

    pairs = []
    for path in args.transforms:
        record = read_json(path, required=("fixed_id", "moving_id", "rotation_deg", "translation_px", "center_px"))
        try:
            manual = ManualTransform.from_pairwise(record["rotation_deg"], record["translation_px"], record["center_px"],
                                                   fixed_id=str(record["fixed_id"]), moving_id=str(record["moving_id"]), level=level)
        except (TypeError, ValueError) as exc:
            raise FormatError(path, f"not a pairwise transform record ({exc})") from None
        name = f"transforms/slice_z{manual.moving_id}.json"
        write_json(out / name, manual.to_dict())
        pairs.append({"fixed_id": manual.fixed_id, "moving_id": manual.moving_id, "transform": name,
                      "automated": {k: record.get(k) for k in ("status", "reason", "confidence", "z_correlation")}})
    pairs.sort(key=lambda d: d["moving_id"])

    factor = 2**level
    write_json(out / "index.json", {
        "format": "serialoct manual alignment package", "version": 1,
        "level": level, "downsample_factor": factor,
        "pixel_size_um": space.voxel_um * factor, "full_resolution_pixel_size_um": space.voxel_um,
        "canvas_shape": [-(-n // factor) for n in space.shape], "full_resolution_canvas_shape": list(space.shape),
        "aip": "mean over depth of each slice placed in the common canvas (motor placement only), block mean over "
               f"{factor} x {factor} canvas pixels (zero-padded at the far edges; 0 = no data); PNG value "
               "v = round(255 * clip((aip - intensity_low) / (intensity_high - intensity_low), 0, 1))",
        "transform_convention": CONVENTION,
        "record_keys": ["fixed_id", "moving_id", "rotation_deg", "translation_px", "center_px", "level"],
        "return_corrected": RETURN_INSTRUCTIONS,
        "slices": slices, "pairs": pairs,
    })
    write_series_metrics(args.metrics, "export_manual_align", p, {
        "n_slices": Metric(len(slices), "", "projections exported"),
        "n_transforms": Metric(len(pairs), "", "pairwise transforms exported"),
        "pixel_size": Metric(space.voxel_um * factor, "µm", f"pixel of the exported level {level}"),
    }, timer.elapsed_s, info={"output_dir": str(out)})
    return 0
