"""What the Slicer planning panel runs in its worker: ``lumbarspine plan`` without the files.

:func:`plan_image` takes the image (CT or MRI, optional when a label map is given), an optional label map
(else the automatic segmentation, as :func:`lumbarspine.planning.study.load_inputs` does for the command
line), the grades (a grading report, its rows or ``{level: grade}``) and / or the levels to decompress, and
returns plain data, Volumes and library dataclasses (what the module's worker protocol carries): the
anatomy planned on (its label map),
the screws and refused sides as rows, the decompressions as rows, and every planning volume (no-go zone,
one decompression per level) as one bit of :data:`MASKS_KEY`'s label Volume (:func:`pack_masks` /
:func:`unpack_masks`; one small file instead of one full-size mask per level).

:func:`decompression_rows` is the panel's decompression table (level, bone volume cm3, share of each
facet removed in %, canal area before / after mm2). All points are RAS mm.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import numpy as np

from ..progress import CancelCallback, ProgressCallback, check_cancel
from ..volume import Volume
from .decompression import DecompressionParameters, levels_to_decompress, read_grades
from .no_go import DEFAULT_MARGIN_MM, neural_mask
from .screws import PlanningParameters
from .study import load_inputs, plan_anatomy

__all__ = [
    "plan_image",
    "pack_masks",
    "unpack_masks",
    "decompression_rows",
    "normalise_levels",
    "NO_GO_SEGMENT",
    "DECOMPRESSION_SEGMENT",
    "MASKS_KEY",
    "LUMBAR_LEVELS",
]

NO_GO_SEGMENT = "No-go zone"
DECOMPRESSION_SEGMENT = "Decompression {level}"
"""Names of the planning volumes (the segment names of :mod:`lumbarspine.planning.scene`)."""
MASKS_KEY = "masks"
LUMBAR_LEVELS = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")
"""The disc levels the panel offers to decompress."""
_LEVEL = re.compile(r"^(T\d{1,2}|L\d|S1)-(L\d|S1)$")


def _noop(fraction: float, message: str) -> None:
    pass


def normalise_levels(levels: Any) -> list[str]:
    """Disc level names from a list or a comma / space separated text (``"l4-l5, L5_S1"`` ->
    ``["L4-L5", "L5-S1"]``), in the order given, each once.

    Raises:
        ValueError: a name that is not a disc level (``L4-L5``, ``L5-S1``, ``T12-L1``).
    """
    if levels is None:
        return []
    items = re.split(r"[,;\s]+", levels) if isinstance(levels, str) else [str(v) for v in levels]
    out: list[str] = []
    for item in items:
        name = item.strip().upper().replace("_", "-")
        if not name:
            continue
        if not _LEVEL.match(name):
            raise ValueError(f"{item!r} is not a disc level: write levels as L4-L5, L5-S1 (comma separated).")
        if name not in out:
            out.append(name)
    return out


def pack_masks(grid: Volume, masks: list[tuple[str, np.ndarray]]) -> tuple[Volume, list[str]]:
    """One label Volume on ``grid`` whose bit ``n`` is the ``n``-th boolean mask (``[k, j, i]``), and the names.

    Raises:
        ValueError: a mask not on the grid's shape, more than 16 masks.
    """
    if len(masks) > 16:
        raise ValueError(f"At most 16 planning volumes fit one label map; got {len(masks)}.")
    dtype = np.uint8 if len(masks) <= 8 else np.uint16
    packed = np.zeros(grid.shape, dtype)
    for bit, (name, mask) in enumerate(masks):
        mask = np.asarray(mask, bool)
        if mask.shape != tuple(grid.shape):
            raise ValueError(f"The {name} mask has shape {mask.shape}, the label map {tuple(grid.shape)}.")
        packed |= (mask.astype(dtype) << dtype(bit)).astype(dtype)
    return grid.with_array(packed, is_label=True, name="planning volumes"), [name for name, _ in masks]


def unpack_masks(packed: Volume, names: list[str]) -> dict[str, np.ndarray]:
    """The boolean masks of :func:`pack_masks`' Volume, by name (in order)."""
    array = np.asarray(packed.array)
    return {name: (array >> bit) & 1 > 0 for bit, name in enumerate(names)}


def _screw_row(screw: Any) -> dict[str, Any]:
    row = screw.to_dict()
    row["acceptable"] = screw.evaluation.get("acceptable")
    return row


