"""``serialoct demo [OUT]``: render a small synthetic acquisition, preprocess it and reconstruct the volume.

What ``make demo`` runs. The acquisition (with its ground truth) goes to
``OUT/raw``, the preprocessing outputs to ``OUT/preproc`` and the
reconstruction (corrected, stitched, normalised, aligned and stacked into one
volume) to ``OUT/reconstruct``; a rerun reuses the acquisition and resumes
both workflows.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", nargs="?", default="demo-output", help="output folder (default: demo-output)")
    parser.add_argument("--preset", choices=("tiny", "small", "medium"), default="small", help="acquisition size (default: small)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the acquisition (default: 0)")


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from serialoct.cli import main
    from serialoct.synth import load_truth, preset, write_acquisition

    started = time.perf_counter()
    out = Path(args.out).resolve()
    raw, preproc, reconstruct = out / "raw", out / "preproc", out / "reconstruct"
    config = preset(args.preset)
    if (raw / "truth" / "truth.json").is_file():
        print(f"reusing the synthetic acquisition in {raw}")
    else:
        print(f"rendering the '{args.preset}' synthetic acquisition into {raw} ...")
        write_acquisition(raw, config, args.seed, overwrite=raw.exists())
    truth = load_truth(raw)
    events = truth.meta["events"]
    status = main([
        "preproc", "--input", str(raw), "--output", str(preproc),
        "--axial_resolution", str(config.axial_resolution_um),  # the instrument's axial voxel (not in info.txt)
        "--generate_aips", "true", "--generate_previews", "true", "--detect_galvo", "true",
    ])
    if status:
        return status
    print("\nreconstructing the volume (corrections, stitching, alignment, stacking) ...")
    status = main(["reconstruct", "--input", str(preproc), "--output", str(reconstruct), "--resolution", str(config.pixel_size_um),
                   "--subject_name", "demo"])
    if status:
        return status
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s")
    print(f"  raw acquisition:  {raw}  (ground truth in {raw / 'truth'}; events: {events})")
    print(f"  mosaic grids:     {preproc}/mosaic_grid_3d_zNN.ome.zarr")
    print(f"  tables:           {preproc / 'shifts_xy.csv'}, {preproc / 'slice_config.csv'}")
    print(f"  pictures:         {preproc / 'aips'}, {preproc / 'previews'}")
    print(f"  stitched slices:  {reconstruct}/normalize/slice_zNN.ome.zarr (previews in {reconstruct / 'previews' / 'stitched_slices'})")
    print(f"  volume:           {reconstruct / 'stack' / 'demo.ome.zarr'} (+ .zip, demo.png, demo_annotated.png)")
    print(f"  slice table:      {reconstruct / 'finalise_interpolation' / 'slice_config_final.csv'}")
    print(f"  QC report:        {reconstruct / 'demo_quality_report.zip'} (open the HTML inside)")
    return 0
