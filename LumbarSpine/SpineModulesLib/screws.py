"""The planned screws in the module's scene: line markups and models, read and edited (Qt-free, 3.9-safe).

Each screw is a line markup (control point 0 = entry, 1 = tip, RAS mm) with a screw model, made by
``lumbarspine.planning.scene.add_screw``; the output segmentation of the planning module references its
lines under :data:`SCREWS_ROLE` (saved with the scene), and keeps the refused sides as JSON in the attribute
:data:`REFUSED_ATTRIBUTE`. The functions here take nodes and an explicit scene; the evaluation itself is
the library's (``evaluate_line_markup``, ``lumbarspine.planning.screw_edit``).
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

import numpy as np

from SpineModulesLib.i18n import _
from SpineModulesLib.nodes import image_volume_from_node, label_volume_from_node
from SpineModulesLib.outputs import remember_run_nodes, remove_node, run_nodes
from SpineModulesLib.protocol import Job

__all__ = [
    "REPLAN_CALL",
    "ScrewEditingMixin",
    "SCREWS_ROLE",
    "REFUSED_ATTRIBUTE",
    "put_screws_in_scene",
    "screw_lines",
    "screw_rows",
    "screw_model",
    "line_points",
    "move_line",
    "set_screw_visible",
    "refused_screws",
]

SCREWS_ROLE = "LumbarSpine.Screw"
REFUSED_ATTRIBUTE = "LumbarSpine.RefusedScrews"


def screw_lines(owner: Any) -> List[Any]:
    """The screw line markups referenced by ``owner`` (the planning output), in plan order."""
    return run_nodes(owner, SCREWS_ROLE)


def screw_model(line: Any) -> Any:
    """The screw model of a line (None when it has none)."""
    from lumbarspine.planning.evaluate import MODEL_REFERENCE_ROLE

    return line.GetNodeReference(MODEL_REFERENCE_ROLE)


def put_screws_in_scene(
    screws: List[Dict[str, Any]], refused: List[Dict[str, Any]], owner: Any, scene: Any
) -> List[Any]:
    """Replace the screws of ``owner`` by ``screws`` (``ScrewPlan.to_dict()`` rows with their evaluation);
    the refused sides are kept on ``owner``. Returns the new line markups."""
    from lumbarspine.planning.scene import add_screw
    from lumbarspine.planning.screw_edit import mark_screw

    for line in screw_lines(owner):
        remove_node(screw_model(line), scene)
        remove_node(line, scene)
    owner.RemoveNodeReferenceIDs(SCREWS_ROLE)
    lines = []
    for screw in screws:
        line, _model = add_screw(scene, screw)
        mark_screw(line, screw)
        model = screw_model(line)
        if model is not None and model.GetDisplayNode() is not None:
            model.GetDisplayNode().SetColor(line.GetDisplayNode().GetColor())
        lines.append(line)
    remember_run_nodes(owner, lines, SCREWS_ROLE)
    owner.SetAttribute(REFUSED_ATTRIBUTE, json.dumps(list(refused)))
    return lines


def refused_screws(owner: Optional[Any]) -> List[Dict[str, Any]]:
    """The refused sides kept on ``owner`` (``RefusedScrew.to_dict()`` rows)."""
    text = owner.GetAttribute(REFUSED_ATTRIBUTE) if owner is not None else None
    return json.loads(text) if text else []


def line_points(line: Any) -> tuple:
    """``(entry, tip)`` of a screw line, RAS mm."""
    if line.GetNumberOfControlPoints() < 2:
        raise ValueError(f"Screw {line.GetName()!r} needs two control points (entry, tip).")
    entry, tip = np.zeros(3), np.zeros(3)
    line.GetNthControlPointPositionWorld(0, entry)
    line.GetNthControlPointPositionWorld(1, tip)
    return entry, tip


def move_line(line: Any, entry: Any, tip: Any) -> None:
    """Put the line's entry and tip at new RAS points (one modification: observers run once)."""
    wasModifying = line.StartModify()
    line.SetNthControlPointPositionWorld(0, *[float(v) for v in entry])
    line.SetNthControlPointPositionWorld(1, *[float(v) for v in tip])
    line.EndModify(wasModifying)


def _number(text: Optional[str]) -> float:
    try:
        return float(text) if text not in (None, "") else float("nan")
    except ValueError:
        return float("nan")


