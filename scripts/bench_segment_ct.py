#!/usr/bin/env python
"""Benchmark ``segment_ct`` (automatic CT segmentation) on one study, CPU backend.

Target (issue 7): one study under 20 s on the project's 2-core machine. Writes a markdown table to
``scripts/benchmarks/segment_ct-<machine>-<date>.md`` with the time of each step (from the progress
callback) and the total, median of ``--repeats`` runs.

Studies: the real abdominal CT ``../shared/data/totalseg_example_ct.nii.gz`` (3 mm, T11 to the
coccyx) when present, the CT phantom at 1 mm (L1 to the sacrum), and the phantom on a clinical-size
grid (0.75 x 0.75 x 1 mm, about 56 million voxels).

Example::

    python scripts/bench_segment_ct.py --repeats 3
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "LumbarSpine"))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_filters import cpu_description  # noqa: E402

from lumbarspine.anatomy.ct import segment_ct  # noqa: E402
from lumbarspine.io import read_volume  # noqa: E402
from lumbarspine.phantom import PhantomSpec, generate_phantom  # noqa: E402
from lumbarspine.safe_write import write_text  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def _run(volume) -> tuple[float, dict[str, float], object]:
    marks: list[tuple[float, str]] = []
    t0 = time.perf_counter()
    anatomy = segment_ct(volume, backend="numpy", progress=lambda f, m: marks.append((time.perf_counter() - t0, m)))
    total = time.perf_counter() - t0
    steps: dict[str, float] = {}
    for (t_a, name), (t_b, _) in zip(marks, marks[1:] + [(total, "")]):
        steps[name] = steps.get(name, 0.0) + (t_b - t_a)
    return total, steps, anatomy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None, help="markdown file (default scripts/benchmarks/...)")
    args = parser.parse_args(argv)

    studies = []
    real = SHARED / "totalseg_example_ct.nii.gz"
    if real.is_file():
        studies.append(("real CT totalseg_example_ct (3 mm, 122x101x112)", read_volume(real)))
    phantom = generate_phantom(PhantomSpec(modality="ct", spacing=(1.0, 1.0, 1.0), osteophytes=("L4-L5",)))
    shape = "x".join(str(n) for n in phantom.image.size_ijk)
    studies.append((f"CT phantom 1 mm ({shape}), osteophytes L4-L5", phantom.image))
    # a clinical-size grid: 0.75 x 0.75 x 1 mm over a 36 x 39 cm field (the phantom with wide margins)
    wide = generate_phantom(PhantomSpec(modality="ct", spacing=(0.75, 0.75, 1.0), margin_mm=80.0))
    shape = "x".join(str(n) for n in wide.image.size_ijk)
    studies.append((f"CT phantom 0.75x0.75x1 mm, clinical-size grid ({shape})", wide.image))

    machine = cpu_description()
    date = _dt.date.today().isoformat()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        f"# segment_ct benchmark: {machine}, {date}",
        "",
        f"Machine: {machine}; Python {platform.python_version()}; CPU backend; load average at start {load:.1f} "
        "(the machine is shared: a high load slows every step).",
        f"Median of {args.repeats} runs, seconds. Target: one study under 20 s.",
        "",
        "| study | total | steps (median s) | result |",
        "|---|---|---|---|",
    ]
    for name, volume in studies:
        totals: list[float] = []
        per_step: dict[str, list[float]] = {}
        anatomy = None
        for _ in range(max(1, args.repeats)):
            total, steps, anatomy = _run(volume)
            totals.append(total)
            for key, value in steps.items():
                per_step.setdefault(key, []).append(value)
        step_text = "; ".join(f"{k} {statistics.median(v):.2f}" for k, v in per_step.items())
        found = ", ".join(v.name for v in anatomy.vertebrae)  # type: ignore[union-attr]
        lines.append(f"| {name} | {statistics.median(totals):.2f} | {step_text} | {found} |")
        print(lines[-1])
    lines.append("")
    text = "\n".join(lines)
    slug = re.sub(r"[^a-z0-9]+", "-", machine.lower()).strip("-")
    out = Path(args.out) if args.out else ROOT / "scripts" / "benchmarks" / f"segment_ct-{slug}-{date}.md"
    write_text(out, text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
