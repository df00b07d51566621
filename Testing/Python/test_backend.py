"""Backend selection when CuPy imports but the CUDA driver cannot be used."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from lumbarspine.backend import BackendUnavailableError, run_with_cpu_fallback, select_backend


class CUDARuntimeError(RuntimeError):
    """Stands in for cupy_backends.cuda.api.runtime.CUDARuntimeError."""


def _fake_cupy() -> types.ModuleType:
    cupy = types.ModuleType("cupy")
    runtime = types.SimpleNamespace(getDeviceCount=lambda: 1)
    cupy.cuda = types.SimpleNamespace(runtime=runtime)
    cupy.float32 = np.float32

    def arange(*args, **kwargs):
        raise CUDARuntimeError(
            "cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime version"
        )

    cupy.arange = arange
    cupy.asarray = arange
    cupy.empty = arange
    return cupy


@pytest.fixture
def broken_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy())
    monkeypatch.delenv("LUMBARSPINE_BACKEND", raising=False)


def test_auto_falls_back_to_numpy_with_reason(broken_cupy):
    be = select_backend("auto")
    assert be.name == "numpy" and not be.is_gpu
    assert "cudaErrorInsufficientDriver" in be.reason and "falling back" in be.reason


def test_default_is_auto(broken_cupy):
    assert select_backend(None).name == "numpy"


def test_cupy_requested_raises(broken_cupy):
    with pytest.raises(BackendUnavailableError, match="cudaErrorInsufficientDriver"):
        select_backend("cupy")


def test_filters_with_broken_cupy(broken_cupy):
    from lumbarspine import filters as F
    from lumbarspine.volume import Volume

    v = Volume(np.random.default_rng(0).normal(size=(8, 10, 12)).astype(np.float32))
    res = F.apply_filter(v, "gaussian", sigma=1.0)  # auto
    assert res.backend == "numpy"
    with pytest.raises(BackendUnavailableError):
        F.apply_filter(v, "gaussian", backend="cupy", sigma=1.0)


def test_numpy_and_bad_names():
    assert select_backend("numpy").name == "numpy"
    with pytest.raises(ValueError, match="Unknown backend"):
        select_backend("opencl")


def test_out_of_memory_fallback_runs_on_cpu():
    """A GPU backend whose computation runs out of memory is rerun on the CPU (fake GPU backend)."""
    from lumbarspine.backend import Backend

    pool = types.SimpleNamespace(free_all_blocks=lambda: None)
    fake_xp = types.SimpleNamespace(get_default_memory_pool=lambda: pool)
    gpu = Backend("cupy", fake_xp, types.SimpleNamespace(), "fake GPU", "Fake")
    calls = []

    def compute(be):
        calls.append(be.name)
        if be.is_gpu:
            raise MemoryError("out of memory allocating 1 GB")
        return 42

    result, used = run_with_cpu_fallback(gpu, compute, what="test")
    assert result == 42 and used.name == "numpy" and calls == ["cupy", "numpy"]
    assert "ran out of memory" in used.reason
