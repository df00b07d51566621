"""N4 bias-field correction written with array operations, so that it runs on NumPy and on CuPy alike.

No GPU N4 exists publicly; this is the algorithm of ITK's ``N4BiasFieldCorrectionImageFilter``
(Tustison et al. 2010, IEEE TMI 29:1310, "N4ITK: improved N3 bias correction"), step by step, on
whatever array module ``xp`` is given:

1. ``v = log(I)`` on the mask (positive voxels of the foreground).
2. Per fitting level, up to ``iterations`` times (or until converged):

   a. **Sharpen** the log intensities: a 200-bin histogram with triangular Parzen windows, deconvolved
      with a Gaussian of FWHM 0.15 (log units) by a Wiener filter (noise 0.01) in the Fourier domain
      (the histogram zero-padded to a power of two), then the mapping ``E[u | v]`` interpolated at each
      voxel.
   b. **Fit** the residual ``v - field - sharpened`` with a cubic B-spline by one level of
      multilevel B-spline approximation (Lee, Wolberg & Shin 1997, IEEE TVCG 3:228): every voxel of
      the mask votes ``w_c z / sum(w^2)`` for its 4 x 4 x 4 control points, the lattice is the
      ``w^2``-weighted mean of the votes. The control-point lattice is **added** to the field's.
   c. **Converged** when the coefficient of variation of ``exp(old field - new field)`` over the mask
      falls below ``convergence``.

   Between levels the lattice is refined exactly (every span halved: B-spline subdivision), so the
   next level fits finer detail.
3. The field is evaluated on the full grid and divided out: ``out = I / exp(field)``.

Because a tensor-product B-spline on a regular grid is separable, every B-spline step here is three
small matrix products along the axes (``einsum``) instead of a loop over voxels and their 64 control
points; the sum of squared weights factorises the same way. That makes the GPU version a handful of
dense operations on the shrunk image.

Differences from ITK, all below the documented tolerance (``Testing/Python/test_filters_n4.py``):
float64 throughout (ITK mixes float and double), the last voxel of each axis evaluated at the end of
the last span exactly (ITK moves it in by a tiny epsilon), and ties of the histogram's running maximum
and minimum resolved as ITK's loop does (its first voxel never sets the minimum; reproduced).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

HISTOGRAM_BINS = 200
"""Histogram bins for sharpening (ITK default, Tustison 2010)."""
BIAS_FWHM = 0.15
"""Full width at half maximum of the Gaussian bias-field blur in log intensity (ITK default)."""
WIENER_NOISE = 0.01
"""Wiener filter noise for the histogram deconvolution (ITK default)."""
SPLINE_ORDER = 3
"""Cubic B-splines (ITK default)."""


def _basis(xp: Any, n: int, spans: int, dtype: Any = None) -> Any:
    """``(n, spans + 3)`` matrix of cubic B-spline weights of the ``n`` voxel centres of one axis.

    Voxel ``i`` sits at parametric ``u = i / (n - 1) * spans`` (the first and last voxel centres are the
    ends of the B-spline domain, as in ITK's BSplineScatteredDataPointSetToImageFilter).
    """
    idx = xp.arange(n, dtype=xp.float64)
    u = idx * (spans / max(n - 1, 1))
    first = xp.minimum(xp.floor(u), spans - 1).astype(xp.int64)
    t = u - first
    weights = xp.stack(
        [
            (1 - t) ** 3 / 6.0,
            (3 * t**3 - 6 * t**2 + 4) / 6.0,
            (-3 * t**3 + 3 * t**2 + 3 * t + 1) / 6.0,
            t**3 / 6.0,
        ],
        axis=1,
    )
    out = xp.zeros((n, spans + SPLINE_ORDER), dtype=xp.float64)
    rows = xp.arange(n)
    for j in range(4):
        out[rows, first + j] = weights[:, j]
    return out if dtype is None else out.astype(dtype)


def _evaluate(xp: Any, lattice: Any, bases: tuple[Any, Any, Any]) -> Any:
    """The B-spline with control points ``lattice`` (a, b, c) on the grid of ``bases`` (k, j, i)."""
    bk, bj, bi = bases
    return xp.einsum("ka,jb,ic,abc->kji", bk, bj, bi, lattice, optimize=True)


def _fit(xp: Any, residual: Any, mask: Any, bases: tuple[Any, Any, Any]) -> Any:
    """One level of multilevel B-spline approximation of ``residual`` on the mask (Lee 1997).

    ``phi = sum_c w_c^2 phi_c / sum_c w_c^2`` with ``phi_c = w_c z_c / sum_ab w_ab^2``; the weights and
    their squared sums factorise over the axes, so both sums are separable tensor contractions.
    """
    cubes, squares = [], []
    for b in bases:
        s = (b * b).sum(axis=1, keepdims=True)  # sum of squared weights of this axis, per voxel
        cubes.append(b**3 / s)
        squares.append(b * b)
    z = xp.where(mask, residual, 0.0)
    delta = xp.einsum("kji,ka,jb,ic->abc", z, *cubes, optimize=True)
    omega = xp.einsum("kji,ka,jb,ic->abc", mask.astype(xp.float64), *squares, optimize=True)
    return xp.where(omega > 0, delta / xp.where(omega > 0, omega, 1.0), 0.0)


def _refine(xp: Any, lattice: Any) -> Any:
    """The same cubic B-spline on a lattice with every span halved (exact subdivision, along each axis).

    Control point ``k`` sits at parametric position ``k - 1``; the refined points are
    ``Q[2k-1] = (P[k-1] + 6 P[k] + P[k+1]) / 8`` and ``Q[2k] = (P[k] + P[k+1]) / 2``.
    """
    for axis in range(3):
        p = xp.moveaxis(lattice, axis, 0)
        spans = p.shape[0] - SPLINE_ORDER
        q = xp.empty((2 * spans + SPLINE_ORDER,) + p.shape[1:], dtype=p.dtype)
        q[0::2] = (p[:-1] + p[1:]) / 2.0
        q[1::2] = (p[:-2] + 6.0 * p[1:-1] + p[2:]) / 8.0
        lattice = xp.moveaxis(q, 0, axis)
    return lattice


def _histogram_range(xp: Any, values: Any) -> tuple[float, float]:
    """(min, max) of the masked log intensities as ITK's sharpening loop finds them.

    Its loop updates the minimum only for voxels that do not raise the running maximum, so the first
    voxel (and every later new maximum) never counts for the minimum; reproduced here. NumPy computes
    the running maximum; CuPy has no ``maximum.accumulate`` (only add and multiply accumulate), so
    other array modules use :func:`_range_by_suffix_minima` and, where that needs too many steps,
    the host.
    """
    if xp is np:
        return _range_by_running_maximum(values)
    found = _range_by_suffix_minima(xp, values)
    if found is not None:
        return found
    return _range_by_running_maximum(np.asarray(values.get() if hasattr(values, "get") else values))


def _range_by_running_maximum(values: np.ndarray) -> tuple[float, float]:
    running = np.maximum.accumulate(values)
    raises = np.empty(values.shape, dtype=bool)
    raises[0] = True
    raises[1:] = values[1:] > running[:-1]
    rest = values[~raises]
    top = float(running[-1])
    low = float(rest.min()) if rest.size else float(np.finfo(np.float32).max)
    return min(low, top), top


def _range_by_suffix_minima(xp: Any, values: Any, max_steps: int = 8) -> tuple[float, float] | None:
    """The same (min, max) without a running maximum, in a few reductions; None after ``max_steps``.

    Let the first ``s`` voxels all raise the running maximum (each the unique minimum of what follows
    it). The minimum ``m`` of ``values[s:]`` then counts unless its only occurrence is voxel ``s``
    (which raises the maximum, being larger than every voxel before it): then ``s`` grows by one. Real
    images stop at ``s`` = 0 or 1; a sorted input would take one step per voxel, hence the cap.
    """
    top = float(values.max())
    n = int(values.size)
    for start in range(min(n, max_steps)):
        rest = values[start:]
        m = rest.min()
        if int(xp.count_nonzero(rest == m)) > 1 or int(rest.argmin()) > 0:
            return min(float(m), top), top
    if n <= max_steps:
        return top, top  # every voxel raised the running maximum: ITK's minimum stays at float max
    return None


def _sharpen(xp: Any, values: Any) -> Any:
    """Sharpened log intensities of the masked voxels ``values`` (1D), ITK's SharpenImage."""
    low, high = _histogram_range(xp, values)
    slope = (high - low) / (HISTOGRAM_BINS - 1)
    if slope <= 0:
        return values.copy()
    cidx = (values - low) / slope
    idx = xp.floor(cidx).astype(xp.int64)
    offset = cidx - idx
    exact = offset == 0
    inside = ~exact & (idx < HISTOGRAM_BINS - 1)
    hist = xp.bincount(idx[exact], minlength=HISTOGRAM_BINS).astype(xp.float64)[:HISTOGRAM_BINS]
    hist += xp.bincount(idx[inside], weights=1.0 - offset[inside], minlength=HISTOGRAM_BINS)[:HISTOGRAM_BINS]
    hist[1:] += xp.bincount(idx[inside], weights=offset[inside], minlength=HISTOGRAM_BINS)[: HISTOGRAM_BINS - 1]

    padded = int(2 ** (math.ceil(math.log2(HISTOGRAM_BINS)) + 1) + 0.5)
    shift = int(0.5 * (padded - HISTOGRAM_BINS))
    v = xp.zeros(padded, dtype=xp.float64)
    v[shift : shift + HISTOGRAM_BINS] = hist
    fwhm = BIAS_FWHM / slope
    exp_factor = 4.0 * math.log(2.0) / fwhm**2
    scale = 2.0 * math.sqrt(math.log(2.0) / math.pi) / fwhm
    n = xp.arange(padded, dtype=xp.float64)
    distance = xp.minimum(n, padded - n)  # the Gaussian wrapped around the padded axis
    gauss_f = xp.fft.fft(scale * xp.exp(-(distance**2) * exp_factor))
    wiener = xp.real(xp.conj(gauss_f) / (xp.conj(gauss_f) * gauss_f + WIENER_NOISE))
    u = xp.maximum(xp.real(xp.fft.ifft(xp.fft.fft(v) * wiener)), 0.0)
    centres = low + (n - shift) * slope
    numerator = xp.real(xp.fft.ifft(xp.fft.fft(centres * u) * gauss_f))
    denominator = xp.real(xp.fft.ifft(xp.fft.fft(u) * gauss_f))
    mapping = xp.where(denominator != 0, numerator / xp.where(denominator != 0, denominator, 1.0), 0.0)
    mapping = mapping[shift : shift + HISTOGRAM_BINS]
    last = idx >= HISTOGRAM_BINS - 1
    safe = xp.minimum(idx, HISTOGRAM_BINS - 2)
    interpolated = mapping[safe] + (mapping[safe + 1] - mapping[safe]) * (cidx - safe)
    return xp.where(last, mapping[-1], interpolated)


def n4_log_field_lattice(
    xp: Any,
    image: Any,
    mask: Any,
    *,
    iterations: int = 50,
    fitting_levels: int = 4,
    control_points: int = 4,
    convergence: float = 0.001,
    report: Callable[[float, str], None] | None = None,
) -> Any:
    """Control-point lattice (``xp`` float64 array) of the log bias field of ``image`` (k, j, i) on ``mask``.

    ``image`` is the (shrunk) image, ``mask`` a boolean array of the voxels to use (positive voxels
    only). The lattice describes the field over the image's extent, first to last voxel centre, and
    can be evaluated on any grid spanning the same extent (:func:`evaluate_lattice`).
    """
    image = xp.asarray(image, dtype=xp.float64)
    mask = xp.asarray(mask, dtype=bool)
    log_image = xp.where(mask, xp.log(xp.where(mask, image, 1.0)), 0.0)
    spans = max(1, int(control_points) - SPLINE_ORDER)
    lattice = xp.zeros((spans + SPLINE_ORDER,) * 3, dtype=xp.float64)
    field = xp.zeros(image.shape, dtype=xp.float64)
    total = max(1, int(iterations) * int(fitting_levels))
    done = 0
    for level in range(int(fitting_levels)):
        bases = tuple(_basis(xp, n, lattice.shape[a] - SPLINE_ORDER) for a, n in enumerate(image.shape))
        measure = math.inf
        step = 0
        while step < int(iterations) and measure > float(convergence):
            step += 1
            uncorrected = log_image - field
            values = uncorrected[mask]
            sharpened = xp.zeros(image.shape, dtype=xp.float64)
            sharpened[mask] = _sharpen(xp, values)
            lattice = lattice + _fit(xp, uncorrected - sharpened, mask, bases)
            new_field = _evaluate(xp, lattice, bases)
            ratio = xp.exp((field - new_field)[mask])
            measure = float(ratio.std(ddof=1) / ratio.mean()) if ratio.size > 1 else 0.0
            field = new_field
            done += 1
            if report is not None:
                report(done / total, f"N4 level {level + 1}/{fitting_levels}, iteration {step}")
        if level < int(fitting_levels) - 1:
            lattice = _refine(xp, lattice)  # exact: the field on the grid is unchanged
    return lattice


def evaluate_lattice(xp: Any, lattice: Any, shape: tuple[int, int, int], dtype: Any = None) -> Any:
    """The log bias field of ``lattice`` on a grid of ``shape`` (k, j, i) spanning the same extent.

    The grid's first and last voxel centres are mapped to the ends of the lattice's domain, as ITK's
    ``GetLogBiasFieldAsImage`` does for the full-resolution image. ``dtype`` (default float64) is the
    precision of the result (float32 halves the memory of a full-resolution field).
    """
    dtype = xp.float64 if dtype is None else dtype
    bases = tuple(_basis(xp, n, lattice.shape[a] - SPLINE_ORDER, dtype) for a, n in enumerate(shape))
    return _evaluate(xp, lattice.astype(dtype), bases)
