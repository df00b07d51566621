"""What phantom to build: :class:`PhantomSpec`, the grid orientations and the stenosis parser.

Units: areas in mm2, lengths (spacing) in mm. The spec is validated when it is created, so a bad
argument fails early with a ``ValueError`` that names the problem.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..labels import DISC_LEVELS
from .anatomy import MIN_STENOSIS_AREA_MM2, NORMAL_SAC_AREA_MM2

__all__ = ["PhantomSpec", "ORIENTATIONS", "MODALITIES", "parse_stenosis", "validate_stenosis", "MAX_VOXELS"]

ORIENTATIONS: tuple[str, ...] = (
    "axial",
    "sagittal",
    "coronal",
    "oblique",
    "axial-lps-lefthanded",
    "oblique-lefthanded",
)
"""Grid orientations (see :mod:`lumbarspine.phantom.grid` for the exact direction matrices)."""

MODALITIES: tuple[str, ...] = ("ct", "t2")
"""``"ct"``: Hounsfield units, int16. ``"t2"``: T2-weighted MRI, float32 arbitrary units."""

MAX_VOXELS = 60_000_000
"""Largest grid :func:`generate_phantom` agrees to build (about 1.5 GB of working memory)."""


def _normalise_level(level: str) -> str:
    key = str(level).strip().upper().replace("_", "-")
    if key == "L5-S":
        key = "L5-S1"
    if key not in DISC_LEVELS:
        raise ValueError(f"Unknown disc level {level!r}: use one of {', '.join(DISC_LEVELS)}.")
    return key


def validate_stenosis(stenosis: Mapping[str, Any]) -> dict[str, float]:
    """Check and normalise a ``{disc level: dural sac area in mm2}`` mapping.

    Levels may be written ``"L4-L5"``, ``"l4_l5"`` or ``"L5-S"``; they come back as in
    :data:`lumbarspine.labels.DISC_LEVELS`. Areas must be finite numbers between
    :data:`MIN_STENOSIS_AREA_MM2` (10 mm2) and the phantom's normal dural sac area
    (:data:`NORMAL_SAC_AREA_MM2`, about 163 mm2).
    """
    if not isinstance(stenosis, Mapping):
        raise ValueError(
            f"stenosis must be a mapping like {{'L4-L5': 60.0}} (disc level -> dural sac area in mm2); "
            f"got {type(stenosis).__name__}."
        )
    out: dict[str, float] = {}
    for level, value in stenosis.items():
        key = _normalise_level(level)
        if isinstance(value, bool):
            raise ValueError(f"Stenosis area for {key} must be a number in mm2; got {value!r}.")
        try:
            area = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"Stenosis area for {key} must be a number in mm2; got {value!r}.") from None
        if not math.isfinite(area):
            raise ValueError(f"Stenosis area for {key} must be finite; got {value!r}.")
        if area < MIN_STENOSIS_AREA_MM2 or area > NORMAL_SAC_AREA_MM2 + 1e-9:
            raise ValueError(
                f"Stenosis area for {key} is {area:g} mm2, outside the plausible range "
                f"{MIN_STENOSIS_AREA_MM2:g}-{NORMAL_SAC_AREA_MM2:.1f} mm2 (the upper bound is the phantom's normal "
                "dural sac area; stenosis can only make it smaller)."
            )
        if key in out:
            raise ValueError(f"Disc level {key} is given twice in the stenosis specification.")
        out[key] = area
    return out


def parse_stenosis(text: str) -> dict[str, float]:
    """Parse ``"L4-L5=60,L3-L4=90"`` into ``{"L4-L5": 60.0, "L3-L4": 90.0}`` (areas in mm2).

    An empty string gives ``{}``. Raises ``ValueError`` for unknown levels, malformed items,
    non-numbers and areas outside the plausible range (see :func:`validate_stenosis`).
    """
    if not isinstance(text, str):
        raise ValueError(f"parse_stenosis expects a string like 'L4-L5=60,L3-L4=90'; got {type(text).__name__}.")
    items: dict[str, str] = {}
    for raw in text.replace(";", ",").split(","):
        item = raw.strip()
        if not item:
            continue
        if item.count("=") != 1:
            raise ValueError(f"Malformed stenosis item {item!r}: write LEVEL=AREA_MM2, e.g. 'L4-L5=60'.")
        level, value = (part.strip() for part in item.split("="))
        key = _normalise_level(level)
        if key in items:
            raise ValueError(f"Disc level {key} is given twice in {text!r}.")
        items[key] = value
    return validate_stenosis(items)


@dataclass(frozen=True)
class PhantomSpec:
    """Parameters of one synthetic lumbar phantom.

    Attributes:
        seed: seed of the ``numpy.random.Generator`` for noise and bias field (int >= 0). The anatomy
            itself is deterministic; the seed changes only the image noise.
        modality: ``"ct"`` (HU, int16) or ``"t2"`` (float32).
        stenosis: ``{disc level: dural sac area in mm2}`` at the disc level, measured in the plane
            perpendicular to the canal. A string ``"L4-L5=60"`` is parsed with :func:`parse_stenosis`.
        spacing: voxel size along the grid axes ``(i, j, k)`` in mm.
        orientation: one of :data:`ORIENTATIONS`; the anatomy stays fixed in RAS, only the grid turns.
        margin_mm: space added around the phantom's bounding box, mm.
        noise: standard deviation of the noise (HU for CT, arbitrary units of a 0-1000 scale for T2);
            ``None`` picks the modality default (CT 12 HU, T2 15), ``0`` gives a noise-free image.
        osteophytes: disc levels (``"L3-L4"``, ...; a comma-separated string is accepted) whose two
            endplate rims carry an osteophyte: a bony lip 4 mm thick around the anterior and lateral
            rim reaching 3.5 mm into the disc space (labelled as the vertebra it grows from; at L5-S1
            only on L5). Default: none.
        confounders: T2 only (ignored for CT): give the image the confounders of a real lumbar T2
            (subcutaneous and bright epidural fat, bright and dark degenerated discs, cauda equina
            rootlets, dark ligamentum flavum, a bowel loop, a strong posterior coil field; see
            :mod:`lumbarspine.phantom.confounders`). Intensities only: labels and truth stay exact.
    """

    seed: int = 0
    modality: str = "ct"
    stenosis: Mapping[str, float] = field(default_factory=dict)
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    orientation: str = "axial"
    margin_mm: float = 10.0
    noise: float | None = None
    osteophytes: tuple[str, ...] = ()
    confounders: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer; got {self.seed!r}.")
        modality = str(self.modality).lower()
        if modality not in MODALITIES:
            raise ValueError(f"Unknown modality {self.modality!r}: use one of {', '.join(MODALITIES)}.")
        object.__setattr__(self, "modality", modality)
        stenosis = parse_stenosis(self.stenosis) if isinstance(self.stenosis, str) else validate_stenosis(self.stenosis)
        object.__setattr__(self, "stenosis", stenosis)
        try:
            spacing = tuple(float(s) for s in self.spacing)
        except (TypeError, ValueError):
            raise ValueError(f"spacing must be three numbers (i, j, k) in mm; got {self.spacing!r}.") from None
        if len(spacing) != 3 or not all(math.isfinite(s) and 0.05 <= s <= 10.0 for s in spacing):
            raise ValueError(f"spacing must be three numbers (i, j, k) between 0.05 and 10 mm; got {self.spacing!r}.")
        object.__setattr__(self, "spacing", spacing)
        if self.orientation not in ORIENTATIONS:
            raise ValueError(f"Unknown orientation {self.orientation!r}: use one of {', '.join(ORIENTATIONS)}.")
        if not (math.isfinite(float(self.margin_mm)) and 0.0 <= float(self.margin_mm) <= 200.0):
            raise ValueError(f"margin_mm must be between 0 and 200 mm; got {self.margin_mm!r}.")
        object.__setattr__(self, "margin_mm", float(self.margin_mm))
        if self.noise is not None:
            if not (math.isfinite(float(self.noise)) and float(self.noise) >= 0.0):
                raise ValueError(f"noise must be a non-negative number or None; got {self.noise!r}.")
            object.__setattr__(self, "noise", float(self.noise))
        raw = self.osteophytes
        if isinstance(raw, str):
            raw = tuple(part for part in (p.strip() for p in raw.replace(";", ",").split(",")) if part)
        try:
            levels = tuple(sorted({_normalise_level(level) for level in raw}, key=DISC_LEVELS.index))
        except TypeError:
            raise ValueError(
                f"osteophytes must be disc levels like ('L3-L4', 'L4-L5'); got {self.osteophytes!r}."
            ) from None
        object.__setattr__(self, "osteophytes", levels)
        if not isinstance(self.confounders, (bool, np.bool_)):
            raise ValueError(f"confounders must be True or False; got {self.confounders!r}.")
        object.__setattr__(self, "confounders", bool(self.confounders))

    def __hash__(self) -> int:
        return hash(
            (
                self.seed,
                self.modality,
                tuple(sorted(self.stenosis.items())),
                self.spacing,
                self.orientation,
                self.margin_mm,
                self.noise,
                self.osteophytes,
                self.confounders,
            )
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy of the spec."""
        return {
            "seed": self.seed,
            "modality": self.modality,
            "stenosis": dict(self.stenosis),
            "spacing": list(self.spacing),
            "orientation": self.orientation,
            "margin_mm": self.margin_mm,
            "noise": self.noise,
            "osteophytes": list(self.osteophytes),
            "confounders": self.confounders,
        }
