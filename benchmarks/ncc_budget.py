"""Where the volume's NCC with the phantom goes: one reconstruction against oracles; prints a Markdown table.

The reconstruction test (tests/workflows/test_reconstruct.py) measures the
stacked volume of the ``small`` acquisition (seed 0) against the phantom's
reflectivity at 25 µm. This script reruns that reconstruction with the input
of normalisation (the ``compensate_attenuation`` outputs) replaced by
oracles, each in a copy of the finished run (Snakemake then redoes
normalisation and every series step):

- ``pipeline``: the volume as computed from the raw tiles;
- ``ideal intensities``: every slice is the phantom's reflectivity in its own
  stitched frame (what perfect beam, interface and attenuation corrections
  would give): the ceiling that stacking, interpolation and the metric allow;
- ``true decay, our compensation``: the reflectivity attenuated by the true
  ``exp(-2 * integral of mu)`` from each slice's cut, then compensated as the
  pipeline does (tail extrapolated from the slice's last planes): the cost of
  the compensation alone;
- ``true decay, exact tail``: the same, given the true signal below each
  slice's last plane: what a perfect tail would win back.

No speckle is added to the oracles (it costs about 0.003 in NCC).

A second table splits each volume's ``1 - NCC**2`` by the output planes each
slice fills (the residual of one linear fit of the volume to the
reflectivity over the tissue, summed per zone); the last slice is split at
its cut thickness (below it no slice images the tissue).

Usage::

    python benchmarks/ncc_budget.py [--workdir bench-output/ncc_budget] [--cores 2] [--seed 0] [--preset small] [--no-oracles]

``--preset medium --no-oracles`` measures the pipeline alone on the larger
acquisition (19 slices; about 10 min).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.workflows.volume_truth: where the reconstruction put each slice

SUBJECT = "brain"
#: As the reconstruction test: full pairwise transforms, no smoothing of the synthetic random motion.
ACCURATE = ("--profile", "aggressive", "--stack_smooth_window", "0", "--stack_translation_smooth_sigma", "0")
#: Planes below a slice's data summed for the exact tail (agarose, the least attenuating material, keeps < 10 % beyond).
TAIL_PLANES = 300
TAIL_BLOCK = 25


def serialoct(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "serialoct", *args], check=True, capture_output=True)


def reconstruct(pp: Path, out: Path, cores: int, resolution_um: float = 12.0) -> None:
    """At the acquisition's pixel size (the reconstruction test's ``small``: 12 µm)."""
    serialoct("reconstruct", "--input", str(pp), "--output", str(out), "--subject_name", SUBJECT, "--resolution", str(resolution_um),
              "--processes", str(cores), "--cores", str(cores), *ACCURATE)


def volume_score(plan, truth, out: Path) -> tuple[float, dict[str, float]]:
    """The reconstruction test's volume NCC (best of a few whole-plane depth shifts), and its loss by zone."""
    from tests.workflows.volume_truth import sample_volume, stacked_placements, volume_ncc

    found, volume, space = stacked_placements(plan, out, SUBJECT)
    sid = next(iter(found))  # the first slice stacked from its own data
    to_canvas = found[sid][0]
    stacked = volume.extra_attrs["stacked_slices"]
    data = volume.read(0)
    score, shift = volume_ncc(data, space["voxel_um"], truth, plan, to_canvas, plan.slice(sid).cut_depth_mm)
    sampled, reflectivity, tissue, planes = sample_volume(data, space["voxel_um"], truth, plan, to_canvas, plan.slice(sid).cut_depth_mm, shift)
    return score, zone_losses(sampled, reflectivity, tissue, planes, stacked)