def plan_image(
    image: Volume | None = None,
    segmentation: Volume | None = None,
    *,
    convention: str = "auto",
    grades: Any = None,
    levels: Any = None,
    margin_mm: float = DEFAULT_MARGIN_MM,
    screws: bool = True,
    params: PlanningParameters | None = None,
    decompression_params: DecompressionParameters | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
) -> dict[str, Any]:
    """The surgical plan of one image (what :func:`lumbarspine.planning.study.plan_study` plans, no files).

    Args:
        image: CT or MRI Volume (not modified); optional when ``segmentation`` is given.
        segmentation: label map Volume (imported with ``convention``); None: the image is segmented
            automatically (:func:`lumbarspine.anatomy.segment.segment_image`).
        grades: grading report (``report.json`` path, dict, rows with ``level`` and ``grade`` /
            ``central_canal_grade``, or ``{level: grade}``): moderate and severe levels are decompressed
            (:func:`lumbarspine.planning.decompression.levels_to_decompress`, cranial to caudal) and the sac is
            coloured by grade.
        levels: decompress these levels instead (list or comma separated text; overrides the grades' choice).
        margin_mm: no-go zone margin around the neural elements (mm, 0 to 20).
        screws: False drops the screws from the result (the no-go zone and decompressions only).
        params, decompression_params: planning rules (sources in ``shared/docs/clinical-reference.md``).
        progress, cancel: callbacks.

    Returns:
        ``{"anatomy": the SpineAnatomy planned on (its ``labels``: the label map), "segmented": bool, "screws": [ScrewPlan.to_dict() rows],
        "refused": [RefusedScrew.to_dict() rows], "decompressions": [DecompressionPlan.to_dict() rows],
        "masks": packed label Volume, "mask_names": [str], "grades": {level: grade} | None,
        "levels": [str], "warnings": [str], "modality": str, "source": str, "refined_bone": bool}``.
        With a CT and a label map coarser than :data:`lumbarspine.planning.refine.REFINE_ABOVE_SPACING_MM`
        the screws are planned and graded on the bone refined by the CT's HU (``refined_bone`` True, as
        ``lumbarspine plan``); every later evaluation of them (the panel's moves, resizes, re-plans) then
        takes the same image (:func:`lumbarspine.planning.screw_edit.label_map_maps`).

    Raises:
        ValueError: no input, unreadable grades, a bad level name or margin, no neural elements (cord 1 /
            dural sac 2) in the segmentation (no no-go zone could be built).
    """
    report = progress or _noop
    margin = float(margin_mm)
    if not np.isfinite(margin) or not 0.0 <= margin <= 20.0:
        raise ValueError(f"The no-go margin must be between 0 and 20 mm; got {margin_mm!r}.")
    chosen = normalise_levels(levels)
    grade_map = read_grades(grades) if grades is not None else None
    check_cancel(cancel, "Planning")
    report(0.0, "reading the inputs" if segmentation is not None else "segmenting the image")
    volume, anatomy = load_inputs(
        image, segmentation, convention, progress=lambda f, m: report(0.4 * f, m), cancel=cancel
    )
    if not neural_mask(anatomy.labels).any():
        raise ValueError(
            "No neural elements in the segmentation (spinal cord label 1 or spinal canal / dural sac label 2 "
            "in the TotalSpineSeg convention): the no-go zone cannot be built, so nothing is planned."
        )
    check_cancel(cancel, "Planning")
    if grade_map and not chosen:  # the graded levels to decompress, cranial to caudal (the table's order)
        order = {disc.name: index for index, disc in enumerate(anatomy.discs)}
        chosen = sorted(levels_to_decompress(grade_map), key=lambda level: order.get(level, len(order)))
    screw_params = replace(params or PlanningParameters(), no_go_margin_mm=margin)
    result = plan_anatomy(
        anatomy,
        grades=grade_map,
        levels=chosen or None,
        screw_params=screw_params,
        decompression_params=decompression_params,
        no_go_margin_mm=margin,
        image=volume,
        progress=lambda f, m: report(0.4 + 0.55 * f, m),
        cancel=cancel,
    )
    masks: list[tuple[str, np.ndarray]] = []
    if result["no_go_mask"] is not None:
        masks.append((NO_GO_SEGMENT, result["no_go_mask"]))
    for plan in result["decompressions"]:
        masks.append((DECOMPRESSION_SEGMENT.format(level=plan.level), plan.mask))
    packed, names = pack_masks(anatomy.labels, masks)
    report(1.0, "plan ready")
    return {
        "anatomy": anatomy,
        "segmented": segmentation is None,
        "screws": [_screw_row(s) for s in result["screws"]] if screws else [],
        "refused": [r.to_dict() for r in result["refused"]] if screws else [],
        "decompressions": [d.to_dict() for d in result["decompressions"]],
        MASKS_KEY: packed,
        "mask_names": names,
        "grades": grade_map,
        "levels": [d.level for d in result["decompressions"]],
        "warnings": list(result["warnings"]),
        "modality": anatomy.modality,
        "source": anatomy.source,
        "refined_bone": bool(result["maps"].refined),
    }


def decompression_rows(decompressions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The panel's decompression table from ``DecompressionPlan.to_dict()`` rows: level, grade, bone volume
    (cm3), the share of the left and right facet removed (%), the canal area before and after (mm2)."""

    def percent(row: dict[str, Any], side: str) -> float | None:
        value = (row.get("facet_removed_fraction") or {}).get(side)
        return None if value is None else round(100.0 * float(value), 1)

    return [
        {
            "level": row["level"],
            "grade": row.get("grade") or "",
            "bone_volume_cm3": row["bone_volume_cm3"],
            "facet_left_removed_pct": percent(row, "left"),
            "facet_right_removed_pct": percent(row, "right"),
            "canal_area_before_mm2": row.get("canal_area_before_mm2"),
            "canal_area_after_mm2": row.get("canal_area_after_mm2"),
            "notes": "; ".join(row.get("notes") or []),
        }
        for row in decompressions
    ]
