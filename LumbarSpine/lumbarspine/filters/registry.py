"""The filter registry, ``apply_filter`` and the device pipelines behind ``apply_preset``."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..backend import Backend, run_with_cpu_fallback
from ..volume import Volume, validate_scalar_volume
from . import bias, denoise, diffusion, enhance, intensity, morphology, resample, smoothing
from ._core import (
    CancelCallback,
    InsufficientMemoryError,
    ProgressCallback,
    RunContext,
    check_memory,
    resolve_backend,
    to_device_volume,
    to_host_volume,
)
from .slabs import SlabPlan, plan_slabs, run_in_slabs


@dataclass(frozen=True)
class ParamInfo:
    """One filter parameter.

    ``kind`` is ``"float"``, ``"int"``, ``"bool"``, ``"choice"``, ``"spacing"`` (one number or three, mm)
    or ``"volume"`` (an optional Volume on the same grid, e.g. a mask; not settable from a command line).
    ``minimum`` / ``maximum`` are inclusive bounds (None = unbounded).
    """

    name: str
    kind: str
    default: Any
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""


@dataclass(frozen=True)
class FilterInfo:
    """A registered filter.

    Attributes:
        name: registry key (also the CLI sub-command / UI entry).
        title: short human title.
        function: the public function ``f(volume, *, backend=None, progress=None, cancel=None, **params)``.
        params: the parameters, in UI order.
        help: one line describing what it does.
        gpu: how the GPU path is implemented: ``"kernel"`` (our own CuPy kernels), ``"cupyx"``
            (cupyx.scipy.ndimage), ``"cupy"`` (CuPy array operations), ``"cucim"`` (cuCIM's port of the
            scikit-image function) or ``"cpu"`` (always on the CPU).
        cpu: how the CPU twin is implemented.
        output: ``"scalar"`` (float32) or ``"label"`` (uint8 mask / int32 labels).
        tolerance: documented agreement with the CPU twin and with SimpleITK.
    """

    name: str
    title: str
    function: Callable[..., Volume]
    params: tuple[ParamInfo, ...]
    help: str
    gpu: str
    cpu: str
    output: str = "scalar"
    tolerance: str = ""
    impl: Callable[..., Volume] | None = field(default=None, repr=False)
    host_only: bool = False

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}


@dataclass(frozen=True)
class FilterResult:
    """What :func:`apply_filter` / :func:`apply_preset` return."""

    volume: Volume
    backend: str
    seconds: float
    message: str


# ---------------------------------------------------------------------------------- validation
def _coerce(filter_name: str, p: ParamInfo, value: Any) -> Any:
    where = f"{filter_name}: parameter {p.name!r}"
    if p.kind == "volume":
        if value is not None and not isinstance(value, Volume):
            raise ValueError(f"{where} must be a lumbarspine Volume or None; got {type(value).__name__}.")
        return value
    if p.kind == "choice":
        if value not in p.choices:
            raise ValueError(f"{where} must be one of {', '.join(map(repr, p.choices))}; got {value!r}.")
        return value
    if p.kind == "bool":
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        if isinstance(value, (bool, np.bool_)) or value in (0, 1):
            return bool(value)
        raise ValueError(f"{where} must be true or false; got {value!r}.")
    if p.kind == "spacing":
        vals = [value] if isinstance(value, (int, float, str)) else list(value)
        try:
            nums = [float(v) for v in vals]
        except (TypeError, ValueError):
            raise ValueError(f"{where} must be one number or three numbers in mm; got {value!r}.") from None
        if len(nums) not in (1, 3) or any(not math.isfinite(v) or v < 0 for v in nums):
            raise ValueError(f"{where} must be one or three non-negative numbers in mm (0 = finest); got {value!r}.")
        for v in nums:
            if v and p.maximum is not None and v > p.maximum:
                raise ValueError(f"{where}: {v} mm is above the maximum {p.maximum} mm.")
        return nums[0] if len(nums) == 1 else tuple(nums)
    try:
        if p.kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            num: Any = int(value)
        else:
            num = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where} must be {'an integer' if p.kind == 'int' else 'a number'}; got {value!r}.") from None
    if isinstance(num, float) and math.isnan(num):
        raise ValueError(f"{where} must be a number, not NaN.")
    lo, hi = p.minimum, p.maximum
    if (lo is not None and num < lo) or (hi is not None and num > hi):
        unit = f" {p.unit}" if p.unit else ""
        raise ValueError(
            f"{where} = {value!r} is out of range: use a value between {lo}{unit} and {hi}{unit} ({p.help})."
        )
    return num


def validate_params(info: FilterInfo, params: dict[str, Any]) -> dict[str, Any]:
    """Defaults merged with ``params``, coerced and range-checked (ValueError naming the problem)."""
    known = {p.name: p for p in info.params}
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(
            f"Unknown parameter(s) {', '.join(unknown)} for filter {info.name!r}; "
            f"it accepts: {', '.join(known) or 'no parameters'}."
        )
    out = info.defaults()
    for k, v in params.items():
        out[k] = _coerce(info.name, known[k], v)
    return out


def get_filter(name: str) -> FilterInfo:
    try:
        return FILTERS[name]
    except KeyError:
        raise ValueError(f"Unknown filter {name!r}; choose one of: {', '.join(sorted(FILTERS))}.") from None


def _check_input(volume: Volume) -> None:
    validate_scalar_volume(volume)
    if volume.array.size == 0:  # pragma: no cover - Volume refuses empty arrays already
        raise ValueError("The input volume is empty.")
    if min(volume.shape) < 2:
        raise ValueError(
            f"The input volume has shape {volume.shape} (k, j, i): 3D filters need at least 2 voxels along every "
            "axis. For a single 2D slice use a 2D tool or stack slices first."
        )


# --------------------------------------------------------------------------------- memory estimate
_BYTES_PER_VOXEL: dict[str, float] = {
    # host working memory per input voxel: peaks measured with tracemalloc (NumPy allocations) on a
    # 48x96x96 float32 volume on the CPU twins (2026-12-01), rounded up, plus the input/output copies
    # SimpleITK makes where it does the work (median, bilateral, n4: not seen by tracemalloc). An
    # estimate to refuse hopeless runs before they start, not a tight budget.
    "zscore": 12,
    "rescale_percentile": 12,
    "clip": 8,
    "n4": 64,
    "gaussian": 12,
    "median": 16,
    "gradient_diffusion": 24,
    "curvature_diffusion": 28,
    "bilateral": 16,
    "threshold": 6,
    "otsu": 12,
    "binary_morphology": 56,  # distance-transform path, per (padded) voxel
    "fill_holes": 14,
    "connected_components": 20,
    "distance_map": 56,
    "clahe": 72,
    "nlmeans": 64,
}

_MEMORY_SUGGESTION = {
    "resample": "Choose a coarser spacing, crop the volume first, or free memory.",
    "binary_morphology": "Crop the mask to the region of interest, use a smaller radius, or free memory.",
}


def estimate_memory(
    info: FilterInfo, shape: tuple[int, int, int], spacing: tuple[float, float, float], params: dict[str, Any]
) -> tuple[float, tuple[int, int, int], tuple[float, float, float]]:
    """Host working memory (bytes) of one filter step, and the output grid (shape k,j,i; spacing i,j,k)."""
    n_in = float(np.prod(shape, dtype=np.float64))
    if info.name == "resample":
        probe = Volume(np.zeros((1, 1, 1), np.uint8), spacing=spacing)
        new_spacing = resample.target_spacing(probe, params.get("spacing", 0.0))
        size = np.maximum(1, np.round(np.asarray(shape[::-1], float) * np.asarray(spacing) / np.asarray(new_spacing)))
        out_shape = tuple(int(v) for v in size[::-1])
        n_out = float(np.prod(size, dtype=np.float64))
        return 16.0 * n_in + 24.0 * n_out, out_shape, new_spacing  # type: ignore[return-value]
    if info.name == "binary_morphology" and params.get("operation") == "close":  # padded by the element's half size
        box = morphology.element_shape(spacing[::-1], float(params.get("radius", 1.0)), params.get("radius_unit", "mm"))
        n_in = float(np.prod([n + 2 * (h // 2) for n, h in zip(shape, box)], dtype=np.float64))
    return _BYTES_PER_VOXEL.get(info.name, 16) * n_in, shape, spacing


def _device_bytes_per_voxel(steps: list[tuple[FilterInfo, dict[str, Any]]]) -> float:
    """Working memory per voxel of the most demanding step (the host estimate, used for the device too)."""
    return float(max(_BYTES_PER_VOXEL.get(info.name, 16) for info, _ in steps))


def _check_chain_memory(volume: Volume, steps: list[tuple[FilterInfo, dict[str, Any]]], what: str) -> None:
    shape, spacing = tuple(volume.shape), tuple(volume.spacing)
    held = float(np.asarray(volume.array).nbytes)
    for info, params in steps:
        need, out_shape, out_spacing = estimate_memory(info, shape, spacing, params)  # type: ignore[arg-type]
        detail = f" (output {out_shape[2]} x {out_shape[1]} x {out_shape[0]} voxels)" if info.name == "resample" else ""
        check_memory(
            held + need,
            f"{what}{detail}" if len(steps) == 1 else f"{what}, step {info.name!r}{detail},",
            _MEMORY_SUGGESTION.get(info.name, "Crop or downsample the volume first, or free memory."),
        )
        shape, spacing = out_shape, out_spacing


# ----------------------------------------------------------------------------------- pipelines
def _run_chain(
    volume: Volume,
    steps: list[tuple[FilterInfo, dict[str, Any]]],
    backend: Any,
    progress: ProgressCallback | None,
    cancel: CancelCallback | None,
    what: str,
) -> FilterResult:
    """Run ``steps`` as one pipeline: host-only steps first on the host while the data is still there,
    then one upload, every device step on the device, one download."""
    _check_input(volume)
    _check_chain_memory(volume, steps, what)
    be: Backend = resolve_backend(backend)
    t0 = time.perf_counter()
    on_cpu: list[str] = []  # host-only steps run on a GPU backend (named in the message)

    slabbed: list[SlabPlan] = []  # the slab plan of the run that produced the result, if any

    def run_steps(current: Volume, ctx: RunContext) -> Volume:
        """The chain on one volume (or slab): host-only steps on the host, the others on ctx's backend."""
        b = ctx.backend
        on_device = False
        n = len(steps)
        for i, (info, params) in enumerate(steps):
            sub = ctx.sub(i / n, (i + 1) / n)
            sub.report(0.0, f"{info.title}")
            if info.host_only:
                if b.is_gpu:
                    on_cpu.append(info.name)
                if on_device:
                    current = to_host_volume(b, current)
                    on_device = False
            elif not on_device:
                current = to_device_volume(b, current)
                on_device = True
            current = info.impl(current, sub, **params)
            sub.report(1.0, f"{info.title} done")
        if on_device:
            current = to_host_volume(b, current)
        return current

    def compute(b: Backend) -> Volume:
        ctx = RunContext(b, progress, cancel)
        on_cpu.clear()
        slabbed.clear()
        ctx.check_cancel()
        plan = plan_slabs(volume, steps, b, _device_bytes_per_voxel(steps))
        if plan is None or plan.slices >= volume.shape[0]:
            current = run_steps(volume, ctx)
        else:
            slabbed.append(plan)
            current = run_in_slabs(volume, plan, ctx, run_steps)
        b.synchronize()
        return current

    try:
        result, used = run_with_cpu_fallback(be, compute, what=what)
    except InsufficientMemoryError:
        raise
    except MemoryError as exc:
        raise InsufficientMemoryError(
            f"{what} ran out of memory ({exc or 'MemoryError'}). Crop or downsample the volume, or free memory."
        ) from exc
    seconds = time.perf_counter() - t0
    msg = f"{what} on {used.name} ({used.device}) in {seconds:.2f} s"
    if on_cpu and used.is_gpu:
        msg += f"; {', '.join(on_cpu)} ran on the CPU (no GPU implementation)"
    if slabbed:
        plan = slabbed[0]
        msg += f"; in {len(plan.bounds(volume.shape[0]))} slabs of {plan.slices} slices (halo {plan.halo})"
    if used is not be:
        msg += f"; {used.reason} (only local filters run slab-wise on the GPU; see lumbarspine.filters.slabs)"
    if progress is not None:
        progress(1.0, msg)
    return FilterResult(result, used.name, seconds, msg)


