# Stacking: auto-exclusion, the final slice table, the volume and its pyramid.


rule auto_exclude_slices:
    input:
        transforms=[pair_transform(b) for _, b in TARGETS["pairs"]],
        table=slice_config_after(config, "detect_rehoming_events"),
    output:
        table="auto_exclude_slices/slice_config.csv",
        metrics="auto_exclude_slices/metrics.json",
    log:
        "logs/auto_exclude_slices.log",
    benchmark:
        "benchmarks/auto_exclude_slices.tsv"
    resources:
        mem_mb=memory_mb("auto_exclude_slices", config),
        runtime=runtime_min("auto_exclude_slices"),
    params:
        options=step_options(config, "auto_exclude_slices"),
        table=lambda wc, input: _table(input.table),
        slices=TARGETS["slices"],
    shell:
        CAP + "{SERIALOCT} step auto_exclude_slices --transforms {input.transforms:q} {params.table} --slices {params.slices}"
        " --output {output.table:q} --metrics {output.metrics:q} {params.options} > {log:q} 2>&1"


rule finalise_interpolation:
    input:
        slices=TARGETS["normalized"],
        manifest=interpolation_manifest(config),
        table=slice_config_after(config, "auto_exclude_slices"),
    output:
        table=SLICE_CONFIG_FINAL,
        manifest=INTERPOLATION_MANIFEST,
        metrics="finalise_interpolation/metrics.json",
    log:
        "logs/finalise_interpolation.log",
    benchmark:
        "benchmarks/finalise_interpolation.tsv"
    resources:
        mem_mb=memory_mb("finalise_interpolation", config),
        runtime=runtime_min("finalise_interpolation"),
    params:
        options=step_options(config, "finalise_interpolation"),
        table=lambda wc, input: _table(input.table),
        manifest=lambda wc, input: f"--manifest {input.manifest}" if input.manifest else "",
        failures=" ".join(failure_record(s) for s in sorted(SKIP)),
    shell:
        CAP + "{SERIALOCT} step finalise_interpolation --inputs {input.slices:q} {params.manifest} {params.table}"
        " --failures {params.failures} --output {output.table:q} --metrics {output.metrics:q} {params.options} > {log:q} 2>&1"


rule stack:
    input:
        slices=TARGETS["normalized"],
        space=COMMON_SPACE,
        table=SLICE_CONFIG_FINAL,
        manifest=INTERPOLATION_MANIFEST,
        transforms=[pair_transform(b) for _, b in TARGETS["pairs"]],
        manual=manual_transforms(config),
    output:
        zarr=directory(stack_output(config)),
        metrics="stack/metrics.json",
    log:
        "logs/stack.log",
    benchmark:
        "benchmarks/stack.tsv"
    threads: config["processes"]
    resources:
        mem_mb=memory_mb("stack", config),
        runtime=runtime_min("stack"),
    params:
        options=step_options(config, "stack"),
    shell:
        CAP + "{SERIALOCT} step stack --inputs {input.slices:q} --common_space {input.space:q} --slice_config {input.table:q}"
        " --interpolation {input.manifest:q} --transforms {input.transforms:q} --output {output.zarr:q} --metrics {output.metrics:q}"
        " {params.options} > {log:q} 2>&1"


rule correct_bias_field:
    input:
        stack_output(config),
    output:
        zarr=directory(f"correct_bias_field/{subject_name(config)}_corrected.ome.zarr"),
        metrics="correct_bias_field/metrics.json",
    log:
        "logs/correct_bias_field.log",
    benchmark:
        "benchmarks/correct_bias_field.tsv"
    threads: config["processes"]
    resources:
        mem_mb=memory_mb("correct_bias_field", config),
        runtime=runtime_min("correct_bias_field"),
    params:
        options=step_options(config, "correct_bias_field"),
    shell:
        CAP + "{SERIALOCT} step correct_bias_field --input {input:q} --output {output.zarr:q} --metrics {output.metrics:q}"
        " {params.options} > {log:q} 2>&1"


rule align_to_ras:
    input:
        final_volume(config),
    output:
        zarr=directory(ras_output(config)),
        metrics="align_to_ras/metrics.json",
    log:
        "logs/align_to_ras.log",
    benchmark:
        "benchmarks/align_to_ras.tsv"
    threads: config["processes"]
    resources:
        mem_mb=memory_mb("align_to_ras", config),
        runtime=runtime_min("align_to_ras"),
    params:
        options=step_options(config, "align_to_ras"),
    shell:
        CAP + "{SERIALOCT} step align_to_ras --input {input:q} --output {output.zarr:q} --metrics {output.metrics:q}"
        " {params.options} > {log:q} 2>&1"


rule generate_report:
    input:
        report_inputs(config),
    output:
        report=report_output(config),
        readme="README/readme.txt",
        metrics="generate_report/metrics.json",
    log:
        "logs/generate_report.log",
    benchmark:
        "benchmarks/generate_report.tsv"
    resources:
        mem_mb=memory_mb("generate_report", config),
        runtime=runtime_min("generate_report"),
    params:
        options=step_options(config, "generate_report"),
        html=lambda wc, output: str(output.report).removesuffix(".zip") + (".html" if str(output.report).endswith(".zip") else ""),
    shell:
        CAP + "{SERIALOCT} step generate_report --run_dir . --output {params.html:q} --readme {output.readme:q}"
        " --metrics {output.metrics:q} {params.options} > {log:q} 2>&1"
