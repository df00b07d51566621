"""The surgical plan in the module's scene, its export and the 3D camera presets (Qt-free, Python 3.9-safe).

:func:`put_plan_in_scene` adds what ``lumbarspine.planning.scene.build_plan_scene`` makes from the worker's
result (``lumbarspine.planning.panel_support.plan_image``): the planning volumes (a decompression segment
per level, the no-go zone) in the output segmentation, the vertebrae as semi-transparent bone, the dural
sac per level coloured by its grade, a decompression table, and the screws as line markups with models
(:mod:`SpineModulesLib.screws`). The output segmentation references the label map planned on
(:data:`PLAN_LABELS_ROLE`; the automatic segmentation is added to the scene), the image planned with when its
bone was refined by the CT's HU (:data:`PLAN_IMAGE_ROLE`: the screw edits then evaluate on that same bone,
``lumbarspine.planning.screw_edit.label_map_maps``), and keeps the decompression rows as JSON
(:data:`DECOMPRESSIONS_ATTRIBUTE`); a rerun into it replaces the previous run's nodes.
:func:`export_plan` writes the screws (as they are now, after any edit) and the planning volumes as STL / OBJ
in RAS or LPS (``lumbarspine.planning.export``); :func:`point_cameras` puts the 3D views' cameras on a
standard view (posterior, left, superior).
"""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from SpineModulesLib.outputs import remember_run_nodes, remove_node, remove_run_nodes
from SpineModulesLib.screws import ATTR_DIAMETER, line_points, put_screws_in_scene, screw_lines

__all__ = [
    "PLAN_LABELS_ROLE",
    "PLAN_IMAGE_ROLE",
    "DECOMPRESSIONS_ATTRIBUTE",
    "CAMERA_PRESETS",
    "DECOMPRESSION_COLUMNS",
    "put_plan_in_scene",
    "plan_labels_node",
    "plan_image_node",
    "decompression_rows_of",
    "export_plan",
    "point_cameras",
    "grades_from_table",
]

PLAN_LABELS_ROLE = "LumbarSpine.PlanLabels"
PLAN_IMAGE_ROLE = "LumbarSpine.PlanImage"
"""The output's reference to the CT its screws were planned with (only when the bone was refined by its HU)."""
DECOMPRESSIONS_ATTRIBUTE = "LumbarSpine.Decompressions"
DECOMPRESSION_COLUMNS = (
    ("level", "Level", "{}"),
    ("bone_volume_cm3", "Bone (cm³)", "{:.2f}"),
    ("facet_left_removed_pct", "Left facet (%)", "{:.0f}"),
    ("facet_right_removed_pct", "Right facet (%)", "{:.0f}"),
    ("canal_area_before_mm2", "Canal before (mm²)", "{:.0f}"),
    ("canal_area_after_mm2", "Canal after (mm²)", "{:.0f}"),
)
"""The panel's decompression table: (row key, title, format)."""

CAMERA_PRESETS: Dict[str, Tuple[Tuple[float, float, float], Tuple[float, float, float]]] = {
    "posterior": ((0.0, -1.0, 0.0), (0.0, 0.0, 1.0)),
    "left": ((-1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "superior": ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0)),
}
"""Standard views as (direction from the focal point to the camera, view-up), RAS: from behind the patient,
from the patient's left side (lateral), and axial from above with anterior up (``lumbarspine.render``'s
``superior``)."""


def _copy_segments(source: Any, target: Any) -> None:
    """Replace ``target``'s segments (and their 3D opacities) by ``source``'s."""
    segmentation = target.GetSegmentation()
    segmentation.DeepCopy(source.GetSegmentation())
    if target.GetDisplayNode() is None:
        target.CreateDefaultDisplayNodes()
    made, display = source.GetDisplayNode(), target.GetDisplayNode()
    for index in range(segmentation.GetNumberOfSegments()):
        segment_id = segmentation.GetNthSegmentID(index)
        if made is not None:
            display.SetSegmentOpacity3D(segment_id, made.GetSegmentOpacity3D(segment_id))


def _labels_node(anatomy: Any, given: Any, segmented: bool, base: str, scene: Any) -> Tuple[Any, bool]:
    """The label map node planned on: ``given`` when the plan used its voxels as they are, else a new node
    (the automatic segmentation, or the import on the image's grid / in the project's convention)."""
    from lumbarspine.slicer_nodes import volume_from_node, volume_to_node

    labels = anatomy.labels
    if given is not None and not segmented:
        original = volume_from_node(given)
        if original.same_geometry(labels) and np.array_equal(np.asarray(original.array), np.asarray(labels.array)):
            return given, False
    suffix = "segmentation" if segmented else "plan_labels"
    return volume_to_node(labels, scene, name=scene.GenerateUniqueName(f"{base}_{suffix}")), True


