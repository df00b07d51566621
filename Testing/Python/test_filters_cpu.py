"""CPU filters against SimpleITK (or SciPy / NumPy) within the tolerances documented in each module."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi

sitk = pytest.importorskip("SimpleITK")

from lumbarspine import filters as F  # noqa: E402
from lumbarspine.filters import smoothing  # noqa: E402
from lumbarspine.volume import Volume  # noqa: E402

CPU = "numpy"


def _oblique_left_handed() -> np.ndarray:
    th = 0.35
    c, s = np.cos(th), np.sin(th)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    tilt = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(0.2), -np.sin(0.2)], [0.0, np.sin(0.2), np.cos(0.2)]])
    d = rot @ tilt
    d[:, 2] *= -1.0  # left-handed
    assert np.linalg.det(d) < 0
    return d


def _image(seed: int = 0, shape=(24, 40, 48)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal(100.0, 20.0, size=shape)
    k, j, i = np.indices(shape)
    a += 80.0 * (((i - 24) / 14.0) ** 2 + ((j - 20) / 10.0) ** 2 + ((k - 12) / 8.0) ** 2 < 1.0)
    return a.astype(np.float32)


GEOMETRIES = {
    "plain": dict(spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=np.eye(3)),
    "oblique-lh-aniso": dict(spacing=(0.7, 0.9, 3.0), origin=(12.5, -40.0, 7.0), direction=_oblique_left_handed()),
}


@pytest.fixture(params=list(GEOMETRIES))
def vol(request) -> Volume:
    return Volume(_image(), name="t", **GEOMETRIES[request.param])


@pytest.fixture
def mask_vol(vol) -> Volume:
    m = ndi.gaussian_filter(np.random.default_rng(3).normal(size=vol.shape), 2) > 0.05
    return vol.with_array(m.astype(np.uint8), is_label=True)


def _ref(vol: Volume, image) -> np.ndarray:
    return sitk.GetArrayFromImage(image).astype(np.float64)


def _check(vol: Volume, before: np.ndarray, out: Volume) -> None:
    assert np.array_equal(vol.array, before), "the input was modified"
    assert out.same_geometry(vol, atol=1e-12)
    assert np.allclose(out.direction, vol.direction, atol=0)


def _run(vol: Volume, name: str, **params) -> Volume:
    before = vol.array.copy()
    res = F.apply_filter(vol, name, backend=CPU, **params)
    assert res.backend == "numpy" and res.seconds >= 0 and name in res.message
    if name != "resample":
        _check(vol, before, res.volume)
    return res.volume


def _rng(a) -> float:
    return float(np.ptp(a))


# ------------------------------------------------------------------------------------ smoothing
@pytest.mark.parametrize("sigma", [1.0, 2.5])
def test_gaussian_vs_sitk(vol, sigma):
    out = _run(vol, "gaussian", sigma=sigma).array
    assert out.dtype == np.float32
    img = vol.to_sitk()
    rec = _ref(vol, sitk.SmoothingRecursiveGaussian(img, sigma))
    disc = _ref(vol, sitk.DiscreteGaussian(img, variance=sigma**2, maximumKernelWidth=64, maximumError=1e-3))
    assert np.abs(out - rec).max() <= 5e-3 * _rng(vol.array)
    assert np.abs(out - disc).max() <= 3e-2 * _rng(vol.array)
    sig = [sigma / s for s in vol.spacing[::-1]]
    assert np.abs(out - ndi.gaussian_filter(vol.array, sig, mode="nearest")).max() <= 1e-5 * _rng(vol.array)


@pytest.mark.parametrize("radius", [1, 2])
def test_median_vs_sitk(vol, radius):
    out = _run(vol, "median", radius=radius).array
    assert np.array_equal(out, sitk.GetArrayFromImage(sitk.Median(vol.to_sitk(), [radius] * 3)))
    assert np.array_equal(out, ndi.median_filter(vol.array, size=2 * radius + 1, mode="nearest"))


@pytest.mark.parametrize("n", [27, 125])
def test_forgetful_selection_algorithm_of_the_gpu_kernel(n):
    rng = np.random.default_rng(n)
    vals = rng.normal(size=(200, n)).astype(np.float32)
    vals[:60] = np.round(vals[:60])  # ties
    got = smoothing.forgetful_median_reference(vals)
    assert np.array_equal(got, np.median(vals, axis=1).astype(np.float32))


@pytest.mark.parametrize(
    "name,fn",
    [("gradient_diffusion", "GradientAnisotropicDiffusion"), ("curvature_diffusion", "CurvatureAnisotropicDiffusion")],
)
def test_diffusion_vs_sitk(vol, name, fn):
    dt = min(vol.spacing) / 16.0
    out = _run(vol, name, time_step=dt, conductance=2.0, iterations=5).array
    ref = _ref(vol, getattr(sitk, fn)(vol.to_sitk(), timeStep=dt, conductanceParameter=2.0, numberOfIterations=5))
    assert np.abs(out - ref).max() <= 1e-4 * _rng(vol.array)
    assert np.abs(out - vol.array).max() > 1.0  # it did something


def test_diffusion_large_enough_for_slabs_matches_whole():
    v = Volume(_image(5, shape=(20, 24, 20)), spacing=(1.0, 1.2, 2.0))
    out = _run(v, "gradient_diffusion", time_step=0.06, conductance=2.0, iterations=2).array
    ref = _ref(
        v, sitk.GradientAnisotropicDiffusion(v.to_sitk(), timeStep=0.06, conductanceParameter=2.0, numberOfIterations=2)
    )
    assert np.abs(out - ref).max() <= 1e-4 * _rng(v.array)


def test_diffusion_unstable_time_step_rejected(vol):
    with pytest.raises(ValueError, match="time_step"):
        F.apply_filter(vol, "gradient_diffusion", backend=CPU, time_step=min(vol.spacing) / 4)


def test_bilateral_vs_sitk_and_numpy_twin(vol, monkeypatch):
    out = _run(vol, "bilateral", domain_sigma=1.5, range_sigma=30.0).array
    ref = _ref(vol, sitk.Bilateral(vol.to_sitk(), 1.5, 30.0))
    assert np.abs(out - ref).max() <= 1e-4 * _rng(vol.array)
    monkeypatch.setattr(smoothing, "BILATERAL_CPU_USES_SIMPLEITK", False)
    twin = _run(vol, "bilateral", domain_sigma=1.5, range_sigma=30.0).array
    assert np.abs(twin - ref).max() <= 1e-4 * _rng(vol.array)


# ------------------------------------------------------------------------------------ intensity
def test_zscore_vs_sitk(vol, mask_vol):
    out = _run(vol, "zscore").array
    assert np.abs(out - _ref(vol, sitk.Normalize(vol.to_sitk()))).max() <= 1e-5
    masked = F.apply_filter(vol, "zscore", backend=CPU, mask=mask_vol).volume.array
    inside = vol.array[mask_vol.array > 0].astype(np.float64)
    expect = (vol.array - inside.mean()) / inside.std(ddof=1)
    assert np.abs(masked - expect).max() <= 1e-4
    assert abs(float(masked[mask_vol.array > 0].mean())) < 1e-4
    otsu = _run(vol, "zscore", foreground="otsu").array
    assert np.isfinite(otsu).all()


def test_rescale_percentile(vol):
    out = _run(vol, "rescale_percentile", lower=2.0, upper=98.0).array
    lo, hi = np.percentile(vol.array, [2.0, 98.0])
    ref = _ref(vol, sitk.IntensityWindowing(vol.to_sitk(), float(lo), float(hi), 0.0, 1.0))
    assert np.abs(out - ref).max() <= 1e-5
    assert out.min() == 0.0 and abs(out.max() - 1.0) < 1e-6


def test_clip_and_thresholds(vol):
    out = _run(vol, "clip", lower=80.0, upper=150.0).array
    assert np.array_equal(out, _ref(vol, sitk.Clamp(vol.to_sitk(), sitk.sitkFloat32, 80.0, 150.0)).astype(np.float32))
    th = _run(vol, "threshold", lower=90.0, upper=200.0)
    assert th.is_label and th.array.dtype == np.uint8
    ref = sitk.GetArrayFromImage(sitk.BinaryThreshold(vol.to_sitk(), 90.0, 200.0, 1, 0))
    assert np.array_equal(th.array, ref)
    ot = _run(vol, "otsu", bins=128).array
    ref = sitk.GetArrayFromImage(sitk.OtsuThreshold(vol.to_sitk(), 0, 1, 128))
    assert (ot == ref).mean() >= 0.999


# ------------------------------------------------------------------------------------ resample
@pytest.mark.parametrize("spacing", [0.0, 1.5, (0.5, 2.0, 1.0)])
@pytest.mark.parametrize("interp,sitk_interp,tol", [("linear", "sitkLinear", 1e-4), ("bspline", "sitkBSpline", 1e-3)])
def test_resample_vs_sitk(vol, spacing, interp, sitk_interp, tol):
    out = _run(vol, "resample", spacing=spacing, interpolation=interp, antialias=False)
    assert np.allclose(out.direction, vol.direction)
    lo0, hi0 = _extent(vol)
    lo1, hi1 = _extent(out)
    step = max(max(out.spacing), max(vol.spacing))
    assert np.all(np.abs(lo0 - lo1) <= step) and np.all(np.abs(hi0 - hi1) <= step)
    if spacing == 0.0:
        assert np.allclose(out.spacing, min(vol.spacing))
    grid = out.with_array(np.zeros(out.shape, np.float32)).to_sitk()
    ref = _ref(
        out, sitk.Resample(vol.to_sitk(), grid, sitk.Transform(), getattr(sitk, sitk_interp), 0.0, sitk.sitkFloat32)
    )
    assert np.abs(out.array - ref).max() <= tol * _rng(vol.array)


def _extent(v: Volume):
    """Min/max corner of the voxel-edge box, in the volume's own (direction) frame."""
    corner = np.asarray(v.origin) - v.direction @ (np.asarray(v.spacing) / 2)
    local = v.direction.T @ corner
    return local, local + np.asarray(v.size_ijk) * np.asarray(v.spacing)


