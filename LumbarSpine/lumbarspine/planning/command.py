"""``lumbarspine plan``: the surgical plan of one study from the command line.

lumbarspine plan [IMAGE] [--segmentation SEG --convention NAME] [--grades report.json]
                 [--levels L4-L5,L3-L4] [--coordinates RAS|LPS] --out DIR
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["NAME", "add_parser", "run"]

NAME = "plan"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        NAME,
        help="plan pedicle screws, decompressions and the no-go zone; write plan.json, models, scene.mrb, PNGs",
        description="Surgical plan of one study. The image may be left out when a segmentation is given "
        "(screws are then planned from the vertebra masks alone and the volume rendering is skipped).",
    )
    parser.add_argument("image", nargs="?", default=None, help="CT or MRI (NIfTI, NRRD, DICOM folder)")
    parser.add_argument("--segmentation", default=None, help="label map to import instead of segmenting the image")
    parser.add_argument("--convention", default="auto", help="label convention of --segmentation (default: auto)")
    parser.add_argument(
        "--grades", default=None, help="grading report.json: moderate/severe levels get a decompression"
    )
    parser.add_argument("--levels", default=None, help="levels to decompress, e.g. L4-L5,L3-L4 (overrides --grades)")
    parser.add_argument("--coordinates", choices=("RAS", "LPS"), default="RAS", help="coordinates of STL/OBJ exports")
    parser.add_argument(
        "--trajectory",
        default="pedicle-axis",
        choices=("pedicle-axis", "pedicle-triangle", "roy-camille", "magerl", "weinstein"),
        help="screw trajectory (default: the pedicle's own axis through the isthmus)",
    )
    parser.add_argument("--no-go-margin", type=float, default=2.0, help="no-go zone margin around the sac, mm")
    parser.add_argument("--no-screenshots", action="store_true", help="skip the offscreen 3D screenshots")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--quiet", action="store_true")
    return parser


def run(args: argparse.Namespace) -> int:
    from .screws import PlanningParameters
    from .study import plan_study

    if args.image is None and args.segmentation is None:
        raise ValueError("Give an IMAGE, a --segmentation, or both.")

    def report(fraction: float, message: str) -> None:
        if not args.quiet:
            print(f"[{fraction * 100:5.1f} %] {message}", file=sys.stderr, flush=True)

    levels = [lv.strip().upper() for lv in args.levels.split(",") if lv.strip()] if args.levels else None
    summary = plan_study(
        args.out,
        image=args.image,
        segmentation=args.segmentation,
        convention=args.convention,
        grades=args.grades,
        levels=levels,
        coordinates=args.coordinates,
        screw_params=PlanningParameters(trajectory=args.trajectory, no_go_margin_mm=args.no_go_margin),
        no_go_margin_mm=args.no_go_margin,
        screenshots=not args.no_screenshots,
        progress=report,
    )
    print(json.dumps({k: summary[k] for k in ("screws", "refused", "decompressions", "timings")}))
    for warning in summary["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"plan: {summary['paths']['plan']}")
    return 0
