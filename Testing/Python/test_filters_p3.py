"""P3 filters: 3D CLAHE and non-local means against scikit-image, plus GPU parity (skipped without CUDA)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

skimage_exposure = pytest.importorskip("skimage.exposure")
skimage_restoration = pytest.importorskip("skimage.restoration")

from lumbarspine import filters as F  # noqa: E402
from lumbarspine.backend import select_backend  # noqa: E402
from lumbarspine.filters.denoise import estimate_noise_sigma  # noqa: E402
from lumbarspine.filters.enhance import clahe_kernel_voxels  # noqa: E402
from lumbarspine.volume import Volume  # noqa: E402

from geometry_cases import GEOMETRIES  # noqa: E402

CASES = ["axial-ras", "oblique-aniso", "oblique-lefthanded"]


def _image(seed: int = 0, shape=(10, 30, 34), dtype=np.float32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    k, j, i = np.indices(shape)
    a = 100.0 + 80.0 * (((i - 17) / 9.0) ** 2 + ((j - 15) / 8.0) ** 2 + ((k - 5) / 3.0) ** 2 < 1.0)
    a = a + 30.0 * (i > 26) + rng.normal(0.0, 10.0, size=shape)
    return a.astype(dtype)


@pytest.fixture(params=CASES)
def vol(request) -> Volume:
    spacing, origin, direction = GEOMETRIES[request.param]
    return Volume(_image(), spacing, origin, direction, name=request.param)


def _run(vol: Volume, name: str, backend: str = "numpy", **params) -> F.FilterResult:
    before = vol.array.copy()
    res = F.apply_filter(vol, name, backend=backend, **params)
    assert np.array_equal(vol.array, before), "the input was modified"
    assert res.volume.same_geometry(vol, atol=1e-12)
    assert np.array_equal(res.volume.direction, vol.direction)
    assert res.volume.array.dtype == np.float32 and res.volume.shape == vol.shape
    assert name in res.message
    return res


def _unit(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    return (a - a.min()) / (a.max() - a.min())


# ----------------------------------------------------------------------------------------- CLAHE
def test_clahe_kernel_mm_to_voxels():
    # spacing (i, j, k) = (0.7, 0.9, 3.0) mm; array axes are (k, j, i)
    assert clahe_kernel_voxels((10, 30, 34), (0.7, 0.9, 3.0), 12.0) == (4, 13, 17)
    assert clahe_kernel_voxels((10, 30, 34), (0.7, 0.9, 3.0), 1000.0) == (10, 30, 34)  # capped at the axis
    assert clahe_kernel_voxels((10, 30, 34), (0.7, 0.9, 3.0), 0.1) == (1, 1, 1)
    assert clahe_kernel_voxels((10, 30, 34), (1.0, 1.0, 1.0), 0.0) is None


@pytest.mark.parametrize("params", [{}, {"kernel_size": 12.0, "clip_limit": 0.02, "nbins": 128}, {"clip_limit": 0.0}])
def test_clahe_equals_skimage(vol, params):
    out = _run(vol, "clahe", **params).volume.array
    p = {**F.FILTERS["clahe"].defaults(), **params}
    kernel = clahe_kernel_voxels(vol.shape, vol.spacing, p["kernel_size"])
    ref = skimage_exposure.equalize_adapthist(
        _unit(vol.array), kernel_size=kernel, clip_limit=p["clip_limit"], nbins=p["nbins"]
    )
    assert np.array_equal(out, ref.astype(np.float32))
    assert out.min() == 0.0 and out.max() == 1.0


def test_clahe_int16_input_and_constant_volume():
    v = Volume((_image() * 10).astype(np.int16), spacing=(0.6, 0.6, 4.0))
    out = _run(v, "clahe", kernel_size=20.0).volume.array
    ref = skimage_exposure.equalize_adapthist(_unit(v.array), kernel_size=clahe_kernel_voxels(v.shape, v.spacing, 20))
    assert np.array_equal(out, ref.astype(np.float32))
    flat = _run(Volume(np.full((4, 9, 10), 7.0, np.float32)), "clahe").volume.array
    assert np.isfinite(flat).all() and flat.min() >= 0.0 and flat.max() <= 1.0


def test_clahe_increases_local_contrast_in_a_low_contrast_region():
    shape = (8, 48, 48)
    k, j, i = np.indices(shape)
    a = 400.0 + 30.0 * np.sin(j / 2.0) * np.sin(i / 3.0)  # faint texture on the left (3 % of the range)
    a[:, :, 24:] = 2000.0 * (((j[:, :, 24:] // 6) % 2) == 0)  # high-contrast stripes on the right
    v = Volume(a.astype(np.float32), spacing=(1.0, 1.0, 2.0))
    out = _run(v, "clahe", kernel_size=12.0, clip_limit=0.03).volume.array
    assert out.min() >= 0.0 and out.max() <= 1.0
    region = (slice(None), slice(8, 40), slice(4, 20))
    before = _unit(a)[region]
    after = out[region].astype(np.float64)
    assert np.ptp(after) > 5.0 * np.ptp(before)
    assert after.std() > 5.0 * before.std()


# ------------------------------------------------------------------------------- non-local means
def test_noise_sigma_estimate_without_pywavelets():
    # like estimate_sigma, it reads about 5 % low on small volumes (symmetric extension at the borders)
    a = np.random.default_rng(4).normal(50.0, 7.0, size=(12, 40, 40))
    assert estimate_noise_sigma(a) == pytest.approx(7.0, rel=0.15)
    assert estimate_noise_sigma(np.full((5, 6, 7), 3.0)) == 0.0
    # a constant non-zero region (CT air clipped to -1024 HU) does not bias it (estimate_sigma halves here)
    b = np.random.default_rng(8).normal(-1000.0, 7.0, size=(12, 40, 40))
    b[:, :14] = -1024.0
    assert estimate_noise_sigma(b) == pytest.approx(estimate_noise_sigma(b[:, 14:]), rel=0.05)


def test_noise_sigma_estimate_equals_skimage():
    pytest.importorskip("pywt", reason="skimage.restoration.estimate_sigma needs PyWavelets")
    rng = np.random.default_rng(5)
    for shape in [(10, 30, 34), (7, 9, 11), (2, 5, 6)]:
        a = rng.normal(100.0, 12.0, size=shape)
        a[:, :3] = 0.0  # a zero region: its exact-zero coefficients are ignored by both
        assert estimate_noise_sigma(a) == pytest.approx(skimage_restoration.estimate_sigma(a), rel=1e-12)


@pytest.mark.parametrize(
    "params", [{}, {"patch_size": 3, "patch_distance": 2, "h": 1.2}, {"sigma": 15.0, "h": 0.5, "patch_distance": 2}]
)
def test_nlmeans_equals_skimage(vol, params):
    out = _run(vol, "nlmeans", **params).volume.array
    p = {**F.FILTERS["nlmeans"].defaults(), **params}
    a = vol.array.astype(np.float32)
    sigma = p["sigma"] or estimate_noise_sigma(a)
    assert 8.0 < sigma <= 15.0  # the synthetic noise is 10
    ref = skimage_restoration.denoise_nl_means(
        a,
        patch_size=p["patch_size"],
        patch_distance=p["patch_distance"],
        h=p["h"] * sigma,
        fast_mode=True,
        sigma=sigma,
        preserve_range=True,
    )
    assert np.array_equal(out, ref.astype(np.float32))


def test_nlmeans_reduces_noise_and_keeps_a_step_edge():
    shape = (8, 36, 40)
    clean = np.full(shape, 100.0)
    clean[:, :, 20:] = 200.0
    noisy = (clean + np.random.default_rng(6).normal(0.0, 10.0, size=shape)).astype(np.float32)
    v = Volume(noisy, spacing=(0.8, 0.8, 3.0), direction=np.diag([-1.0, -1.0, 1.0]))
    out = _run(v, "nlmeans", h=1.0).volume.array.astype(np.float64)
    flat = (slice(1, -1), slice(4, -4), slice(4, 14))
    assert noisy[flat].std() > 9.0
    assert out[flat].std() < 0.4 * noisy[flat].std()
    # the step stays a one-voxel step: columns either side keep their levels
    assert abs(out[1:-1, 4:-4, 19].mean() - 100.0) < 5.0
    assert abs(out[1:-1, 4:-4, 20].mean() - 200.0) < 5.0
    assert np.abs(out - clean).mean() < 0.5 * np.abs(noisy - clean).mean()


def test_nlmeans_noise_free_volume_is_returned_unchanged():
    v = Volume(np.full((4, 8, 9), 42.0, np.float32))
    assert np.array_equal(_run(v, "nlmeans").volume.array, v.array)


# ---------------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize(
    "name,params,words",
    [
        ("clahe", {"clip_limit": 1.5}, ["clip_limit", "out of range"]),
        ("clahe", {"nbins": 1}, ["nbins", "out of range"]),
        ("clahe", {"kernel_size": -3.0}, ["kernel_size", "out of range"]),
        ("clahe", {"nbins": 2.5}, ["nbins", "integer"]),
        ("clahe", {"radius": 1}, ["Unknown parameter", "radius"]),
        ("nlmeans", {"patch_size": 0}, ["patch_size", "out of range"]),
        ("nlmeans", {"patch_distance": 50}, ["patch_distance", "out of range"]),
        ("nlmeans", {"h": 0.0}, ["'h'", "out of range"]),
        ("nlmeans", {"sigma": -1.0}, ["sigma", "out of range"]),
        ("nlmeans", {"sigma": float("nan")}, ["sigma", "NaN"]),
    ],
)
def test_bad_parameters_raise_value_error(name, params, words):
    v = Volume(_image(shape=(4, 8, 9)))
    with pytest.raises(ValueError) as err:
        F.apply_filter(v, name, backend="numpy", **params)
    for w in words:
        assert w in str(err.value)


@pytest.mark.parametrize("name", ["clahe", "nlmeans"])
def test_nan_and_flat_inputs_raise_value_error(name):
    a = _image(shape=(4, 8, 9))
    a[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        F.apply_filter(Volume(a), name, backend="numpy")
    with pytest.raises(ValueError, match="at least 2 voxels"):
        F.apply_filter(Volume(np.ones((1, 8, 9), np.float32)), name, backend="numpy")


@pytest.mark.parametrize("name,module", [("clahe", "skimage.exposure"), ("nlmeans", "skimage.restoration")])
def test_missing_scikit_image_gives_install_hint(monkeypatch, name, module):
    monkeypatch.setitem(sys.modules, module, None)  # makes the import fail
    with pytest.raises(ValueError, match="pip install scikit-image") as err:
        F.apply_filter(Volume(_image(shape=(4, 8, 9))), name, backend="numpy")
    assert "slicer.util.pip_install" in str(err.value)


@pytest.mark.parametrize("name", ["clahe", "nlmeans"])
def test_progress_cancel_and_registry(name):
    info = F.FILTERS[name]
    assert info.output == "scalar" and info.tolerance and all(p.help for p in info.params)
    assert info.host_only == (info.gpu == "cpu")
    assert getattr(F, name) is info.function
    seen = []
    F.apply_filter(Volume(_image(shape=(4, 8, 9))), name, backend="numpy", progress=lambda f, m: seen.append(f))
    assert seen and seen[-1] == 1.0 and all(0.0 <= f <= 1.0 for f in seen)
    with pytest.raises(F.FilterCancelled):
        F.apply_filter(Volume(_image(shape=(4, 8, 9))), name, backend="numpy", cancel=lambda: True)


def test_nlmeans_is_cpu_only_on_every_backend():
    assert F.FILTERS["nlmeans"].gpu == "cpu" and F.FILTERS["nlmeans"].host_only


# ------------------------------------------------------------------------------------ GPU parity
_BACKEND = select_backend("auto")


def _gpu_volume() -> Volume:
    spacing, origin, direction = GEOMETRIES["oblique-lefthanded"]
    return Volume(_image(seed=3, shape=(12, 40, 44)), spacing, origin, direction)


@pytest.mark.parametrize("params", [{}, {"kernel_size": 15.0, "clip_limit": 0.02}])
@pytest.mark.gpu
@pytest.mark.skipif(_BACKEND.name != "cupy", reason=f"needs a working CUDA device with CuPy: {_BACKEND.reason}")
def test_gpu_clahe_matches_cpu(params):
    v = _gpu_volume()
    gpu = _run(v, "clahe", backend="cupy", **params)
    cpu = _run(v, "clahe", backend="numpy", **params)
    assert gpu.backend == "cupy" and isinstance(gpu.volume.array, np.ndarray)
    diff = np.abs(gpu.volume.array.astype(np.float64) - cpu.volume.array)
    if F.FILTERS["clahe"].gpu == "cucim":
        assert diff.max() <= 2e-2 and diff.mean() <= 1e-3, f"max {diff.max()}, mean {diff.mean()}"
    else:
        assert diff.max() == 0.0
        assert "clahe ran on the CPU" in gpu.message


@pytest.mark.gpu
@pytest.mark.skipif(_BACKEND.name != "cupy", reason=f"needs a working CUDA device with CuPy: {_BACKEND.reason}")
def test_gpu_nlmeans_runs_on_the_cpu_and_matches():
    v = _gpu_volume()
    gpu = _run(v, "nlmeans", backend="cupy", patch_distance=2)
    cpu = _run(v, "nlmeans", backend="numpy", patch_distance=2)
    assert gpu.backend == "cupy" and "nlmeans ran on the CPU" in gpu.message
    assert np.array_equal(gpu.volume.array, cpu.volume.array)
