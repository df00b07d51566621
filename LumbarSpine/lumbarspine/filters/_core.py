"""Shared plumbing for the filters: run context (progress / cancel), device transfers, CPU slab threading.

Internal: filter implementations (``_impl`` functions) take and return a :class:`~lumbarspine.volume.Volume`
whose ``array`` lives on the selected backend (NumPy on the CPU, CuPy on the GPU) and never modify
their input array in place.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend import Backend, select_backend
from ..progress import CancelCallback, OperationCancelled, ProgressCallback
from ..volume import Volume

CUDA_THREAD_VOXEL = r"""
// One thread per voxel of a C-ordered nz x ny x nx volume: its flat index and (x, y, z) = (i, j, k).
struct ThreadVoxel { long long idx; int x, y, z; };
__device__ __forceinline__ bool thread_voxel(int nz, int ny, int nx, ThreadVoxel* v) {
    long long n = (long long)nz * ny * nx;
    v->idx = (long long)blockDim.x * blockIdx.x + threadIdx.x;
    if (v->idx >= n) return false;
    v->x = (int)(v->idx % nx);
    v->y = (int)((v->idx / nx) % ny);
    v->z = (int)(v->idx / ((long long)nx * ny));
    return true;
}
"""
"""CUDA prologue shared by our kernels: ``thread_voxel`` maps a thread to its voxel (False past the end)."""


class FilterCancelled(OperationCancelled):
    """Raised when the ``cancel()`` callback returned True between two filter steps or iterations."""


# ------------------------------------------------------------------------------- memory budget
MEMORY_BUDGET_ENV = "LUMBARSPINE_MEMORY_BUDGET"
"""Environment variable overriding the memory a filter may use (bytes, or with a K/M/G/T suffix)."""


class InsufficientMemoryError(MemoryError):
    """An operation would need more memory than is available; raised before it starts (nothing done)."""


def _parse_bytes(text: str) -> int:
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in "KMGT" else text
    return int(float(number) * scale)


def available_memory() -> int | None:
    """Bytes a filter may use: ``LUMBARSPINE_MEMORY_BUDGET`` when set, else ``MemAvailable`` from
    ``/proc/meminfo`` (Linux); None when unknown (no check)."""
    env = os.environ.get(MEMORY_BUDGET_ENV)
    if env:
        try:
            return _parse_bytes(env)
        except ValueError:
            raise ValueError(f"{MEMORY_BUDGET_ENV}={env!r} is not a size; use bytes or e.g. 8G.") from None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def check_memory(required: float, what: str, suggestion: str = "") -> None:
    """Raise :class:`InsufficientMemoryError` when ``required`` bytes exceed :func:`available_memory`."""
    budget = available_memory()
    if budget is None or required <= budget:
        return
    hint = f" {suggestion}" if suggestion else ""
    raise InsufficientMemoryError(
        f"{what} needs about {format_bytes(required)} of memory but only {format_bytes(budget)} is available.{hint} "
        f"(Set {MEMORY_BUDGET_ENV} to change the limit.)"
    )


@dataclass
class RunContext:
    """Where a filter runs and whom it reports to.

    ``progress(fraction, message)`` receives overall fractions in ``[0, 1]``; a step of a pipeline
    maps its own ``[0, 1]`` onto ``[start, stop]`` of the whole.
    """

    backend: Backend
    progress: ProgressCallback | None = None
    cancel: CancelCallback | None = None
    start: float = 0.0
    stop: float = 1.0

    def report(self, fraction: float, message: str) -> None:
        """Check for cancellation, then report progress (``fraction`` of this step, 0..1)."""
        self.check_cancel()
        if self.progress is not None:
            fraction = min(max(float(fraction), 0.0), 1.0)
            self.progress(self.start + (self.stop - self.start) * fraction, message)

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel():
            raise FilterCancelled("Filtering was cancelled by the user.")

    def sub(self, start: float, stop: float) -> RunContext:
        """A context for a sub-step covering ``[start, stop]`` of this one."""
        span = self.stop - self.start
        return RunContext(self.backend, self.progress, self.cancel, self.start + span * start, self.start + span * stop)

    def with_backend(self, backend: Backend) -> RunContext:
        return RunContext(backend, self.progress, self.cancel, self.start, self.stop)


def resolve_backend(backend: Any) -> Backend:
    """``None`` / ``"auto"`` / ``"cupy"`` / ``"numpy"`` / a :class:`Backend` -> a :class:`Backend`."""
    if isinstance(backend, Backend):
        return backend
    if backend is None or isinstance(backend, str):
        return select_backend(backend)
    raise ValueError(f"backend must be None, 'auto', 'cupy', 'numpy' or a Backend; got {backend!r}.")


# ------------------------------------------------------------------------------------ transfers
def upload(backend: Backend, array: np.ndarray) -> Any:
    """Host -> backend. On the GPU the array is staged through pinned memory and keeps its dtype
    (int16 travels as int16; the conversion to float32 happens on the device)."""
    array = np.ascontiguousarray(array)
    if not backend.is_gpu:
        return array
    if not array.dtype.isnative:  # CuPy refuses big-endian dtypes (e.g. '>i2' from a raw/NIfTI reader)
        array = array.astype(array.dtype.newbyteorder("="))
    cp = backend.xp
    pinned = cp.cuda.alloc_pinned_memory(max(array.nbytes, 1))
    staging = np.frombuffer(pinned, array.dtype, array.size).reshape(array.shape)
    staging[...] = array
    device = cp.empty(array.shape, dtype=array.dtype)
    device.set(staging)
    cp.cuda.get_current_stream().synchronize()  # the staging buffer may be freed after this
    return device


def download(backend: Backend, array: Any) -> np.ndarray:
    """Backend -> host (through pinned memory on the GPU)."""
    if not backend.is_gpu or isinstance(array, np.ndarray):
        return np.asarray(array)
    cp = backend.xp
    array = cp.ascontiguousarray(array)
    pinned = cp.cuda.alloc_pinned_memory(max(array.nbytes, 1))
    out = np.frombuffer(pinned, array.dtype, array.size).reshape(array.shape)
    array.get(out=out)
    cp.cuda.get_current_stream().synchronize()
    return out  # keeps a reference to the pinned buffer through its .base


def to_device_volume(backend: Backend, volume: Volume) -> Volume:
    return volume.with_array(upload(backend, np.asarray(volume.array)))


def to_host_volume(backend: Backend, volume: Volume) -> Volume:
    return volume.with_array(download(backend, volume.array))


def as_float32(xp: Any, array: Any) -> Any:
    """float32 view/copy of ``array`` (no copy when it already is float32: never write into it)."""
    return array.astype(xp.float32, copy=False)


def host_array(volume: Volume) -> np.ndarray:
    """The volume's array on the host (downloading a CuPy array)."""
    arr = volume.array
    if isinstance(arr, np.ndarray):
        return arr
    return arr.get()


