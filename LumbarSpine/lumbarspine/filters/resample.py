"""Resampling onto a new voxel spacing, keeping the direction and the physical extent.

Output grid: same direction; ``n' = max(1, round(n * s / s'))`` voxels per axis; the outer voxel
*edges* of the first voxel coincide (``origin' = origin + direction @ ((s' - s) / 2)``), so the new
grid covers the same physical box (up to the rounding of ``n'``). The continuous input index of output
voxel ``i'`` is ``(i' s' + (s' - s) / 2) / s`` per axis.

Interpolation: ``linear`` (clamped edges, as ITK's ``LinearInterpolateImageFunction`` inside the
buffer) or ``bspline`` (cubic B-spline with mirror boundary, as ITK's ``BSplineInterpolateImageFunction``)
for intensities; for label maps ``nearest`` (the nearest input voxel, clamped edges, as ITK's
``NearestNeighborInterpolateImageFunction``; no anti-aliasing) or ``label_linear`` (each label's
indicator interpolated linearly and the largest wins, ties to the lower label: smoother boundaries,
as ITK's ``LabelImageGenericInterpolateImageFunction`` with a linear interpolator). Label outputs keep
the input's integer dtype and ``is_label``. ``auto`` (default) picks ``nearest`` for a label map
(:func:`is_label_map`: ``Volume.is_label``, or an integer volume with at most
:data:`LABEL_MAX_VALUES` distinct non-negative values) and ``linear`` otherwise.
Anti-aliasing (default on): before shrinking along an axis (``s' > s``) the image is smoothed along it
with a Gaussian of ``sigma = sqrt(s'^2 - s^2) / 2.355`` mm (the FWHM of the result matches the new
voxel size), truncated at 4 sigma, clamped edges.

GPU: ``cupyx.scipy.ndimage.affine_transform`` with a diagonal matrix (``order=1, mode="nearest"`` or
``order=3, mode="mirror"``). CPU:

* linear: trilinear interpolation on an axis-aligned grid is the tensor product of three 1-D linear
  interpolations, so the CPU twin interpolates axis by axis (k, then j, then i; axes whose grid does
  not change are skipped) in float32, output slab by output slab on a thread pool (NumPy releases
  the GIL). The continuous index is clamped to ``[0, n - 1]`` per axis, which is exactly
  ``mode="nearest"`` for order 1 (and ITK's clamping inside the buffer). Mathematically identical
  to ``scipy.ndimage.affine_transform(order=1, mode="nearest")``; agrees with it to float32 rounding
  (<= 1e-6 x range).
* B-spline: ``scipy.ndimage.spline_filter`` (order 3, mirror) once, then
  ``affine_transform(prefilter=False)`` on the coefficients, output slabs on a thread pool (the
  same coefficients and per-point arithmetic as one ``affine_transform`` call: identical output).
* anti-aliasing Gaussian: ``scipy.ndimage.gaussian_filter`` slab-threaded (identical to one call).

Outside-of-grid samples: output voxel centres lie within the input's outer voxel edges (index
``-0.5 .. n - 0.5``) except when ``n'`` is rounded up to 1 on a very coarse axis; there the clamped
(linear) / mirrored (B-spline) extension is used. SimpleITK ``Resample`` returns its default value
(0) more than half a voxel outside, and the upper edge ``n - 0.5`` itself is outside for ITK, so
compare with it only where samples are inside.

Tolerance: GPU vs CPU <= 1e-4 x range (CuPy interpolates in float32 with its own coordinate
arithmetic); CPU vs SimpleITK ``Resample`` on the same grid, no anti-aliasing: linear <= 1e-4 x range
(in practice float rounding, ~1e-6), B-spline <= 1e-3 x range (ITK's B-spline decomposition and
mirror convention at the edge differ slightly from SciPy's).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..volume import Volume
from ._core import RunContext, as_float32, cpu_threads, slab_map

FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
INTERPOLATIONS = ("auto", "linear", "bspline", "nearest", "label_linear")
LABEL_MAX_VALUES = 64
"""An integer volume with at most this many distinct non-negative values counts as a label map (``auto``)."""


def is_label_map(volume: Volume) -> bool:
    """``Volume.is_label``, or integer voxels with at most :data:`LABEL_MAX_VALUES` distinct values, none negative."""
    if volume.is_label:
        return True
    arr = volume.array
    if np.dtype(arr.dtype).kind not in "iub":
        return False
    host = arr if isinstance(arr, np.ndarray) else arr.get()
    low, high = int(host.min()), int(host.max())
    if low < 0:
        return False
    if high < 1 << 16:
        distinct = int(np.count_nonzero(np.bincount(host.ravel().astype(np.intp, copy=False), minlength=1)))
    else:
        distinct = int(np.unique(host).size)
    return distinct <= LABEL_MAX_VALUES


def target_spacing(volume: Volume, spacing: Any) -> tuple[float, float, float]:
    """``spacing``: 0/None -> isotropic at the finest input spacing; a number -> isotropic; three
    numbers -> ``(i, j, k)`` in mm (0 keeps that axis' spacing)."""
    if spacing is None:
        spacing = 0.0
    if isinstance(spacing, (int, float)):
        s = float(spacing) or min(volume.spacing)
        out = (s, s, s)
    else:
        vals = [float(v) for v in spacing]
        if len(vals) != 3:
            raise ValueError(f"resample: spacing must be one number or three (i, j, k) in mm; got {spacing!r}.")
        out = tuple(v or s for v, s in zip(vals, volume.spacing))
    if not all(np.isfinite(out)) or min(out) <= 0:
        raise ValueError(f"resample: spacing must be positive (mm); got {spacing!r}.")
    return out  # type: ignore[return-value]


def output_grid(volume: Volume, new_spacing: tuple[float, float, float]):
    """(shape k,j,i ; origin RAS) of the resampled grid."""
    s = np.asarray(volume.spacing)
    s2 = np.asarray(new_spacing)
    size = np.maximum(1, np.round(np.asarray(volume.size_ijk) * s / s2)).astype(int)
    origin = np.asarray(volume.origin) + volume.direction @ ((s2 - s) / 2.0)
    return tuple(int(n) for n in size[::-1]), tuple(float(o) for o in origin)


def resample_impl(
    volume: Volume,
    ctx: RunContext,
    *,
    spacing: Any = 0.0,
    interpolation: str = "linear",
    antialias: bool = True,
) -> Volume:
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"resample: interpolation must be one of {', '.join(INTERPOLATIONS)}; got {interpolation!r}.")
    be = ctx.backend
    xp, ndi = be.xp, be.ndimage
    new_spacing = target_spacing(volume, spacing)
    shape, origin = output_grid(volume, new_spacing)
    if interpolation == "auto":
        interpolation = "nearest" if is_label_map(volume) else "linear"
    if interpolation in ("nearest", "label_linear"):
        out = _resample_labels(volume, ctx, new_spacing, shape, interpolation)
        return Volume(
            array=out, spacing=new_spacing, origin=origin, direction=volume.direction, is_label=True, name=volume.name
        )
    u = as_float32(xp, volume.array)
    s_kji = np.asarray(volume.spacing[::-1])
    t_kji = np.asarray(new_spacing[::-1])
    ctx.report(0.0, "resample")
    if antialias and np.any(t_kji > s_kji * (1 + 1e-6)):
        sig_mm = np.sqrt(np.maximum(t_kji**2 - s_kji**2, 0.0)) * FWHM_TO_SIGMA
        sig_vox = tuple(float(v) for v in sig_mm / s_kji)
        if be.is_gpu:
            u = ndi.gaussian_filter(u, sig_vox, mode="nearest", truncate=4.0)
        else:
            halo = int(4.0 * sig_vox[0] + 0.5) if sig_vox[0] > 0 else 0
            u = slab_map(lambda a: ndi.gaussian_filter(a, sig_vox, mode="nearest", truncate=4.0), u, halo, slab=16)
        ctx.report(0.4, "resample: anti-aliasing done")
    matrix = t_kji / s_kji
    offset = (t_kji - s_kji) / (2.0 * s_kji)
    if be.is_gpu:
        # cupyx needs the (diagonal) matrix on the device: it computes -offset / matrix with CuPy and passes
        # matrix to its kernel, and a NumPy array there raises TypeError
        matrix_d = xp.asarray(matrix, dtype=xp.float64)
        if interpolation == "linear":
            out = ndi.affine_transform(u, matrix_d, offset=offset, output_shape=shape, order=1, mode="nearest")
        else:
            out = ndi.affine_transform(
                u,
                matrix_d,
                offset=offset,
                output_shape=shape,
                order=3,
                mode="mirror",
                prefilter=True,
                output=xp.float32,
            )
    elif interpolation == "linear":
        out = _linear_cpu(u, matrix, offset, shape)
    else:
        out = _bspline_cpu(ndi, u, matrix, offset, shape)
    ctx.report(1.0, "resample")
    return Volume(
        array=out.astype(xp.float32, copy=False),
        spacing=new_spacing,
        origin=origin,
        direction=volume.direction,
        is_label=False,
        name=volume.name,
    )


