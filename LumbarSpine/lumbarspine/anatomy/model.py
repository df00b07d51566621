"""The spine anatomy: what segmentation (automatic or imported) hands to grading and planning.

One object, :class:`SpineAnatomy`, holds

* ``labels``: an integer label map on the image's grid in the project's on-disk convention
  (TotalSpineSeg ids, :mod:`lumbarspine.labels`): 1 cord, 2 dural sac / canal, 41-45 L1-L5,
  50 sacrum, 91 T12-L1, 92-95 L1-L2..L4-L5, 100 L5-S1, 201 epidural fat. When the levels could
  not be numbered (no sacrum in the field of view, ...), vertebrae and discs carry the
  *unnumbered* ids :data:`UNNUMBERED_VERTEBRA_BASE` + n and :data:`UNNUMBERED_DISC_BASE` + n
  (n = 1, 2, ... counted from the top of the image) instead, so no level name is guessed;
* ``subregions``: optionally a second label map on the same grid with the SPINEPS/TPTBox
  sub-region codes (:data:`SUBREGIONS`: 41 arch, 42 spinous process, 43/44 transverse process
  L/R, 45/46 superior articular process L/R, 47/48 inferior articular process L/R, 49 body
  border, 50 body, plus the project's 51/52 pedicle L/R). A voxel belongs to one vertebra in
  ``labels`` *and* to one sub-region here, which is what planning needs;
* ``vertebrae`` and ``discs``: what is known per structure (name, label id, centroid in RAS mm,
  whether it is cut by the field of view), ordered cranial to caudal;
* ``centreline_ras``: the canal / dural sac centreline, ``(N, 3)`` RAS mm, ordered cranial to
  caudal (``None`` when there is no canal label);
* ``numbering``: whether and how levels were numbered (``"sacrum"``, ``"imported"``, or
  ``None`` for unnumbered), and ``warnings`` for the user.

Coordinates are RAS in mm, the patient coordinates Slicer shows for the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..volume import Volume

__all__ = [
    "SpineAnatomy",
    "VertebraInfo",
    "DiscInfo",
    "SUBREGIONS",
    "SUBREGION_NAMES",
    "UNNUMBERED_VERTEBRA_BASE",
    "UNNUMBERED_DISC_BASE",
    "MODALITIES",
]

UNNUMBERED_VERTEBRA_BASE = 300
"""Vertebra n (1 = top of the image) of an unnumbered spine has label 300 + n (project convention)."""

UNNUMBERED_DISC_BASE = 350
"""Disc n (1 = top of the image) of an unnumbered spine has label 350 + n (project convention)."""

SUBREGIONS: dict[str, int] = {
    "arch": 41,
    "spinous_process": 42,
    "transverse_process_left": 43,
    "transverse_process_right": 44,
    "superior_articular_left": 45,
    "superior_articular_right": 46,
    "inferior_articular_left": 47,
    "inferior_articular_right": 48,
    "body_border": 49,
    "body": 50,
    "pedicle_left": 51,
    "pedicle_right": 52,
}
"""Sub-region codes: SPINEPS/TPTBox 41-50 (clinical-reference.md); 51/52 pedicles are project codes."""

SUBREGION_NAMES: dict[int, str] = {
    41: "arch (laminae and pars)",
    42: "spinous process",
    43: "transverse process left",
    44: "transverse process right",
    45: "superior articular process left",
    46: "superior articular process right",
    47: "inferior articular process left",
    48: "inferior articular process right",
    49: "vertebral body border",
    50: "vertebral body",
    51: "pedicle left",
    52: "pedicle right",
}
"""Name of each sub-region code as a surgeon reads it (``subregions.seg.nrrd``, ``anatomy.json``); left and right
are the patient's."""
assert set(SUBREGION_NAMES) == set(SUBREGIONS.values())

MODALITIES = ("t2", "ct", "unknown")


@dataclass(frozen=True)
class VertebraInfo:
    """One vertebra (or the sacrum) found in the label map.

    Attributes:
        name: ``"L1"`` .. ``"L5"``, ``"S1"`` (the sacrum), or ``"vertebra 1"`` .. when unnumbered.
        label: its id in :attr:`SpineAnatomy.labels`.
        centroid_ras: centroid in RAS mm.
        voxels: number of voxels.
        truncated: True when it touches the border of the field of view (cut by it).
    """

    name: str
    label: int
    centroid_ras: tuple[float, float, float]
    voxels: int
    truncated: bool = False


@dataclass(frozen=True)
class DiscInfo:
    """One intervertebral disc level.

    Attributes:
        name: ``"L1-L2"`` .. ``"L5-S1"`` (also ``"T12-L1"``), or ``"disc 1"`` .. when unnumbered.
        label: its id in :attr:`SpineAnatomy.labels`.
        centroid_ras: centroid of the disc label in RAS mm.
        voxels: number of voxels.
        truncated: True when it touches the border of the field of view.
    """

    name: str
    label: int
    centroid_ras: tuple[float, float, float]
    voxels: int
    truncated: bool = False


