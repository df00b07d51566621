"""Non-local means denoising in 3D (scikit-image ``denoise_nl_means``, fast mode, on the CPU for every backend).

``nlmeans`` calls ``skimage.restoration.denoise_nl_means(a, patch_size, patch_distance, h=h * sigma,
fast_mode=True, sigma=sigma, preserve_range=True)`` on the float32 volume ``a``:

* ``patch_size`` / ``patch_distance`` are in **voxels** (cubic patches of ``patch_size`` voxels, searched
  within ``+-patch_distance`` voxels along every axis). scikit-image does **not** weight by the spacing:
  on an anisotropic grid (e.g. 0.6 x 0.6 x 4 mm) the patch and the search window are cubes in voxels,
  hence longer in mm along the coarse axis. Edges of the volume are reflected.
* ``h`` is a **multiple of the noise standard deviation** ``sigma`` (the cut-off passed to scikit-image is
  ``h * sigma`` in intensity units; 0.6-1.0 is typical, larger smooths more).
* ``sigma`` is the noise standard deviation in intensity units; ``0`` estimates it with
  :func:`estimate_noise_sigma`, the same estimator as ``skimage.restoration.estimate_sigma`` (median absolute
  finest-scale 3D ``db2`` wavelet detail coefficient / 0.6745, zeros ignored) written in NumPy in float64
  so PyWavelets is not needed. It equals ``estimate_sigma`` of the float64 volume (to 1e-12 relative in the
  tests) except that coefficients below ``1e-12 x max|volume|`` also count as zeros: they are the rounding
  residue of constant non-zero regions (e.g. CT air clipped to -1024 HU), which ``estimate_sigma`` counts
  as noise-free samples and so underestimates sigma (by 2x on a volume one third clipped). It reads ~5 %
  low on small volumes, as ``estimate_sigma`` does (symmetric extension at the borders). As in scikit-image's
  fast mode, ``2 sigma^2`` is subtracted from the patch distances. A volume whose estimated noise is 0
  is returned unchanged.

Backends: neither CuPy nor cuCIM has a 3D non-local means, and a CUDA port of scikit-image's fast-mode
algorithm (integral images of shifted differences) could not be tested here, so this filter is
**host-only: it runs on the CPU on every backend** (a GPU pipeline downloads before it and
``apply_filter``'s message says so). CPU == scikit-image exactly (same float32 input, same call).
Output float32, geometry preserved, input never modified. It is one monolithic scikit-image call:
cancel is honoured before and after it only. Cost grows with ``patch_distance^3 x voxels``:
about 5 s for 320 x 320 x 15 with the defaults (patch 5, distance 3) on 2 cores.
"""

from __future__ import annotations

import numpy as np

from ..volume import Volume
from ._core import RunContext, host_array, slab_map
from .enhance import import_skimage_function

# Daubechies-2 decomposition high-pass filter (pywt.Wavelet("db2").dec_hi).
_DB2_DEC_HI = np.array([-0.48296291314453416, 0.8365163037378079, -0.2241438680420134, -0.12940952255126037])
_GAUSS_Q75 = 0.6744897501960817  # scipy.stats.norm.ppf(0.75)


def _db2_detail(a: np.ndarray, axis: int) -> np.ndarray:
    """One-level db2 detail coefficients along ``axis`` (pywt ``mode="symmetric"``; length (n + 3) // 2)."""
    n = a.shape[axis]
    n_out = (n + 3) // 2
    pad = [(0, 0)] * a.ndim
    pad[axis] = (3, 3)
    ext = np.pad(a, pad, mode="symmetric")
    out = np.zeros(a.shape[:axis] + (n_out,) + a.shape[axis + 1 :], dtype=np.float64)
    for j, h in enumerate(_DB2_DEC_HI):
        sl = [slice(None)] * a.ndim
        sl[axis] = slice(4 - j, 4 - j + 2 * n_out - 1, 2)
        out += h * ext[tuple(sl)]
    return out


def estimate_noise_sigma(array: np.ndarray) -> float:
    """Robust (Donoho) noise standard deviation of a 3D array, as ``skimage.restoration.estimate_sigma``."""
    d = np.asarray(array, dtype=np.float64)
    scale = float(np.abs(d).max()) if d.size else 0.0
    for axis in range(d.ndim):
        d = _db2_detail(d, axis)
    d = d[np.abs(d) > 1e-12 * scale]  # exact zeros and the rounding residue of constant regions
    if d.size == 0:
        return 0.0
    return float(np.median(np.abs(d)) / _GAUSS_Q75)


def nlmeans_impl(
    volume: Volume,
    ctx: RunContext,
    *,
    patch_size: int = 5,
    patch_distance: int = 3,
    h: float = 0.8,
    sigma: float = 0.0,
) -> Volume:
    denoise_nl_means = import_skimage_function("restoration", "denoise_nl_means", "nlmeans")
    a = np.ascontiguousarray(host_array(volume), dtype=np.float32)
    ctx.report(0.0, "non-local means")
    sig = float(sigma) if sigma > 0 else estimate_noise_sigma(a)
    if sig <= 0.0:
        out = a.copy()
    else:

        def denoise(s: np.ndarray) -> np.ndarray:
            return denoise_nl_means(
                s,
                patch_size=int(patch_size),
                patch_distance=int(patch_distance),
                h=float(h) * sig,
                fast_mode=True,
                sigma=sig,
                preserve_range=True,
            )

        # Slab by slab: a voxel depends on voxels at most patch_distance + patch_size // 2 away, so this halo
        # gives one call's values up to float32 rounding (tested), with progress and Cancel per slab. Thick
        # slabs keep the halo's extra work small (about +13 % on one core for the T2 scan, see
        # scripts/benchmarks/desktop-*.md).
        halo = int(patch_distance) + int(patch_size) // 2 + 1
        out = slab_map(denoise, a, halo, slab=max(48, 8 * halo), ctx=ctx, what="non-local means")
    ctx.report(1.0, "non-local means")
    return volume.with_array(out)
