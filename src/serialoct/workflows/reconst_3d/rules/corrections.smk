rule resample_mosaic_grid:
    input:
        lambda wc: slice_input(config, "resample_mosaic_grid", wc.slice),
    output:
        zarr=directory("resample_mosaic_grid/slice_z{slice}.ome.zarr"),
        metrics="resample_mosaic_grid/slice_z{slice}_metrics.json",
    log:
        "logs/resample_mosaic_grid/z{slice}.log",
    benchmark:
        "benchmarks/resample_mosaic_grid/z{slice}.tsv"
    threads: PER_SLICE_THREADS
    resources:
        mem_mb=memory_mb("resample_mosaic_grid", config),
        runtime=runtime_min("resample_mosaic_grid"),
        gpu=gpus("resample_mosaic_grid", config),
    params:
        options=step_options(config, "resample_mosaic_grid"),
        failure=lambda wc: failure_record(wc.slice),
    shell:
        SLICE_STEP


rule fix_focal_curvature:
    input:
        lambda wc: slice_input(config, "fix_focal_curvature", wc.slice),
    output:
        zarr=directory("fix_focal_curvature/slice_z{slice}.ome.zarr"),
        metrics="fix_focal_curvature/slice_z{slice}_metrics.json",
    log:
        "logs/fix_focal_curvature/z{slice}.log",
    benchmark:
        "benchmarks/fix_focal_curvature/z{slice}.tsv"
    threads: PER_SLICE_THREADS
    resources:
        mem_mb=memory_mb("fix_focal_curvature", config),
        runtime=runtime_min("fix_focal_curvature"),
        gpu=gpus("fix_focal_curvature", config),
    params:
        options=step_options(config, "fix_focal_curvature"),
        failure=lambda wc: failure_record(wc.slice),
    shell:
        SLICE_STEP


rule fix_illumination:
    input:
        lambda wc: slice_input(config, "fix_illumination", wc.slice),
    output:
        zarr=directory("fix_illumination/slice_z{slice}.ome.zarr"),
        metrics="fix_illumination/slice_z{slice}_metrics.json",
    log:
        "logs/fix_illumination/z{slice}.log",
    benchmark:
        "benchmarks/fix_illumination/z{slice}.tsv"
    threads: PER_SLICE_THREADS
    resources:
        mem_mb=memory_mb("fix_illumination", config),
        runtime=runtime_min("fix_illumination"),
        gpu=gpus("fix_illumination", config),
    params:
        options=step_options(config, "fix_illumination"),
        failure=lambda wc: failure_record(wc.slice),
    shell:
        SLICE_STEP
