"""Where a workflow's jobs run: this machine or SLURM, through Snakemake profiles.

Two profiles ship in the package (``workflows/profiles/local`` and
``workflows/profiles/slurm``, Snakemake's ``config.yaml`` format). A run uses
the shipped profile of its executor, and a *site profile* given with
``--snakemake-profile`` is layered over it: Snakemake merges the profiles key
by key, the later winning, so a site profile holds only what differs (partition,
account, per-rule overrides). Options given on the command line (``--jobs``,
``--retries``) win over both.

Pure functions of the options and the profile files; the runner adds the
returned arguments to its Snakemake command lines.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from serialoct.errors import InputError, ParameterError
from serialoct.workflows import WORKFLOWS_DIR

__all__ = [
    "EXECUTORS",
    "Execution",
    "check_report",
    "dag_command",
    "find_profile",
    "profile_executor",
    "resolve_execution",
    "shipped_profile",
]

log = logging.getLogger(__name__)

#: Executors with a shipped profile; ``local`` is the default.
EXECUTORS = ("local", "slurm")
#: The Snakemake plugin each non-local executor needs, and its pip name.
EXECUTOR_PLUGINS = {"slurm": ("snakemake_executor_plugin_slurm", "snakemake-executor-plugin-slurm")}
PROFILES_DIR = WORKFLOWS_DIR / "profiles"
PROFILE_FILES = ("config.yaml", "profile.yaml")
#: DAG file suffixes written as text, and the Snakemake format of each.
DAG_TEXT = {".dot": "dot", ".gv": "dot", ".mmd": "mermaid-js", ".mermaid": "mermaid-js"}
#: DAG file suffixes rendered from DOT by Graphviz's ``dot``.
DAG_RENDERED = (".svg", ".png", ".pdf")
#: Report suffixes Snakemake writes: one self-contained page, or a zip for large reports.
REPORT_SUFFIXES = (".html", ".zip")


@dataclass(frozen=True)
class Execution:
    """How to run a workflow's jobs.

    Attributes
    ----------
    executor : {'local', 'slurm'}
        Snakemake executor; its shipped profile is the base.
    site_profile : Path or None
        A profile folder (or YAML file) layered over the shipped one.
    jobs : int or None
        Most cluster jobs at once (None: the profile's).
    retries : int or None
        Times a failed job is resubmitted (None: the profile's).
    container : str or None
        Apptainer image every rule runs in (``--use_apptainer``: a ``.sif``
        file or a ``docker://`` / ``library://`` URI); None runs on the host.
    binds : tuple of str
        Host folders the container must see (the input and output folders).
    """

    executor: str = "local"
    site_profile: Path | None = None
    jobs: int | None = None
    retries: int | None = None
    container: str | None = None
    binds: tuple[str, ...] = ()

    @property
    def is_local(self) -> bool:
        """Jobs run on this machine, limited by ``--cores``."""
        return self.executor == "local"

    def profile_args(self) -> list[str]:
        """``--profile`` options (shipped, then site) and the executor."""
        args = ["--profile", str(shipped_profile(self.executor))]
        if self.site_profile is not None:
            args += ["--profile", str(self.site_profile)]
        return args + ["--executor", self.executor]

    def run_args(self) -> list[str]:
        """Every Snakemake argument of a run: profiles, executor, ``--jobs``, ``--retries``."""
        args = self.profile_args()
        if self.jobs is not None:
            args += ["--jobs", str(self.jobs)]
        if self.retries is not None:
            args += ["--retries", str(self.retries)]
        if self.container is not None:
            args += ["--software-deployment-method", "apptainer"]
            if self.binds:
                # Snakemake pastes these into the job's shell command as they are
                args += ["--apptainer-args", "--bind " + shlex.quote(",".join(self.binds))]
        return args

    def with_binds(self, *folders: str | os.PathLike) -> Execution:
        """The same execution, with these host folders bound into the container (no-op without one)."""
        import dataclasses

        if self.container is None:
            return self
        return dataclasses.replace(self, binds=tuple(dict.fromkeys([*self.binds, *(os.fspath(f) for f in folders)])))


def shipped_profile(name: str) -> Path:
    """The folder of a profile shipped in the package (``local`` or ``slurm``)."""
    if name not in EXECUTORS:
        raise ParameterError(f"no shipped Snakemake profile {name!r}; shipped: {', '.join(EXECUTORS)}")
    return PROFILES_DIR / name


def _profile_file(folder: Path) -> Path | None:
    return next((folder / f for f in PROFILE_FILES if (folder / f).is_file()), None)


def _config_dirs() -> list[Path]:
    """Snakemake's own profile folders: user, then site (``~/.config/snakemake``, ``/etc/xdg/snakemake``)."""
    from platformdirs import PlatformDirs

    dirs = PlatformDirs("snakemake", "snakemake", multipath=True)
    return [Path(dirs.user_config_dir), *(Path(p) for p in dirs.site_config_dir.split(os.pathsep))]


def find_profile(name_or_path: str | os.PathLike) -> Path:
    """The absolute path of a Snakemake profile given by name or path.

    A shipped name (``local``, ``slurm``); a folder holding ``config.yaml``
    (or ``profile.yaml``); a YAML file; or the name of a folder in Snakemake's
    profile folders (``~/.config/snakemake/NAME``, ``/etc/xdg/snakemake/NAME``).

    Raises
    ------
    InputError
        If nothing matches, naming the places searched.
    """
    text = os.fspath(name_or_path)
    if text in EXECUTORS:
        return shipped_profile(text)
    path = Path(text).expanduser()
    if path.is_file():
        return path.resolve()
    if path.is_dir():
        if _profile_file(path) is None:
            raise InputError(path, f"not a Snakemake profile: expected {' or '.join(PROFILE_FILES)} inside")
        return path.resolve()
    if os.sep not in text:
        for folder in _config_dirs():
            if _profile_file(folder / text) is not None:
                return (folder / text).resolve()
    searched = ", ".join(str(d) for d in _config_dirs())
    raise InputError(
        path, f"no such Snakemake profile: give a folder with config.yaml, a YAML file, one of {', '.join(EXECUTORS)}, or a name under {searched}"
    )


def profile_executor(profile: Path) -> str | None:
    """The ``executor:`` a profile sets, if any."""
    import yaml

    file = profile if profile.is_file() else _profile_file(profile)
    try:
        loaded = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise InputError(file, f"not valid YAML ({exc})") from None
    if not isinstance(loaded, dict):
        raise InputError(file, "expected a mapping of Snakemake option: value")
    executor = loaded.get("executor")
    return None if executor is None else str(executor)


def resolve_execution(
    *, executor: str | None = None, profile: str | os.PathLike | None = None, jobs: int | None = None,
    retries: int | None = None, cores: int | None = None, container: str | None = None,
) -> Execution:
    """The execution of a run from the command-line options.

    The executor is ``executor`` if given, else the site profile's
    ``executor:``, else ``local``.

    Raises
    ------
    ParameterError
        If the executor is not one of :data:`EXECUTORS` or its plugin is not
        installed, or ``--cores`` / ``--jobs`` is given for the wrong kind of
        executor, or a count is out of range.
    InputError
        If the profile cannot be found or read.
    """
    site = find_profile(profile) if profile is not None else None
    if site is not None and site.parent == PROFILES_DIR:
        site_executor, site = site.name, None  # a shipped profile by name is the base itself
    else:
        site_executor = profile_executor(site) if site is not None else None
    chosen = executor or site_executor or "local"
    if executor is None and site is not None and site_executor is not None:
        log.info("executor %s, from the profile %s", chosen, site)
    if chosen not in EXECUTORS:
        where = f" (from {site})" if executor is None and site is not None else ""
        raise ParameterError(f"executor {chosen!r}{where} is not supported; choose one of {', '.join(EXECUTORS)}")
    for name, value in (("--jobs", jobs), ("--cores", cores)):
        if value is not None and value < 1:
            raise ParameterError(f"{name} must be at least 1, got {value}")
    if retries is not None and retries < 0:
        raise ParameterError(f"--retries must be 0 or more, got {retries}")
    if chosen == "local" and jobs is not None:
        raise ParameterError("--jobs limits cluster jobs; for a local run use --cores")
    if chosen != "local" and cores is not None:
        raise ParameterError(f"--cores limits a local run; with --executor {chosen} each job gets its rule's threads, use --jobs N to limit jobs")
    if chosen in EXECUTOR_PLUGINS and importlib.util.find_spec(EXECUTOR_PLUGINS[chosen][0]) is None:
        raise ParameterError(f"--executor {chosen} needs the Snakemake executor plugin: pip install {EXECUTOR_PLUGINS[chosen][1]}")
    if container is not None:
        container = _container_image(container)
    return Execution(executor=chosen, site_profile=site, jobs=jobs, retries=retries, container=container)


def _container_image(image: str) -> str:
    """An image URI as given, or a local image file as an absolute path.

    Raises
    ------
    InputError
        A local image file that does not exist, or an image whose path holds
        whitespace (Snakemake refuses it, after building the DAG).
    """
    if "://" in image:
        found = image
    else:
        path = Path(image).expanduser()
        if not path.is_file():
            raise InputError(path, "Apptainer image not found (give a .sif file or a docker:// URI; see docs/running.md)")
        found = str(path.resolve())
    if any(c.isspace() for c in found):
        raise InputError(found, "Snakemake cannot run an Apptainer image whose path holds a space: "
                                "move it, or link it (ln -s) from a path without one")
    return found


def dag_command(path: str | os.PathLike) -> tuple[str, list[str] | None]:
    """How to write a DAG file: the Snakemake ``--dag`` format, and the Graphviz command that renders it (or None).

    ``.dot``/``.gv`` and ``.mmd``/``.mermaid`` are written as text;
    ``.svg``/``.png``/``.pdf`` are rendered by Graphviz's ``dot``.

    Raises
    ------
    ParameterError
        If the suffix is unknown, or rendering is asked and ``dot`` is not installed.
    """
    suffix = Path(path).suffix.lower()
    if suffix in DAG_TEXT:
        return DAG_TEXT[suffix], None
    if suffix in DAG_RENDERED:
        dot = shutil.which("dot")
        if dot is None:
            raise ParameterError(f"--dag {path}: rendering {suffix} needs Graphviz's 'dot', which is not installed; write a .dot file instead")
        return "dot", [dot, f"-T{suffix[1:]}"]
    known = ", ".join([*DAG_TEXT, *DAG_RENDERED])
    raise ParameterError(f"--dag {path}: unknown suffix {suffix or '(none)'!r}; use one of {known}")


def check_report(path: str | os.PathLike) -> None:
    """Refuse a report file Snakemake cannot write (it needs ``.html`` or ``.zip``).

    Raises
    ------
    ParameterError
        If the suffix is neither.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in REPORT_SUFFIXES:
        raise ParameterError(f"--report {path}: Snakemake writes a .html page or a .zip archive, not {suffix or 'a file without suffix'}")
