#!/usr/bin/env python
"""Picture of a screw plan on a CT: per vertebra, the CT in its transverse (endplate) plane through the screws.

Segments the CT automatically (as ``lumbarspine segment``), plans (``plan_screws`` with the bone refined by
the CT's HU, :mod:`lumbarspine.planning.refine`) and writes a 2 x 3 panel PNG: bone window (-200..1000 HU), the
vertebra's label (red), the refined bone (green), planned screws (their outline projected on the plane,
coloured by Gertzbein-Robbins grade) and the refusals' reasons.

    python scripts/planning_real_ct_picture.py ../shared/data/totalseg_example_ct.nii.gz \\
        Resources/Examples/planning_real_ct.png
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "LumbarSpine"))

from lumbarspine.anatomy.segment import segment_image  # noqa: E402
from lumbarspine.io import read_volume  # noqa: E402
from lumbarspine.planning import PlanningMaps, plan_screws  # noqa: E402
from lumbarspine.planning.evaluate import GRADE_COLORS  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("out")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import ndimage

    image = read_volume(args.image)
    anatomy = segment_image(image, modality="ct")
    maps = PlanningMaps(anatomy, image=image)
    result = plan_screws(anatomy, maps=maps)
    ct = np.asarray(image.array, np.float32)
    labels = np.asarray(anatomy.labels.array)
    names = ["L1", "L2", "L3", "L4", "L5", "S1"]
    fig, axes = plt.subplots(2, 3, figsize=(9.0, 6.4))
    half = 40.0
    g = np.arange(-half, half, 0.4)
    a, b = np.meshgrid(g, g, indexing="ij")
    for ax, name in zip(axes.ravel(), names):
        ax.set_axis_off()
        frame = result["frames"].get(name)
        if frame is None:
            ax.set_title(f"{name}: no frame", fontsize=8)
            continue
        screws = [s for s in result["screws"] if s.vertebra == name]
        heights = [float(frame.to_local(((s.entry_ras + s.tip_ras) / 2)[None])[0, 2]) for s in screws]
        dz = float(np.mean(heights)) if heights else 0.0
        centre = frame.canal_center + dz * frame.superior + 8.0 * frame.anterior
        pts = centre + a.reshape(-1, 1) * frame.right + b.reshape(-1, 1) * frame.anterior
        ijk = image.ras_to_ijk_points(pts)
        hu = ndimage.map_coordinates(ct, ijk[:, ::-1].T, order=1, cval=-1024).reshape(a.shape)
        lijk = anatomy.labels.ras_to_ijk_points(pts)
        mine = ndimage.map_coordinates((labels == frame.label).astype(np.float32), lijk[:, ::-1].T, order=0)
        refined = frame.sdf.sample(pts).reshape(a.shape)
        extent = [-half, half, -half, half]
        # radiological display: patient's right on the image's left, anterior up
        ax.imshow(hu.T[:, ::-1], origin="lower", cmap="gray", vmin=-200, vmax=1000, extent=extent)
        ax.contour(-g, g, mine.reshape(a.shape).T, levels=[0.5], colors="red", linewidths=0.6)
        ax.contour(-g, g, refined.T, levels=[0.0], colors="lime", linewidths=0.6)
        for s in screws:
            loc = frame.to_local(np.stack([s.entry_ras, s.tip_ras])) - [0.0, 8.0, dz]
            d = loc[1] - loc[0]
            n = np.array([-d[1], d[0]]) / np.hypot(d[0], d[1]) * s.diameter_mm / 2
            quad = np.array([loc[0, :2] + n, loc[1, :2] + n, loc[1, :2] - n, loc[0, :2] - n, loc[0, :2] + n])
            color = GRADE_COLORS[s.evaluation["gertzbein_robbins"]]
            ax.plot(-quad[:, 0], quad[:, 1], color=color, linewidth=1.2)
        lines = [
            f"{s.side[0].upper()} {s.diameter_mm:g}x{s.length_mm:g} mm {s.medial_angle_deg:.0f} deg "
            f"{s.evaluation['gertzbein_robbins']}"
            for s in screws
        ]
        lines += [
            textwrap.shorten(f"{r.side[0].upper()} refused: {r.reason}", 60)
            for r in result["refused"]
            if r.vertebra == name
        ]
        ax.set_title(name, fontsize=9)
        ax.text(-half + 1, -half + 1, "\n".join(lines), color="yellow", fontsize=5.5, va="bottom")
        ax.text(-half + 1, half - 5, "R", color="white", fontsize=7)
    fig.suptitle(
        f"{len(result['screws'])} of 12 screws on a 3 mm CT (red: label, green: bone refined by HU)", fontsize=9
    )
    plt.tight_layout()
    fig.savefig(args.out, dpi=72)
    print(f"{args.out}: {len(result['screws'])} screws, {len(result['refused'])} refused")
    return 0


if __name__ == "__main__":
    sys.exit(main())
