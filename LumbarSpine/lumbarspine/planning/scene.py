"""The plan in a Slicer scene (explicit scene, no ``slicer.mrmlScene``): what the surgeon sees in 3D.

* vertebrae as semi-transparent bone (one segmentation, a segment per vertebra);
* the dural sac, split per disc level and coloured by its grade when grades are given;
* decompression volumes (a segment per level) and the no-go zone;
* each screw as a line markup (entry -> tip, named ``"L4 left"``) plus a screw model (cylindrical
  shaft and conical tip of the planned diameter), both coloured by the Gertzbein-Robbins grade;
  the line carries the diameter and the vertebra as attributes so that moving it re-evaluates the
  screw (:func:`lumbarspine.planning.evaluate.observe_line_markup`);
* a volume rendering of the CT or MRI with this project's transfer functions
  (:data:`CT_BONE_TRANSFER`, :data:`MRI_TRANSFER`; the slicer-core wheel ships no presets).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..anatomy.model import SpineAnatomy
from ..labels import SPINAL_CANAL, SPINAL_CORD
from ..volume import Volume
from .evaluate import (
    ATTR_DIAMETER,
    ATTR_SIDE,
    ATTR_VERTEBRA,
    GRADE_COLORS,
    MODEL_REFERENCE_ROLE,
    evaluate_line_markup,
)

__all__ = [
    "screw_polydata",
    "add_screw",
    "build_plan_scene",
    "add_volume_rendering",
    "CT_BONE_TRANSFER",
    "MRI_TRANSFER",
    "SAC_GRADE_COLORS",
    "BONE_COLOR",
]

BONE_COLOR = (0.93, 0.87, 0.74)
BONE_OPACITY = 0.35
SAC_GRADE_COLORS: dict[str, tuple[float, float, float]] = {
    "normal": (0.2, 0.7, 0.3),
    "moderate": (1.0, 0.65, 0.1),
    "severe": (0.9, 0.12, 0.12),
    "ungraded": (0.25, 0.55, 1.0),
}
"""Dural sac colour per central canal grade (``Normal/Mild`` -> normal)."""
DECOMPRESSION_COLOR = (0.75, 0.25, 0.9)
NO_GO_COLOR = (1.0, 0.2, 0.2)
NO_GO_OPACITY = 0.2
SCREW_TIP_LENGTH_FACTOR = 1.2
"""Length of the screw's conical tip, in screw diameters."""

CT_BONE_TRANSFER: dict[str, list[tuple[float, ...]]] = {
    "opacity": [(-1024.0, 0.0), (150.0, 0.0), (250.0, 0.08), (500.0, 0.35), (1200.0, 0.6), (3000.0, 0.6)],
    "color": [
        (-1024.0, 0.0, 0.0, 0.0),
        (150.0, 0.55, 0.25, 0.15),
        (300.0, 0.85, 0.7, 0.5),
        (700.0, 1.0, 0.95, 0.85),
        (3000.0, 1.0, 1.0, 1.0),
    ],
}
"""CT volume rendering (HU): soft tissue transparent, cancellous bone faint, cortical bone opaque ivory."""

MRI_TRANSFER: dict[str, list[tuple[float, ...]]] = {
    "opacity": [(0.0, 0.0), (0.55, 0.0), (0.8, 0.15), (1.0, 0.4)],
    "color": [(0.0, 0.0, 0.0, 0.0), (0.55, 0.3, 0.3, 0.45), (0.8, 0.7, 0.8, 1.0), (1.0, 1.0, 1.0, 1.0)],
}
"""T2 MRI volume rendering, positions as fractions of the 99.5th intensity percentile: only the bright
fluid (CSF, discs) shows, bluish white."""


def _unit(v: np.ndarray) -> np.ndarray:
    return np.asarray(v, float) / float(np.linalg.norm(v))


