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

__all__ = [
    "PER_SLICE_STEPS", "RUN_KEY", "failure_record", "failed_slices", "per_slice_chain", "preproc_slices", "preproc_targets",
    "global_transform_input", "raw_inputs", "reconst_slices", "reconst_targets", "slice_input", "slice_output", "step_options",
]

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


# --------------------------------------------------------------------------- reconstruction, per slice

#: Per-slice steps of the reconstruction in order; the two optional ones run when their switch is on.
PER_SLICE_STEPS = (
    "resample_mosaic_grid",
    "fix_focal_curvature",
    "fix_illumination",
    "stitch_3d_with_refinement",
    "beam_profile_correction",
    "crop_interface",
    "compensate_attenuation",
    "normalize",
)
_SWITCHES = {"fix_focal_curvature": "fix_curvature_enabled", "fix_illumination": "fix_illum_enabled"}


def per_slice_chain(config: Mapping[str, object]) -> tuple[str, ...]:
    """The per-slice steps this configuration runs, in order."""
    return tuple(s for s in PER_SLICE_STEPS if config.get(_SWITCHES.get(s, ""), True))


def reconst_slices(config: Mapping[str, object]) -> list[str]:
    """Slice ids of the mosaic grids in the input folder, in order."""
    from serialoct.errors import InputError

    folder = Path(config["input"])
    ids = sorted(p.name[len("mosaic_grid_3d_z") : -len(".ome.zarr")] for p in folder.glob("mosaic_grid_3d_z??.ome.zarr"))
    if not ids:
        raise InputError(folder, "no mosaic_grid_3d_zNN.ome.zarr in this folder (run serialoct preproc first)")
    return ids


def slice_output(step: str, slice_id: str) -> str:
    """Where a per-slice step writes a slice, relative to the output folder."""
    return f"{step}/slice_z{slice_id}.ome.zarr"


def slice_input(config: Mapping[str, object], step: str, slice_id: str) -> str:
    """What a per-slice step reads: the previous enabled step's output, or the mosaic grid."""
    chain = per_slice_chain(config)
    index = chain.index(step)
    if index == 0:
        return str(Path(config["input"]) / f"mosaic_grid_3d_z{slice_id}.ome.zarr")
    return slice_output(chain[index - 1], slice_id)


def reconst_targets(config: Mapping[str, object], skip: set[str] = frozenset()) -> dict[str, list[str]]:
    """The outputs of a reconstruction run, by kind; ``skip`` holds slices that failed."""
    slices = [s for s in reconst_slices(config) if s not in skip]
    return {
        "slices": slices,
        "normalized": [slice_output("normalize", s) for s in slices],
        "previews": [f"previews/stitched_slices/slice_z{s}.png" for s in slices] if config["stitch_preview"] else [],
    }


def global_transform_input(config: Mapping[str, object]) -> list[str]:
    """The pooled layout matrix the stitcher reads: ``[]`` unless ``stitch_global_transform`` is on."""
    return ["stitch_3d_with_refinement/global_transform.json"] if config["stitch_global_transform"] else []