def test_resample_antialias_matches_smoothing_then_resample(vol):
    out = _run(vol, "resample", spacing=2.0, interpolation="linear", antialias=True)
    s = np.asarray(vol.spacing)
    sig_mm = np.sqrt(np.maximum(4.0 - s**2, 0)) / 2.3548200450309493
    smooth = sitk.SmoothingRecursiveGaussian(vol.to_sitk(), [float(x) if x > 0 else 1e-3 for x in sig_mm])
    grid = out.with_array(np.zeros(out.shape, np.float32)).to_sitk()
    ref = _ref(out, sitk.Resample(smooth, grid, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32))
    assert np.abs(out.array - ref).max() <= 2e-2 * _rng(vol.array)


# ----------------------------------------------------------------------------------------- N4
def test_n4_matches_direct_sitk(vol):
    i = np.linspace(-1, 1, vol.shape[2])
    biased = vol.with_array((vol.array + 50.0) * np.exp(0.3 * i)[None, None, :].astype(np.float32))
    out = _run(biased, "n4", shrink_factor=2, iterations=10, fitting_levels=2).array
    img = biased.to_sitk()
    m = sitk.OtsuThreshold(img, 0, 1, 200)
    small, small_m = sitk.Shrink(img, [2, 2, 2]), sitk.Shrink(m, [2, 2, 2])
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([10, 10])
    n4.Execute(small, small_m)
    ref = biased.array / np.exp(sitk.GetArrayFromImage(n4.GetLogBiasFieldAsImage(img)))
    assert np.abs(out - ref).max() <= 1e-4 * _rng(biased.array)
    assert np.std(out.mean(axis=(0, 1))) < np.std(biased.array.mean(axis=(0, 1)))


