"""Per-slice reconstruction steps: wall time and peak RSS of each step on one slice; prints a Markdown table.

Each step runs as its own ``serialoct step`` process (as the workflow runs it),
chained on one mid-acquisition slice of the ``small`` and ``medium`` presets
(rendered and preprocessed once, cached under --workdir). The working
resolution is the preset's native pixel (no resampling loss), so times are
those of the full data.

Usage::

    python benchmarks/slice.py [--presets small medium] [--workdir bench-output] [--slice 07]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from serialoct.workflows.targets import PER_SLICE_STEPS as STEPS


def prepare(workdir: Path, name: str, slice_id: str) -> tuple[Path, float]:
    """The slice's mosaic grid (rendering and preprocessing it once), and the preset's pixel size."""
    from serialoct.synth import preset, write_acquisition

    config = preset(name)
    raw, pre = workdir / name / "raw", workdir / name / "preproc"
    grid = pre / f"mosaic_grid_3d_z{slice_id}.ome.zarr"
    if not grid.is_dir():
        if not (raw / "truth").is_dir():
            shutil.rmtree(raw, ignore_errors=True)
            write_acquisition(raw, config, seed=0)
        subprocess.run([sys.executable, "-m", "serialoct", "preproc", "--input", str(raw), "--output", str(pre),
                        "--axial_resolution", str(config.axial_resolution_um), "--cores", "2"], check=True, capture_output=True)
    return grid, config.pixel_size_um


def run_step(step: str, source: Path, out: Path, slice_id: str, extra: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS MB) of one step run as its own process."""
    shutil.rmtree(out, ignore_errors=True)
    args = ["step", step, "--input", str(source), "--output", str(out), "--slice", slice_id,
            "--metrics", str(out) + ".json", "--no-use_gpu", *extra]
    code = (
        "import sys\nfrom serialoct.cli import main\n"
        f"status = main({args!r})\n"
        # VmHWM: ru_maxrss would carry this benchmark's own peak over the fork and exec
        "print(next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')))\nsys.exit(status)\n"
    )
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return time.perf_counter() - started, int(done.stdout.split()[-1]) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["small", "medium"])
    parser.add_argument("--workdir", type=Path, default=Path("bench-output"))
    parser.add_argument("--slice", default="07")
    args = parser.parse_args()
    rows = []
    for name in args.presets:
        grid, pixel_um = prepare(args.workdir, name, args.slice)
        work = args.workdir / name / "slice"
        work.mkdir(parents=True, exist_ok=True)
        source, total = grid, 0.0
        for step in STEPS:
            out = work / f"{step}.ome.zarr"
            extra = ["--resolution", str(pixel_um)] if step == "resample_mosaic_grid" else []
            seconds, rss = run_step(step, source, out, args.slice, extra)
            total += seconds
            rows.append((name, step, f"{seconds:.2f}", f"{rss:,.0f}"))
            source = out
        rows.append((name, "**all steps**", f"**{total:.1f}**", ""))
    print("| preset | step | s | peak RSS MB |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
