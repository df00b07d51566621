"""Pictures that justify the grades: the measurement plane per level and the area along the canal.

* :func:`plane_picture`: the image resampled (trilinear) in the level's plane of minimum area, shown
  as Slicer shows an axial slice (patient right on the left of the screen, anterior up), with the
  dural sac outline (the 0.5 iso-contour that was measured), the AP diameter and the transverse
  width drawn, and the numbers and grade in the title.
* :func:`area_plot`: dural sac area along the centreline (mm from its cranial end), with the
  grading thresholds as horizontal lines, the disc levels as vertical lines, the fitted profile of
  each disc space (the local quadratic fit whose minimum is reported, in the grade's colour) and the
  reported minima marked.

Matplotlib is used through its object API (``Figure`` + Agg canvas): no pyplot, no global state.
Files go through :func:`lumbarspine.safe_write.atomic_output`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..safe_write import atomic_output
from ..volume import Volume
from .core import GradingResult, LevelResult
from .grades import RSNA_LABELS

__all__ = ["plane_picture", "area_plot", "resample_plane", "GRADE_COLOURS"]

GRADE_COLOURS: dict[str, str] = {"normal_mild": "#2ca02c", "moderate": "#ff7f0e", "severe": "#d62728"}
"""Colour per grade (pictures, plot and the 3D scene)."""


def resample_plane(
    image: Volume, center: np.ndarray, ap: np.ndarray, lateral: np.ndarray, half_mm: float, step_mm: float
) -> np.ndarray:
    """Image values (trilinear) on a square in a plane: rows = AP offset (increasing), columns = lateral offset
    (decreasing, so patient right is on the left as in Slicer's axial view)."""
    offsets = np.arange(-half_mm, half_mm + step_mm / 2, step_mm)
    b, a = np.meshgrid(offsets, offsets[::-1], indexing="ij")
    ras = center[None, :] + a.reshape(-1, 1) * lateral[None, :] + b.reshape(-1, 1) * ap[None, :]
    ijk = image.ras_to_ijk_points(ras)
    array = np.asarray(image.array, dtype=np.float32)
    values = ndimage.map_coordinates(array, [ijk[:, 2], ijk[:, 1], ijk[:, 0]], order=1, mode="constant", cval=np.nan)
    return values.reshape(b.shape)


def _save(figure, path: str | os.PathLike[str]) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    with atomic_output(path) as temp:
        figure.savefig(temp, format="png", dpi=figure.dpi)
    return Path(path)


def plane_picture(image: Volume, level: LevelResult, path: str | os.PathLike[str], half_mm: float = 22.0) -> Path:
    """Write the PNG of ``level``'s measurement plane (see the module docstring)."""
    from matplotlib.figure import Figure

    s = level.minimum
    if s is None:
        raise ValueError(f"{level.level} was not measured ({level.reason}): no plane to draw.")
    picture = resample_plane(image, s.center_ras, s.ap_direction_ras, s.lateral_direction_ras, half_mm, 0.2)
    finite = picture[np.isfinite(picture)]
    lo, hi = np.percentile(finite, [1, 99.5]) if finite.size else (0.0, 1.0)
    figure = Figure(figsize=(5.2, 5.6), dpi=110)
    ax = figure.add_subplot(1, 1, 1)
    ax.imshow(
        np.nan_to_num(picture, nan=lo),
        cmap="gray",
        vmin=lo,
        vmax=hi if hi > lo else lo + 1,
        origin="lower",
        extent=(half_mm, -half_mm, -half_mm, half_mm),
    )

    def to_xy(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rel = np.asarray(points, dtype=float) - s.center_ras
        return rel @ s.lateral_direction_ras, rel @ s.ap_direction_ras

    colour = GRADE_COLOURS.get(level.grade or "", "#1f77b4")
    if len(s.outline_ras):
        x, y = to_xy(np.vstack([s.outline_ras, s.outline_ras[:1]]))
        ax.plot(x, y, "-", color=colour, lw=1.4, label="dural sac outline")
    if np.all(np.isfinite(s.ap_line_ras)):
        x, y = to_xy(s.ap_line_ras)
        ax.plot(x, y, "-", color="#ffd700", lw=1.6, label=f"AP {s.ap_diameter_mm:.1f} mm")
    if np.all(np.isfinite(s.transverse_line_ras)):
        x, y = to_xy(s.transverse_line_ras)
        ax.plot(x, y, "--", color="#00bfff", lw=1.0, label=f"transverse {s.transverse_width_mm:.1f} mm")
    ax.set_xlim(half_mm, -half_mm)
    ax.set_ylim(-half_mm, half_mm)
    ax.set_xlabel("patient right  <-  lateral (mm)  ->  patient left")
    ax.set_ylabel("posterior  <-  AP (mm)  ->  towards the disc")
    grade = RSNA_LABELS.get(level.grade or "", "not graded")
    flag = ", borderline" if level.borderline else ""
    conf = f"{level.confidence:.2f}" if level.confidence is not None else "n/a"
    ax.set_title(
        f"{level.level}: DSCSA {level.area_mm2:.1f} +- {level.area_sd_mm2:.1f} mm2 -> {grade}\n"
        f"confidence {conf}{flag}; this plane {s.area_mm2:.1f} mm2\n"
        "(plane of the minimum fitted area, perpendicular to the canal)",
        fontsize=9,
    )
    ax.legend(loc="lower right", fontsize=7, framealpha=0.6)
    figure.subplots_adjust(left=0.13, right=0.97, bottom=0.1, top=0.86)
    return _save(figure, path)


def area_plot(result: GradingResult, path: str | os.PathLike[str]) -> Path:
    """Write the PNG of the dural sac area along the canal (see the module docstring)."""
    from matplotlib.figure import Figure

    th = result.thresholds
    figure = Figure(figsize=(8.0, 4.2), dpi=110)
    ax = figure.add_subplot(1, 1, 1)
    t, area = result.profile_t_mm, result.profile_area_mm2
    ax.plot(t, area, "-", color="#444444", lw=1.2, label="dural sac area (perpendicular to the canal)")
    ax.axhline(
        th.area_moderate_mm2,
        color=GRADE_COLOURS["moderate"],
        ls="--",
        lw=1,
        label=f"moderate < {th.area_moderate_mm2:g} mm2",
    )
    ax.axhline(
        th.area_severe_mm2, color=GRADE_COLOURS["severe"], ls="--", lw=1, label=f"severe < {th.area_severe_mm2:g} mm2"
    )
    finite = area[np.isfinite(area)]
    top = max(float(finite.max()) if finite.size else 0.0, th.area_moderate_mm2) * 1.15
    for lv in result.levels:
        if not np.isfinite(lv.t_mid_mm):
            continue
        ax.axvline(lv.t_mid_mm, color="#9999cc", ls=":", lw=0.8)
        ax.text(lv.t_mid_mm, top * 0.98, lv.level, rotation=90, va="top", ha="right", fontsize=7)
        if lv.minimum is not None:
            colour = GRADE_COLOURS.get(lv.grade or "", "k")
            if lv.search_fit:
                ts = [t for t, _ in lv.search]
                ax.plot(ts, lv.search_fit, "-", color=colour, lw=0.9, alpha=0.8)
            ax.plot([lv.t_min_mm], [lv.area_mm2], "o", color=colour, ms=5)
    for ref in result.references:
        if ref.section is not None:
            ax.plot([ref.t_mm], [ref.area_mm2], "s", mfc="none", color="#1f77b4", ms=4)
    ax.set_ylim(0, top)
    ax.set_xlim(0, result.centreline.length_mm)
    ax.set_xlabel("position along the dural sac centreline (mm from its cranial end)")
    ax.set_ylabel("area (mm2)")
    ax.set_title(
        "Dural sac area along the canal (coloured: fitted profile of each disc space, dot: its minimum; "
        "squares: mid-vertebral)",
        fontsize=9,
    )
    ax.legend(loc="lower left", fontsize=7, framealpha=0.7)
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.12, top=0.92)
    return _save(figure, path)