def put_plan_in_scene(
    planned: Dict[str, Any],
    base: str,
    output: Any,
    scene: Any,
    labels_node: Any = None,
    surfaces: bool = True,
    image_node: Any = None,
) -> Tuple[Any, List[Any], Dict[str, Any]]:
    """Put ``planned`` (``plan_image``'s result) into ``scene`` (see the module docstring).

    ``base`` prefixes new node names; ``output`` (a segmentation node) is refilled (a new one when None);
    ``labels_node`` is the label map node the plan was asked for (None: automatic segmentation);
    ``image_node`` the image node planned (referenced as :data:`PLAN_IMAGE_ROLE` when ``planned["refined_bone"]``).
    Returns the output segmentation, the screw lines and the other nodes by role (``vertebrae``,
    ``dural_sac``, ``decompression_table``, ``labels``) with ``no_go_volume_mm3``.

    :raises ValueError: an empty no-go zone (nothing is added then).
    """
    from lumbarspine.planning.panel_support import NO_GO_SEGMENT, decompression_rows, unpack_masks
    from lumbarspine.planning.scene import build_plan_scene
    from lumbarspine.slicer_nodes import table_node_from_rows

    anatomy = planned["anatomy"]
    masks = unpack_masks(planned["masks"], planned["mask_names"])
    no_go = masks.pop(NO_GO_SEGMENT, None)
    if no_go is None or not no_go.any():
        raise ValueError(
            "The no-go zone is empty: the label map has no neural elements "
            "(spinal cord label 1 or spinal canal label 2 in the TotalSpineSeg convention)."
        )
    decompressions = {row["level"]: masks[f"Decompression {row['level']}"] for row in planned["decompressions"]}
    remove_run_nodes(output, scene)
    made = build_plan_scene(
        types.SimpleNamespace(scene=scene),
        anatomy,
        {"screws": []},
        grades=planned.get("grades"),
        decompression_masks=decompressions,
        no_go_mask=no_go,
    )
    planning = made["planning"]
    if output is None:
        output = planning
        output.SetName(scene.GenerateUniqueName(f"{base}_plan"))
    else:
        _copy_segments(planning, output)
        remove_node(planning, scene)
    nodes: Dict[str, Any] = {"vertebrae": made["vertebrae"], "dural_sac": made["dural_sac"]}
    for role in ("vertebrae", "dural_sac"):
        if nodes[role] is not None:
            nodes[role].SetName(scene.GenerateUniqueName(f"{base} {nodes[role].GetName().lower()}"))
    rows = decompression_rows(planned["decompressions"])
    nodes["decompression_table"] = (
        table_node_from_rows(rows, scene, name=scene.GenerateUniqueName(f"{base}_decompressions")) if rows else None
    )
    labels, added = _labels_node(anatomy, labels_node, bool(planned.get("segmented")), base, scene)
    nodes["labels"] = labels
    nodes["no_go_volume_mm3"] = float(np.count_nonzero(no_go)) * float(anatomy.labels.voxel_volume_mm3)
    if not surfaces:
        from lumbarspine.slicer_nodes import _slicer

        name = _slicer().vtkSegmentationConverter.GetSegmentationClosedSurfaceRepresentationName()
        for node in (output, nodes["vertebrae"], nodes["dural_sac"]):
            if node is not None:
                node.GetSegmentation().RemoveRepresentation(name)
    lines = put_screws_in_scene(planned["screws"], planned["refused"], output, scene)
    remember_run_nodes(
        output, [nodes["vertebrae"], nodes["dural_sac"], nodes["decompression_table"], labels if added else None]
    )
    output.SetNodeReferenceID(PLAN_LABELS_ROLE, labels.GetID())
    refined = bool(planned.get("refined_bone")) and image_node is not None
    output.SetNodeReferenceID(PLAN_IMAGE_ROLE, image_node.GetID() if refined else None)
    output.SetAttribute(DECOMPRESSIONS_ATTRIBUTE, json.dumps(rows))
    output.SetAttribute("LumbarSpine.PlanWarnings", json.dumps(list(planned.get("warnings", []))))
    return output, lines, nodes


