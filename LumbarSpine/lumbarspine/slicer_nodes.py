"""Conversion between :class:`~lumbarspine.volume.Volume` and Slicer MRML nodes, in an explicit scene.

Works with the full Slicer application and with the Qt-free ``slicer-core`` wheel alike: it only
uses MRML classes, ``vtkSlicerSegmentationsModuleLogic``'s static methods and VTK, and it never
touches ``slicer.app`` or ``slicer.mrmlScene`` (the caller passes the scene).

Geometry: Slicer keeps a volume node's IJK frame right-handed. A left-handed Volume is therefore
flipped along k on the way in (:meth:`Volume.to_right_handed`), which keeps every voxel at the same
RAS position; a round trip gives back a physically identical, right-handed Volume.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .labels import label_color, project_values, segment_name, segment_terminology
from .volume import Volume

__all__ = [
    "volume_from_node",
    "volume_to_node",
    "labels_to_segmentation_node",
    "segmentation_node_to_labels",
    "color_table_node",
    "table_node_from_rows",
    "rows_from_table_node",
]

COLOR_TABLE_NODE_NAME = "LumbarSpine TotalSpineSeg labels"
TERMINOLOGY_TAG = "TerminologyEntry"
"""Segment tag Slicer reads the terminology from (``vtkSegment::GetTerminologyEntryTagName()``)."""


def _slicer() -> Any:
    import slicer

    return slicer


def volume_from_node(node: Any) -> Volume:
    """Copy a scalar or label map volume node into a :class:`Volume` (array copied, RAS geometry).

    Raises:
        ValueError: no node, no image data, a vector/RGB volume, or a node under a transform
            (harden the transform first).
    """
    from vtk.util import numpy_support

    if node is None:
        raise ValueError("No input volume node was given: select a volume.")
    if not node.IsA("vtkMRMLScalarVolumeNode"):
        raise ValueError(f"Node {node.GetName()!r} is a {node.GetClassName()}; a scalar or label map volume is needed.")
    image = node.GetImageData()
    if image is None or image.GetPointData() is None or image.GetPointData().GetScalars() is None:
        raise ValueError(f"Volume node {node.GetName()!r} holds no image data: load or compute an image first.")
    if image.GetNumberOfScalarComponents() != 1:
        raise ValueError(
            f"Volume node {node.GetName()!r} has {image.GetNumberOfScalarComponents()} components per voxel; "
            "a scalar volume is needed (convert RGB/vector volumes first)."
        )
    if node.GetParentTransformNode() is not None:
        raise ValueError(
            f"Volume node {node.GetName()!r} is under the transform {node.GetParentTransformNode().GetName()!r}: "
            "harden the transform (Data module, right-click, 'Harden transform') and try again."
        )
    ni, nj, nk = image.GetDimensions()
    array = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(nk, nj, ni).copy()
    directions = np.zeros((3, 3))
    node.GetIJKToRASDirections(directions)
    return Volume(
        array=array,
        spacing=node.GetSpacing(),
        origin=node.GetOrigin(),
        direction=directions,
        is_label=bool(node.IsA("vtkMRMLLabelMapVolumeNode")),
        name=node.GetName() or "",
    )


def _image_data(array: np.ndarray) -> Any:
    import vtk
    from vtk.util import numpy_support

    array = np.ascontiguousarray(array)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    if array.dtype == np.float16:
        array = array.astype(np.float32)
    nk, nj, ni = array.shape
    image = vtk.vtkImageData()
    image.SetDimensions(ni, nj, nk)
    scalars = numpy_support.numpy_to_vtk(array.ravel(), deep=True)
    scalars.SetName("ImageScalars")
    image.GetPointData().SetScalars(scalars)
    return image


def volume_to_node(volume: Volume, scene: Any, node: Any = None, name: str | None = None) -> Any:
    """Write ``volume`` into a MRML node of ``scene`` and return the node.

    A new ``vtkMRMLScalarVolumeNode`` (or ``vtkMRMLLabelMapVolumeNode`` for label maps) is created
    when ``node`` is None; otherwise ``node`` is updated in place (its image and geometry replaced).
    Display nodes are created; label maps get the TotalSpineSeg colour table.
    """
    if scene is None:
        raise ValueError("An MRML scene is needed: pass the scene explicitly.")
    if not isinstance(volume, Volume):
        raise ValueError(f"Expected a lumbarspine Volume, got {type(volume).__name__}.")
    volume = volume.to_right_handed()
    if node is None:
        cls = "vtkMRMLLabelMapVolumeNode" if volume.is_label else "vtkMRMLScalarVolumeNode"
        node = scene.AddNewNodeByClass(cls, name or volume.name or ("Labels" if volume.is_label else "Volume"))
    elif name:
        node.SetName(name)
    node.SetAndObserveImageData(_image_data(volume.array))
    node.SetSpacing(*volume.spacing)
    node.SetOrigin(*volume.origin)
    node.SetIJKToRASDirections(np.asarray(volume.direction, dtype=float))
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    if node.IsA("vtkMRMLLabelMapVolumeNode") and display is not None:
        display.SetAndObserveColorNodeID(color_table_node(scene).GetID())
    elif display is not None and hasattr(display, "SetAutoWindowLevel"):
        display.SetAutoWindowLevel(True)
    node.Modified()
    return node


def color_table_node(scene: Any, values: Iterable[int] | None = None) -> Any:
    """The scene's project colour table node (created once per scene, then reused).

    Entry names are the segment names (:func:`lumbarspine.labels.segment_name`: ``L4``, ``L4-L5``,
    ``dural sac`` ...), so a segmentation exported through this table gets the project's label values back.
    """
    existing = scene.GetFirstNodeByName(COLOR_TABLE_NODE_NAME)
    if existing is not None and existing.IsA("vtkMRMLColorTableNode"):
        return existing
    values = sorted(int(v) for v in (project_values() if values is None else values))
    node = scene.AddNewNodeByClass("vtkMRMLColorTableNode", COLOR_TABLE_NODE_NAME)
    node.SetTypeToUser()
    node.SetNumberOfColors(max(values) + 1)
    node.SetColor(0, "background", 0.0, 0.0, 0.0, 0.0)
    for value in values:
        r, g, b = (c / 255.0 for c in label_color(value))
        node.SetColor(value, segment_name(value), r, g, b, 1.0)
    return node


def labels_to_segmentation_node(label_volume: Volume, scene: Any, node: Any = None, name: str | None = None) -> Any:
    """Import a label map as a segmentation node, one segment per non-zero label.

    Segments are named as a surgeon reads them (:func:`lumbarspine.labels.segment_name`: ``L1``..``L5``,
    ``S1``, ``L1-L2``..``L5-S1``, ``dural sac``, ``spinal cord``, ``vertebra 2`` when unnumbered) and carry
    the label colour and the Slicer terminology entry (:func:`lumbarspine.labels.segment_terminology`);
    the segmentation's reference geometry is the label map's grid.
    """
    slicer = _slicer()
    if scene is None:
        raise ValueError("An MRML scene is needed: pass the scene explicitly.")
    array = np.asarray(label_volume.array)
    if np.dtype(array.dtype).kind not in "biu":
        raise ValueError(f"A label map must hold integers; this one holds {array.dtype}.")
    values = [int(v) for v in np.unique(array) if v != 0]
    if not values:
        raise ValueError("The label map is empty (all zeros): there is nothing to turn into segments.")
    as_label = label_volume if label_volume.is_label else label_volume.with_array(array, is_label=True)
    temp = volume_to_node(as_label, scene, name=(name or label_volume.name or "labels") + "_import")
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name or label_volume.name or "Segmentation")
    else:
        node.GetSegmentation().RemoveAllSegments()
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    node.SetReferenceImageGeometryParameterFromVolumeNode(temp)
    ok = slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(temp, node)
    helpers = [temp.GetNthDisplayNode(i) for i in range(temp.GetNumberOfDisplayNodes())]
    scene.RemoveNode(temp)
    for helper in helpers:  # RemoveNode leaves the temporary volume's display node behind
        if helper is not None and helper.GetScene() is scene:
            scene.RemoveNode(helper)
    if not ok:
        raise ValueError("Slicer could not import the label map into a segmentation.")
    segmentation = node.GetSegmentation()
    for index in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(index)
        value = int(segment.GetLabelValue())
        segment.SetName(segment_name(value))
        segment.SetColor(*(c / 255.0 for c in label_color(value)))
        segment.SetTag(TERMINOLOGY_TAG, segment_terminology(value))
    return node


def segmentation_node_to_labels(
    node: Any, scene: Any, reference: Volume | None = None, name: str | None = None
) -> Volume:
    """Export a segmentation node to a label map :class:`Volume`.

    Label values follow the TotalSpineSeg colour table for segments named after it (so an imported
    label map comes back with its original values); other segments get the next free values.
    With ``reference`` the label map is on that grid, else on the segmentation's reference geometry.
    """
    slicer = _slicer()
    import vtk

    if node is None or not node.IsA("vtkMRMLSegmentationNode"):
        raise ValueError("A segmentation node is needed.")
    segmentation = node.GetSegmentation()
    if segmentation.GetNumberOfSegments() == 0:
        raise ValueError(f"Segmentation {node.GetName()!r} has no segments.")
    ids = vtk.vtkStringArray()
    for index in range(segmentation.GetNumberOfSegments()):
        ids.InsertNextValue(segmentation.GetNthSegmentID(index))
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", (name or node.GetName()) + "_export")
    reference_node = None
    try:
        if reference is not None:
            reference_node = volume_to_node(
                reference.with_array(np.zeros(reference.shape, np.uint8)), scene, name="_ref"
            )
        mode = slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY
        ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
            node, ids, labelmap, reference_node, mode, color_table_node(scene)
        )
        if not ok:
            raise ValueError(f"Slicer could not export segmentation {node.GetName()!r} to a label map.")
        result = volume_from_node(labelmap)
    finally:
        scene.RemoveNode(labelmap)
        if reference_node is not None:
            scene.RemoveNode(reference_node)
    return Volume(
        array=result.array,
        spacing=result.spacing,
        origin=result.origin,
        direction=result.direction,
        is_label=True,
        name=name or node.GetName(),
    )


def table_node_from_rows(rows: list[Mapping[str, Any]], scene: Any, node: Any = None, name: str | None = None) -> Any:
    """Write a list of dicts (one per row, same keys) into a ``vtkMRMLTableNode``.

    Numbers (int, float, bool) become double columns, everything else string columns; ``None``
    becomes NaN in numeric columns and "" in string columns.
    """
    import vtk

    if scene is None:
        raise ValueError("An MRML scene is needed: pass the scene explicitly.")
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLTableNode", name or "Table")
    elif name:
        node.SetName(name)
    table = node.GetTable()
    table.Initialize()
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    for key in columns:
        values = [row.get(key) for row in rows]
        numeric = all(v is None or isinstance(v, (int, float, np.integer, np.floating, bool)) for v in values)
        numeric = numeric and any(v is not None for v in values)
        array = vtk.vtkDoubleArray() if numeric else vtk.vtkStringArray()
        array.SetName(str(key))
        for value in values:
            if numeric:
                array.InsertNextValue(float("nan") if value is None else float(value))
            else:
                array.InsertNextValue("" if value is None else str(value))
        table.AddColumn(array)
    node.Modified()
    return node


def rows_from_table_node(node: Any) -> list[dict[str, Any]]:
    """Read a ``vtkMRMLTableNode`` back into a list of dicts (numbers as float, text as str)."""
    table = node.GetTable()
    rows: list[dict[str, Any]] = [{} for _ in range(table.GetNumberOfRows())]
    for c in range(table.GetNumberOfColumns()):
        column = table.GetColumn(c)
        for r in range(table.GetNumberOfRows()):
            value = column.GetValue(r)
            rows[r][column.GetName()] = float(value) if column.IsNumeric() else str(value)
    return rows
