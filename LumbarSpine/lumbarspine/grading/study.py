"""Grade one study: paths and parameters in, report files out (a plain, Dask-mappable function).

``grade_study(image, out_dir, segmentation=..., axial=...)`` reads the image, gets its spine anatomy
(the automatic segmentation, or an imported one), optionally joins an axial series through the
shared patient coordinates, grades every level (:func:`.core.grade_anatomy`) and writes
``report.json``, ``report.csv``, ``rsna.csv``, one ``plane_<level>.png`` per measured level and
``area_along_canal.png`` into ``out_dir``.

Multi-series studies: levels always come from the main (usually sagittal) series. With an axial
series the routine axial area is measured on the axial series' own slices. Its dural sac mask is,
in this version, the main segmentation's label map resampled onto the axial grid (nearest
neighbour, through the RAS coordinates both files carry, no registration: series of one session
share the scanner's frame), or the automatic segmentation of the axial series itself
(``axial_mask="segment"``). The frames are checked for an overlapping physical extent; NIfTI
files carry no DICOM Frame of Reference UID, so a same-session acquisition is assumed and said so.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..progress import CancelCallback, ProgressCallback, check_cancel
from ..volume import Volume
from .grades import GradingThresholds

__all__ = ["grade_study", "grade_image", "load_anatomy", "resample_labels", "frame_overlap", "AXIAL_MASKS"]

AXIAL_MASKS = ("resample", "segment")
"""How the axial series gets its dural sac mask: the main segmentation resampled (nearest) onto its
grid, or the automatic segmentation run on the axial image."""


def _noop(fraction: float, message: str) -> None:
    pass


def resample_labels(labels: Volume, reference: Volume) -> Volume:
    """``labels`` resampled (nearest neighbour, through RAS) onto ``reference``'s grid; 0 outside."""
    import SimpleITK as sitk

    out = sitk.Resample(
        labels.to_sitk(),
        reference.to_sitk(),
        sitk.Transform(),
        sitk.sitkNearestNeighbor,
        0,
        labels.to_sitk().GetPixelID(),
    )
    return Volume.from_sitk(out, is_label=True, name=labels.name)


def frame_overlap(a: Volume, b: Volume) -> float:
    """Fraction of ``b``'s RAS bounding box that lies inside ``a``'s (0 when they do not overlap)."""
    lo_a, hi_a = a.bounds_ras()
    lo_b, hi_b = b.bounds_ras()
    inter = np.clip(np.minimum(hi_a, hi_b) - np.maximum(lo_a, lo_b), 0.0, None)
    size_b = np.maximum(hi_b - lo_b, 1e-6)
    return float(np.prod(inter) / np.prod(size_b))


def load_anatomy(
    image: Volume,
    segmentation: str | os.PathLike[str] | Volume | None = None,
    *,
    convention: str = "auto",
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
):
    """The spine anatomy of ``image``: imported from ``segmentation``, or segmented automatically.

    Raises:
        ValueError: the automatic segmentation is not available and no segmentation was given, or
            the segmentation cannot be read.
    """
    if segmentation is None:
        from ..anatomy.segment import segment_image

        return segment_image(image, progress=progress, cancel=cancel)
    from ..anatomy.importers import load_segmentation

    return load_segmentation(segmentation, convention=convention, reference=image)


def _read_image(path: str | os.PathLike[str] | Volume, what: str, *, voxels: bool = True) -> Volume:
    """The image at ``path`` (a Volume is returned as it is).

    ``voxels=False`` reads its header only (:func:`lumbarspine.io.read_volume_geometry`: the grid,
    a placeholder array): for the grading from a given segmentation, which needs the image's grid
    but none of its values. A truncated NIfTI image is still refused then; damage inside a gzip
    stream at full length (or NaN voxels) is not detected, as no voxel is read.
    """
    from ..io import read_volume, read_volume_geometry

    if isinstance(path, Volume):
        return path
    if not Path(path).exists():
        raise ValueError(f"The {what} {path} does not exist.")
    return read_volume(path) if voxels else read_volume_geometry(path)


class _BackgroundRead:
    """:func:`lumbarspine.io.read_volume` of ``path`` in a thread (ITK's read and the NIfTI check release the
    GIL, so it runs beside the grading); :meth:`result` waits and returns the Volume or raises its error."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import threading

        self._volume: Volume | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(path,), name="image-read", daemon=True)
        self._thread.start()

    def _run(self, path: str | os.PathLike[str]) -> None:
        try:
            self._volume = _read_image(path, "image")
        except BaseException as exc:  # noqa: BLE001 - re-raised by result() in the caller's thread
            self._error = exc

    def result(self) -> Volume:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._volume is not None
        return self._volume


def _source_name(source: str | os.PathLike[str] | Volume) -> str:
    """How an input is named in the report: its path, or a Volume's name."""
    return source.name if isinstance(source, Volume) else str(source)