def screw_rows(lines: List[Any]) -> List[Dict[str, Any]]:
    """One row per screw line: name, vertebra, side, diameter (mm), length (mm, entry to tip), grade, breach
    (mm), distance to the dural sac (mm) and whether it is shown."""
    from lumbarspine.planning.evaluate import (
        ATTR_BREACH,
        ATTR_DIAMETER,
        ATTR_GRADE,
        ATTR_SAC,
        ATTR_SIDE,
        ATTR_VERTEBRA,
    )

    rows = []
    for line in lines:
        entry, tip = line_points(line)
        display = line.GetDisplayNode()
        rows.append(
            {
                "id": line.GetID(),
                "name": line.GetName(),
                "vertebra": line.GetAttribute(ATTR_VERTEBRA) or "",
                "side": line.GetAttribute(ATTR_SIDE) or "",
                "diameter_mm": _number(line.GetAttribute(ATTR_DIAMETER)),
                "length_mm": round(float(np.linalg.norm(tip - entry)), 1),
                "grade": line.GetAttribute(ATTR_GRADE) or "",
                "breach_mm": _number(line.GetAttribute(ATTR_BREACH)),
                "sac_distance_mm": _number(line.GetAttribute(ATTR_SAC)),
                "visible": bool(display.GetVisibility()) if display is not None else False,
            }
        )
    return rows


def set_screw_visible(line: Any, visible: bool) -> None:
    """Show or hide a screw: its line markup and its model."""
    for node in (line, screw_model(line)):
        display = node.GetDisplayNode() if node is not None else None
        if display is not None:
            display.SetVisibility(bool(visible))


REPLAN_CALL = "lumbarspine.planning.screw_edit:replan_label_map_screw"
"""One screw again: ``replan_label_map_screw(labels, vertebra, side, diameter_mm=, length_mm=, image=) -> row``."""

ATTR_DIAMETER = "LumbarSpine.DiameterMm"
ATTR_VERTEBRA = "LumbarSpine.Vertebra"
ATTR_SIDE = "LumbarSpine.Side"
"""Line attributes written by ``lumbarspine.planning.scene.add_screw`` (same names as in ``planning.evaluate``)."""


def _margin(marginMm: Any) -> float:
    try:
        margin = float(marginMm)
    except (TypeError, ValueError):
        raise ValueError(f"The margin must be a number of millimetres; got {marginMm!r}.") from None
    if not np.isfinite(margin) or margin < 0:
        raise ValueError(f"The margin must be 0 mm or more; got {marginMm!r}.")
    return margin


