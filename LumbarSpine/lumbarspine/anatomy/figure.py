"""A picture of a segmented spine: the mid-sagittal slice with outlines and level names (PNG).

The slice is resampled from the image's own grid (any orientation) on the sagittal RAS plane
through the canal centreline's median R coordinate, anterior on the left and superior up as on a
radiology workstation; labels are sampled with nearest neighbour, intensities linearly. Written
with matplotlib (Agg) through :func:`lumbarspine.safe_write.atomic_output`.
"""

from __future__ import annotations

import os

import numpy as np
from scipy import ndimage

from ..labels import SPINAL_CANAL, SPINAL_CORD
from ..safe_write import atomic_output
from ..volume import Volume
from .model import SpineAnatomy

__all__ = ["midsagittal_png", "PIXEL_MM"]

PIXEL_MM = 0.5
"""Pixel size (mm) of the resampled mid-sagittal slice."""


def _plane_sample(volume: Volume, x: float, ys: np.ndarray, zs: np.ndarray, order: int) -> np.ndarray:
    yy, zz = np.meshgrid(ys, zs, indexing="xy")
    ras = np.column_stack([np.full(yy.size, x), yy.ravel(), zz.ravel()])
    ijk = volume.ras_to_ijk_points(ras)
    vals = ndimage.map_coordinates(
        np.asarray(volume.array, dtype=np.float32), ijk[:, ::-1].T, order=order, mode="constant", cval=0.0
    )
    return vals.reshape(yy.shape)


def midsagittal_png(
    image: Volume, anatomy: SpineAnatomy, path: str | os.PathLike[str], *, title: str | None = None
) -> str:
    """Write the mid-sagittal slice of ``image`` with the outlines of ``anatomy`` and level names.

    Dural sac (labels 1 and 2) in blue, the spinal cord inside it (label 1) in green, discs in orange,
    vertebral bodies / sacrum in yellow; each disc and vertebra
    named at its centroid (projected on the plane). Returns the path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lo, hi = image.bounds_ras()
    line = anatomy.centreline_ras
    x = float(np.median(line[:, 0])) if line is not None and len(line) else float(0.5 * (lo[0] + hi[0]))
    ys = np.arange(lo[1], hi[1] + 1e-6, PIXEL_MM)
    zs = np.arange(lo[2], hi[2] + 1e-6, PIXEL_MM)
    img = _plane_sample(image, x, ys, zs, order=1)
    lab = _plane_sample(anatomy.labels, x, ys, zs, order=0).astype(np.int32)
    extent = (ys[0], ys[-1], zs[0], zs[-1])
    vmax = float(np.percentile(img[img > 0], 99.5)) if np.any(img > 0) else 1.0
    fig, ax = plt.subplots(figsize=(6.5, 6.5 * (zs[-1] - zs[0]) / max(ys[-1] - ys[0], 1.0) + 0.6))
    ax.imshow(img, cmap="gray", origin="lower", extent=extent, vmin=0, vmax=vmax)
    discs = {d.label for d in anatomy.discs}
    verts = {v.label for v in anatomy.vertebrae}
    groups = [
        (np.isin(lab, (SPINAL_CANAL, SPINAL_CORD)), "#3c8cff", "dural sac"),
        (lab == SPINAL_CORD, "#40e070", "spinal cord"),
        (np.isin(lab, list(discs)), "#ff9a30", "discs"),
        (np.isin(lab, list(verts)), "#f0e060", "vertebrae"),
    ]
    for mask, colour, _ in groups:
        if mask.any():
            ax.contour(ys, zs, mask.astype(float), levels=[0.5], colors=[colour], linewidths=1.0)
    for item, colour in [*((d, "#ff9a30") for d in anatomy.discs), *((v, "#f0e060") for v in anatomy.vertebrae)]:
        _, y, z = item.centroid_ras
        ax.text(y + 4.0, z, item.name, color=colour, fontsize=7, va="center", ha="left")
    if line is not None:
        ax.plot(line[:, 1], line[:, 2], color="#3c8cff", lw=0.5, ls=":")
    ax.set_xlim(ys[-1], ys[0])  # anterior on the left
    ax.set_xlabel("A  <-  RAS y (mm)  ->  P")
    ax.set_ylabel("RAS z (mm), superior up")
    numbering = "numbered from the sacrum" if anatomy.numbering == "sacrum" else "NOT numbered (no sacrum seen)"
    ax.set_title(title or f"{anatomy.source}: mid-sagittal x = {x:.1f} mm, levels {numbering}", fontsize=8)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return os.fspath(path)
