"""How the execution options of the workflow commands become Snakemake arguments and profiles."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from serialoct.cli import main
from serialoct.commands.workflow_options import EXECUTOR_CHOICES, add_workflow_arguments, execution_from
from serialoct.errors import InputError, ParameterError
from serialoct.workflows import execution as execution_module
from serialoct.workflows.execution import (
    EXECUTORS,
    PROFILES_DIR,
    Execution,
    check_report,
    dag_command,
    find_profile,
    resolve_execution,
)

LOCAL = str(PROFILES_DIR / "local")
SLURM = str(PROFILES_DIR / "slurm")


def _parse(*words: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_workflow_arguments(parser, "preproc")
    return parser.parse_args(list(words))


def _site_profile(folder: Path, **settings) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(settings))
    return folder


def test_default_is_the_shipped_local_profile_with_no_cluster_options():
    run = execution_from(_parse())
    assert run == Execution(executor="local")
    assert run.run_args() == ["--profile", LOCAL, "--executor", "local"]


def test_slurm_with_jobs_and_retries_becomes_snakemake_arguments():
    run = execution_from(_parse("--executor", "slurm", "--jobs", "50", "--retries", "3"))
    assert run.run_args() == ["--profile", SLURM, "--executor", "slurm", "--jobs", "50", "--retries", "3"]
    assert run.profile_args() == ["--profile", SLURM, "--executor", "slurm"]  # what --dag and --report get
    assert not run.is_local


def test_a_site_profile_is_layered_over_the_shipped_one_of_its_executor(tmp_path):
    site = _site_profile(tmp_path / "mysite", executor="slurm", **{"default-resources": {"slurm_partition": "normal"}})
    run = execution_from(_parse("--snakemake-profile", str(site)))
    assert run.executor == "slurm"  # taken from the site profile
    assert run.run_args() == ["--profile", SLURM, "--profile", str(site.resolve()), "--executor", "slurm"]


def test_the_executor_option_wins_over_the_site_profile(tmp_path):
    site = _site_profile(tmp_path / "mysite", executor="slurm")
    assert execution_from(_parse("--snakemake-profile", str(site), "--executor", "local")).executor == "local"


def test_a_relative_profile_path_is_made_absolute(tmp_path, monkeypatch):
    _site_profile(tmp_path / "site")
    monkeypatch.chdir(tmp_path)
    assert execution_from(_parse("--snakemake-profile", "site")).site_profile == tmp_path / "site"


def test_a_profile_can_be_a_yaml_file(tmp_path):
    file = tmp_path / "cluster.yaml"
    file.write_text("executor: slurm\njobs: 20\n")
    run = resolve_execution(profile=file)
    assert (run.executor, run.site_profile) == ("slurm", file)


def test_a_profile_name_is_looked_up_in_snakemake_config_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    site = _site_profile(tmp_path / "config" / "snakemake" / "calliste", executor="slurm")
    assert find_profile("calliste") == site
    assert find_profile("slurm") == PROFILES_DIR / "slurm"  # shipped names first


def test_a_shipped_profile_named_as_site_profile_is_just_the_base():
    run = resolve_execution(profile="slurm")
    assert (run.executor, run.site_profile) == ("slurm", None)


def test_a_missing_or_empty_profile_is_refused_with_its_path(tmp_path):
    with pytest.raises(InputError, match="no such Snakemake profile"):
        find_profile(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"empty: not a Snakemake profile: expected config.yaml"):
        find_profile(tmp_path / "empty")


def test_an_unsupported_executor_in_a_profile_is_refused(tmp_path):
    site = _site_profile(tmp_path / "cloud", executor="googlebatch")
    with pytest.raises(ParameterError, match=r"executor 'googlebatch' \(from .*cloud\) is not supported; choose one of local, slurm"):
        resolve_execution(profile=site)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"executor": "slurm", "cores": 8}, "--cores limits a local run; with --executor slurm"),
        ({"jobs": 8}, "--jobs limits cluster jobs; for a local run use --cores"),
        ({"executor": "slurm", "jobs": 0}, "--jobs must be at least 1, got 0"),
        ({"retries": -1}, "--retries must be 0 or more, got -1"),
    ],
)
def test_options_for_the_wrong_executor_or_out_of_range_are_refused(options, message):
    with pytest.raises(ParameterError, match=message):
        resolve_execution(**options)


def test_slurm_without_its_plugin_is_refused_with_the_install_command(monkeypatch):
    monkeypatch.setattr(execution_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ParameterError, match="needs the Snakemake executor plugin: pip install snakemake-executor-plugin-slurm"):
        resolve_execution(executor="slurm")
    assert resolve_execution().executor == "local"  # a local run needs no plugin


def test_command_line_executor_choices_are_the_shipped_profiles():
    assert EXECUTOR_CHOICES == EXECUTORS
    assert all((PROFILES_DIR / name / "config.yaml").is_file() for name in EXECUTORS)


@pytest.mark.parametrize("name", EXECUTORS)
def test_shipped_profiles_are_read_by_snakemake(name):
    from snakemake.cli import get_argument_parser

    args = get_argument_parser(profiles=[str(PROFILES_DIR / name)]).parse_args([])
    assert args.executor == name
    if name == "slurm":
        assert (args.jobs, args.retries, args.slurm_init_seconds_before_status_checks) == (100, 2, 20)
        assert {"mem_mb", "runtime"} <= set(args.default_resources.keys())
    else:
        assert args.retries == 0


def test_snakemake_lets_a_site_profile_override_the_shipped_one_key_by_key(tmp_path):
    from snakemake.cli import get_argument_parser

    site = _site_profile(tmp_path / "site", jobs=7, **{"default-resources": {"slurm_partition": "normal", "slurm_account": "lab"}})
    args = get_argument_parser(profiles=[SLURM, str(site)]).parse_args([])
    assert (args.executor, args.jobs, args.retries) == ("slurm", 7, 2)
    defaults = set(args.default_resources.keys())
    # a top-level key is replaced whole: the shipped default runtime is gone (every rule declares its own)
    assert {"slurm_partition", "slurm_account"} <= defaults and "runtime" not in defaults


@pytest.mark.parametrize(
    ("name", "expected"),
    [("dag.dot", ("dot", None)), ("dag.gv", ("dot", None)), ("dag.mmd", ("mermaid-js", None)), ("dag.mermaid", ("mermaid-js", None))],
)
def test_dag_text_formats_follow_the_suffix(name, expected):
    assert dag_command(name) == expected


def test_a_rendered_dag_needs_graphviz(monkeypatch):
    monkeypatch.setattr(execution_module.shutil, "which", lambda name: None)
    with pytest.raises(ParameterError, match=r"needs Graphviz's 'dot', which is not installed; write a .dot file instead"):
        dag_command("dag.svg")
    monkeypatch.setattr(execution_module.shutil, "which", lambda name: "/usr/bin/dot")
    assert dag_command("dag.png") == ("dot", ["/usr/bin/dot", "-Tpng"])


def test_unknown_dag_and_report_suffixes_are_refused():
    with pytest.raises(ParameterError, match=r"unknown suffix '.txt'"):
        dag_command("dag.txt")
    with pytest.raises(ParameterError, match=r"--report run.pdf: Snakemake writes a .html page or a .zip archive"):
        check_report("run.pdf")
    check_report("run.html")
    check_report("run.zip")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--executor", "slurm", "--cores", "4"], "--cores limits a local run"),
        (["--report", "run.pdf"], "Snakemake writes a .html page or a .zip archive"),
        (["--dag", "dag.txt"], "unknown suffix"),
        (["--snakemake-profile", "nowhere-site"], "no such Snakemake profile"),
    ],
)
def test_preproc_refuses_bad_execution_options_before_any_work(tmp_path, sample_acquisition, capsys, extra, message):
    out = tmp_path / "out"
    status = main(["preproc", "--input", str(sample_acquisition), "--output", str(out), *extra])
    assert status == 2 and message in capsys.readouterr().err
    assert not out.exists()


def test_preproc_writes_the_dag_and_the_report_with_the_job_runtimes(tmp_path, sample_acquisition):
    out, dag, report = tmp_path / "out", tmp_path / "dag.dot", tmp_path / "qc" / "run.html"
    assert main(["preproc", "--input", str(sample_acquisition), "--output", str(out), "--axial_resolution", "5",
                 "--dag", str(dag), "--report", str(report)]) == 0
    text = dag.read_text()
    assert text.startswith("digraph") and "create_mosaic_grid" in text and "slice: 01" in text
    html = report.read_text()
    assert "<html" in html and "create_mosaic_grid" in html
    assert not [p for p in report.parent.iterdir() if p.name.startswith(".")]  # no temporary left beside it