def apply_filter(
    volume: Volume,
    name: str,
    *,
    backend: Any = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
    **params: Any,
) -> FilterResult:
    """Run the registered filter ``name`` on ``volume``.

    Args:
        volume: a 3D scalar :class:`~lumbarspine.volume.Volume` (never modified).
        name: a key of :data:`FILTERS`.
        backend: ``None`` (``LUMBARSPINE_BACKEND`` or auto), ``"auto"``, ``"cupy"``, ``"numpy"`` or a Backend.
        progress: ``progress(fraction, message)`` called between steps / iterations.
        cancel: ``cancel() -> bool``; True makes the filter raise :class:`FilterCancelled`.
        **params: the filter's parameters (see ``FILTERS[name].params``).

    Returns:
        :class:`FilterResult` with the output volume (host NumPy array, same geometry except for
        ``resample``), the backend name used, the wall time and a one-line message.

    Raises:
        ValueError: bad input volume, unknown filter or parameter, parameter out of range.
        BackendUnavailableError: ``backend="cupy"`` on a machine without a working GPU.
        FilterCancelled: ``cancel()`` returned True.
    """
    info = get_filter(name)
    checked = validate_params(info, params)
    return _run_chain(volume, [(info, checked)], backend, progress, cancel, what=f"filter {name!r}")


