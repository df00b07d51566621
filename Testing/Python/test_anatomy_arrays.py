"""The anatomy's array dispatch (lumbarspine.anatomy.arrays) on the CPU.

* the NumPy backend is SciPy itself: every dispatched operation gives SciPy's result bit for bit;
* a fake 'cupy-like' backend (``cupy_like.py``: device arrays NumPy refuses, an ndimage that refuses host
  arrays) runs the CuPy code path here: results come back to the host once, structures / masks /
  coordinates travel with the input, device arrays stay on the device, and the whole CT and T2
  segmenters run through it with the same labels as on NumPy (so no array step bypasses the dispatch
  and no device array leaks into host code).

The real CuPy comparison is ``test_anatomy_arrays_gpu.py`` (skipped without CUDA).
"""

from __future__ import annotations

import numpy as np
import pytest
from anatomy_array_cases import CASES, random_mask, random_volume, scipy_reference
from cupy_like import FakeDeviceArray, fake_cupy_backend

from lumbarspine.anatomy.arrays import ArrayOps, array_ops, numpy_ops
from lumbarspine.phantom import PhantomSpec, generate_phantom

IDS = [c[0] for c in CASES]


def _assert_same(out, ref):  # type: ignore[no-untyped-def]
    if isinstance(ref, tuple):
        assert isinstance(out, tuple) and len(out) == len(ref)
        for o, r in zip(out, ref):
            _assert_same(o, r)
        return
    if isinstance(ref, np.ndarray):
        assert isinstance(out, np.ndarray) and out.dtype == ref.dtype and out.shape == ref.shape
        np.testing.assert_array_equal(out, ref)
    else:
        assert out == ref


@pytest.mark.parametrize(("case", "op", "make", "args", "kwargs", "tol"), CASES, ids=IDS)
def test_numpy_backend_is_scipy(case, op, make, args, kwargs, tol):
    data = make()
    before = data.copy()
    out = getattr(numpy_ops(), op)(data, *args, **kwargs)
    ref = scipy_reference(op, data, args, kwargs)
    if op == "label":
        assert isinstance(out[1], int)
    _assert_same(out, ref)
    np.testing.assert_array_equal(data, before)  # input not modified


@pytest.mark.parametrize(("case", "op", "make", "args", "kwargs", "tol"), CASES, ids=IDS)
def test_cupy_like_dispatch_moves_arrays_once(case, op, make, args, kwargs, tol):
    backend, counts = fake_cupy_backend()
    ops = ArrayOps(backend)
    data = make()
    out = getattr(ops, op)(data, *args, **kwargs)
    _assert_same(out, scipy_reference(op, data, args, kwargs))
    moved = 1 + sum(isinstance(v, np.ndarray) for v in (*args, *kwargs.values()))
    assert counts["upload"] == moved  # the input and each array argument, once
    assert counts["download"] == 1  # the result, once
    assert counts[f"op:{op}"] == 1


def test_cupy_like_chain_stays_on_the_device():
    backend, counts = fake_cupy_backend()
    ops = ArrayOps(backend)
    mask = random_mask()
    on = ops.asarray(mask)
    closed = ops.binary_closing(on, iterations=1)
    filled = ops.binary_fill_holes(closed)
    dist = ops.distance_transform_edt(filled, sampling=(2.0, 1.0, 1.0))
    assert isinstance(dist, FakeDeviceArray) and counts["download"] == 0
    out = ops.to_host(dist)
    ref = scipy_reference(
        "distance_transform_edt",
        scipy_reference("binary_fill_holes", scipy_reference("binary_closing", mask, (), {"iterations": 1}), (), {}),
        (),
        {"sampling": (2.0, 1.0, 1.0)},
    )
    np.testing.assert_array_equal(out, ref)
    assert counts["upload"] == 1 and counts["download"] == 1
    labels, n = ops.label(on)
    assert isinstance(labels, FakeDeviceArray) and isinstance(n, int) and n > 0
    samples = ops.map_coordinates(ops.asarray(random_volume()), np.array([[1.5], [2.0], [3.25]]), order=1)
    assert isinstance(samples, FakeDeviceArray)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(samples)


