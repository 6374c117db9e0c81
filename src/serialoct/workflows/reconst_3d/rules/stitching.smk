rule estimate_global_transform:
    input:
        [slice_input(config, "stitch_3d_with_refinement", s) for s in TARGETS["slices"]],
    output:
        "stitch_3d_with_refinement/global_transform.json",
    log:
        "logs/estimate_global_transform.log",
    benchmark:
        "benchmarks/estimate_global_transform.tsv"
    resources:
        mem_mb=memory_mb("estimate_global_transform", config),
        runtime=runtime_min("estimate_global_transform"),
        gpu=gpus("estimate_global_transform", config),
    params:
        options=step_options(config, "estimate_global_transform"),
    shell:
        CAP + "{SERIALOCT} step estimate_global_transform --inputs {input:q} --output {output:q}"
        " {params.options} > {log:q} 2>&1"


rule stitch_3d_with_refinement:
    input:
        grid=lambda wc: slice_input(config, "stitch_3d_with_refinement", wc.slice),
        transform=global_transform_input(config),
    output:
        zarr=directory("stitch_3d_with_refinement/slice_z{slice}.ome.zarr"),
        metrics="stitch_3d_with_refinement/slice_z{slice}_metrics.json",
    log:
        "logs/stitch_3d_with_refinement/z{slice}.log",
    benchmark:
        "benchmarks/stitch_3d_with_refinement/z{slice}.tsv"
    resources:
        mem_mb=memory_mb("stitch_3d_with_refinement", config),
        runtime=runtime_min("stitch_3d_with_refinement"),
        gpu=gpus("stitch_3d_with_refinement", config),
    params:
        options=step_options(config, "stitch_3d_with_refinement"),
        transform=lambda wc, input: f"--global_transform {input.transform}" if input.transform else "",
        failure=lambda wc: failure_record(wc.slice),
    shell:
        CAP + "{SERIALOCT} step stitch_3d_with_refinement --input {input.grid:q} --output {output.zarr:q}"
        " --slice {wildcards.slice} --metrics {output.metrics:q} --failure_record {params.failure} {params.transform}"
        " {params.options} > {log:q} 2>&1"


rule preview_stitched_slice:
    input:
        "stitch_3d_with_refinement/slice_z{slice}.ome.zarr",
    output:
        "previews/stitched_slices/slice_z{slice}.png",
    log:
        "logs/preview_stitched_slice/z{slice}.log",
    benchmark:
        "benchmarks/preview_stitched_slice/z{slice}.tsv"
    resources:
        mem_mb=memory_mb("preview_stitched_slice", config),
        runtime=runtime_min("preview_stitched_slice"),
    params:
        options=step_options(config, "generate_aip"),
    shell:
        CAP + "{SERIALOCT} step generate_aip --input {input:q} --output {output:q} {params.options} > {log:q} 2>&1"
