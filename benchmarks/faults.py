"""Kill-and-resume under fire: SIGKILL ``serialoct preproc`` again and again, rerun the same
command each time, and check the final outputs are bit-identical to an uninterrupted run.

For each kill window (a fraction of the uninterrupted run's duration: while Python and
Snakemake start, mid-run, late), episodes run until ``--kills`` SIGKILLs have hit a running
workflow. An episode starts from an empty output folder; the command is started in its own
process group and the whole group is SIGKILLed at a seeded random moment in the window;
the same command is started again (no unlock, no cleanup by hand) until a run ends by
itself; then every output file (zarr chunks and metadata, CSVs, PNGs) must have the same
SHA-256 as in the uninterrupted run. The table also counts the debris the kills left: the
hidden ``.NAME.tmp-*`` temporaries of interrupted atomic writes (removed by the next run)
and Snakemake's incomplete-job markers (those jobs are redone).

Usage::

    python benchmarks/faults.py [--preset tiny] [--kills 8] [--seed 0] [--workdir bench-output/faults] [--cores 2]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

WINDOWS = {"startup": (0.02, 0.2), "mid-run": (0.2, 0.6), "late": (0.6, 1.0)}
NOT_OUTPUTS = {".snakemake", ".serialoct", "logs", "benchmarks", "metrics"}  # bookkeeping, timings
TEMPORARY = re.compile(r"^\..+\.(tmp|old)-\d+-[0-9a-f]{8}$")


def command(raw: Path, out: Path, axial_um: float, cores: int) -> list[str]:
    return [sys.executable, "-m", "serialoct", "preproc", "--input", str(raw), "--output", str(out),
            "--axial_resolution", str(axial_um), "--cores", str(cores), "--generate_aips", "true", "--generate_previews", "true"]


def digests(out: Path) -> dict[str, str]:
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.relative_to(out).parts[0] not in NOT_OUTPUTS and p.name != ".snakemake_timestamp"
    }


def debris(out: Path) -> tuple[set[str], set[str]]:
    """(hidden temporaries, Snakemake incomplete-job markers) now in ``out``, by name."""
    if not out.exists():
        return set(), set()
    temporaries = {p.name for p in out.rglob(".*") if TEMPORARY.match(p.name)}
    incomplete = out / ".snakemake" / "incomplete"
    markers = {p.name for p in incomplete.rglob("*") if p.is_file()} if incomplete.is_dir() else set()
    return temporaries, markers


def killed_run(cmd: list[str], delay_s: float) -> bool:
    """Start ``cmd`` in a new session; SIGKILL its process group after ``delay_s``. True if it was still running."""
    process = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        process.wait(timeout=delay_s)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return True


def timed_run(cmd: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def scenario(name: str, window: tuple[float, float], out: Path, cmd_for, reference: dict, uninterrupted_s: float,
             kills: int, rng: random.Random) -> tuple:
    started = time.perf_counter()
    hits = runs = episodes = 0
    identical = True
    temporaries: set[str] = set()
    markers: set[str] = set()
    while hits < kills:
        episodes += 1
        shutil.rmtree(out, ignore_errors=True)
        while hits < kills:
            runs += 1
            if not killed_run(cmd_for(out), rng.uniform(*window) * uninterrupted_s):
                break  # this run ended by itself: the episode's work is done
            hits += 1
            found = debris(out)
            temporaries |= found[0]
            markers |= found[1]
        runs += 1
        timed_run(cmd_for(out))  # the same command once more, to the end
        identical &= digests(out) == reference and not debris(out)[0]
    return (name, f"{window[0]:.2f}-{window[1]:.2f}", episodes, hits, runs, len(temporaries), len(markers),
            "yes" if identical else "NO", f"{time.perf_counter() - started:.1f}")


def print_table(header, rows) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(map(str, row)) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--kills", type=int, default=8, help="SIGKILLs that hit a running run, per kill window")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("bench-output") / "faults")
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    from serialoct.synth import preset, write_acquisition

    config = preset(args.preset)
    raw = args.workdir / args.preset / "raw"
    if not (raw / "truth").is_dir():
        shutil.rmtree(raw, ignore_errors=True)
        write_acquisition(raw, config, seed=args.seed)

    def cmd_for(out: Path) -> list[str]:
        return command(raw, out, config.axial_resolution_um, args.cores)

    reference_out = args.workdir / args.preset / "uninterrupted"
    shutil.rmtree(reference_out, ignore_errors=True)
    uninterrupted_s = timed_run(cmd_for(reference_out))
    reference = digests(reference_out)
    rng = random.Random(args.seed)
    rows = [scenario(name, window, args.workdir / args.preset / name, cmd_for, reference, uninterrupted_s, args.kills, rng)
            for name, window in WINDOWS.items()]
    print(f"serialoct preproc on the '{args.preset}' preset with AIPs and previews: {len(reference)} output files, "
          f"uninterrupted run {uninterrupted_s:.1f} s, {args.cores} cores, seed {args.seed}\n")
    print_table(("kill window", "fraction of run", "episodes", "SIGKILLs (hit a running run)", "runs (killed + resumed)",
                 "temporaries left by kills", "incomplete jobs left by kills", "identical outputs, no debris", "time s"), rows)
    return 0 if all(row[7] == "yes" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
