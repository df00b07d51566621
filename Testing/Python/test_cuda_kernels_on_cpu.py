"""Our CUDA kernels, run on the CPU: the same source compiled as C++ with the CUDA built-ins emulated.

No GPU is needed: each kernel source is compiled with g++ (``-ffp-contract=off``, like the
``--fmad=false`` the kernels are built with on the GPU), launched once per thread index from a small C
loop, and compared with its CPU twin and with SimpleITK. This checks the kernels' arithmetic, index
order (k, j, i), boundary handling and the agreement the GPU parity tests will demand; it does not check
CuPy's launch glue, transfers or the device's own maths library (``test_filters_gpu.py`` does that on a
GPU).
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess

import numpy as np
import pytest
import SimpleITK as sitk

from lumbarspine.filters import apply_filter, diffusion, smoothing
from lumbarspine.volume import Volume

GXX = shutil.which("g++")
pytestmark = pytest.mark.skipif(GXX is None, reason="g++ is not installed")

CUDA_SHIM = r"""
#include <cmath>
#include <algorithm>
using std::min; using std::max;
struct lumbarspine_dim3 { unsigned x; };
static lumbarspine_dim3 blockDim, blockIdx, threadIdx;
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__
"""

SPACING = (0.7, 0.9, 3.0)  # (i, j, k) mm


def _launcher(kernel: str, params: str, args: str) -> str:
    """A C entry point running ``kernel`` once for every flat thread index 0..n-1 (one thread per block)."""
    return f"""