# -------------------------------------------------------------------------------------- presets
@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    help: str
    steps: tuple[tuple[str, dict[str, Any]], ...]


PRESETS: dict[str, Preset] = {
    "t2-canal": Preset(
        "t2-canal",
        "T2 MRI for canal measurement",
        "N4 bias correction (CPU, shrink 4) -> curvature anisotropic diffusion (diffusion time of 5 ITK "
        "steps of 0.0625, time step scaled to the spacing) -> z-score inside Otsu's foreground.",
        (
            ("n4", {"shrink_factor": 4, "iterations": 50, "fitting_levels": 3}),
            ("curvature_diffusion", {"time_step": 0.0, "conductance": 1.5, "iterations": 5}),
            ("zscore", {"foreground": "otsu"}),
        ),
    ),
    "ct-bone": Preset(
        "ct-bone",
        "CT bone",
        "Clip to [-1024, 3071] HU -> median radius 1 -> Gaussian sigma 0.5 mm.",
        (
            ("clip", {"lower": -1024.0, "upper": 3071.0}),
            ("median", {"radius": 1}),
            ("gaussian", {"sigma": 0.5}),
        ),
    ),
    "t2-smooth": Preset(
        "t2-smooth",
        "T2 MRI, edge-preserving smoothing only",
        "Gradient anisotropic diffusion (diffusion time of 5 ITK steps of 0.0625, time step scaled to the "
        "spacing) -> percentile rescale to [0, 1].",
        (
            ("gradient_diffusion", {"time_step": 0.0, "conductance": 1.5, "iterations": 5}),
            ("rescale_percentile", {"lower": 0.5, "upper": 99.5}),
        ),
    ),
}


