"""Slab-wise runs of local filters: volumes larger than free GPU memory, processed in overlapping slabs.

A *local* filter's output voxel depends only on input voxels at most its **reach** away (in voxels
along each array axis). Cutting the volume along the slice axis (array axis 0, k) into slabs, giving
each slab a halo of the chain's total reach on both sides, running the chain on the slab and keeping
only its interior gives exactly the whole-volume result: every kept voxel sees the same inputs and
the same arithmetic, and the true volume edges are treated as before because a slab that touches an
edge keeps it. Tested on the CPU by forcing small slabs (:data:`SLAB_ENV`), and on the GPU by the
parity tests in ``Testing/Python/test_filters_gpu.py``.

Which filters are local, with their reach along k (``s_k`` = slice spacing in mm):

* ``clip``, ``threshold``: 0 (voxel-wise).
* ``gaussian``: ``int(4 sigma / s_k + 0.5)`` (the kernel is truncated at 4 sigma, SciPy's and CuPy's radius).
* ``median``: ``radius``.
* ``bilateral``: ``ceil(2.5 domain_sigma / s_k)`` (ITK's kernel radius, :data:`~.smoothing.DOMAIN_MU`).
* ``binary_morphology``: the element's half size along k (dense element), or its semi-axis rounded up
  plus one voxel (distance-transform path); doubled for ``open`` and ``close``.

The others need the whole volume at once and are never cut: ``zscore``, ``rescale_percentile`` and
``otsu`` (statistics of the whole volume), ``gradient_diffusion`` / ``curvature_diffusion`` (ITK's
conductance is scaled by the mean gradient of the whole volume at every iteration), ``fill_holes``,
``connected_components`` and ``distance_map`` (unbounded reach), ``resample`` (another grid) and the
host-only ``n4``, ``clahe``, ``nlmeans``. A GPU run of those that does not fit still reruns on the CPU
(:func:`lumbarspine.backend.run_with_cpu_fallback`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend import Backend
from ..volume import Volume
from ._core import RunContext, download
from .morphology import element_shape
from .smoothing import DOMAIN_MU, GAUSSIAN_TRUNCATE

SLAB_ENV = "LUMBARSPINE_SLAB_SLICES"
"""Environment variable forcing slab-wise runs of local filters with this many slices per slab, on any backend."""

GPU_MEMORY_SHARE = 0.8
"""Share of the free device memory a slab may plan to use (the rest is left to CuPy's pool and the driver)."""


@dataclass(frozen=True)
class SlabPlan:
    """How a volume is cut: ``slices`` per slab along k, ``halo`` slices of overlap on each side."""

    slices: int
    halo: int

    def bounds(self, nk: int) -> list[tuple[int, int, int, int]]:
        """Per slab ``(start, stop, lo, hi)``: the kept slices ``[start, stop)`` and the read slices ``[lo, hi)``."""
        return [
            (a, min(a + self.slices, nk), max(0, a - self.halo), min(nk, a + self.slices + self.halo))
            for a in range(0, nk, self.slices)
        ]


def step_reach(name: str, params: dict[str, Any], spacing_ijk: Sequence[float]) -> int | None:
    """Reach (voxels along array axis 0, k) of one filter step, or None when it needs the whole volume."""
    s_k = float(spacing_ijk[2])
    if name in ("clip", "threshold"):
        return 0
    if name == "gaussian":
        return int(GAUSSIAN_TRUNCATE * float(params.get("sigma", 1.0)) / s_k + 0.5)
    if name == "median":
        return int(params.get("radius", 1))
    if name == "bilateral":
        return int(math.ceil(DOMAIN_MU * float(params.get("domain_sigma", 1.0)) / s_k))
    if name == "binary_morphology":
        radius, unit = float(params.get("radius", 1.0)), params.get("radius_unit", "mm")
        half = element_shape(tuple(spacing_ijk)[::-1], radius, unit)[0] // 2 + 1  # +1: the EDT path's ties
        return 2 * half if params.get("operation", "dilate") in ("open", "close") else half
    return None


def chain_reach(steps: Sequence[tuple[Any, dict[str, Any]]], spacing_ijk: Sequence[float]) -> int | None:
    """Total reach of a chain of ``(FilterInfo, params)`` steps (the halo a slab needs), or None."""
    total = 0
    for info, params in steps:
        reach = None if info.host_only else step_reach(info.name, params, spacing_ijk)
        if reach is None:
            return None
        total += reach
    return total


def forced_slab_slices() -> int | None:
    """Slices per slab forced by :data:`SLAB_ENV`, or None (a bad value is a ValueError saying what to set)."""
    text = os.environ.get(SLAB_ENV, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{SLAB_ENV}={text!r} is not a number of slices; set a whole number >= 1, or unset it.")
    return int(text)


def device_free_bytes(backend: Backend) -> int | None:
    """Free device memory in bytes (driver free plus CuPy's pooled free blocks); None on the CPU."""
    if not backend.is_gpu:
        return None
    cp = backend.xp
    free, _total = cp.cuda.runtime.memGetInfo()
    return int(free) + int(cp.get_default_memory_pool().free_bytes())


def plan_slabs(
    volume: Volume, steps: Sequence[tuple[Any, dict[str, Any]]], backend: Backend, bytes_per_voxel: float
) -> SlabPlan | None:
    """The slab plan for running ``steps`` on ``volume``, or None to run the whole volume at once.

    Slabs are used when the chain is local and either :data:`SLAB_ENV` forces them, or the backend
    is a GPU whose free memory (times :data:`GPU_MEMORY_SHARE`) is less than ``bytes_per_voxel``
    times the voxel count. Then each slab plus its halo is sized to fit.
    """
    halo = chain_reach(steps, volume.spacing)
    if halo is None:
        return None
    forced = forced_slab_slices()
    if forced is not None:
        return SlabPlan(forced, halo)
    free = device_free_bytes(backend)
    if free is None:
        return None
    nk = volume.shape[0]
    plane = float(volume.shape[1] * volume.shape[2])
    budget = GPU_MEMORY_SHARE * free
    if bytes_per_voxel * plane * nk <= budget:
        return None
    slices = int(budget // (bytes_per_voxel * plane)) - 2 * halo
    return SlabPlan(max(1, slices), halo)


def _slab_volume(volume: Volume, host: np.ndarray, lo: int, hi: int) -> Volume:
    """Slices ``[lo, hi)`` of the volume as a Volume on their own grid (origin moved along k)."""
    origin = np.asarray(volume.origin, float) + np.asarray(volume.direction, float)[:, 2] * volume.spacing[2] * lo
    return Volume(
        host[lo:hi],
        spacing=volume.spacing,
        origin=tuple(float(v) for v in origin),
        direction=volume.direction,
        is_label=volume.is_label,
        name=volume.name,
    )


def run_in_slabs(
    volume: Volume,
    plan: SlabPlan,
    ctx: RunContext,
    run_chain: Callable[[Volume, RunContext], Volume],
) -> Volume:
    """Run ``run_chain(slab_volume, ctx)`` slab by slab (host array in, host array out) and join the interiors.

    ``run_chain`` uploads the slab to ``ctx.backend``, processes it and returns it (on the host or
    the device); its kept slices are copied into the output, so the device holds one slab at a time. Progress is reported per slab and Cancel is
    honoured between slabs.
    """
    host = np.asarray(volume.array)
    bounds = plan.bounds(volume.shape[0])
    out: np.ndarray | None = None
    is_label = volume.is_label
    for n, (start, stop, lo, hi) in enumerate(bounds):
        sub_ctx = ctx.sub(n / len(bounds), (n + 1) / len(bounds))
        sub_ctx.report(0.0, f"slab {n + 1}/{len(bounds)} (slices {start}-{stop - 1}, halo {plan.halo})")
        result = run_chain(_slab_volume(volume, host, lo, hi), sub_ctx)
        kept = download(ctx.backend, result.array)[start - lo : stop - lo]
        if out is None:
            out = np.empty((volume.shape[0],) + kept.shape[1:], dtype=kept.dtype)
            is_label = result.is_label
        out[start:stop] = kept
        del result
    assert out is not None  # a volume has at least one slice
    return volume.with_array(out, is_label=is_label)
