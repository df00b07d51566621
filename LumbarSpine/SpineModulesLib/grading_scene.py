"""The stenosis grading in the module's scene, and the slice views following a level (Qt-free, 3.9-safe).

:func:`put_grading_in_scene` adds what ``lumbarspine.grading.scene`` makes (table, outline and AP markups
per level, the area chart, the sac coloured by grade) and keeps each measured level's plane on the table
(attribute :data:`PLANES_ATTRIBUTE`, saved with the scene); the previous run's nodes of the same table are
replaced (:mod:`SpineModulesLib.outputs`). :func:`jump_to_level` moves the slice views to a row's plane.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple

from SpineModulesLib.outputs import remember_run_nodes, remove_node, remove_run_nodes
from SpineModulesLib.views import place_views_on_plane

__all__ = ["PLANES_ATTRIBUTE", "put_grading_in_scene", "jump_to_level", "level_planes"]

PLANES_ATTRIBUTE = "LumbarSpine.LevelPlanes"
"""Table attribute: JSON ``{level: {plane_center_ras, plane_normal_ras, ap_direction_ras}}`` (RAS mm)."""


def level_planes(result: Any) -> Dict[str, Dict[str, List[float]]]:
    """The measurement plane of every measured level of a ``GradingResult`` (full precision, RAS mm)."""
    return {
        level.level: {
            "plane_center_ras": [float(v) for v in level.minimum.center_ras],
            "plane_normal_ras": [float(v) for v in level.minimum.normal_ras],
            "ap_direction_ras": [float(v) for v in level.minimum.ap_direction_ras],
        }
        for level in result.levels
        if level.measured
    }


def put_grading_in_scene(
    graded: Dict[str, Any], base: str, output_table: Any, scene: Any, add_segmentation: bool = False
) -> Tuple[Any, List[Dict[str, Any]], Dict[str, Any]]:
    """Put ``graded`` (``lumbarspine.grading.study.grade_image``'s result) into ``scene``.

    ``base`` prefixes the node names; ``output_table`` is refilled (a new table when None); with
    ``add_segmentation`` the label map graded is added too (the automatic segmentation). Returns the table,
    its rows and the other nodes by role.

    :raises ValueError: no level could be measured (nothing is added then).
    """
    from lumbarspine.grading.core import table_rows
    from lumbarspine.grading.scene import add_grading_to_scene
    from lumbarspine.slicer_nodes import table_node_from_rows, volume_to_node

    result, anatomy = graded["result"], graded["anatomy"]
    if not any(level.measured for level in result.levels):
        raise ValueError(
            "No disc level could be measured: the segmentation needs the spinal canal (label 2) and the "
            "lumbar discs (labels 91-100) in the TotalSpineSeg convention."
        )
    rows = table_rows(result)
    remove_run_nodes(output_table, scene)
    nodes = add_grading_to_scene(result, scene, labels=anatomy.labels, prefix=f"{base} ")
    made = nodes.pop("table")
    if output_table is None:
        table = made
        table.SetName(scene.GenerateUniqueName(f"{base}_stenosis"))
    else:
        table = table_node_from_rows(rows, scene, node=output_table)
        remove_node(made, scene)
    if add_segmentation:
        nodes["labelmap"] = volume_to_node(anatomy.labels, scene, name=scene.GenerateUniqueName(f"{base}_segmentation"))
    table.SetAttribute(PLANES_ATTRIBUTE, json.dumps(level_planes(result)))
    added = [*nodes["outlines"].values(), *nodes["ap_lines"].values(), nodes["profile_table"], nodes["chart"]]
    remember_run_nodes(table, [*added, *nodes["series"], nodes.get("segmentation"), nodes.get("labelmap")])
    return table, rows, nodes


def jump_to_level(table: Optional[Any], row: int, scene: Any) -> str:
    """Move the Red, Yellow and Green slice views of ``scene`` to the measurement plane of the level in
    ``row`` of a grading ``table`` (Red: the plane itself, see :mod:`SpineModulesLib.views`); returns the level.

    :raises ValueError: no table, a row out of range, a level that was not measured, no slice views.
    """
    from lumbarspine.grading.scene import slice_to_ras

    if table is None:
        raise ValueError("No grading table: run the grading first.")
    if not 0 <= int(row) < table.GetNumberOfRows():
        raise ValueError(f"Row {row} is not in {table.GetName()!r} ({table.GetNumberOfRows()} rows).")
    level = table.GetCellText(int(row), table.GetColumnIndex("level"))
    planes = json.loads(table.GetAttribute(PLANES_ATTRIBUTE) or "{}")
    if level not in planes:
        raise ValueError(f"{level} was not measured: it has no plane to show.")
    if not place_views_on_plane(scene, slice_to_ras(planes[level])):
        raise ValueError("The scene has no Red, Yellow or Green slice view to move.")
    return level