class ScrewEditingMixin:
    """The planning Logic's per-screw edits (Qt-free; nodes and the label map node passed in).

    The label map's :class:`SpineAnatomy` and its distance maps are kept (``anatomy()``) until another
    node or new voxels come, so moving or resizing a screw evaluates it at once after the first time.
    ``inputVolume`` (every edit takes it last): the image the plan's bone was refined with (the planning
    output's ``planImage``); the edits then grade on that same bone
    (``lumbarspine.planning.screw_edit.label_map_maps``). None: the labels alone.
    """

    def __init__(self) -> None:
        self._anatomy: Optional[tuple] = None  # (node IDs and voxel MTimes, SpineAnatomy, PlanningMaps)
        self._observations: List[tuple] = []

    @staticmethod
    def _nodeKey(node) -> tuple:
        if node is None:
            return (None, 0)
        return (node.GetID(), node.GetImageData().GetMTime() if node.GetImageData() else 0)

    def anatomy(self, inputLabelmap, inputVolume=None):
        """``(SpineAnatomy, PlanningMaps)`` of the label map (and the image the plan was refined with), kept
        until a node or its voxels change."""
        from lumbarspine.planning.screw_edit import label_map_maps

        if inputLabelmap is None:
            raise ValueError("No input label map: the screws are evaluated against it.")
        key = self._nodeKey(inputLabelmap) + self._nodeKey(inputVolume)
        if self._anatomy is None or self._anatomy[0] != key:
            image = image_volume_from_node(inputVolume, "planned image") if inputVolume is not None else None
            self._anatomy = (key,) + label_map_maps(label_volume_from_node(inputLabelmap), image)
        return self._anatomy[1], self._anatomy[2]

    @staticmethod
    def screwRows(outputSegmentation) -> list:
        """One row per screw of the output (vertebra, side, diameter, length, grade, breach, ...)."""
        return screw_rows(screw_lines(outputSegmentation)) if outputSegmentation is not None else []

    @staticmethod
    def refusedHtml(outputSegmentation) -> str:
        refused = refused_screws(outputSegmentation)
        lines = [f"<b>{r['vertebra']} {r['side']}</b>: {r['reason']}" for r in refused]
        return (_("No screw at:") + "<br>" + "<br>".join(lines)) if lines else ""

    def resizeScrew(self, line, inputLabelmap, diameterMm, lengthMm, marginMm: float = 2.0, inputVolume=None) -> str:
        """Give ``line`` a new diameter and length (mm) along its trajectory and evaluate it (the library's
        ``evaluate_line_markup``: attributes, grade colour, model). Returns a status message."""
        from lumbarspine.planning import evaluate_line_markup
        from lumbarspine.planning.screw_edit import sized_parameters

        sized_parameters(None, diameterMm, lengthMm)  # ValueError on a size out of range
        anatomy, maps = self.anatomy(inputLabelmap, inputVolume)
        entry, tip = line_points(line)
        direction = (tip - entry) / max(float(np.linalg.norm(tip - entry)), 1e-9)
        line.SetAttribute(ATTR_DIAMETER, f"{float(diameterMm):g}")
        move_line(line, entry, entry + float(lengthMm) * direction)
        result = evaluate_line_markup(line, anatomy, maps=maps, no_go_margin_mm=_margin(marginMm))
        return _("{name}: {d:g} x {L:.0f} mm, breach {breach:.1f} mm, grade {grade}.").format(
            name=line.GetName(),
            d=float(diameterMm),
            L=float(lengthMm),
            breach=result["breach_mm"],
            grade=result["gertzbein_robbins"],
        )

    def replanJob(
        self, line, inputLabelmap, diameterMm=None, lengthMm=None, marginMm: float = 2.0, inputVolume=None
    ) -> Job:
        """Re-planning ``line``'s vertebra and side as a job (:data:`REPLAN_CALL`); sizes None: the planner's;
        with ``inputVolume`` on the bone its HU refined, as the plan."""
        vertebra, side = line.GetAttribute(ATTR_VERTEBRA), line.GetAttribute(ATTR_SIDE)
        if not vertebra or not side:
            raise ValueError(f"{line.GetName()!r} is not a planned screw (no vertebra and side on it).")
        kwargs = {"diameter_mm": diameterMm, "length_mm": lengthMm, "margin_mm": _margin(marginMm)}
        if inputVolume is not None:
            kwargs["image"] = image_volume_from_node(inputVolume, "planned image")
        labels = label_volume_from_node(inputLabelmap)
        return Job(
            REPLAN_CALL, (labels, vertebra, side), kwargs, title=_("Re-planning {name}").format(name=line.GetName())
        )

    def applyReplan(self, line, row, inputLabelmap, marginMm: float = 2.0, inputVolume=None) -> str:
        """Move ``line`` to the re-planned screw ``row`` and evaluate it; a refusal leaves it as it was."""
        if row.get("reason"):
            raise ValueError(
                _("{name} was not re-planned: {reason}.").format(name=line.GetName(), reason=row["reason"])
            )
        line.SetAttribute(ATTR_DIAMETER, f"{float(row['diameter_mm']):g}")
        move_line(line, row["entry_ras"], row["tip_ras"])
        return self.resizeScrew(line, inputLabelmap, row["diameter_mm"], row["length_mm"], marginMm, inputVolume)

    @staticmethod
    def setScrewVisible(line, visible: bool) -> str:
        set_screw_visible(line, visible)
        return (_("{name} shown.") if visible else _("{name} hidden.")).format(name=line.GetName())

    def observeScrews(
        self, outputSegmentation, inputLabelmap, marginMm: float = 2.0, onResult=None, inputVolume=None
    ) -> int:
        """Re-evaluate a screw whenever one of its end points moves (``onResult(line, evaluation)`` after)."""
        from lumbarspine.planning import observe_line_markup

        anatomy, maps = self.anatomy(inputLabelmap, inputVolume)
        for line in screw_lines(outputSegmentation):
            tag = observe_line_markup(line, anatomy, maps=maps, on_result=onResult, no_go_margin_mm=marginMm)
            self._observations.append((line, tag))
        return len(self._observations)

    def stopObserving(self) -> None:
        for line, tag in self._observations:
            line.RemoveObserver(tag)
        self._observations = []
