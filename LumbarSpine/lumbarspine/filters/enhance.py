"""Contrast enhancement: 3D CLAHE (contrast-limited adaptive histogram equalisation).

``clahe`` is ``skimage.exposure.equalize_adapthist`` on the whole 3D volume:

* the input is first mapped linearly from its ``[min, max]`` to ``[0, 1]`` in float64
  (``(a - min) / (max - min)``; a constant volume becomes all zeros). scikit-image then quantises it to
  14 bits (``img_as_uint`` + ``rescale_intensity`` to 0..16383), so CLAHE sees the same grey levels
  whatever the input's units.
* ``kernel_size`` (the contextual region) is given in **mm** and converted per array axis ``(k, j, i)`` to
  ``max(1, min(n_axis, floor(kernel_size / spacing_axis + 0.5)))`` voxels (see :func:`clahe_kernel_voxels`),
  so the region covers about the same physical size along every axis of an anisotropic grid.
  ``kernel_size = 0`` keeps scikit-image's default: 1/8 of the volume along each axis (at least 1 voxel).
* ``clip_limit`` (0..1, normalised as in scikit-image; 0 = no clipping, plain AHE) and ``nbins``
  (histogram bins) are passed through unchanged.
* output: **float32 in [0, 1]**, stretched by scikit-image so that the darkest output voxel is 0 and the
  brightest 1. Geometry is preserved exactly; the input is never modified.

Backends: the CPU twin is scikit-image itself (so CPU == ``equalize_adapthist`` called the same way,
up to the final float32 rounding). On the GPU, ``cucim.skimage.exposure.equalize_adapthist`` (the CUDA
port of the same code) is used when cuCIM is installed; without cuCIM the filter is registered as
host-only and runs on the CPU on every backend (a GPU pipeline downloads before it, and
``apply_filter``'s message says it ran on the CPU). Tolerance GPU (cuCIM) vs CPU: not verified on a
GPU yet; expected to differ only where float rounding moves a voxel across a histogram-bin edge
(<= one bin's share of the clipped CDF, about ``clip_limit``), documented as <= 2e-2 absolute max and
<= 1e-3 mean. scikit-image is imported lazily: without it the filter raises ``ValueError`` saying how to
install it. The call is one monolithic scikit-image call: cancel is honoured before and after it only.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..volume import Volume
from ._core import RunContext, download, host_array, upload

INSTALL_HINT = (
    "needs scikit-image: pip install scikit-image (in 3D Slicer's Python console: "
    'slicer.util.pip_install("scikit-image"))'
)


def cucim_available() -> bool:
    """True when cuCIM looks installed (checked without importing it, i.e. without starting CUDA)."""
    try:
        return importlib.util.find_spec("cucim") is not None
    except (ImportError, ValueError):  # pragma: no cover - broken installs
        return False


def import_skimage_function(module: str, name: str, filter_name: str) -> Any:
    """``skimage.<module>.<name>`` or a ``ValueError`` telling how to install scikit-image."""
    try:
        mod = __import__(f"skimage.{module}", fromlist=[name])
    except ImportError:
        raise ValueError(f"{filter_name}: {INSTALL_HINT}.") from None
    return getattr(mod, name)


def clahe_kernel_voxels(shape: Sequence[int], spacing: Sequence[float], kernel_size: float) -> tuple[int, ...] | None:
    """Contextual-region size in voxels per array axis ``(k, j, i)`` for ``kernel_size`` mm.

    ``shape`` is the array shape ``(nk, nj, ni)`` and ``spacing`` the volume spacing ``(i, j, k)`` in mm.
    Returns None for ``kernel_size == 0`` (scikit-image's default, 1/8 of each axis).
    """
    if kernel_size == 0:
        return None
    return tuple(
        max(1, min(int(n), int(math.floor(float(kernel_size) / float(s) + 0.5))))
        for n, s in zip(shape, tuple(spacing)[::-1])
    )


def normalise_unit(xp: Any, array: Any) -> Any:
    """float64 copy of ``array`` mapped linearly from ``[min, max]`` to ``[0, 1]`` (zeros when constant)."""
    a = array.astype(xp.float64)
    lo = float(a.min())
    hi = float(a.max())
    if hi > lo:
        a -= lo
        a /= hi - lo
    else:
        a[...] = 0.0
    return a


def clahe_impl(
    volume: Volume,
    ctx: RunContext,
    *,
    kernel_size: float = 0.0,
    clip_limit: float = 0.01,
    nbins: int = 256,
) -> Volume:
    arr = volume.array
    on_device = not isinstance(arr, np.ndarray)
    kernel = clahe_kernel_voxels(volume.shape, volume.spacing, kernel_size)
    ctx.report(0.0, "CLAHE")
    if on_device:
        try:
            from cucim.skimage.exposure import equalize_adapthist as gpu_clahe
        except ImportError:
            gpu_clahe = None
        if gpu_clahe is not None:
            xp = ctx.backend.xp
            out = gpu_clahe(normalise_unit(xp, arr), kernel_size=kernel, clip_limit=clip_limit, nbins=nbins)
            ctx.report(1.0, "CLAHE")
            return volume.with_array(out.astype(xp.float32, copy=False))
    equalize_adapthist = import_skimage_function("exposure", "equalize_adapthist", "clahe")
    host = download(ctx.backend, arr) if on_device else host_array(volume)
    out = equalize_adapthist(normalise_unit(np, host), kernel_size=kernel, clip_limit=clip_limit, nbins=nbins)
    out = np.ascontiguousarray(out, dtype=np.float32)
    ctx.report(1.0, "CLAHE")
    return volume.with_array(upload(ctx.backend, out) if on_device else out)
