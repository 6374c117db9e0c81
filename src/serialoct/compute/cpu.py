"""How many cores a step may use, and making every thread pool obey it.

``SERIALOCT_MAX_CPUS`` (an explicit cap; 0 or empty = none) takes precedence
over ``SERIALOCT_RESERVED_CPUS`` (cores left free for the system), as the
reference pipeline's ``max_cpus`` / ``reserved_cpus`` do. The cap reaches
BLAS/OpenMP (environment for libraries not yet loaded, threadpoolctl for
loaded ones), SimpleITK, dask, torch and zarr (whose codecs compress and
decompress chunks in a thread pool of its own).
"""

from __future__ import annotations

import logging
import os
import sys

from serialoct.errors import ParameterError

__all__ = ["available_cpus", "cpu_budget", "thread_env", "apply_cpu_limits"]

log = logging.getLogger(__name__)

MAX_ENV = "SERIALOCT_MAX_CPUS"
RESERVED_ENV = "SERIALOCT_RESERVED_CPUS"
_THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS",
)


def available_cpus() -> int:
    """Cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _env_int(environ, name: str) -> int | None:
    text = environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = int(float(text))
    except ValueError:
        raise ParameterError(f"{name}={text!r} is not a whole number of CPUs") from None
    if value < 0:
        raise ParameterError(f"{name}={text!r} must not be negative")
    return value


def cpu_budget(max_cpus: int | None = None, reserved_cpus: int | None = None, *, environ=None, available: int | None = None) -> int:
    """The number of cores a step may use.

    Parameters
    ----------
    max_cpus : int, optional
        Explicit cap (0 = no cap). Defaults to ``$SERIALOCT_MAX_CPUS``.
    reserved_cpus : int, optional
        Cores to leave free when no cap is set. Defaults to ``$SERIALOCT_RESERVED_CPUS``, else 0.
    available : int, optional
        Cores on the machine (defaults to :func:`available_cpus`).

    Returns
    -------
    int
        At least 1, at most ``available``.
    """
    environ = os.environ if environ is None else environ
    available = available_cpus() if available is None else available
    max_cpus = _env_int(environ, MAX_ENV) if max_cpus is None else max_cpus
    reserved_cpus = _env_int(environ, RESERVED_ENV) if reserved_cpus is None else reserved_cpus
    if max_cpus:
        return max(1, min(max_cpus, available))
    return max(1, available - (reserved_cpus or 0))


def thread_env(n_threads: int) -> dict[str, str]:
    """Environment variables that cap the thread pools of libraries loaded later."""
    return {name: str(n_threads) for name in _THREAD_VARS}


def apply_cpu_limits(n_threads: int | None = None) -> int:
    """Cap every thread pool of this process at ``n_threads`` (default: :func:`cpu_budget`).

    Sets the environment for libraries loaded later and, for libraries already
    imported, their own controls (threadpoolctl for BLAS/OpenMP, SimpleITK,
    torch, dask, zarr's codec threads). Returns the cap.
    """
    n = cpu_budget() if n_threads is None else max(1, int(n_threads))
    os.environ.update(thread_env(n))
    if "numpy" in sys.modules or "scipy" in sys.modules:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=n)
    if "SimpleITK" in sys.modules:
        sys.modules["SimpleITK"].ProcessObject.SetGlobalDefaultNumberOfThreads(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    if "dask" in sys.modules:
        import dask

        dask.config.set(num_workers=n, scheduler="threads")
    _cap_zarr_threads(n)
    log.debug("thread pools capped at %d", n)
    return n


def _cap_zarr_threads(n: int) -> None:
    """zarr 3 runs codecs in its IO loop's executor, by default ``cpu_count + 4`` threads: cap it at ``n``."""
    import zarr

    zarr.config.set({"threading.max_workers": n})
    from zarr.core import sync

    executor = getattr(sync, "_executor", None)
    if executor is not None and executor._max_workers != n:
        sync.cleanup_resources()  # the next read or write starts a loop with an executor of n threads
