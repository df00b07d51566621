"""Benchmark of the Slicer panels' run machinery on the real scans: worker overhead, progress, Cancel.

For each (scan, filter): the filter in this process (``apply_filter``), the same call through the panels'
path (``RunController`` + worker process: inputs written to a temporary folder, progress as JSON lines,
result read back), the longest pause between two progress lines, and how long Cancel takes at about
30 % of the run (median of 3). Also the slab-wise CPU median / non-local means against one SimpleITK /
scikit-image call. Writes ``scripts/benchmarks/desktop-<machine>-<date>.md``.

    python scripts/bench_desktop.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "LumbarSpine"))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_filters import _machine  # noqa: E402

from lumbarspine.backend import select_backend  # noqa: E402
from lumbarspine.filters import apply_filter  # noqa: E402
from lumbarspine.io import read_volume  # noqa: E402
from lumbarspine.safe_write import write_text  # noqa: E402
from SpineModulesLib import Job  # noqa: E402
from SpineModulesLib.controller import RunController  # noqa: E402

CASES = (
    ("sct_t2_lumbar.nii.gz", "nlmeans", {}),
    ("sct_t2_lumbar.nii.gz", "curvature_diffusion", {"iterations": 10}),
    ("totalseg_example_ct.nii.gz", "median", {"radius": 2}),
    ("totalseg_example_ct.nii.gz", "gaussian", {"sigma": 2.0}),
)


def _through_worker(volume, name, params):
    stamps, results = [], []
    controller = RunController(on_progress=lambda fraction, message: stamps.append(time.perf_counter()))
    job = Job("lumbarspine.filters:apply_filter", (volume, name), {"backend": "numpy", **params}, name)
    started = time.perf_counter()
    controller.start(job, {}, dict, results.append)
    assert controller.wait(600).value == "succeeded", controller.message
    seconds = time.perf_counter() - started
    gap = max(np.diff([started, *stamps])) if stamps else seconds
    return seconds, float(gap), results[0]


def _cancel_latency(volume, name, params, at=0.3):
    controller = RunController()
    job = Job("lumbarspine.filters:apply_filter", (volume, name), {"backend": "numpy", **params}, name)
    controller.start(job, {}, dict, lambda result: None)
    while controller.poll() and controller.fraction < at:
        time.sleep(0.01)
    started = time.perf_counter()
    controller.cancel()
    return time.perf_counter() - started, controller.fraction


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--out", default=str(ROOT / "scripts" / "benchmarks"))
    args = parser.parse_args(argv)
    machine = _machine(select_backend("numpy"))
    lines = [
        f"# Desktop run machinery: {machine}, {dt.date.today().isoformat()}",
        "",
        "Seconds, CPU backend, this machine shared with other jobs (expect noise). *worker* = the panels' path",
        "(worker process start, inputs and result through a temporary folder); *pause* = longest time without",
        "a progress line; *cancel* = time for Cancel to stop the worker at about 30 % (median of 3).",
        "",
        "| scan | filter | shape (k, j, i) | in process | worker | pause | cancel (at) | same values |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for scan, name, params in CASES:
        volume = read_volume(Path(args.data) / scan)
        started = time.perf_counter()
        reference = apply_filter(volume, name, backend="numpy", **params).volume.array
        inline = time.perf_counter() - started
        worker, pause, result = _through_worker(volume, name, params)
        cancels = [_cancel_latency(volume, name, params) for _ in range(3)]
        cancel = statistics.median(c[0] for c in cancels)
        at = statistics.median(c[1] for c in cancels)
        same = "yes" if np.array_equal(result.volume.array, reference) else "NO"
        label = name + "".join(f" {k}={v}" for k, v in params.items())
        lines.append(
            f"| {scan} | {label} | {volume.shape} | {inline:.2f} | {worker:.2f} | {pause:.2f} | {cancel:.3f} "
            f"({at:.2f}) | {same} |"
        )
        print(lines[-1], flush=True)

    import SimpleITK as sitk
    from skimage.restoration import denoise_nl_means

    from lumbarspine.filters.denoise import estimate_noise_sigma

    lines += ["", "Slab-wise CPU filters (progress and Cancel per slab) against one library call:", ""]
    lines += ["| scan | filter | one call | slab-wise | max abs difference |", "|---|---|---|---|---|"]
    ct = read_volume(Path(args.data) / "totalseg_example_ct.nii.gz")
    a = np.ascontiguousarray(ct.array, dtype=np.float32)
    started = time.perf_counter()
    one = sitk.GetArrayFromImage(sitk.Median(sitk.GetImageFromArray(a), [2] * 3))
    t_one = time.perf_counter() - started
    started = time.perf_counter()
    slabs = apply_filter(ct, "median", backend="numpy", radius=2).volume.array
    t_slabs = time.perf_counter() - started
    lines.append(f"| CT | median radius 2 | {t_one:.2f} | {t_slabs:.2f} | {float(np.abs(one - slabs).max()):.3g} |")
    t2 = read_volume(Path(args.data) / "sct_t2_lumbar.nii.gz")
    a = np.ascontiguousarray(t2.array, dtype=np.float32)
    sigma = estimate_noise_sigma(a)
    started = time.perf_counter()
    one = denoise_nl_means(
        a, patch_size=5, patch_distance=3, h=0.8 * sigma, fast_mode=True, sigma=sigma, preserve_range=True
    )
    t_one = time.perf_counter() - started
    started = time.perf_counter()
    slabs = apply_filter(t2, "nlmeans", backend="numpy").volume.array
    t_slabs = time.perf_counter() - started
    lines.append(f"| T2 | nlmeans defaults | {t_one:.2f} | {t_slabs:.2f} | {float(np.abs(one - slabs).max()):.3g} |")
    print("\n".join(lines[-2:]))
    lines += ["", "Note: on a shared machine the same call varies between runs; compare rows of one run with care."]

    slug = re.sub(r"[^a-z0-9]+", "-", machine.lower()).strip("-")
    path = Path(args.out) / f"desktop-{slug}-{dt.date.today().isoformat()}.md"
    write_text(path, "\n".join(lines) + "\n")
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
