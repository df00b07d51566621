#!/usr/bin/env python
"""Benchmark a full L1-S1 surgical plan on the phantom, screenshots included.

Runs :func:`lumbarspine.planning.study.plan_study` on the CT phantom (stenosis L4-L5 60 mm2 graded
severe, so one decompression is planned) and writes a markdown table with the step timings to
``scripts/benchmarks/planning-<machine>-<date>.md``. Target: under 20 s on a 2-core machine.

    python scripts/bench_planning.py --spacing 1.2 --repeats 2
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "LumbarSpine"))
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

from lumbarspine.anatomy.build import anatomy_from_labels  # noqa: E402
from lumbarspine.phantom import PhantomSpec, generate_phantom  # noqa: E402
from lumbarspine.planning.study import plan_study  # noqa: E402
from lumbarspine.safe_write import write_text  # noqa: E402


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spacing", type=float, default=1.2, help="isotropic phantom spacing, mm")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=None, help="markdown file (default scripts/benchmarks/planning-...)")
    args = parser.parse_args()
    phantom = generate_phantom(PhantomSpec(spacing=(args.spacing,) * 3, stenosis={"L4-L5": 60.0}))
    anatomy = anatomy_from_labels(phantom.labels, modality="ct", numbering="imported", source="phantom")
    grades = {"levels": [{"level": "L4-L5", "central_canal_grade": "Severe"}]}
    runs = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            summary = plan_study(folder, image=phantom.image, segmentation=anatomy, grades=grades)
            total = time.perf_counter() - start
        runs.append((total, summary))
        print(f"total {total:.2f} s {summary['timings']}", flush=True)
    totals = [r[0] for r in runs]
    steps = runs[0][1]["timings"].keys()
    cores = os.cpu_count()
    machine = f"{_cpu_name()} {cores} cores"
    date = _dt.date.today().isoformat()
    lines = [
        f"# Planning benchmark: {machine}, {date}",
        "",
        f"Full L1-S1 plan of the CT phantom ({phantom.labels.shape[::-1]} voxels i x j x k, {args.spacing} mm), "
        "screws on both sides of L1-L5 and S1, one decompression (L4-L5), the no-go zone, the Slicer scene, "
        "STL/OBJ exports, `scene.mrb` and four 700 x 700 screenshots (three plan views, one CPU volume "
        f"rendering; Mesa llvmpipe, EGL). Median of {args.repeats} run(s); seconds. The machine is shared "
        "with other jobs, so times vary.",
        "",
        f"Screws planned: {runs[0][1]['screws']}, refused: {runs[0][1]['refused']}.",
        "",
        "| step | seconds |",
        "|---|---|",
    ]
    for step in steps:
        lines.append(f"| {step} | {statistics.median(r[1]['timings'][step] for r in runs):.2f} |")
    lines.append(f"| **total (wall)** | **{statistics.median(totals):.2f}** |")
    lines.append("")
    lines.append(f"Target: under 20 s. Result: {'met' if statistics.median(totals) < 20 else 'NOT met'}.")
    slug = re.sub(r"[^a-z0-9]+", "-", machine.lower()).strip("-")
    out = Path(args.out) if args.out else ROOT / "scripts" / "benchmarks" / f"planning-{slug}-{date}.md"
    write_text(out, "\n".join(lines) + "\n")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
