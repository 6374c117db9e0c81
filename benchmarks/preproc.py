"""Preprocessing throughput and memory against the I/O floor; prints a Markdown table.

For each synthetic preset: render the raw acquisition once (cached under
--workdir), time a plain read of every ``.bin`` file (the I/O floor: nothing
can be faster than reading the data once), then run ``serialoct preproc`` end
to end and report raw MB/s, the fraction of the floor reached, and the peak
RSS of one slice's ``create_mosaic_grid`` job (from the warm workers' job
records, or Snakemake's benchmark records without a fork server). The raw
files are evicted from the page cache before the floor and again before the
run (``posix_fadvise(DONTNEED)``, which needs no root), so both read them
from the disk (before 2026-12-02 evening the run read what the floor had
just cached, which flattered it by about a quarter on ``medium``). Until
2026-12-04 the whole page cache was emptied instead (as root), so the run
also read Python, NumPy, Snakemake and serialoct from the disk: 0.4-0.5 s
more start-up on the development machine, which has nothing to do with the
data. That fully cold run is still timed, once per repeat, as root, in its
own column. The disk's speed wanders from read to read (242-1,281 MB/s on
the development machine), so the floor and the run alternate ``--repeats``
times and the best of each is compared, with the ranges beside them. The
floor is the faster of a plain read and a read around the page cache two
files at a time (``O_DIRECT``, as serialoct's tile readers read; on the
development machine the faster one). A second table runs the mosaic step alone on one slice of the
``small`` tiles at growing grid sizes: its peak RSS must not grow with the
tiles per slice, since a slice is assembled one shard at a time.

Usage::

    python benchmarks/preproc.py [--presets small medium] [--workdir bench-output] [--cores 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def render(raw: Path, name: str) -> float:
    from serialoct.synth import preset, write_acquisition

    if (raw / "truth").is_dir():
        return 0.0
    shutil.rmtree(raw, ignore_errors=True)
    started = time.perf_counter()
    write_acquisition(raw, preset(name), seed=0)
    return time.perf_counter() - started


def drop_caches() -> bool:
    """Empty the kernel's whole page cache, the software's files included; False without the right (not root)."""
    subprocess.run(["sync"], check=False)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def evict(raw: Path) -> None:
    """Drop the raw files from the page cache (written back first), so the next read of them comes from the disk."""
    subprocess.run(["sync"], check=False)
    for path in raw.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def io_floor(raw: Path) -> tuple[float, float]:
    """(MB, seconds) to read every raw frame file once, the plain way."""
    files = sorted(raw.rglob("image_*.bin"))
    started = time.perf_counter()
    total = sum(np.fromfile(f, dtype=np.uint8).size for f in files)
    return total / 1e6, time.perf_counter() - started


def io_floor_direct(raw: Path, threads: int = 2) -> tuple[float, float]:
    """(MB, seconds) to read every raw frame file once around the page cache, ``threads`` files at a time (as
    serialoct's tile readers do, one per job: on the development machine faster than a plain read)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from serialoct.io.direct import aligned_empty, read_into

    files = sorted(raw.rglob("image_*.bin"))
    local = threading.local()

    def read(path: Path) -> int:
        size = path.stat().st_size
        buffer = getattr(local, "buffer", None)
        if buffer is None or buffer.size < size:
            buffer = local.buffer = aligned_empty(size, np.uint8)
        read_into(path, buffer[:size])
        return size

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        total = sum(pool.map(read, files))
    return total / 1e6, time.perf_counter() - started


def mosaic_job_stats(out: Path) -> tuple[float, float]:
    """(mean seconds, max RSS MB) of the create_mosaic_grid jobs (RSS of warm workers from the run's job records)."""
    from serialoct.workflows.runner import job_peak_rss_mb

    seconds, rss = [], [job_peak_rss_mb(out).get("create_mosaic_grid", 0.0)]
    for tsv in (out / "benchmarks" / "create_mosaic_grid").glob("*.tsv"):
        with open(tsv) as f:
            row = next(csv.DictReader(f, delimiter="\t"))
        seconds.append(float(row["s"]))
        rss.append(float(row["max_rss"]))
    return float(np.mean(seconds)), float(np.max(rss))


def run_preproc(raw: Path, out: Path, cores: int, axial_um: float) -> float:
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "serialoct", "preproc", "--input", str(raw), "--output", str(out),
               "--cores", str(cores), "--processes", "1", "--axial_resolution", str(axial_um),
               "--use_gpu", "false"]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def rss_scaling(workdir: Path, grids: list[int]) -> list[tuple]:
    """Peak RSS of create_mosaic_grid on one slice of small-preset tiles, per grid size."""
    from serialoct.synth import preset, write_acquisition
    from serialoct.synth.config import with_overrides

    rows = []
    for n in grids:
        raw = workdir / f"grid{n}x{n}" / "raw"
        config = with_overrides(preset("small"), n_slices=1, grid_shape=(n, n), glitch_slice=None, rehoming_slice=None,
                                missing_slice=None, degraded_slice=None)
        if not (raw / "truth").is_dir():
            shutil.rmtree(raw, ignore_errors=True)
            write_acquisition(raw, config, seed=0)
        out = raw.parent / "mosaic.ome.zarr"
        shutil.rmtree(out, ignore_errors=True)
        code = (
            "import sys\nfrom serialoct.cli import main\n"
            f"status = main(['step', 'create_mosaic_grid', '--input', {str(raw)!r}, '--slice', '00', '--output', {str(out)!r},"
            f" '--metrics', {str(out) + '.json'!r}, '--axial_resolution', '8', '--no-use_gpu', '--processes', '2'])\n"
            # VmHWM, not getrusage's ru_maxrss: Linux carries the latter over exec from the forked
            # parent, so a benchmark process grown by rendering would be measured instead of the step
            "print(next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')))\n"
        )
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        mb = sum(f.stat().st_size for f in raw.rglob("image_*.bin")) / 1e6
        rows.append((f"{n}x{n}", n * n, f"{mb:,.0f}", f"{elapsed:.2f}", f"{int(done.stdout.split()[-1]) / 1024:,.0f}"))
    return rows


