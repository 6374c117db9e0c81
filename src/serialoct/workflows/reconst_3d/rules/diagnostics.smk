# Diagnostics (diagnostic_mode or each flag): rotation analyses, motor-only stitch and stack, stitching comparison.


rule analyze_rotation_drift:
    input:
        transforms=[pair_transform(b) for _, b in TARGETS["pairs"]],
        stack="stack/metrics.json",
    output:
        report="diagnostics/rotation_analysis/rotation_drift.json",
        metrics="diagnostics/rotation_analysis/metrics.json",
    log:
        "logs/analyze_rotation_drift.log",
    benchmark:
        "benchmarks/analyze_rotation_drift.tsv"
    resources:
        mem_mb=memory_mb("analyze_rotation_drift", config),
        runtime=runtime_min("analyze_rotation_drift"),
    params:
        options=step_options(config, "analyze_rotation_drift"),
    shell:
        CAP + "{SERIALOCT} step analyze_rotation_drift --transforms {input.transforms:q} --stack_metrics {input.stack:q}"
        " --output_dir diagnostics/rotation_analysis --metrics {output.metrics:q} {params.options} > {log:q} 2>&1"


rule analyze_acquisition_rotation:
    input:
        shifts=shifts_for_common_space(config),
        space=COMMON_SPACE,
        transforms=[pair_transform(b) for _, b in TARGETS["pairs"]],
    output:
        report="diagnostics/acquisition_rotation/acquisition_rotation.json",
        metrics="diagnostics/acquisition_rotation/metrics.json",
    log:
        "logs/analyze_acquisition_rotation.log",
    benchmark:
        "benchmarks/analyze_acquisition_rotation.tsv"
    resources:
        mem_mb=memory_mb("analyze_acquisition_rotation", config),
        runtime=runtime_min("analyze_acquisition_rotation"),
    params:
        options=step_options(config, "analyze_acquisition_rotation"),
    shell:
        CAP + "{SERIALOCT} step analyze_acquisition_rotation --shifts_xy {input.shifts:q} --common_space {input.space:q}"
        " --transforms {input.transforms:q} --output_dir diagnostics/acquisition_rotation --metrics {output.metrics:q}"
        " {params.options} > {log:q} 2>&1"


rule stitch_motor_only:
    input:
        lambda wc: slice_input(config, "stitch_3d_with_refinement", wc.slice),
    output:
        zarr=directory("diagnostics/motor_only_stitch/slice_z{slice}.ome.zarr"),
        metrics="diagnostics/motor_only_stitch/slice_z{slice}_metrics.json",
    log:
        "logs/stitch_motor_only/z{slice}.log",
    benchmark:
        "benchmarks/stitch_motor_only/z{slice}.tsv"
    resources:
        mem_mb=memory_mb("stitch_motor_only", config),
        runtime=runtime_min("stitch_motor_only"),
        gpu=gpus("stitch_motor_only", config),
    params:
        options=step_options(config, "stitch_motor_only"),
    shell:
        CAP + "{SERIALOCT} step stitch_motor_only --input {input:q} --output {output.zarr:q} --slice {wildcards.slice}"
        " --metrics {output.metrics:q} {params.options} > {log:q} 2>&1"


rule compare_stitching:
    input:
        motor="diagnostics/motor_only_stitch/slice_z{slice}.ome.zarr",
        refined="stitch_3d_with_refinement/slice_z{slice}.ome.zarr",
    output:
        seams="diagnostics/stitch_comparison/slice_z{slice}_seams.json",
        metrics="diagnostics/stitch_comparison/slice_z{slice}_metrics.json",
    log:
        "logs/compare_stitching/z{slice}.log",
    benchmark:
        "benchmarks/compare_stitching/z{slice}.tsv"
    resources:
        mem_mb=memory_mb("compare_stitching", config),
        runtime=runtime_min("compare_stitching"),
    params:
        options=step_options(config, "compare_stitching"),
    shell:
        CAP + "{SERIALOCT} step compare_stitching --motor_only {input.motor:q} --refined {input.refined:q} --slice {wildcards.slice}"
        " --output_dir diagnostics/stitch_comparison --metrics {output.metrics:q} {params.options} > {log:q} 2>&1"


rule stack_motor_only:
    input:
        slices=TARGETS["normalized"],
        space=COMMON_SPACE,
        table=SLICE_CONFIG_FINAL,
    output:
        zarr=directory(f"diagnostics/motor_only_stack/{subject_name(config)}_motor_only.ome.zarr"),
        metrics="diagnostics/motor_only_stack/metrics.json",
    log:
        "logs/stack_motor_only.log",
    benchmark:
        "benchmarks/stack_motor_only.tsv"
    threads: config["processes"]
    resources:
        mem_mb=memory_mb("stack_motor_only", config),
        runtime=runtime_min("stack_motor_only"),
    params:
        options=step_options(config, "stack_motor_only"),
    shell:
        CAP + "{SERIALOCT} step stack_motor_only --inputs {input.slices:q} --common_space {input.space:q} --slice_config {input.table:q}"
        " --output {output.zarr:q} --metrics {output.metrics:q} {params.options} > {log:q} 2>&1"