# --------------------------------------------------------------------------------------- labels
def _nearest_index(n_in: int, n_out: int, scale: float, offset: float) -> np.ndarray:
    """Nearest input index of each output index along one axis (half-way rounds up, clamped)."""
    x = np.arange(n_out, dtype=np.float64) * scale + offset
    return np.clip(np.floor(x + 0.5), 0, n_in - 1).astype(np.intp)


def _resample_labels(volume: Volume, ctx: RunContext, new_spacing, shape, interpolation: str):
    """Nearest-neighbour or label-wise linear resampling; keeps the integer dtype."""
    xp = ctx.backend.xp
    arr = volume.array
    s_kji = np.asarray(volume.spacing[::-1])
    t_kji = np.asarray(new_spacing[::-1])
    matrix = t_kji / s_kji
    offset = (t_kji - s_kji) / (2.0 * s_kji)
    ctx.report(0.0, f"resample ({interpolation})")
    if interpolation == "nearest":
        idx = [xp.asarray(_nearest_index(arr.shape[a], shape[a], float(matrix[a]), float(offset[a]))) for a in range(3)]
        out = arr[idx[0]][:, idx[1]][:, :, idx[2]]
        ctx.report(1.0, "resample")
        return xp.ascontiguousarray(out)
    values = [int(v) for v in np.asarray(xp.unique(arr).get() if hasattr(arr, "get") else np.unique(arr))]
    best = xp.full(shape, -1.0, dtype=xp.float32)
    out = xp.zeros(shape, dtype=arr.dtype)
    for n, value in enumerate(values):
        indicator = (arr == value).astype(xp.float32)
        if ctx.backend.is_gpu:
            weight = ctx.backend.ndimage.affine_transform(
                indicator, xp.asarray(matrix), offset=offset, output_shape=shape, order=1, mode="nearest"
            )
        else:
            weight = _linear_cpu(indicator, matrix, offset, shape)
        better = weight > best
        best = xp.where(better, weight, best)
        out = xp.where(better, xp.asarray(value, dtype=arr.dtype), out)
        ctx.report((n + 1) / len(values), f"resample: label {value}")
    return out


