"""A picture of a spine anatomy: the mid-sagittal slice through the canal with outlines and level names.

:func:`midsagittal_plane` fits the plane: it contains the canal centreline's main (cranio-caudal)
direction and is as close to the patient's sagittal plane as that allows (its normal is the RAS
left-right axis made perpendicular to the centreline), through the centreline's mean point. Without
a centreline, the true sagittal plane through the centre of the labelled structures is used.
:func:`render_midsagittal` resamples the image (linear) and the labels (nearest) on that plane and
draws it with matplotlib: superior up, anterior to the left (as Slicer's sagittal view shows it),
one outline per structure in its label colour, level names at the structures' centroids projected
onto the plane. Any module can call it (grading and planning pictures too).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..labels import label_color, segment_name
from ..safe_write import atomic_output
from ..volume import Volume
from .model import SpineAnatomy

__all__ = ["midsagittal_plane", "sample_plane", "render_midsagittal", "PIXEL_MM"]

PIXEL_MM = 0.5
"""Pixel size of the resampled slice, mm (finer than any clinical in-plane spacing the picture shows)."""


def midsagittal_plane(anatomy: SpineAnatomy) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(centre, superior, anterior)`` of the mid-sagittal plane, RAS mm and unit vectors (see the module docstring)."""
    line = anatomy.centreline_ras
    if line is not None and len(line) >= 2:
        centre = line.mean(axis=0)
        _, _, vt = np.linalg.svd(line - centre, full_matrices=False)
        superior = vt[0] if vt[0][2] >= 0 else -vt[0]
    else:
        array = np.asarray(anatomy.labels.array)
        kji = np.argwhere(array > 0)
        if len(kji) == 0:
            raise ValueError("The anatomy's label map is empty: there is nothing to draw.")
        centre = anatomy.labels.ijk_to_ras_points(kji.mean(axis=0)[::-1])[0]
        superior = np.array([0.0, 0.0, 1.0])
    normal = np.array([1.0, 0.0, 0.0]) - superior[0] * superior
    if np.linalg.norm(normal) < 1e-6:  # a canal running left-right: fall back to the coronal plane
        normal = np.array([0.0, 1.0, 0.0]) - superior[1] * superior
    normal /= np.linalg.norm(normal)
    anterior = np.cross(superior, normal)
    if anterior[1] < 0:
        anterior = -anterior
    return centre, superior / np.linalg.norm(superior), anterior / np.linalg.norm(anterior)


