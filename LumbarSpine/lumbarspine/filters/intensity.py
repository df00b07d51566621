"""Intensity filters: clip, z-score, percentile rescale, fixed and Otsu thresholds.

All of these are one or two passes over memory. On the GPU the per-voxel part is one fused
``cupy.ElementwiseKernel`` (clip + rescale, shift + scale); reductions (mean, std, percentiles,
histogram) use CuPy's reductions in float64. The CPU twin does the same float32 arithmetic in NumPy.

Z-score on the CPU: the statistics are accumulated chunk by chunk (a few MB, in cache) in float64
-- per chunk the count, mean and centred sum of squares, merged with Chan et al.'s pairwise update,
so there is neither a full float64 copy nor cancellation -- on a thread pool (NumPy releases the
GIL); the output ``(x - mean) * (1 / std)`` is then written chunk by chunk in float32, also threaded.
The standard deviation is the sample one (n - 1), as ITK's ``StatisticsImageFilter`` (used by
``NormalizeImageFilter``) computes it.

Tolerances: GPU vs CPU <= 1e-6 relative (identical arithmetic, reductions summed in a different order);
z-score vs SimpleITK ``Normalize`` (which uses the sample standard deviation, n - 1, as we do)
<= 1e-5 absolute; percentile rescale vs ``numpy.percentile`` + SimpleITK ``IntensityWindowing`` <= 1e-5;
clip vs SimpleITK ``Clamp`` exact; fixed threshold vs SimpleITK ``BinaryThreshold`` exact; Otsu vs
SimpleITK ``OtsuThreshold`` (same bin count) >= 99.9 % of voxels agree (bin-edge conventions differ).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..volume import Volume
from ._core import RunContext, as_float32, cpu_threads

_KERNELS: dict[str, Any] = {}


def _affine_clip(be, u: Any, lo: float, hi: float, scale: float, offset: float) -> Any:
    """``(clip(u, lo, hi) - lo) * scale + offset`` in float32 (lo/hi may be +-inf to skip clipping)."""
    xp = be.xp
    lo32, hi32, sc32, of32 = (np.float32(v) for v in (lo, hi, scale, offset))
    if be.is_gpu:
        k = _KERNELS.get("affine_clip")
        if k is None:
            k = xp.ElementwiseKernel(
                "float32 x, float32 lo, float32 hi, float32 sc, float32 of",
                "float32 y",
                "y = __fadd_rn(__fmul_rn(__fsub_rn(fminf(fmaxf(x, lo), hi), lo), sc), of)",
                "lumbarspine_affine_clip",
            )
            _KERNELS["affine_clip"] = k
        return k(u, lo32, hi32, sc32, of32)
    y = np.clip(u, lo32, hi32)
    y -= lo32
    y *= sc32
    y += of32
    return y


def clip_impl(volume: Volume, ctx: RunContext, *, lower: float = -1024.0, upper: float = 3071.0) -> Volume:
    if lower >= upper:
        raise ValueError(f"clip: lower ({lower}) must be below upper ({upper}).")
    be = ctx.backend
    u = as_float32(be.xp, volume.array)
    return volume.with_array(_affine_clip(be, u, lower, upper, 1.0, lower))


def _mask_from(volume: Volume, ctx: RunContext, foreground: str, mask: Volume | None) -> Any:
    xp = ctx.backend.xp
    if mask is not None:
        if not isinstance(mask, Volume) or mask.shape != volume.shape:
            raise ValueError("zscore: the mask must be a Volume on the same grid as the input (same shape).")
        m = xp.asarray(mask.array) != 0
    elif foreground == "all":
        return None
    elif foreground == "nonzero":
        m = volume.array != 0
    elif foreground == "otsu":
        m = otsu_impl(volume, ctx).array != 0
    else:
        raise ValueError(f"zscore: foreground must be 'all', 'nonzero' or 'otsu'; got {foreground!r}.")
    if int(xp.count_nonzero(m)) < 2:
        raise ValueError("zscore: the foreground mask has fewer than 2 voxels; use foreground='all' or another mask.")
    return m


def zscore_impl(volume: Volume, ctx: RunContext, *, foreground: str = "all", mask: Volume | None = None) -> Volume:
    be = ctx.backend
    xp = be.xp
    u = as_float32(xp, volume.array)
    m = _mask_from(volume, ctx, foreground, mask)
    if be.is_gpu:
        values = u if m is None else u[m]
        n = int(values.size)
        mean = float(xp.sum(values, dtype=xp.float64)) / n
        centred = values.astype(xp.float64) - mean
        var = float(xp.sum(centred * centred)) / (n - 1) if n > 1 else 0.0
        del centred
    else:
        n, mean, m2 = _moments_cpu(u, m)
        var = m2 / (n - 1) if n > 1 else 0.0
    std = var**0.5
    if std == 0.0:
        raise ValueError("zscore: the (foreground) intensities are constant, so they cannot be normalised.")
    inv = 1.0 / std
    return volume.with_array(_shift_scale(be, u, mean, inv))


_CHUNK_STATS = 1 << 18  # voxels per CPU work item for the statistics (a 2 MB float64 buffer)
_CHUNK_OUT = 1 << 20  # voxels per CPU work item for the output (4 MB float32)
_THREADS_FROM = 1 << 22  # below this many voxels a thread pool costs more than it saves (2-core benchmark)


def _chunks(size: int, chunk: int) -> list[tuple[int, int]]:
    return [(a, min(a + chunk, size)) for a in range(0, size, chunk)]


def _thread_map(func, items: list, size: int) -> list:
    threads = min(cpu_threads(), len(items)) if size >= _THREADS_FROM else 1
    if threads <= 1:
        return [func(it) for it in items]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(func, items))


def _moments_cpu(u: np.ndarray, m: np.ndarray | None) -> tuple[int, float, float]:
    """(count, mean, centred sum of squares) of ``u`` (inside ``m``), float64 accumulation by chunks."""
    flat = np.ascontiguousarray(u).reshape(-1)
    mflat = None if m is None else np.ascontiguousarray(m).reshape(-1)

    local = threading.local()

    def part(ab: tuple[int, int]) -> tuple[int, float, float]:
        a, b = ab
        v = flat[a:b] if mflat is None else flat[a:b][mflat[a:b]]
        n = int(v.size)
        if n == 0:
            return 0, 0.0, 0.0
        if getattr(local, "buf", None) is None:
            local.buf = np.empty(_CHUNK_STATS, dtype=np.float64)
        d = local.buf[:n]
        np.copyto(d, v)  # float32 -> float64, in cache
        mu = float(np.einsum("i->", d)) / n
        d -= mu
        # BLAS dot in pieces of <= 8192: OpenBLAS stays single-threaded below 10000 elements (its own
        # threads would fight ours), and it is faster than einsum / multiply + sum
        m2 = sum(float(np.dot(d[i : i + 8192], d[i : i + 8192])) for i in range(0, n, 8192))
        return n, mu, m2

    n, mean, m2 = 0, 0.0, 0.0
    # Chan, Golub & LeVeque's pairwise merge of (count, mean, M2), in chunk order (deterministic)
    for nb, mb, m2b in _thread_map(part, _chunks(flat.size, _CHUNK_STATS), flat.size):
        if nb == 0:
            continue
        tot = n + nb
        delta = mb - mean
        mean += delta * nb / tot
        m2 += m2b + delta * delta * n * nb / tot
        n = tot
    return n, mean, m2


def _shift_scale(be, u: Any, mean: float, inv: float) -> Any:
    xp = be.xp
    m32, i32 = np.float32(mean), np.float32(inv)
    if be.is_gpu:
        k = _KERNELS.get("shift_scale")
        if k is None:
            k = xp.ElementwiseKernel(
                "float32 x, float32 m, float32 s", "float32 y", "y = __fmul_rn(__fsub_rn(x, m), s)", "lumbarspine_zs"
            )
            _KERNELS["shift_scale"] = k
        return k(u, m32, i32)
    flat = np.ascontiguousarray(u).reshape(-1)
    out = np.empty(u.shape, dtype=np.float32)
    oflat = out.reshape(-1)

    def work(ab: tuple[int, int]) -> None:
        a, b = ab
        np.subtract(flat[a:b], m32, out=oflat[a:b])
        oflat[a:b] *= i32

    _thread_map(work, _chunks(flat.size, _CHUNK_OUT), flat.size)
    return out


def percentile_bounds(xp: Any, u: Any, lower: float, upper: float) -> tuple[float, float]:
    lo, hi = (float(v) for v in xp.percentile(u, xp.asarray([lower, upper], dtype=xp.float64)))
    return lo, hi


def rescale_percentile_impl(
    volume: Volume,
    ctx: RunContext,
    *,
    lower: float = 0.5,
    upper: float = 99.5,
    out_min: float = 0.0,
    out_max: float = 1.0,
) -> Volume:
    if not lower < upper:
        raise ValueError(f"rescale_percentile: lower percentile ({lower}) must be below upper ({upper}).")
    if not out_min < out_max:
        raise ValueError(f"rescale_percentile: out_min ({out_min}) must be below out_max ({out_max}).")
    be = ctx.backend
    u = as_float32(be.xp, volume.array)
    lo, hi = percentile_bounds(be.xp, u, lower, upper)
    scale = (out_max - out_min) / (hi - lo) if hi > lo else 0.0
    return volume.with_array(_affine_clip(be, u, lo, hi, scale, out_min))


def threshold_impl(volume: Volume, ctx: RunContext, *, lower: float = 0.0, upper: float = float("inf")) -> Volume:
    if lower > upper:
        raise ValueError(f"threshold: lower ({lower}) must not be above upper ({upper}).")
    xp = ctx.backend.xp
    u = volume.array
    m = (u >= lower) & (u <= upper)
    return volume.with_array(m.astype(xp.uint8), is_label=True)


def otsu_threshold_value(xp: Any, u: Any, bins: int = 128) -> float:
    """Otsu's threshold from a ``bins``-bin histogram over [min, max] (bin centres; foreground is above)."""
    lo, hi = float(u.min()), float(u.max())
    if hi <= lo:
        raise ValueError("otsu: the image is constant, there is nothing to threshold.")
    counts, edges = xp.histogram(u, bins=int(bins), range=(lo, hi))
    counts = np.asarray(counts.get() if hasattr(counts, "get") else counts, dtype=np.float64)
    edges = np.asarray(edges.get() if hasattr(edges, "get") else edges, dtype=np.float64)
    centres = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(counts)
    w1 = w0[-1] - w0
    s0 = np.cumsum(counts * centres)
    mu0 = s0 / np.maximum(w0, 1e-300)
    mu1 = (s0[-1] - s0) / np.maximum(w1, 1e-300)
    between = w0 * w1 * (mu0 - mu1) ** 2
    between[w1 == 0] = -1
    k = int(np.argmax(between))
    return float(edges[k + 1])


def otsu_impl(volume: Volume, ctx: RunContext, *, bins: int = 128) -> Volume:
    xp = ctx.backend.xp
    u = as_float32(xp, volume.array)
    t = otsu_threshold_value(xp, u, bins)
    return volume.with_array((u > np.float32(t)).astype(xp.uint8), is_label=True)
