"""A headless Slicer scene: MRML scene + application logic + module logics, with .mrb/.mrml I/O.

Built from the Qt-free ``slicer-core`` wheel (Slicer 5.13 core) or, inside the Slicer application,
from the same classes. :func:`create_scene` never uses ``slicer.app`` or ``slicer.mrmlScene``: it
returns a new, explicit :class:`HeadlessScene` that callers pass around. Set-up as recorded in
``shared/docs/slicer-conventions.md``: the module logics are registered on a
``vtkSlicerApplicationLogic``, the scene gets a ``vtkDataIOManager`` and a ``vtkCacheManager``
before ``ReadFromMRB``, and the Markups logic exists before markups are loaded.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .safe_write import OutputError, atomic_output, check_output_path, write_text

__all__ = ["HeadlessScene", "create_scene", "save_scene", "load_scene", "MODULE_LOGICS"]

MODULE_LOGICS: tuple[tuple[str, str], ...] = (
    ("Volumes", "vtkSlicerVolumesLogic"),
    ("Segmentations", "vtkSlicerSegmentationsModuleLogic"),
    ("Markups", "vtkSlicerMarkupsLogic"),
    ("Models", "vtkSlicerModelsLogic"),
    ("Tables", "vtkSlicerTablesLogic"),
    ("VolumeRendering", "vtkSlicerVolumeRenderingLogic"),
)
"""(module name, logic class) pairs registered on the application logic."""


@dataclass
class HeadlessScene:
    """An MRML scene with the application logic and the module logics that keep it working.

    Keep this object alive as long as the scene is used: it holds the Python references to the
    logics (VTK would otherwise free them).
    """

    scene: Any
    app_logic: Any
    logics: dict[str, Any] = field(default_factory=dict)

    def logic(self, module: str) -> Any:
        """The module logic registered under ``module`` (for example ``"Segmentations"``)."""
        return self.logics[module]

    def nodes(self, class_name: str = "vtkMRMLNode") -> list[Any]:
        """All nodes of ``class_name`` in the scene."""
        return [
            self.scene.GetNthNodeByClass(i, class_name) for i in range(self.scene.GetNumberOfNodesByClass(class_name))
        ]

    def data_nodes(self) -> list[Any]:
        """The displayable / storable data nodes (volumes, segmentations, models, markups, tables)."""
        kinds = (
            "vtkMRMLVolumeNode",
            "vtkMRMLSegmentationNode",
            "vtkMRMLModelNode",
            "vtkMRMLMarkupsNode",
            "vtkMRMLTableNode",
        )
        found = []
        for kind in kinds:
            for node in self.nodes(kind):
                if node.GetHideFromEditors() and node.IsA("vtkMRMLModelNode"):
                    continue  # Slicer's internal slice models
                found.append(node)
        return found


def create_scene() -> HeadlessScene:
    """Build a new MRML scene with the application logic and the Volumes, Segmentations, Markups,
    Models, Tables and VolumeRendering module logics (see :data:`MODULE_LOGICS`)."""
    import slicer
    import vtk

    scene = slicer.vtkMRMLScene()
    app = slicer.vtkSlicerApplicationLogic()
    app.SetMRMLScene(scene)
    app.GetColorLogic().SetMRMLScene(scene)
    app.GetColorLogic().AddDefaultColorNodes()
    app.SetViewLogics(vtk.vtkCollection())
    app.SetSliceLogics(vtk.vtkCollection())

    cache = slicer.vtkCacheManager()
    cache.SetRemoteCacheDirectory(tempfile.mkdtemp(prefix="lumbarspine-cache-"))
    io_manager = slicer.vtkDataIOManager()
    io_manager.SetCacheManager(cache)
    scene.SetCacheManager(cache)
    scene.SetDataIOManager(io_manager)

    logics: dict[str, Any] = {}
    for module, class_name in MODULE_LOGICS:
        logic = getattr(slicer, class_name)()
        logic.SetMRMLApplicationLogic(app)
        logic.SetMRMLScene(scene)
        app.SetModuleLogic(module, logic)
        logics[module] = logic
    return HeadlessScene(scene=scene, app_logic=app, logics=logics)


def _ensure_storage_nodes(ctx: HeadlessScene) -> None:
    for node in ctx.data_nodes():
        if node.IsA("vtkMRMLStorableNode") and node.GetStorageNode() is None:
            node.AddDefaultStorageNode()


def _verify_mrb(temp: Path) -> None:
    """The bundle is a complete zip archive (central directory readable, every member's CRC right)."""
    import zipfile

    if not zipfile.is_zipfile(temp):
        raise OutputError(f"{temp.name} is not a complete zip archive")
    with zipfile.ZipFile(temp) as archive:
        bad = archive.testzip()
    if bad is not None:
        raise OutputError(f"the member {bad} of the bundle is damaged")


def save_scene(ctx: HeadlessScene, path: str | os.PathLike[str]) -> Path:
    """Save the scene as a Slicer bundle (``.mrb``) or a ``.mrml`` file with its data beside it.

    Every data node without a storage node gets its default one (volumes as ``.nrrd``,
    segmentations as ``.seg.nrrd``, tables as ``.tsv``, ...). Returns the written path.

    Every file goes through :func:`lumbarspine.safe_write.atomic_output`: the bundle is written into
    a temporary folder beside ``path``, checked (a complete zip) and renamed; for ``.mrml`` each data
    file and then the scene file are written to temporary names and renamed. On failure
    :class:`~lumbarspine.safe_write.OutputError` names the file and the cause, and nothing partial is
    left under the final names.
    """
    path = Path(path).resolve()
    suffix = path.suffix.lower()
    if suffix not in (".mrb", ".mrml"):
        raise ValueError(f"Save the scene as .mrb or .mrml, not {path.suffix!r}.")
    check_output_path(path)
    _ensure_storage_nodes(ctx)
    scene = ctx.scene
    if suffix == ".mrb":
        with atomic_output(path, verify=_verify_mrb, keep_name=True) as temp:
            if not scene.WriteToMRB(str(temp)):
                raise OutputError(f"Cannot write {path}: Slicer could not write the scene bundle (disk full?).")
        return path
    for node in ctx.data_nodes():
        storage = node.GetStorageNode() if node.IsA("vtkMRMLStorableNode") else None
        if storage is None:
            continue
        filename = storage.GetFileName()
        if not filename:
            ext = storage.GetDefaultWriteFileExtension() or "nrrd"
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in node.GetName() or node.GetID())
            filename = str(path.parent / f"{safe}.{ext}")
        with atomic_output(filename, probe=False) as temp:
            storage.SetFileName(str(temp))
            ok = storage.WriteData(node)
            storage.SetFileName(filename)
            if not ok:
                raise OutputError(f"Cannot write {filename}: Slicer could not write {node.GetName()!r} (disk full?).")
    scene.SetURL(str(path))
    scene.SetRootDirectory(str(path.parent))
    # the scene XML as a string (file paths relative to path.parent), then one atomic write
    scene.SetSaveToXMLString(1)
    try:
        if not scene.Commit():
            raise OutputError(f"Cannot write {path}: Slicer could not serialise the scene.")
        xml = scene.GetSceneXMLString()
    finally:
        scene.SetSaveToXMLString(0)
    write_text(path, xml)
    return path


def load_scene(path: str | os.PathLike[str], ctx: HeadlessScene | None = None) -> HeadlessScene:
    """Load a ``.mrb`` bundle or ``.mrml`` scene into ``ctx`` (a new :func:`create_scene` by default)."""
    path = Path(path).resolve()
    if not path.exists():
        raise ValueError(f"No scene file at {path}.")
    ctx = ctx or create_scene()
    scene = ctx.scene
    suffix = path.suffix.lower()
    if suffix == ".mrb":
        ok = scene.ReadFromMRB(str(path))
    elif suffix == ".mrml":
        scene.SetURL(str(path))
        ok = scene.Connect()
    else:
        raise ValueError(f"Load a .mrb or .mrml scene, not {path.suffix!r}.")
    if not ok:
        raise RuntimeError(f"Slicer could not read the scene {path}.")
    return ctx