def apply_preset(
    volume: Volume,
    name: str,
    *,
    backend: Any = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> FilterResult:
    """Run the preset ``name`` (a key of :data:`PRESETS`) as ONE device pipeline.

    Host-only steps (N4) that come first run on the host, then the data is uploaded once (int16 stays
    int16 until the device converts it to float32; pinned staging memory on the GPU), every other step
    runs on the device and the result is downloaded once. ``overrides`` maps a filter name of the chain to
    parameter values replacing the preset's. On GPU out-of-memory the whole chain reruns on the CPU.
    """
    steps = resolve_preset(name, overrides)
    return _run_chain(volume, steps, backend, progress, cancel, what=f"preset {name!r}")


def resolve_preset(
    name: str, overrides: dict[str, dict[str, Any]] | None = None
) -> list[tuple[FilterInfo, dict[str, Any]]]:
    """The preset's steps with ``overrides`` applied, every parameter validated (ValueError otherwise).

    Lets callers (the CLI, UIs) check a preset and its overrides before reading or writing anything.
    """
    try:
        preset = PRESETS[name]
    except KeyError:
        raise ValueError(f"Unknown preset {name!r}; choose one of: {', '.join(sorted(PRESETS))}.") from None
    overrides = dict(overrides or {})
    unknown = set(overrides) - {s for s, _ in preset.steps}
    if unknown:
        raise ValueError(
            f"Preset {name!r} has no step(s) {', '.join(sorted(unknown))} to override; "
            f"its steps are {', '.join(s for s, _ in preset.steps)}."
        )
    steps = []
    for fname, params in preset.steps:
        info = get_filter(fname)
        steps.append((info, validate_params(info, {**params, **overrides.get(fname, {})})))
    return steps


# ------------------------------------------------------------------------------------- registry
def _P(name, kind, default, unit="", lo=None, hi=None, choices=(), help=""):  # noqa: N802 - terse table
    return ParamInfo(name, kind, default, unit, lo, hi, tuple(choices), help)


def _public(name: str) -> Callable[..., Volume]:
    def run(
        volume: Volume,
        *,
        backend: Any = None,
        progress: ProgressCallback | None = None,
        cancel: CancelCallback | None = None,
        **params: Any,
    ) -> Volume:
        return apply_filter(volume, name, backend=backend, progress=progress, cancel=cancel, **params).volume

    run.__name__ = name
    return run


_DIFF_PARAMS = (
    _P(
        "time_step",
        "float",
        0.0,
        "",
        0.0,
        1.0,
        help="ITK time step; 0 = auto: min(0.0625, min(spacing)/16) with iterations scaled to keep the diffusion "
        "time iterations x 0.0625; explicit steps are stable up to min(spacing)/16 in 3D",
    ),
    _P("conductance", "float", 3.0, "", 0.01, 100.0, help="K: multiple of the mean gradient magnitude kept as edge"),
    _P("iterations", "int", 5, "", 0, 2000, help="number of time steps of 0.0625 (auto) or of time_step"),
)

_TABLE: list[tuple] = [
    # name, title, impl, params, help, gpu, cpu, output, tolerance, host_only
    (
        "resample",
        "Resample",
        resample.resample_impl,
        (
            _P(
                "spacing",
                "spacing",
                0.0,
                "mm",
                0.0,
                50.0,
                help="new spacing: one value (isotropic), or i j k; 0 = finest",
            ),
            _P(
                "interpolation",
                "choice",
                "auto",
                choices=resample.INTERPOLATIONS,
                help="auto (nearest for label maps, else linear), linear, bspline, nearest or label_linear "
                "(label-wise linear: each label's indicator interpolated, the largest wins)",
            ),
            _P("antialias", "bool", True, help="Gaussian pre-smoothing along axes that get coarser"),
        ),
        "Resample to isotropic or a chosen spacing; same direction and physical extent; label maps stay labels.",
        "cupyx",
        "numpy separable linear, slab-threaded (B-spline: scipy, threaded)",
        "scalar",
        "GPU vs CPU <= 1e-4 x range; CPU vs SimpleITK Resample: linear <= 1e-4, B-spline <= 1e-3 x range",
        False,
    ),
    (
        "zscore",
        "Z-score",
        intensity.zscore_impl,
        (
            _P("foreground", "choice", "all", choices=("all", "nonzero", "otsu"), help="voxels the statistics use"),
            _P("mask", "volume", None, help="optional mask Volume (non-zero = foreground); overrides foreground"),
        ),
        "Subtract the mean and divide by the (sample) standard deviation of the foreground.",
        "kernel",
        "numpy, chunked float64 statistics + float32 output, threaded (from 4M voxels)",
        "scalar",
        "GPU vs CPU <= 1e-6 relative; vs SimpleITK Normalize <= 1e-5",
        False,
    ),
    (
        "rescale_percentile",
        "Percentile rescale",
        intensity.rescale_percentile_impl,
        (
            _P("lower", "float", 0.5, "%", 0.0, 100.0, help="lower percentile mapped to out_min"),
            _P("upper", "float", 99.5, "%", 0.0, 100.0, help="upper percentile mapped to out_max"),
            _P("out_min", "float", 0.0, help="output value of the lower percentile"),
            _P("out_max", "float", 1.0, help="output value of the upper percentile"),
        ),
        "Clip to two percentiles and rescale linearly.",
        "kernel",
        "numpy",
        "scalar",
        "GPU vs CPU <= 1e-6 relative; vs numpy.percentile + SimpleITK IntensityWindowing <= 1e-5",
        False,
    ),
    (
        "clip",
        "Clip intensities",
        intensity.clip_impl,
        (
            _P("lower", "float", -1024.0, help="values below become this"),
            _P("upper", "float", 3071.0, help="values above become this"),
        ),
        "Clamp intensities to [lower, upper] (e.g. CT HU).",
        "kernel",
        "numpy",
        "scalar",
        "exact (vs SimpleITK Clamp and GPU vs CPU)",
        False,
    ),
    (
        "n4",
        "N4 bias correction",
        bias.n4_impl,
        (
            _P("shrink_factor", "int", 4, "", 1, 16, help="fit the field on a copy shrunk by this factor"),
            _P("iterations", "int", 50, "", 1, 1000, help="maximum iterations per fitting level"),
            _P("fitting_levels", "int", 4, "", 1, 8, help="B-spline fitting levels"),
            _P("control_points", "int", 4, "", 4, 32, help="control points per axis (>= spline order + 1)"),
            _P("convergence", "float", 0.001, "", 0.0, 1.0, help="convergence threshold"),
            _P("mask", "volume", None, help="optional mask Volume; default Otsu foreground"),
        ),
        "N4 bias field correction (ITK's algorithm as array code: the same on the CPU and the GPU).",
        "cupy",
        "numpy (the same array code); SimpleITK N4BiasFieldCorrection is the reference",
        "scalar",
        "log bias field vs SimpleITK N4 <= 2e-3 (max abs; corrected intensities within 0.2 %, ITK's own float32 rounding sensitivity); GPU vs CPU <= 1e-5",
        False,
    ),
    (
        "gaussian",
        "Gaussian",
        smoothing.gaussian_impl,
        (_P("sigma", "float", 1.0, "mm", 0.0, 50.0, help="standard deviation in mm"),),
        "Gaussian smoothing, sigma in mm.",
        "cupyx",
        "scipy.ndimage.gaussian_filter, slab-threaded",
        "scalar",
        "GPU vs CPU <= 1e-5 x range; vs SimpleITK SmoothingRecursiveGaussian <= 5e-3, DiscreteGaussian <= 3e-2 x range",
        False,
    ),
    (
        "median",
        "Median",
        smoothing.median_impl,
        (_P("radius", "int", 1, "voxels", 1, 3, help="window radius; 1 = 3x3x3"),),
        "Median filter, radius in voxels.",
        "kernel",
        "SimpleITK Median",
        "scalar",
        "exact (CPU is SimpleITK; GPU forgetful selection picks the same value)",
        False,
    ),
    (
        "gradient_diffusion",
        "Gradient anisotropic diffusion",
        diffusion.gradient_anisotropic_diffusion_impl,
        _DIFF_PARAMS,
        "Perona-Malik diffusion exactly as ITK GradientAnisotropicDiffusionImageFilter.",
        "kernel",
        "numpy, slab-threaded",
        "scalar",
        "CPU vs SimpleITK <= 1e-4 x range (5 it); GPU vs CPU <= 1e-5 x range",
        False,
    ),
    (
        "curvature_diffusion",
        "Curvature anisotropic diffusion",
        diffusion.curvature_anisotropic_diffusion_impl,
        _DIFF_PARAMS,
        "Modified curvature diffusion exactly as ITK CurvatureAnisotropicDiffusionImageFilter.",
        "kernel",
        "numpy, slab-threaded",
        "scalar",
        "CPU vs SimpleITK <= 1e-4 x range (5 it); GPU vs CPU <= 1e-5 x range",
        False,
    ),
    (
        "bilateral",
        "Bilateral",
        smoothing.bilateral_impl,
        (
            _P("domain_sigma", "float", 1.0, "mm", 0.05, 10.0, help="spatial standard deviation in mm"),
            _P("range_sigma", "float", 50.0, "intensity", 1e-6, 1e9, help="intensity standard deviation"),
        ),
        "Edge-preserving bilateral filter as ITK BilateralImageFilter.",
        "kernel",
        "SimpleITK Bilateral",
        "scalar",
        "CPU is SimpleITK (NumPy twin identical to it); GPU vs CPU <= 1e-4 x range",
        False,
    ),
    (
        "threshold",
        "Threshold",
        intensity.threshold_impl,
        (
            _P("lower", "float", 0.0, help="lowest value kept (inclusive)"),
            _P("upper", "float", float("inf"), help="highest value kept (inclusive)"),
        ),
        "Binary mask of lower <= value <= upper.",
        "cupy",
        "numpy",
        "label",
        "exact (vs SimpleITK BinaryThreshold)",
        False,
    ),
    (
        "otsu",
        "Otsu threshold",
        intensity.otsu_impl,
        (_P("bins", "int", 128, "", 2, 4096, help="histogram bins"),),
        "Binary mask of the voxels above Otsu's threshold.",
        "cupy",
        "numpy",
        "label",
        ">= 99.9 % of voxels as SimpleITK OtsuThreshold (same bins); GPU vs CPU exact",
        False,
    ),
    (
        "binary_morphology",
        "Binary morphology",
        morphology.binary_morphology_impl,
        (
            _P("operation", "choice", "dilate", choices=morphology.OPERATIONS, help="dilate, erode, open or close"),
            _P("radius", "float", 1.0, "mm or voxels", 0.0, 50.0, help="ball radius"),
            _P("radius_unit", "choice", "mm", choices=("mm", "voxels"), help="unit of radius"),
        ),
        "Binary dilate / erode / open / close with an ellipsoidal ball.",
        "cupyx",
        "scipy.ndimage",
        "label",
        "exact vs SimpleITK (voxel ball) and GPU vs CPU",
        False,
    ),
    (
        "fill_holes",
        "Fill holes",
        morphology.fill_holes_impl,
        (),
        "Fill background regions not connected to the border.",
        "cupyx",
        "scipy.ndimage.label",
        "label",
        "exact vs SimpleITK BinaryFillhole",
        False,
    ),
    (
        "connected_components",
        "Connected components",
        morphology.connected_components_impl,
        (
            _P("connectivity", "int", 6, "", 6, 26, help="6 (faces) or 26 (faces, edges, corners)"),
            _P("min_size", "int", 0, "voxels", 0, None, help="drop smaller components"),
        ),
        "Label connected components, largest first.",
        "cupyx",
        "scipy.ndimage.label",
        "label",
        "exact vs SimpleITK ConnectedComponent + RelabelComponent",
        False,
    ),
    (
        "distance_map",
        "Distance map",
        morphology.distance_map_impl,
        (_P("signed", "bool", False, help="negative inside (SignedMaurer convention)"),),
        "Euclidean distance in mm to the mask (signed: to its boundary, negative inside).",
        "cupyx",
        "scipy.ndimage.distance_transform_edt",
        "scalar",
        "<= 1e-4 mm vs SimpleITK SignedMaurerDistanceMap",
        False,
    ),
    (
        "clahe",
        "CLAHE (3D)",
        enhance.clahe_impl,
        (
            _P("kernel_size", "float", 0.0, "mm", 0.0, 1000.0, help="contextual region; 0 = 1/8 of each axis"),
            _P("clip_limit", "float", 0.01, "", 0.0, 1.0, help="normalised clip limit; higher = more contrast"),
            _P("nbins", "int", 256, "", 2, 16384, help="histogram bins"),
        ),
        "Contrast-limited adaptive histogram equalisation in 3D; output float32 in [0, 1].",
        "cucim" if enhance.cucim_available() else "cpu",
        "skimage.exposure.equalize_adapthist",
        "scalar",
        "CPU == scikit-image (float32 rounding); GPU (cuCIM) vs CPU <= 2e-2 max, 1e-3 mean (not yet verified)",
        not enhance.cucim_available(),
    ),
    (
        "nlmeans",
        "Non-local means",
        denoise.nlmeans_impl,
        (
            _P("patch_size", "int", 5, "voxels", 1, 11, help="patch edge length in voxels (not spacing-weighted)"),
            _P("patch_distance", "int", 3, "voxels", 1, 10, help="search radius in voxels; cost grows as its cube"),
            _P("h", "float", 0.8, "x sigma", 0.01, 10.0, help="cut-off as a multiple of the noise sigma"),
            _P("sigma", "float", 0.0, "intensity", 0.0, 1e12, help="noise standard deviation; 0 = estimate"),
        ),
        "Non-local means denoising (scikit-image fast mode); runs on the CPU for every backend.",
        "cpu",
        "skimage.restoration.denoise_nl_means (fast_mode)",
        "scalar",
        "scikit-image called the same way, slab by slab: equal to one call within 1e-6 relative (float32 rounding "
        "of the integral images); CPU on both backends",
        True,
    ),
]

FILTERS: dict[str, FilterInfo] = {}
for _row in _TABLE:
    _name, _title, _impl, _params, _help, _gpu, _cpu, _out, _tol, _host = _row
    FILTERS[_name] = FilterInfo(_name, _title, _public(_name), _params, _help, _gpu, _cpu, _out, _tol, _impl, _host)
del _row
