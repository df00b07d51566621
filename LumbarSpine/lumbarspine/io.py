"""Reading and writing volumes: NIfTI, NRRD, MetaImage and DICOM series, through SimpleITK.

Geometry is converted exactly between the files' LPS convention (ITK, DICOM, NRRD ``space``
fields as read by ITK) and :class:`~lumbarspine.volume.Volume`'s RAS convention; no resampling.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .volume import Volume

__all__ = ["read_volume", "write_volume", "read_dicom_series", "write_dicom_series", "SUPPORTED_SUFFIXES"]

_LABEL_NAME = re.compile(r"(^|[_\-.])(seg|segmentation|label|labels|labelmap|mask)([_\-.]|$)")
"""File names taken as label maps: a ``seg``/``label``/``mask`` word, e.g. ``case_seg``, ``labels``."""

SUPPORTED_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in sorted(SUPPORTED_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


def read_volume(path: str | os.PathLike[str], *, is_label: bool | None = None, name: str | None = None) -> Volume:
    """Read a 3D scalar volume from a file or a DICOM series folder.

    Args:
        path: ``.nii``/``.nii.gz``/``.nrrd``/``.nhdr``/``.mha``/``.mhd`` file, or a folder holding one
            DICOM series.
        is_label: mark the result as a label map; ``None`` guesses from the file name
            (a ``seg``, ``label`` or ``mask`` word in it) and an integer voxel type.
        name: node name; defaults to the file name without suffix.
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.exists():
        raise ValueError(f"No such file or folder: {path}. Check the path.")
    if path.is_dir():
        return read_dicom_series(path, name=name)
    suffix = _suffix(path)
    if suffix not in SUPPORTED_SUFFIXES and suffix != ".dcm":
        raise ValueError(f"Cannot read {path.name!r}: supported are {', '.join(SUPPORTED_SUFFIXES)} or a DICOM folder.")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise ValueError(f"SimpleITK could not read {path}: {exc}".strip()) from exc
    stem = name or (path.name[: len(path.name) - len(suffix)] if suffix else path.stem)
    if is_label is None:
        integer = np.dtype(sitk.GetArrayViewFromImage(image).dtype).kind in "iu"
        is_label = integer and _LABEL_NAME.search(stem.lower()) is not None
    return Volume.from_sitk(image, is_label=bool(is_label), name=stem)


def write_volume(volume: Volume, path: str | os.PathLike[str], *, compress: bool = True) -> Path:
    """Write ``volume`` to a NIfTI / NRRD / MetaImage file (format from the suffix); returns the path."""
    import SimpleITK as sitk

    path = Path(path)
    suffix = _suffix(path)
    if suffix not in SUPPORTED_SUFFIXES:
        raise ValueError(f"Cannot write {path.name!r}: use one of {', '.join(SUPPORTED_SUFFIXES)}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(volume.to_sitk(), str(path), useCompression=compress)
    return path


def read_dicom_series(
    folder: str | os.PathLike[str], *, series_id: str | None = None, name: str | None = None
) -> Volume:
    """Read one DICOM series from ``folder`` (the first series found unless ``series_id`` is given)."""
    import SimpleITK as sitk

    folder = Path(folder)
    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) or ()
    if not ids:
        raise ValueError(f"No DICOM series found in {folder}. Point to the folder holding the .dcm files.")
    chosen = series_id or ids[0]
    if chosen not in ids:
        raise ValueError(f"DICOM series {chosen!r} is not in {folder}; found {', '.join(ids)}.")
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), chosen)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    image = reader.Execute()
    return Volume.from_sitk(image, name=name or folder.name)


def write_dicom_series(
    volume: Volume, folder: str | os.PathLike[str], *, series_description: str = "LumbarSpine"
) -> list[Path]:
    """Write ``volume`` as a DICOM series (one file per k slice; int16 voxels, rescale 1/0).

    Meant for tests and demos (it writes a minimal CT-like header: position, orientation and
    spacing per slice), not for clinical export.
    """
    import time

    import SimpleITK as sitk

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    image = volume.to_sitk()
    image = sitk.Cast(image, sitk.sitkInt16)
    direction = image.GetDirection()
    series_uid = "1.2.826.0.1.3680043.2.1125." + time.strftime("%Y%m%d%H%M%S") + f".{os.getpid()}"
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    paths = []
    for k in range(image.GetDepth()):
        slice_image = image[:, :, k]
        position = image.TransformIndexToPhysicalPoint((0, 0, k))
        tags = {
            "0008|0060": "CT",
            "0008|103e": series_description,
            "0020|000e": series_uid,
            "0020|000d": series_uid + ".1",
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{p:.6f}" for p in position),
            "0020|0037": "\\".join(
                f"{d:.8f}" for d in (direction[0], direction[3], direction[6], direction[1], direction[4], direction[7])
            ),
            "0018|0050": f"{image.GetSpacing()[2]:.6f}",
            "0028|1053": "1",
            "0028|1052": "0",
            "0008|0018": series_uid + f".2.{k + 1}",
        }
        for key, value in tags.items():
            slice_image.SetMetaData(key, value)
        out = folder / f"slice_{k:04d}.dcm"
        writer.SetFileName(str(out))
        writer.Execute(slice_image)
        paths.append(out)
    return paths