def plan_labels_node(output: Optional[Any]) -> Any:
    """The label map node the plan in ``output`` was made on (None when there is none)."""
    return output.GetNodeReference(PLAN_LABELS_ROLE) if output is not None else None


def plan_image_node(output: Optional[Any]) -> Any:
    """The image node whose HU refined the bone the plan in ``output`` was made on (None: the labels alone)."""
    return output.GetNodeReference(PLAN_IMAGE_ROLE) if output is not None else None


def decompression_rows_of(output: Optional[Any]) -> List[Dict[str, Any]]:
    """The decompression rows kept on ``output`` (``panel_support.decompression_rows``)."""
    text = output.GetAttribute(DECOMPRESSIONS_ATTRIBUTE) if output is not None else None
    return json.loads(text) if text else []


def grades_from_table(table: Any) -> Dict[str, str]:
    """``{level: grade}`` from a grading table node (SpineStenosis' ``<image>_stenosis``: ``level``, ``grade``).

    :raises ValueError: not a table, or no level with a grade (``lumbarspine.planning.decompression.read_grades``).
    """
    from lumbarspine.planning.decompression import read_grades
    from lumbarspine.slicer_nodes import rows_from_table_node

    if table is None or not table.IsA("vtkMRMLTableNode"):
        raise ValueError("The grades must come from a grading table node (the Lumbar Stenosis Grading output).")
    rows = rows_from_table_node(table)
    if not rows or "level" not in rows[0]:
        raise ValueError(f"Table {table.GetName()!r} has no 'level' column: pick the stenosis grading table.")
    return read_grades(rows)


def _segment_mask(segmentation_node: Any, segment_id: str, reference_node: Any, scene: Any) -> Any:
    """The segment as a label Volume on ``reference_node``'s grid."""
    import vtk

    from lumbarspine.slicer_nodes import _slicer, volume_from_node

    slicer = _slicer()
    ids = vtk.vtkStringArray()
    ids.InsertNextValue(segment_id)
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "_export")
    try:
        ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
            segmentation_node, ids, labelmap, reference_node, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY
        )
        if not ok:
            raise ValueError(f"Slicer could not export the segment {segment_id!r} of {segmentation_node.GetName()!r}.")
        return volume_from_node(labelmap)
    finally:
        remove_node(labelmap, scene)


def export_plan(output: Any, scene: Any, folder: Any, coordinates: str = "RAS") -> Dict[str, Any]:
    """Write the plan of ``output`` into ``folder`` as STL and OBJ in ``coordinates`` (``RAS`` or ``LPS``), with
    ``exports.json`` (``lumbarspine.planning.export.export_surfaces``); returns that sidecar's content.

    Screws are exported as they are in the scene now (entry, tip and diameter of each line, after any edit),
    the planning volumes (decompressions, no-go zone) from the output's segments on the planned label map's
    grid (marching cubes, as ``lumbarspine plan`` does). Never opens a dialog: the caller gives the folder.

    :raises ValueError: no plan, an unknown coordinate system, no folder.
    """
    from lumbarspine import __version__
    from lumbarspine.planning.export import COORDINATE_SYSTEMS, export_surfaces, mask_surface, polydata_surface
    from lumbarspine.planning.scene import screw_polydata
    from lumbarspine.slicer_nodes import volume_from_node

    if output is None or not output.IsA("vtkMRMLSegmentationNode"):
        raise ValueError("No plan to export: run the planning first (its output segmentation holds the plan).")
    system = str(coordinates).upper()
    if system not in COORDINATE_SYSTEMS:
        raise ValueError(f"Unknown coordinate system {coordinates!r}: choose RAS or LPS.")
    if folder is None or not str(folder).strip():
        raise ValueError("No export folder: choose a folder for the STL / OBJ files.")
    objects: List[Dict[str, Any]] = []
    for line in screw_lines(output):
        entry, tip = line_points(line)
        diameter = float(line.GetAttribute(ATTR_DIAMETER) or "nan")
        if not np.isfinite(diameter):
            raise ValueError(f"Screw {line.GetName()!r} has no diameter: re-plan or resize it.")
        verts, faces = polydata_surface(screw_polydata(entry, tip, diameter))
        objects.append(
            {
                "name": f"screw {line.GetName()}",
                "kind": "screw",
                "verts_ras": verts,
                "faces": faces,
                "diameter_mm": diameter,
                "length_mm": round(float(np.linalg.norm(tip - entry)), 2),
            }
        )
    reference = plan_labels_node(output)
    segmentation = output.GetSegmentation()
    if segmentation.GetNumberOfSegments() and reference is None:
        raise ValueError("The plan's label map is no longer in the scene: run the planning again to export it.")
    grid = volume_from_node(reference) if reference is not None else None
    for index in range(segmentation.GetNumberOfSegments()):
        segment_id = segmentation.GetNthSegmentID(index)
        name = segmentation.GetNthSegment(index).GetName()
        mask = np.asarray(_segment_mask(output, segment_id, reference, scene).array) > 0
        if not mask.any():
            continue
        verts, faces = mask_surface(grid, mask)
        entry = {"name": name.lower(), "kind": "no-go zone", "verts_ras": verts, "faces": faces}
        if name.startswith("Decompression "):
            level = name[len("Decompression ") :]
            volume = float(mask.sum()) * grid.voxel_volume_mm3 / 1000.0
            entry.update(kind="decompression", name=f"decompression {level}", level=level, volume_cm3=round(volume, 3))
        objects.append(entry)
    if not objects:
        raise ValueError("The plan holds no screw and no planning volume: nothing to export.")
    return export_surfaces(Path(folder), objects, coordinates=system, software_version=f"lumbarspine {__version__}")


