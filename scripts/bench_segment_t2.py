#!/usr/bin/env python
"""Benchmark the automatic T2 segmentation (``lumbarspine.anatomy.t2.segment_t2``), CPU backend.

Times one study end to end (resampling, sac tracking, delineation on the image's grid, levels,
anatomy) for: the real sagittal T2 in ``../shared/data/sct_t2_lumbar.nii.gz`` (when present), and
confounded T2 phantoms (a 0.6 x 0.6 x 4 mm axial stack and a 1 mm isotropic volume). Target: under
20 s per study on the 2-core development machine. Writes a markdown table to
``scripts/benchmarks/segment-t2-<machine>-<date>.md``; with ``--figure PATH`` it also writes the
mid-sagittal picture of the real T2's segmentation (``Resources/Examples/sct_t2_lumbar_segmentation.png``).

    python scripts/bench_segment_t2.py --repeats 3
    python scripts/bench_segment_t2.py --figure Resources/Examples/sct_t2_lumbar_segmentation.png
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
sys.path.insert(0, str(ROOT / "scripts"))

from bench_filters import cpu_description  # noqa: E402

from lumbarspine.anatomy.t2 import segment_t2  # noqa: E402
from lumbarspine.phantom import PhantomSpec, generate_phantom  # noqa: E402
from lumbarspine.safe_write import write_text  # noqa: E402

SHARED = Path(os.environ.get("LUMBARSPINE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _studies():  # type: ignore[no-untyped-def]
    if (SHARED / "sct_t2_lumbar.nii.gz").is_file():
        from lumbarspine.io import read_volume

        yield "real sagittal T2 sct_t2_lumbar (38x257x201, 1 mm)", read_volume(SHARED / "sct_t2_lumbar.nii.gz"), None
    for label, spacing in (("phantom T2 axial 0.6x0.6x4 mm", (0.6, 0.6, 4.0)), ("phantom T2 axial 1 mm", (1.0,) * 3)):
        ph = generate_phantom(PhantomSpec(modality="t2", spacing=spacing, stenosis={"L4-L5": 60.0}))
        yield label, ph.image, ph.labels


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="runs per study (median reported)")
    parser.add_argument("--out", default=str(ROOT / "scripts" / "benchmarks"), help="folder for the result table")
    parser.add_argument("--figure", default=None, help="write the real T2's mid-sagittal picture here")
    args = parser.parse_args()
    machine = cpu_description()
    date = _dt.date.today().isoformat()
    rows = []
    for label, image, truth in _studies():
        times = []
        anatomy = None
        for _ in range(max(1, args.repeats)):
            t0 = time.perf_counter()
            anatomy = segment_t2(image, backend="numpy")
            times.append(time.perf_counter() - t0)
        sac = anatomy.labels.array == 2
        dice = ""
        if truth is not None:
            ref = truth.array == 2
            dice = f"{2 * np.logical_and(sac, ref).sum() / (sac.sum() + ref.sum()):.3f}"
        levels = ", ".join(d.name for d in anatomy.discs)
        rows.append((label, f"{np.prod(image.shape):,}", statistics.median(times), min(times), dice, levels))
        print(f"{label}: median {statistics.median(times):.2f} s, sac Dice {dice or '-'}, discs: {levels}")
        if args.figure and truth is None:
            from lumbarspine.anatomy.figure import midsagittal_png

            midsagittal_png(image, anatomy, args.figure)
            print("figure:", args.figure)
    lines = [
        "# Automatic T2 segmentation benchmark (segment_t2, CPU backend)",
        "",
        f"- machine: {machine}",
        f"- date: {date}",
        f"- python {platform.python_version()}, numpy {np.__version__}; repeats: {args.repeats}; target < 20 s per study",
        "- command: `python scripts/bench_segment_t2.py`",
        "",
        "| study | voxels | median s | min s | sac Dice | discs found |",
        "|---|---|---|---|---|---|",
        *(f"| {a} | {b} | {c:.2f} | {d:.2f} | {e or '-'} | {f} |" for a, b, c, d, e, f in rows),
        "",
    ]
    slug = re.sub(r"[^a-z0-9]+", "-", machine.lower()).strip("-")
    path = Path(args.out) / f"segment-t2-{slug}-{date}.md"
    write_text(path, "\n".join(lines))
    print("wrote", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
