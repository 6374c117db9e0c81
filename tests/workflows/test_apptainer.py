"""``--use_apptainer IMAGE`` runs every rule inside the image (a fake ``apptainer`` records the calls)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from serialoct.synth import preset, write_acquisition

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def container_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("apptainer") / "lab data (2026)"  # paths reach the container's command line
    write_acquisition(root / "raw", preset("tiny"), seed=0)
    bin_dir, state = root / "bin", root / "state"
    bin_dir.mkdir(parents=True)
    state.mkdir()
    fake = bin_dir / "apptainer"
    fake.write_text(f"#!/bin/sh\nexec {sys.executable} {HERE / 'fake_apptainer.py'} \"$@\"\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    image = root.parent / "serialoct.sif"  # Snakemake refuses an image path with a space (see below)
    image.write_bytes(b"not a real image")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "FAKE_APPTAINER_STATE": str(state)}
    done = subprocess.run([sys.executable, "-m", "serialoct", "preproc", "--input", str(root / "raw"), "--output", str(root / "out"),
                           "--use_apptainer", str(image), "--cores", "2"], env=env, capture_output=True, text=True)
    calls = [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines()]
    return done, calls, root, image


def test_the_run_completes_inside_the_image(container_run):
    done, _, root, _ = container_run
    assert done.returncode == 0, done.stderr[-2000:]
    assert (root / "out" / "shifts_xy.csv").is_file() and len(list((root / "out").glob("mosaic_grid_3d_z*.ome.zarr"))) == 6


def test_every_step_runs_through_apptainer_exec_with_the_image_and_the_folders_bound(container_run):
    _, calls, root, image = container_run
    execs = [c for c in calls if c[:1] == ["exec"]]
    steps = [c for c in execs if "serialoct step" in c[-1]]
    assert len(steps) >= 6 + 1  # a mosaic grid per slice, the tables
    for call in steps:
        assert str(image) in call
        assert f"{sys.executable} -m serialoct" not in call[-1]  # the image's own serialoct, not the host's interpreter
        binds = call[call.index("--bind") + 1].split(",")
        assert str(root / "raw") in binds and str(root / "out") in binds


def test_a_missing_image_is_refused_before_any_work(tmp_path, capsys):
    from serialoct.cli import main

    assert main(["preproc", "--input", str(tmp_path), "--output", str(tmp_path / "out"), "--use_apptainer", str(tmp_path / "no.sif")]) == 2
    assert "Apptainer image not found" in capsys.readouterr().err


def test_an_image_whose_path_holds_a_space_is_refused_before_any_work(tmp_path, capsys):
    from serialoct.cli import main

    image = tmp_path / "my images" / "serialoct.sif"
    image.parent.mkdir()
    image.write_bytes(b"not a real image")
    assert main(["preproc", "--input", str(tmp_path), "--output", str(tmp_path / "out"), "--use_apptainer", str(image)]) == 2
    assert f"{image}: Snakemake cannot run an Apptainer image whose path holds a space" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
