"""CPU limits and the array backend (NumPy, or CuPy behind ``use_gpu``)."""

from serialoct.compute.backend import Backend, get_backend, to_numpy
from serialoct.compute.cpu import apply_cpu_limits, cpu_budget, thread_env

__all__ = ["Backend", "apply_cpu_limits", "cpu_budget", "get_backend", "thread_env", "to_numpy"]