def test_array_ops_accepts_names_backends_and_ops():
    assert array_ops("numpy") is numpy_ops() and array_ops("cpu") is numpy_ops()
    ops = numpy_ops()
    assert array_ops(ops) is ops and not ops.is_gpu
    backend, _ = fake_cupy_backend()
    assert array_ops(backend).backend is backend and array_ops(backend).is_gpu
    with pytest.raises(ValueError, match="Unknown backend"):
        array_ops("cuda")


@pytest.fixture(scope="module")
def ct_phantom():
    return generate_phantom(PhantomSpec(seed=1, modality="ct", spacing=(2.0, 2.0, 2.0)))


@pytest.fixture(scope="module")
def t2_phantom():
    return generate_phantom(PhantomSpec(seed=1, modality="t2", spacing=(2.0, 2.0, 2.0)))


CT_OPS = {
    "label",
    "binary_closing",
    "binary_erosion",
    "binary_dilation",
    "gaussian_filter",
    "maximum_filter",
    "grey_closing",
    "distance_transform_edt",
}
T2_OPS = {
    "label",
    "binary_erosion",
    "binary_dilation",
    "binary_opening",
    "binary_fill_holes",
    "gaussian_filter",
    "zoom",
    "uniform_filter",
    "uniform_filter1d",
    "maximum_filter",
    "distance_transform_edt",
    "map_coordinates",
}


def test_ct_segmenter_through_the_cupy_like_backend(ct_phantom):
    from lumbarspine.anatomy.ct import segment_ct

    backend, counts = fake_cupy_backend()
    fake = segment_ct(ct_phantom.image, backend=backend)
    cpu = segment_ct(ct_phantom.image, backend="numpy")
    np.testing.assert_array_equal(fake.labels.array, cpu.labels.array)
    np.testing.assert_array_equal(fake.subregions.array, cpu.subregions.array)
    assert [v.name for v in fake.vertebrae] == ["L1", "L2", "L3", "L4", "L5", "S1"]
    called = {k[3:] for k in counts if k.startswith("op:")}
    assert called == CT_OPS
    assert counts["download"] > 0 and counts["upload"] >= counts["download"]


def test_t2_segmenter_through_the_cupy_like_backend(t2_phantom, monkeypatch):
    from lumbarspine.anatomy import t2 as t2_module
    from lumbarspine.backend import select_backend

    # the library's Gaussian filter (lumbarspine.filters) has its own CUDA kernels: keep it on NumPy here
    numpy_smoother = t2_module._smoother
    monkeypatch.setattr(
        t2_module, "_smoother", lambda backend, spacing: numpy_smoother(select_backend("numpy"), spacing)
    )
    backend, counts = fake_cupy_backend()
    fake = t2_module.segment_t2(t2_phantom.image, backend=backend)
    cpu = t2_module.segment_t2(t2_phantom.image, backend="numpy")
    np.testing.assert_array_equal(fake.labels.array, cpu.labels.array)
    assert [v.name for v in fake.vertebrae] == [v.name for v in cpu.vertebrae]
    called = {k[3:] for k in counts if k.startswith("op:")}
    assert called == T2_OPS


def test_segment_image_hands_a_backend_through(ct_phantom, monkeypatch):
    from lumbarspine.anatomy import ct as ct_module
    from lumbarspine.anatomy.segment import segment_image

    seen = []
    real = ct_module.segment_ct

    def spy(volume, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(kwargs["backend"])
        return real(volume, **kwargs)

    monkeypatch.setattr(ct_module, "segment_ct", spy)
    backend, counts = fake_cupy_backend()
    anatomy = segment_image(ct_phantom.image, backend=backend)
    assert seen == [backend] and counts["op:label"] > 0 and anatomy.modality == "ct"
