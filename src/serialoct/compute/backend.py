"""One array namespace for CPU and GPU: NumPy/SciPy, or CuPy when asked and usable.

Algorithms take a :class:`Backend` and write ``xp.`` / ``ndi.`` code once, so the
GPU path is the same code the CPU tests run. Importing this module touches no GPU.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import ModuleType

__all__ = ["Backend", "get_backend", "gpu_problem", "to_numpy"]

log = logging.getLogger(__name__)
_warned = False


@dataclass(frozen=True)
class Backend:
    """An array module and its ``ndimage`` twin (imported on first use: SciPy costs 0.3 s to load)."""

    xp: ModuleType
    is_gpu: bool

    @property
    def name(self) -> str:
        return "cupy" if self.is_gpu else "numpy"

    @property
    def ndi(self) -> ModuleType:
        """``scipy.ndimage`` or ``cupyx.scipy.ndimage``."""
        if self.is_gpu:
            import cupyx.scipy.ndimage as ndi
        else:
            import scipy.ndimage as ndi
        return ndi

    def asarray(self, array):
        """Move an array onto this backend's device."""
        return self.xp.asarray(array)


def _cpu() -> Backend:
    import numpy

    return Backend(numpy, is_gpu=False)


def _gpu_or_reason() -> Backend | str:
    try:
        import cupy
    except ImportError as exc:
        return f"CuPy is not installed ({exc.name}); install serialoct[gpu]"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "no CUDA device found"
    except Exception as exc:  # CUDA driver errors come in several types
        return f"CUDA is not usable ({exc})"
    return Backend(cupy, is_gpu=True)


def gpu_problem() -> str | None:
    """Why ``use_gpu`` would fall back to the CPU in this environment, or None when a GPU is usable."""
    found = _gpu_or_reason()
    return None if isinstance(found, Backend) else found


def get_backend(use_gpu: bool) -> Backend:
    """NumPy, or CuPy when ``use_gpu`` and a GPU is usable.

    Falling back to the CPU is logged once per process as a warning with the
    reason, never raised.
    """
    global _warned
    if not use_gpu:
        return _cpu()
    found = _gpu_or_reason()
    if isinstance(found, Backend):
        return found
    if not _warned:
        log.warning("use_gpu is set but %s: running on CPU", found)
        _warned = True
    return _cpu()


def to_numpy(array):
    """A NumPy array from a NumPy or CuPy array."""
    get = getattr(array, "get", None)
    return get() if callable(get) else array
