"""Claims about CPU limits and the array backend."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from serialoct.compute import cpu_budget, get_backend, thread_env, to_numpy
from serialoct.compute import backend as backend_module
from serialoct.errors import ParameterError


def test_explicit_cap_takes_precedence_over_reserve():
    assert cpu_budget(max_cpus=4, reserved_cpus=10, available=16) == 4


def test_reserve_is_subtracted_when_no_cap():
    assert cpu_budget(max_cpus=0, reserved_cpus=4, available=16) == 12


def test_budget_is_at_least_one_and_at_most_available():
    assert cpu_budget(max_cpus=0, reserved_cpus=40, available=2) == 1
    assert cpu_budget(max_cpus=64, available=2) == 2


def test_environment_variables_set_the_budget():
    env = {"SERIALOCT_MAX_CPUS": "", "SERIALOCT_RESERVED_CPUS": "1"}
    assert cpu_budget(environ=env, available=8) == 7
    assert cpu_budget(environ={"SERIALOCT_MAX_CPUS": "3"}, available=8) == 3


def test_bad_environment_value_is_named():
    with pytest.raises(ParameterError, match="SERIALOCT_MAX_CPUS='lots'"):
        cpu_budget(environ={"SERIALOCT_MAX_CPUS": "lots"}, available=8)


def test_thread_env_covers_blas_openmp_and_itk():
    env = thread_env(3)
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == env["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] == "3"


def test_apply_cpu_limits_caps_loaded_blas_pools():
    code = (
        "import numpy, threadpoolctl\n"
        "from serialoct.compute import apply_cpu_limits\n"
        "apply_cpu_limits()\n"
        "print(max(p['num_threads'] for p in threadpoolctl.threadpool_info()))\n"
    )
    env = {**os.environ, "SERIALOCT_MAX_CPUS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


def test_apply_cpu_limits_caps_zarr_codec_threads_even_after_zarr_started_its_pool(tmp_path):
    code = (
        "import sys, threading, numpy, zarr\n"
        "from serialoct.compute import apply_cpu_limits\n"
        "zarr.config.set({'threading.max_workers': 4})\n"
        "a = zarr.create_array(store=sys.argv[1], shape=(64, 64), chunks=(8, 8), dtype='f4')\n"
        "a[:] = numpy.ones((64, 64), 'f4')  # zarr's pool starts with 4 threads\n"
        "apply_cpu_limits(1)\n"
        "for _ in range(5):\n"
        "    a[:] = a[:] + 1\n"
        "print(sum(t.name.startswith('zarr_pool') for t in threading.enumerate()), float(a[0, 0]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "a.zarr")], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "6.0"]


def test_cpu_backend_is_numpy_and_to_numpy_is_identity():
    backend = get_backend(use_gpu=False)
    assert backend.xp is np and not backend.is_gpu
    a = np.arange(3)
    assert to_numpy(a) is a


def test_gpu_request_without_cupy_falls_back_with_one_warning(monkeypatch, caplog):
    monkeypatch.setattr(backend_module, "_warned", False)
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes "import cupy" fail
    with caplog.at_level(logging.WARNING, logger="serialoct.compute.backend"):
        first = get_backend(use_gpu=True)
        second = get_backend(use_gpu=True)
    assert first.xp is np and second.xp is np
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "running on CPU" in warnings[0].getMessage()


def test_a_local_run_asking_for_the_gpu_without_one_says_so_before_any_job(monkeypatch, sample_acquisition, tmp_path, capsys):
    from serialoct.cli import main

    monkeypatch.setitem(sys.modules, "cupy", None)
    assert main(["preproc", "--input", str(sample_acquisition), "--output", str(tmp_path / "out"), "--use_gpu", "true",
                 "--dry-run"]) == 0
    captured = capsys.readouterr()
    said = "warning: use_gpu is set but CuPy is not installed (cupy); install serialoct[gpu]: every step runs on the CPU"
    assert said in captured.err.splitlines() and f"  {said}" in captured.out.splitlines()
    assert main(["preproc", "--input", str(sample_acquisition), "--output", str(tmp_path / "out"), "--dry-run"]) == 0
    assert "use_gpu" not in capsys.readouterr().err
