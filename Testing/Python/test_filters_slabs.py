"""Slab-wise runs of local filters (lumbarspine.filters.slabs): identical to the whole-volume run.

Forced on the CPU with ``LUMBARSPINE_SLAB_SLICES`` (the GPU takes the same path when a volume does not fit
in free device memory; ``test_filters_gpu.py`` repeats these cases on the device). Geometry is oblique,
left-handed and anisotropic (2.3 mm slices), so the halo is converted from mm with the slice spacing.
"""

from __future__ import annotations

import numpy as np
import pytest

from lumbarspine.backend import select_backend
from lumbarspine.filters import apply_filter, apply_preset
from lumbarspine.filters._core import RunContext
from lumbarspine.filters.registry import get_filter
from lumbarspine.filters.slabs import SLAB_ENV, SlabPlan, chain_reach, plan_slabs, run_in_slabs
from lumbarspine.volume import Volume

LOCAL_CASES = [
    ("gaussian", {"sigma": 3.0}),
    ("median", {"radius": 2}),
    ("bilateral", {"domain_sigma": 2.0, "range_sigma": 40.0}),
    ("clip", {"lower": -50.0, "upper": 50.0}),
    ("threshold", {"lower": 0.0}),
    ("binary_morphology", {"operation": "close", "radius": 2.5}),
    ("binary_morphology", {"operation": "open", "radius": 6.0}),  # distance-transform path
    ("binary_morphology", {"operation": "erode", "radius": 3, "radius_unit": "voxels"}),
    ("binary_morphology", {"operation": "dilate", "radius": 1.0}),
]


def _volume(dtype=np.float32) -> Volume:
    rng = np.random.default_rng(0)
    a = rng.normal(0.0, 100.0, size=(23, 30, 28))
    q = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    if np.linalg.det(q) > 0:
        q[:, 0] *= -1.0  # left-handed
    return Volume(a.astype(dtype), spacing=(0.7, 0.9, 2.3), origin=(5.0, -6.0, 7.0), direction=q)


def _input(name: str, dtype=np.float32) -> Volume:
    v = _volume(dtype)
    if name == "binary_morphology":
        return v.with_array((np.asarray(v.array) > 60).astype(np.uint8), is_label=True)
    return v


@pytest.mark.parametrize("dtype", [np.float32, np.int16])
@pytest.mark.parametrize(
    ("name", "params"), LOCAL_CASES, ids=[f"{n}-{'-'.join(map(str, p.values()))}" for n, p in LOCAL_CASES]
)
def test_local_filter_in_slabs_equals_whole_volume(monkeypatch, name, params, dtype):
    volume = _input(name, dtype)
    before = np.array(volume.array, copy=True)
    whole = apply_filter(volume, name, backend="numpy", **params)
    assert "slabs" not in whole.message
    for slices in (1, 4):
        monkeypatch.setenv(SLAB_ENV, str(slices))
        slabbed = apply_filter(volume, name, backend="numpy", **params)
        assert f"slabs of {slices} slices" in slabbed.message
        np.testing.assert_array_equal(slabbed.volume.array, whole.volume.array)
        assert slabbed.volume.array.dtype == whole.volume.array.dtype
        assert slabbed.volume.same_geometry(whole.volume) and slabbed.volume.is_label == whole.volume.is_label
    np.testing.assert_array_equal(volume.array, before)  # input untouched


def test_a_local_preset_in_slabs_equals_whole_volume(monkeypatch):
    volume = _volume(np.int16)
    whole = apply_preset(volume, "ct-bone", backend="numpy")
    monkeypatch.setenv(SLAB_ENV, "3")
    slabbed = apply_preset(volume, "ct-bone", backend="numpy")
    assert "slabs of 3 slices (halo " in slabbed.message
    np.testing.assert_array_equal(slabbed.volume.array, whole.volume.array)


