"""GPU parity: every GPU filter against its CPU twin (needs CuPy and a working CUDA device).

Skipped with the reason when ``select_backend("auto")`` does not pick CuPy. The tolerances are the
ones documented in each filter module (``FILTERS[name].tolerance``).
"""

from __future__ import annotations

import numpy as np
import pytest

from lumbarspine import filters as F
from lumbarspine.backend import select_backend
from lumbarspine.volume import Volume

_BACKEND = select_backend("auto")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(_BACKEND.name != "cupy", reason=f"needs a working CUDA device with CuPy: {_BACKEND.reason}"),
]


def _volume(seed=0, shape=(24, 40, 48), dtype=np.float32) -> Volume:
    rng = np.random.default_rng(seed)
    a = rng.normal(100.0, 20.0, size=shape)
    k, j, i = np.indices(shape)
    a += 80.0 * (((i - 24) / 14.0) ** 2 + ((j - 20) / 10.0) ** 2 + ((k - 12) / 8.0) ** 2 < 1.0)
    th = 0.35
    d = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, -1.0]])
    return Volume(a.astype(dtype), spacing=(0.7, 0.9, 3.0), origin=(5.0, -3.0, 2.0), direction=d)


def _mask() -> Volume:
    import scipy.ndimage as ndi

    v = _volume()
    m = ndi.gaussian_filter(np.random.default_rng(3).normal(size=v.shape), 2) > 0.05
    return v.with_array(m.astype(np.uint8), is_label=True)


CASES = [
    ("gaussian", {"sigma": 1.0}, 1e-5),
    ("gaussian", {"sigma": 3.0}, 1e-5),
    ("median", {"radius": 1}, 0.0),
    ("median", {"radius": 2}, 0.0),
    ("median", {"radius": 3}, 0.0),
    ("gradient_diffusion", {"time_step": 0.04, "conductance": 2.0, "iterations": 5}, 1e-5),
    ("curvature_diffusion", {"time_step": 0.04, "conductance": 2.0, "iterations": 5}, 1e-5),
    ("bilateral", {"domain_sigma": 1.5, "range_sigma": 30.0}, 1e-4),
    ("zscore", {}, 1e-6),
    ("zscore", {"foreground": "otsu"}, 1e-6),
    ("rescale_percentile", {"lower": 1.0, "upper": 99.0}, 1e-6),
    ("clip", {"lower": 80.0, "upper": 150.0}, 0.0),
    ("threshold", {"lower": 90.0, "upper": 200.0}, 0.0),
    ("otsu", {}, 0.0),
    ("resample", {"spacing": 1.0, "interpolation": "linear"}, 1e-4),
    ("resample", {"spacing": (0.5, 2.0, 1.0), "interpolation": "bspline"}, 1e-4),
    ("resample", {"spacing": 2.0, "interpolation": "linear", "antialias": True}, 1e-4),
    ("n4", {"shrink_factor": 2, "iterations": 5, "fitting_levels": 2}, 1e-5),
    ("n4", {}, 1e-5),
]


@pytest.mark.parametrize("name,params,tol", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_gpu_matches_cpu(name, params, tol):
    v = _volume()
    before = v.array.copy()
    gpu = F.apply_filter(v, name, backend="cupy", **params)
    cpu = F.apply_filter(v, name, backend="numpy", **params)
    assert gpu.backend == "cupy" and isinstance(gpu.volume.array, np.ndarray)
    assert np.array_equal(v.array, before)
    assert gpu.volume.same_geometry(cpu.volume, atol=1e-12)
    assert gpu.volume.array.dtype == cpu.volume.array.dtype
    diff = np.abs(gpu.volume.array.astype(np.float64) - cpu.volume.array)
    assert diff.max() <= tol * float(np.ptp(v.array)), f"{name}: max diff {diff.max()}"


@pytest.mark.parametrize(
    "name,params",
    [
        ("binary_morphology", {"operation": "dilate", "radius": 2.0}),
        ("binary_morphology", {"operation": "erode", "radius": 1, "radius_unit": "voxels"}),
        ("binary_morphology", {"operation": "open", "radius": 1, "radius_unit": "voxels"}),
        ("binary_morphology", {"operation": "close", "radius": 2, "radius_unit": "voxels"}),
        ("binary_morphology", {"operation": "dilate", "radius": 6.0}),  # distance-transform path
        ("binary_morphology", {"operation": "close", "radius": 8.0}),  # distance-transform path, padded
        ("resample", {"spacing": 1.0, "interpolation": "nearest"}),
        ("resample", {"spacing": (0.5, 2.0, 1.0), "interpolation": "label_linear"}),
        ("fill_holes", {}),
        ("connected_components", {"connectivity": 26, "min_size": 3}),
        ("distance_map", {"signed": True}),
        ("distance_map", {"signed": False}),
    ],
)
def test_gpu_mask_filters_match_cpu(name, params):
    m = _mask()
    gpu = F.apply_filter(m, name, backend="cupy", **params).volume.array
    cpu = F.apply_filter(m, name, backend="numpy", **params).volume.array
    assert gpu.dtype == cpu.dtype
    assert np.abs(gpu.astype(np.float64) - cpu).max() <= 1e-4


@pytest.mark.parametrize("preset", sorted(F.PRESETS))
def test_gpu_presets_match_cpu(preset):
    v = _volume(dtype=np.float32)
    gpu = F.apply_preset(v, preset, backend="cupy")
    cpu = F.apply_preset(v, preset, backend="numpy")
    assert gpu.backend == "cupy"
    assert np.abs(gpu.volume.array - cpu.volume.array).max() <= 1e-3 * float(np.ptp(cpu.volume.array))


def test_int16_pipeline_uploads_int16():
    v = Volume(np.random.default_rng(4).integers(-1000, 3000, (16, 64, 64)).astype(np.int16))
    gpu = F.apply_preset(v, "ct-bone", backend="cupy").volume.array
    cpu = F.apply_preset(v, "ct-bone", backend="numpy").volume.array
    assert np.abs(gpu - cpu).max() <= 1e-5 * float(np.ptp(cpu))


@pytest.mark.parametrize(
    "name,params",
    [
        ("gaussian", {"sigma": 3.0}),
        ("median", {"radius": 2}),
        ("bilateral", {"domain_sigma": 1.5, "range_sigma": 30.0}),
        ("clip", {"lower": 80.0, "upper": 150.0}),
        ("binary_morphology", {"operation": "close", "radius": 2.0}),
        ("binary_morphology", {"operation": "open", "radius": 6.0}),
    ],
)
def test_gpu_slabs_equal_the_whole_volume_on_the_device(monkeypatch, name, params):
    """Volumes larger than free GPU memory run in overlapping slabs (forced small here): same result."""
    from lumbarspine.filters.slabs import SLAB_ENV

    v = _mask() if name == "binary_morphology" else _volume()
    whole = F.apply_filter(v, name, backend="cupy", **params)
    monkeypatch.setenv(SLAB_ENV, "5")
    slabbed = F.apply_filter(v, name, backend="cupy", **params)
    assert slabbed.backend == "cupy" and "slabs of 5 slices" in slabbed.message
    np.testing.assert_array_equal(slabbed.volume.array, whole.volume.array)
    assert slabbed.volume.same_geometry(whole.volume, atol=1e-12)