extern "C" void run_{kernel}(long long n, {params}) {{
    blockDim.x = 1; threadIdx.x = 0;
    for (long long t = 0; t < n; ++t) {{ blockIdx.x = (unsigned)t; {kernel}({args}); }}
}}"""


def _build(tmp_path, name: str, source: str, launchers: str) -> ctypes.CDLL:
    cpp = tmp_path / f"{name}.cpp"
    lib = tmp_path / f"lib{name}.so"
    cpp.write_text(CUDA_SHIM + source.replace('extern "C" __device__', "static") + launchers)
    subprocess.run([GXX, "-O1", "-ffp-contract=off", "-fPIC", "-shared", "-o", str(lib), str(cpp)], check=True)
    return ctypes.CDLL(str(lib))


def _ptr(array: np.ndarray) -> ctypes.c_void_p:
    return array.ctypes.data_as(ctypes.c_void_p)


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    rng = np.random.default_rng(0)
    shape = (9, 13, 17)
    a = rng.normal(100.0, 20.0, shape)
    k, j, i = np.indices(shape)
    a += 80.0 * (((i - 8) / 5.0) ** 2 + ((j - 6) / 4.0) ** 2 + ((k - 4) / 3.0) ** 2 < 1.0)
    return np.ascontiguousarray(a, dtype=np.float32)


def _sitk(a: np.ndarray):
    image = sitk.GetImageFromArray(a)
    image.SetSpacing(SPACING)
    return image


@pytest.mark.parametrize("radius", [1, 2])
def test_median_kernel_equals_simpleitk(tmp_path, volume, radius):
    lib = _build(
        tmp_path,
        f"median{radius}",
        smoothing._MEDIAN_SOURCE.replace("__RADIUS__", str(radius)),
        _launcher("median_forgetful", "const float* u, float* out, int nz, int ny, int nx", "u, out, nz, ny, nx"),
    )
    out = np.empty_like(volume)
    nz, ny, nx = volume.shape
    lib.run_median_forgetful(ctypes.c_longlong(volume.size), _ptr(volume), _ptr(out), nz, ny, nx)
    expected = sitk.GetArrayFromImage(sitk.Median(_sitk(volume), [radius] * 3))
    np.testing.assert_array_equal(out, expected)


def test_bilateral_kernel_equals_its_twin_and_simpleitk(tmp_path, volume):
    domain_sigma, range_sigma = 1.5, 30.0
    spacing_kji = SPACING[::-1]
    radius, domain, table, dynamic = smoothing.bilateral_weights(spacing_kji, domain_sigma, range_sigma)
    lib = _build(
        tmp_path,
        "bilateral",
        smoothing._BILATERAL_SOURCE,
        _launcher(
            "bilateral",
            "const float* u, float* out, const double* domain, const double* table, int nz, int ny, int nx, "
            "int rz, int ry, int rx, double dynamic, double to_index, int samples",
            "u, out, domain, table, nz, ny, nx, rz, ry, rx, dynamic, to_index, samples",
        ),
    )
    out = np.empty_like(volume)
    nz, ny, nx = volume.shape
    domain = np.ascontiguousarray(np.ravel(domain), np.float64)
    table = np.ascontiguousarray(table, np.float64)
    lib.run_bilateral(
        ctypes.c_longlong(volume.size),
        _ptr(volume),
        _ptr(out),
        _ptr(domain),
        _ptr(table),
        nz,
        ny,
        nx,
        *(int(r) for r in radius),
        ctypes.c_double(dynamic),
        ctypes.c_double(smoothing.RANGE_SAMPLES / dynamic),
        smoothing.RANGE_SAMPLES,
    )
    twin = smoothing._bilateral_cpu_numpy(volume, spacing_kji, domain_sigma, range_sigma)
    reference = sitk.GetArrayFromImage(sitk.Bilateral(_sitk(volume), domain_sigma, range_sigma))
    span = float(np.ptp(volume))
    assert np.abs(out - twin).max() <= 1e-4 * span  # the documented GPU vs CPU tolerance
    assert np.abs(out - reference).max() <= 1e-4 * span


@pytest.mark.parametrize(("curvature", "name"), [(0, "gradient_diffusion"), (1, "curvature_diffusion")])
def test_diffusion_kernels_equal_their_twin_and_simpleitk(tmp_path, volume, curvature, name):
    lib = _build(
        tmp_path,
        f"diffusion{curvature}",
        diffusion._KERNEL_SOURCE,
        _launcher(
            "diffusion_step",
            "const float* u, float* out, int nz, int ny, int nx, float sx, float sy, float sz, float K, float dt, "
            "int curvature",
            "u, out, nz, ny, nx, sx, sy, sz, K, dt, curvature",
        )
        + _launcher(
            "grad_sq",
            "const float* u, float* out, int nz, int ny, int nx, float sx, float sy, float sz",
            "u, out, nz, ny, nx, sx, sy, sz",
        ),
    )
    handle = ctypes.c_void_p
    lib.run_diffusion_step.argtypes = [ctypes.c_longlong, handle, handle] + [ctypes.c_int] * 3 + [ctypes.c_float] * 5
    lib.run_diffusion_step.argtypes += [ctypes.c_int]
    lib.run_grad_sq.argtypes = [ctypes.c_longlong, handle, handle] + [ctypes.c_int] * 3 + [ctypes.c_float] * 3
    time_step, conductance, iterations = 0.04, 2.0, 5
    nz, ny, nx = volume.shape
    # the kernels take the inverse spacing along x (i), y (j), z (k)
    sx, sy, sz = (np.float32(1.0 / s) for s in SPACING)
    u, nxt, grad = volume.copy(), np.empty_like(volume), np.empty_like(volume)
    for _ in range(iterations):  # the host loop of the GPU path: mean squared gradient -> K -> one step
        lib.run_grad_sq(volume.size, _ptr(u), _ptr(grad), nz, ny, nx, sx, sy, sz)
        k_value = np.float32(-2.0 * float(grad.sum(dtype=np.float64)) / volume.size * conductance * conductance)
        lib.run_diffusion_step(volume.size, _ptr(u), _ptr(nxt), nz, ny, nx, sx, sy, sz, k_value, time_step, curvature)
        u, nxt = nxt, u
    twin = apply_filter(
        Volume(volume, spacing=SPACING),
        name,
        backend="numpy",
        time_step=time_step,
        conductance=conductance,
        iterations=iterations,
    ).volume.array
    itk = sitk.CurvatureAnisotropicDiffusion if curvature else sitk.GradientAnisotropicDiffusion
    reference = sitk.GetArrayFromImage(itk(_sitk(volume), time_step, conductance, 1, iterations))
    span = float(np.ptp(volume))
    assert np.abs(u - twin).max() <= 1e-5 * span  # the documented GPU vs CPU tolerance
    assert np.abs(u - reference).max() <= 1e-4 * span  # the documented CPU vs SimpleITK tolerance
