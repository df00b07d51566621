#!/usr/bin/env python
"""Benchmark stenosis grading: time to grade one study from its segmentation, and accuracy on phantoms.

Writes ``scripts/benchmarks/grading-<machine>-<date>.md``:

* **speed**: ``grade_study`` from files (image + TotalSpineSeg label map) to files (report.json,
  report.csv, rsna.csv and, in the "with pictures" column, the PNGs), median of ``--repeats`` runs,
  with the share of the grading itself (:func:`lumbarspine.grading.grade_anatomy`). Target: under
  5 s per study on a 2-core machine;
* **accuracy**: dural sac area (DSCSA) per level against the phantom's analytic truth on several grids,
  and the spread of the same level between grids turned against each other.

Example::

    python scripts/bench_grading.py --repeats 3
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "LumbarSpine"))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_filters import cpu_description  # noqa: E402

from lumbarspine.anatomy.build import anatomy_from_labels  # noqa: E402
from lumbarspine.grading import grade_anatomy, grade_study  # noqa: E402
from lumbarspine.phantom import PhantomSpec, generate_phantom, write_phantom  # noqa: E402

STENOSIS = {"L3-L4": 90.0, "L4-L5": 60.0}


def speed(repeats: int) -> list[str]:
    lines = [
        "## Speed: one study from its segmentation (files in, files out)",
        "",
        "| study | grid (voxels) | grade_anatomy s | grade_study s (no pictures) | grade_study s (with pictures) "
        "| CPU s of grade_study with pictures |",
        "|---|---|---|---|---|---|",
    ]
    cases = [
        ("T2 phantom, sagittal 1 mm", dict(orientation="sagittal")),
        ("T2 phantom, axial 0.6 x 0.6 x 4 mm", dict(spacing=(0.6, 0.6, 4.0))),
        ("T2 phantom, oblique 0.7 mm", dict(orientation="oblique", spacing=(0.7, 0.7, 0.7))),
    ]
    for name, kwargs in cases:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            spec = PhantomSpec(modality="t2", stenosis=STENOSIS, **kwargs)
            write_phantom(folder / "ph", spec)
            phantom = generate_phantom(spec)
            anatomy = anatomy_from_labels(phantom.labels, modality="t2", numbering="imported", source="phantom")
            core, plain, full, cpu = [], [], [], []
            for r in range(repeats):
                t0 = time.perf_counter()
                grade_anatomy(anatomy)
                core.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                grade_study(
                    folder / "ph/image.nii.gz",
                    folder / f"a{r}",
                    segmentation=folder / "ph/labels.nii.gz",
                    pictures=False,
                )
                plain.append(time.perf_counter() - t0)
                t0, c0 = time.perf_counter(), time.process_time()
                grade_study(folder / "ph/image.nii.gz", folder / f"b{r}", segmentation=folder / "ph/labels.nii.gz")
                full.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            size = "x".join(str(n) for n in phantom.labels.size_ijk)
            lines.append(
                f"| {name} | {size} ({phantom.labels.array.size / 1e6:.1f} M) | {statistics.median(core):.2f} | "
                f"{statistics.median(plain):.2f} | {statistics.median(full):.2f} | {statistics.median(cpu):.2f} |"
            )
            print(lines[-1], flush=True)
    return lines


def accuracy() -> list[str]:
    grids = [
        ("axial 1 mm", dict(spacing=(1.0, 1.0, 1.0), orientation="axial")),
        ("sagittal 1 mm", dict(spacing=(1.0, 1.0, 1.0), orientation="sagittal")),
        ("oblique 1 mm", dict(spacing=(1.0, 1.0, 1.0), orientation="oblique")),
        ("oblique-lefthanded 1 mm", dict(spacing=(1.0, 1.0, 1.0), orientation="oblique-lefthanded")),
        ("axial 0.7 mm", dict(spacing=(0.7, 0.7, 0.7), orientation="axial")),
        ("oblique 0.7 mm", dict(spacing=(0.7, 0.7, 0.7), orientation="oblique")),
        ("axial 0.6 x 0.6 x 4 mm", dict(spacing=(0.6, 0.6, 4.0), orientation="axial")),
        ("oblique 0.6 x 0.6 x 4 mm", dict(spacing=(0.6, 0.6, 4.0), orientation="oblique")),
    ]
    areas: dict[str, dict[str, float]] = {}
    truth: dict[str, float] = {}
    rows = []
    for name, kwargs in grids:
        phantom = generate_phantom(PhantomSpec(stenosis=STENOSIS, **kwargs))
        anatomy = anatomy_from_labels(phantom.labels, modality="ct", numbering="imported", source="phantom")
        result = grade_anatomy(anatomy)
        areas[name] = {lv.level: lv.area_mm2 for lv in result.levels}
        truth = {lv: phantom.truth["levels"][lv]["dural_sac_area_mm2"] for lv in areas[name]}
        errors = [100.0 * (areas[name][lv] / truth[lv] - 1.0) for lv in truth]
        sds = {lv.level: lv.area_sd_mm2 for lv in result.levels}
        rows.append(
            f"| {name} | "
            + " | ".join(f"{areas[name][lv]:.1f} ({e:+.1f} %, sd {sds[lv]:.1f})" for lv, e in zip(truth, errors))
            + f" | {max(abs(e) for e in errors):.1f} |"
        )
        print(rows[-1], flush=True)
    levels = list(truth)
    lines = [
        "## Accuracy: DSCSA against the phantom's analytic truth (phantom labels)",
        "",
        "Truth: " + ", ".join(f"{lv} {truth[lv]:.1f} mm2" for lv in levels) + ". Cell: measured mm2 (error, "
        "reported standard uncertainty in mm2).",
        "",
        "| grid | " + " | ".join(levels) + " | max abs error % |",
        "|---|" + "---|" * (len(levels) + 1),
        *rows,
        "",
        "Spread between grids turned against each other (max |a - b| / a, %):",
        "",
    ]
    for a, b in (
        ("axial 1 mm", "oblique 1 mm"),
        ("axial 1 mm", "oblique-lefthanded 1 mm"),
        ("axial 0.7 mm", "oblique 0.7 mm"),
        ("axial 0.6 x 0.6 x 4 mm", "oblique 0.6 x 0.6 x 4 mm"),
    ):
        spread = {lv: 100.0 * abs(areas[a][lv] - areas[b][lv]) / areas[a][lv] for lv in levels}
        worst = max(spread, key=spread.get)
        lines.append(
            f"- {a} vs {b}: max {spread[worst]:.1f} % ({worst}); "
            + ", ".join(f"{lv} {v:.1f}" for lv, v in spread.items())
        )
    lines += [
        "",
        "Notes: the spread between grids is the voxel raster of the crisp label map itself (any boundary within "
        "+-half a voxel gives the same labels); it shrinks with the voxel size and grows as the section gets "
        "smaller. The reported sd is the uncertainty of a segmentation boundary known to +-half a voxel "
        "(1/sqrt(12) voxel along the outline normal, integrated over the outline) plus the slice-thickness term, "
        "so it is larger than the error of measuring these exact labels.",
    ]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument(
        "--out", default=None, help="markdown file (default scripts/benchmarks/grading-<machine>-<date>.md)"
    )
    args = parser.parse_args()
    machine = cpu_description()
    today = _dt.date.today().isoformat()
    lines = [
        f"# Grading benchmark: {machine}, {today}",
        "",
        f"Made with `python scripts/bench_grading.py --repeats {args.repeats}`. Phantom stenosis {STENOSIS} (mm2). "
        "Seconds, median of the repeats (wall clock, and the process's CPU time, which other jobs on a shared "
        f"machine do not inflate). Load average when it started: {os.getloadavg()[0]:.1f} on this machine.",
        "",
        *speed(args.repeats),
        "",
    ]
    if not args.skip_accuracy:
        lines += accuracy()
    slug = "".join(c if c.isalnum() else "-" for c in machine.lower()).strip("-")
    while "--" in slug:
        slug = slug.replace("--", "-")
    out = Path(args.out) if args.out else ROOT / "scripts" / "benchmarks" / f"grading-{slug}-{today}.md"
    from lumbarspine.safe_write import write_text

    write_text(out, "\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
