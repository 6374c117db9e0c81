"""Parameters of the preprocessing workflow (raw tiles -> mosaic grids).

Names, defaults and group order follow the reference guide's preprocessing
table, followed by the two CPU parameters of its "CPU Core Management"
section (preproc defaults: ``max_cpus = null``, ``reserved_cpus = 2``).
Descriptions are ours. To mark a parameter as honoured by serialoct, add its
name to :data:`IMPLEMENTED`.
"""

from __future__ import annotations

from serialoct.params.model import FRACTION, NON_NEGATIVE, POSITIVE, Bounds, Parameter, param

__all__ = ["GROUPS", "IMPLEMENTED", "STEPS"]

#: Steps of the workflow in pipeline order; ``workflow`` is the orchestration.
STEPS: tuple[str, ...] = (
    "workflow",
    "create_mosaic_grid",
    "estimate_xy_shifts",
    "generate_slice_config",
    "generate_aip",
    "preview_mosaic_grid",
)

#: Names of the parameters serialoct honours; every other one must stay at its default.
IMPLEMENTED: frozenset[str] = frozenset({
    "input", "output", "use_old_folder_structure", "use_gpu", "processes", "max_mosaic_forks", "max_aip_forks",
    "axial_resolution", "resolution", "sharding_factor", "fix_galvo_shift", "fix_camera_shift", "preprocess",
    "galvo_confidence_threshold", "generate_slice_config", "exclude_first_slices", "detect_galvo",
    "generate_previews", "generate_aips", "max_cpus", "reserved_cpus",
})

_AT_LEAST_1 = Bounds(low=1)
_GPU_STEPS = ("create_mosaic_grid", "generate_aip")

GROUPS: tuple[tuple[str, tuple[Parameter, ...]], ...] = (
    ("Input/Output", (
        param("input", None, "path", "workflow", required=True,
              description="Folder of the raw acquisition: one sub-folder of tiles per slice."),
        param("output", "output", "path", "workflow",
              "Folder that receives the mosaic grids, shifts_xy.csv and slice_config.csv."),
        param("use_old_folder_structure", False, "bool", ("create_mosaic_grid", "estimate_xy_shifts"),
              "Read the legacy layout where all tiles of all slices sit in one flat folder."),
    )),
    ("Compute resources", (
        param("use_gpu", True, "bool", _GPU_STEPS,
              "Run array work on the GPU when one is usable; otherwise fall back to the CPU."),
        param("processes", 1, "int", "create_mosaic_grid", bounds=_AT_LEAST_1,
              description="Tiles decoded in parallel (threads) inside one mosaic-grid job."),
        param("max_mosaic_forks", 4, "int", "create_mosaic_grid", bounds=_AT_LEAST_1,
              description="Most mosaic-grid assembly jobs allowed to run at the same time."),
        param("max_aip_forks", 4, "int", "generate_aip", bounds=_AT_LEAST_1,
              description="Most average-intensity-projection jobs allowed to run at the same time."),
    )),
    ("Mosaic grids", (
        param("axial_resolution", 1.36, "float", "create_mosaic_grid", bounds=POSITIVE,
              description="Depth sampling of the raw A-lines, in µm per pixel (the tiles do not record it: a run warns when "
                          "it makes the tiles shallower than the cut thickness of metadata.json)."),
        param("resolution", -1.0, "float", "create_mosaic_grid",
              bounds=POSITIVE, sentinels=(-1.0,),
              description="Lateral pixel size of the mosaic grids in µm; -1 keeps the native sampling."),
        param("sharding_factor", 4, "int", "create_mosaic_grid", bounds=_AT_LEAST_1,
              description="Chunks per zarr shard along each lateral axis (N x N chunks per shard)."),
        param("fix_galvo_shift", True, "bool", "create_mosaic_grid",
              "Detect and undo the galvanometer return-band shift inside each tile."),
        param("fix_camera_shift", False, "bool", "create_mosaic_grid",
              "Detect and undo a lateral shift of the camera line within a tile."),
        param("preprocess", False, "bool", "create_mosaic_grid",
              "Rotate and flip tiles into the current orientation (needed for legacy acquisitions)."),
        param("galvo_confidence_threshold", 0.6, "float", "create_mosaic_grid", bounds=FRACTION,
              description="Smallest galvo-detection confidence (0-1) at which the galvo fix is applied."),
    )),
    ("Slice config", (
        param("generate_slice_config", True, "bool", "generate_slice_config",
              "Write slice_config.csv, the per-slice table of which slices to use."),
        param("exclude_first_slices", 1, "int", "generate_slice_config", bounds=NON_NEGATIVE,
              description="How many leading slices slice_config.csv marks as not used."),
        param("detect_galvo", False, "bool", "generate_slice_config",
              "Add the galvo-detection outcome of each slice as columns of slice_config.csv."),
    )),
    ("Quality-control previews", (
        param("generate_previews", False, "bool", "preview_mosaic_grid",
              "Save orthogonal-view PNG previews of every mosaic grid."),
        param("generate_aips", False, "bool", "generate_aip",
              "Save an average intensity projection PNG of every mosaic grid."),
    )),
    ("CPU core management", (
        param("max_cpus", None, "int", "workflow", nullable=True, bounds=NON_NEGATIVE,
              description="Hard cap on the CPU cores all steps may use; null derives it from reserved_cpus."),
        param("reserved_cpus", 2, "int", "workflow", bounds=NON_NEGATIVE,
              description="Cores left free for the system when max_cpus is not set."),
    )),
)