def _level_file(level: str) -> str:
    return "plane_" + level.replace(" ", "_").replace("-", "_") + ".png"


def grade_image(
    image: str | os.PathLike[str] | Volume,
    segmentation: str | os.PathLike[str] | Volume | None = None,
    *,
    convention: str = "auto",
    axial: str | os.PathLike[str] | Volume | None = None,
    axial_mask: str = "resample",
    thresholds: GradingThresholds | None = None,
    sac_probability: str | os.PathLike[str] | Volume | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
) -> dict[str, Any]:
    """Grade the central canal of ``image`` without writing files (what :func:`grade_study` and the
    Slicer module share).

    Args:
        image: the main image (a T2 series, usually sagittal), a path or a Volume (not modified).
        segmentation, convention, axial, axial_mask, thresholds, sac_probability, progress, cancel: see
            :func:`grade_study`.

    Returns:
        ``{"anatomy": SpineAnatomy, "result": GradingResult, "axial": dict | None}`` (``axial``: how the
        axial series was joined, for the report's input section).

    With a ``segmentation`` and an image path, only the image's header is read (its grid: the
    grading measures the labels; see :func:`_read_image` for what is then not checked).
    """
    from .core import grade_anatomy

    report_progress = progress or _noop
    if axial_mask not in AXIAL_MASKS:
        raise ValueError(f"Unknown axial_mask {axial_mask!r}: use one of {', '.join(AXIAL_MASKS)}.")
    image = _read_image(image, "image", voxels=segmentation is None)

    def sub(lo: float, hi: float) -> ProgressCallback:
        return lambda f, m: report_progress(lo + (hi - lo) * f, m)

    fraction = None
    if sac_probability is not None:
        fraction = _read_image(sac_probability, "sac probability map")  # checked and cast by grade_anatomy
    anatomy = load_anatomy(image, segmentation, convention=convention, progress=sub(0.0, 0.4), cancel=cancel)
    warnings: list[str] = []
    axial_labels = None
    axial_source = ""
    axial_info: dict[str, Any] | None = None
    if axial is not None:
        check_cancel(cancel, "Stenosis grading")
        report_progress(0.4, "joining the axial series")
        axial_image = _read_image(axial, "axial series")
        overlap = frame_overlap(image, axial_image)
        axial_info = {
            "path": _source_name(axial),
            "overlap_fraction": round(overlap, 3),
            "frame_of_reference": "assumed shared (same session); the files carry no Frame of Reference UID",
        }
        if overlap <= 0.0:
            warnings.append(
                "The axial series does not overlap the main image in patient coordinates: different frames of "
                "reference (another session, or a wrong file?). Its areas are not measured."
            )
        elif axial_mask == "segment":
            axial_labels = load_anatomy(axial_image, None, cancel=cancel).labels
            axial_source = "axial series, its own automatic segmentation"
        else:
            axial_labels = resample_labels(anatomy.labels, axial_image)
            axial_source = (
                "axial series; dural sac = the main segmentation resampled (nearest) onto the axial grid through the "
                "shared patient coordinates (first version: not a segmentation of the axial image itself)"
            )
        if axial_info is not None:
            axial_info["mask"] = axial_source or "not used"
    result = grade_anatomy(
        anatomy,
        thresholds=thresholds,
        axial_labels=axial_labels,
        axial_source=axial_source,
        sac_fraction=fraction,
        sac_fraction_source=("" if sac_probability is None else "sac probability map " + _source_name(sac_probability)),
        progress=sub(0.45, 1.0),
        cancel=cancel,
    )
    if axial is not None and axial_labels is None:
        for lv in result.levels:
            if lv.axial is None and lv.measured:
                lv.axial_source = "axial series"
                lv.axial_reason = "the axial series does not overlap the main image in patient coordinates"
    result.warnings.extend(warnings)
    return {"anatomy": anatomy, "result": result, "axial": axial_info}


