"""``plan_study``: one study's surgical plan, paths and parameters in, files out (Dask-mappable).

Writes into ``out_dir`` (every file through :mod:`lumbarspine.safe_write`):

* ``plan.json``: screws (vertebra, side, entry/tip RAS, diameter, length, angles, isthmus width,
  breach, Gertzbein-Robbins grade, distances to the dural sac and the no-go zone), refused screws with
  their reasons, decompressions, warnings, parameters, software version;
* ``screws/<L4_left>.mrk.json``: each screw as a Slicer line markup;
* ``models/``: screws, decompression volumes and the no-go zone as STL and OBJ in the chosen
  coordinate system, with ``exports.json``;
* ``scene.mrb``: the Slicer scene (:mod:`lumbarspine.planning.scene`);
* ``plan_posterior.png``, ``plan_left.png``, ``plan_superior.png``: offscreen 3D screenshots
  (segmented bone see-through, screws, sac, decompressions, no-go zone), and with an image
  ``plan_volume_rendering.png`` (the image volume-rendered with the plan).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..anatomy.model import SpineAnatomy
from ..progress import CancelCallback, ProgressCallback, check_cancel
from ..volume import Volume
from .decompression import DecompressionParameters, levels_to_decompress, plan_decompressions, read_grades
from .evaluate import PlanningMaps
from .no_go import DEFAULT_MARGIN_MM, neural_mask
from .refine import BONE_HU, WORKING_SPACING_MM
from .screws import PlanningParameters, plan_screws

__all__ = ["plan_study", "plan_anatomy", "load_inputs", "SCREENSHOT_VIEWS", "PLAN_FORMAT_VERSION"]

SCREENSHOT_VIEWS: tuple[str, ...] = ("posterior", "left", "superior")
"""Standard cameras: posterior, lateral (from the left) and axial from above."""
PLAN_FORMAT_VERSION = 1


def _noop(fraction: float, message: str) -> None:
    pass


def load_inputs(
    image: str | os.PathLike[str] | Volume | None,
    segmentation: str | os.PathLike[str] | Volume | SpineAnatomy | None,
    convention: str = "auto",
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
) -> tuple[Volume | None, SpineAnatomy]:
    """The image (or None) and the spine anatomy: imported from ``segmentation`` or segmented from ``image``."""
    from ..io import read_volume

    if image is None and segmentation is None:
        raise ValueError("Give an image, a segmentation, or both: there is nothing to plan on.")
    volume = image if isinstance(image, Volume) or image is None else read_volume(image)
    if isinstance(segmentation, SpineAnatomy):
        return volume, segmentation
    if segmentation is None:
        from ..anatomy.segment import segment_image

        return volume, segment_image(volume, progress=progress, cancel=cancel)
    from ..anatomy.importers import load_segmentation

    modality = "unknown"
    if volume is not None:
        from ..anatomy.segment import detect_modality

        modality = detect_modality(volume)
    return volume, load_segmentation(segmentation, convention=convention, reference=volume, modality=modality)


def plan_anatomy(
    anatomy: SpineAnatomy,
    *,
    grades: dict[str, str] | None = None,
    levels: list[str] | None = None,
    screw_params: PlanningParameters | None = None,
    decompression_params: DecompressionParameters | None = None,
    no_go_margin_mm: float = DEFAULT_MARGIN_MM,
    image: Volume | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
) -> dict[str, Any]:
    """Screws, decompressions and the no-go zone of one anatomy (no files).

    With ``image`` (a CT in HU) and a coarse label map the screws are planned and evaluated on the bone
    refined by its HU (:mod:`lumbarspine.planning.refine`); without it, on the labels.

    Returns ``{"screws": [ScrewPlan], "refused": [RefusedScrew], "decompressions": [DecompressionPlan],
    "no_go_mask": bool array | None, "frames", "warnings", "maps"}``.
    """
    report = progress or _noop
    screw_params = screw_params or PlanningParameters()
    decompression_params = decompression_params or DecompressionParameters()
    maps = PlanningMaps(anatomy, image=image)
    warnings = list(anatomy.warnings)
    if maps.refined:
        warnings.append(
            "The label map is coarse: the screws are planned and graded on each vertebra's label refined by the "
            f"CT's HU on a {WORKING_SPACING_MM:g} mm grid (bone >= {BONE_HU:g} HU within one voxel of the label); "
            "where the measured pedicle axis is not plausible the reference angle (Dickman 1992) is searched."
        )
    report(0.0, "planning the screws")
    screws = plan_screws(anatomy, screw_params, maps=maps, cancel=cancel, progress=lambda f, m: report(0.6 * f, m))
    warnings += screws["warnings"]
    check_cancel(cancel, "Planning")
    chosen = list(levels or [])
    if grades and not levels:
        chosen = levels_to_decompress(grades)
    decompressions = []
    if chosen:
        present = {d.name for d in anatomy.discs}
        missing = [level for level in chosen if level not in present]
        for level in missing:
            warnings.append(f"Level {level} is not in the segmentation: no decompression planned there.")
        chosen = [level for level in chosen if level in present]
        if chosen and anatomy.centreline_ras is None:
            warnings.append("No dural sac / canal label: decompressions cannot be planned.")
            chosen = []
        decompressions = plan_decompressions(
            anatomy,
            chosen,
            decompression_params,
            grades=grades,
            frames=screws["frames"],
            cancel=cancel,
            progress=lambda f, m: report(0.6 + 0.3 * f, m),
        )
        for d in decompressions:
            warnings += [f"{d.level}: {note}" for note in d.notes]
    no_go = None
    neural = neural_mask(anatomy.labels)
    if neural.any():
        # the zone from the neural distance map already computed (exact up to its 40 mm crop margin)
        outside = maps.neural()
        assert outside is not None
        distance = np.full(neural.shape, np.inf, np.float32)
        box = tuple(slice(s, s + n) for s, n in zip(outside.start_kji, outside.values.shape))
        distance[box] = -outside.values
        no_go = distance <= float(no_go_margin_mm)
    else:
        warnings.append("No neural elements (cord 1 / dural sac 2) labelled: no no-go zone.")
    report(0.95, "plan ready")
    return {
        "screws": screws["screws"],
        "refused": screws["refused"],
        "frames": screws["frames"],
        "decompressions": decompressions,
        "no_go_mask": no_go,
        "warnings": warnings,
        "maps": maps,
    }


def _software_version() -> str:
    from .. import __version__

    return f"lumbarspine {__version__}"


def plan_study(
    out_dir: str | os.PathLike[str],
    *,
    image: str | os.PathLike[str] | Volume | None = None,
    segmentation: str | os.PathLike[str] | Volume | SpineAnatomy | None = None,
    convention: str = "auto",
    grades: str | os.PathLike[str] | dict[str, Any] | list[Any] | None = None,
    levels: list[str] | None = None,
    coordinates: str = "RAS",
    screw_params: PlanningParameters | None = None,
    decompression_params: DecompressionParameters | None = None,
    no_go_margin_mm: float = DEFAULT_MARGIN_MM,
    screenshots: bool = True,
    screenshot_size: tuple[int, int] = (700, 700),
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
) -> dict[str, Any]:
    """Plan one study and write ``plan.json``, markups, models, ``scene.mrb`` and screenshots.

    Args:
        out_dir: output folder (created).
        image: CT / MRI (path or Volume); optional when ``segmentation`` is given (then no volume rendering).
        segmentation: label map path / Volume (imported with ``convention``) or a ready SpineAnatomy;
            without it the image is segmented automatically.
        convention: label convention of ``segmentation`` (``"auto"``, ``"totalspineseg"``, ...).
        grades: grading report (path to report.json, dict or rows): levels graded moderate or severe
            get a decompression, and the dural sac is coloured by grade.
        levels: decompress these levels instead (overrides the grades' choice).
        coordinates: ``"RAS"`` or ``"LPS"`` for the STL / OBJ exports.
        screw_params, decompression_params, no_go_margin_mm: planning rules.
        screenshots: render the PNGs (needs an offscreen OpenGL; the scene is saved either way).
        screenshot_size: PNG size in pixels.
        progress, cancel: callbacks.

    Returns:
        A summary: the paths written, counts and timings (s).
    """
    from ..safe_write import atomic_output, write_bytes, write_json
    from ..scene import create_scene, save_scene
    from .export import COORDINATE_SYSTEMS, export_surfaces, mask_surface, polydata_surface
    from .scene import build_plan_scene, screw_polydata

    report = progress or _noop
    screw_params = screw_params or PlanningParameters()
    decompression_params = decompression_params or DecompressionParameters()
    if str(coordinates).upper() not in COORDINATE_SYSTEMS:
        raise ValueError(f"Unknown coordinate system {coordinates!r}: choose RAS or LPS.")
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    report(0.0, "reading the inputs")
    volume, anatomy = load_inputs(image, segmentation, convention, progress=None, cancel=cancel)
    grade_map = read_grades(grades) if grades is not None else None
    timings["inputs_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    result = plan_anatomy(
        anatomy,
        grades=grade_map,
        levels=levels,
        screw_params=screw_params,
        decompression_params=decompression_params,
        no_go_margin_mm=no_go_margin_mm,
        image=volume,
        progress=lambda f, m: report(0.05 + 0.5 * f, m),
        cancel=cancel,
    )
    timings["planning_s"] = time.perf_counter() - t0
    version = _software_version()
    screws = [s.to_dict() for s in result["screws"]]
    plan: dict[str, Any] = {
        "format_version": PLAN_FORMAT_VERSION,
        "software_version": version,
        "units": "mm, degrees, mm2, cm3; points are RAS (Slicer's patient coordinates for the input file)",
        "source": anatomy.source,
        "modality": anatomy.modality,
        "screws": screws,
        "refused_screws": [r.to_dict() for r in result["refused"]],
        "decompressions": [d.to_dict() for d in result["decompressions"]],
        "no_go_zone": {"margin_mm": float(no_go_margin_mm), "present": result["no_go_mask"] is not None},
        "grades": grade_map,
        "warnings": result["warnings"],
        "parameters": {
            "screws": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(screw_params).items()},
            "decompression": asdict(decompression_params),
        },
        "angle_conventions": {
            "medial_angle_deg": "angle toward the mid-line from the vertebra's anterior axis, in its endplate plane",
            "caudal_angle_deg": "angle below the vertebra's endplate plane (positive: tip caudal to the entry)",
        },
    }
    check_cancel(cancel, "Planning")

    # Slicer scene, markups, exports, screenshots
    report(0.6, "building the 3D scene")
    t0 = time.perf_counter()
    ctx = create_scene()
    try:
        masks = {d.level: d.mask for d in result["decompressions"]}
        nodes = build_plan_scene(
            ctx,
            anatomy,
            plan,
            image=volume,
            grades=grade_map,
            decompression_masks=masks,
            no_go_mask=result["no_go_mask"],
        )
        paths: dict[str, Any] = {"markups": []}
        markup_dir = out / "screws"
        for line, _model in nodes["screws"]:
            storage = ctx.scene.AddNewNodeByClass("vtkMRMLMarkupsJsonStorageNode")
            stem = line.GetName().replace(" ", "_")
            target = markup_dir / f"{stem}.mrk.json"
            with atomic_output(target) as temp:
                storage.SetFileName(str(temp))
                if not storage.WriteData(line):
                    raise RuntimeError(f"Slicer could not write the markup {target}.")
            ctx.scene.RemoveNode(storage)
            paths["markups"].append(str(target))
        timings["scene_s"] = time.perf_counter() - t0

        report(0.7, "exporting the surfaces")
        t0 = time.perf_counter()
        objects = []
        for screw in screws:
            verts, faces = polydata_surface(screw_polydata(screw["entry_ras"], screw["tip_ras"], screw["diameter_mm"]))
            objects.append(
                {
                    "name": f"screw {screw['name']}",
                    "kind": "screw",
                    "verts_ras": verts,
                    "faces": faces,
                    "diameter_mm": screw["diameter_mm"],
                    "length_mm": screw["length_mm"],
                }
            )
        for d in result["decompressions"]:
            if d.mask.any():
                verts, faces = mask_surface(anatomy.labels, d.mask)
                objects.append(
                    {
                        "name": f"decompression {d.level}",
                        "kind": "decompression",
                        "verts_ras": verts,
                        "faces": faces,
                        "level": d.level,
                        "volume_cm3": round(d.bone_volume_cm3, 3),
                    }
                )
        if result["no_go_mask"] is not None:
            verts, faces = mask_surface(anatomy.labels, result["no_go_mask"])
            objects.append({"name": "no-go zone", "kind": "no-go zone", "verts_ras": verts, "faces": faces})
        exports = export_surfaces(out / "models", objects, coordinates=coordinates, software_version=version)
        paths["models"] = str(out / "models")
        plan["exports"] = {"folder": "models", "coordinate_system": exports["coordinate_system"]}
        timings["export_s"] = time.perf_counter() - t0

        shots = []
        if screenshots:
            report(0.8, "rendering the 3D views")
            t0 = time.perf_counter()
            from ..render import render_3d_views

            views = {view: out / f"plan_{view}.png" for view in SCREENSHOT_VIEWS}
            vr = nodes["volume_rendering"]
            if vr is not None:
                vr.SetVisibility(False)  # the plan views show the segmented bone, see-through
            shots = render_3d_views(ctx, views, size=screenshot_size)
            if vr is not None:
                # and one view of the image itself, volume-rendered, with the plan inside it
                vr.SetVisibility(True)
                bone_display = nodes["vertebrae"].GetDisplayNode() if nodes["vertebrae"] is not None else None
                if bone_display is not None:
                    bone_display.SetVisibility(False)
                shots += render_3d_views(ctx, {"posterior": out / "plan_volume_rendering.png"}, size=screenshot_size)
                if bone_display is not None:
                    bone_display.SetVisibility(True)
            timings["render_s"] = time.perf_counter() - t0
            paths["screenshots"] = [str(s["path"]) for s in shots]
        report(0.9, "saving the scene")
        t0 = time.perf_counter()
        # Slicer names the bundle's folder after the file, so save under a plain name first
        with tempfile.TemporaryDirectory(prefix="lumbarspine-mrb-") as folder:
            bundle = save_scene(ctx, Path(folder) / "scene.mrb")
            write_bytes(out / "scene.mrb", bundle.read_bytes())
        paths["scene"] = str(out / "scene.mrb")
        timings["save_s"] = time.perf_counter() - t0
    finally:
        ctx.scene.Clear(1)
    plan["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    paths["plan"] = str(write_json(out / "plan.json", plan))
    report(1.0, "done")
    return {
        "paths": paths,
        "screws": len(screws),
        "refused": len(plan["refused_screws"]),
        "decompressions": len(plan["decompressions"]),
        "warnings": plan["warnings"],
        "timings": plan["timings_s"],
        "screenshot_foreground_pixels": [s["foreground_pixels"] for s in shots],
    }
