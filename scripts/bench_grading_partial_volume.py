#!/usr/bin/env python
"""Grading from a partial-volume map of the dural sac against grading from the crisp labels (#8, rotation).

Writes ``scripts/benchmarks/grading-partial-volume-<machine>-<date>.md``:

* **fixed grids**: the phantom (stenosis L3-L4 90, L4-L5 60 mm2) on the axial, oblique and
  oblique-lefthanded 1 mm grids and the 0.6 x 0.6 x 4 mm axial stack: DSCSA per level from the crisp
  labels and from :func:`lumbarspine.phantom.sac_fraction` (on the thick stack with the
  :data:`~lumbarspine.grading.core.FRACTION_MAX_SPACING_MM` rule lifted, to show why it exists),
  error against the analytic truth, and the spread between the 1 mm grids;
* **random grids**: the phantom regenerated on ``--grids`` 1 mm grids turned by 0-25 degrees about
  random axes with random sub-voxel phases: mean error, its standard deviation and the share of grid
  pairs within 2 % of each other, crisp and partial volume;
* **time**: making the partial-volume map, and grading with it vs the labels.

Example::

    python scripts/bench_grading_partial_volume.py --grids 12
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "LumbarSpine"))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_filters import cpu_description  # noqa: E402
from bench_grading import benchmark_path, pair_differences, random_grid_phantoms  # noqa: E402

from lumbarspine.anatomy.build import anatomy_from_labels  # noqa: E402
from lumbarspine.grading import core, grade_anatomy  # noqa: E402
from lumbarspine.phantom import PhantomSpec, generate_phantom, sac_fraction  # noqa: E402

STENOSIS = {"L3-L4": 90.0, "L4-L5": 60.0}


def _both(phantom) -> tuple[dict[str, float], dict[str, float], float, float, float]:
    """Areas per level from the crisp labels and from the partial-volume map, and the three times (s)."""
    anatomy = anatomy_from_labels(phantom.labels, modality="ct", numbering="imported", source="phantom")
    started = time.perf_counter()
    fraction = sac_fraction(phantom)
    t_map = time.perf_counter() - started
    started = time.perf_counter()
    crisp = {lv.level: lv.area_mm2 for lv in grade_anatomy(anatomy).levels}
    t_crisp = time.perf_counter() - started
    shipped = core.FRACTION_MAX_SPACING_MM
    core.FRACTION_MAX_SPACING_MM = float("inf")  # measured on every grid here, thick slices included
    try:
        started = time.perf_counter()
        pv = {lv.level: lv.area_mm2 for lv in grade_anatomy(anatomy, sac_fraction=fraction).levels}
        t_pv = time.perf_counter() - started
    finally:
        core.FRACTION_MAX_SPACING_MM = shipped
    return crisp, pv, t_map, t_crisp, t_pv


def fixed_grids() -> list[str]:
    lines = [
        "## Fixed grids",
        "",
        "DSCSA (mm2) from the crisp labels / from the partial-volume map, and the error against the analytic "
        "truth (%). The thick stack is measured on its map here only to show the rule "
        f"`FRACTION_MAX_SPACING_MM = {core.FRACTION_MAX_SPACING_MM:g}` mm: the grading itself measures its labels.",
        "",
        "| grid | level | truth | crisp labels | partial-volume map |",
        "|---|---|---|---|---|",
    ]
    times = []
    one_mm: dict[str, list[tuple[float, float]]] = {}
    for spacing, orientation in (
        ((1.0, 1.0, 1.0), "axial"),
        ((1.0, 1.0, 1.0), "oblique"),
        ((1.0, 1.0, 1.0), "oblique-lefthanded"),
        ((0.6, 0.6, 4.0), "axial"),
    ):
        phantom = generate_phantom(PhantomSpec(stenosis=STENOSIS, spacing=spacing, orientation=orientation))
        crisp, pv, t_map, t_crisp, t_pv = _both(phantom)
        grid = f"{'x'.join(f'{s:g}' for s in spacing)} mm {orientation}"
        times.append(f"| {grid} | {t_map:.2f} | {t_crisp:.2f} | {t_pv:.2f} |")
        for level in crisp:
            truth = phantom.truth["levels"][level]["dural_sac_area_mm2"]
            lines.append(
                f"| {grid} | {level} | {truth:.1f} | {crisp[level]:.1f} ({100 * (crisp[level] / truth - 1):+.1f}) | "
                f"{pv[level]:.1f} ({100 * (pv[level] / truth - 1):+.1f}) |"
            )
            if spacing == (1.0, 1.0, 1.0):
                one_mm.setdefault(level, []).append((crisp[level], pv[level]))
        print(lines[-1], flush=True)
    lines += [
        "",
        "Spread between the three 1 mm grids ((max - min) / mean, %):",
        "",
        "| level | crisp labels | partial-volume map |",
        "|---|---|---|",
    ]
    for level, pairs in one_mm.items():
        cells = []
        for col in range(2):
            values = [p[col] for p in pairs]
            cells.append(f"{100 * (max(values) - min(values)) / (sum(values) / len(values)):.2f}")
        lines.append(f"| {level} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Seconds: making the map (`phantom.sac_fraction`), grading from the labels, grading from the map:",
        "",
        "| grid | map | grade (labels) | grade (map) |",
        "|---|---|---|---|",
        *times,
    ]
    return lines


def random_grids(n_grids: int) -> list[str]:
    import numpy as np

    samples: dict[str, list[tuple[float, float]]] = {}
    truth: dict[str, float] = {}
    for index, phantom in enumerate(random_grid_phantoms(n_grids, STENOSIS)):
        crisp, pv, *_ = _both(phantom)
        for level in crisp:
            truth[level] = phantom.truth["levels"][level]["dural_sac_area_mm2"]
            samples.setdefault(level, []).append((crisp[level], pv[level]))
        print(f"grid {index + 1}/{n_grids}", flush=True)
    lines = [
        "## Random 1 mm grids",
        "",
        f"{n_grids} phantoms regenerated on 1 mm grids turned by 0-25 degrees about random axes and shifted by "
        "random sub-voxel phases: mean error against the truth, its standard deviation (%), the largest "
        "difference between two grids (%) and the share of grid pairs within 2 % of each other:",
        "",
        "| level | truth mm2 | crisp labels | partial-volume map |",
        "|---|---|---|---|",
    ]
    for level, values in samples.items():
        v = np.asarray(values)
        err = 100.0 * (v / truth[level] - 1.0)
        cells = []
        for col in range(2):
            pairs = pair_differences(v[:, col])
            cells.append(
                f"{err[:, col].mean():+.2f} sd {err[:, col].std(ddof=1):.2f}, largest {100 * pairs.max():.2f}, "
                f"within 2 %: {100.0 * np.mean(pairs <= 0.02):.0f} %"
            )
        lines.append(f"| {level} | {truth[level]:.1f} | " + " | ".join(cells) + " |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", type=int, default=12, help="random 1 mm grids (0: skip the section)")
    parser.add_argument("--out", default=None, help="markdown file (default scripts/benchmarks/...)")
    args = parser.parse_args()
    machine = cpu_description()
    today = _dt.date.today().isoformat()
    lines = [
        f"# Grading from a partial-volume sac map: {machine}, {today}",
        "",
        f"Made with `python scripts/bench_grading_partial_volume.py --grids {args.grids}`. Phantom stenosis "
        f"{STENOSIS} (mm2). Load average when it started: {os.getloadavg()[0]:.1f}.",
        "",
        *fixed_grids(),
    ]
    if args.grids > 0:
        lines += ["", *random_grids(args.grids)]
    out = Path(args.out) if args.out else benchmark_path("grading-partial-volume", machine, today)
    from lumbarspine.safe_write import write_text

    write_text(out, "\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
