"""Slice views on a measurement plane (Qt-free, Python 3.9-safe; MRML nodes and an explicit scene).

:func:`place_views_on_plane` moves the scene's Red, Yellow and Green slice nodes onto a plane given as
a 4x4 SliceToRAS matrix ``F`` (columns: X, Y, Z = the plane normal, translation = the plane centre, RAS
mm), such as :func:`lumbarspine.grading.scene.slice_to_ras` of a graded level (X patient right, Y towards
the disc, Z cranial). Each view keeps the convention of its Slicer preset, turned into the plane's frame:
the new SliceToRAS is ``F[:3, :3] @ preset`` with the translation of ``F``. So Red shows the plane itself
as Slicer's axial view shows an axial slice (radiological: patient right on the screen's left), and
Yellow / Green show the planes through the same centre that contain the normal, as Slicer's sagittal and
coronal views would on a straight spine.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

import numpy as np

__all__ = ["SLICE_PRESETS", "VIEW_ORIENTATIONS", "view_matrix", "place_views_on_plane", "slice_to_ras_of"]

SLICE_PRESETS: Dict[str, np.ndarray] = {
    "Axial": np.array([[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
    "Sagittal": np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
    "Coronal": np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]),
}
"""Slicer's slice orientation presets (SliceToRAS rotation, columns = slice X, Y, normal in RAS)."""

VIEW_ORIENTATIONS: Dict[str, str] = {"Red": "Axial", "Yellow": "Sagittal", "Green": "Coronal"}
"""The preset of each standard slice view (by its layout name)."""


def view_matrix(plane_to_ras: Any, orientation: str) -> np.ndarray:
    """4x4 SliceToRAS of a view with Slicer's ``orientation`` preset turned into the plane's frame."""
    frame = np.asarray(plane_to_ras, dtype=float)
    if frame.shape != (4, 4) or not np.all(np.isfinite(frame)):
        raise ValueError(f"A plane is a finite 4x4 SliceToRAS matrix; got shape {frame.shape}.")
    if orientation not in SLICE_PRESETS:
        raise ValueError(f"Unknown slice orientation {orientation!r}: use one of {', '.join(SLICE_PRESETS)}.")
    rotation = frame[:3, :3]
    if not np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-6):
        raise ValueError("The plane's SliceToRAS rotation is not orthonormal.")
    out = np.eye(4)
    out[:3, :3] = rotation @ SLICE_PRESETS[orientation]
    out[:3, 3] = frame[:3, 3]
    return out


def slice_to_ras_of(slice_node: Any) -> np.ndarray:
    """A slice node's SliceToRAS as a 4x4 NumPy array."""
    matrix = slice_node.GetSliceToRAS()
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def place_views_on_plane(
    scene: Any, plane_to_ras: Any, layout_names: Sequence[str] = ("Red", "Yellow", "Green")
) -> List[Any]:
    """Move the slice nodes of ``scene`` named in ``layout_names`` onto the plane (see the module docstring).

    Returns the slice nodes moved (views absent from the scene are skipped).
    """
    if scene is None:
        raise ValueError("An MRML scene is needed: pass the scene explicitly.")
    moved = []
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceNode")):
        node = scene.GetNthNodeByClass(index, "vtkMRMLSliceNode")
        name = node.GetLayoutName()
        if name not in layout_names or name not in VIEW_ORIENTATIONS:
            continue
        matrix = view_matrix(plane_to_ras, VIEW_ORIENTATIONS[name])
        target = node.GetSliceToRAS()
        for r in range(4):
            for c in range(4):
                target.SetElement(r, c, float(matrix[r, c]))
        node.UpdateMatrices()
        moved.append(node)
    return moved
