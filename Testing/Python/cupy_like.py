"""A fake 'cupy-like' backend for the CPU: device arrays that NumPy refuses, an ndimage that refuses host arrays.

It checks the dispatch of :mod:`lumbarspine.anatomy.arrays` without a GPU: :class:`FakeDeviceArray`
wraps a NumPy array, downloads with ``.get()`` (its type's module starts with ``cupy`` like CuPy's, so
:func:`lumbarspine.backend.to_host` treats it as a device array) and, like CuPy, raises on implicit
conversion to NumPy, so a device array leaking into host code fails loudly. The fake ``ndimage`` runs
``scipy.ndimage`` but first asserts that every array argument is a device array, so a structure, mask or
coordinate array left on the host fails too. It counts uploads, downloads and the operations called.
"""

from __future__ import annotations

import types
from collections import Counter

import numpy as np
import scipy.ndimage

from lumbarspine.backend import Backend


class FakeDeviceArray:
    """A NumPy array 'on the device'."""

    def __init__(self, data: np.ndarray, counts: Counter) -> None:
        self._data = data
        self._counts = counts

    def get(self) -> np.ndarray:
        self._counts["download"] += 1
        return self._data.copy()

    def __array__(self, *args, **kwargs):  # noqa: ANN002, ANN003 - NumPy protocol
        raise TypeError("Implicit conversion to a NumPy array is not allowed (fake cupy device array).")

    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype


FakeDeviceArray.__module__ = "cupy._fake"


def fake_cupy_backend() -> tuple[Backend, Counter]:
    """A :class:`Backend` named ``cupy`` on fake device arrays, and its counters."""
    counts: Counter = Counter()

    def asarray(array, dtype=None):  # noqa: ANN001, ANN202
        if isinstance(array, FakeDeviceArray):
            return array
        if not isinstance(array, np.ndarray):
            raise TypeError(f"fake cupy.asarray expects a NumPy array here, got {type(array).__name__}")
        counts["upload"] += 1
        return FakeDeviceArray(np.array(array, dtype=dtype, copy=True), counts)

    def device_only(value, name):  # noqa: ANN001, ANN202
        if isinstance(value, np.ndarray):
            raise AssertionError(f"fake cupyx.ndimage.{name} got a host (NumPy) array argument")
        return value._data if isinstance(value, FakeDeviceArray) else value

    def wrap(value):  # noqa: ANN001, ANN202
        if isinstance(value, np.ndarray):
            return FakeDeviceArray(value, counts)
        if isinstance(value, tuple):
            return tuple(wrap(v) for v in value)
        return value

    def op(name):  # noqa: ANN001, ANN202
        def run(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            if not isinstance(args[0], FakeDeviceArray):
                raise AssertionError(f"fake cupyx.ndimage.{name}: the input is not on the device")
            args = tuple(device_only(a, name) for a in args)
            kwargs = {k: device_only(v, name) for k, v in kwargs.items()}
            counts[f"op:{name}"] += 1
            return wrap(getattr(scipy.ndimage, name)(*args, **kwargs))

        return run

    ndimage = types.SimpleNamespace(
        **{
            name: op(name)
            for name in (
                "label",
                "binary_erosion",
                "binary_dilation",
                "binary_opening",
                "binary_closing",
                "binary_fill_holes",
                "grey_closing",
                "distance_transform_edt",
                "gaussian_filter",
                "uniform_filter",
                "uniform_filter1d",
                "maximum_filter",
                "median_filter",
                "zoom",
                "map_coordinates",
            )
        }
    )
    xp = types.SimpleNamespace(asarray=asarray)
    return Backend("cupy", xp, ndimage, "fake cupy-like backend on the CPU (tests)", "FakeGPU"), counts