def sample_plane(
    volume: Volume, centre: np.ndarray, superior: np.ndarray, anterior: np.ndarray, *, order: int, pixel_mm: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resample ``volume`` on the plane: ``(slice [row = superior->inferior, col = anterior->posterior], s, a)``.

    ``s`` and ``a`` are the plane coordinates (mm from ``centre``) of the rows and columns. ``order`` 0
    is nearest neighbour (labels), 1 linear (images); outside the grid the slice is 0 (or the minimum).
    """
    from scipy import ndimage

    lo, hi = volume.bounds_ras()
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    s_range = (corners - centre) @ superior
    a_range = (corners - centre) @ anterior
    s = np.arange(s_range.max(), s_range.min(), -pixel_mm)
    a = np.arange(a_range.max(), a_range.min(), -pixel_mm)  # columns from anterior (left of the picture) to posterior
    ss, aa = np.meshgrid(s, a, indexing="ij")
    ras = centre[None, :] + ss.reshape(-1, 1) * superior[None, :] + aa.reshape(-1, 1) * anterior[None, :]
    ijk = volume.ras_to_ijk_points(ras)
    array = np.asarray(volume.array)
    fill = 0.0 if order == 0 else float(np.min(array))
    values = ndimage.map_coordinates(
        array.astype(np.float32) if order else array, ijk[:, ::-1].T, order=order, mode="constant", cval=fill
    )
    return values.reshape(ss.shape), s, a


def render_midsagittal(
    image: Volume,
    anatomy: SpineAnatomy,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    pixel_mm: float = PIXEL_MM,
) -> dict[str, Any]:
    """Draw the mid-sagittal picture of ``image`` with ``anatomy``'s outlines and level names into ``path`` (PNG).

    Returns the plane (``centre_ras``, ``superior``, ``anterior``) and the names drawn.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    centre, superior, anterior = midsagittal_plane(anatomy)
    picture, s, a = sample_plane(image, centre, superior, anterior, order=1, pixel_mm=pixel_mm)
    labels, _, _ = sample_plane(anatomy.labels, centre, superior, anterior, order=0, pixel_mm=pixel_mm)
    ones = image.with_array(np.ones(image.shape, np.uint8), is_label=True)
    inside, _, _ = sample_plane(ones, centre, superior, anterior, order=0, pixel_mm=pixel_mm)
    rows_in, cols_in = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    if len(rows_in) and len(cols_in):  # crop to the part of the plane inside the image
        r0, r1, c0, c1 = rows_in[0], rows_in[-1] + 1, cols_in[0], cols_in[-1] + 1
        picture, labels, s, a = picture[r0:r1, c0:c1], labels[r0:r1, c0:c1], s[r0:r1], a[c0:c1]
    labels = labels.astype(np.int64)
    inside = picture[picture > picture.min()] if np.any(picture > picture.min()) else picture
    if anatomy.modality == "ct":
        vmin, vmax = -250.0, 1250.0  # soft tissue to bone, HU
    else:
        vmin, vmax = (float(v) for v in np.percentile(inside, [1, 99.5]))

    def to_pixel(ap: np.ndarray | float, sp: np.ndarray | float) -> tuple[Any, Any]:
        return (a[0] - np.asarray(ap)) / pixel_mm, (s[0] - np.asarray(sp)) / pixel_mm

    rows, cols = picture.shape
    height = max(4.0, min(10.0, 8.0 * rows / max(1, cols)))
    fig, ax = plt.subplots(figsize=(8.0, height), dpi=110)
    ax.imshow(picture, cmap="gray", vmin=vmin, vmax=vmax, interpolation="bilinear")
    drawn: list[str] = []
    for value in [int(v) for v in np.unique(labels) if v != 0]:
        mask = (labels == value).astype(float)
        colour = tuple(c / 255.0 for c in label_color(value))
        ax.contour(mask, levels=[0.5], colors=[colour], linewidths=1.2)
    discs = {d.label for d in anatomy.discs}
    for item in (*anatomy.vertebrae, *anatomy.discs):
        if not np.any(labels == item.label):
            continue
        point = np.asarray(item.centroid_ras) - centre
        x, y = to_pixel(float(point @ anterior), float(point @ superior))
        x = x - (12.0 / pixel_mm if item.label in discs else 0.0)  # disc names in front of the disc
        ax.text(
            float(x),
            float(y),
            item.name,
            color="black",
            fontsize=8,
            ha="center",
            va="center",
            bbox={"boxstyle": "round,pad=0.15", "fc": tuple(c / 255.0 for c in label_color(item.label)), "alpha": 0.85},
        )
        drawn.append(item.name)
    if anatomy.centreline_ras is not None:
        rel = anatomy.centreline_ras - centre
        x, y = to_pixel(rel @ anterior, rel @ superior)
        ax.plot(x, y, color="cyan", linewidth=0.8, linestyle="--")
    for value in (1, 2):
        if np.any(labels == value):
            drawn.append(segment_name(value))
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_xlabel(f"anterior <-> posterior ({pixel_mm} mm per pixel); dashed: canal centreline")
    ax.set_ylabel("inferior <-> superior")
    numbering = anatomy.numbering or "not numbered"
    ax.set_title(title or f"{anatomy.modality}: mid-sagittal plane through the canal (levels: {numbering})", fontsize=9)
    fig.tight_layout()
    with atomic_output(path) as temp:
        fig.savefig(temp, format="png")
    plt.close(fig)
    return {
        "path": str(Path(path)),
        "centre_ras": [round(float(c), 3) for c in centre],
        "superior": [round(float(c), 4) for c in superior],
        "anterior": [round(float(c), 4) for c in anterior],
        "names_drawn": drawn,
    }
