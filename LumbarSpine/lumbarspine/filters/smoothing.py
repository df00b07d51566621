"""Gaussian, median and bilateral smoothing.

* ``gaussian``: ``sigma`` in mm (per axis ``sigma / spacing`` voxels), a sampled Gaussian kernel
  truncated at 4 sigma with zero-flux (clamped) edges. CPU: ``scipy.ndimage.gaussian_filter`` slab by
  slab on a thread pool (faster than SimpleITK's recursive Gaussian on this machine); GPU:
  ``cupyx.scipy.ndimage.gaussian_filter`` with the same arguments. Tolerance: GPU vs CPU <= 1e-5 x
  range; CPU vs SimpleITK ``DiscreteGaussian`` (variance sigma^2, UseImageSpacing) <= 1e-3 x range
  and vs ``SmoothingRecursiveGaussian`` <= 2e-2 x range for sigma >= 1 voxel (different kernels).
* ``median``: ``radius`` in voxels (radius 1 = 3x3x3 window, as ``MedianImageFilter``), clamped edges.
  CPU: SimpleITK ``Median`` itself (the fastest CPU implementation here: ~1.6x SciPy's
  ``median_filter`` with 2 threads), so CPU == SimpleITK exactly. GPU: our own forgetful-selection
  ``RawKernel`` for radius 1 and 2 (values held in a per-thread buffer of N/2+2, no sort), cupyx
  ``median_filter`` for larger radii. Tolerance: exact (the median is one of the inputs).
* ``bilateral``: ITK's ``BilateralImageFilter`` exactly: box neighbourhood of radius
  ``ceil(2.5 * domain_sigma / spacing)`` voxels, domain weights ``exp(-0.5 |offset_mm|^2 / domain_sigma^2)``,
  range weights from ITK's 100-entry lookup table over ``[0, 4 range_sigma)`` (differences >= 4 sigma get
  weight 0), clamped edges. CPU: SimpleITK ``Bilateral`` when it is faster (see the benchmark) else
  NumPy; GPU: our ``RawKernel`` with the same table. Tolerance: CPU NumPy twin vs SimpleITK <= 1e-4 x
  range, GPU vs CPU <= 1e-4 x range (a difference on a table-bin edge can flip one bin).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..volume import Volume
from ._core import CUDA_THREAD_VOXEL, RunContext, as_float32, host_array, slab_map

GAUSSIAN_TRUNCATE = 4.0


# ------------------------------------------------------------------------------------ gaussian
def gaussian_impl(volume: Volume, ctx: RunContext, *, sigma: float = 1.0) -> Volume:
    be = ctx.backend
    u = as_float32(be.xp, volume.array)
    sig = tuple(float(sigma) / s for s in volume.spacing[::-1])  # voxels per array axis (k, j, i)
    if sigma == 0:
        return volume.with_array(u.copy())
    ctx.report(0.0, "gaussian")
    if be.is_gpu:
        out = be.ndimage.gaussian_filter(u, sig, mode="nearest", truncate=GAUSSIAN_TRUNCATE)
    else:
        import scipy.ndimage as ndi

        halo = int(GAUSSIAN_TRUNCATE * sig[0] + 0.5)
        out = slab_map(
            lambda s: ndi.gaussian_filter(s, sig, mode="nearest", truncate=GAUSSIAN_TRUNCATE),
            u,
            halo,
            slab=max(8, 2 * halo),
            ctx=ctx,
            what="gaussian",
        )
    ctx.report(1.0, "gaussian")
    return volume.with_array(out)


# -------------------------------------------------------------------------------------- median
_MEDIAN_SOURCE = (
    CUDA_THREAD_VOXEL
    + r"""