def zones_of(stacked: list[dict]) -> dict[str, tuple[float, float]]:
    """Output planes each stacked slice fills: down to the next slice's top; the last slice split at its cut thickness."""
    starts = [p["z_start"] for p in stacked]
    cut = float(np.median(np.diff(starts))) if len(starts) > 1 else float(stacked[-1]["z_stop"])
    zones = {p["slice_id"]: (p["z_start"], q["z_start"]) for p, q in zip(stacked[:-1], stacked[1:])}
    last = stacked[-1]
    zones[f"{last['slice_id']} (first {cut:.0f} planes)"] = (last["z_start"], last["z_start"] + cut)
    zones[f"{last['slice_id']} (below)"] = (last["z_start"] + cut, last["z_stop"])
    return zones


def zone_losses(sampled, reflectivity, tissue, planes, stacked) -> dict[str, float]:
    """``1 - NCC**2`` split by zone: each zone's squared residual of one linear fit over the whole tissue."""
    a, b = sampled[tissue], reflectivity[tissue]
    slope, offset = np.polyfit(b, a, 1)
    residual = (sampled - (slope * reflectivity + offset)) ** 2
    total = float(((a - a.mean()) ** 2).sum())
    out = {}
    for name, (start, stop) in zones_of(stacked).items():
        inside = tissue & ((planes >= start) & (planes < stop))[:, None, None]
        out[name] = float(residual[inside].sum() / total)
    return out


class SliceOracle:
    """The phantom seen in one slice's stitched frame: reflectivity and attenuation at every voxel, and below."""

    def __init__(self, plan, cropped):
        from serialoct.synth.geometry import cut_depth, stage_to_sample
        from tests.workflows.volume_truth import frame_origin_px

        self.plan, self.shape = plan, cropped.volume.shape
        self.dz_mm = cropped.voxel_size_um[0] / 1000.0
        pixel_mm = cropped.voxel_size_um[1] / 1000.0
        sid = cropped.extra["slice_id"]
        origin = frame_origin_px(plan, sid, cropped.extra["stitch_positions_px"], pixel_mm)
        rows = (np.arange(self.shape[1])[:, None] + origin[0]) * pixel_mm + np.zeros((1, self.shape[2]))
        cols = (np.arange(self.shape[2])[None, :] + origin[1]) * pixel_mm + np.zeros((self.shape[1], 1))
        self.x, self.y = stage_to_sample(plan.config, plan.slice(sid), rows, cols)
        self.top = cut_depth(plan, plan.slice(sid), self.x, self.y)
        self.imaged = cropped.volume[0] > 0  # inside the stitched tiles

    def planes(self, first: int, n: int):
        """(reflectivity, attenuation) of planes ``first .. first + n`` below the cut (voxel centres)."""
        from serialoct.synth.phantom import evaluate_phantom, sample_texture, texture_slab

        z = self.top[None] + (np.arange(first, first + n)[:, None, None] + 0.5) * self.dz_mm
        texture = texture_slab(self.plan.phantom, float(z.min()), float(z.max()))
        ph = evaluate_phantom(self.plan.phantom, z, self.x, self.y, texture=sample_texture(self.plan.phantom, texture, z, self.x, self.y))
        return ph.reflectivity, ph.attenuation

    def reflectivity(self) -> np.ndarray:
        return np.where(self.imaged, self.planes(0, self.shape[0])[0], 0.0).astype(np.float32)

    def decayed(self) -> tuple[np.ndarray, np.ndarray]:
        """The reflectivity times the true two-way attenuation from the cut, and the exact signal below the last plane."""
        refl, mu = self.planes(0, self.shape[0])
        depth = (np.cumsum(mu, axis=0) - 0.5 * mu) * self.dz_mm
        signal = np.where(self.imaged, refl * np.exp(-2.0 * depth), 0.0).astype(np.float32)
        optical = depth[-1] + 0.5 * mu[-1] * self.dz_mm
        tail = np.zeros(self.shape[1:], np.float64)
        for first in range(self.shape[0], self.shape[0] + TAIL_PLANES, TAIL_BLOCK):
            refl, mu = self.planes(first, TAIL_BLOCK)
            depth = optical[None] + (np.cumsum(mu, axis=0) - 0.5 * mu) * self.dz_mm
            tail += (refl * np.exp(-2.0 * depth)).sum(axis=0)
            optical = depth[-1] + 0.5 * mu[-1] * self.dz_mm
        return signal, np.where(self.imaged, tail, 0.0).astype(np.float32)


