"""Offscreen 3D rendering of a headless Slicer scene through Slicer's own displayable managers.

The 3D view is a ``vtkMRMLViewNode`` driven by the camera, view, model, segmentation, markups and
volume-rendering displayable managers, exactly as in Slicer's 3D views, rendered into an
offscreen VTK window: EGL (Mesa llvmpipe on a machine without a GPU; Debian packages ``libegl1
libegl-mesa0 libgl1-mesa-dri``) by default, chosen through ``VTK_DEFAULT_OPENGL_WINDOW``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .safe_write import OutputError, atomic_output
from .scene import HeadlessScene

__all__ = ["render_3d", "render_3d_views", "DISPLAYABLE_MANAGERS_3D", "CAMERA_VIEWS", "CAMERA_FROM"]

DISPLAYABLE_MANAGERS_3D = (
    "vtkMRMLCameraDisplayableManager",
    "vtkMRMLViewDisplayableManager",
    "vtkMRMLModelDisplayableManager",
    "vtkMRMLSegmentationsDisplayableManager3D",
    "vtkMRMLVolumeRenderingDisplayableManager",
    "vtkMRMLMarkupsDisplayableManager",
)

# Camera azimuth / elevation (degrees) applied after looking from the anterior (patient's front, +A)
# with the view-up superior. VTK's Azimuth turns the camera counter-clockwise seen from above: +90
# takes it from +A to -R (the patient's left), -90 to +R (the patient's right).
CAMERA_VIEWS: dict[str, tuple[float, float]] = {
    "anterior": (0.0, 0.0),
    "left": (90.0, 0.0),
    "right": (-90.0, 0.0),
    "posterior": (180.0, 0.0),
    "oblique": (-50.0, 15.0),
}

CAMERA_FROM: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "superior": ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0)),
    "inferior": ((0.0, 0.0, -1.0), (0.0, 1.0, 0.0)),
}
"""Views given directly as (direction from the focal point to the camera, view-up), RAS: "superior" is
the axial view from above (anterior up)."""

VIEW_NAMES = (*CAMERA_VIEWS, *CAMERA_FROM)


def _verify_png(temp: Path) -> None:
    """A PNG signature at the start and the IEND chunk at the end: the file is complete."""
    with open(temp, "rb") as fh:
        head = fh.read(8)
        fh.seek(max(0, temp.stat().st_size - 12))
        tail = fh.read(12)
    if head != b"\x89PNG\r\n\x1a\n" or b"IEND" not in tail:
        raise OutputError(f"{temp.name} is not a complete PNG file")


def render_3d(
    ctx: HeadlessScene,
    png_path: str | os.PathLike[str],
    *,
    size: tuple[int, int] = (800, 800),
    view: str = "oblique",
    background: tuple[float, float, float] = (0.08, 0.09, 0.12),
    zoom: float = 1.0,
) -> dict[str, Any]:
    """Render the scene's displayable nodes in a 3D view offscreen and save a PNG.

    Args:
        ctx: the scene (from :func:`lumbarspine.scene.create_scene`).
        png_path: output file (written through :mod:`lumbarspine.safe_write`).
        size: image width and height in pixels.
        view: a key of :data:`CAMERA_VIEWS` or :data:`CAMERA_FROM` (the camera looks at the scene's
            bounds from there; up = superior, or anterior for the axial views).
        background: RGB 0-1.
        zoom: camera zoom factor after fitting the bounds.

    Returns:
        ``{"path", "window_class", "foreground_pixels", "size", "view"}``; ``foreground_pixels``
        counts pixels that differ from the background, a quick check that something was drawn.
    """
    return render_3d_views(ctx, {view: png_path}, size=size, background=background, zoom=zoom)[0]


def _place_camera(renderer: Any, view: str, zoom: float) -> None:
    renderer.ResetCamera()
    camera = renderer.GetActiveCamera()
    focal = np.array(camera.GetFocalPoint())
    distance = camera.GetDistance()
    if view in CAMERA_FROM:
        direction, up = CAMERA_FROM[view]
        camera.SetPosition(*(focal + distance * np.asarray(direction)))
        camera.SetViewUp(*up)
    else:
        camera.SetPosition(*(focal + np.array([0.0, distance, 0.0])))  # anterior (+A), looking posterior
        camera.SetViewUp(0.0, 0.0, 1.0)
        azimuth, elevation = CAMERA_VIEWS[view]
        camera.Azimuth(azimuth)
        camera.Elevation(elevation)
    camera.OrthogonalizeViewUp()
    renderer.ResetCamera()
    camera.Zoom(zoom)
    renderer.ResetCameraClippingRange()


def render_3d_views(
    ctx: HeadlessScene,
    paths: dict[str, str | os.PathLike[str]],
    *,
    size: tuple[int, int] = (800, 800),
    background: tuple[float, float, float] = (0.08, 0.09, 0.12),
    zoom: float = 1.0,
) -> list[dict[str, Any]]:
    """Render several views (``{view: png path}``) of the scene with one offscreen window.

    Each PNG goes through :func:`lumbarspine.safe_write.atomic_output`. Returns one dict per view as
    :func:`render_3d` does.
    """
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    import slicer
    import vtk
    from vtk.util.numpy_support import vtk_to_numpy

    for view in paths:
        if view not in VIEW_NAMES:
            raise ValueError(f"Unknown view {view!r}: choose one of {', '.join(VIEW_NAMES)}.")
    renderer = vtk.vtkRenderer()
    window = vtk.vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetSize(int(size[0]), int(size[1]))
    window.AddRenderer(renderer)
    interactor = vtk.vtkRenderWindowInteractor()
    interactor.SetRenderWindow(window)
    interactor.Initialize()

    factory = slicer.vtkMRMLThreeDViewDisplayableManagerFactory.GetInstance()
    factory.SetMRMLApplicationLogic(ctx.app_logic)
    for name in DISPLAYABLE_MANAGERS_3D:
        if not factory.IsDisplayableManagerRegistered(name):
            factory.RegisterDisplayableManager(name)
    group = factory.InstantiateDisplayableManagers(renderer)

    view_logic = slicer.vtkMRMLViewLogic()
    view_logic.SetMRMLApplicationLogic(ctx.app_logic)
    view_logic.SetMRMLScene(ctx.scene)
    ctx.app_logic.GetViewLogics().AddItem(view_logic)
    view_node = None
    results: list[dict[str, Any]] = []
    try:
        view_node = view_logic.AddViewNode("LumbarSpineOffscreen")
        view_node.SetBoxVisible(False)
        view_node.SetAxisLabelsVisible(False)
        view_node.SetBackgroundColor(*background)
        view_node.SetBackgroundColor2(*background)
        group.SetMRMLDisplayableNode(view_node)
        window.Render()
        bg = np.round(np.asarray(background) * 255).astype(int)
        for view, png_path in paths.items():
            _place_camera(renderer, view, zoom)
            window.Render()
            grabber = vtk.vtkWindowToImageFilter()
            grabber.SetInput(window)
            grabber.ReadFrontBufferOff()
            grabber.Update()
            path = Path(png_path)
            with atomic_output(path, verify=_verify_png) as temp:
                writer = vtk.vtkPNGWriter()
                writer.SetFileName(str(temp))
                writer.SetInputData(grabber.GetOutput())
                writer.Write()
                if writer.GetErrorCode():
                    raise OutputError(
                        f"Cannot write {path}: the PNG writer failed (VTK error code {writer.GetErrorCode()})."
                    )
            pixels = vtk_to_numpy(grabber.GetOutput().GetPointData().GetScalars())[:, :3].astype(int)
            foreground = int((np.abs(pixels - bg[None, :]).sum(axis=1) > 30).sum())
            results.append(
                {
                    "path": path,
                    "view": view,
                    "window_class": window.GetClassName(),
                    "foreground_pixels": foreground,
                    "size": tuple(size),
                }
            )
    finally:
        group.SetMRMLDisplayableNode(None)
        ctx.app_logic.GetViewLogics().RemoveItem(view_logic)
        if view_node is not None:
            ctx.scene.RemoveNode(view_node)
        window.Finalize()
    return results
