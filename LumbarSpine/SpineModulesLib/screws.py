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

from SpineModulesLib.outputs import remember_run_nodes, remove_node, run_nodes

__all__ = [
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
