rule estimate_xy_shifts:
    output:
        csv="shifts_xy.csv",
        metrics="metrics/estimate_xy_shifts.json",
    log:
        "logs/estimate_xy_shifts.log",
    benchmark:
        "benchmarks/estimate_xy_shifts.tsv"
    resources:
        mem_mb=memory_mb("estimate_xy_shifts", config),
        runtime=runtime_min("estimate_xy_shifts"),
    params:
        options=step_options(config, "estimate_xy_shifts"),
        raw=raw_fingerprint(config),  # a changed tile header reruns the shifts
    shell:
        "SERIALOCT_MAX_CPUS={threads} {SERIALOCT} step estimate_xy_shifts --input {RAW:q} --output {output.csv:q} --metrics {output.metrics:q}"
        " {params.options} > {log:q} 2>&1"


rule generate_slice_config:
    input:
        metrics=expand("metrics/create_mosaic_grid_z{slice}.json", slice=TARGETS["slices"]),
        failures=[failure_record(s) for s in sorted(SKIP)],
    output:
        csv="slice_config.csv",
    log:
        "logs/generate_slice_config.log",
    benchmark:
        "benchmarks/generate_slice_config.tsv"
    resources:
        mem_mb=memory_mb("generate_slice_config", config),
        runtime=runtime_min("generate_slice_config"),
    params:
        options=step_options(config, "generate_slice_config"),
    shell:
        "SERIALOCT_MAX_CPUS={threads} {SERIALOCT} step generate_slice_config --input {RAW:q} --output {output.csv:q}"
        " --mosaic_metrics {input.metrics:q} --failures {input.failures:q} {params.options} > {log:q} 2>&1"