def point_cameras(scene: Any, view: str, bounds: Any, layout_names: Optional[List[str]] = None) -> List[Any]:
    """Put the 3D cameras of ``scene`` on the standard ``view`` (:data:`CAMERA_PRESETS`) of the RAS box
    ``bounds = (min, max)`` (mm): focal point its centre, far enough away for the whole box to fit the view
    angle. ``layout_names``: only those views' cameras (None: every camera). Returns the cameras moved.

    :raises ValueError: an unknown view, a box that is not finite.
    """
    if view not in CAMERA_PRESETS:
        raise ValueError(f"Unknown view {view!r}: choose one of {', '.join(CAMERA_PRESETS)}.")
    low, high = (np.asarray(b, dtype=float).reshape(3) for b in bounds)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise ValueError("The box to look at is not finite.")
    centre = (low + high) / 2.0
    radius = max(float(np.linalg.norm(high - low)) / 2.0, 1.0)
    direction, up = (np.asarray(v, dtype=float) for v in CAMERA_PRESETS[view])
    moved = []
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLCameraNode")):
        camera = scene.GetNthNodeByClass(index, "vtkMRMLCameraNode")
        if layout_names is not None and camera.GetLayoutName() not in layout_names:
            continue
        angle = float(camera.GetViewAngle()) if camera.GetViewAngle() > 1.0 else 30.0
        distance = radius / np.sin(np.radians(angle) / 2.0)
        wasModifying = camera.StartModify()
        camera.SetFocalPoint(*centre)
        camera.SetPosition(*(centre + distance * direction))
        camera.SetViewUp(*up)
        camera.EndModify(wasModifying)
        camera.ResetClippingRange()  # the 3D view fits its near / far planes to the scene again
        moved.append(camera)
    return moved


def _path_or_none(path: Any) -> Optional[str]:
    """A path the user chose, or None for an empty one (a path widget's empty text reads as ``Path(".")``)."""
    if path is None:
        return None
    text = str(path).strip()
    return None if text in ("", ".") else text


