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
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from .labels import EPIDURAL_FAT, SPINAL_CANAL
from .progress import CancelCallback, ProgressCallback, check_cancel
from .safe_write import OutputError, write_json

__all__ = ["run_demo", "check_demo_arguments", "DemoOptions", "plan_study", "DEFAULT_DEMO_FILTER"]


DEFAULT_DEMO_FILTER: tuple[str, dict[str, float]] = ("gaussian", {"sigma": 1.0})
"""The demo's filter: a Gaussian, sigma 1 mm (SimpleITK's SmoothingRecursiveGaussian meaning)."""


def _noop(fraction: float, message: str) -> None:
    pass


@dataclass(frozen=True)
class DemoOptions:
    """What the demo runs on: the phantom, the filter (or preset) and the backend.

    Attributes:
        seed, modality, stenosis, spacing, orientation: the phantom (see
            :class:`lumbarspine.phantom.PhantomSpec`); ``stenosis`` maps disc level to dural sac
            area in mm2, default ``{"L4-L5": 60.0}`` so the demo shows a stenotic level; spacing in mm.
        filter_name, filter_params: one filter from :data:`lumbarspine.filters.FILTERS`;
            default :data:`DEFAULT_DEMO_FILTER`. Ignored when ``preset`` is given.
        preset: a filter chain from :data:`lumbarspine.filters.PRESETS`.
        backend: ``auto`` / ``cupy`` / ``numpy``.
    """

    seed: int = 0
    modality: str = "ct"
    stenosis: dict[str, float] | None = None
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    orientation: str = "axial"
    filter_name: str | None = None
    filter_params: dict[str, float] | None = None
    preset: str | None = None
    backend: str = "auto"

    @classmethod
    def from_keywords(cls, options: dict[str, Any]) -> DemoOptions:
        """The options from keyword arguments; an unknown name is a ValueError listing the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"Unknown demo option(s) {', '.join(unknown)}: use {', '.join(sorted(known))}.")
        return cls(**options)

    def phantom_spec(self) -> Any:
        """The :class:`lumbarspine.phantom.PhantomSpec` of the demo's phantom (validated there)."""
        from .phantom import PhantomSpec

        return PhantomSpec(
            seed=self.seed,
            modality=self.modality,
            stenosis=dict({"L4-L5": 60.0} if self.stenosis is None else self.stenosis),
            spacing=tuple(self.spacing),
            orientation=self.orientation,
        )

    def filter_choice(self) -> tuple[str, dict[str, float]]:
        """The single filter's name and parameters (the default when none is named)."""
        if self.filter_name:
            return self.filter_name, dict(self.filter_params or {})
        return DEFAULT_DEMO_FILTER[0], dict(DEFAULT_DEMO_FILTER[1])


def check_demo_arguments(out_dir: str | os.PathLike[str], **options: Any) -> DemoOptions:
    """Check :func:`run_demo`'s arguments before any work or output (ValueError / OutputError saying what to do).

    Checks the phantom spec, the filter or preset and its parameters, that the headless Slicer core
    (``slicer-core``, the ``[slicer]`` extra) is importable, and that ``out_dir`` can be a folder.
    ``options`` are the fields of :class:`DemoOptions`; returns them checked.
    """
    import importlib.util

    from .backend import BACKEND_CHOICES
    from .filters.registry import get_filter, resolve_preset, validate_params
    from .safe_write import check_output_path

    demo = DemoOptions.from_keywords(options)
    demo.phantom_spec()
    if demo.preset:
        resolve_preset(demo.preset)
    else:
        name, params = demo.filter_choice()
        validate_params(get_filter(name), params)
    if demo.backend is not None and demo.backend not in BACKEND_CHOICES:
        raise ValueError(f"Unknown backend {demo.backend!r}: choose one of {', '.join(BACKEND_CHOICES)}.")
    if importlib.util.find_spec("slicer") is None:
        raise ValueError(
            "The demo builds a Slicer scene and needs the headless Slicer core, which is not installed: "
            'pip install "lumbarspine[slicer]" (or pip install slicer-core==5.13.31053.0). Nothing was written.'
        )
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"Cannot write the demo into {out}: it is a file, not a folder; choose another --out.")
    check_output_path(out / "summary.json")
    return demo


def _dice(a: Any, b: Any) -> float:
    """Dice overlap of two boolean masks (1.0 when both are empty)."""
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def _segment_demo(phantom: Any, out: Path, backend: str, cancel: CancelCallback | None) -> tuple[Any, dict[str, Any]]:
    """Segment the phantom's image automatically (no labels used) and score it against the phantom's labels."""
    import numpy as np

    from .anatomy.outputs import write_anatomy_outputs
    from .anatomy.segment import segment_image

    modality = phantom.truth["spec"]["modality"]
    anatomy = segment_image(phantom.image, modality=modality, backend=backend, cancel=cancel)
    paths = write_anatomy_outputs(out, phantom.image, anatomy, input_info={"image": f"phantom {modality}"})
    found = np.asarray(anatomy.labels.array)
    truth = np.asarray(phantom.labels.array)
    if modality == "t2":  # the dural sac (cord + sac)
        sac_dice = _dice(np.isin(found, (1, 2)), np.isin(truth, (1, 2)))
    else:  # CT sees the bony canal: its content is the sac plus the epidural fat
        sac_dice = _dice(np.isin(found, (1, 2)), np.isin(truth, (1, 2, EPIDURAL_FAT)))
    vertebra_dice = {
        v.name: round(_dice(found == v.label, truth == v.label), 3) for v in anatomy.vertebrae if v.name != "S1"
    }
    return anatomy, {
        "paths": paths,
        "levels": [d.name for d in anatomy.discs],
        "numbering": anatomy.numbering,
        "canal_dice": round(sac_dice, 3),
        "vertebra_dice": vertebra_dice,
        "warnings": list(anatomy.warnings),
    }