def oracle_inputs(plan, run: Path) -> dict[str, dict[str, np.ndarray]]:
    """Slice id -> {variant: the volume that replaces its compensate_attenuation output}."""
    from serialoct.correct.attenuation import compensate_attenuation
    from serialoct.io.slices import read_slice

    found = {}
    for path in sorted((run / "crop_interface").glob("slice_z*.ome.zarr")):
        cropped = read_slice(path)
        oracle = SliceOracle(plan, cropped)
        signal, tail = oracle.decayed()
        axial_um = cropped.voxel_size_um[0]
        found[cropped.extra["slice_id"]] = {
            "ideal intensities": oracle.reflectivity(),
            "true decay, our compensation": compensate_attenuation(signal, axial_um=axial_um).volume,
            "true decay, exact tail": compensate_attenuation(signal, axial_um=axial_um, tail=tail).volume,
        }
    return found


def with_inputs(run: Path, out: Path, volumes: dict[str, np.ndarray]) -> None:
    """A copy of a finished run whose compensate_attenuation outputs are ``volumes``."""
    from serialoct.io.slices import read_slice, write_slice

    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(run, out, symlinks=True)
    for sid, volume in volumes.items():
        path = out / "compensate_attenuation" / f"slice_z{sid}.ome.zarr"
        original = read_slice(path)
        shutil.rmtree(path)
        write_slice(path, volume, original.voxel_size_um, extra=original.extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("bench-output/ncc_budget"))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="of the synthetic acquisition (the reconstruction test uses 0)")
    parser.add_argument("--preset", default="small", help="synthetic acquisition preset (the reconstruction test uses small)")
    parser.add_argument("--no-oracles", dest="oracles", action="store_false", help="measure the pipeline only")
    args = parser.parse_args()

    from serialoct.synth import load_truth, preset, write_acquisition

    raw, pp, run = args.workdir / "raw", args.workdir / "pp", args.workdir / "pipeline"
    config = preset(args.preset)
    if not (raw / "truth").is_dir():
        shutil.rmtree(raw, ignore_errors=True)
        write_acquisition(raw, config, seed=args.seed)
    if not (pp / "slice_config.csv").is_file():
        serialoct("preproc", "--input", str(raw), "--output", str(pp), "--axial_resolution", str(config.axial_resolution_um),
                  "--processes", str(args.cores), "--cores", str(args.cores))
    reconstruct(pp, run, args.cores, config.pixel_size_um)
    truth = load_truth(raw)
    plan = truth.plan()
    rows = [("pipeline", *volume_score(plan, truth, run), "-")]
    oracles = oracle_inputs(plan, run) if args.oracles else {}
    for variant in next(iter(oracles.values()), {}):
        out = args.workdir / variant.replace(" ", "_").replace(",", "")
        with_inputs(run, out, {sid: volumes[variant] for sid, volumes in oracles.items()})
        started = time.perf_counter()
        reconstruct(pp, out, args.cores, config.pixel_size_um)
        rows.append((variant, *volume_score(plan, truth, out), f"{time.perf_counter() - started:.0f}"))
    print("| input of normalisation | volume NCC at 25 µm | rerun s |")
    print("|---|---|---|")
    for name, score, _, seconds in rows:
        print(f"| {name} | {score:.3f} | {seconds} |")
    zones = list(rows[0][2])
    print("\n| zone (`1 - NCC²`) | " + " | ".join(f"{name} ({score:.3f})" for name, score, _, _ in rows) + " |")
    print("|---" * (len(rows) + 1) + "|")
    for zone in zones + ["total"]:
        values = [sum(split.values()) if zone == "total" else split.get(zone, float("nan")) for _, _, split, _ in rows]
        print(f"| {zone} | " + " | ".join(f"{v:.3f}" for v in values) + " |")


if __name__ == "__main__":
    main()
