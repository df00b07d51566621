"""Label conventions. LumbarSpine writes the TotalSpineSeg convention on disk.

Source: ``shared/docs/clinical-reference.md`` ("Segmentation label conventions"), after the
TotalSpineSeg project (MRI): 1 spinal cord, 2 spinal canal, 41-45 L1-L5, 50 sacrum, discs
91 T12-L1, 92 L1-L2, 93 L2-L3, 94 L3-L4, 95 L4-L5, 100 L5-S.

The phantom also labels the epidural fat, which TotalSpineSeg has no class for; it uses the
project-specific value :data:`EPIDURAL_FAT` = 201 (outside every published range above), and
documents it in the colour table it writes. Within the canal label 2 the *dural sac* is what is
measured: the phantom's label 2 is the dural sac (thecal sac with CSF), and the epidural fat
around it is 201.

Other project labels (outside every TotalSpineSeg id, :data:`PROJECT_LABELS`): 33 T13 and 46 L6
(transitional vertebrae that VerSe and SPINEPS label), discs 83 T12-T13, 84 T13-L1, 96 L5-L6 and
101 L6-S1, and the unnumbered levels 301-349 (vertebra n from the top = 300 + n) and 351-399
(disc n = 350 + n) used when the levels cannot be numbered (:mod:`lumbarspine.anatomy.model`).

Two names per label: :func:`label_name` (file-level, TotalSpineSeg style, ``vertebrae_L4``; the
colour table file) and :func:`segment_name` (what Slicer shows: ``L4``, ``L4-L5``, ``dural sac``),
with :func:`segment_terminology` (Slicer ``TerminologyEntry``, SNOMED CT codes where Slicer has them).
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
    "segment_name",
    "segment_terminology",
    "label_for_segment_name",
    "project_values",
    "PROJECT_LABELS",
    "VERTEBRA_T13",
    "VERTEBRA_L6",
    "DISC_T12_T13",
    "DISC_T13_L1",
    "DISC_L5_L6",
    "DISC_L6_S1",
    "UNNUMBERED_VERTEBRAE",
    "UNNUMBERED_DISCS",
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

# Project labels for structures the TotalSpineSeg convention has no class for (documented here, kept
# outside every TotalSpineSeg id): transitional vertebrae (VerSe and SPINEPS label a 13th thoracic and a
# 6th lumbar vertebra) and the discs next to them. The free TotalSpineSeg slots next to their neighbours
# are used: T13 after T12 (32), L6 after L5 (45), discs after T11-T12 (82) and L4-L5 (95) / L5-S (100).
VERTEBRA_T13 = 33
VERTEBRA_L6 = 46
DISC_T12_T13 = 83
DISC_T13_L1 = 84
DISC_L5_L6 = 96
DISC_L6_S1 = 101

UNNUMBERED_VERTEBRAE = range(301, 350)
"""Unnumbered vertebra n (1 = top of the image) = 300 + n (:mod:`lumbarspine.anatomy.model`)."""
UNNUMBERED_DISCS = range(351, 400)
"""Unnumbered disc n (1 = top of the image) = 350 + n (:mod:`lumbarspine.anatomy.model`)."""

PROJECT_LABELS: tuple[LabelInfo, ...] = (
    LabelInfo(VERTEBRA_T13, "vertebrae_T13", (235, 205, 150)),
    LabelInfo(VERTEBRA_L6, "vertebrae_L6", (196, 165, 98)),
    LabelInfo(DISC_T12_T13, "disc_T12_T13", (125, 225, 110)),
    LabelInfo(DISC_T13_L1, "disc_T13_L1", (122, 222, 115)),
    LabelInfo(DISC_L5_L6, "disc_L5_L6", (75, 175, 210)),
    LabelInfo(DISC_L6_S1, "disc_L6_S", (65, 165, 230)),
)
"""Project labels beyond TotalSpineSeg (besides :data:`EPIDURAL_FAT` and the unnumbered ids)."""

TOTALSPINESEG_VALUES: frozenset[int] = frozenset(
    [SPINAL_CORD, SPINAL_CANAL, SACRUM, EPIDURAL_FAT]
    + list(range(11, 18))  # C1-C7
    + list(range(21, 33))  # T1-T12
    + list(range(41, 46))  # L1-L5
    + list(range(63, 68))  # discs C2-C3 .. C6-C7
    + list(range(71, 83))  # discs C7-T1 .. T11-T12
    + list(range(91, 96))  # discs T12-L1 .. L4-L5
    + [100]  # disc L5-S
    + [info.value for info in PROJECT_LABELS]  # transitional vertebrae and their discs (project labels)
    + list(UNNUMBERED_VERTEBRAE)
    + list(UNNUMBERED_DISCS)
)
"""Every label value of the project's convention: TotalSpineSeg, 201 epidural fat, the transitional
vertebrae and discs of :data:`PROJECT_LABELS`, and the unnumbered ids 301-349 / 351-399."""


def check_totalspineseg(values: Iterable[int], what: str = "label map") -> None:
    """Raise ``ValueError`` when ``values`` hold labels outside the project's convention.

    A TotalSegmentator ``total`` map, VerSe or SPIDER masks share some numbers with TotalSpineSeg
    but mean other structures by them; grading such a map would measure the wrong thing. Import
    them with :func:`lumbarspine.anatomy.importers.load_segmentation` first.
    """
    foreign = sorted(int(v) for v in values if int(v) != 0 and int(v) not in TOTALSPINESEG_VALUES)
    if foreign:
        shown = ", ".join(str(v) for v in foreign[:12]) + (" ..." if len(foreign) > 12 else "")
        raise ValueError(
            f"The {what} uses labels that are not in the TotalSpineSeg convention ({shown}): unknown label "
            "convention. Convert it to TotalSpineSeg (1 cord, 2 canal, 41-45 L1-L5, 50 sacrum, 92-95 and 100 "
            "lumbar discs) first, e.g. with 'lumbarspine segment IMAGE --segmentation SEG --convention NAME'."
        )


_BY_VALUE = {info.value: info for info in (*TOTALSPINESEG, *PROJECT_LABELS)}

_UNNUMBERED_VERTEBRA_COLOURS = ((241, 214, 145), (212, 180, 110))
_UNNUMBERED_DISC_COLOURS = ((110, 210, 140), (80, 180, 200))


def label_name(value: int) -> str:
    """File-level name of a label value (``"vertebrae_L4"``; ``"label_<v>"`` when unknown)."""
    value = int(value)
    info = _BY_VALUE.get(value)
    if info:
        return info.name
    if value in UNNUMBERED_VERTEBRAE:
        return f"vertebra_{value - 300}"
    if value in UNNUMBERED_DISCS:
        return f"disc_{value - 350}"
    return f"label_{value}"


def label_color(value: int) -> tuple[int, int, int]:
    """Display colour of a label value (grey when unknown); unnumbered levels alternate two shades."""
    value = int(value)
    info = _BY_VALUE.get(value)
    if info:
        return info.color
    if value in UNNUMBERED_VERTEBRAE:
        return _UNNUMBERED_VERTEBRA_COLOURS[value % 2]
    if value in UNNUMBERED_DISCS:
        return _UNNUMBERED_DISC_COLOURS[value % 2]
    return (180, 180, 180)


_SEGMENT_NAMES = {SPINAL_CORD: "spinal cord", SPINAL_CANAL: "dural sac", EPIDURAL_FAT: "epidural fat"}


def segment_name(value: int) -> str:
    """Name a surgeon reads in Slicer: ``"L4"``, ``"S1"`` (sacrum), ``"L4-L5"``, ``"dural sac"``, ``"spinal cord"``,
    ``"epidural fat"``, ``"vertebra 2"`` / ``"disc 2"`` when unnumbered; ``label_name`` otherwise.

    Label 2 is named "dural sac": in the project's maps it holds the thecal sac with its CSF (the
    structure stenosis grading measures), see the module docstring.
    """
    from .anatomy.numbering import disc_name, vertebra_name

    value = int(value)
    if value in _SEGMENT_NAMES:
        return _SEGMENT_NAMES[value]
    return vertebra_name(value) or disc_name(value) or label_name(value)


def label_for_segment_name(name: str) -> int | None:
    """Inverse of :func:`segment_name` over the project's labels (None for other names)."""
    if not _LABEL_BY_SEGMENT_NAME:
        _build_segment_names()
    return _LABEL_BY_SEGMENT_NAME.get(name.strip())


