"""Claims about the command line as a whole."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from serialoct.cli import COMMANDS, main
from serialoct.steps import STEPS

HEAVY = ("numpy", "scipy", "zarr", "snakemake", "SimpleITK", "torch", "dask")


def _heavy_modules_after(code: str) -> str:
    """The heavy libraries loaded once ``code`` ran in a fresh interpreter, as a printed sorted list."""
    code = f"import sys\n{code}print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("words", [["--help"], ["step", "create_mosaic_grid", "--help"], ["preproc", "--help"], ["step", "--help"]])
def test_help_imports_no_heavy_library(words):
    assert _heavy_modules_after(f"from serialoct.cli import main\ntry:\n    main({words!r})\nexcept SystemExit:\n    pass\n") == "[]"


@pytest.mark.parametrize("command", ["preproc", "reconstruct"])
def test_the_runner_of_a_workflow_imports_no_heavy_library_before_snakemake_starts(command):
    code = f"import serialoct.workflows.runner, serialoct.workflows.targets, serialoct.io.acquisition, serialoct.commands.{command}\n"
    assert _heavy_modules_after(code) == "[]"


def test_every_command_and_step_has_help(capsys):
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
    for name in STEPS:
        with pytest.raises(SystemExit):
            main(["step", name, "--help"])
    assert "usage: serialoct step generate_aip" in capsys.readouterr().out


def test_unknown_command_prints_usage_and_fails(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["reconstructx"])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_step_refuses_a_parameter_value_with_a_clear_message(tmp_path, capsys):
    status = main(["step", "generate_slice_config", "--input", str(tmp_path), "--output", str(tmp_path / "c.csv"),
                   "--exclude_first_slices", "-1"])
    assert status == 2 and "exclude_first_slices" in capsys.readouterr().err


def test_a_job_declares_only_its_own_steps_options_and_an_unknown_step_lists_them_all(capsys):
    import argparse

    from serialoct.commands import step

    parser = argparse.ArgumentParser()
    step.add_arguments(parser, ["generate_aip", "--input", "x"])
    (sub,) = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    assert list(sub.choices) == ["generate_aip"]
    with pytest.raises(SystemExit):
        main(["step", "generate_aipx"])
    err = capsys.readouterr().err
    assert "invalid choice" in err and all(name in err for name in STEPS)


@pytest.mark.parametrize(
    ("command", "given", "message"),
    [
        ("reconstruct", "raw", "{raw}: this is a raw acquisition: run serialoct preproc on it, then reconstruct its output folder"),
        ("reconstruct", "nothing", "{nothing}: input folder not found (the output folder of serialoct preproc)"),
        ("preproc", "mosaics", "{mosaics}: no slice_zNN/tiles/tile_xNN_yNN_zNN folders found (it holds mosaic grids, "
                               "preprocessing's output: give it to serialoct reconstruct)"),
        ("preproc", "flat", "{flat}: no slice_zNN/tiles/tile_xNN_yNN_zNN folders found (its tiles are directly inside: "
                            "the flat layout, set use_old_folder_structure true)"),
    ],
)
def test_a_folder_given_to_the_wrong_command_is_refused_saying_what_it_holds(sample_acquisition, tmp_path, capsys, command, given, message):
    folders = {"raw": sample_acquisition, "nothing": tmp_path / "nothing", "mosaics": tmp_path / "mosaics", "flat": tmp_path / "flat"}
    (folders["mosaics"] / "mosaic_grid_3d_z00.ome.zarr").mkdir(parents=True)
    for tile in (sample_acquisition / "slice_z00" / "tiles").iterdir():
        shutil.copytree(tile, folders["flat"] / tile.name)
    assert main([command, "--input", str(folders[given]), "--output", str(tmp_path / "out")]) == 2
    assert f"serialoct {command}: error: {message.format(**folders)}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