# ---------------------------------------------------------------------------------- morphology
@pytest.mark.parametrize(
    "op,fn",
    [
        ("dilate", "BinaryDilate"),
        ("erode", "BinaryErode"),
        ("open", "BinaryMorphologicalOpening"),
        ("close", "BinaryMorphologicalClosing"),
    ],
)
@pytest.mark.parametrize("radius", [1, 2])
def test_binary_morphology_vs_sitk(mask_vol, op, fn, radius):
    out = _run(mask_vol, "binary_morphology", operation=op, radius=radius, radius_unit="voxels")
    assert out.is_label and out.array.dtype == np.uint8
    ref = sitk.GetArrayFromImage(getattr(sitk, fn)(mask_vol.to_sitk(), [radius] * 3, sitk.sitkBall, foregroundValue=1))
    assert np.array_equal(out.array, ref)


def test_binary_morphology_mm_ball(mask_vol):
    from lumbarspine.filters.morphology import structuring_element

    st = structuring_element(mask_vol.spacing[::-1], 2.0, "mm")
    out = _run(mask_vol, "binary_morphology", operation="dilate", radius=2.0, radius_unit="mm").array
    assert np.array_equal(out, ndi.binary_dilation(mask_vol.array > 0, st).astype(np.uint8))


def test_fill_holes_components_distance(mask_vol):
    img = mask_vol.to_sitk()
    fill = _run(mask_vol, "fill_holes").array
    assert np.array_equal(fill, sitk.GetArrayFromImage(sitk.BinaryFillhole(img, False, 1)))
    for conn in (6, 26):
        cc = _run(mask_vol, "connected_components", connectivity=conn, min_size=3).array
        ref = sitk.RelabelComponent(sitk.ConnectedComponent(img, conn == 26), 3, True)
        assert np.array_equal(cc, sitk.GetArrayFromImage(ref))
    maurer = _ref(
        mask_vol, sitk.SignedMaurerDistanceMap(img, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
    )
    signed = _run(mask_vol, "distance_map", signed=True).array
    assert np.abs(signed - maurer).max() <= 1e-4
    unsigned = _run(mask_vol, "distance_map", signed=False).array
    assert np.abs(unsigned - np.maximum(maurer, 0)).max() <= 1e-4


# --------------------------------------------------------------------------------- registry/API
def test_registry_is_complete():
    for name, info in F.FILTERS.items():
        assert info.name == name and callable(info.function) and info.help and info.tolerance
        assert info.gpu in ("kernel", "cupyx", "cupy", "cucim", "cpu")
        for p in info.params:
            assert p.help, (name, p.name)
            if p.kind == "choice":
                assert p.default in p.choices
    for needed in (
        "resample",
        "zscore",
        "rescale_percentile",
        "n4",
        "gaussian",
        "median",
        "gradient_diffusion",
        "curvature_diffusion",
        "bilateral",
        "threshold",
        "otsu",
        "binary_morphology",
        "fill_holes",
        "connected_components",
        "distance_map",
    ):
        assert needed in F.FILTERS
    assert {"t2-canal", "ct-bone"} <= set(F.PRESETS)


def test_public_function_and_int16_input():
    v = Volume(np.random.default_rng(1).integers(-1000, 2000, (12, 20, 16)).astype(np.int16), spacing=(0.8, 0.8, 2.0))
    before = v.array.copy()
    out = F.gaussian(v, sigma=1.0, backend=CPU)
    assert out.array.dtype == np.float32 and out.same_geometry(v)
    assert np.array_equal(v.array, before)


@pytest.mark.parametrize("preset", ["t2-canal", "ct-bone", "t2-smooth"])
def test_presets_progress_and_geometry(vol, preset):
    seen = []
    before = vol.array.copy()
    res = F.apply_preset(vol, preset, backend=CPU, progress=lambda f, m: seen.append((f, m)))
    _check(vol, before, res.volume)
    assert res.volume.array.dtype == np.float32 and np.isfinite(res.volume.array).all()
    fr = [f for f, _ in seen]
    assert fr == sorted(fr) and fr[-1] == 1.0 and len(seen) >= 3


def test_ct_bone_equals_chain():
    v = Volume(np.random.default_rng(2).integers(-2000, 4000, (12, 20, 16)).astype(np.int16), spacing=(0.8, 0.8, 1.0))
    res = F.apply_preset(v, "ct-bone", backend=CPU).volume.array
    step = F.apply_filter(v, "clip", backend=CPU, lower=-1024, upper=3071).volume
    step = F.apply_filter(step, "median", backend=CPU, radius=1).volume
    step = F.apply_filter(step, "gaussian", backend=CPU, sigma=0.5).volume
    assert np.array_equal(res, step.array)


def test_cancel_raises(vol):
    with pytest.raises(F.FilterCancelled):
        F.apply_filter(vol, "gradient_diffusion", backend=CPU, cancel=lambda: True)
    calls = []

    def cancel_late():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(F.FilterCancelled):
        F.apply_preset(vol, "t2-smooth", backend=CPU, cancel=cancel_late)


# ------------------------------------------------------------------------------------ bad input
def test_bad_inputs(vol):
    with pytest.raises(ValueError, match="Unknown filter"):
        F.apply_filter(vol, "sharpen", backend=CPU)
    with pytest.raises(ValueError, match="Unknown parameter"):
        F.apply_filter(vol, "gaussian", backend=CPU, sigmaa=1.0)
    with pytest.raises(ValueError, match="out of range"):
        F.apply_filter(vol, "gaussian", backend=CPU, sigma=-1.0)
    with pytest.raises(ValueError, match="out of range"):
        F.apply_filter(vol, "median", backend=CPU, radius=9)
    with pytest.raises(ValueError, match="must be one of"):
        F.apply_filter(vol, "resample", backend=CPU, interpolation="cubic")
    with pytest.raises(ValueError, match="Unknown preset"):
        F.apply_preset(vol, "mri", backend=CPU)
    bad = vol.array.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        F.apply_filter(vol.with_array(bad), "gaussian", backend=CPU)
    bad[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        F.apply_filter(vol.with_array(bad), "median", backend=CPU)
    with pytest.raises(ValueError, match="real numbers"):
        F.apply_filter(vol.with_array(vol.array.astype(np.complex64)), "gaussian", backend=CPU)
    with pytest.raises(ValueError, match="lumbarspine Volume"):
        F.apply_filter(vol.array, "gaussian", backend=CPU)
    with pytest.raises(ValueError, match="at least 2 voxels"):
        F.apply_filter(Volume(np.ones((1, 8, 8), np.float32)), "gaussian", backend=CPU)
    with pytest.raises(ValueError):
        Volume(np.ones((8, 8), np.float32))  # 2D
    with pytest.raises(ValueError):
        Volume(np.ones((0, 8, 8), np.float32))  # empty
    with pytest.raises(ValueError, match="backend"):
        F.apply_filter(vol, "gaussian", backend="opencl")
    with pytest.raises(ValueError, match="empty"):
        F.apply_filter(vol.with_array(np.zeros(vol.shape, np.uint8)), "distance_map", backend=CPU)


# ------------------------------------------------------------- CPU fast paths (chunked / threaded)
@pytest.mark.parametrize("threads", ["1", "2"])
def test_zscore_chunked_statistics_match_float64(monkeypatch, threads):
    """Chunked float64 statistics (several chunks, some with an empty mask) = whole-volume float64,
    also for a large mean with a small spread (no cancellation)."""
    from lumbarspine.filters import intensity

    monkeypatch.setenv("LUMBARSPINE_THREADS", threads)
    monkeypatch.setattr(intensity, "_CHUNK_STATS", 1000)
    monkeypatch.setattr(intensity, "_CHUNK_OUT", 777)
    monkeypatch.setattr(intensity, "_THREADS_FROM", 0)
    rng = np.random.default_rng(5)
    a = (1.0e4 + rng.normal(0.0, 1.0, size=(20, 30, 17))).astype(np.float32)
    v = Volume(a, spacing=(0.7, 0.9, 3.0))
    a64 = a.astype(np.float64)
    out = F.apply_filter(v, "zscore", backend=CPU).volume.array
    expect = ((a - np.float32(a64.mean())) * np.float32(1.0 / a64.std(ddof=1))).astype(np.float32)
    assert out.dtype == np.float32 and np.abs(out - expect).max() <= 1e-4
    m = np.zeros(a.shape, np.uint8)
    m[3:9, 5:20, 2:11] = 1  # most chunks have no foreground
    masked = F.apply_filter(v, "zscore", backend=CPU, mask=v.with_array(m, is_label=True)).volume.array
    inside = a64[m > 0]
    # the output arithmetic is float32 (the mean rounded to float32, ~5e-4 here), as on the GPU
    expect = (a - np.float32(inside.mean())) * np.float32(1.0 / inside.std(ddof=1))
    assert np.abs(masked - expect).max() <= 1e-4


def _scipy_resample(vol: Volume, out: Volume, order: int) -> np.ndarray:
    s = np.asarray(vol.spacing[::-1])
    t = np.asarray(out.spacing[::-1])
    mode = "nearest" if order == 1 else "mirror"
    return ndi.affine_transform(
        vol.array, t / s, offset=(t - s) / (2 * s), output_shape=out.shape, order=order, mode=mode, output=np.float32
    )


@pytest.mark.parametrize("threads", ["1", "2"])
@pytest.mark.parametrize("spacing", [0.0, 1.5, (0.5, 2.0, 1.0), (0.7, 0.45, 9.0), (0.7, 50.0, 3.0)])
def test_resample_cpu_twin_equals_affine_transform(vol, monkeypatch, threads, spacing):
    """Separable threaded linear = scipy affine_transform(order=1, nearest) to float32 rounding, also
    where samples fall outside the input's voxel edges (50 mm: n' = 1, clamped); threaded B-spline =
    one affine_transform(order=3, mirror) call."""
    monkeypatch.setenv("LUMBARSPINE_THREADS", threads)
    lin = _run(vol, "resample", spacing=spacing, interpolation="linear", antialias=False)
    assert lin.array.dtype == np.float32
    assert np.abs(lin.array - _scipy_resample(vol, lin, 1)).max() <= 1e-6 * _rng(vol.array)
    bsp = _run(vol, "resample", spacing=spacing, interpolation="bspline", antialias=False)
    assert np.abs(bsp.array - _scipy_resample(vol, bsp, 3)).max() <= 1e-6 * _rng(vol.array)


def test_resample_antialias_slabs_equal_one_gaussian(vol, monkeypatch):
    monkeypatch.setenv("LUMBARSPINE_THREADS", "2")
    big = Volume(np.tile(vol.array, (3, 1, 1)), spacing=vol.spacing, origin=vol.origin, direction=vol.direction)
    out = _run(big, "resample", spacing=(2.0, 1.0, 4.0), interpolation="linear", antialias=True)  # 72 slices: slabs
    s = np.asarray(big.spacing[::-1])
    t = np.asarray(out.spacing[::-1])
    sig = np.sqrt(np.maximum(t**2 - s**2, 0)) / 2.3548200450309493 / s
    smooth = big.with_array(ndi.gaussian_filter(big.array, tuple(sig), mode="nearest", truncate=4.0))
    assert np.abs(out.array - _scipy_resample(smooth, out, 1)).max() <= 1e-6 * _rng(big.array)


def test_resample_edge_sample_is_clamped_not_zero():
    """n = 7 at 1 mm -> 2 mm gives n' = 4 (round half to even): the last output centre sits exactly on
    the input's outer voxel edge (index 6.5). We clamp (edge value), as scipy's mode='nearest' and the
    GPU path do; SimpleITK Resample treats that point as outside and returns its default value."""
    a = np.arange(3 * 4 * 7, dtype=np.float32).reshape(3, 4, 7) + 1
    out = _run(Volume(a, spacing=(1.0, 1.0, 1.0)), "resample", spacing=(2.0, 1.0, 1.0), antialias=False).array
    assert out.shape == (3, 4, 4)
    assert np.array_equal(out[..., 3], a[..., 6])
    assert np.allclose(out[..., :3], 0.5 * (a[..., 0:6:2] + a[..., 1:6:2]))
