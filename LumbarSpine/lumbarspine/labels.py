"""Label conventions. LumbarSpine writes the TotalSpineSeg convention on disk.

Source: ``shared/docs/clinical-reference.md`` ("Segmentation label conventions"), after the
TotalSpineSeg project (MRI): 1 spinal cord, 2 spinal canal, 41-45 L1-L5, 50 sacrum, discs
91 T12-L1, 92 L1-L2, 93 L2-L3, 94 L3-L4, 95 L4-L5, 100 L5-S.

The phantom also labels the epidural fat, which TotalSpineSeg has no class for; it uses the
project-specific value :data:`EPIDURAL_FAT` = 201 (outside every published range above), and
documents it in the colour table it writes. Within the canal label 2 the *dural sac* is what is
measured: the phantom's label 2 is the dural sac (thecal sac with CSF), and the epidural fat
around it is 201.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "LabelInfo",
    "TOTALSPINESEG",
    "SPINAL_CORD",
    "SPINAL_CANAL",
    "EPIDURAL_FAT",
    "SACRUM",
    "VERTEBRA_LABELS",
    "DISC_LABELS",
    "LUMBAR_LEVELS",
    "DISC_LEVELS",
    "TOTALSPINESEG_VALUES",
    "check_totalspineseg",
    "label_name",
    "label_color",
    "write_color_table",
]

SPINAL_CORD = 1
SPINAL_CANAL = 2
EPIDURAL_FAT = 201
SACRUM = 50

LUMBAR_LEVELS: tuple[str, ...] = ("L1", "L2", "L3", "L4", "L5")
VERTEBRA_LABELS: dict[str, int] = {"L1": 41, "L2": 42, "L3": 43, "L4": 44, "L5": 45, "S1": SACRUM}
DISC_LEVELS: tuple[str, ...] = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")
DISC_LABELS: dict[str, int] = {"T12-L1": 91, "L1-L2": 92, "L2-L3": 93, "L3-L4": 94, "L4-L5": 95, "L5-S1": 100}


@dataclass(frozen=True)
class LabelInfo:
    """One label: value, name and display colour (RGB 0-255)."""

    value: int
    name: str
    color: tuple[int, int, int]


TOTALSPINESEG: tuple[LabelInfo, ...] = (
    LabelInfo(SPINAL_CORD, "spinal_cord", (255, 255, 0)),
    LabelInfo(SPINAL_CANAL, "spinal_canal", (60, 140, 255)),
    LabelInfo(41, "vertebrae_L1", (241, 214, 145)),
    LabelInfo(42, "vertebrae_L2", (230, 200, 130)),
    LabelInfo(43, "vertebrae_L3", (221, 190, 120)),
    LabelInfo(44, "vertebrae_L4", (212, 180, 110)),
    LabelInfo(45, "vertebrae_L5", (203, 170, 100)),
    LabelInfo(SACRUM, "sacrum", (190, 160, 95)),
    LabelInfo(91, "disc_T12_L1", (120, 220, 120)),
    LabelInfo(92, "disc_L1_L2", (110, 210, 140)),
    LabelInfo(93, "disc_L2_L3", (100, 200, 160)),
    LabelInfo(94, "disc_L3_L4", (90, 190, 180)),
    LabelInfo(95, "disc_L4_L5", (80, 180, 200)),
    LabelInfo(100, "disc_L5_S", (70, 170, 220)),
    LabelInfo(EPIDURAL_FAT, "epidural_fat", (255, 200, 60)),
)

_BY_VALUE = {info.value: info for info in TOTALSPINESEG}

TOTALSPINESEG_VALUES: frozenset[int] = frozenset(
    [SPINAL_CORD, SPINAL_CANAL, SACRUM, EPIDURAL_FAT]
    + list(range(11, 18))  # C1-C7
    + list(range(21, 33))  # T1-T12
    + list(range(41, 46))  # L1-L5
    + list(range(63, 68))  # discs C2-C3 .. C6-C7
    + list(range(71, 83))  # discs C7-T1 .. T11-T12
    + list(range(91, 96))  # discs T12-L1 .. L4-L5
    + [100]  # disc L5-S
)
"""Every label value the TotalSpineSeg convention (plus the phantom's 201 epidural fat) uses."""


def check_totalspineseg(values: Iterable[int], what: str = "label map") -> None:
    """Raise ``ValueError`` when ``values`` hold labels outside the TotalSpineSeg convention.

    A TotalSegmentator ``total`` map, VerSe or SPIDER masks share some numbers with TotalSpineSeg
    but mean other structures by them; grading such a map would measure the wrong thing.
    """
    foreign = sorted(int(v) for v in values if int(v) != 0 and int(v) not in TOTALSPINESEG_VALUES)
    if foreign:
        shown = ", ".join(str(v) for v in foreign[:12]) + (" ..." if len(foreign) > 12 else "")
        raise ValueError(
            f"The {what} uses labels that are not in the TotalSpineSeg convention ({shown}): unknown label "
            "convention. Convert it to TotalSpineSeg (1 cord, 2 canal, 41-45 L1-L5, 50 sacrum, 92-95 and 100 "
            "lumbar discs) first, e.g. with TotalSpineSeg itself."
        )


def label_name(value: int) -> str:
    """Name of a TotalSpineSeg label value (``"label_<v>"`` when unknown)."""
    info = _BY_VALUE.get(int(value))
    return info.name if info else f"label_{int(value)}"


def label_color(value: int) -> tuple[int, int, int]:
    """Display colour of a label value (grey when unknown)."""
    info = _BY_VALUE.get(int(value))
    return info.color if info else (180, 180, 180)


def write_color_table(path: str) -> None:
    """Write the convention as a Slicer colour table file (``value name R G B A`` per line).

    Written atomically through :func:`lumbarspine.safe_write.write_text`.
    """
    from .safe_write import write_text

    lines = ["# LumbarSpine label colours (TotalSpineSeg convention + 201 epidural fat)", "0 background 0 0 0 0"]
    for info in TOTALSPINESEG:
        r, g, b = info.color
        lines.append(f"{info.value} {info.name} {r} {g} {b} 255")
    write_text(path, "\n".join(lines) + "\n")