@pytest.mark.parametrize(
    ("name", "params"),
    [("zscore", {}), ("gradient_diffusion", {"iterations": 2}), ("connected_components", {}), ("otsu", {})],
)
def test_filters_that_need_the_whole_volume_are_never_cut(monkeypatch, name, params):
    volume = _volume()
    monkeypatch.setenv(SLAB_ENV, "2")
    result = apply_filter(volume, name, backend="numpy", **params)
    assert "slabs" not in result.message
    assert chain_reach([(get_filter(name), params)], volume.spacing) is None


def test_the_halo_is_what_makes_slabs_exact():
    """A slab run without the halo differs from the whole volume: the test above would catch a short halo."""
    volume = _volume()
    info = get_filter("gaussian")
    steps = [(info, {"sigma": 3.0})]
    halo = chain_reach(steps, volume.spacing)
    assert halo == int(4 * 3.0 / 2.3 + 0.5)  # 4 sigma truncation, in 2.3 mm slices
    whole = apply_filter(volume, "gaussian", backend="numpy", sigma=3.0).volume.array
    ctx = RunContext(select_backend("numpy"))

    def run(piece, sub):
        return info.impl(piece, sub, sigma=3.0)

    exact = run_in_slabs(volume, SlabPlan(4, halo), ctx, run).array
    short = run_in_slabs(volume, SlabPlan(4, halo - 2), ctx, run).array
    np.testing.assert_array_equal(exact, whole)
    assert not np.array_equal(short, whole)


def test_plan_bounds_cover_every_slice_once():
    for nk, slices, halo in [(23, 4, 5), (1, 3, 2), (10, 10, 0), (7, 1, 3)]:
        bounds = SlabPlan(slices, halo).bounds(nk)
        kept = [k for start, stop, _, _ in bounds for k in range(start, stop)]
        assert kept == list(range(nk))
        for start, stop, lo, hi in bounds:
            assert lo == max(0, start - halo) and hi == min(nk, stop + halo)


def test_no_slabs_on_the_cpu_unless_forced_and_bad_setting_is_explained(monkeypatch):
    volume = _volume()
    steps = [(get_filter("median"), {"radius": 1})]
    monkeypatch.delenv(SLAB_ENV, raising=False)
    assert plan_slabs(volume, steps, select_backend("numpy"), 16.0) is None
    monkeypatch.setenv(SLAB_ENV, "zero")
    with pytest.raises(ValueError, match=f"{SLAB_ENV}='zero' is not a number of slices"):
        apply_filter(volume, "median", backend="numpy", radius=1)


def test_slabs_are_sized_to_free_device_memory(monkeypatch):
    """The GPU path: when the chain's working memory exceeds the free device memory, slabs that fit are used."""
    import lumbarspine.filters.slabs as slabs

    volume = _volume()
    steps = [(get_filter("gaussian"), {"sigma": 1.0})]
    plane = volume.shape[1] * volume.shape[2]
    monkeypatch.delenv(SLAB_ENV, raising=False)
    monkeypatch.setattr(slabs, "device_free_bytes", lambda backend: 10**9)
    assert plan_slabs(volume, steps, select_backend("numpy"), 12.0) is None  # fits: whole volume
    free = int(12 * plane * 8 / slabs.GPU_MEMORY_SHARE)  # room for 8 slices of 12 bytes per voxel
    monkeypatch.setattr(slabs, "device_free_bytes", lambda backend: free)
    plan = plan_slabs(volume, steps, select_backend("numpy"), 12.0)
    assert plan == SlabPlan(8 - 2 * plan.halo, plan.halo) and plan.halo == 2
    slabbed = apply_filter(volume, "gaussian", backend="numpy", sigma=1.0)
    assert f"slabs of {plan.slices} slices (halo 2)" in slabbed.message
    monkeypatch.setattr(slabs, "device_free_bytes", lambda backend: 10**9)
    whole = apply_filter(volume, "gaussian", backend="numpy", sigma=1.0)
    assert "slabs" not in whole.message
    np.testing.assert_array_equal(slabbed.volume.array, whole.volume.array)
