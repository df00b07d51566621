"""``lumbarspine grade``: grade the central canal of one study from the command line.

Example::

    lumbarspine grade t2_sag.nii.gz --segmentation t2_sag_seg.nii.gz --convention totalspineseg \\
        --axial t2_ax.nii.gz [--sac-probability sac_prob.nii.gz] --area-moderate 100 --area-severe 75 --out graded/

Writes ``report.json``, ``report.csv``, ``rsna.csv``, ``plane_<level>.png`` and
``area_along_canal.png`` into ``--out`` (see :func:`lumbarspine.grading.study.grade_study`) and
prints one line per level.
"""

from __future__ import annotations

import argparse
import sys

from .grades import RSNA_LABELS, GradingThresholds

NAME = "grade"

__all__ = ["NAME", "add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    defaults = GradingThresholds()
    parser = subparsers.add_parser(
        NAME,
        help="grade central canal stenosis per disc level (report.json/csv, rsna.csv, pictures)",
        description="Measure the dural sac at every lumbar disc level and grade it (RSNA classes).",
    )
    parser.add_argument("image", help="the image (T2 MRI; sagittal, axial or 3D)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--segmentation", default=None, help="its segmentation (label map); without it the automatic one runs"
    )
    parser.add_argument("--convention", default="auto", help="label convention of --segmentation (default auto)")
    parser.add_argument("--axial", default=None, help="an axial series of the same session for the routine axial areas")
    parser.add_argument(
        "--axial-mask",
        choices=("resample", "segment"),
        default="resample",
        help="dural sac of the axial series: the main segmentation resampled onto it (default) or segmented",
    )
    parser.add_argument(
        "--sac-probability",
        default=None,
        help="a partial-volume / probability map of the dural sac (values 0-1, e.g. a network's soft output) to "
        "measure the planes on instead of the crisp labels (voxels up to 2 mm)",
    )
    parser.add_argument(
        "--area-moderate",
        type=float,
        default=defaults.area_moderate_mm2,
        help=f"DSCSA below this (mm2) is moderate (default {defaults.area_moderate_mm2:g}; Bolender, Hamanishi)",
    )
    parser.add_argument(
        "--area-severe",
        type=float,
        default=defaults.area_severe_mm2,
        help=f"DSCSA below this (mm2) is severe (default {defaults.area_severe_mm2:g}; Schonstrom)",
    )
    parser.add_argument(
        "--ap-moderate",
        type=float,
        default=defaults.ap_moderate_mm,
        help=f"AP diameter below this (mm) is moderate (default {defaults.ap_moderate_mm:g}; Verbiest)",
    )
    parser.add_argument(
        "--ap-severe",
        type=float,
        default=defaults.ap_severe_mm,
        help=f"AP diameter below this (mm) is severe (default {defaults.ap_severe_mm:g}; Verbiest)",
    )
    parser.add_argument("--study-id", default=None, help="study_id in rsna.csv (default: the image file name)")
    parser.add_argument("--no-pictures", action="store_true", help="skip the PNGs")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def run(args: argparse.Namespace) -> int:
    from .study import grade_study

    thresholds = GradingThresholds(
        area_moderate_mm2=args.area_moderate,
        area_severe_mm2=args.area_severe,
        ap_moderate_mm=args.ap_moderate,
        ap_severe_mm=args.ap_severe,
    )

    def progress(fraction: float, message: str) -> None:
        if not args.quiet:
            print(f"[{fraction * 100:5.1f} %] {message}", file=sys.stderr, flush=True)

    summary = grade_study(
        args.image,
        args.out,
        segmentation=args.segmentation,
        convention=args.convention,
        axial=args.axial,
        axial_mask=args.axial_mask,
        thresholds=thresholds,
        study_id=args.study_id,
        pictures=not args.no_pictures,
        sac_probability=args.sac_probability,
        progress=progress,
    )
    print(f"{'level':<8} {'DSCSA mm2':>10} {'axial mm2':>10} {'AP mm':>6} {'width mm':>8}  grade (confidence)")
    for level in summary["report"]["levels"]:

        def fmt(value, digits=1):
            return "-" if value is None else f"{value:.{digits}f}"

        if level["dural_sac_area_mm2"] is None:
            print(f"{level['level']:<8} not measured: {level['reason']}")
            continue
        flag = " borderline" if level["borderline"] else ""
        print(
            f"{level['level']:<8} {fmt(level['dural_sac_area_mm2']):>10} {fmt(level['axial_slice_area_mm2']):>10} "
            f"{fmt(level['ap_diameter_mm']):>6} {fmt(level['transverse_width_mm']):>8}  "
            f"{RSNA_LABELS.get(level['central_canal_grade'], '?')} ({fmt(level['confidence'], 2)}){flag}"
        )
    for warning in summary["report"]["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"report: {summary['paths']['report_json']}")
    return 0
