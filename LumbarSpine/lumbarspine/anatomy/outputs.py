"""Write a spine anatomy to disk: label map, Slicer segmentation, ``anatomy.json`` and the picture.

Every file goes through :mod:`lumbarspine.safe_write` (temporary file, verify, atomic rename).

* ``labels.nii.gz``: the project's label convention on the image's grid.
* ``segmentation.seg.nrrd``: a Slicer segmentation written with ``slicerio`` (no Slicer needed): one
  segment per structure, named as a surgeon reads it (:func:`lumbarspine.labels.segment_name`: L1..L5,
  S1, L1-L2..L5-S1, dural sac, spinal cord), in the label colour, with Slicer terminology
  (:func:`lumbarspine.labels.segment_terminology`); the segment's label value is the project id, so
  the file is also a plain label map.
* ``subregions.seg.nrrd`` (when the anatomy has sub-regions): one segment per sub-region code (SPINEPS
  codes, :data:`~lumbarspine.anatomy.model.SUBREGION_NAMES`: "vertebral body", "pedicle left",
  "superior articular process right", ...), label value = code; which vertebra a voxel belongs to is in
  ``segmentation.seg.nrrd`` (a voxel is in one vertebra and in one sub-region).
* ``anatomy.json``: :meth:`SpineAnatomy.to_dict` (with the sub-region names and their voxels per vertebra)
  plus the input and how the numbering was decided.
* ``segmentation.png``: :func:`lumbarspine.anatomy.picture.render_midsagittal`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..labels import label_color, segment_name, segment_terminology
from ..safe_write import OutputError, atomic_output, write_json
from ..volume import RAS_TO_LPS, Volume
from .model import SUBREGION_NAMES, SpineAnatomy

__all__ = ["write_label_map", "write_seg_nrrd", "write_anatomy_outputs", "numbering_explanation"]

_GENERIC_TERMINOLOGY = (
    "Segmentation category and type - 3D Slicer General Anatomy list~SCT^123037004^Anatomical Structure~"
)
_REGION = "Anatomic codes - DICOM master list~SCT^122496007^Lumbar spine~^^"
_SUBREGION_COLOURS: dict[int, tuple[int, int, int]] = {
    41: (241, 214, 145),
    42: (230, 120, 60),
    43: (80, 160, 230),
    44: (40, 90, 200),
    45: (120, 210, 90),
    46: (40, 150, 60),
    47: (230, 90, 190),
    48: (160, 40, 140),
    49: (200, 200, 200),
    50: (250, 240, 210),
    51: (250, 220, 60),
    52: (220, 170, 20),
}
"""Display colours (RGB 0-255) of the sub-regions: left lighter, right darker shade of one hue per part."""


def write_label_map(labels: Volume, path: str | os.PathLike[str]) -> Path:
    """Write an integer label map (NIfTI/NRRD by suffix) atomically; returns the path."""
    from ..io import write_volume

    with atomic_output(path) as temp:
        write_volume(labels, temp)
    return Path(path)


def write_seg_nrrd(labels: Volume, path: str | os.PathLike[str], *, names: Mapping[int, str] | None = None) -> Path:
    """Write ``labels`` as a Slicer ``.seg.nrrd`` (one layer, one named segment per label value).

    ``names``: segment name of each value (default :func:`lumbarspine.labels.segment_name`, with the label
    colours and terminology); with ``names`` the segments get the sub-region colours and a generic
    anatomical-structure terminology.
    """
    import slicerio
    from slicerio.segmentation import terminology_entry_from_string

    volume = labels.to_right_handed()
    array = np.asarray(volume.array)
    values = [int(v) for v in np.unique(array) if v != 0]
    if not values:
        raise ValueError("The label map is empty: there is no segment to write.")
    ijk_to_lps = np.eye(4)
    ijk_to_lps[:3, :3] = RAS_TO_LPS @ (volume.direction * np.asarray(volume.spacing)[None, :])
    ijk_to_lps[:3, 3] = RAS_TO_LPS @ np.asarray(volume.origin)
    dtype = np.uint8 if max(values) < 256 else np.uint16
    segmentation = slicerio.create_segmentation(array.shape[::-1], ijk_to_lps, dtype=np.dtype(dtype).name)
    segmentation["voxels"] = np.ascontiguousarray(array.transpose(2, 1, 0)).astype(dtype)
    if names is not None and any(v not in names for v in values):
        missing = ", ".join(str(v) for v in values if v not in names)
        raise ValueError(f"No segment name for label value(s) {missing}; give a name for every value.")

    def describe(value: int) -> tuple[str, tuple[int, int, int], str]:
        if names is None:
            return segment_name(value), label_color(value), segment_terminology(value)
        name = names[value]
        return name, _SUBREGION_COLOURS.get(value, (180, 180, 180)), f"{_GENERIC_TERMINOLOGY}^^{name}~^^~{_REGION}"

    segmentation["segments"] = []
    for value in values:
        name, colour, terminology = describe(value)
        segmentation["segments"].append(
            {
                "id": f"Segment_{value}",
                "name": name,
                "color": [round(c / 255.0, 6) for c in colour],
                "labelValue": value,
                "layer": 0,
                "terminology": terminology_entry_from_string(terminology),
            }
        )

    def verify(temp: Path) -> None:
        back = slicerio.read_segmentation(str(temp), skip_voxels=True)
        if len(back["segments"]) != len(values):
            raise OutputError(f"Writing {path} stored {len(back['segments'])} of {len(values)} segments.")

    with atomic_output(path, verify=verify) as temp:
        slicerio.write_segmentation(str(temp), segmentation)
    return Path(path)


def numbering_explanation(anatomy: SpineAnatomy) -> str:
    """One sentence on how the level names were decided (for ``anatomy.json`` and reports)."""
    if anatomy.numbering == "sacrum":
        return "Levels counted up from the sacrum found in the image (the lowest mobile vertebra above it is L5)."
    if anatomy.numbering == "imported":
        return f"Level names taken from the imported segmentation ({anatomy.source})."
    if anatomy.numbering is None:
        return "Levels not numbered (no reliable landmark such as the sacrum): reported as vertebra n / disc n from the top."
    return f"Levels numbered by: {anatomy.numbering}."


def write_anatomy_outputs(
    out_dir: str | os.PathLike[str],
    image: Volume,
    anatomy: SpineAnatomy,
    *,
    input_info: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Write ``labels.nii.gz``, ``segmentation.seg.nrrd`` (and ``subregions.seg.nrrd`` when the anatomy has
    sub-regions), ``anatomy.json`` and ``segmentation.png`` into ``out_dir``.

    Raises:
        ValueError: the anatomy's labels are not on the image's grid.
    """
    from .picture import render_midsagittal

    if not anatomy.labels.same_geometry(image, atol=1e-3):
        raise ValueError("The anatomy's label map is not on the image's grid; import it with reference=image.")
    out = Path(out_dir)
    labels = image.with_array(np.asarray(anatomy.labels.array), is_label=True, name="labels")
    paths = {
        "labels": str(write_label_map(labels, out / "labels.nii.gz")),
        "segmentation": str(write_seg_nrrd(labels, out / "segmentation.seg.nrrd")),
    }
    if anatomy.subregions is not None and np.any(anatomy.subregions.array):
        sub = image.with_array(np.asarray(anatomy.subregions.array), is_label=True, name="subregions")
        paths["subregions"] = str(write_seg_nrrd(sub, out / "subregions.seg.nrrd", names=SUBREGION_NAMES))
    picture = render_midsagittal(image, anatomy, out / "segmentation.png")
    paths["picture"] = picture["path"]
    summary = anatomy.to_dict()
    summary["numbering_explanation"] = numbering_explanation(anatomy)
    summary["input"] = dict(input_info or {})
    summary["image_grid"] = {
        "size_ijk": list(image.size_ijk),
        "spacing_ijk_mm": [round(s, 5) for s in image.spacing],
        "origin_ras": [round(o, 4) for o in image.origin],
        "direction": [[round(float(x), 6) for x in row] for row in np.asarray(image.direction)],
    }
    summary["segments"] = {str(v): segment_name(v) for v in np.unique(labels.array) if v != 0}
    summary["picture_plane"] = {k: picture[k] for k in ("centre_ras", "superior", "anterior")}
    summary["files"] = {key: Path(p).name for key, p in paths.items()}
    paths["anatomy"] = str(write_json(out / "anatomy.json", summary))
    return paths