def _grade_demo(image: Any, anatomy: Any, out: Path, scene: Any, cancel: CancelCallback | None) -> dict[str, Any]:
    """Grade the automatically segmented T2 anatomy into ``out`` (report files, pictures) and into ``scene``."""
    from .grading import grade_anatomy
    from .grading.pictures import area_plot, plane_picture
    from .grading.report import build_report, write_report_csv, write_report_json, write_rsna_csv
    from .grading.scene import add_grading_to_scene

    result = grade_anatomy(anatomy, cancel=cancel)
    report = build_report(result, {"image": "phantom_t2_image.nii.gz", "segmentation": "automatic t2"})
    paths = {
        "report_json": str(write_report_json(report, out / "report.json")),
        "report_csv": str(write_report_csv(report, out / "report.csv")),
        "rsna_csv": str(write_rsna_csv(report, out / "rsna.csv", study_id="phantom")),
        "area_plot": str(area_plot(result, out / "area_along_canal.png")),
    }
    for lv in result.levels:
        if lv.minimum is not None:
            paths[f"plane_{lv.level}"] = str(plane_picture(image, lv, out / f"plane_{lv.level.replace('-', '_')}.png"))
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
    screenshot_size: tuple[int, int] = (900, 900),
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Phantom -> filter -> automatic segmentation -> grading -> plan, Slicer scene (.mrb) and pictures in ``out_dir``.

    Args:
        out_dir: output folder (created).
        screenshot_size: PNG width and height in pixels.
        progress: ``progress(fraction, message)``.
        cancel: ``cancel() -> bool``, polled between the steps (and inside the filters); True stops
            the run with :class:`lumbarspine.progress.OperationCancelled`.
        options: the fields of :class:`DemoOptions` (``seed``, ``modality``, ``stenosis``,
            ``spacing``, ``orientation``, ``filter_name``, ``filter_params``, ``preset``, ``backend``).

    Returns:
        A summary dict: output paths (``image``, ``filtered``, ``labels``, ``truth``, ``scene``,
        ``screenshot``, ``summary``), the backend used, timings in seconds, the node names and
        ``segmentation`` (the T2 and CT twins of the phantom segmented automatically, without their
        labels: level names, numbering, canal and vertebra Dice against the phantom's labels),
        ``grading`` (the T2 segmentation graded: ``paths`` under ``out_dir/grading`` and the report's
        ``levels``) and ``plan`` (screws and decompressions planned on the CT segmentation with
        those grades: ``paths`` under ``out_dir/plan``).
    """
    from .filters import apply_filter, apply_preset
    from .io import write_volume
    from .phantom import generate_phantom, save_phantom
    from .render import render_3d
    from .scene import create_scene, save_scene
    from .slicer_nodes import labels_to_segmentation_node, table_node_from_rows, volume_to_node

    def report(fraction: float, message: str) -> None:
        check_cancel(cancel, "The demo")
        (progress or _noop)(fraction, message)

    demo = check_demo_arguments(out_dir, **options)
    modality, backend, preset = demo.modality, demo.backend, demo.preset
    out = Path(out_dir).resolve()
    timings: dict[str, float] = {}

    report(0.0, "generating the lumbar phantom")
    t0 = time.perf_counter()
    spec = demo.phantom_spec()
    phantom = generate_phantom(spec)
    timings["phantom_s"] = time.perf_counter() - t0
    paths: dict[str, Path] = {key: Path(path) for key, path in save_phantom(phantom, out, prefix="phantom_").items()}

    report(0.3, "filtering")
    t0 = time.perf_counter()
    if preset:
        result = apply_preset(phantom.image, preset, backend=backend, cancel=cancel)
        filter_label = f"preset {preset}"
    else:
        name, params = demo.filter_choice()
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

    # The same anatomy as T2 MRI (stenosis grading) and as CT (screw planning), as a surgeon would have it.
    twins = {modality: phantom}
    other = "t2" if modality == "ct" else "ct"
    twins[other] = generate_phantom(replace(spec, modality=other))
    paths[f"{other}_image"] = write_volume(twins[other].image, out / f"phantom_{other}_image.nii.gz")

    report(0.55, "segmenting the T2 and CT phantoms automatically (no labels used)")
    t0 = time.perf_counter()
    anatomies: dict[str, Any] = {}
    segmentation_summary: dict[str, Any] = {}
    for kind in ("t2", "ct"):
        anatomies[kind], segmentation_summary[kind] = _segment_demo(
            twins[kind], out / f"segmentation_{kind}", backend, cancel
        )
    timings["segmentation_s"] = time.perf_counter() - t0

    report(0.65, "grading the levels of the T2 segmentation")
    t0 = time.perf_counter()
    grading = _grade_demo(twins["t2"].image, anatomies["t2"], out / "grading", scene, cancel)
    timings["grading_s"] = time.perf_counter() - t0

    report(0.7, "planning screws and decompressions on the CT segmentation")
    t0 = time.perf_counter()
    from .planning.study import plan_study as _plan_study

    planned = _plan_study(
        out / "plan",
        image=twins["ct"].image,
        segmentation=anatomies["ct"],
        grades=grading["paths"]["report_json"],
        screenshot_size=(600, 600),
        cancel=cancel,
    )
    timings["planning_s"] = time.perf_counter() - t0

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
        "segmentation": segmentation_summary,
        "grading": grading,
        "plan": planned,
    }
    paths["summary"] = out / "summary.json"
    summary["paths"]["summary"] = str(paths["summary"])
    write_json(paths["summary"], summary, default=str)
    ctx.scene.Clear(1)
    report(1.0, "done")
    return summary
