rule generate_aip:
    input:
        "mosaic_grid_3d_z{slice}.ome.zarr",
    output:
        "aips/aip_z{slice}.png",
    log:
        "logs/generate_aip/z{slice}.log",
    benchmark:
        "benchmarks/generate_aip/z{slice}.tsv"
    resources:
        aip_forks=1,
        mem_mb=memory_mb("generate_aip", config),
        runtime=runtime_min("generate_aip"),
        gpu=gpus("generate_aip", config),
    params:
        options=step_options(config, "generate_aip"),
    shell:
        "SERIALOCT_MAX_CPUS={threads} {SERIALOCT} step generate_aip --input {input:q} --output {output:q} {params.options} > {log:q} 2>&1"


rule preview_mosaic_grid:
    input:
        "mosaic_grid_3d_z{slice}.ome.zarr",
    output:
        "previews/mosaic_grid_z{slice}_preview.png",
    log:
        "logs/preview_mosaic_grid/z{slice}.log",
    benchmark:
        "benchmarks/preview_mosaic_grid/z{slice}.tsv"
    resources:
        mem_mb=memory_mb("preview_mosaic_grid", config),
        runtime=runtime_min("preview_mosaic_grid"),
    shell:
        "SERIALOCT_MAX_CPUS={threads} {SERIALOCT} step preview_mosaic_grid --input {input:q} --output {output:q} > {log:q} 2>&1"
