# Slice alignment: shifts analysis, quality, re-homing, common space, pairwise registration, interpolation.
# A slice table given as an empty list means "none yet: every slice used".


def _table(paths):
    return f"--slice_config {shlex.quote(paths[0])}" if paths else ""


rule analyze_shifts:
    input:
        config["shifts_xy"],
    output:
        report="analyze_shifts/shifts_report.txt",
        plot="analyze_shifts/shifts_drift.png",
        filtered="analyze_shifts/shifts_xy_filtered.csv",
        metrics="analyze_shifts/metrics.json",
    log:
        "logs/analyze_shifts.log",
    benchmark:
        "benchmarks/analyze_shifts.tsv"
    resources:
        mem_mb=memory_mb("analyze_shifts", config),
        runtime=runtime_min("analyze_shifts"),
    params:
        options=step_options(config, "analyze_shifts"),
    shell:
        CAP + "{SERIALOCT} step analyze_shifts --shifts_xy {input:q} --output_dir analyze_shifts --metrics {output.metrics:q}"
        " {params.options} > {log:q} 2>&1"


rule auto_assess_quality:
    input:
        slices=TARGETS["normalized"],
        table=slice_config_after(config, "input"),
    output:
        table="auto_assess_quality/slice_config.csv",
        metrics="auto_assess_quality/metrics.json",
    log:
        "logs/auto_assess_quality.log",
    benchmark:
        "benchmarks/auto_assess_quality.tsv"
    resources:
        mem_mb=memory_mb("auto_assess_quality", config),
        runtime=runtime_min("auto_assess_quality"),
    params:
        options=step_options(config, "auto_assess_quality"),
        table=lambda wc, input: _table(input.table),
    shell:
        CAP + "{SERIALOCT} step auto_assess_quality --inputs {input.slices:q} {params.table} --output {output.table:q}"
        " --metrics {output.metrics:q} {params.options} > {log:q} 2>&1"


rule detect_rehoming_events:
    input:
        shifts=config["shifts_xy"],
        table=slice_config_after(config, "auto_assess_quality"),
    output:
        shifts="detect_rehoming_events/shifts_xy_clean.csv",
        table="detect_rehoming_events/slice_config.csv",
        metrics="detect_rehoming_events/metrics.json",
    log:
        "logs/detect_rehoming_events.log",
    benchmark:
        "benchmarks/detect_rehoming_events.tsv"
    resources:
        mem_mb=memory_mb("detect_rehoming_events", config),
        runtime=runtime_min("detect_rehoming_events"),
    params:
        options=step_options(config, "detect_rehoming_events"),
        table=lambda wc, input: _table(input.table),
    shell:
        CAP + "{SERIALOCT} step detect_rehoming_events --shifts_xy {input.shifts:q} {params.table}"
        " --output_dir detect_rehoming_events --metrics {output.metrics:q} {params.options} > {log:q} 2>&1"


rule bring_to_common_space:
    input:
        slices=TARGETS["normalized"],
        shifts=shifts_for_common_space(config),
        table=slice_config_after(config, "detect_rehoming_events"),
    output:
        space=COMMON_SPACE,
        metrics="bring_to_common_space/metrics.json",
    log:
        "logs/bring_to_common_space.log",
    benchmark:
        "benchmarks/bring_to_common_space.tsv"
    resources:
        mem_mb=memory_mb("bring_to_common_space", config),
        runtime=runtime_min("bring_to_common_space"),
    params:
        options=step_options(config, "bring_to_common_space"),
        table=lambda wc, input: _table(input.table),
    shell:
        CAP + "{SERIALOCT} step bring_to_common_space --inputs {input.slices:q} --shifts_xy {input.shifts:q} {params.table}"
        " --output {output.space:q} --preview_dir common_space_previews --metrics {output.metrics:q} {params.options} > {log:q} 2>&1"


rule register_pairwise:
    input:
        fixed=lambda wc: f"normalize/slice_z{int(wc.slice) - 1:02d}.ome.zarr",
        moving="normalize/slice_z{slice}.ome.zarr",
        space=COMMON_SPACE,
    output:
        transform="register_pairwise/slice_z{slice}_transform.json",
        metrics="register_pairwise/slice_z{slice}_metrics.json",
    log:
        "logs/register_pairwise/z{slice}.log",
    benchmark:
        "benchmarks/register_pairwise/z{slice}.tsv"
    threads: PER_SLICE_THREADS
    resources:
        mem_mb=memory_mb("register_pairwise", config),
        runtime=runtime_min("register_pairwise"),
    params:
        options=step_options(config, "register_pairwise"),
    shell:
        CAP + "{SERIALOCT} step register_pairwise --fixed {input.fixed:q} --moving {input.moving:q} --common_space {input.space:q}"
        " --output {output.transform:q} --metrics {output.metrics:q} {params.options} > {log:q} 2>&1"


rule interpolate_missing_slice:
    input:
        slices=TARGETS["normalized"],
        space=COMMON_SPACE,
        table=slice_config_after(config, "detect_rehoming_events"),
    output:
        manifest="interpolate_missing_slice/manifest.json",
        metrics="interpolate_missing_slice/metrics.json",
    log:
        "logs/interpolate_missing_slice.log",
    benchmark:
        "benchmarks/interpolate_missing_slice.tsv"
    threads: config["processes"]
    resources:
        mem_mb=memory_mb("interpolate_missing_slice", config),
        runtime=runtime_min("interpolate_missing_slice"),
    params:
        options=step_options(config, "interpolate_missing_slice"),
        table=lambda wc, input: _table(input.table),
    shell:
        CAP + "{SERIALOCT} step interpolate_missing_slice --inputs {input.slices:q} --common_space {input.space:q} {params.table}"
        " --output {output.manifest:q} --metrics {output.metrics:q} {params.options} > {log:q} 2>&1"


rule export_manual_align:
    input:
        slices=TARGETS["normalized"],
        space=COMMON_SPACE,
        transforms=[pair_transform(b) for _, b in TARGETS["pairs"]],
    output:
        index="export_manual_align/index.json",
        metrics="export_manual_align/metrics.json",
    log:
        "logs/export_manual_align.log",
    benchmark:
        "benchmarks/export_manual_align.tsv"
    resources:
        mem_mb=memory_mb("export_manual_align", config),
        runtime=runtime_min("export_manual_align"),
    params:
        options=step_options(config, "export_manual_align"),
    shell:
        CAP + "{SERIALOCT} step export_manual_align --inputs {input.slices:q} --common_space {input.space:q}"
        " --transforms {input.transforms:q} --output_dir export_manual_align --metrics {output.metrics:q} {params.options} > {log:q} 2>&1"
