"""Report writers: ``report.json``, ``report.csv`` and the RSNA 2024 one-row ``rsna.csv``.

``report.json`` (all coordinates RAS mm, the patient coordinates Slicer shows for the file; areas
mm2, lengths mm)::

    {"levels": [{"level": "L4-L5", "dural_sac_area_mm2": 61.8, "axial_slice_area_mm2": 70.2,
                 "ap_diameter_mm": 7.9, "transverse_width_mm": 11.0, "central_canal_grade": "severe",
                 "confidence": 0.93, "borderline": false, "plane_center_ras": [x, y, z],
                 "plane_normal_ras": [x, y, z], ...}, ...],
     "references": [...], "thresholds": {...}, "input": {...}, "method": {...},
     "warnings": [...], "software_version": "..."}

A level that could not be measured keeps its entry with ``status`` and ``reason`` and ``null``
numbers (never dropped, never a made-up value). ``lateral_recess`` and ``neural_foramina`` hold, per side
(the patient's), ``width_mm`` / ``height_mm`` with the two surface points, or ``not_measured`` with the reason
(:mod:`.lateral`; measured, not graded); ``report.csv`` repeats the four numbers (empty when not measured). ``rsna.csv`` has one row with ``study_id`` and, per
level, ``spinal_canal_stenosis_<level>`` (``Normal/Mild``, ``Moderate``, ``Severe`` or empty when not
measured) and the measurement-model class probabilities
``spinal_canal_stenosis_<level>_normal_mild|_moderate|_severe``.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from ..labels import DISC_LEVELS
from ..safe_write import write_json, write_text
from .core import GradingResult, rsna_target
from .grades import CLASSES, RSNA_LABELS
from .lateral import lateral_cells

__all__ = ["build_report", "write_report_json", "write_report_csv", "write_rsna_csv", "CSV_COLUMNS", "software_version"]

CSV_COLUMNS: tuple[str, ...] = (
    "level",
    "status",
    "dural_sac_area_mm2",
    "dural_sac_area_sd_mm2",
    "axial_slice_area_mm2",
    "ap_diameter_mm",
    "transverse_width_mm",
    "central_canal_grade",
    "confidence",
    "borderline",
    "ap_grade",
    "area_ratio_to_reference",
    "reference_level",
    "minimum_offset_mm",
    "plane_center_r",
    "plane_center_a",
    "plane_center_s",
    "plane_normal_r",
    "plane_normal_a",
    "plane_normal_s",
    "lateral_recess_left_mm",
    "lateral_recess_right_mm",
    "foraminal_height_left_mm",
    "foraminal_height_right_mm",
    "reason",
    "quality_warnings",
)
"""Columns of ``report.csv`` (one row per level)."""


def software_version() -> str:
    """``lumbarspine <version>`` (installed metadata, else the source tree's pyproject version)."""
    try:
        from importlib.metadata import version

        return f"lumbarspine {version('lumbarspine')}"
    except Exception:  # noqa: BLE001 - running from a source tree without installed metadata
        return "lumbarspine (source tree)"


def build_report(result: GradingResult, input_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``report.json`` content of a :class:`GradingResult`."""
    return {
        "levels": [lv.to_dict() for lv in result.levels],
        "references": [r.to_dict() for r in result.references],
        "thresholds": result.thresholds.to_dict(),
        "input": dict(input_info or {}),
        "method": result.method,
        "centreline_length_mm": round(result.centreline.length_mm, 1),
        "warnings": list(result.warnings),
        "units": "areas mm2, lengths mm, points and directions RAS mm (Slicer patient coordinates)",
        "disclaimer": "Grades are estimated from a segmentation and published cut-offs, not a radiologist's "
        "reading; class probabilities describe the measurement uncertainty only.",
        "software_version": software_version(),
        "seconds": round(result.seconds, 3),
    }


def write_report_json(report: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``report.json`` atomically."""
    return write_json(path, report)


def _csv_text(header: list[str], rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_report_csv(report: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``report.csv``: one row per level, :data:`CSV_COLUMNS` (empty cells where not measured)."""
    rows = []
    for level in report["levels"]:
        centre = level.get("plane_center_ras") or [None] * 3
        normal = level.get("plane_normal_ras") or [None] * 3
        flat = {
            **level,
            "plane_center_r": centre[0],
            "plane_center_a": centre[1],
            "plane_center_s": centre[2],
            "plane_normal_r": normal[0],
            "plane_normal_a": normal[1],
            "plane_normal_s": normal[2],
            "quality_warnings": "; ".join(level.get("quality_warnings") or []) or None,
            **lateral_cells(level),
        }
        rows.append(["" if flat.get(c) is None else flat.get(c) for c in CSV_COLUMNS])
    return write_text(path, _csv_text(list(CSV_COLUMNS), rows))


def write_rsna_csv(report: dict[str, Any], path: str | os.PathLike[str], study_id: str = "") -> Path:
    """Write ``rsna.csv``: one row in the RSNA 2024 column naming (see the module docstring)."""
    by_level = {lv["level"]: lv for lv in report["levels"]}
    header = ["study_id"]
    row: list[Any] = [study_id]
    for level in DISC_LEVELS:
        target = rsna_target(level)
        entry = by_level.get(level, {})
        header.append(target)
        row.append(RSNA_LABELS.get(entry.get("central_canal_grade") or "", ""))
    for level in DISC_LEVELS:
        target = rsna_target(level)
        probabilities = by_level.get(level, {}).get("class_probabilities") or {}
        for cls in CLASSES:
            header.append(f"{target}_{cls}")
            value = probabilities.get(cls)
            row.append("" if value is None else value)
    return write_text(path, _csv_text(header, [row]))