# Slicer terminology (``TerminologyEntry`` tag). SNOMED CT codes as Slicer's terminology files use them:
# "Segmentation category and type - 3D Slicer General Anatomy list" has the spinal cord, body fat and the
# lumbar spine region but no single vertebrae or discs; the vertebra and sacrum codes below are the ones
# Slicer's TotalSegmentator extension writes (its own "Total Segmentator" context). Discs and the dural sac
# have no entry there: they get the category only (anatomical structure) with the lumbar spine region.
_CATEGORY_ANATOMY = "SCT^123037004^Anatomical Structure"
_CATEGORY_TISSUE = "SCT^85756007^Tissue"
_GENERAL = "Segmentation category and type - 3D Slicer General Anatomy list"
_TOTALSEG = "Segmentation category and type - Total Segmentator"
_REGION_CONTEXT = "Anatomic codes - DICOM master list"
_LUMBAR_REGION = "SCT^122496007^Lumbar spine"
_VERTEBRA_CODES = {
    "L5": "49668003", "L4": "11994002", "L3": "36470004", "L2": "14293000", "L1": "66794005",
    "T12": "23215003", "T11": "12989004", "T10": "7610001", "T9": "82687006", "T8": "11068009",
    "T7": "62487009", "T6": "45296009", "T5": "56401006", "T4": "73071006", "T3": "1626008",
    "T2": "53733008", "T1": "64864005", "C7": "87391001", "C6": "36054005", "C5": "36978003",
    "C4": "5329002", "C3": "113205007", "C2": "39976000", "C1": "14806007",
}  # fmt: skip


