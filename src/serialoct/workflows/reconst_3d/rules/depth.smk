rule beam_profile_correction:
    input:
        lambda wc: slice_input(config, "beam_profile_correction", wc.slice),
    output:
        zarr=directory("beam_profile_correction/slice_z{slice}.ome.zarr"),
        metrics="beam_profile_correction/slice_z{slice}_metrics.json",
    log:
        "logs/beam_profile_correction/z{slice}.log",
    benchmark:
        "benchmarks/beam_profile_correction/z{slice}.tsv"
    resources:
        mem_mb=memory_mb("beam_profile_correction", config),
        runtime=runtime_min("beam_profile_correction"),
        gpu=gpus("beam_profile_correction", config),
    params:
        options=step_options(config, "beam_profile_correction"),
        failure=lambda wc: failure_record(wc.slice),
    shell:
        SLICE_STEP


rule crop_interface:
    input:
        lambda wc: slice_input(config, "crop_interface", wc.slice),
    output:
        zarr=directory("crop_interface/slice_z{slice}.ome.zarr"),
        metrics="crop_interface/slice_z{slice}_metrics.json",
    log:
        "logs/crop_interface/z{slice}.log",
    benchmark:
        "benchmarks/crop_interface/z{slice}.tsv"
    resources:
        mem_mb=memory_mb("crop_interface", config),
        runtime=runtime_min("crop_interface"),
        gpu=gpus("crop_interface", config),
    params:
        options=step_options(config, "crop_interface"),
        failure=lambda wc: failure_record(wc.slice),
    shell:
        SLICE_STEP


rule compensate_attenuation:
    input:
        lambda wc: slice_input(config, "compensate_attenuation", wc.slice),
    output:
        zarr=directory("compensate_attenuation/slice_z{slice}.ome.zarr"),
        metrics="compensate_attenuation/slice_z{slice}_metrics.json",
    log:
        "logs/compensate_attenuation/z{slice}.log",
    benchmark:
        "benchmarks/compensate_attenuation/z{slice}.tsv"
    resources:
        mem_mb=memory_mb("compensate_attenuation", config),
        runtime=runtime_min("compensate_attenuation"),
        gpu=gpus("compensate_attenuation", config),
    params:
        options=step_options(config, "compensate_attenuation"),
        failure=lambda wc: failure_record(wc.slice),
    shell:
        SLICE_STEP


rule normalize:
    input:
        lambda wc: slice_input(config, "normalize", wc.slice),
    output:
        zarr=directory("normalize/slice_z{slice}.ome.zarr"),
        metrics="normalize/slice_z{slice}_metrics.json",
    log:
        "logs/normalize/z{slice}.log",
    benchmark:
        "benchmarks/normalize/z{slice}.tsv"
    resources:
        mem_mb=memory_mb("normalize", config),
        runtime=runtime_min("normalize"),
        gpu=gpus("normalize", config),
    params:
        options=step_options(config, "normalize"),
        failure=lambda wc: failure_record(wc.slice),
    shell:
        SLICE_STEP
