"""The grading result in a Slicer scene (explicit scene; no ``slicer.mrmlScene``, no Qt).

:func:`add_grading_to_scene` adds

* a table node, one row per level (:func:`lumbarspine.grading.core.table_rows`);
* per measured level a closed-curve markup ``"<level> dural sac outline"`` (the measured 0.5
  iso-contour) and a line markup ``"<level> AP diameter"``, coloured by grade and locked;
* the area along the canal as a plot chart node (a table of the profile, one plot series for the
  area and one per threshold);
* the dural sac as a segmentation with one segment per level (each sac voxel belongs to the level
  nearest along the centreline), coloured by grade, with its 3D surface.

:func:`slice_to_ras` gives the 4x4 frame of a level's measurement plane (X = patient right in the
plane, Y = towards the disc, Z = the plane normal, cranial; right-handed) and :func:`place_slice_node`
shows that plane in a slice node the way Slicer's axial view shows an axial slice (radiological:
patient right on the screen's left), so a module can follow the selected table row.
Everything is saved in a ``.mrb`` with :func:`lumbarspine.scene.save_scene`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..volume import Volume
from .core import GradingResult, LevelResult, table_rows
from .grades import RSNA_LABELS
from .measure import SAC_LABELS

__all__ = ["add_grading_to_scene", "slice_to_ras", "place_slice_node", "GRADE_RGB", "sac_level_labels"]

GRADE_RGB: dict[str, tuple[float, float, float]] = {
    "normal_mild": (0.17, 0.63, 0.17),
    "moderate": (1.0, 0.5, 0.05),
    "severe": (0.84, 0.15, 0.16),
}
"""Colour per grade (RGB 0-1); levels without a grade are grey."""

_GREY = (0.6, 0.6, 0.6)


def _plane(level: LevelResult | dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if isinstance(level, LevelResult):
        if level.minimum is None:
            raise ValueError(f"{level.level} was not measured ({level.reason}): it has no plane.")
        s = level.minimum
        return s.center_ras, s.normal_ras, s.ap_direction_ras
    centre, normal, ap = level.get("plane_center_ras"), level.get("plane_normal_ras"), level.get("ap_direction_ras")
    if centre is None or normal is None or ap is None:
        raise ValueError(f"{level.get('level', 'This level')} was not measured: it has no plane.")
    return np.asarray(centre, float), np.asarray(normal, float), np.asarray(ap, float)


def slice_to_ras(level: LevelResult | dict) -> np.ndarray:
    """4x4 frame of a level's measurement plane (a :class:`LevelResult` or a ``report.json`` level).

    Columns: X = ``ap x normal`` (patient right for a cranial normal), Y = AP (towards the disc),
    Z = the normal (cranial), translation = the plane centre (RAS mm); a right-handed rotation. As a
    slice view's SliceToRAS it would show patient right on the screen's right: use
    :func:`place_slice_node` (or multiply by Slicer's orientation preset) for a radiological view.
    """
    centre, normal, ap = _plane(level)
    n = normal / np.linalg.norm(normal)
    y = ap - n * float(ap @ n)
    y = y / np.linalg.norm(y)
    x = np.cross(y, n)
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2], matrix[:3, 3] = x, y, n, centre
    return matrix


AXIAL_PRESET = np.diag([-1.0, 1.0, 1.0])
"""Slicer's axial SliceToRAS rotation (screen X = patient left, screen Y = anterior, normal = superior)."""


def place_slice_node(slice_node: Any, level: LevelResult | dict) -> np.ndarray:
    """Show the level's plane in ``slice_node`` (a ``vtkMRMLSliceNode``) as Slicer's axial view would.

    The SliceToRAS set is ``slice_to_ras(level)`` with Slicer's axial preset applied to its rotation
    (screen X = ``-X`` of the plane frame: patient right on the screen's left; screen Y = towards the
    disc; normal cranial; translation = the plane centre). Returns that 4x4 matrix.
    """
    matrix = slice_to_ras(level)
    matrix[:3, :3] = matrix[:3, :3] @ AXIAL_PRESET
    target = slice_node.GetSliceToRAS()
    for r in range(4):
        for c in range(4):
            target.SetElement(r, c, float(matrix[r, c]))
    slice_node.UpdateMatrices()
    return matrix


def sac_level_labels(labels: Volume, result: GradingResult) -> tuple[Volume, list[LevelResult]]:
    """The sac voxels of ``labels`` labelled ``1 + index`` of the level nearest along the centreline.

    Only levels with a mid-level position are used; returns the label Volume and those levels.
    """
    from scipy.spatial import cKDTree

    levels = [lv for lv in result.levels if np.isfinite(lv.t_mid_mm)]
    array = np.asarray(labels.array)
    mask = np.isin(array, np.asarray(SAC_LABELS))
    out = np.zeros(array.shape, dtype=np.uint8)
    if not levels or not mask.any():
        return labels.with_array(out, is_label=True, name="dural sac by level"), levels
    t = result.centreline.sample(0.5)
    tree = cKDTree(result.centreline.points(t))
    kji = np.argwhere(mask)
    ras = labels.ijk_to_ras_points(kji[:, ::-1].astype(float))
    _, nearest = tree.query(ras)
    t_voxel = t[nearest]
    t_levels = np.array([lv.t_mid_mm for lv in levels])
    which = np.argmin(np.abs(t_voxel[:, None] - t_levels[None, :]), axis=1)
    out[kji[:, 0], kji[:, 1], kji[:, 2]] = (which + 1).astype(np.uint8)
    return labels.with_array(out, is_label=True, name="dural sac by level"), levels


def _colour(level: LevelResult) -> tuple[float, float, float]:
    return GRADE_RGB.get(level.grade or "", _GREY)


def add_grading_to_scene(
    result: GradingResult,
    scene: Any,
    *,
    labels: Volume | None = None,
    prefix: str = "",
    surfaces: bool = True,
) -> dict[str, Any]:
    """Add the grading result to ``scene`` (see the module docstring); returns the nodes by role.

    Args:
        result: from :func:`lumbarspine.grading.grade_anatomy`.
        scene: an MRML scene (``lumbarspine.scene.create_scene().scene`` or Slicer's).
        labels: the anatomy's label map, for the sac coloured by grade (skipped when None).
        prefix: prepended to every node name (e.g. the study name and a space).
        surfaces: build the segmentation's closed-surface (3D) representation.
    """
    import slicer
    import vtk

    from ..slicer_nodes import labels_to_segmentation_node, table_node_from_rows

    if scene is None:
        raise ValueError("An MRML scene is needed: pass the scene explicitly.")
    nodes: dict[str, Any] = {"outlines": {}, "ap_lines": {}}
    nodes["table"] = table_node_from_rows(table_rows(result), scene, name=f"{prefix}Stenosis grading")
    for lv in result.levels:
        s = lv.minimum
        if s is None:
            continue
        colour = _colour(lv)
        curve = scene.AddNewNodeByClass("vtkMRMLMarkupsClosedCurveNode", f"{prefix}{lv.level} dural sac outline")
        outline = s.outline_ras
        if len(outline) > 60:
            outline = outline[np.linspace(0, len(outline), 60, endpoint=False).astype(int)]
        points = vtk.vtkPoints()
        for p in outline:
            points.InsertNextPoint(*[float(c) for c in p])
        curve.SetControlPointPositionsWorld(points)
        curve.CreateDefaultDisplayNodes()
        line = scene.AddNewNodeByClass("vtkMRMLMarkupsLineNode", f"{prefix}{lv.level} AP diameter")
        for p in s.ap_line_ras:
            line.AddControlPoint(vtk.vtkVector3d(*[float(c) for c in p]))
        line.CreateDefaultDisplayNodes()
        for node in (curve, line):
            node.SetLocked(True)
            display = node.GetDisplayNode()
            display.SetSelectedColor(*colour)
            display.SetColor(*colour)
            display.SetPointLabelsVisibility(False)
            node.SetAttribute("LumbarSpine.Level", lv.level)
            node.SetAttribute("LumbarSpine.Grade", lv.grade or "")
        curve.SetDescription(
            f"{lv.level}: dural sac area {lv.area_mm2:.1f} mm2, {RSNA_LABELS.get(lv.grade or '', 'not graded')}"
        )
        line.SetDescription(f"{lv.level}: AP diameter {s.ap_diameter_mm:.1f} mm")
        nodes["outlines"][lv.level] = curve
        nodes["ap_lines"][lv.level] = line

    # area along the canal: a table and a chart
    th = result.thresholds
    finite = np.isfinite(result.profile_area_mm2)
    profile_rows = [
        {
            "position_mm": round(float(t), 2),
            "area_mm2": round(float(a), 2),
            "moderate_mm2": th.area_moderate_mm2,
            "severe_mm2": th.area_severe_mm2,
        }
        for t, a in zip(result.profile_t_mm[finite], result.profile_area_mm2[finite])
    ]
    profile = table_node_from_rows(profile_rows, scene, name=f"{prefix}Dural sac area along the canal")
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", f"{prefix}Dural sac area along the canal")
    chart.SetTitle("Dural sac area along the canal")
    chart.SetXAxisTitle("position along the centreline (mm from the cranial end)")
    chart.SetYAxisTitle("area (mm2)")
    series_nodes = []
    for column, name, colour, style in (
        ("area_mm2", "dural sac area", (0.2, 0.2, 0.2), "solid"),
        ("moderate_mm2", f"moderate < {th.area_moderate_mm2:g} mm2", GRADE_RGB["moderate"], "dash"),
        ("severe_mm2", f"severe < {th.area_severe_mm2:g} mm2", GRADE_RGB["severe"], "dash"),
    ):
        series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"{prefix}{name}")
        series.SetAndObserveTableNodeID(profile.GetID())
        series.SetXColumnName("position_mm")
        series.SetYColumnName(column)
        series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
        series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleNone)
        series.SetLineStyle(
            slicer.vtkMRMLPlotSeriesNode.LineStyleDash
            if style == "dash"
            else slicer.vtkMRMLPlotSeriesNode.LineStyleSolid
        )
        series.SetColor(*colour)
        chart.AddAndObservePlotSeriesNodeID(series.GetID())
        series_nodes.append(series)
    nodes["profile_table"], nodes["chart"], nodes["series"] = profile, chart, series_nodes

    # the dural sac coloured by grade
    if labels is not None:
        by_level, levels = sac_level_labels(labels, result)
        if np.any(by_level.array):
            segmentation = labels_to_segmentation_node(by_level, scene, name=f"{prefix}Dural sac by grade")
            seg = segmentation.GetSegmentation()
            for index in range(seg.GetNumberOfSegments()):
                segment = seg.GetNthSegment(index)
                lv = levels[int(segment.GetLabelValue()) - 1]
                segment.SetName(f"{lv.level} dural sac ({RSNA_LABELS.get(lv.grade or '', 'not graded')})")
                segment.SetColor(*_colour(lv))
                segment.SetTag("LumbarSpine.Level", lv.level)
            if surfaces:
                segmentation.CreateClosedSurfaceRepresentation()
            nodes["segmentation"] = segmentation
    return nodes