class PlanSceneMixin:
    """The planning Logic's inputs, scene content, export and 3D views (Qt-free; nodes and a scene passed in)."""

    @staticmethod
    def inputNodes(inputVolume: Any, inputLabelmap: Any = None) -> Tuple[Any, Any]:
        """``(image node, label map node)``: a label map node given as the image, with no label map, is the label map."""
        if inputVolume is not None and inputLabelmap is None and inputVolume.IsA("vtkMRMLLabelMapVolumeNode"):
            return None, inputVolume
        return inputVolume, inputLabelmap

    @staticmethod
    def planInputs(inputVolume: Any, inputLabelmap: Any = None) -> Tuple[Any, Any]:
        """``(image Volume or None, label Volume or None)`` of the input nodes; a label map node given as the
        image (and no label map) is planned as the label map alone.

        :raises ValueError: no input, an input that is not a volume, the same node twice.
        """
        from SpineModulesLib.nodes import image_volume_from_node, label_volume_from_node

        inputVolume, inputLabelmap = PlanSceneMixin.inputNodes(inputVolume, inputLabelmap)
        if inputVolume is None and inputLabelmap is None:
            raise ValueError("No input image: select a CT or MRI volume (or a spine label map).")
        if inputVolume is not None and inputLabelmap is not None and inputVolume.GetID() == inputLabelmap.GetID():
            raise ValueError("The label map is the input image itself: pick its segmentation, or None.")
        image = image_volume_from_node(inputVolume, "input image") if inputVolume is not None else None
        labels = label_volume_from_node(inputLabelmap) if inputLabelmap is not None else None
        return image, labels

    @staticmethod
    def baseName(inputVolume: Any, inputLabelmap: Any = None) -> str:
        node = inputVolume if inputVolume is not None else inputLabelmap
        return node.GetName() if node is not None else "Plan"

    @staticmethod
    def gradesOf(gradesTable: Any = None, gradesReport: Any = None) -> Optional[Dict[str, str]]:
        """``{level: grade}`` from a grading table node or a ``report.json`` path (None: no grades).

        :raises ValueError: both given, a missing or unreadable report, no graded level.
        """
        from lumbarspine.planning.decompression import read_grades

        report = _path_or_none(gradesReport)
        if gradesTable is not None and report is not None:
            raise ValueError("Give the grades once: the stenosis table or a report.json, not both.")
        if gradesTable is not None:
            return grades_from_table(gradesTable)
        if report is None:
            return None
        if not Path(report).is_file():
            raise ValueError(
                f"The grading report {report} does not exist: pick the report.json of 'lumbarspine grade'."
            )
        return read_grades(report)

    @staticmethod
    def levelsOf(levels: Any) -> List[str]:
        """Disc levels from a list or a comma separated text (ValueError on a name that is not a level)."""
        from lumbarspine.planning.panel_support import normalise_levels

        return normalise_levels(levels)

    @staticmethod
    def putPlan(planned, base, outputSegmentation, scene, inputLabelmap=None, createSurface=True, inputVolume=None):
        """:func:`put_plan_in_scene`."""
        return put_plan_in_scene(planned, base, outputSegmentation, scene, inputLabelmap, createSurface, inputVolume)

    @staticmethod
    def planLabelmap(outputSegmentation: Any) -> Any:
        """The label map node the plan in ``outputSegmentation`` was made on (None without a plan)."""
        return plan_labels_node(outputSegmentation)

    @staticmethod
    def planImage(outputSegmentation: Any) -> Any:
        """The image node the plan's bone was refined with (None: planned on the labels alone); the screw edits
        take it with :meth:`planLabelmap` so they grade on the plan's bone."""
        return plan_image_node(outputSegmentation)

    @staticmethod
    def decompressionRows(outputSegmentation: Any) -> List[Dict[str, Any]]:
        """The decompression table of the plan (level, bone cm3, facet shares %, canal areas mm2)."""
        return decompression_rows_of(outputSegmentation)

    @staticmethod
    def exportPlan(outputSegmentation: Any, folder: Any, coordinates: str, scene: Any) -> str:
        """Export the plan as STL / OBJ in ``coordinates`` into ``folder`` (:func:`export_plan`); a message."""
        target = _path_or_none(folder)
        if target is None:
            raise ValueError("No export folder: choose a folder for the STL / OBJ files.")
        sidecar = export_plan(outputSegmentation, scene, target, coordinates)
        return f"{len(sidecar['objects'])} object(s) exported as STL and OBJ in {sidecar['coordinate_system']} to {target}."

    @staticmethod
    def showView(outputSegmentation: Any, view: str, scene: Any) -> int:
        """Put the 3D cameras on the standard ``view`` of the planned spine (the label map's bone, else its grid).

        :raises ValueError: no plan, an unknown view, no 3D view in the scene.
        """
        from lumbarspine.slicer_nodes import volume_from_node

        labels_node = plan_labels_node(outputSegmentation)
        if labels_node is None:
            raise ValueError("No plan to look at: run the planning first.")
        labels = volume_from_node(labels_node)
        kji = np.argwhere(np.asarray(labels.array) > 0)
        if len(kji):
            ras = labels.ijk_to_ras_points(kji[:, ::-1].astype(float))
            bounds = (ras.min(axis=0), ras.max(axis=0))
        else:
            bounds = labels.bounds_ras()
        moved = point_cameras(scene, view, bounds)
        if not moved:
            raise ValueError("The scene has no 3D view camera to move.")
        return len(moved)