extern "C" __global__ void median_forgetful(const float* __restrict__ u, float* __restrict__ out,
        int nz, int ny, int nx) {
    const int R = __RADIUS__;
    const int W = 2 * R + 1;
    const int N = W * W * W;
    const int M = N / 2 + 2;  // buffer: median rank (N-1)/2 plus two
    ThreadVoxel v;
    if (!thread_voxel(nz, ny, nx, &v)) return;
    long long idx = v.idx;
    int x = v.x, y = v.y, z = v.z;
    float buf[M];
    int size = 0;
    for (int t = 0; t < N; ++t) {
        int zz = min(max(z + t / (W * W) - R, 0), nz - 1);
        int yy = min(max(y + (t / W) % W - R, 0), ny - 1);
        int xx = min(max(x + t % W - R, 0), nx - 1);
        buf[size++] = u[((long long)zz * ny + yy) * nx + xx];
        if (t < M - 1) continue;  // fill the buffer first, then add one and forget two per element
        // forget the minimum and the maximum of the buffer (neither can be the median)
        int imin = 0;
        for (int i = 1; i < size; ++i) if (buf[i] < buf[imin]) imin = i;
        int imax = (imin == 0) ? 1 : 0;
        for (int i = 0; i < size; ++i) if (i != imin && buf[i] > buf[imax]) imax = i;
        int hi = max(imin, imax), lo = min(imin, imax);
        buf[hi] = buf[size - 1]; --size;
        buf[lo] = buf[size - 1]; --size;
    }
    out[idx] = buf[0];
}
"""
)

_KERNELS: dict[Any, Any] = {}


def forgetful_median_reference(values: np.ndarray) -> np.ndarray:
    """NumPy transcription of the GPU kernel's forgetful selection (for tests), over the last axis."""
    values = np.asarray(values, dtype=np.float32)
    n = values.shape[-1]
    m = n // 2 + 2
    flat = values.reshape(-1, n)
    out = np.empty(flat.shape[0], np.float32)
    for row in range(flat.shape[0]):
        buf: list[float] = []
        for t in range(n):
            buf.append(float(flat[row, t]))
            if t < m - 1:
                continue
            imin = 0
            for i in range(1, len(buf)):
                if buf[i] < buf[imin]:
                    imin = i
            imax = 1 if imin == 0 else 0
            for i in range(len(buf)):
                if i != imin and buf[i] > buf[imax]:
                    imax = i
            hi, lo = max(imin, imax), min(imin, imax)
            buf[hi] = buf[-1]
            buf.pop()
            buf[lo] = buf[-1]
            buf.pop()
        out[row] = buf[0]
    return out.reshape(values.shape[:-1])


def _median_gpu(u: Any, radius: int, be) -> Any:
    cp = be.xp
    if radius > 2:
        return be.ndimage.median_filter(u, size=2 * radius + 1, mode="nearest")
    key = ("median", radius)
    if key not in _KERNELS:
        _KERNELS[key] = cp.RawKernel(_MEDIAN_SOURCE.replace("__RADIUS__", str(radius)), "median_forgetful")
    u = cp.ascontiguousarray(u)
    out = cp.empty_like(u)
    nz, ny, nx = (int(n) for n in u.shape)
    threads = 128
    blocks = (u.size + threads - 1) // threads
    _KERNELS[key]((blocks,), (threads,), (u, out, np.int32(nz), np.int32(ny), np.int32(nx)))
    return out


def median_impl(volume: Volume, ctx: RunContext, *, radius: int = 1) -> Volume:
    be = ctx.backend
    u = as_float32(be.xp, volume.array)
    radius = int(radius)
    ctx.report(0.0, "median")
    if be.is_gpu:
        out = _median_gpu(u, radius, be)
    else:
        import SimpleITK as sitk

        def median(s: np.ndarray) -> np.ndarray:
            return sitk.GetArrayFromImage(sitk.Median(sitk.GetImageFromArray(np.ascontiguousarray(s)), [radius] * 3))

        # Slab by slab (halo = radius: identical to one call) so that progress moves and Cancel is honoured.
        out = slab_map(median, u, radius, slab=max(32, 8 * radius), ctx=ctx, what="median")
    ctx.report(1.0, "median")
    return volume.with_array(out)


# ----------------------------------------------------------------------------------- bilateral
DOMAIN_MU = 2.5
RANGE_MU = 4.0
RANGE_SAMPLES = 100


def bilateral_weights(spacing_kji: tuple[float, float, float], domain_sigma: float, range_sigma: float):
    """ITK's kernel radius (per array axis), domain weights (flattened box) and range lookup table."""
    radius = tuple(int(math.ceil(DOMAIN_MU * domain_sigma / s)) for s in spacing_kji)
    grids = np.meshgrid(*[np.arange(-r, r + 1) * s for r, s in zip(radius, spacing_kji)], indexing="ij")
    dist2 = sum((g / domain_sigma) ** 2 for g in grids)
    domain = np.exp(-0.5 * dist2)
    domain = domain / domain.sum()
    dynamic = RANGE_MU * range_sigma
    delta = dynamic / RANGE_SAMPLES
    v = np.arange(RANGE_SAMPLES) * delta
    table = np.exp(-0.5 * v * v / (range_sigma * range_sigma)) / (range_sigma * math.sqrt(2.0 * math.pi))
    return radius, domain, table, dynamic


