"""``lumbarspine segment``: find (or import) the spine anatomy of a scan and write it out.

    lumbarspine segment IMAGE --out DIR [--modality auto|t2|ct] [--seed-point R,A,S]
                           [--segmentation SEG [--convention NAME] [--subregions SEM]]
                           [--method auto|totalspineseg|totalsegmentator] [--backend auto|cupy|numpy]

Writes ``DIR/labels.nii.gz``, ``DIR/segmentation.seg.nrrd``, ``DIR/anatomy.json`` and
``DIR/segmentation.png`` (:mod:`lumbarspine.anatomy.outputs`). With ``--segmentation`` the label map a
lab already has is imported instead of segmenting (:func:`~lumbarspine.anatomy.importers.load_segmentation`);
``--convention auto`` reads it only when its label set is unambiguous.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ..backend import BACKEND_CHOICES
from .conventions import CONVENTION_NAMES
from .segment import METHODS

__all__ = ["NAME", "add_parser", "run", "parse_seed_point"]

NAME = "segment"


def parse_seed_point(text: str | None) -> tuple[float, float, float] | None:
    """``"R,A,S"`` (mm, RAS as Slicer shows it) -> a tuple; None stays None."""
    if text is None:
        return None
    parts = [p for p in text.replace(" ", "").split(",") if p]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError as exc:
        raise ValueError(f"--seed-point takes three numbers R,A,S in mm; got {text!r}.") from exc
    if len(values) != 3:
        raise ValueError(f"--seed-point takes three numbers R,A,S in mm; got {len(values)} in {text!r}.")
    return values  # type: ignore[return-value]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        NAME,
        help="find the dural sac, discs, vertebrae and levels (or import a lab's segmentation)",
        description="Segment the lumbar spine in IMAGE (T2 MRI or CT), or import --segmentation SEG, and write "
        "labels.nii.gz, segmentation.seg.nrrd, anatomy.json and segmentation.png into --out.",
    )
    parser.add_argument("image", help="the scan (.nii.gz, .nrrd, .mha or a DICOM folder)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--modality", choices=("auto", "t2", "ct"), default="auto", help="auto detects CT by HU")
    parser.add_argument("--seed-point", default=None, help="a point in the canal, R,A,S in mm (T2 only)")
    parser.add_argument("--segmentation", default=None, help="import this label map / .seg.nrrd instead")
    parser.add_argument(
        "--convention", choices=("auto", *CONVENTION_NAMES), default="auto", help="label convention of --segmentation"
    )
    parser.add_argument("--subregions", default=None, help="SPINEPS semantic mask (with --convention spineps)")
    parser.add_argument("--method", choices=METHODS, default="auto", help="auto or a deep-learning tool if installed")
    parser.add_argument("--backend", choices=BACKEND_CHOICES, default="auto")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def run(args: argparse.Namespace) -> int:
    from ..io import read_volume
    from .arrays import resolve_backend
    from .importers import load_segmentation
    from .outputs import write_anatomy_outputs
    from .segment import detect_modality, segment_image

    def report(fraction: float, message: str) -> None:
        if not args.quiet:
            print(f"[{fraction * 100:5.1f} %] {message}", file=sys.stderr, flush=True)

    start = time.perf_counter()
    seed = parse_seed_point(args.seed_point)
    image = read_volume(args.image, is_label=False)
    info: dict[str, Any] = {"image": str(args.image), "modality_requested": args.modality}
    if args.segmentation is not None:
        if seed is not None:
            raise ValueError("--seed-point is used by the automatic segmentation, not with --segmentation.")
        if args.method != "auto":
            raise ValueError("--method runs a segmenter; it cannot be combined with --segmentation.")
        modality = detect_modality(image) if args.modality == "auto" else args.modality
        report(0.1, f"importing {args.segmentation} (convention {args.convention})")
        anatomy = load_segmentation(
            args.segmentation,
            convention=args.convention,
            reference=image,
            modality=modality,
            subregions=args.subregions,
        )
        info.update(segmentation=str(args.segmentation), convention_requested=args.convention, modality=modality)
    else:
        if args.subregions is not None:
            raise ValueError("--subregions goes with --segmentation SEG --convention spineps.")
        backend = resolve_backend(args.backend) if args.method == "auto" else args.backend
        anatomy = segment_image(
            image, modality=args.modality, seed_ras=seed, backend=backend, progress=report, method=args.method
        )
        info.update(method=args.method, backend_requested=args.backend, seed_point_ras=seed)
        if args.method == "auto":
            info.update(backend=backend.name)
    report(0.95, "writing labels, segmentation, anatomy.json and picture")
    paths = write_anatomy_outputs(args.out, image, anatomy, input_info=info)
    names = ", ".join([v.name for v in anatomy.vertebrae] + [d.name for d in anatomy.discs])
    print(f"levels: {names or 'none'} (numbering: {anatomy.numbering or 'not numbered'})")
    for warning in anatomy.warnings:
        print(f"warning: {warning}")
    for key, path in paths.items():
        print(f"{key:>12}: {path}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0
