"""What a workflow run must produce, and the options of each rule's command.

Imported by the Snakefiles; pure functions of the run configuration and the
files on disk, unit-tested without Snakemake.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
import shlex
from collections.abc import Mapping
from pathlib import Path

from serialoct.io.acquisition import discover_slices
from serialoct.io.tileinfo import BIN_GLOB
from serialoct.steps import STEPS

__all__ = [
    "COMMON_SPACE", "INTERPOLATION_MANIFEST", "PER_SLICE_STEPS", "RUN_KEY", "SLICE_CONFIG_FINAL", "acquisition_slices", "diagnostic_on",
    "diagnostics_outputs", "failed_slices", "failure_record", "final_volume", "global_transform_input",
    "interpolation_manifest", "manual_transforms", "mosaic_ids", "pair_transform", "parse_slice_ranges", "per_slice_chain",
    "preproc_slices", "preproc_targets", "ras_output", "raw_fingerprint", "reconst_slices", "reconst_targets", "report_inputs",
    "report_output", "shifts_for_common_space", "slice_config_after", "slice_input", "slice_output", "stack_output",
    "step_options", "subject_name",
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


@functools.lru_cache(maxsize=4)
def acquisition_slices(raw: str, old_layout: bool):
    """The acquisition's tiles, found once per process: a Snakemake run asks for them for every rule and slice
    (and re-evaluates rule parameters at every scheduling round); a later change on disk is seen by the next run."""
    return discover_slices(raw, old_layout=old_layout)


def preproc_slices(config: Mapping[str, object]) -> list[str]:
    """Every slice id in the raw data, in order."""
    return list(acquisition_slices(str(config["input"]), bool(config["use_old_folder_structure"])))


@functools.lru_cache(maxsize=None)
def _fingerprint(raw: str, old_layout: bool, slice_id: str | None) -> str:
    slices = acquisition_slices(raw, old_layout)
    chosen = slices.values() if slice_id is None else [slices[slice_id]]
    digest = hashlib.sha1()
    for found in chosen:
        for ref in found.tiles:
            names = ["info.txt"] if slice_id is None else ["info.txt", *sorted(p.name for p in ref.path.glob(BIN_GLOB))]
            for name in names:
                try:
                    st = os.stat(ref.path / name)
                    stamp = f"{st.st_size} {st.st_mtime_ns}"
                except OSError:
                    stamp = "missing"  # the step reports it
                digest.update(f"{ref.path.name}/{name} {stamp}\n".encode())
    return digest.hexdigest()


def raw_fingerprint(config: Mapping[str, object], slice_id: str | None = None) -> str:
    """A digest of the raw files a rule reads: names, sizes and modification times.

    The tiles' headers and frames of ``slice_id`` (the mosaic rule), or every
    tile's header (``slice_id`` None: the stage shifts). The rules carry it as
    a parameter instead of listing the files as inputs, and Snakemake reruns a
    rule whose parameters changed: a changed, added or removed tile reruns its
    slice. Listed as inputs, the files were checked again by Snakemake's
    scheduler for every ready job at every scheduling round: about 2,000 files
    per round on ``medium`` (19 slices of 36 tiles), 4-6 s of the 20 s
    preprocessing run, and quadratic in the number of slices.
    """
    return _fingerprint(str(config["input"]), bool(config["use_old_folder_structure"]), slice_id)


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


def parse_slice_ranges(text: str) -> set[str]:
    """Slice ids of a ``debug_slices`` value (``"25,26"``, ``"25-29"``; empty = no restriction: empty set).

    Examples
    --------
    >>> sorted(parse_slice_ranges("3, 7-9"))
    ['03', '07', '08', '09']
    """
    ids: set[str] = set()
    for part in filter(None, (p.strip() for p in str(text or "").split(","))):
        first, _, last = (v.strip() for v in part.partition("-"))
        ids.update(f"{k:02d}" for k in range(int(first), int(last or first) + 1))
    return ids


def mosaic_ids(folder: str | Path) -> list[str]:
    """Slice ids of the ``mosaic_grid_3d_zNN.ome.zarr`` in a folder, in order."""
    return sorted(p.name[len("mosaic_grid_3d_z") : -len(".ome.zarr")] for p in Path(folder).glob("mosaic_grid_3d_z??.ome.zarr"))


def reconst_slices(config: Mapping[str, object]) -> list[str]:
    """Slice ids the reconstruction processes, in order.

    The mosaic grids in the input folder, less the slices the input slice
    table marks ``use = false`` (calibration, failed preprocessing), and only
    those of ``debug_slices`` when it is set.
    """
    from serialoct.errors import InputError
    from serialoct.io.tables import read_slice_config

    folder = Path(config["input"])
    ids = mosaic_ids(folder)
    if not ids:
        raise InputError(folder, "no mosaic_grid_3d_zNN.ome.zarr in this folder (run serialoct preproc first)")
    if config.get("slice_config"):
        unused = {r.slice_id for r in read_slice_config(config["slice_config"]) if not r.use}
        ids = [s for s in ids if s not in unused]
    wanted = parse_slice_ranges(config.get("debug_slices", ""))
    return [s for s in ids if s in wanted] if wanted else ids


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
        "pairs": [(a, b) for a, b in zip(slices, slices[1:]) if int(b) == int(a) + 1],
        "series": [stack_output(config), SLICE_CONFIG_FINAL] + (ANALYZE_SHIFTS_OUTPUTS if config["analyze_shifts"] else [])
        + ([final_volume(config)] if config["correct_bias_field"] else [])
        + (["export_manual_align/index.json"] if config["export_manual_align"] else [])
        + ([ras_output(config)] if config["align_to_ras_enabled"] else [])
        + ([report_output(config), "README/readme.txt"] if config["generate_report"] else [])
        + diagnostics_outputs(config, slices),
        # Every intermediate is a target too, so deleting one redoes it and what depends on it
        # (Snakemake would otherwise leave a missing intermediate alone while its consumers are up to date).
        "intermediates": [slice_output(step, s) for step in per_slice_chain(config)[:-1] for s in slices]
        + [pair_transform(b) for a, b in zip(slices, slices[1:]) if int(b) == int(a) + 1]
        + [COMMON_SPACE, INTERPOLATION_MANIFEST] + interpolation_manifest(config)
        + [f"{stage}/slice_config.csv" for stage, on in (("auto_assess_quality", config["auto_assess_quality"]),
           ("detect_rehoming_events", config["detect_rehoming"]), ("auto_exclude_slices", config["auto_exclude_enabled"])) if on],
    }


# --------------------------------------------------------------------------- reconstruction, the series

SLICE_CONFIG_FINAL = "finalise_interpolation/slice_config_final.csv"
INTERPOLATION_MANIFEST = "finalise_interpolation/interpolation_manifest.json"
COMMON_SPACE = "bring_to_common_space/common_space.json"
ANALYZE_SHIFTS_OUTPUTS = ["analyze_shifts/shifts_report.txt", "analyze_shifts/shifts_drift.png", "analyze_shifts/shifts_xy_filtered.csv"]


def subject_name(config: Mapping[str, object]) -> str:
    """``subject_name``, or the name of the input folder (its parent's when the folder is a generic name)."""
    if config.get("subject_name"):
        return str(config["subject_name"])
    folder = Path(str(config["input"])).resolve()
    generic = {"mosaics", "mosaic_grids", "output", "preproc", "pp", "out"}
    name = folder.parent.name if folder.name.lower() in generic and folder.parent.name else folder.name
    return name or "subject"


def stack_output(config: Mapping[str, object]) -> str:
    """``stack/{subject}.ome.zarr``."""
    return f"stack/{subject_name(config)}.ome.zarr"


def ras_output(config: Mapping[str, object]) -> str:
    """``align_to_ras/{subject}_ras.ome.zarr``."""
    return f"align_to_ras/{subject_name(config)}_ras.ome.zarr"


def diagnostic_on(config: Mapping[str, object], flag: str) -> bool:
    """A diagnostic runs when its own flag or ``diagnostic_mode`` is set."""
    return bool(config["diagnostic_mode"] or config[flag])


def diagnostics_outputs(config: Mapping[str, object], slices: list[str]) -> list[str]:
    """The diagnostics the configuration asks for (``diagnostics/``)."""
    out = []
    if diagnostic_on(config, "analyze_rotation_drift"):
        out.append("diagnostics/rotation_analysis/rotation_drift.json")
    if diagnostic_on(config, "analyze_acquisition_rotation"):
        out.append("diagnostics/acquisition_rotation/acquisition_rotation.json")
    if diagnostic_on(config, "motor_only_stitch"):
        out += [f"diagnostics/motor_only_stitch/slice_z{s}.ome.zarr" for s in slices]
    if diagnostic_on(config, "compare_stitching"):
        out += [f"diagnostics/stitch_comparison/slice_z{s}_seams.json" for s in slices]
    if diagnostic_on(config, "motor_only_stack"):
        out.append(f"diagnostics/motor_only_stack/{subject_name(config)}_motor_only.ome.zarr")
    return out


def manual_transforms(config: Mapping[str, object]) -> list[str]:
    """The hand-corrected transform files stacking reads (so that editing one reruns the stack)."""
    folder = config.get("manual_transforms_dir")
    return sorted(str(p) for p in Path(str(folder)).glob("slice_z??.json")) if folder else []


def report_output(config: Mapping[str, object]) -> str:
    """``{subject}_quality_report.html``, or ``.zip`` with ``report_format = zip`` (the HTML and its pictures)."""
    suffix = "zip" if config["report_format"] == "zip" else "html"
    return f"{subject_name(config)}_quality_report.{suffix}"


def report_inputs(config: Mapping[str, object]) -> list[str]:
    """What the report summarises: the run's last records (it reads every metrics file of the folder)."""
    inputs = ["stack/metrics.json", SLICE_CONFIG_FINAL]
    if config["analyze_shifts"]:
        inputs += ANALYZE_SHIFTS_OUTPUTS
    if config["correct_bias_field"]:
        inputs.append("correct_bias_field/metrics.json")
    if config["align_to_ras_enabled"]:
        inputs.append("align_to_ras/metrics.json")
    return inputs


def final_volume(config: Mapping[str, object]) -> str:
    """The volume the later steps read: the bias-corrected one when ``correct_bias_field``, else the stack."""
    return f"correct_bias_field/{subject_name(config)}_corrected.ome.zarr" if config["correct_bias_field"] else stack_output(config)


def slice_config_after(config: Mapping[str, object], stage: str) -> list[str]:
    """The slice table as it stands after ``stage`` (``[]`` = none given: every slice used).

    Stages in order: ``input``, ``auto_assess_quality``, ``detect_rehoming_events``,
    ``auto_exclude_slices``; a stage that is switched off passes the table on.
    """
    stages = (("auto_assess_quality", "auto_assess_quality"), ("detect_rehoming_events", "detect_rehoming"),
              ("auto_exclude_slices", "auto_exclude_enabled"))
    table = [str(config["slice_config"])] if config.get("slice_config") else []
    if stage == "input":
        return table
    for name, switch in stages:
        if config[switch]:
            table = [f"{name}/slice_config.csv"]
        if name == stage:
            return table
    raise ValueError(f"unknown slice-table stage {stage!r}")


def shifts_for_common_space(config: Mapping[str, object]) -> str:
    """The shifts the canvas is built from: cleaned by ``detect_rehoming_events`` when it runs."""
    return "detect_rehoming_events/shifts_xy_clean.csv" if config["detect_rehoming"] else str(config["shifts_xy"])


def pair_transform(moving: str) -> str:
    """``register_pairwise``'s transform of slice ``moving`` relative to the slice above it."""
    return f"register_pairwise/slice_z{moving}_transform.json"


def interpolation_manifest(config: Mapping[str, object]) -> list[str]:
    """``interpolate_missing_slice/manifest.json`` when interpolation is on."""
    return ["interpolate_missing_slice/manifest.json"] if config["interpolate_missing_slices"] else []


def global_transform_input(config: Mapping[str, object]) -> list[str]:
    """The pooled layout matrix the stitcher reads: ``[]`` unless ``stitch_global_transform`` is on."""
    return ["stitch_3d_with_refinement/global_transform.json"] if config["stitch_global_transform"] else []
