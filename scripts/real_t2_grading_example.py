#!/usr/bin/env python
"""Write the committed example of grading the real sagittal T2 (``Resources/Examples/real_t2_grading/``).

Runs :func:`lumbarspine.grading.grade_study` on ``../shared/data/sct_t2_lumbar.nii.gz`` (the automatic
T2 segmentation, levels unnumbered since the sacrum is not in view) and keeps ``report.json``,
``report.csv``, the per-level plane pictures and ``area_along_canal.png``. The pictures are stored
with a 64-colour palette (grey banding, outlines kept) so that the example stays a few hundred KB. Run from the repository root:

    python scripts/real_t2_grading_example.py
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "LumbarSpine"))

from lumbarspine.grading import grade_study  # noqa: E402

SHARED = Path(os.environ.get("LUMBARSPINE_SHARED_DATA", ROOT.parent / "shared" / "data"))
OUT = ROOT / "Resources" / "Examples" / "real_t2_grading"


def main() -> int:
    """Grade the real T2 and write the example folder; returns the exit status."""
    from PIL import Image

    image = SHARED / "sct_t2_lumbar.nii.gz"
    if not image.is_file():
        print(f"The real T2 is not there: {image} (set LUMBARSPINE_SHARED_DATA).", file=sys.stderr)
        return 1
    try:  # a path relative to the repository, so the report names no machine's folders
        image = Path(os.path.relpath(image, ROOT))
    except ValueError:
        pass
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        grade_study(image, tmp, pictures=True)
        OUT.mkdir(parents=True, exist_ok=True)
        for old in [*OUT.glob("*.png"), *OUT.glob("report.*")]:  # the hand-written README.md stays
            old.unlink()
        for name in ("report.json", "report.csv"):
            shutil.copyfile(Path(tmp) / name, OUT / name)
        for png in sorted(Path(tmp).glob("*.png")):
            with Image.open(png) as picture:
                palette = picture.convert("RGB").quantize(colors=64, method=Image.Quantize.FASTOCTREE)
                palette.save(OUT / png.name, optimize=True)
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {OUT} ({total / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