def screw_polydata(entry_ras: Any, tip_ras: Any, diameter_mm: float, resolution: int = 24) -> Any:
    """``vtkPolyData`` of a screw: a cylinder of ``diameter_mm`` from ``entry`` and a cone ending at ``tip`` (RAS)."""
    import vtk

    entry = np.asarray(entry_ras, float).reshape(3)
    tip = np.asarray(tip_ras, float).reshape(3)
    length = float(np.linalg.norm(tip - entry))
    if length < 1e-6:
        raise ValueError("The screw's entry and tip are the same point.")
    radius = float(diameter_mm) / 2
    cone = min(SCREW_TIP_LENGTH_FACTOR * float(diameter_mm), 0.5 * length)
    shaft = length - cone
    cylinder = vtk.vtkCylinderSource()  # along +y, centred at the origin
    cylinder.SetRadius(radius)
    cylinder.SetHeight(shaft)
    cylinder.SetCenter(0.0, shaft / 2, 0.0)
    cylinder.SetResolution(resolution)
    cylinder.CappingOn()
    tip_source = vtk.vtkConeSource()
    tip_source.SetRadius(radius)
    tip_source.SetHeight(cone)
    tip_source.SetDirection(0.0, 1.0, 0.0)
    tip_source.SetCenter(0.0, shaft + cone / 2, 0.0)
    tip_source.SetResolution(resolution)
    append = vtk.vtkAppendPolyData()
    append.AddInputConnection(cylinder.GetOutputPort())
    append.AddInputConnection(tip_source.GetOutputPort())
    # local y -> screw axis, local x, z -> two perpendicular directions (a rotation), origin -> entry
    y = (tip - entry) / length
    helper = np.array([0.0, 0.0, 1.0]) if abs(y[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = _unit(np.cross(y, helper))
    z = np.cross(x, y)
    matrix = vtk.vtkMatrix4x4()
    for row in range(3):
        matrix.SetElement(row, 0, x[row])
        matrix.SetElement(row, 1, y[row])
        matrix.SetElement(row, 2, z[row])
        matrix.SetElement(row, 3, entry[row])
    transform = vtk.vtkTransform()
    transform.SetMatrix(matrix)
    move = vtk.vtkTransformPolyDataFilter()
    move.SetTransform(transform)
    move.SetInputConnection(append.GetOutputPort())
    normals = vtk.vtkPolyDataNormals()
    normals.SetInputConnection(move.GetOutputPort())
    normals.Update()
    out = vtk.vtkPolyData()
    out.DeepCopy(normals.GetOutput())
    return out


def add_screw(scene: Any, screw: dict[str, Any], anatomy: SpineAnatomy | None = None) -> tuple[Any, Any]:
    """Add one screw (a :meth:`ScrewPlan.to_dict` row) as a line markup and a model; returns both nodes."""
    name = screw.get("name") or f"{screw['vertebra']} {screw['side']}"
    grade = screw.get("gertzbein_robbins") or "A"
    color = GRADE_COLORS.get(grade, (0.8, 0.8, 0.8))
    line = scene.AddNewNodeByClass("vtkMRMLMarkupsLineNode", name)
    line.CreateDefaultDisplayNodes()
    line.AddControlPointWorld(np.asarray(screw["entry_ras"], float), "entry")
    line.AddControlPointWorld(np.asarray(screw["tip_ras"], float), "tip")
    line.SetAttribute(ATTR_DIAMETER, f"{float(screw['diameter_mm']):g}")
    line.SetAttribute(ATTR_VERTEBRA, str(screw["vertebra"]))
    line.SetAttribute(ATTR_SIDE, str(screw["side"]))
    display = line.GetDisplayNode()
    display.SetSelectedColor(*color)
    display.SetColor(*color)
    display.SetPropertiesLabelVisibility(False)
    display.SetPointLabelsVisibility(False)
    display.SetGlyphScale(2.0)
    model = scene.AddNewNodeByClass("vtkMRMLModelNode", f"{name} screw")
    model.SetAndObservePolyData(screw_polydata(screw["entry_ras"], screw["tip_ras"], float(screw["diameter_mm"])))
    model.CreateDefaultDisplayNodes()
    model.GetDisplayNode().SetColor(*color)
    model.GetDisplayNode().SetOpacity(1.0)
    line.SetNodeReferenceID(MODEL_REFERENCE_ROLE, model.GetID())
    if anatomy is not None:
        evaluate_line_markup(line, anatomy)
    return line, model


VOLUME_RENDERING_METHODS = {
    "cpu": "vtkMRMLCPURayCastVolumeRenderingDisplayNode",
    "gpu": "vtkMRMLGPURayCastVolumeRenderingDisplayNode",
}


def add_volume_rendering(ctx: Any, volume_node: Any, modality: str, method: str = "cpu") -> Any:
    """Volume-render ``volume_node`` with :data:`CT_BONE_TRANSFER` (``modality == "ct"``) or
    :data:`MRI_TRANSFER` (scaled to the image's 99.5th percentile); returns the display node.

    ``method``: ``"cpu"`` ray casting (default: about 5x faster than the GPU mapper on a machine
    rendering offscreen with Mesa llvmpipe) or ``"gpu"`` (in Slicer with a graphics card).
    """
    import vtk
    from vtk.util.numpy_support import vtk_to_numpy

    if method not in VOLUME_RENDERING_METHODS:
        raise ValueError(f"Unknown volume rendering method {method!r}: choose cpu or gpu.")
    logic = ctx.logic("VolumeRendering")
    logic.SetDefaultRenderingMethod(VOLUME_RENDERING_METHODS[method])
    display = logic.CreateDefaultVolumeRenderingNodes(volume_node)
    prop = display.GetVolumePropertyNode().GetVolumeProperty()
    if modality == "ct":
        table, scale = CT_BONE_TRANSFER, 1.0
    else:
        values = vtk_to_numpy(volume_node.GetImageData().GetPointData().GetScalars())
        table, scale = MRI_TRANSFER, float(np.percentile(values, 99.5)) or 1.0
    opacity = vtk.vtkPiecewiseFunction()
    for x, y in table["opacity"]:
        opacity.AddPoint(x * scale, y)
    colors = vtk.vtkColorTransferFunction()
    for x, r, g, b in table["color"]:
        colors.AddRGBPoint(x * scale, r, g, b)
    prop.SetScalarOpacity(opacity)
    prop.SetColor(colors)
    prop.ShadeOn()
    prop.SetInterpolationTypeToLinear()
    display.SetVisibility(True)
    return display


def _grade_key(grade: str | None) -> str:
    if not grade:
        return "ungraded"
    g = grade.lower()
    for key in ("severe", "moderate"):
        if key in g:
            return key
    return "normal"


def _sac_by_level(anatomy: SpineAnatomy) -> tuple[np.ndarray, list[str]]:
    """Label map (uint8) of the neural elements split into the nearest disc level (1-based index)."""
    array = np.asarray(anatomy.labels.array)
    sac = np.isin(array, (SPINAL_CANAL, SPINAL_CORD))
    out = np.zeros(array.shape, np.uint8)
    if not sac.any() or not anatomy.discs:
        out[sac] = 1
        return out, ["dural sac"]
    kji = np.argwhere(sac)
    ras = anatomy.labels.ijk_to_ras_points(kji[:, ::-1].astype(float))
    centres = np.array([d.centroid_ras for d in anatomy.discs])
    # distance along the spine: use the superior coordinate of the disc centroids (nearest level)
    nearest = np.argmin(np.abs(ras[:, 2:3] - centres[None, :, 2]), axis=1)
    out[kji[:, 0], kji[:, 1], kji[:, 2]] = (nearest + 1).astype(np.uint8)
    return out, [d.name for d in anatomy.discs]


def _segmentation_from_masks(
    scene: Any,
    grid: Volume,
    name: str,
    segments: list[tuple[str, np.ndarray, tuple[float, float, float], float]],
) -> Any:
    """A segmentation node with one segment per (name, mask, colour, opacity); empty masks are skipped."""
    from ..slicer_nodes import labels_to_segmentation_node

    array = np.zeros(grid.shape, np.uint16)
    used = []
    for index, (_, mask, _, _) in enumerate(segments, start=1):
        if np.any(mask):
            array[np.asarray(mask, bool)] = index
            used.append(index)
    if not used:
        return None
    node = labels_to_segmentation_node(grid.with_array(array, is_label=True, name=name), scene, name=name)
    segmentation = node.GetSegmentation()
    display = node.GetDisplayNode()
    for i in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(i)
        index = int(segment.GetLabelValue())
        seg_name, _, color, opacity = segments[index - 1]
        segment.SetName(seg_name)
        segment.SetColor(*color)
        if display is not None:
            display.SetSegmentOpacity3D(segmentation.GetNthSegmentID(i), opacity)
    node.CreateClosedSurfaceRepresentation()
    return node


def build_plan_scene(
    ctx: Any,
    anatomy: SpineAnatomy,
    plan: dict[str, Any],
    *,
    image: Volume | None = None,
    grades: dict[str, str] | None = None,
    decompression_masks: dict[str, np.ndarray] | None = None,
    no_go_mask: np.ndarray | None = None,
    observe: bool = False,
) -> dict[str, Any]:
    """Fill ``ctx`` (a :class:`lumbarspine.scene.HeadlessScene`) with the plan.

    Args:
        ctx: the scene.
        anatomy: the spine.
        plan: ``{"screws": [ScrewPlan.to_dict() rows], ...}``.
        image: the CT or MRI (volume-rendered) or None.
        grades: ``{level: grade}`` for the dural sac colours.
        decompression_masks: ``{level: boolean mask}`` on the label map's grid.
        no_go_mask: boolean mask of the no-go zone.
        observe: re-evaluate a screw whenever its line is moved (for interactive use), on the plan's bone: with
            ``image`` (a coarse CT) the bone refined by its HU, as :func:`lumbarspine.planning.study.plan_anatomy`.

    Returns:
        ``{"vertebrae", "dural_sac", "planning", "screws": [(line, model)], "image", "volume_rendering"}``.
    """
    from ..slicer_nodes import volume_to_node
    from .evaluate import PlanningMaps, observe_line_markup

    scene = ctx.scene
    nodes: dict[str, Any] = {"screws": []}
    array = np.asarray(anatomy.labels.array)
    vertebrae = [
        (v.name, array == v.label, BONE_COLOR, BONE_OPACITY) for v in anatomy.vertebrae if (array == v.label).any()
    ]
    nodes["vertebrae"] = _segmentation_from_masks(scene, anatomy.labels, "Vertebrae", vertebrae)
    sac, level_names = _sac_by_level(anatomy)
    sac_segments = []
    for index, level in enumerate(level_names, start=1):
        grade = (grades or {}).get(level)
        key = _grade_key(grade) if grades else "ungraded"
        label = f"Dural sac {level}" + (f" ({grade})" if grade else "")
        sac_segments.append((label, sac == index, SAC_GRADE_COLORS[key], 1.0))
    nodes["dural_sac"] = _segmentation_from_masks(scene, anatomy.labels, "Dural sac", sac_segments)
    planning_segments = [
        (f"Decompression {level}", mask, DECOMPRESSION_COLOR, 0.9)
        for level, mask in (decompression_masks or {}).items()
    ]
    if no_go_mask is not None:
        planning_segments.append(("No-go zone", no_go_mask, NO_GO_COLOR, NO_GO_OPACITY))
    nodes["planning"] = _segmentation_from_masks(scene, anatomy.labels, "Planning volumes", planning_segments)
    maps = PlanningMaps(anatomy, image=image) if observe else None  # the plan's bone
    for screw in plan.get("screws", []):
        line, model = add_screw(scene, screw)
        nodes["screws"].append((line, model))
        if observe:
            observe_line_markup(line, anatomy, maps=maps)
    nodes["image"] = None
    nodes["volume_rendering"] = None
    if image is not None:
        nodes["image"] = volume_to_node(image, scene, name=image.name or "Image")
        modality = "ct" if anatomy.modality == "ct" else "mri"
        nodes["volume_rendering"] = add_volume_rendering(ctx, nodes["image"], modality)
    return nodes
