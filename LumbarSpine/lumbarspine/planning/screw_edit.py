"""Edit one planned screw, and the label-map entry points of the Slicer planning module.

* :func:`replan_screw`: plan one side of one vertebra again with the planner's rules
  (:func:`lumbarspine.planning.screws.plan_one_screw`), optionally with a chosen diameter and/or length:
  the chosen size must still satisfy the planner's rules (diameter at most
  :attr:`PlanningParameters.max_diameter_fraction` of the isthmus width, length within the bone up to the
  tip target; sources in ``shared/docs/clinical-reference.md``), else the side is refused with the reason.
* :func:`resize_screw`: keep a screw's entry and direction, give it another diameter and length and
  evaluate it again (:func:`lumbarspine.planning.evaluate.evaluate_screw`): the surgeon's choice, graded
  (Gertzbein-Robbins breach), not checked against the sizing rules.
* :func:`plan_label_map` / :func:`replan_label_map_screw`: what the module's worker process runs on a
  TotalSpineSeg label map (Volumes and plain dicts in, plain dicts out).
* :func:`label_map_maps`: the anatomy of a label map and the :class:`PlanningMaps` that plan and every later
  evaluation of its screws share: with the CT the plan was made on (``image``) and a label map coarser than
  :data:`lumbarspine.planning.refine.REFINE_ABOVE_SPACING_MM`, the bone refined by the CT's HU
  (:mod:`lumbarspine.planning.refine`), so a screw planned grade A on that bone keeps its grade when it is
  re-evaluated, resized or re-planned; without an image, the labels alone.
* :func:`mark_screw`: write an evaluation on a screw's line markup (attributes and grade colour, as
  :func:`lumbarspine.planning.evaluate.evaluate_line_markup` does) without computing it again.

All points are RAS mm (Slicer's patient coordinates); diameters and lengths in mm.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ..anatomy.model import SpineAnatomy
from ..progress import CancelCallback, ProgressCallback, check_cancel
from ..volume import Volume
from .evaluate import ATTR_BREACH, ATTR_DIAMETER, ATTR_GRADE, ATTR_SAC, GRADE_COLORS, PlanningMaps, evaluate_screw
from .no_go import DEFAULT_MARGIN_MM, no_go_zone
from .screws import (
    SIDES,
    PlanningParameters,
    RefusedScrew,
    ScrewPlan,
    plan_one_screw,
    plan_screws,
    use_planning_bone,
    vertebra_frames,
)

__all__ = [
    "anatomy_from_label_map",
    "label_map_maps",
    "sized_parameters",
    "replan_screw",
    "resize_screw",
    "plan_label_map",
    "replan_label_map_screw",
    "mark_screw",
]


def anatomy_from_label_map(labels: Volume) -> SpineAnatomy:
    """The spine anatomy of a TotalSpineSeg label map, level names as labelled (the module's input)."""
    from ..anatomy.build import anatomy_from_labels

    return anatomy_from_labels(labels, numbering="imported", source="label map")


def label_map_maps(labels: Volume, image: Volume | None = None) -> tuple[SpineAnatomy, PlanningMaps]:
    """``(SpineAnatomy, PlanningMaps)`` of a TotalSpineSeg label map and the image it was planned with.

    The maps are those :func:`lumbarspine.planning.study.plan_anatomy` plans on
    (``PlanningMaps(anatomy, image=image)``): with a CT in HU and a label map coarser than
    :data:`lumbarspine.planning.refine.REFINE_ABOVE_SPACING_MM` each vertebra's bone is refined by the HU; with
    an MRI, a fine label map or no image, the labels alone. Keep the pair for every evaluation of the plan's
    screws (moved, resized, re-planned): they are then graded on the bone they were planned on.

    Raises:
        ValueError: ``labels`` or ``image`` is not a Volume.
    """
    if not isinstance(labels, Volume):
        raise ValueError(f"The label map must be a Volume; got {type(labels).__name__}.")
    if image is not None and not isinstance(image, Volume):
        raise ValueError(f"The image planned with must be a Volume (or None); got {type(image).__name__}.")
    anatomy = anatomy_from_label_map(labels)
    return anatomy, PlanningMaps(anatomy, image=image)


def sized_parameters(
    params: PlanningParameters | None = None, diameter_mm: float | None = None, length_mm: float | None = None
) -> PlanningParameters:
    """``params`` restricted to one diameter and/or one length (mm); None keeps the planner's list."""
    params = params or PlanningParameters()
    changes: dict[str, Any] = {}
    for name, value, low, high in (("diameters_mm", diameter_mm, 1.0, 15.0), ("lengths_mm", length_mm, 5.0, 150.0)):
        if value is None:
            continue
        number = float(value)
        if not np.isfinite(number) or not low <= number <= high:
            what = "diameter" if name == "diameters_mm" else "length"
            raise ValueError(f"The screw {what} must be between {low:g} and {high:g} mm; got {value!r}.")
        changes[name] = (number,)
    return replace(params, **changes) if changes else params


def replan_screw(
    anatomy: SpineAnatomy,
    vertebra: str,
    side: str,
    *,
    diameter_mm: float | None = None,
    length_mm: float | None = None,
    params: PlanningParameters | None = None,
    maps: PlanningMaps | None = None,
) -> ScrewPlan | RefusedScrew:
    """Plan the ``side`` screw of ``vertebra`` again (see the module docstring).

    Raises:
        ValueError: an unknown side, a vertebra not in the anatomy, a size out of range.
    """
    if side not in SIDES:
        raise ValueError(f"Unknown side {side!r}: use one of {', '.join(SIDES)}.")
    if anatomy.vertebra(vertebra) is None:
        names = ", ".join(v.name for v in anatomy.vertebrae) or "none"
        raise ValueError(f"No vertebra {vertebra!r} in the segmentation; it has {names}.")
    sized = sized_parameters(params, diameter_mm, length_mm)
    # S1's frame takes L5's superior axis as a hint: build both as the planner does
    names = ("L5", "S1") if vertebra == "S1" else (vertebra,)
    frame = vertebra_frames(anatomy, names)[vertebra]
    if isinstance(frame, str):
        return RefusedScrew(vertebra, side, f"no vertebra frame: {frame}")
    maps = maps if maps is not None else PlanningMaps(anatomy)
    frame = use_planning_bone(frame, maps)
    planned = plan_one_screw(anatomy, frame, side, sized, maps=maps)
    width = planned.isthmus_width_mm if isinstance(planned, RefusedScrew) else None
    if isinstance(planned, RefusedScrew) and diameter_mm is not None and width is not None:
        largest = sized.max_diameter_fraction * width
        if float(diameter_mm) > largest + 1e-9:
            reason = (
                f"a {float(diameter_mm):g} mm screw is wider than {sized.max_diameter_fraction:.0%} of the "
                f"{width:.1f} mm pedicle isthmus on the {side} (at most {largest:.1f} mm)"
            )
            return RefusedScrew(vertebra, side, reason, width)
    if isinstance(planned, RefusedScrew) and length_mm is not None:
        reason = planned.reason.replace("shorter than the shortest screw", "shorter than the chosen screw")
        return RefusedScrew(vertebra, side, reason, width)
    return planned


def resize_screw(
    anatomy: SpineAnatomy,
    entry_ras: Any,
    tip_ras: Any,
    diameter_mm: float,
    length_mm: float,
    *,
    vertebra: str | None = None,
    no_go_margin_mm: float = DEFAULT_MARGIN_MM,
    maps: PlanningMaps | None = None,
) -> dict[str, Any]:
    """The screw from ``entry_ras`` towards ``tip_ras`` with a new diameter and length, evaluated.

    Returns :func:`evaluate_screw`'s result (with the new ``tip_ras``).

    Raises:
        ValueError: equal end points, a diameter or length out of range.
    """
    sized_parameters(None, diameter_mm, length_mm)  # range checks
    entry = np.asarray(entry_ras, float).reshape(3)
    axis = np.asarray(tip_ras, float).reshape(3) - entry
    norm = float(np.linalg.norm(axis))
    if not np.isfinite(norm) or norm < 1e-6:
        raise ValueError("The screw's entry and tip are the same point: its direction is unknown.")
    tip = entry + float(length_mm) * axis / norm
    return evaluate_screw(
        anatomy, entry, tip, float(diameter_mm), vertebra=vertebra, no_go_margin_mm=no_go_margin_mm, maps=maps
    )


def _screw_row(screw: ScrewPlan) -> dict[str, Any]:
    row = screw.to_dict()
    row["acceptable"] = screw.evaluation.get("acceptable")
    return row


def plan_label_map(
    labels: Volume,
    *,
    margin_mm: float = DEFAULT_MARGIN_MM,
    screws: bool = True,
    params: PlanningParameters | None = None,
    image: Volume | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
) -> dict[str, Any]:
    """The no-go zone and the pedicle screws of a TotalSpineSeg label map (the planning module's run); with
    ``image`` (its CT) on the bone of :func:`label_map_maps`.

    Returns ``{"zone": label Volume (:func:`no_go_zone`), "screws": [ScrewPlan.to_dict() rows],
    "refused": [RefusedScrew.to_dict() rows], "warnings": [str]}``.

    Raises:
        ValueError: see :func:`no_go_zone` (checked first: bad labels, margin, no neural elements).
    """
    zone = no_go_zone(labels, margin_mm=margin_mm)
    out: dict[str, Any] = {"zone": zone, "screws": [], "refused": [], "warnings": []}
    if not screws:
        return out
    check_cancel(cancel, "Screw planning")
    anatomy, maps = label_map_maps(labels, image)
    params = replace(params or PlanningParameters(), no_go_margin_mm=float(margin_mm))
    planned = plan_screws(anatomy, params, maps=maps, progress=progress, cancel=cancel)
    out["screws"] = [_screw_row(s) for s in planned["screws"]]
    out["refused"] = [r.to_dict() for r in planned["refused"]]
    out["warnings"] = list(planned["warnings"])
    return out


def replan_label_map_screw(
    labels: Volume,
    vertebra: str,
    side: str,
    *,
    diameter_mm: float | None = None,
    length_mm: float | None = None,
    margin_mm: float = DEFAULT_MARGIN_MM,
    params: PlanningParameters | None = None,
    image: Volume | None = None,
) -> dict[str, Any]:
    """:func:`replan_screw` on a label map: a ``ScrewPlan.to_dict()`` row, or a ``RefusedScrew.to_dict()`` row
    (it has ``"reason"``). ``image``: the CT the plan was made with (the same bone as the plan,
    :func:`label_map_maps`); None: the labels alone."""
    anatomy, maps = label_map_maps(labels, image)
    params = replace(params or PlanningParameters(), no_go_margin_mm=float(margin_mm))
    planned = replan_screw(
        anatomy, vertebra, side, diameter_mm=diameter_mm, length_mm=length_mm, params=params, maps=maps
    )
    return planned.to_dict() if isinstance(planned, RefusedScrew) else _screw_row(planned)


def mark_screw(node: Any, evaluation: dict[str, Any]) -> None:
    """Write ``evaluation`` (a :func:`evaluate_screw` result or a screw row) on a screw's line markup: the
    attributes of :func:`evaluate_line_markup` and the colour of its Gertzbein-Robbins grade."""
    grade = str(evaluation["gertzbein_robbins"])
    node.SetAttribute(ATTR_DIAMETER, f"{float(evaluation['diameter_mm']):g}")
    node.SetAttribute(ATTR_BREACH, f"{float(evaluation['breach_mm']):.2f}")
    node.SetAttribute(ATTR_GRADE, grade)
    sac = evaluation.get("min_distance_to_dural_sac_mm")
    node.SetAttribute(ATTR_SAC, "" if sac is None else f"{float(sac):.2f}")
    color = GRADE_COLORS.get(grade, (0.8, 0.8, 0.8))
    display = node.GetDisplayNode()
    if display is not None:
        display.SetSelectedColor(*color)
        display.SetColor(*color)
