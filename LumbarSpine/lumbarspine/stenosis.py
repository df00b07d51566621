"""Central canal stenosis from a TotalSpineSeg label map: dural sac area and AP diameter per level.

For every lumbar disc level present in the label map (L1-L2 ... L5-S1):

1. the disc's centroid (RAS mm) locates the level;
2. the local canal axis is the principal axis of the canal voxels near the disc (PCA over a
   sphere of :attr:`LevelFinding.window_mm`), oriented superior; the measurement plane is
   perpendicular to it, through the point of the canal axis level with the disc centroid;
3. the dural sac (label 2) is measured in that plane by
   :func:`lumbarspine.measure.cross_section.cross_section_area_mm2` (area in mm2, AP diameter
   along the in-plane direction pointing to the disc, lateral diameter);
4. the area and the AP diameter are graded with :class:`StenosisThresholds`.

Thresholds (``shared/docs/clinical-reference.md``): dural sac cross-sectional area >= 100 mm2
normal, 75-100 mm2 relative (moderate), < 75 mm2 absolute (severe) (Schonstrom & Hansson 1988;
Bolender 1985; Hamanishi 1994); mid-sagittal AP diameter >= 13 mm normal, 10-12 mm relative,
< 10 mm absolute (Verbiest). Grades are reported in the RSNA 2024 naming (``Normal/Mild``,
``Moderate``, ``Severe``). They are estimates from a segmentation, not a radiologist's reading.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .labels import DISC_LABELS, DISC_LEVELS, SPINAL_CANAL, check_totalspineseg
from .volume import Volume, validate_label_volume

__all__ = ["StenosisThresholds", "LevelFinding", "grade_area", "grade_ap_diameter", "grade_levels", "find_level_plane"]

GRADES = ("Normal/Mild", "Moderate", "Severe")


@dataclass(frozen=True)
class StenosisThresholds:
    """Grading cut-offs (defaults from the clinical reference; change them per study).

    Attributes:
        area_relative_mm2: DSCSA below this is relative stenosis (moderate); 100 mm2
            (Bolender 1985; Hamanishi 1994).
        area_absolute_mm2: DSCSA below this is absolute stenosis (severe); 75 mm2
            (Schonstrom & Hansson 1988, critical size 77 +- 13 mm2).
        ap_relative_mm: AP diameter below this is relative stenosis; 13 mm (Verbiest).
        ap_absolute_mm: AP diameter below this is absolute stenosis; 10 mm (Verbiest).
    """

    area_relative_mm2: float = 100.0
    area_absolute_mm2: float = 75.0
    ap_relative_mm: float = 13.0
    ap_absolute_mm: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.area_absolute_mm2 < self.area_relative_mm2:
            raise ValueError("Area thresholds must satisfy 0 < absolute < relative (mm2).")
        if not 0 < self.ap_absolute_mm < self.ap_relative_mm:
            raise ValueError("AP diameter thresholds must satisfy 0 < absolute < relative (mm).")


def _grade(value: float, relative: float, absolute: float) -> str:
    """Severe below ``absolute``, Moderate below ``relative``, else Normal/Mild."""
    if value < absolute:
        return GRADES[2]
    if value < relative:
        return GRADES[1]
    return GRADES[0]


def grade_area(area_mm2: float, thresholds: StenosisThresholds = StenosisThresholds()) -> str:
    """RSNA-style grade of a dural sac cross-sectional area in mm2."""
    return _grade(area_mm2, thresholds.area_relative_mm2, thresholds.area_absolute_mm2)


def grade_ap_diameter(ap_mm: float, thresholds: StenosisThresholds = StenosisThresholds()) -> str:
    """RSNA-style grade of a canal AP diameter in mm."""
    return _grade(ap_mm, thresholds.ap_relative_mm, thresholds.ap_absolute_mm)


@dataclass(frozen=True)
class LevelFinding:
    """Where one disc level is measured (all RAS, mm).

    Attributes:
        level: ``"L4-L5"`` etc.
        disc_centroid_ras: centroid of the disc label.
        plane_center_ras: point of the canal axis level with the disc.
        plane_normal_ras: unit canal axis (superior).
        anterior_ras: unit in-plane direction from the canal towards the disc (the AP axis).
        window_mm: radius of the canal neighbourhood used for the axis.
    """

    level: str
    disc_centroid_ras: np.ndarray
    plane_center_ras: np.ndarray
    plane_normal_ras: np.ndarray
    anterior_ras: np.ndarray
    window_mm: float


def _label_points_ras(labels: Volume, value: int) -> np.ndarray:
    k, j, i = np.nonzero(labels.array == value)
    return labels.ijk_to_ras_points(np.stack([i, j, k], axis=1))


def find_level_plane(
    labels: Volume, level: str, canal_points_ras: np.ndarray, window_mm: float = 15.0
) -> LevelFinding | None:
    """Measurement plane for ``level``; None when the disc label is absent."""
    disc = _label_points_ras(labels, DISC_LABELS[level])
    if len(disc) == 0:
        return None
    disc_centroid = disc.mean(axis=0)
    distances = np.linalg.norm(canal_points_ras - disc_centroid, axis=1)
    nearest = canal_points_ras[int(np.argmin(distances))]
    centre = canal_points_ras[np.linalg.norm(canal_points_ras - nearest, axis=1) <= window_mm].mean(axis=0)
    normal = np.array([0.0, 0.0, 1.0])
    for _ in range(3):  # re-centre the window on the canal axis and refit
        local = canal_points_ras[np.linalg.norm(canal_points_ras - centre, axis=1) <= window_mm]
        if len(local) < 10:
            break
        centred = local - local.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        normal = vt[0] if vt[0][2] >= 0 else -vt[0]
        axis_point = local.mean(axis=0)
        centre = axis_point + normal * float(np.dot(disc_centroid - axis_point, normal))
    slab = canal_points_ras[np.abs((canal_points_ras - centre) @ normal) <= 1.0]
    if len(slab):
        centre = slab.mean(axis=0)
    anterior = disc_centroid - centre
    anterior = anterior - normal * float(np.dot(anterior, normal))
    norm = np.linalg.norm(anterior)
    anterior = anterior / norm if norm > 1e-6 else np.array([0.0, 1.0, 0.0])
    return LevelFinding(level, disc_centroid, centre, normal, anterior, window_mm)


def grade_levels(
    labels: Volume,
    thresholds: StenosisThresholds = StenosisThresholds(),
    *,
    canal_label: int = SPINAL_CANAL,
    step_mm: float = 0.2,
) -> list[dict]:
    """Measure and grade every lumbar disc level present in a TotalSpineSeg label map.

    Args:
        labels: label map (TotalSpineSeg: 2 canal/dural sac, 92-95 and 100 lumbar discs).
        thresholds: grading cut-offs.
        canal_label: label value of the dural sac / canal.
        step_mm: in-plane sampling step of the cross-section in mm.

    Returns:
        One dict per level found, in cranio-caudal order, with ``level``,
        ``dural_sac_area_mm2``, ``ap_diameter_mm``, ``lateral_diameter_mm``, ``grade`` (from the
        area), ``ap_grade``, ``rsna_target`` (e.g. ``spinal_canal_stenosis_l4_l5``), the plane
        centre / normal (RAS) as ``center_r/a/s`` and ``normal_r/a/s``.

    Raises:
        ValueError: not a label map, labels outside TotalSpineSeg or no lumbar disc labels (unknown
            label convention), no canal label ("no canal found"), or a plane that misses the canal.
    """
    from .measure.cross_section import cross_section_area_mm2

    validate_label_volume(labels)
    present = set(int(v) for v in np.unique(labels.array))
    check_totalspineseg(present)
    levels = [level for level in DISC_LEVELS if DISC_LABELS[level] in present]
    if not levels:
        raise ValueError(
            "No lumbar disc labels (92-95, 100 in the TotalSpineSeg convention) in the label map, which holds "
            f"{sorted(v for v in present if v)}: unknown label convention? Convert the labels to TotalSpineSeg."
        )
    if canal_label not in present:
        raise ValueError(
            f"No canal found: label {canal_label} (spinal canal, TotalSpineSeg) is not in the label map, which holds "
            f"{sorted(v for v in present if v)}. Segment the canal (e.g. with TotalSpineSeg) or convert the labels."
        )
    canal = _label_points_ras(labels, canal_label)
    rows = []
    for level in levels:
        finding = find_level_plane(labels, level, canal)
        if finding is None:  # pragma: no cover - level list comes from the labels present
            continue
        section = cross_section_area_mm2(
            labels,
            [canal_label],
            finding.plane_center_ras,
            finding.plane_normal_ras,
            ap_direction_ras=finding.anterior_ras,
            step_mm=step_mm,
        )
        c, n = finding.plane_center_ras, finding.plane_normal_ras
        rows.append(
            {
                "level": level,
                "dural_sac_area_mm2": round(float(section.area_mm2), 2),
                "ap_diameter_mm": round(float(section.ap_diameter_mm), 2),
                "lateral_diameter_mm": round(float(section.lateral_diameter_mm), 2),
                "grade": grade_area(section.area_mm2, thresholds),
                "ap_grade": grade_ap_diameter(section.ap_diameter_mm, thresholds),
                "rsna_target": "spinal_canal_stenosis_" + level.lower().replace("-", "_"),
                "center_r": round(float(c[0]), 2),
                "center_a": round(float(c[1]), 2),
                "center_s": round(float(c[2]), 2),
                "normal_r": round(float(n[0]), 4),
                "normal_a": round(float(n[1]), 4),
                "normal_s": round(float(n[2]), 4),
            }
        )
    return rows