# --------------------------------------------------------------------------- CPU slab threading
def cpu_threads() -> int:
    """Threads used by the CPU twins (``LUMBARSPINE_THREADS`` or the number of usable cores)."""
    env = os.environ.get("LUMBARSPINE_THREADS")
    if env and env.strip().isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def slab_map(
    func: Callable[[np.ndarray], np.ndarray],
    array: np.ndarray,
    halo: int,
    *,
    out: np.ndarray | None = None,
    dtype: Any = np.float32,
    slab: int = 8,
    ctx: RunContext | None = None,
    what: str = "",
) -> np.ndarray:
    """Apply a local (stencil) NumPy/SciPy function slab by slab along axis 0, on a thread pool.

    ``func`` must be a pure function of its input whose value at a voxel depends only on voxels at
    most ``halo`` away along axis 0 and treat the *true* volume edge as it wishes (each slab is
    handed ``halo`` extra slices on each side where they exist, so results are identical to
    ``func(array)``). Small slabs keep temporaries in cache and NumPy/SciPy release the GIL, so this
    is both faster single-threaded and parallel.

    With ``ctx``, cancellation is checked before every slab and progress reported (from the calling
    thread, in slab order) after each one, so a long filter can be stopped and followed slab by slab.
    """
    nk = array.shape[0]
    if out is None:
        out = np.empty(array.shape, dtype=dtype)
    threads = cpu_threads()
    if nk <= slab or array.size < 1 << 16:
        if ctx is not None:
            ctx.check_cancel()
        out[...] = func(array)
        return out
    bounds = [(a, min(a + slab, nk)) for a in range(0, nk, slab)]

    def work(ab: tuple[int, int]) -> None:
        if ctx is not None:
            ctx.check_cancel()  # every queued slab stops at once after a cancel
        a, b = ab
        lo, hi = max(0, a - halo), min(nk, b + halo)
        res = func(array[lo:hi])
        out[a:b] = res[a - lo : a - lo + (b - a)]

    def done(count: int) -> None:
        if ctx is not None:
            ctx.report(count / len(bounds), f"{what} slab {count}/{len(bounds)}".strip())

    if threads == 1:
        for count, ab in enumerate(bounds, 1):
            work(ab)
            done(count)
    else:
        with ThreadPoolExecutor(threads) as pool:
            for count, _ in enumerate(pool.map(work, bounds), 1):
                done(count)
    return out