@dataclass(frozen=True, eq=False)
class SpineAnatomy:
    """Label map plus what is known about it (see the module docstring for the conventions).

    Attributes:
        labels: integer label map (project convention) on the image's grid.
        modality: ``"t2"``, ``"ct"`` or ``"unknown"``.
        vertebrae: cranial to caudal.
        discs: cranial to caudal.
        numbering: ``"sacrum"`` (counted up from the sacrum), ``"imported"`` (names taken from
            the imported segmentation's convention) or ``None`` (unnumbered).
        centreline_ras: ``(N, 3)`` RAS mm, cranial to caudal, or ``None``.
        subregions: optional sub-region label map (:data:`SUBREGIONS`) on the same grid.
        source: how it was made, e.g. ``"automatic t2"``, ``"import totalspineseg"``.
        warnings: messages for the user (levels not numbered, structures cut by the field of view...).
    """

    labels: Volume
    modality: str = "unknown"
    vertebrae: tuple[VertebraInfo, ...] = ()
    discs: tuple[DiscInfo, ...] = ()
    numbering: str | None = None
    centreline_ras: np.ndarray | None = None
    subregions: Volume | None = None
    source: str = ""
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not isinstance(self.labels, Volume):
            raise ValueError(f"SpineAnatomy.labels must be a Volume; got {type(self.labels).__name__}.")
        if np.dtype(self.labels.array.dtype).kind not in "iu":
            raise ValueError(f"SpineAnatomy.labels must hold integer labels; got {self.labels.array.dtype}.")
        if self.modality not in MODALITIES:
            raise ValueError(f"Unknown modality {self.modality!r}: use one of {', '.join(MODALITIES)}.")
        if self.subregions is not None and not self.subregions.same_geometry(self.labels):
            raise ValueError("SpineAnatomy.subregions must lie on the same grid as the labels.")
        if self.centreline_ras is not None:
            line = np.asarray(self.centreline_ras, dtype=float)
            if line.ndim != 2 or line.shape[1] != 3:
                raise ValueError(f"centreline_ras must be an (N, 3) array of RAS mm; got shape {line.shape}.")
            object.__setattr__(self, "centreline_ras", line)
        object.__setattr__(self, "vertebrae", tuple(self.vertebrae))
        object.__setattr__(self, "discs", tuple(self.discs))
        object.__setattr__(self, "warnings", tuple(self.warnings))

    @property
    def numbered(self) -> bool:
        """True when the levels carry anatomical names (L1-L2 ...)."""
        return self.numbering is not None

    def disc(self, name: str) -> DiscInfo | None:
        """The disc level called ``name`` (``"L4-L5"`` or ``"disc 3"``), or None."""
        return next((d for d in self.discs if d.name == name), None)

    def vertebra(self, name: str) -> VertebraInfo | None:
        """The vertebra called ``name`` (``"L4"``, ``"S1"`` or ``"vertebra 2"``), or None."""
        return next((v for v in self.vertebrae if v.name == name), None)

    def _subregion_summary(self) -> dict[str, Any] | None:
        """Sub-region names by code and, per vertebra, the sub-regions it has with their voxel counts."""
        if self.subregions is None:
            return None
        sub = np.asarray(self.subregions.array)
        labels = np.asarray(self.labels.array)
        per_vertebra: dict[str, dict[str, int]] = {}
        for v in self.vertebrae:
            counts = np.bincount(sub[labels == v.label].ravel().astype(np.int64), minlength=256)
            per_vertebra[v.name] = {
                SUBREGION_NAMES[code]: int(counts[code]) for code in sorted(SUBREGION_NAMES) if counts[code] > 0
            }
        return {
            "codes": {str(code): name for code, name in SUBREGION_NAMES.items()},
            "convention": "SPINEPS/TPTBox sub-region codes 41-50, project pedicles 51/52; left/right = patient's",
            "voxels_per_vertebra": per_vertebra,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (``anatomy.json``): everything except the voxel arrays."""

        def _round(values: Any) -> list[float]:
            return [round(float(v), 3) for v in values]

        return {
            "modality": self.modality,
            "source": self.source,
            "numbering": self.numbering,
            "numbered": self.numbered,
            "vertebrae": [
                {
                    "name": v.name,
                    "label": v.label,
                    "centroid_ras": _round(v.centroid_ras),
                    "voxels": v.voxels,
                    "truncated": v.truncated,
                }
                for v in self.vertebrae
            ],
            "discs": [
                {
                    "name": d.name,
                    "label": d.label,
                    "centroid_ras": _round(d.centroid_ras),
                    "voxels": d.voxels,
                    "truncated": d.truncated,
                }
                for d in self.discs
            ],
            "centreline_ras": None if self.centreline_ras is None else [_round(p) for p in self.centreline_ras],
            "has_subregions": self.subregions is not None,
            "subregions": self._subregion_summary(),
            "warnings": list(self.warnings),
            "units": "RAS mm (Slicer patient coordinates)",
        }
