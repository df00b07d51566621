"""Study-level pipelines as plain functions: paths and parameters in, files out, no global state.

Each function here can be mapped over a cohort on a Dask cluster: it reads nothing but its
arguments, writes only under ``out_dir`` (every file atomically, through
:mod:`lumbarspine.safe_write`) and returns the paths it wrote. ``client.map`` maps positional
arguments only (its keyword arguments are passed unchanged to every call), so map the per-study
values positionally, e.g. through a small wrapper::

    def one_study(out_dir, seed):
        return run_demo(out_dir, seed=seed)

    futures = client.map(one_study, out_dirs, seeds)
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from .labels import EPIDURAL_FAT, SPINAL_CANAL
from .progress import CancelCallback, ProgressCallback, check_cancel
from .safe_write import OutputError, write_json

__all__ = ["run_demo", "check_demo_arguments", "plan_study", "DEFAULT_DEMO_FILTER"]


DEFAULT_DEMO_FILTER: tuple[str, dict[str, float]] = ("gaussian", {"sigma": 1.0})
"""The demo's filter: a Gaussian, sigma 1 mm (SimpleITK's SmoothingRecursiveGaussian meaning)."""


def _noop(fraction: float, message: str) -> None:
    pass


def check_demo_arguments(
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    modality: str = "ct",
    stenosis: dict[str, float] | None = None,
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    orientation: str = "axial",
    filter_name: str | None = None,
    filter_params: dict[str, float] | None = None,
    preset: str | None = None,
    backend: str = "auto",
    **_: Any,
) -> None:
    """Check :func:`run_demo`'s arguments before any work or output (ValueError / OutputError saying what to do).

    Checks the phantom spec, the filter or preset and its parameters, that the headless Slicer core
    (``slicer-core``, the ``[slicer]`` extra) is importable, and that ``out_dir`` can be a folder.
    """
    import importlib.util

    from .backend import BACKEND_CHOICES
    from .filters.registry import get_filter, resolve_preset, validate_params
    from .phantom import PhantomSpec
    from .safe_write import check_output_path

    PhantomSpec(
        seed=seed,
        modality=modality,
        stenosis=dict({"L4-L5": 60.0} if stenosis is None else stenosis),
        spacing=tuple(spacing),
        orientation=orientation,
    )
    if preset:
        resolve_preset(preset)
    else:
        name, params = (filter_name, filter_params or {}) if filter_name else DEFAULT_DEMO_FILTER
        validate_params(get_filter(name), dict(params))
    if backend is not None and backend not in BACKEND_CHOICES:
        raise ValueError(f"Unknown backend {backend!r}: choose one of {', '.join(BACKEND_CHOICES)}.")
    if importlib.util.find_spec("slicer") is None:
        raise ValueError(
            "The demo builds a Slicer scene and needs the headless Slicer core, which is not installed: "
            'pip install "lumbarspine[slicer]" (or pip install slicer-core==5.13.31053.0). Nothing was written.'
        )
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"Cannot write the demo into {out}: it is a file, not a folder; choose another --out.")
    check_output_path(out / "summary.json")


def _grade_demo(phantom: Any, modality: str, out: Path, scene: Any, cancel: CancelCallback | None) -> dict[str, Any]:
    """Grade the phantom from its label map into ``out`` (report files, pictures) and into ``scene``."""
    from .anatomy.build import anatomy_from_labels
    from .grading import grade_anatomy
    from .grading.pictures import area_plot, plane_picture
    from .grading.report import build_report, write_report_csv, write_report_json, write_rsna_csv
    from .grading.scene import add_grading_to_scene

    anatomy = anatomy_from_labels(phantom.labels, modality=modality, numbering="imported", source="phantom labels")
    result = grade_anatomy(anatomy, cancel=cancel)
    report = build_report(result, {"image": "phantom_image.nii.gz", "segmentation": "phantom_labels.nii.gz"})
    paths = {
        "report_json": str(write_report_json(report, out / "report.json")),
        "report_csv": str(write_report_csv(report, out / "report.csv")),
        "rsna_csv": str(write_rsna_csv(report, out / "rsna.csv", study_id="phantom")),
        "area_plot": str(area_plot(result, out / "area_along_canal.png")),
    }
    for lv in result.levels:
        if lv.minimum is not None:
            paths[f"plane_{lv.level}"] = str(
                plane_picture(phantom.image, lv, out / f"plane_{lv.level.replace('-', '_')}.png")
            )
    add_grading_to_scene(result, scene, labels=anatomy.labels, surfaces=False)
    return {"paths": paths, "levels": report["levels"]}


def plan_study(out_dir: str | os.PathLike[str], **kwargs: Any) -> dict[str, Any]:
    """The surgical plan of one study: see :func:`lumbarspine.planning.study.plan_study` (same arguments:
    ``image=None, segmentation=None, convention="auto", grades=None, coordinates="RAS", progress=None,
    cancel=None`` ...). Plain and Dask-mappable: ``client.map(plan_study, out_dirs, image=images)``."""
    from .planning.study import plan_study as _plan_study

    return _plan_study(out_dir, **kwargs)


def run_demo(
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    modality: str = "ct",
    stenosis: dict[str, float] | None = None,
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    orientation: str = "axial",
    filter_name: str | None = None,
    filter_params: dict[str, float] | None = None,
    preset: str | None = None,
    backend: str = "auto",
    screenshot_size: tuple[int, int] = (900, 900),
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
) -> dict[str, Any]:
    """Phantom -> filter -> Slicer scene (.mrb), label map and 3D screenshot in ``out_dir``.

    Args:
        out_dir: output folder (created).
        seed, modality, stenosis, spacing, orientation: the phantom (see
            :class:`lumbarspine.phantom.PhantomSpec`); stenosis maps disc level to dural sac area
            in mm2, default ``{"L4-L5": 60.0}`` so the demo shows a stenotic level.
        filter_name, filter_params: one filter from :data:`lumbarspine.filters.FILTERS`;
            default :data:`DEFAULT_DEMO_FILTER`. Ignored when ``preset`` is given.
        preset: a filter chain from :data:`lumbarspine.filters.PRESETS`.
        backend: ``auto`` / ``cupy`` / ``numpy``.
        screenshot_size: PNG width and height in pixels.
        progress: ``progress(fraction, message)``.
        cancel: ``cancel() -> bool``, polled between the steps (and inside the filters); True stops
            the run with :class:`lumbarspine.progress.OperationCancelled`.

    Returns:
        A summary dict: output paths (``image``, ``filtered``, ``labels``, ``truth``, ``scene``,
        ``screenshot``, ``summary``), the backend used, timings in seconds, the node names and
        ``grading`` (the phantom graded from its labels: ``paths`` under ``out_dir/grading`` and the
        report's ``levels``).
    """
    from .filters import apply_filter, apply_preset
    from .io import write_volume
    from .phantom import PhantomSpec, generate_phantom, save_phantom
    from .render import render_3d
    from .scene import create_scene, save_scene
    from .slicer_nodes import labels_to_segmentation_node, table_node_from_rows, volume_to_node

    def report(fraction: float, message: str) -> None:
        check_cancel(cancel, "The demo")
        (progress or _noop)(fraction, message)

    check_demo_arguments(
        out_dir,
        seed=seed,
        modality=modality,
        stenosis=stenosis,
        spacing=spacing,
        orientation=orientation,
        filter_name=filter_name,
        filter_params=filter_params,
        preset=preset,
        backend=backend,
    )
    out = Path(out_dir).resolve()
    timings: dict[str, float] = {}

    report(0.0, "generating the lumbar phantom")
    t0 = time.perf_counter()
    spec = PhantomSpec(
        seed=seed,
        modality=modality,
        stenosis=dict({"L4-L5": 60.0} if stenosis is None else stenosis),
        spacing=tuple(spacing),
        orientation=orientation,
    )
    phantom = generate_phantom(spec)
    timings["phantom_s"] = time.perf_counter() - t0
    paths: dict[str, Path] = {key: Path(path) for key, path in save_phantom(phantom, out, prefix="phantom_").items()}

    report(0.3, "filtering")
    t0 = time.perf_counter()
    if preset:
        result = apply_preset(phantom.image, preset, backend=backend, cancel=cancel)
        filter_label = f"preset {preset}"
    else:
        name, params = (filter_name, filter_params or {}) if filter_name else DEFAULT_DEMO_FILTER
        result = apply_filter(phantom.image, name, backend=backend, cancel=cancel, **params)
        filter_label = f"{name} {params}"
    timings["filter_s"] = time.perf_counter() - t0
    filtered = result.volume
    paths["filtered"] = write_volume(filtered, out / "phantom_filtered.nii.gz")

    report(0.5, "building the Slicer scene")
    t0 = time.perf_counter()
    ctx = create_scene()
    scene = ctx.scene
    image_node = volume_to_node(phantom.image, scene, name="Phantom " + modality.upper())
    filtered_node = volume_to_node(filtered, scene, name="Phantom filtered")
    label_node = volume_to_node(phantom.labels, scene, name="Phantom labels")
    segmentation = labels_to_segmentation_node(phantom.labels, scene, name="Phantom segmentation")
    segmentation.CreateClosedSurfaceRepresentation()
    display = segmentation.GetDisplayNode()
    canal_id = next(
        (
            segmentation.GetSegmentation().GetNthSegmentID(i)
            for i in range(segmentation.GetSegmentation().GetNumberOfSegments())
            if segmentation.GetSegmentation().GetNthSegment(i).GetLabelValue() == SPINAL_CANAL
        ),
        None,
    )
    if display is not None:
        display.SetOpacity3D(1.0)
        for i in range(segmentation.GetSegmentation().GetNumberOfSegments()):
            segment_id = segmentation.GetSegmentation().GetNthSegmentID(i)
            if segmentation.GetSegmentation().GetNthSegment(i).GetLabelValue() == EPIDURAL_FAT:
                display.SetSegmentVisibility(segment_id, False)
        if canal_id is not None:
            display.SetSegmentOpacity3D(canal_id, 1.0)
    rows = [
        {
            "level": level,
            "dural_sac_area_mm2": info["dural_sac_area_mm2"],
            "ap_diameter_mm": info["ap_diameter_mm"],
            "stenosis_requested": bool(info.get("stenosis_requested", False)),
        }
        for level, info in phantom.truth["levels"].items()
    ]
    table_node_from_rows(rows, scene, name="Phantom truth per level")
    timings["scene_s"] = time.perf_counter() - t0

    report(0.6, "grading the phantom's levels")
    t0 = time.perf_counter()
    grading = _grade_demo(phantom, modality, out / "grading", scene, cancel)
    timings["grading_s"] = time.perf_counter() - t0

    report(0.7, "rendering the 3D view")
    t0 = time.perf_counter()
    shot = render_3d(ctx, out / "phantom_3d.png", size=screenshot_size, view="oblique")
    paths["screenshot"] = Path(shot["path"])
    timings["render_s"] = time.perf_counter() - t0

    report(0.85, "saving the scene")
    t0 = time.perf_counter()
    paths["scene"] = save_scene(ctx, out / "lumbarspine_demo.mrb")
    timings["save_s"] = time.perf_counter() - t0

    summary = {
        "paths": {key: str(value) for key, value in paths.items()},
        "backend": result.backend,
        "filter": filter_label,
        "timings": {key: round(value, 3) for key, value in timings.items()},
        "nodes": [image_node.GetName(), filtered_node.GetName(), label_node.GetName(), segmentation.GetName()],
        "screenshot_foreground_pixels": shot["foreground_pixels"],
        "render_window": shot["window_class"],
        "spec": phantom.truth.get("spec"),
        "grading": grading,
    }
    paths["summary"] = out / "summary.json"
    summary["paths"]["summary"] = str(paths["summary"])
    write_json(paths["summary"], summary, default=str)
    ctx.scene.Clear(1)
    report(1.0, "done")
    return summary
