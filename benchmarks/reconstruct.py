"""End-to-end reconstruction time and memory; prints Markdown tables.

For each synthetic preset: render the raw acquisition once (cached under
--workdir), preprocess it, then run ``serialoct reconstruct`` with the guide's
defaults and report the wall time of each workflow, the slowest rules and
the peak RSS of any one job (Snakemake's benchmark records). A second table
reconstructs the same acquisition geometry with N and 2N slices: the peak
RSS of the stacking job, and of any job, must not grow with the number of
slices (the stack is rendered block by block from at most three slices).

Usage::

    python benchmarks/reconstruct.py [--presets small medium] [--slices 6 12] [--no-scaling] [--workdir bench-output] [--cores 2]
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path


def render(raw: Path, config) -> None:
    from serialoct.synth import write_acquisition

    if not (raw / "truth").is_dir():
        shutil.rmtree(raw, ignore_errors=True)
        write_acquisition(raw, config, seed=0)


def run(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "serialoct", *command], check=True, capture_output=True)
    return time.perf_counter() - started


def job_stats(out: Path) -> dict[str, tuple[float, float]]:
    """Rule -> (total seconds, max RSS MB) over its jobs (the RSS of warm workers from the run's job records)."""
    from serialoct.workflows.runner import job_peak_rss_mb

    seconds, rss = defaultdict(float), defaultdict(float, job_peak_rss_mb(out))
    for tsv in (out / "benchmarks").rglob("*.tsv"):
        rule = tsv.relative_to(out / "benchmarks").parts[0].removesuffix(".tsv")
        with open(tsv) as f:
            row = next(csv.DictReader(f, delimiter="\t"))
        seconds[rule] += float(row["s"])
        rss[rule] = max(rss[rule], float(row["max_rss"]) if row["max_rss"] not in ("-", "NA") else 0.0)
    return {r: (seconds[r], rss[r]) for r in seconds}


def pipeline(workdir: Path, name: str, config, cores: int) -> tuple[float, float, dict]:
    raw, pp, out = workdir / name / "raw", workdir / name / "pp", workdir / name / "out"
    render(raw, config)
    shutil.rmtree(pp, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    t_pp = run(["preproc", "--input", str(raw), "--output", str(pp), "--cores", str(cores), "--axial_resolution",
                str(config.axial_resolution_um), "--use_gpu", "false"])
    t_rec = run(["reconstruct", "--input", str(pp), "--output", str(out), "--cores", str(cores), "--use_gpu", "false",
                 "--resolution", str(config.pixel_size_um)])
    return t_pp, t_rec, job_stats(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["small"])
    parser.add_argument("--slices", nargs=2, type=int, default=[6, 12], metavar=("N", "2N"))
    parser.add_argument("--workdir", type=Path, default=Path("bench-output"))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--no-scaling", action="store_true", help="skip the table of peak RSS against the number of slices")
    args = parser.parse_args()

    from serialoct.synth import preset
    from serialoct.synth.config import with_overrides

    print("| preset | slices | tiles/slice | preproc s | reconstruct s | total s | slowest rules (s, all jobs) | peak job RSS MB | stack job RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.presets:
        config = preset(name)
        t_pp, t_rec, stats = pipeline(args.workdir, name, config, args.cores)
        slowest = ", ".join(f"{r} {s:.0f}" for r, (s, _) in sorted(stats.items(), key=lambda kv: -kv[1][0])[:3])
        peak = max(m for _, m in stats.values())
        gx, gy = config.grid_shape
        print(f"| {name} | {config.n_slices} | {gx}x{gy} | {t_pp:.0f} | {t_rec:.0f} | {t_pp + t_rec:.0f} | {slowest} | {peak:.0f} | {stats['stack'][1]:.0f} |",
              flush=True)

    if args.no_scaling:
        return
    print("\n| slices | reconstruct s | peak job RSS MB | stack job RSS MB | stack job s |")
    print("|---|---|---|---|---|")
    rows = []
    for n in args.slices:
        config = with_overrides(preset("small"), n_slices=n, missing_slice=None, degraded_slice=None)
        _, t_rec, stats = pipeline(args.workdir, f"small-{n}-slices", config, args.cores)
        peak = max(m for _, m in stats.values())
        rows.append((peak, stats["stack"][1]))
        print(f"| {n} | {t_rec:.0f} | {peak:.0f} | {stats['stack'][1]:.0f} | {stats['stack'][0]:.1f} |", flush=True)
    print(f"\npeak RSS ratio {args.slices[1]} vs {args.slices[0]} slices: any job {rows[1][0] / rows[0][0]:.2f}, "
          f"stack job {rows[1][1] / rows[0][1]:.2f} (target <= 1.20)")


if __name__ == "__main__":
    main()