def grade_study(
    image_path: str | os.PathLike[str] | Volume,
    out_dir: str | os.PathLike[str],
    *,
    segmentation: str | os.PathLike[str] | Volume | None = None,
    convention: str = "auto",
    axial: str | os.PathLike[str] | Volume | None = None,
    axial_mask: str = "resample",
    thresholds: GradingThresholds | None = None,
    study_id: str | None = None,
    pictures: bool = True,
    sac_probability: str | os.PathLike[str] | Volume | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
) -> dict[str, Any]:
    """Grade the central canal of one study and write the report files into ``out_dir``.

    Args:
        image_path: the main image (a T2 series, usually sagittal), a path or a Volume.
        out_dir: output folder (created).
        segmentation: its segmentation (path or label Volume); None runs the automatic segmentation.
        convention: the segmentation's label convention (``"auto"``, ``"totalspineseg"``, ...).
        axial: an axial series of the same session (path or Volume) for the routine axial areas.
        axial_mask: :data:`AXIAL_MASKS`.
        thresholds: grading cut-offs (default: the clinical reference's).
        study_id: the ``study_id`` of ``rsna.csv`` (default: the image file name).
        pictures: write the PNGs.
        sac_probability: optional partial-volume (probability) map of the dural sac, values in [0, 1],
            path or Volume, on any grid of the same patient coordinates (a network's soft output): the
            planes are measured on it instead of the crisp labels (see
            :func:`lumbarspine.grading.core.grade_anatomy`; voxels over 2 mm thick are not measured).
        progress, cancel: see :mod:`lumbarspine.progress`.

    Returns:
        ``{"paths": {...}, "report": <report.json content>, "seconds": ...}``.

    Speed: with a ``segmentation`` and ``pictures=False`` the image's voxels are not read, only its
    header (the grid the labels must lie on; :func:`lumbarspine.io.read_volume_geometry`); the
    reports are the same as with a full read. The trade-off: a truncated NIfTI image is still
    refused, but a ``.nii.gz`` damaged inside its gzip stream (at full length) or NaN voxels in the
    image are not detected then. With pictures (which draw the image) the image is read in full, in a
    thread while the labels are graded on its grid; its read errors come first, before any file is written.
    """
    from .pictures import area_plot, plane_picture
    from .report import build_report, write_report_csv, write_report_json, write_rsna_csv

    started = time.perf_counter()
    report_progress = progress or _noop
    if axial_mask not in AXIAL_MASKS:
        raise ValueError(f"Unknown axial_mask {axial_mask!r}: use one of {', '.join(AXIAL_MASKS)}.")
    out = Path(out_dir)
    check_cancel(cancel, "Stenosis grading")
    report_progress(0.0, "reading the image")
    # The image's voxels are segmented without a segmentation and drawn in the pictures; the grading from a
    # segmentation needs the image's grid only, so for the pictures the voxels are read meanwhile, in a thread.
    background = (
        pictures
        and segmentation is not None
        and not isinstance(image_path, Volume)
        and not Path(image_path).is_dir()  # a DICOM folder's header is its slices: read once, in full
    )
    image = _read_image(image_path, "image", voxels=segmentation is None or (pictures and not background))
    voxels = _BackgroundRead(image_path) if background else None

    def sub(lo: float, hi: float) -> ProgressCallback:
        return lambda f, m: report_progress(lo + (hi - lo) * f, m)

    try:
        graded = grade_image(
            image,
            segmentation,
            convention=convention,
            axial=axial,
            axial_mask=axial_mask,
            thresholds=thresholds,
            sac_probability=sac_probability,
            progress=sub(0.05, 0.85),
            cancel=cancel,
        )
    except BaseException:
        if voxels is not None:
            voxels.result()  # an unreadable image is reported first, as when it was read before the grading
        raise
    if voxels is not None:
        image = voxels.result()
    anatomy, result, axial_info = graded["anatomy"], graded["result"], graded["axial"]
    from .measure import acquired_slice_axis

    _, orientation = acquired_slice_axis(image)
    input_info = {
        "image": _source_name(image_path),
        "image_size_ijk": list(image.size_ijk),
        "image_spacing_mm": [round(float(s), 4) for s in image.spacing],
        "image_acquisition": orientation,
        "segmentation": None if segmentation is None else _source_name(segmentation),
        "convention": convention,
        "anatomy_source": anatomy.source,
        "numbering": anatomy.numbering,
        "axial": axial_info,
        "sac_probability": None
        if sac_probability is None
        else {
            "path": _source_name(sac_probability),
            "measured": result.method.get("sac_fraction", ""),
        },
    }
    report = build_report(result, input_info)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}
    check_cancel(cancel, "Stenosis grading")
    report_progress(0.88, "writing the report")
    paths["report_json"] = str(write_report_json(report, out / "report.json"))
    paths["report_csv"] = str(write_report_csv(report, out / "report.csv"))
    name = (
        study_id
        if study_id is not None
        else (Path(str(image_path)).name.split(".")[0] if not isinstance(image_path, Volume) else image_path.name)
    )
    paths["rsna_csv"] = str(write_rsna_csv(report, out / "rsna.csv", study_id=name))
    if pictures:
        report_progress(0.92, "drawing the pictures")
        for lv in result.levels:
            if lv.minimum is not None:
                check_cancel(cancel, "Stenosis grading")
                paths[f"plane_{lv.level}"] = str(plane_picture(image, lv, out / _level_file(lv.level)))
        paths["area_plot"] = str(area_plot(result, out / "area_along_canal.png"))
    report_progress(1.0, "done")
    return {"paths": paths, "report": report, "result": result, "seconds": round(time.perf_counter() - started, 3)}
