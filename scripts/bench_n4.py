#!/usr/bin/env python
"""Benchmark N4 bias-field correction: our array code (NumPy; CuPy where a GPU works) vs SimpleITK's N4.

Both run the same way (the ``n4`` filter's defaults: shrink 4, 4 fitting levels of at most 50
iterations, 4 control points, convergence 0.001, Otsu foreground mask), so the difference is the
implementation. Each row gives the median of ``--repeats`` runs, the largest log-field difference from
SimpleITK (the documented tolerance is 2e-3, ``lumbarspine.filters.bias``) and the ratio ours /
SimpleITK measured in the same run. Studies: the T2 phantom (confounders on), the real sagittal T2 and
the small real MR of ``../shared/data`` where present, and synthetic 320x320x15 and 512x512x300 T2-like
volumes (the sizes of the filter benchmark).

Writes ``scripts/benchmarks/n4-<machine>-<date>.md``. Example::

    python scripts/bench_n4.py --repeats 3                 # CPU: numpy vs SimpleITK
    python scripts/bench_n4.py --backends numpy,cupy       # on a GPU machine (scripts/gpu_checks.sh)
"""

from __future__ import annotations

import argparse
import datetime as _dt
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "LumbarSpine"))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_filters import cpu_description  # noqa: E402

from lumbarspine.filters import apply_filter  # noqa: E402
from lumbarspine.filters.bias import n4_simpleitk  # noqa: E402
from lumbarspine.volume import Volume  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def _synthetic(size_ijk: tuple[int, int, int], spacing: tuple[float, float, float]) -> Volume:
    """A T2-like body (bright ellipsoid of tissue, darker core) with a smooth multiplicative field and noise."""
    ni, nj, nk = size_ijk
    k, j, i = np.meshgrid(*(np.linspace(-1, 1, n, dtype=np.float32) for n in (nk, nj, ni)), indexing="ij")
    body = (i**2 / 0.8 + j**2 / 0.6) < 1.0
    image = np.where(body, 400.0, 5.0) + np.where(i**2 + j**2 < 0.05, 300.0, 0.0)
    field = np.exp(0.3 * i + 0.2 * j - 0.1 * k)
    noise = np.random.default_rng(0).normal(0.0, 10.0, image.shape)
    return Volume((np.abs(image * field + noise)).astype(np.float32), spacing=spacing)


def _studies() -> list[tuple[str, Volume]]:
    from lumbarspine.io import read_volume
    from lumbarspine.phantom import PhantomSpec, generate_phantom

    out = [("T2 phantom 1.5 mm", generate_phantom(PhantomSpec(modality="t2", spacing=(1.5, 1.5, 1.5))).image)]
    for name in ("sct_t2_lumbar.nii.gz", "totalseg_example_mr_sm.nii.gz"):
        if (SHARED / name).is_file():
            out.append((f"real {name}", read_volume(SHARED / name)))
    out.append(("synthetic 320x320x15", _synthetic((320, 320, 15), (0.6, 0.6, 4.0))))
    out.append(("synthetic 512x512x300", _synthetic((512, 512, 300), (0.7, 0.7, 1.0))))
    return out


def _median_time(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def _log_field(volume: Volume, corrected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(volume.array, np.float64)
    ok = a > 0
    return np.log(a[ok] / np.asarray(corrected, np.float64)[ok]), ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="runs per cell; the median is reported")
    ap.add_argument("--backends", default="numpy", help="comma list of our backends to time (numpy, cupy)")
    ap.add_argument("--out", type=Path, default=ROOT / "scripts" / "benchmarks", help="folder for the table")
    args = ap.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]

    rows = []
    for name, volume in _studies():
        t_sitk, (_, sitk_field) = _median_time(lambda v=volume: n4_simpleitk(v), args.repeats)
        cells = [name, "x".join(str(n) for n in volume.size_ijk), f"{t_sitk:.2f}"]
        for backend in backends:
            t_ours, result = _median_time(lambda v=volume, b=backend: apply_filter(v, "n4", backend=b), args.repeats)
            ours, ok = _log_field(volume, result.volume.array)
            diff = float(np.abs(ours - sitk_field[ok]).max())
            cells += [f"{t_ours:.2f}", f"{t_ours / t_sitk:.2f}", f"{diff:.1e}"]
        rows.append(cells)
        print(" | ".join(cells), flush=True)

    machine = cpu_description()
    if "cupy" in backends:
        from lumbarspine.backend import select_backend

        machine = f"{select_backend('cupy').device} + {machine}"
    header = ["study", "size (i x j x k)", "SimpleITK N4 s"]
    for b in backends:
        header += [f"ours ({b}) s", f"ours / SimpleITK ({b})", f"max log-field diff ({b})"]
    day = _dt.date.today().isoformat()
    lines = [
        f"# N4 bias-field correction: ours vs SimpleITK ({machine}, {day})",
        "",
        f"`python scripts/bench_n4.py --repeats {args.repeats} --backends {args.backends}`; median of "
        f"{args.repeats} runs, wall seconds, same parameters for both (shrink 4, 4 levels x <= 50 "
        "iterations, Otsu mask); the ratio is from the same run. Tolerance of the log-field difference: 2e-3.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", machine.lower()).strip("-")
    path = args.out / f"n4-{slug}-{day}.md"
    path.write_text("\n".join(lines))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
