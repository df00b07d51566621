"""MRML node checks and progress plumbing shared by the module Logics (Qt-free, Python 3.9-safe).

They take nodes and an explicit scene (never ``slicer.mrmlScene``), so the Logics run in batch scripts
and in the headless tests exactly as in the GUI.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from lumbarspine.progress import check_cancel

ProgressCallback = Optional[Callable[[float, str], None]]
CancelCallback = Optional[Callable[[], bool]]


def report(progress: ProgressCallback, cancel: CancelCallback, fraction: float, message: str, what: str) -> None:
    """Stop with ``OperationCancelled`` when ``cancel()`` says so, else report ``fraction`` (0..1)."""
    check_cancel(cancel, what)
    if progress is not None:
        progress(fraction, message)


def scaled_progress(progress: ProgressCallback, start: float, stop: float) -> ProgressCallback:
    """``progress`` for a step that covers ``[start, stop]`` of the whole run (None stays None)."""
    if progress is None:
        return None
    return lambda fraction, message="": progress(start + (stop - start) * min(max(float(fraction), 0.0), 1.0), message)


def scene_of(node: Any, scene: Any, what: str) -> Any:
    """``scene``, else the node's own scene; ValueError if neither."""
    scene = scene if scene is not None else node.GetScene()
    if scene is None:
        raise ValueError(f"The {what} is not in an MRML scene: pass scene=...")
    return scene


def check_output_node(node: Any, class_name: str, what: str) -> None:
    """ValueError when an output node was given but is not a ``class_name`` (``what``: "table", ...)."""
    if node is not None and not node.IsA(class_name):
        raise ValueError(f"Output {node.GetName()!r} is not a {what} node: pick a {what} or 'Create new'.")


def label_volume_from_node(node: Any) -> Any:
    """The label map of a label map node (an integer scalar volume is read as labels), as a Volume."""
    import dataclasses

    import numpy as np

    from lumbarspine.slicer_nodes import volume_from_node

    if node is None:
        raise ValueError("No input label map: select a spine label map (TotalSpineSeg convention).")
    if not node.IsA("vtkMRMLScalarVolumeNode"):
        raise ValueError(f"{node.GetName()!r} is not a label map volume.")
    labels = volume_from_node(node)
    if not labels.is_label:
        if not np.issubdtype(np.asarray(labels.array).dtype, np.integer):
            raise ValueError(f"{node.GetName()!r} holds non-integer values: a label map (integer labels) is needed.")
        labels = dataclasses.replace(labels, is_label=True)
    return labels


def image_volume_from_node(node: Any, what: str = "input volume") -> Any:
    """The image of a scalar volume node as a Volume (``what`` names it in the messages)."""
    from lumbarspine.slicer_nodes import volume_from_node

    if node is None:
        raise ValueError(f"No {what}: select an image volume.")
    if not node.IsA("vtkMRMLScalarVolumeNode"):
        raise ValueError(f"The {what} {node.GetName()!r} is not a scalar volume.")
    return volume_from_node(node)