# ------------------------------------------------------------------------------------ CPU twins
def _axis_weights(n_in: int, n_out: int, scale: float, offset: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Lower neighbour index and float32 weight of the upper neighbour for each output index along one
    axis (continuous index ``i' * scale + offset`` clamped to ``[0, n_in - 1]``); None = identity."""
    if n_out == n_in and scale == 1.0 and offset == 0.0:
        return None
    x = np.clip(np.arange(n_out, dtype=np.float64) * scale + offset, 0.0, n_in - 1.0)
    f = np.minimum(np.floor(x).astype(np.intp), max(n_in - 2, 0))
    w = (x - f).astype(np.float32)
    if n_in == 1:
        w[:] = 0.0
    return f, w


def _lerp(y: np.ndarray, fw: tuple[np.ndarray, np.ndarray], axis: int) -> np.ndarray:
    f, w = fw
    y0 = np.take(y, f, axis=axis)
    y1 = np.take(y, np.minimum(f + 1, y.shape[axis] - 1), axis=axis)
    y1 -= y0
    bshape = [1, 1, 1]
    bshape[axis] = -1
    y1 *= w.reshape(bshape)
    y0 += y1
    return y0


def _slabs(n: int, slab: int) -> list[tuple[int, int]]:
    return [(a, min(a + slab, n)) for a in range(0, n, slab)]


def _run_slabs(work, bounds) -> None:
    threads = min(cpu_threads(), len(bounds))
    if threads <= 1:
        for ab in bounds:
            work(ab)
        return
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, bounds))


def _linear_cpu(u: np.ndarray, matrix: np.ndarray, offset: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Separable trilinear resampling with clamped edges (= affine_transform order 1, mode nearest)."""
    wk, wj, wi = (_axis_weights(u.shape[a], shape[a], float(matrix[a]), float(offset[a])) for a in range(3))
    out = np.empty(shape, dtype=np.float32)
    # a few output slices per task: the temporaries stay in cache, and threads split the work
    per = max(1, (1 << 21) // max(1, u.shape[1] * u.shape[2]))

    def work(ab: tuple[int, int]) -> None:
        a, b = ab
        if wk is None:
            y = u[a:b]
        else:
            f, w = wk
            y = _lerp(u, (f[a:b], w[a:b]), 0)
        if wj is not None:
            y = _lerp(y, wj, 1)
        if wi is not None:
            y = _lerp(y, wi, 2)
        out[a:b] = y

    _run_slabs(work, _slabs(shape[0], per))
    return out


def _bspline_cpu(ndi, u: np.ndarray, matrix: np.ndarray, offset: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Cubic B-spline (mirror): the coefficients once, then output slabs threaded (identical to one
    ``affine_transform(order=3, mode="mirror", prefilter=True)`` call)."""
    coeffs = ndi.spline_filter(u, order=3, output=np.float64, mode="mirror")
    out = np.empty(shape, dtype=np.float32)
    per = max(1, (1 << 20) // max(1, shape[1] * shape[2]))

    def work(ab: tuple[int, int]) -> None:
        a, b = ab
        off = np.asarray(offset, dtype=np.float64).copy()
        off[0] += matrix[0] * a
        ndi.affine_transform(
            coeffs,
            matrix,
            offset=off,
            output_shape=(b - a, shape[1], shape[2]),
            order=3,
            mode="mirror",
            prefilter=False,
            output=out[a:b],
        )

    _run_slabs(work, _slabs(shape[0], per))
    return out
