rule create_mosaic_grid:
    output:
        zarr=directory("mosaic_grid_3d_z{slice}.ome.zarr"),
        metrics="metrics/create_mosaic_grid_z{slice}.json",
    log:
        "logs/create_mosaic_grid/z{slice}.log",
    benchmark:
        "benchmarks/create_mosaic_grid/z{slice}.tsv"
    threads: config["processes"]
    resources:
        mosaic_forks=1,
        mem_mb=memory_mb("create_mosaic_grid", config),
        runtime=runtime_min("create_mosaic_grid"),
        gpu=gpus("create_mosaic_grid", config),
    params:
        options=step_options(config, "create_mosaic_grid"),
        failure=lambda wc: failure_record(wc.slice),
        raw=lambda wc: raw_fingerprint(config, wc.slice),  # a changed tile reruns its slice
    shell:
        "SERIALOCT_MAX_CPUS={threads} {SERIALOCT} step create_mosaic_grid --input {RAW:q} --slice {wildcards.slice}"
        " --output {output.zarr:q} --metrics {output.metrics:q} --failure_record {params.failure}"
        " {params.options} > {log:q} 2>&1"
