#!/usr/bin/env python
"""Segment a CT with ``segment_ct`` and draw it: mid-sagittal and axial slices with outlines and names.

Writes a PNG (default ``Resources/Examples/ct_segmentation.png``) through the project's atomic writer.
``--subregions`` draws the vertebrae's sub-regions instead (axial slices through L3 and L4 at the level of
their pedicles and of their articular processes, and para-sagittal slices through the facets;
default ``Resources/Examples/ct_subregions.png``).
The slices are taken on an RAS-aligned grid (so any input orientation reads the same way): the
mid-sagittal plane through the canal's median right-left position, and axial planes through the
centres of up to two vertebrae (L3 and L5 when numbered). Needs matplotlib (a development tool here,
not a dependency of the library).

Example::

    python scripts/ct_segmentation_picture.py ../shared/data/totalseg_example_ct.nii.gz
    python scripts/ct_segmentation_picture.py ../shared/data/totalseg_example_ct.nii.gz --subregions
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "LumbarSpine"))

from lumbarspine.anatomy.ct import segment_ct  # noqa: E402
from lumbarspine.anatomy.ct_grid import resample_onto, working_grid  # noqa: E402
from lumbarspine.anatomy.numbering import disc_name, vertebra_name  # noqa: E402
from lumbarspine.io import read_volume  # noqa: E402
from lumbarspine.safe_write import atomic_output  # noqa: E402


def _name(value: int) -> str:
    if value == 2:
        return "canal"
    return vertebra_name(value) or disc_name(value) or str(value)


def _colour(value: int, order: dict[int, int]):
    import matplotlib.pyplot as plt

    if value == 2:
        return (0.2, 0.6, 1.0)
    if disc_name(value) is not None:
        return (0.3, 0.9, 0.4)
    return plt.cm.tab10(order.get(value, 0) % 10)


def _draw(ax, image: np.ndarray, labels: np.ndarray, extent, order, title: str, min_px: int = 12) -> None:
    ax.imshow(image, origin="lower", cmap="gray", vmin=-250, vmax=1100, extent=extent, interpolation="nearest")
    h, w = image.shape
    sx = (extent[1] - extent[0]) / w
    sy = (extent[3] - extent[2]) / h
    for value in np.unique(labels):
        if value == 0:
            continue
        mask = labels == value
        if mask.sum() < min_px:
            continue
        colour = _colour(int(value), order)
        xs = extent[0] + (np.arange(w) + 0.5) * sx
        ys = extent[2] + (np.arange(h) + 0.5) * sy
        ax.contour(xs, ys, mask.astype(float), [0.5], colors=[colour], linewidths=1.2)
        jj, ii = np.nonzero(mask)
        x = extent[0] + (ii.mean() + 0.5) * sx
        y = extent[2] + (jj.mean() + 0.5) * sy
        if disc_name(int(value)) is not None:
            x = extent[0] + (ii.max() + 2.5) * sx  # disc names beside the disc, in front of the spine
        ax.text(
            x,
            y,
            _name(int(value)),
            color=colour,
            fontsize=7,
            ha="left" if disc_name(int(value)) else "center",
            va="center",
            weight="bold",
        )
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_subregions(ax, image: np.ndarray, sub: np.ndarray, extent, title: str) -> None:
    """CT slice with the sub-regions as filled colours (SUBREGION_NAMES colours of the seg.nrrd export)."""
    from matplotlib.colors import ListedColormap

    from lumbarspine.anatomy.outputs import _SUBREGION_COLOURS

    ax.imshow(image, origin="lower", cmap="gray", vmin=-250, vmax=1100, extent=extent, interpolation="nearest")
    colours = np.zeros((256, 4))
    for code, rgb in _SUBREGION_COLOURS.items():
        colours[code] = (*(c / 255.0 for c in rgb), 0.75)
    ax.imshow(np.ma.masked_equal(sub, 0), origin="lower", cmap=ListedColormap(colours), vmin=0, vmax=255,
              extent=extent, interpolation="nearest")  # fmt: skip
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def subregion_picture(volume, anatomy, out: str, title: str) -> None:
    """Axial slices through L3 and L4 (pedicle level, superior articular level, inferior articular level) and a
    para-sagittal slice through the left (L3 row) and right (L4 row) facets, the sub-regions coloured, with a
    legend."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from lumbarspine.anatomy.model import SUBREGION_NAMES, SUBREGIONS
    from lumbarspine.anatomy.outputs import _SUBREGION_COLOURS

    spacing = float(min(volume.spacing))
    grid = working_grid(volume, max(spacing, 1.0))
    image = resample_onto(volume, grid, linear=True, default=-1024.0)
    labels = resample_onto(anatomy.labels, grid, linear=False, default=0, dtype=np.int32)
    sub = resample_onto(anatomy.subregions, grid, linear=False, default=0, dtype=np.int32)
    sp = grid.spacing[0]
    lo = np.asarray(grid.origin)
    nk, nj, ni = labels.shape
    picks = [v for v in anatomy.vertebrae if v.name in ("L3", "L4")] or list(anatomy.vertebrae[1:3])
    fig, axes = plt.subplots(len(picks), 4, figsize=(14, 4.1 * len(picks)), dpi=90, squeeze=False, layout="constrained")
    ext_ax = (-(lo[0] + (ni - 1) * sp), -lo[0] + sp, lo[1], lo[1] + nj * sp)
    for row, v in enumerate(picks):
        mine = labels == v.label

        def level(code, mine=mine, v=v):
            pts = np.argwhere(mine & (sub == code))
            return int(np.median(pts[:, 0])) if len(pts) else int(round((v.centroid_ras[2] - lo[2]) / sp))

        rows = (
            ("pedicles", level(SUBREGIONS["pedicle_left"])),
            ("superior articular", level(SUBREGIONS["superior_articular_left"])),
            ("inferior articular", level(SUBREGIONS["inferior_articular_left"])),
        )
        nz = np.argwhere(mine.any(axis=0))
        for col, (what, k) in enumerate(rows):
            ax = axes[row][col]
            k = int(np.clip(k, 0, nk - 1))
            # radiological view: patient's right on the left of the picture, anterior up
            _draw_subregions(
                ax,
                image[k][:, ::-1],
                sub[k][:, ::-1],
                ext_ax,
                f"{v.name} axial at its {what} (S = {lo[2] + k * sp:.0f} mm)",
            )
            xs = ext_ax[0] + (np.arange(ni) + 0.5) * sp
            ys = lo[1] + (np.arange(nj) + 0.5) * sp
            ax.contour(xs, ys, mine[k][:, ::-1].astype(float), [0.5], colors=["white"], linewidths=0.8)
            if len(nz):
                (j0, i0), (j1, i1) = nz.min(axis=0), nz.max(axis=0)
                ax.set_xlim(ext_ax[0] + (ni - 1 - i1 - 8) * sp, ext_ax[0] + (ni - 1 - i0 + 8) * sp)
                ax.set_ylim(lo[1] + (j0 - 8) * sp, lo[1] + (j1 + 8) * sp)
        # para-sagittal through the superior articular process (left for the first vertebra, right for the
        # second): rows S, columns A (anterior to the right)
        side = "left" if row == 0 else "right"
        pts = np.argwhere(mine & (sub == SUBREGIONS[f"superior_articular_{side}"]))
        i = int(np.median(pts[:, 2])) if len(pts) else ni // 2
        ax = axes[row][3]
        near = np.isin(labels[:, :, i], [x.label for x in anatomy.vertebrae])
        _draw_subregions(
            ax,
            image[:, :, i],
            np.where(near, sub[:, :, i], 0),
            (lo[1], lo[1] + nj * sp, lo[2], lo[2] + nk * sp),
            f"para-sagittal, {side} facets (R = {lo[0] + i * sp:.0f} mm), anterior right",
        )
        xs = lo[1] + (np.arange(nj) + 0.5) * sp
        ys = lo[2] + (np.arange(nk) + 0.5) * sp
        ax.contour(xs, ys, mine[:, :, i].astype(float), [0.5], colors=["white"], linewidths=0.8)
        ks = np.nonzero(mine.any(axis=(1, 2)))[0]
        js = np.nonzero(mine.any(axis=(0, 2)))[0]
        ax.set_ylim(lo[2] + (ks.min() - 15) * sp, lo[2] + (ks.max() + 15) * sp)
        ax.set_xlim(lo[1] + (js.min() - 10) * sp, lo[1] + (js.max() + 10) * sp)
    handles = [
        Patch(color=np.array(_SUBREGION_COLOURS[c]) / 255.0, label=n) for c, n in SUBREGION_NAMES.items() if c != 49
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=6, fontsize=7)
    fig.suptitle(
        f"{title}: axial views radiological (patient's right on the left, anterior up); white: the named vertebra",
        fontsize=10,
    )
    with atomic_output(out) as temp:
        fig.savefig(temp, format="png")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", help="CT in HU (NIfTI, NRRD, ...)")
    parser.add_argument("--out", default=None, help="PNG (default Resources/Examples/ct_segmentation.png, or "
                        "ct_subregions.png with --subregions)")  # fmt: skip
    parser.add_argument("--subregions", action="store_true", help="draw the vertebrae's sub-regions (L3, L4)")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    volume = read_volume(args.image)
    anatomy = segment_ct(volume)
    if args.subregions:
        out = args.out or str(ROOT / "Resources" / "Examples" / "ct_subregions.png")
        subregion_picture(volume, anatomy, out, f"segment_ct sub-regions on {Path(args.image).name}")
        print(f"wrote {out}")
        return 0
    args.out = args.out or str(ROOT / "Resources" / "Examples" / "ct_segmentation.png")
    spacing = float(min(volume.spacing))
    grid = working_grid(volume, max(spacing, 1.0))
    image = resample_onto(volume, grid, linear=True, default=-1024.0)
    labels = resample_onto(anatomy.labels, grid, linear=False, default=0, dtype=np.int32)
    sp = grid.spacing[0]
    lo = np.asarray(grid.origin)  # RAS of voxel 0; array [S, A, R]
    order = {v.label: n for n, v in enumerate(anatomy.vertebrae)}
    canal = np.argwhere(labels == 2)
    i_mid = int(np.median(canal[:, 2])) if len(canal) else labels.shape[2] // 2

    picks = [v for v in anatomy.vertebrae if v.name in ("L3", "L5")] or list(
        anatomy.vertebrae[:: max(1, len(anatomy.vertebrae) // 2)]
    )[:2]
    fig = plt.figure(figsize=(11, 7.5), dpi=110)
    gs = fig.add_gridspec(2, 2, width_ratios=[1.15, 1.0])
    ax_sag = fig.add_subplot(gs[:, 0])
    # mid-sagittal: rows S, columns A; show anterior to the right
    nk, nj, _ = labels.shape
    ext = (lo[1], lo[1] + nj * sp, lo[2], lo[2] + nk * sp)
    sub = (slice(None), slice(None), i_mid)
    _draw(
        ax_sag,
        image[sub],
        labels[sub],
        ext,
        order,
        f"mid-sagittal (R = {lo[0] + i_mid * sp:.0f} mm), anterior to the right",
    )
    nz = np.argwhere(labels[sub] > 0)
    if len(nz):
        (k0, j0), (k1, j1) = nz.min(axis=0), nz.max(axis=0)
        ax_sag.set_xlim(lo[1] + (j0 - 25) * sp, lo[1] + (j1 + 45) * sp)
        ax_sag.set_ylim(lo[2] + (k0 - 15) * sp, lo[2] + (k1 + 15) * sp)
    for row, v in enumerate(picks[:2]):
        ax = fig.add_subplot(gs[row, 1])
        k = int(round((v.centroid_ras[2] - lo[2]) / sp))
        k = int(np.clip(k, 0, nk - 1))
        # axial: rows A, columns R; radiological view (patient's right on the left of the picture)
        ax_img = image[k][:, ::-1]
        ax_lab = labels[k][:, ::-1]
        nr = labels.shape[2]
        ext_ax = (-(lo[0] + (nr - 1) * sp), -lo[0] + sp, lo[1], lo[1] + nj * sp)
        _draw(
            ax,
            ax_img,
            ax_lab,
            ext_ax,
            order,
            f"axial through {v.name} (S = {lo[2] + k * sp:.0f} mm), anterior up, patient's right on the left",
        )
        nz = np.argwhere(ax_lab > 0)
        if len(nz):
            (r0, c0), (r1, c1) = nz.min(axis=0), nz.max(axis=0)
            ax.set_xlim(ext_ax[0] + (c0 - 15) * sp, ext_ax[0] + (c1 + 15) * sp)
            ax.set_ylim(ext_ax[2] + (r0 - 10) * sp, ext_ax[2] + (r1 + 10) * sp)
    numbering = "numbered from the sacrum" if anatomy.numbered else "not numbered (no sacrum in view)"
    fig.suptitle(
        f"segment_ct on {Path(args.image).name}: {len(anatomy.vertebrae)} vertebrae, "
        f"{len(anatomy.discs)} discs, canal; {numbering}",
        fontsize=10,
    )
    fig.tight_layout()
    with atomic_output(args.out) as temp:
        fig.savefig(temp, format="png")
    plt.close(fig)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
