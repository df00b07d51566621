#!/usr/bin/env python
"""Benchmark the LumbarSpine filters against SimpleITK and SciPy (and CuPy when a GPU works).

Writes a markdown table to ``scripts/benchmarks/filters-<machine>-<date>.md`` (machine = GPU name, or
CPU model and core count). Data: random non-zero int16-range values stored as float32 (float32
compute). Times are the median of ``--repeats`` runs, in seconds (ms on the GPU).

Examples::

    python scripts/bench_filters.py --sizes 320x320x15 --repeats 3
    python scripts/bench_filters.py --sizes 512x512x300 --repeats 1 --skip-slow
    python scripts/bench_filters.py --filters gaussian,median --sizes 64x64x32

Sizes are given as i x j x k (columns x rows x slices).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "LumbarSpine"))

from lumbarspine import filters as F  # noqa: E402
from lumbarspine.backend import select_backend  # noqa: E402
from lumbarspine.volume import Volume  # noqa: E402


# name -> (registry filter, params(volume) , sitk(img, vol) or None, scipy(arr, vol) or None, cupyx(arr, vol) or None, slow)
def _dt_for(v):
    return min(v.spacing) / 16.0


def _specs():
    import scipy.ndimage as ndi
    import SimpleITK as sitk

    def sig_vox(v, s):
        return [s / x for x in v.spacing[::-1]]

    return {
        "gaussian": (
            "gaussian",
            lambda v: {"sigma": 1.0},
            lambda img, v: sitk.SmoothingRecursiveGaussian(img, 1.0),
            lambda a, v: ndi.gaussian_filter(a, sig_vox(v, 1.0), mode="nearest"),
            lambda cx, a, v: cx.gaussian_filter(a, sig_vox(v, 1.0), mode="nearest"),
            False,
        ),
        "median r1": (
            "median",
            lambda v: {"radius": 1},
            lambda img, v: sitk.Median(img, [1, 1, 1]),
            lambda a, v: ndi.median_filter(a, size=3, mode="nearest"),
            lambda cx, a, v: cx.median_filter(a, size=3, mode="nearest"),
            True,
        ),
        "median r2": (
            "median",
            lambda v: {"radius": 2},
            lambda img, v: sitk.Median(img, [2, 2, 2]),
            lambda a, v: ndi.median_filter(a, size=5, mode="nearest"),
            lambda cx, a, v: cx.median_filter(a, size=5, mode="nearest"),
            True,
        ),
        "gradient diffusion 5 it": (
            "gradient_diffusion",
            lambda v: {"time_step": _dt_for(v), "conductance": 3.0, "iterations": 5},
            lambda img, v: sitk.GradientAnisotropicDiffusion(img, _dt_for(v), 3.0, 1, 5),
            None,
            None,
            True,
        ),
        "curvature diffusion 5 it": (
            "curvature_diffusion",
            lambda v: {"time_step": _dt_for(v), "conductance": 3.0, "iterations": 5},
            lambda img, v: sitk.CurvatureAnisotropicDiffusion(img, _dt_for(v), 3.0, 1, 5),
            None,
            None,
            True,
        ),
        "bilateral 1 mm / 50": (
            "bilateral",
            lambda v: {"domain_sigma": 1.0, "range_sigma": 50.0},
            lambda img, v: sitk.Bilateral(img, 1.0, 50.0),
            None,
            None,
            True,
        ),
        "z-score": (
            "zscore",
            lambda v: {},
            lambda img, v: sitk.Normalize(img),
            None,
            None,
            False,
        ),
        "percentile rescale": ("rescale_percentile", lambda v: {}, None, None, None, False),
        "resample to 1 mm linear": (
            "resample",
            lambda v: {"spacing": 1.0, "antialias": False},
            lambda img, v: _sitk_resample(img, v, 1.0),
            None,
            None,
            False,
        ),
        "otsu": ("otsu", lambda v: {}, lambda img, v: sitk.OtsuThreshold(img, 0, 1, 128), None, None, False),
        "n4 shrink 4": (
            "n4",
            lambda v: {"shrink_factor": 4, "iterations": 50, "fitting_levels": 3},
            None,
            None,
            None,
            True,
        ),
    }


def _sitk_resample(img, v, spacing):
    import SimpleITK as sitk

    from lumbarspine.filters.resample import output_grid

    shape, origin = output_grid(v, (spacing,) * 3)
    grid = Volume(np.zeros((1, 1, 1), np.float32), spacing=(spacing,) * 3, origin=origin, direction=v.direction)
    ref = grid.to_sitk()
    ref = sitk.Image(list(shape[::-1]), sitk.sitkFloat32)
    ref.SetSpacing((spacing,) * 3)
    ref.SetOrigin(grid.to_sitk().GetOrigin())
    ref.SetDirection(grid.to_sitk().GetDirection())
    return sitk.Resample(img, ref, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)


def _time(fn, repeats):
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def cpu_description() -> str:
    """The CPU model and the cores this process may use, e.g. "AMD EPYC ... 2 cores" (benchmark headers)."""
    model = platform.processor() or "cpu"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return f"{model} {cores} cores"


def _machine(backend) -> str:
    return backend.device if backend.is_gpu else cpu_description()


def _fmt(t):
    return "-" if t is None else (f"{t:.3f}" if t < 10 else f"{t:.1f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="320x320x15,512x512x300", help="comma list of IxJxK sizes")
    ap.add_argument("--filters", default="", help="comma list of benchmark names (default all); see --list")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--skip-slow",
        action="store_true",
        help="for sizes above 20M voxels run slow reference filters once and skip SciPy median / bilateral / N4",
    )
    ap.add_argument("--out", default=str(ROOT / "scripts" / "benchmarks"))
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--backend", default="auto")
    args = ap.parse_args(argv)
    import SimpleITK as sitk

    specs = _specs()
    if args.list:
        print("\n".join(specs))
        return 0
    names = [n.strip() for n in args.filters.split(",") if n.strip()] or list(specs)
    for n in names:
        if n not in specs:
            ap.error(f"unknown benchmark {n!r}; choose from: {', '.join(specs)}")
    be = select_backend(args.backend)
    machine = _machine(be)
    sizes = [tuple(int(x) for x in s.lower().split("x")) for s in args.sizes.split(",")]
    lines = [
        f"# Filter benchmark: {machine}, {_dt.date.today().isoformat()}",
        "",
        f"Backend: {be}. SimpleITK {sitk.Version.VersionString()} with {sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()} threads. "
        f"Random non-zero int16-range data as float32; median of {args.repeats} run(s) unless noted; seconds.",
        "'ours-CPU' is the lumbarspine CPU twin (backend numpy, end to end through apply_filter); "
        "ratio = ours-CPU / SimpleITK (<= 1.0 means we are not slower).",
        "",
    ]
    rng = np.random.default_rng(0)
    for size in sizes:
        i, j, k = size
        arr = rng.integers(1, 4000, size=(k, j, i)).astype(np.float32)
        spacing = (0.6, 0.6, 3.0) if k < 64 else (0.8, 0.8, 1.0)
        vol = Volume(arr, spacing=spacing)
        img = vol.to_sitk()
        big = arr.size > 20_000_000
        lines += [f"## {i} x {j} x {k} (spacing {spacing} mm, {arr.nbytes / 1e6:.1f} MB float32)", ""]
        header = "| filter | ours-CPU | SimpleITK | SciPy | ratio ours/SimpleITK | CPU implementation |"
        sep = "|---|---|---|---|---|---|"
        if be.is_gpu:
            header = (
                header[:-1]
                + "| GPU device ms | GPU end-to-end ms | cupyx ms | bandwidth floor ms | GPU implementation |"
            )
            sep += "---|---|---|---|---|"
        lines += [header, sep]
        for name in names:
            fname, params, sitk_fn, scipy_fn, cupyx_fn, slow = specs[name]
            info = F.FILTERS[fname]
            reps = 1 if (big and slow) else args.repeats
            note = f" ({reps} run)" if reps != args.repeats else ""
            cpu_note = info.cpu
            if big and args.skip_slow and fname in ("bilateral", "n4"):
                lines.append(f"| {name} | skipped at this size | | | | {cpu_note} |")
                continue
            p = params(vol)
            ours = _time(lambda v=vol, f=fname, q=p: F.apply_filter(v, f, backend="numpy", **q), reps)
            st = _time(lambda fn=sitk_fn, im=img, v=vol: fn(im, v), reps) if sitk_fn else None
            sp = None
            if scipy_fn and not (big and args.skip_slow and "median" in name):
                sp = _time(lambda fn=scipy_fn, a=arr, v=vol: fn(a, v), reps)
            ratio = f"{ours / st:.2f}" if st else "-"
            if st and ours / st > 1.0:
                ratio += " (slower)"
            row = f"| {name}{note} | {_fmt(ours)} | {_fmt(st)} | {_fmt(sp)} | {ratio} | {cpu_note} |"
            if be.is_gpu:
                row += _gpu_cells(be, vol, fname, p, cupyx_fn, info)
            lines.append(row)
            print(row, flush=True)
        lines.append("")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", machine).strip("-").lower()
    path = out_dir / f"filters-{slug}-{_dt.date.today().isoformat()}.md"
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")
    return 0


def _gpu_cells(be, vol, fname, params, cupyx_fn, info) -> str:  # pragma: no cover - needs a GPU
    cp = be.xp
    import cupyx.scipy.ndimage as cx

    from lumbarspine.filters._core import RunContext

    dev = vol.with_array(cp.asarray(vol.array))
    ctx = RunContext(be)

    def device_ms(fn, reps=10):
        fn()
        cp.cuda.Device().synchronize()
        ts = []
        for _ in range(reps):
            start, stop = cp.cuda.Event(), cp.cuda.Event()
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            ts.append(cp.cuda.get_elapsed_time(start, stop))
        return statistics.median(ts)

    if info.host_only:
        return " | - | - | - | - | CPU (SimpleITK) |"
    d = device_ms(lambda: info.impl(dev, ctx, **params))
    F.apply_filter(vol, fname, backend=be, **params)
    e2e = 1000 * _time(lambda: F.apply_filter(vol, fname, backend=be, **params), 5)
    c = device_ms(lambda: cupyx_fn(cx, dev.array, vol)) if cupyx_fn else None
    a = dev.array
    b = cp.empty_like(a)
    copy_ms = device_ms(lambda: cp.copyto(b, a))
    return f" {d:.2f} | {e2e:.1f} | {'-' if c is None else f'{c:.2f}'} | {copy_ms:.2f} | {info.gpu} |"


if __name__ == "__main__":
    raise SystemExit(main())