def segment_terminology(value: int) -> str:
    """Slicer ``TerminologyEntry`` string for a label value (context~category~type~modifier~region context~region~)."""
    value = int(value)
    name = segment_name(value)
    if value == SPINAL_CORD:
        return f"{_GENERAL}~{_CATEGORY_ANATOMY}~SCT^2748008^Spinal cord~^^~{_REGION_CONTEXT}~^^~^^"
    if value == EPIDURAL_FAT:
        return f"{_GENERAL}~{_CATEGORY_TISSUE}~SCT^248300009^Body fat~^^~{_REGION_CONTEXT}~{_LUMBAR_REGION}~^^"
    if value == SACRUM:
        return f"{_TOTALSEG}~{_CATEGORY_ANATOMY}~SCT^54735007^Sacrum~^^~{_REGION_CONTEXT}~^^~^^"
    if name in _VERTEBRA_CODES:
        return f"{_TOTALSEG}~{_CATEGORY_ANATOMY}~SCT^{_VERTEBRA_CODES[name]}^{name} vertebra~^^~{_REGION_CONTEXT}~^^~^^"
    if "vertebra" in label_name(value):
        return f"{_GENERAL}~{_CATEGORY_ANATOMY}~SCT^51282000^Vertebra~^^~{_REGION_CONTEXT}~{_LUMBAR_REGION}~^^"
    return f"{_GENERAL}~{_CATEGORY_ANATOMY}~^^{name}~^^~{_REGION_CONTEXT}~{_LUMBAR_REGION}~^^"


def project_values() -> tuple[int, ...]:
    """Every non-zero label value of the project's convention, sorted."""
    return tuple(sorted(TOTALSPINESEG_VALUES))


def write_color_table(path: str) -> None:
    """Write the convention as a Slicer colour table file (``value name R G B A`` per line).

    Written atomically through :func:`lumbarspine.safe_write.write_text`.
    """
    from .safe_write import write_text

    lines = ["# LumbarSpine label colours (TotalSpineSeg convention + 201 epidural fat + project labels)"]
    lines.append("0 background 0 0 0 0")
    for value in project_values():
        r, g, b = label_color(value)
        lines.append(f"{value} {label_name(value)} {r} {g} {b} 255")
    write_text(path, "\n".join(lines) + "\n")


_LABEL_BY_SEGMENT_NAME: dict[str, int] = {}


def _build_segment_names() -> None:
    for value in TOTALSPINESEG_VALUES:
        _LABEL_BY_SEGMENT_NAME.setdefault(segment_name(value), value)
