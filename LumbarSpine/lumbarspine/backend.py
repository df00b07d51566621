"""Array backend selection: CuPy on a working CUDA device, NumPy/SciPy otherwise.

One switch decides where the filters run:

* ``"auto"`` (default) picks CuPy when it imports *and* a tiny allocation plus a kernel launch
  succeed on device 0, and NumPy otherwise. On a machine with CuPy installed but no working driver,
  ``import cupy`` succeeds and the first allocation raises ``cudaErrorInsufficientDriver``; ``auto``
  catches that and falls back with one message.
* ``"cupy"`` insists on the GPU and raises :class:`BackendUnavailableError` (with the reason) when
  the device cannot be used.
* ``"numpy"`` always uses the CPU.

The choice comes from the ``backend`` argument, else the ``LUMBARSPINE_BACKEND`` environment
variable, else ``"auto"``. The selected :class:`Backend` is returned to the caller (no module-level
state is kept), and it says what it picked and why in :attr:`Backend.reason`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

__all__ = [
    "BACKEND_ENV_VAR",
    "BACKEND_CHOICES",
    "Backend",
    "BackendUnavailableError",
    "select_backend",
    "is_out_of_memory",
    "to_host",
    "run_with_cpu_fallback",
]

log = logging.getLogger("lumbarspine")

BACKEND_ENV_VAR = "LUMBARSPINE_BACKEND"
BACKEND_CHOICES = ("auto", "cupy", "numpy")

T = TypeVar("T")


class BackendUnavailableError(RuntimeError):
    """The requested backend cannot run here (for example ``cupy`` without a working CUDA device)."""


@dataclass(frozen=True)
class Backend:
    """The array library a computation runs on.

    Attributes:
        name: ``"cupy"`` or ``"numpy"``.
        xp: the array module (``cupy`` or ``numpy``).
        ndimage: ``cupyx.scipy.ndimage`` or ``scipy.ndimage``.
        reason: one human-readable sentence saying why this backend was picked.
        device: a short description of the device (GPU name or ``"CPU"``).
    """

    name: str
    xp: ModuleType
    ndimage: ModuleType
    reason: str
    device: str = "CPU"

    @property
    def is_gpu(self) -> bool:
        return self.name == "cupy"

    def asarray(self, array: Any) -> Any:
        """Move ``array`` to this backend (host -> device for CuPy); no copy when already there."""
        return self.xp.asarray(array)

    def to_host(self, array: Any) -> Any:
        """Return ``array`` as a NumPy array (device -> host for CuPy)."""
        return to_host(array)

    def synchronize(self) -> None:
        """Wait for queued device work (no-op on the CPU)."""
        if self.is_gpu:
            self.xp.cuda.get_current_stream().synchronize()

    def __str__(self) -> str:
        return f"{self.name} ({self.device}): {self.reason}"


def to_host(array: Any) -> Any:
    """Return a NumPy array for a NumPy or CuPy array (anything with ``.get()`` is downloaded)."""
    get = getattr(array, "get", None)
    if callable(get) and type(array).__module__.startswith("cupy"):
        return get()
    return array


def _numpy_backend(reason: str) -> Backend:
    import numpy
    import scipy.ndimage

    return Backend("numpy", numpy, scipy.ndimage, reason, "CPU")


def _probe_cupy() -> tuple[Backend | None, str]:
    """Try CuPy for real: import, count devices, allocate and run one kernel."""
    try:
        import cupy  # noqa: PLC0415 - optional dependency
    except Exception as exc:  # ImportError, or a broken CUDA install raising at import
        return None, f"CuPy is not importable ({type(exc).__name__}: {exc})"
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
        if count < 1:
            return None, "CuPy imported but no CUDA device is visible"
        probe = cupy.arange(8, dtype=cupy.float32) * 2.0  # first allocation + a kernel launch
        if float(probe.sum()) != 56.0:
            return None, "CuPy's probe kernel returned a wrong result"
        import cupyx.scipy.ndimage  # noqa: PLC0415

        props = cupy.cuda.runtime.getDeviceProperties(0)
        name = props.get("name", b"GPU")
        name = name.decode() if isinstance(name, bytes) else str(name)
    except Exception as exc:  # cudaErrorInsufficientDriver, cudaErrorNoDevice, NVRTC missing, ...
        return None, f"CuPy is installed but the CUDA device does not work ({type(exc).__name__}: {exc})"
    backend = Backend("cupy", cupy, cupyx.scipy.ndimage, f"CUDA device 0 works ({name})", name)
    return backend, backend.reason


def select_backend(name: str | None = None) -> Backend:
    """Pick the array backend.

    Args:
        name: ``"auto"``, ``"cupy"`` or ``"numpy"``; ``None`` reads ``LUMBARSPINE_BACKEND``
            (default ``"auto"``).

    Returns:
        The :class:`Backend`; its ``reason`` says what was picked and why.

    Raises:
        ValueError: for a name that is not one of :data:`BACKEND_CHOICES`.
        BackendUnavailableError: ``"cupy"`` was requested and the device does not work.
    """
    requested = (name or os.environ.get(BACKEND_ENV_VAR) or "auto").strip().lower()
    if requested not in BACKEND_CHOICES:
        raise ValueError(
            f"Unknown backend {requested!r}: choose one of {', '.join(BACKEND_CHOICES)} "
            f"(argument or the {BACKEND_ENV_VAR} environment variable)."
        )
    if requested == "numpy":
        backend = _numpy_backend("NumPy/SciPy requested")
    else:
        gpu, why = _probe_cupy()
        if gpu is not None:
            backend = gpu
        elif requested == "cupy":
            raise BackendUnavailableError(
                f"Backend 'cupy' was requested but {why}. Install CuPy for your CUDA version "
                f"(for example 'pip install cupy-cuda13x') on a machine with an NVIDIA GPU and driver, "
                f"or use --backend numpy / {BACKEND_ENV_VAR}=numpy."
            )
        else:
            backend = _numpy_backend(f"falling back to NumPy/SciPy: {why}")
    log.info("LumbarSpine backend: %s", backend)
    return backend


def is_out_of_memory(exc: BaseException) -> bool:
    """True when ``exc`` is a device (or host) out-of-memory error."""
    if isinstance(exc, MemoryError):
        return True
    kind = type(exc).__name__
    text = str(exc)
    return kind == "OutOfMemoryError" or "cudaErrorMemoryAllocation" in text or "out of memory" in text.lower()


def run_with_cpu_fallback(
    backend: Backend,
    compute: Callable[[Backend], T],
    *,
    what: str = "computation",
) -> tuple[T, Backend]:
    """Run ``compute(backend)``; when a GPU backend runs out of memory, rerun it on the CPU.

    Returns the result and the backend that produced it. The fallback is logged with one warning
    that names the operation and says it now runs on the CPU.
    """
    try:
        return compute(backend), backend
    except Exception as exc:
        if not backend.is_gpu or not is_out_of_memory(exc):
            raise
        try:
            backend.xp.get_default_memory_pool().free_all_blocks()
        except Exception:  # pragma: no cover - best effort on a broken device
            pass
        cpu = _numpy_backend(f"fell back to NumPy/SciPy: the GPU ran out of memory during {what}")
        log.warning("LumbarSpine: %s ran out of GPU memory (%s); running it on the CPU instead.", what, exc)
        return compute(cpu), cpu
