"""Decompression (laminotomy / laminectomy) volumes for the stenotic levels.

For each chosen disc level (from a grading report: levels graded moderate or severe, or levels the
user picks):

1. **Level frame**: the canal centreline point nearest the disc (centre), the centreline's tangent
   (superior), the direction from the canal to the disc (anterior) and right = anterior x superior.
2. **Removal**: the bone of the two vertebrae at that level lying dorsal to the dural sac (behind the
   canal centre), within :attr:`DecompressionParameters.half_length_mm` of the disc level along the
   canal, and no farther from the mid-line than the bony canal's lateral wall (the medial border of
   the pedicles): the laminae and the medial parts of the facets. Everything lateral to the canal
   wall, where the pars interarticularis lies, is kept (a pars fracture followed removal of a mean
   66 % of the bone above the inferior articular process, Guigui 1998). The lateral limit then moves
   medially in 0.5 mm steps until at most :attr:`DecompressionParameters.max_facet_fraction` (50 %)
   of each facet is removed (resecting up to 50 % of the superior articular process barely changes
   the range of motion, complete resection raises it > 300 %; ``shared/docs/clinical-reference.md``).
3. **Facets**: the articular processes from the sub-regions (45-48) when the segmentation has them;
   from the vertebra masks alone, the posterior bone of the two vertebrae at the level, more than
   60 % of the canal's half-width from the mid-line (an estimate, stated in the result).
4. **Canal area afterwards**: in the plane perpendicular to the canal at the disc level, the bony
   canal (the hole the two vertebrae's bone encloses, projected over the decompressed span) plus the
   removed bone, minus the disc inside it: the space the decompressed sac may expand into (the
   ligamentum flavum, removed with the lamina, is not bone and counts as free space).

Volumes in cm3, areas in mm2, lengths in mm.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..anatomy.model import SUBREGIONS, SpineAnatomy
from ..labels import SPINAL_CANAL, SPINAL_CORD
from ..progress import CancelCallback, ProgressCallback, check_cancel
from ..volume import Volume
from .frame import unit

__all__ = [
    "DecompressionParameters",
    "DecompressionPlan",
    "plan_decompressions",
    "levels_to_decompress",
    "read_grades",
    "DECOMPRESS_GRADES",
]

DECOMPRESS_GRADES = ("moderate", "severe")
"""Central canal grades that call for a decompression (RSNA naming, case-insensitive)."""

PLANE_PIXEL_MM = 0.4
"""Pixel size (mm) of the cross-section used for the canal areas."""


@dataclass(frozen=True)
class DecompressionParameters:
    """Decompression rules (sources: ``shared/docs/clinical-reference.md``).

    Attributes:
        max_facet_fraction: at most this share of each facet is removed (0.5; Guigui 1998 and the
            range-of-motion data in clinical-reference.md).
        half_length_mm: the decompression spans this far (mm, along the canal) above and below the disc
            level (12 mm: the caudal lamina of the upper vertebra and the cranial lamina of the lower one).
        dorsal_depth_mm: bone is removed up to this far (mm) behind the canal's posterior wall (the
            laminae and the base of the spinous process, not the whole spinous process).
        pars_margin_mm: the lateral limit stays this far (mm) medial of the bony canal's lateral wall.
        keep_pars: never remove bone lateral to the bony canal's wall (where the pars lies).
    """

    max_facet_fraction: float = 0.5
    half_length_mm: float = 12.0
    dorsal_depth_mm: float = 8.0
    pars_margin_mm: float = 1.0
    keep_pars: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_facet_fraction <= 1.0:
            raise ValueError(f"max_facet_fraction must be between 0 and 1; got {self.max_facet_fraction}.")
        if not 2.0 <= self.half_length_mm <= 30.0:
            raise ValueError(f"half_length_mm must be between 2 and 30 mm; got {self.half_length_mm}.")


@dataclass(frozen=True, eq=False)
class DecompressionPlan:
    """One level's decompression: the removal mask (on the label map's grid) and its numbers."""

    level: str
    grade: str | None
    mask: np.ndarray
    bone_volume_cm3: float
    facet_removed_fraction: dict[str, float]
    facets_from: str
    lateral_limit_mm: float
    canal_area_before_mm2: float | None
    canal_area_after_mm2: float | None
    dural_sac_area_mm2: float | None
    centre_ras: np.ndarray
    superior: np.ndarray
    anterior: np.ndarray
    vertebrae: tuple[str, str]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        def r(v: Any) -> Any:
            return None if v is None else round(float(v), 2)

        return {
            "level": self.level,
            "grade": self.grade,
            "vertebrae": list(self.vertebrae),
            "bone_volume_cm3": round(self.bone_volume_cm3, 3),
            "facet_removed_fraction": {k: round(v, 3) for k, v in self.facet_removed_fraction.items()},
            "facets_from": self.facets_from,
            "lateral_limit_mm": r(self.lateral_limit_mm),
            "pars_kept": True,
            "canal_area_before_mm2": r(self.canal_area_before_mm2),
            "canal_area_after_mm2": r(self.canal_area_after_mm2),
            "dural_sac_area_mm2": r(self.dural_sac_area_mm2),
            "plane_center_ras": [round(float(c), 3) for c in self.centre_ras],
            "plane_normal_ras": [round(float(c), 5) for c in self.superior],
            "notes": list(self.notes),
        }


def read_grades(report: Any) -> dict[str, str]:
    """``{level: grade}`` from a grading report (path to ``report.json``, a dict or a list of rows).

    Rows are dicts with ``level`` and ``central_canal_grade`` (or ``grade``); a dict may hold them under
    ``"levels"`` (a list, or a mapping level -> row or grade). Grades are returned lower-case.

    Raises:
        ValueError: unreadable file, or no level with a grade in it.
    """
    if isinstance(report, (str, os.PathLike)):
        path = Path(report)
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"Cannot read the grading report {path}: {exc}") from exc
    rows: list[Any]
    if isinstance(report, dict):
        body = report.get("levels", report)
        if isinstance(body, dict):
            rows = [
                {"level": k, **v} if isinstance(v, dict) else {"level": k, "central_canal_grade": v}
                for k, v in body.items()
            ]
        else:
            rows = list(body)
    elif isinstance(report, (list, tuple)):
        rows = list(report)
    else:
        raise ValueError(f"A grading report must be a JSON object or a list of levels; got {type(report).__name__}.")
    grades: dict[str, str] = {}
    for row in rows:
        if not isinstance(row, dict) or "level" not in row:
            continue
        grade = row.get("central_canal_grade", row.get("grade"))
        if grade is None:
            continue
        grades[str(row["level"]).upper().replace("_", "-")] = str(grade).strip().lower()
    if not grades:
        raise ValueError(
            "The grading report holds no level with a 'central_canal_grade' (or 'grade'); "
            "give the levels to decompress explicitly instead."
        )
    return grades


def levels_to_decompress(grades: dict[str, str]) -> list[str]:
    """The levels graded moderate or severe (:data:`DECOMPRESS_GRADES`)."""
    return [level for level, grade in grades.items() if any(g in grade for g in DECOMPRESS_GRADES)]


def _level_vertebrae(anatomy: SpineAnatomy, level: str) -> tuple[Any, Any]:
    disc = anatomy.disc(level)
    names = level.split("-")
    if len(names) == 2 and anatomy.vertebra(names[0]) and anatomy.vertebra(names[1]):
        return anatomy.vertebra(names[0]), anatomy.vertebra(names[1])
    if disc is None:
        raise ValueError(f"No disc level {level!r} in the anatomy; it has {', '.join(d.name for d in anatomy.discs)}.")
    ranked = sorted(
        anatomy.vertebrae, key=lambda v: float(np.linalg.norm(np.asarray(v.centroid_ras) - disc.centroid_ras))
    )
    if len(ranked) < 2:
        raise ValueError(f"Level {level} needs a vertebra above and below it.")
    pair = sorted(ranked[:2], key=lambda v: -v.centroid_ras[2])
    return pair[0], pair[1]


def _level_frame(anatomy: SpineAnatomy, level: str, upper: Any, lower: Any) -> tuple[np.ndarray, ...]:
    disc = anatomy.disc(level)
    disc_centre = (
        np.asarray(disc.centroid_ras)
        if disc is not None
        else (np.asarray(upper.centroid_ras) + np.asarray(lower.centroid_ras)) / 2
    )
    line = anatomy.centreline_ras
    if line is None or len(line) < 3:
        raise ValueError(
            f"Level {level}: the segmentation has no dural sac / canal label, so the canal at the level cannot be "
            "found; a decompression needs it."
        )
    i = int(np.argmin(np.linalg.norm(line - disc_centre, axis=1)))
    superior = unit(line[max(i - 3, 0)] - line[min(i + 3, len(line) - 1)])
    # the canal point level with the disc centre
    t = (line - disc_centre) @ superior
    j = int(np.argmin(np.abs(t)))
    centre = line[j]
    anterior = disc_centre - centre
    anterior = unit(anterior - np.dot(anterior, superior) * superior)
    right = unit(np.cross(anterior, superior))
    return centre, right, anterior, superior


def _plane_grid(half: float = 32.0) -> tuple[np.ndarray, np.ndarray]:
    g = np.arange(-half, half + 1e-9, PLANE_PIXEL_MM)
    return np.meshgrid(g, g, indexing="ij")  # (u, w)


def plan_decompressions(
    anatomy: SpineAnatomy,
    levels: list[str] | tuple[str, ...],
    params: DecompressionParameters = DecompressionParameters(),
    *,
    grades: dict[str, str] | None = None,
    frames: dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
) -> list[DecompressionPlan]:
    """Decompression volumes at ``levels`` (see the module docstring).

    Args:
        anatomy: the spine (needs a dural sac / canal label and the two vertebrae of each level).
        levels: disc level names (``"L4-L5"``).
        params: :class:`DecompressionParameters`.
        grades: ``{level: grade}`` to carry into the result.
        frames: vertebra frames from the screw planner (their canal half-widths are reused).
        progress, cancel: callbacks.

    Raises:
        ValueError: unknown level, no canal label, a vertebra missing.
    """
    from scipy import ndimage

    from .frame import vertebra_frame

    labels = anatomy.labels
    array = np.asarray(labels.array)
    spacing_kji = np.asarray(labels.spacing[::-1], float)
    voxel_mm3 = labels.voxel_volume_mm3
    out: list[DecompressionPlan] = []
    for n, level in enumerate(levels):
        check_cancel(cancel, "Decompression planning")
        if progress is not None:
            progress(n / max(len(levels), 1), f"decompression at {level}")
        upper, lower = _level_vertebrae(anatomy, level)
        centre, right, anterior, superior = _level_frame(anatomy, level, upper, lower)
        notes: list[str] = []
        half_widths = []
        half_depths = []
        for info in (upper, lower):
            frame = (frames or {}).get(info.name)
            if frame is None:
                try:
                    frame = vertebra_frame(labels, info.label, info.name, centreline_ras=anatomy.centreline_ras)
                except ValueError:
                    frame = None
            if frame is not None and frame.foramen_found and info.name != "S1":
                half_widths.append(frame.canal_half_width_mm)
                half_depths.append(frame.canal_half_depth_mm)
        if not half_widths:
            half_widths = [11.0]
            notes.append("The bony canal's width was not found; 11 mm (half-width) was assumed.")
        canal_half = float(min(half_widths))
        canal_depth = float(max(half_depths)) if half_depths else 8.5
        # voxels of the two vertebrae near the level, in the level's (u, w, s) coordinates
        pair = (array == upper.label) | (array == lower.label)
        box = tuple(slice(max(int(i.min()) - 2, 0), int(i.max()) + 3) for i in np.nonzero(pair))
        kji = np.argwhere(pair[box]) + np.array([b.start for b in box])
        ras = labels.ijk_to_ras_points(kji[:, ::-1].astype(float))
        rel = ras - centre
        u, w, s = rel @ right, rel @ anterior, rel @ superior
        slab = np.abs(s) <= params.half_length_mm
        dorsal = (w < 0.0) & (w >= -(canal_depth + params.dorsal_depth_mm))
        # facets
        if anatomy.subregions is not None:
            sub = np.asarray(anatomy.subregions.array)[kji[:, 0], kji[:, 1], kji[:, 2]]
            facet_codes = {
                "left": (SUBREGIONS["superior_articular_left"], SUBREGIONS["inferior_articular_left"]),
                "right": (SUBREGIONS["superior_articular_right"], SUBREGIONS["inferior_articular_right"]),
            }
            facets = {side: slab & np.isin(sub, codes) for side, codes in facet_codes.items()}
            facets_from = "sub-regions (superior and inferior articular processes)"
        else:
            sign = {"left": -1.0, "right": 1.0}
            facets = {side: slab & dorsal & (sign[side] * u > 0.6 * canal_half) for side in ("left", "right")}
            facets_from = "estimated from the vertebra masks (posterior bone lateral of 60 % of the canal half-width)"
        limit = canal_half - params.pars_margin_mm if params.keep_pars else canal_half + 10.0
        while True:
            removal = slab & dorsal & (np.abs(u) <= limit)
            fractions = {
                side: (float((removal & f).sum()) / float(f.sum()) if f.any() else 0.0) for side, f in facets.items()
            }
            if max(fractions.values()) <= params.max_facet_fraction + 1e-9 or limit <= 2.0:
                break
            limit -= 0.5
        if max(fractions.values()) > params.max_facet_fraction + 1e-9:
            notes.append("Even a narrow laminotomy removes more of a facet than allowed: check this level by hand.")
        mask = np.zeros(array.shape, dtype=bool)
        sel = kji[removal]
        mask[sel[:, 0], sel[:, 1], sel[:, 2]] = True
        # areas in the plane at the disc level
        uu, ww = _plane_grid()
        steps = np.arange(-params.half_length_mm, params.half_length_mm + 1e-9, max(0.5, float(spacing_kji.min()) / 2))
        bone_proj = np.zeros(uu.shape, bool)
        removed_proj = np.zeros(uu.shape, bool)
        flat = np.stack([uu.ravel(), ww.ravel()], axis=1)
        removal_volume = Volume(mask.view(np.uint8), labels.spacing, labels.origin, labels.direction, is_label=True)
        for ds in steps:
            pts = centre + flat[:, :1] * right + flat[:, 1:] * anterior + ds * superior
            lab = labels.sample_nearest_ras(pts).reshape(uu.shape)
            bone_proj |= (lab == upper.label) | (lab == lower.label)
            removed_proj |= removal_volume.sample_nearest_ras(pts).reshape(uu.shape) > 0
        bone_proj = ndimage.binary_closing(bone_proj, iterations=2)
        holes, _ = ndimage.label(ndimage.binary_fill_holes(bone_proj) & ~bone_proj)
        middle = tuple(np.array(uu.shape) // 2)
        in_plane = labels.sample_nearest_ras(centre + flat[:, :1] * right + flat[:, 1:] * anterior).reshape(uu.shape)
        disc = anatomy.disc(level)
        disc_in_plane = (in_plane == disc.label) if disc is not None else np.zeros(uu.shape, bool)
        sac_in_plane = np.isin(in_plane, (SPINAL_CANAL, SPINAL_CORD))
        pixel = PLANE_PIXEL_MM**2
        if holes[middle] > 0:
            canal = holes == holes[middle]
            before = float((canal & ~disc_in_plane).sum()) * pixel
            after = float(((canal | removed_proj) & ~disc_in_plane).sum()) * pixel
        else:
            before = after = None
            notes.append("The vertebrae do not close a ring around the canal here: canal areas not measured.")
        out.append(
            DecompressionPlan(
                level=level,
                grade=(grades or {}).get(level),
                mask=mask,
                bone_volume_cm3=float(mask.sum()) * voxel_mm3 / 1000.0,
                facet_removed_fraction=fractions,
                facets_from=facets_from,
                lateral_limit_mm=limit,
                canal_area_before_mm2=before,
                canal_area_after_mm2=after,
                dural_sac_area_mm2=float(sac_in_plane.sum()) * pixel if sac_in_plane.any() else None,
                centre_ras=centre,
                superior=superior,
                anterior=anterior,
                vertebrae=(upper.name, lower.name),
                notes=tuple(notes),
            )
        )
    if progress is not None:
        progress(1.0, "decompressions planned")
    return out
