"""The preprocessing workflow on SLURM: the Snakemake SLURM executor plugin against fake SLURM commands.

``fake_slurm.py`` stands in for ``sbatch``, ``srun``, ``squeue``, ``sacct``,
``scancel``, ``sinfo``, ``scontrol`` and ``sacctmgr``: it records every call
and really runs each submitted job, so the run produces its outputs and each
``sbatch`` line can be checked against the rule's resource declarations.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from serialoct.cli import main
from serialoct.synth import preset, write_acquisition
from serialoct.workflows.resources import memory_mb, runtime_min
from serialoct.workflows.targets import RUN_KEY

FAKE = Path(__file__).with_name("fake_slurm.py")
SLURM_COMMANDS = ("sbatch", "srun", "squeue", "sacct", "scancel", "sinfo", "scontrol", "sacctmgr")
PROCESSES = 2  # the mosaic rule's threads, so --cpus-per-task differs between rules
OOM_SLICE = "03"  # the cluster kills this slice's first mosaic job for memory
OOM_LIMIT_MB = 2000  # above the first attempt's request, below the second's
SITE_PROFILE = {
    # the site settings a lab adds over the shipped slurm profile (docs/running.md)
    "default-resources": {"slurm_partition": "batch", "slurm_account": "lab"},
    "set-resources": {"create_mosaic_grid": {"slurm_partition": "gpu"}},
    # poll every second, not every 10-40 s, so the test takes seconds per job
    "seconds-between-status-checks": 1,
    "slurm-init-seconds-before-status-checks": 1,
}


@dataclass(frozen=True)
class Submission:
    """One recorded ``sbatch`` call."""

    rule: str
    slice_id: str | None
    attempt: int
    args: list[str]

    def value(self, name: str) -> str | None:
        """``name``'s value (``--name value``, ``--name=value`` or ``-X value``), None if absent."""
        for i, arg in enumerate(self.args):
            if arg == name and i + 1 < len(self.args):
                return self.args[i + 1]
            if arg.startswith(name + "="):
                return arg[len(name) + 1 :]
        return None


@dataclass(frozen=True)
class SlurmRun:
    status: int
    out: Path
    calls: list[dict]
    config: dict

    def args_of(self, command: str) -> list[list[str]]:
        return [c["args"] for c in self.calls if c["command"] == command]

    def submissions(self) -> list[Submission]:
        found = []
        for args in self.args_of("sbatch"):
            comment = args[args.index("--comment") + 1]  # rule_NAME or rule_NAME_wildcards_VALUE
            rule, _, slice_id = comment.removeprefix("rule_").partition("_wildcards_")
            attempt = int(re.search(r"--attempt (\d+)", args[-1]).group(1))  # in the --wrap'ed job command
            found.append(Submission(rule, slice_id or None, attempt, args))
        return found


def install_fake_slurm(bin_dir: Path) -> None:
    """One executable per SLURM command in ``bin_dir``, each running fake_slurm.py with its name."""
    bin_dir.mkdir(parents=True)
    for name in SLURM_COMMANDS:
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" {name} "$@"\n')
        script.chmod(0o755)


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory) -> SlurmRun:
    """A tiny acquisition preprocessed with ``--executor slurm`` and a site profile, on the fake cluster."""
    root = tmp_path_factory.mktemp("slurm") / "lab data (2026)"  # paths reach sbatch and the job scripts
    write_acquisition(root / "raw", preset("tiny"), seed=0)
    install_fake_slurm(root / "bin")
    (root / "state").mkdir()
    (root / "site").mkdir()
    (root / "site" / "config.yaml").write_text(yaml.safe_dump(SITE_PROFILE))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PATH", f"{root / 'bin'}{os.pathsep}{os.environ['PATH']}")
        env.setenv("FAKE_SLURM_STATE", str(root / "state"))
        env.setenv("FAKE_SLURM_MIN_MEM_MB", json.dumps({f"rule_create_mosaic_grid_wildcards_{OOM_SLICE}": OOM_LIMIT_MB}))
        status = main([
            "preproc", "--input", str(root / "raw"), "--output", str(root / "out"), "--axial_resolution", "8",
            "--processes", str(PROCESSES), "--executor", "slurm", "--snakemake-profile", str(root / "site"),
        ])
    calls = [json.loads(line) for line in (root / "state" / "calls.jsonl").read_text().splitlines()]
    config = yaml.safe_load((root / "out" / ".serialoct" / "preproc_config.yaml").read_text())
    config.pop(RUN_KEY)
    return SlurmRun(status, root / "out", calls, config)


def test_every_output_is_produced_by_slurm_jobs(slurm_run):
    assert slurm_run.status == 0
    slices = [f"{i:02d}" for i in range(preset("tiny").n_slices)]
    for slice_id in slices:
        assert (slurm_run.out / f"mosaic_grid_3d_z{slice_id}.ome.zarr" / "zarr.json").is_file()
    assert (slurm_run.out / "shifts_xy.csv").is_file() and (slurm_run.out / "slice_config.csv").is_file()
    first_attempts = sorted((s.rule, s.slice_id) for s in slurm_run.submissions() if s.attempt == 1)
    expected = sorted([("create_mosaic_grid", s) for s in slices] + [("estimate_xy_shifts", None), ("generate_slice_config", None)])
    assert first_attempts == expected  # every job went through sbatch, none ran on the submitting machine
    assert any("--format=JobIdRaw,State" in args for args in slurm_run.args_of("sacct"))  # completion came from sacct


def test_each_submission_carries_the_rule_declared_resources(slurm_run):
    for job in slurm_run.submissions():
        wildcards = {"slice": job.slice_id} if job.slice_id else {}
        mosaic = job.rule == "create_mosaic_grid"
        assert job.value("--mem") == str(memory_mb(job.rule, slurm_run.config)(wildcards, attempt=job.attempt)), job
        assert job.value("-t") == str(runtime_min(job.rule)(wildcards, attempt=job.attempt)), job
        assert job.value("--cpus-per-task") == str(PROCESSES if mosaic else 1), job
        assert job.value("-p") == ("gpu" if mosaic else "batch"), job  # site default, and the per-rule override
        assert job.value("-A") == "lab", job
        assert job.value("--gpus") == ("1" if mosaic else None), job  # use_gpu (default true) on GPU-capable steps only


def test_a_job_killed_for_memory_is_resubmitted_with_more_memory_and_time(slurm_run):
    tries = [s for s in slurm_run.submissions() if s.rule == "create_mosaic_grid" and s.slice_id == OOM_SLICE]
    assert [s.attempt for s in tries] == [1, 2]
    first, second = (int(s.value("--mem")) for s in tries)
    assert first < OOM_LIMIT_MB <= second and second == pytest.approx(2 * first, abs=100)
    assert [int(s.value("-t")) for s in tries] == [60, 120]
    assert (slurm_run.out / f"mosaic_grid_3d_z{OOM_SLICE}.ome.zarr" / "zarr.json").is_file()


def test_each_job_runs_its_step_under_srun_with_the_rule_threads(slurm_run):
    steps = {}
    for args in slurm_run.args_of("srun"):
        rule = args[args.index("--allowed-rules") + 1]
        steps.setdefault(rule, set()).add(next(a for a in args if a.startswith("--cpus-per-task=")))
    assert steps == {
        "create_mosaic_grid": {f"--cpus-per-task={PROCESSES}"},
        "estimate_xy_shifts": {"--cpus-per-task=1"},
        "generate_slice_config": {"--cpus-per-task=1"},
    }