def _bilateral_cpu_numpy(u: np.ndarray, spacing_kji, domain_sigma: float, range_sigma: float) -> np.ndarray:
    radius, domain, table, dynamic = bilateral_weights(spacing_kji, domain_sigma, range_sigma)
    table32 = table.astype(np.float64)
    to_index = RANGE_SAMPLES / dynamic

    def one(s: np.ndarray) -> np.ndarray:
        p = np.pad(s, [(r, r) for r in radius], mode="edge")
        val = np.zeros(s.shape, np.float64)
        norm = np.zeros(s.shape, np.float64)
        shape = s.shape
        for oz in range(2 * radius[0] + 1):
            for oy in range(2 * radius[1] + 1):
                for ox in range(2 * radius[2] + 1):
                    w_d = domain[oz, oy, ox]
                    nb = p[oz : oz + shape[0], oy : oy + shape[1], ox : ox + shape[2]]
                    dist = np.abs(nb - s)
                    inside = dist < dynamic
                    idx = np.minimum((dist * np.float32(to_index)).astype(np.int32), RANGE_SAMPLES - 1)
                    w = np.where(inside, table32[idx] * w_d, 0.0)
                    norm += w
                    val += nb * w
        return (val / norm).astype(np.float32)

    return slab_map(one, u, radius[0], slab=max(8, 2 * radius[0]))


_BILATERAL_SOURCE = (
    CUDA_THREAD_VOXEL
    + r"""
extern "C" __global__ void bilateral(const float* __restrict__ u, float* __restrict__ out,
        const double* __restrict__ domain, const double* __restrict__ table,
        int nz, int ny, int nx, int rz, int ry, int rx, double dynamic, double to_index, int samples) {
    ThreadVoxel v;
    if (!thread_voxel(nz, ny, nx, &v)) return;
    long long idx = v.idx;
    int x = v.x, y = v.y, z = v.z;
    float c = u[idx];
    double val = 0.0, norm = 0.0;
    int t = 0;
    for (int dz = -rz; dz <= rz; ++dz) {
        int zz = min(max(z + dz, 0), nz - 1);
        for (int dy = -ry; dy <= ry; ++dy) {
            int yy = min(max(y + dy, 0), ny - 1);
            for (int dx = -rx; dx <= rx; ++dx, ++t) {
                int xx = min(max(x + dx, 0), nx - 1);
                float p = u[((long long)zz * ny + yy) * nx + xx];
                float dist = fabsf(p - c);
                if (dist < dynamic) {
                    int k = min((int)(dist * (float)to_index), samples - 1);
                    double w = table[k] * domain[t];
                    norm += w;
                    val += (double)p * w;
                }
            }
        }
    }
    out[idx] = (float)(val / norm);
}
"""
)


def bilateral_impl(volume: Volume, ctx: RunContext, *, domain_sigma: float = 1.0, range_sigma: float = 50.0) -> Volume:
    be = ctx.backend
    u = as_float32(be.xp, volume.array)
    spacing_kji = volume.spacing[::-1]
    ctx.report(0.0, "bilateral")
    if be.is_gpu:
        cp = be.xp
        radius, domain, table, dynamic = bilateral_weights(spacing_kji, domain_sigma, range_sigma)
        if "bilateral" not in _KERNELS:
            _KERNELS["bilateral"] = cp.RawKernel(_BILATERAL_SOURCE, "bilateral", options=("--fmad=false",))
        u = cp.ascontiguousarray(u)
        out = cp.empty_like(u)
        nz, ny, nx = (int(n) for n in u.shape)
        threads = 128
        blocks = (u.size + threads - 1) // threads
        _KERNELS["bilateral"](
            (blocks,),
            (threads,),
            (
                u,
                out,
                cp.asarray(domain.ravel(), dtype=cp.float64),
                cp.asarray(table, dtype=cp.float64),
                np.int32(nz),
                np.int32(ny),
                np.int32(nx),
                np.int32(radius[0]),
                np.int32(radius[1]),
                np.int32(radius[2]),
                np.float64(dynamic),
                np.float64(RANGE_SAMPLES / dynamic),
                np.int32(RANGE_SAMPLES),
            ),
        )
    elif BILATERAL_CPU_USES_SIMPLEITK:
        import SimpleITK as sitk

        img = sitk.GetImageFromArray(np.ascontiguousarray(host_array(volume.with_array(u))))
        img.SetSpacing(tuple(float(s) for s in volume.spacing))
        out = sitk.GetArrayFromImage(sitk.Bilateral(img, float(domain_sigma), float(range_sigma)))
    else:
        out = _bilateral_cpu_numpy(u, spacing_kji, domain_sigma, range_sigma)
    ctx.report(1.0, "bilateral")
    return volume.with_array(out)


BILATERAL_CPU_USES_SIMPLEITK = True
"""SimpleITK's bilateral filter was faster than the NumPy twin on the 2-core benchmark machine."""