def print_table(header, rows) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(map(str, row)) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["small", "medium"])
    parser.add_argument("--workdir", type=Path, default=Path("bench-output"))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--grids", type=int, nargs="+", default=[4, 8, 12], help="grid sizes for the RSS scaling table")
    parser.add_argument("--repeats", type=int, default=3, help="cold floor reads and runs, alternating; the best of each is compared")
    args = parser.parse_args()
    from serialoct.synth import preset

    rows = []
    for name in args.presets:
        raw, out = args.workdir / name / "raw", args.workdir / name / "preproc"
        render_s = render(raw, name)
        config = preset(name)
        plain, direct, runs, jobs, all_cold = [], [], [], [], []
        for _ in range(max(1, args.repeats)):
            for floor, times in ((io_floor, plain), (io_floor_direct, direct)):
                evict(raw)
                mb, seconds = floor(raw)
                times.append(seconds)
            evict(raw)  # the run reads from the disk too, not from the floor's page cache
            runs.append(run_preproc(raw, out, args.cores, config.axial_resolution_um))
            jobs.append(mosaic_job_stats(out))
            if drop_caches():  # the software read from the disk as well
                all_cold.append(run_preproc(raw, out, args.cores, config.axial_resolution_um))
        floor_s, total_s = min(plain + direct), min(runs)
        job_s, job_rss = jobs[runs.index(total_s)]
        n_slices = len(list(out.glob("mosaic_grid_3d_z*.ome.zarr")))

        def speeds(times):  # MB/s, slowest-fastest
            return f"{mb / max(times):,.0f}-{mb / min(times):,.0f}"

        rows.append((name, f"{config.grid_shape[0]}x{config.grid_shape[1]}", n_slices, f"{mb:,.0f}",
                     f"{mb / floor_s:,.0f}", speeds(plain), speeds(direct), f"{total_s:.1f}", f"{total_s:.1f}-{max(runs):.1f}",
                     f"{mb / total_s:,.0f}", f"{100 * floor_s / total_s:.0f}%",
                     f"{job_s:.2f}", f"{mb / n_slices / job_s:,.0f}", f"{job_rss:,.0f}", f"{render_s:.0f}" if render_s else "cached",
                     f"{min(all_cold):.1f}-{max(all_cold):.1f}" if all_cold else "not root"))
    print_table(("preset", "tiles/slice", "slices", "raw MB", "floor MB/s (best)", "plain read MB/s", "direct read MB/s",
                 "preproc s (best)", "preproc s (all)", "preproc MB/s", "of floor", "mosaic job s", "mosaic job MB/s",
                 "mosaic job peak RSS MB", "render s", "preproc s, whole page cache emptied"), rows)
    print()
    print_table(("grid", "tiles", "raw MB", "mosaic step s", "peak RSS MB"), rss_scaling(args.workdir, args.grids))
    return 0


if __name__ == "__main__":
    sys.exit(main())
