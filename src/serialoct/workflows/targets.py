"""What a workflow run must produce, and the options of each rule's command.

Imported by the Snakefiles; pure functions of the run configuration and the
files on disk, unit-tested without Snakemake.
"""

from __future__ import annotations

import importlib
import shlex
from collections.abc import Mapping
from pathlib import Path

from serialoct.io.acquisition import discover_slices
from serialoct.steps import STEPS

__all__ = ["RUN_KEY", "failure_record", "failed_slices", "preproc_slices", "preproc_targets", "raw_inputs", "step_options"]

#: Config key of the run settings that are not workflow parameters (command, flags).
RUN_KEY = "_run"
FAILED_DIR = "failed"


def failure_record(slice_id: str) -> str:
    """Where a failed slice's record goes, relative to the output folder."""
    return f"{FAILED_DIR}/z{slice_id}.json"


def failed_slices(output_dir: str | Path) -> set[str]:
    """Slices with a failure record in ``output_dir``."""
    folder = Path(output_dir) / FAILED_DIR
    return {p.stem[1:] for p in folder.glob("z??.json")} if folder.is_dir() else set()


def preproc_slices(config: Mapping[str, object]) -> list[str]:
    """Every slice id in the raw data, in order."""
    return list(discover_slices(config["input"], old_layout=bool(config["use_old_folder_structure"])))


def raw_inputs(config: Mapping[str, object], slice_id: str | None = None) -> list[str]:
    """The raw files a rule depends on (so a changed tile reruns its slice): headers and frames."""
    slices = discover_slices(config["input"], old_layout=bool(config["use_old_folder_structure"]))
    chosen = slices.values() if slice_id is None else [slices[slice_id]]
    files = []
    for found in chosen:
        for ref in found.tiles:
            files.append(str(ref.path / "info.txt"))
            if slice_id is not None:
                files += sorted(str(p) for p in ref.path.glob("image_*.bin"))
    return files


def preproc_targets(config: Mapping[str, object], skip: set[str] = frozenset()) -> dict[str, list[str]]:
    """The outputs of a preprocessing run, by kind.

    ``skip`` holds slices whose preprocessing failed: they get no mosaic,
    AIP or preview, and ``slice_config.csv`` records them as failed.
    """
    slices = [s for s in preproc_slices(config) if s not in skip]
    targets = {
        "slices": slices,
        "mosaics": [f"mosaic_grid_3d_z{s}.ome.zarr" for s in slices],
        "tables": ["shifts_xy.csv"],
        "aips": [f"aips/aip_z{s}.png" for s in slices] if config["generate_aips"] else [],
        "previews": [f"previews/mosaic_grid_z{s}_preview.png" for s in slices] if config["generate_previews"] else [],
    }
    if config["generate_slice_config"]:
        targets["tables"].append("slice_config.csv")
    return targets


def step_options(config: Mapping[str, object], step: str) -> str:
    """The registry options of ``step``'s command, from the run configuration, shell-quoted."""
    module = importlib.import_module(STEPS[step][0])
    words = []
    for name in getattr(module, "PARAMETERS", ()):
        value = config[name]
        if isinstance(value, bool):
            words.append(f"--{name}" if value else f"--no-{name}")
        elif isinstance(value, (list, tuple)):
            words += [f"--{name}", ",".join(str(v) for v in value)]
        else:
            words += [f"--{name}", "null" if value is None else str(value)]
    return shlex.join(words)
