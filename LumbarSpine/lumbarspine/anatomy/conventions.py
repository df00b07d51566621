"""Label conventions of the spine segmentations labs already have, and their mapping to the project's.

The project's convention (:mod:`lumbarspine.labels`) is TotalSpineSeg's ids plus documented project
labels (201 epidural fat, 33 T13, 46 L6 and their discs 83/84/96/101) and the unnumbered ids
300 + n / 350 + n (:mod:`lumbarspine.anatomy.model`). Each :class:`Convention` below says which
values it uses and maps every spine structure to a project id; structures outside the spine (the
organs of TotalSegmentator's ``total`` task, VerSe's coccyx) are not imported and are reported.

Tables (sources checked with the project's search tool; see also ``clinical-reference.md``):

* ``totalspineseg``: the project convention itself (identity).
* ``verse`` (VerSe 2019/2020, CT): 1-7 C1-C7, 8-19 T1-T12, 20-24 L1-L5, 25 L6, 26 sacrum, 27 coccyx,
  28 T13. Vertebrae only.
* ``spineps`` (SPINEPS / TPTBox instance mask): vertebrae with the VerSe numbers, disc below
  vertebra v = v + 100, endplate of vertebra v = v + 200 (imported as part of that vertebra),
  60 spinal cord, 61 spinal canal. Its *semantic* mask holds the sub-regions 41 arch, 42 spinous
  process, 43/44 transverse process L/R, 45/46 superior articular L/R, 47/48 inferior articular L/R,
  49 body border, 50 body (copied into :attr:`SpineAnatomy.subregions`); 26 sacrum, 60-62 and 100
  there are not sub-regions and are left out.
* ``totalsegmentator`` (TotalSegmentator v2 ``total`` task, CT; ``map_to_binary.class_map["total"]``):
  25 sacrum, 26 vertebrae_S1 (both imported as the sacrum, 50), 27-31 L5-L1, 32-43 T12-T1, 44-50
  C7-C1, 79 spinal_cord; no canal and no disc class. Everything else (organs, ribs, ...) is skipped.
* ``totalsegmentator_v1`` (TotalSegmentator v1 ``total``, ``class_map["total_v1"]``): 18-22 L5-L1,
  23-34 T12-T1, 35-41 C7-C1, 92 sacrum; organs skipped. A map whose values fit both v1 and v2 is
  ambiguous for ``auto`` (the two read most numbers differently): choose with ``--convention``.
* ``totalspineseg_2024`` (TotalSpineSeg until its commit c96c9f0 of 14 September 2024, README table):
  the TotalSegmentator v1 vertebra ids, 92 sacrum, 200 spinal cord, 201 spinal canal, 202-224 discs
  L5-S .. C2-C3. Later releases (r20241115 on) use the current table (``totalspineseg``).
* ``totalsegmentator_vertebrae_mr`` (TotalSegmentator ``vertebrae_mr`` task): 1 sacrum, 2-6 L5-L1,
  7-18 T12-T1, 19-25 C7-C1. Checked in ``class_map["vertebrae_mr"]``: this task has vertebrae only; the
  discs and the spinal cord of TotalSegmentator's MR models are single classes of the ``total_mr`` task
  (18 sacrum, 19 vertebrae, 20 intervertebral_discs, 21 spinal_cord), without levels, which is not a
  convention this importer numbers.
* ``spider`` (SPIDER lumbar MRI, van der Graaf 2024): vertebrae 1-25 counted from the bottom, 100
  spinal canal, 101-125 the same vertebrae when only partly visible, 201-225 the disc *below*
  vertebra n - 200. **Which vertebra is 1**: the SPIDER team's own descriptions (the Grand Challenge
  baseline algorithm page: "numbered from the bottom (i.e. L5 = 1) ... L5/S1 = 201"; the MHub runner
  of that baseline written by the Radboud group: "L5 = 1, C1 = 24 ... L5/S1 = 201"; the nnU-Net-ready
  SPIDER ``dataset.json`` on Kaggle: "1-9 = L5 through T9, 201-209 = L5/S1 through T8/T9") agree on
  **1 = L5, 201 = L5-S1** (the sacrum has no label). The contrary "24 = L5" sentence on the same
  Grand Challenge page describes the older CT model (top-down numbering). Not verified on real SPIDER
  masks here (none available offline), so the anatomy carries a warning saying so.
* ``seg.nrrd`` (3D Slicer segmentation): read with ``slicerio``; segments are recognised by name
  (``L4``, ``vertebrae_L4``, ``L4 vertebra``, ``L4-L5``, ``disc_L4_L5``, ``sacrum``, ``S1``, ``dural sac``,
  ``spinal canal``, ``spinal cord``, ``epidural fat``, ``vertebra 2``, ``disc 3``) or by the vertebra's
  SNOMED CT code in its terminology entry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ..labels import (
    EPIDURAL_FAT,
    SACRUM,
    SPINAL_CANAL,
    SPINAL_CORD,
    TOTALSPINESEG_VALUES,
)
from .model import SUBREGIONS, UNNUMBERED_DISC_BASE, UNNUMBERED_VERTEBRA_BASE
from .numbering import disc_name, vertebra_name

__all__ = [
    "Convention",
    "CONVENTIONS",
    "CONVENTION_NAMES",
    "SEG_NRRD",
    "project_id",
    "detect_conventions",
    "structure_from_segment_name",
    "SPINEPS_SUBREGION_CODES",
]

SEG_NRRD = "seg.nrrd"

# Vertebrae top to bottom with their usual names (transitional ones are inserted where present).
_CERVICAL = tuple(f"C{n}" for n in range(1, 8))
_THORACIC = tuple(f"T{n}" for n in range(1, 13))
_LUMBAR = tuple(f"L{n}" for n in range(1, 6))

_PROJECT_BY_NAME: dict[str, int] = {}


def _project_names() -> dict[str, int]:
    if not _PROJECT_BY_NAME:
        for value in sorted(TOTALSPINESEG_VALUES):
            name = vertebra_name(value) or disc_name(value)
            if name is not None:
                _PROJECT_BY_NAME.setdefault(name, value)
        _PROJECT_BY_NAME.update({"spinal_cord": SPINAL_CORD, "spinal_canal": SPINAL_CANAL})
        _PROJECT_BY_NAME.update({"epidural_fat": EPIDURAL_FAT, "sacrum": SACRUM})
    return _PROJECT_BY_NAME


def project_id(structure: str) -> int | None:
    """Project label id of a structure name (``"L4"``, ``"L4-L5"``, ``"S1"``/``"sacrum"``, ``"spinal_canal"``,
    ``"vertebra 2"``, ``"disc 3"`` ...); None when the project has no label for it (``"C1-C2"``, coccyx)."""
    structure = structure.strip()
    if structure == "L5-S":
        structure = "L5-S1"
    return _project_names().get(structure)


def _vertebra_sequence(t13: bool, l6: bool) -> list[str]:
    """Vertebra names from the top down, S1 (the sacrum) last."""
    return [*_CERVICAL, *_THORACIC, *(("T13",) if t13 else ()), *_LUMBAR, *(("L6",) if l6 else ()), "S1"]


def _disc_below(name: str, sequence: list[str]) -> str | None:
    index = sequence.index(name)
    if index + 1 >= len(sequence):
        return None
    return f"{name}-{sequence[index + 1]}"


@dataclass(frozen=True)
class Convention:
    """A lab's label convention.

    Attributes:
        name: what ``--convention`` takes.
        title: human-readable name with the source.
        values: every value the convention may use (``auto`` checks a map against it).
        modality: the modality its maps come from when only one is possible (``"ct"``), else ``"unknown"``.
        table: ``present values -> {source value: structure name}``; structures of the spine only.
        numbering_note: how its level names are decided (goes into ``anatomy.json``).
        warnings: warnings every import in this convention carries.
        has_subregions: whether a sub-region map (SPINEPS semantic mask) can come with it.
    """

    name: str
    title: str
    values: frozenset[int]
    modality: str
    table: Callable[[frozenset[int]], dict[int, str]]
    numbering_note: str
    warnings: tuple[str, ...] = ()
    has_subregions: bool = False
    extra: Mapping[str, str] = field(default_factory=dict)

    def mapping(self, present: Iterable[int]) -> tuple[dict[int, int], list[str]]:
        """``({source value: project id}, [names of structures that are not imported])`` for the values present."""
        present = frozenset(int(v) for v in present if int(v) != 0)
        table = self.table(present)
        out: dict[int, int] = {}
        skipped: list[str] = []
        for value in sorted(present):
            structure = table.get(value)
            target = project_id(structure) if structure else None
            if target is None:
                skipped.append(structure or f"label {value}")
            else:
                out[value] = target
        return out, skipped


# ----------------------------------------------------------------------------------------- tables
def _identity(present: frozenset[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    for value in present:
        if value == SPINAL_CORD:
            out[value] = "spinal_cord"
        elif value == SPINAL_CANAL:
            out[value] = "spinal_canal"
        elif value == EPIDURAL_FAT:
            out[value] = "epidural_fat"
        else:
            name = vertebra_name(value) or disc_name(value)
            if name is not None:
                out[value] = name
    return out


_VERSE_NAMES: dict[int, str] = {
    **{n: f"C{n}" for n in range(1, 8)},
    **{7 + n: f"T{n}" for n in range(1, 13)},
    **{19 + n: f"L{n}" for n in range(1, 6)},
    25: "L6",
    26: "S1",
    27: "coccyx",
    28: "T13",
}


def _verse(present: frozenset[int]) -> dict[int, str]:
    return {v: _VERSE_NAMES[v] for v in present if v in _VERSE_NAMES}


def _spineps(present: frozenset[int]) -> dict[int, str]:
    vertebrae = {v % 100 for v in present if 0 < v % 100 <= 28 and v < 300}
    sequence = _vertebra_sequence(t13=28 in vertebrae, l6=25 in vertebrae)
    out: dict[int, str] = {}
    for value in present:
        base = value % 100
        if value == 60:
            out[value] = "spinal_cord"
        elif value == 61:
            out[value] = "spinal_canal"
        elif base not in _VERSE_NAMES or value >= 300:
            continue
        elif value < 100 or value >= 200:  # vertebra, or its endplate (part of the vertebra)
            out[value] = _VERSE_NAMES[base]
        else:  # disc below vertebra `base`
            name = _VERSE_NAMES[base]
            below = _disc_below(name, sequence) if name in sequence else None
            if below is not None:
                out[value] = below
    return out


_TOTALSEG_TOTAL: dict[int, str] = {
    25: "S1",  # sacrum
    26: "S1",  # vertebrae_S1 (part of the sacrum)
    **{27 + n: f"L{5 - n}" for n in range(5)},
    **{32 + n: f"T{12 - n}" for n in range(12)},
    **{44 + n: f"C{7 - n}" for n in range(7)},
    79: "spinal_cord",
}
_TOTALSEG_VERTEBRAE_MR: dict[int, str] = {
    1: "S1",
    **{2 + n: f"L{5 - n}" for n in range(5)},
    **{7 + n: f"T{12 - n}" for n in range(12)},
    **{19 + n: f"C{7 - n}" for n in range(7)},
}

# TotalSegmentator v1 ("total_v1") vertebra ids, also used by TotalSpineSeg until September 2024.
_TOTALSEG_V1_VERTEBRAE: dict[int, str] = {
    **{18 + n: f"L{5 - n}" for n in range(5)},
    **{23 + n: f"T{12 - n}" for n in range(12)},
    **{35 + n: f"C{7 - n}" for n in range(7)},
    92: "S1",
}
_DISCS_UPWARDS = (
    ("L5-S1", "L4-L5", "L3-L4", "L2-L3", "L1-L2", "T12-L1")
    + tuple(f"T{n - 1}-T{n}" for n in range(12, 1, -1))
    + ("C7-T1",)
    + tuple(f"C{n - 1}-C{n}" for n in range(7, 2, -1))
)
_TOTALSPINESEG_2024: dict[int, str] = {
    **_TOTALSEG_V1_VERTEBRAE,
    200: "spinal_cord",
    201: "spinal_canal",
    **{202 + n: name for n, name in enumerate(_DISCS_UPWARDS)},  # 202 L5-S ... 224 C2-C3
}

# SPIDER: vertebra n counted from the bottom, 1 = L5 (see the module docstring).
_SPIDER_UPWARDS: tuple[str, ...] = (*reversed(_LUMBAR), *reversed(_THORACIC), *reversed(_CERVICAL))


def _spider(present: frozenset[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    for value in present:
        if value == 100:
            out[value] = "spinal_canal"
            continue
        n = value % 100
        if not 1 <= n <= len(_SPIDER_UPWARDS) or value >= 300:
            continue
        if value < 200:  # 1-25 vertebrae, 101-125 partly visible vertebrae
            out[value] = _SPIDER_UPWARDS[n - 1]
        else:  # 201-225: the disc below vertebra n
            below = "S1" if n == 1 else _SPIDER_UPWARDS[n - 2]
            out[value] = f"{_SPIDER_UPWARDS[n - 1]}-{below}"
    return out


SPINEPS_SUBREGION_CODES: frozenset[int] = frozenset(range(41, 51))
"""SPINEPS semantic-mask values that are sub-regions (41 arch ... 50 body); others are left out."""
assert SPINEPS_SUBREGION_CODES <= set(SUBREGIONS.values())

_SPIDER_WARNING = (
    "SPIDER numbering: vertebra 1 was read as L5 and disc 201 as L5-S1, as the SPIDER authors document it; "
    "this was not verified on real SPIDER masks. Check the level names on the image."
)

CONVENTIONS: dict[str, Convention] = {
    c.name: c
    for c in (
        Convention(
            "totalspineseg",
            "TotalSpineSeg / LumbarSpine project convention (1 cord, 2 canal, 41-45 L1-L5, 50 sacrum, 91-100 discs)",
            TOTALSPINESEG_VALUES,
            "unknown",
            _identity,
            "level names taken from the TotalSpineSeg label values",
        ),
        Convention(
            "spineps",
            "SPINEPS / TPTBox instance mask (VerSe vertebra ids, disc = vertebra + 100, endplate = vertebra + 200, "
            "60 cord, 61 canal)",
            frozenset([*_VERSE_NAMES, *(v + 100 for v in _VERSE_NAMES), *(v + 200 for v in _VERSE_NAMES), 60, 61]),
            "unknown",
            _spineps,
            "level names taken from the SPINEPS/VerSe vertebra ids",
            has_subregions=True,
        ),
        Convention(
            "verse",
            "VerSe (1-7 C, 8-19 T, 20-24 L1-L5, 25 L6, 26 sacrum, 27 coccyx, 28 T13)",
            frozenset(_VERSE_NAMES),
            "ct",
            _verse,
            "level names taken from the VerSe vertebra ids",
        ),
        Convention(
            "totalsegmentator",
            "TotalSegmentator v2 'total' task (CT: 25 sacrum, 26 S1, 27-31 L5-L1, 32-43 T12-T1, 44-50 C7-C1, "
            "79 spinal cord)",
            frozenset(range(1, 118)),
            "ct",
            lambda present: {v: _TOTALSEG_TOTAL[v] for v in present if v in _TOTALSEG_TOTAL},
            "level names taken from the TotalSegmentator 'total' class ids",
        ),
        Convention(
            "totalsegmentator_vertebrae_mr",
            "TotalSegmentator 'vertebrae_mr' task (1 sacrum, 2-6 L5-L1, 7-18 T12-T1, 19-25 C7-C1)",
            frozenset(_TOTALSEG_VERTEBRAE_MR),
            "unknown",
            lambda present: {v: _TOTALSEG_VERTEBRAE_MR[v] for v in present if v in _TOTALSEG_VERTEBRAE_MR},
            "level names taken from the TotalSegmentator 'vertebrae_mr' class ids",
        ),
        Convention(
            "totalsegmentator_v1",
            "TotalSegmentator v1 'total' task (CT: 18-22 L5-L1, 23-34 T12-T1, 35-41 C7-C1, 92 sacrum)",
            frozenset(range(1, 105)),
            "ct",
            lambda present: {v: _TOTALSEG_V1_VERTEBRAE[v] for v in present if v in _TOTALSEG_V1_VERTEBRAE},
            "level names taken from the TotalSegmentator v1 class ids",
        ),
        Convention(
            "totalspineseg_2024",
            "TotalSpineSeg releases before September 2024 (18-41 L5..C1, 92 sacrum, 200 cord, 201 canal, "
            "202-224 discs L5-S..C2-C3)",
            frozenset(_TOTALSPINESEG_2024),
            "unknown",
            lambda present: {v: _TOTALSPINESEG_2024[v] for v in present if v in _TOTALSPINESEG_2024},
            "level names taken from the (2024) TotalSpineSeg label values",
        ),
        Convention(
            "spider",
            "SPIDER lumbar MRI (vertebrae 1-25 from the bottom, 1 = L5; 100 canal; 101-125 partly visible; "
            "201-225 disc below vertebra n, 201 = L5-S1)",
            frozenset([*range(1, 26), 100, *range(101, 126), *range(201, 226)]),
            "unknown",
            _spider,
            "level names counted from the bottom as SPIDER does (1 = L5, 201 = L5-S1, per the SPIDER authors)",
            warnings=(_SPIDER_WARNING,),
        ),
    )
}
"""Label-map conventions by ``--convention`` name (``seg.nrrd`` is read by segment name instead)."""

CONVENTION_NAMES: tuple[str, ...] = (*CONVENTIONS, SEG_NRRD)
"""Every value ``--convention`` takes besides ``auto``."""


def detect_conventions(present: Iterable[int]) -> list[str]:
    """Names of the label-map conventions whose value set holds every (non-zero) value present."""
    values = {int(v) for v in present if int(v) != 0}
    return [name for name, c in CONVENTIONS.items() if values <= c.values]


# ------------------------------------------------------------------------------- segment names
_VERTEBRA_CODE_TO_NAME = {
    "49668003": "L5", "11994002": "L4", "36470004": "L3", "14293000": "L2", "66794005": "L1",
    "23215003": "T12", "12989004": "T11", "54735007": "S1",
}  # fmt: skip
_LEVEL = r"([ctl]\d{1,2}|s1?)"
_VERTEBRA_RE = re.compile(rf"^(?:vertebra(?:e)?\s+)?{_LEVEL}(?:\s+vertebra(?:e)?)?$")
_DISC_RE = re.compile(rf"^(?:(?:intervertebral\s+)?dis[ck]\s+)?{_LEVEL}\s*[-/ ]\s*{_LEVEL}(?:\s+dis[ck])?$")
_UNNUMBERED_RE = re.compile(r"^(vertebra|dis[ck])\s+(\d{1,2})$")
_NAMED = {
    "dural sac": "spinal_canal",
    "thecal sac": "spinal_canal",
    "spinal canal": "spinal_canal",
    "canal": "spinal_canal",
    "spinal cord": "spinal_cord",
    "cord": "spinal_cord",
    "epidural fat": "epidural_fat",
    "sacrum": "S1",
}


def _level(token: str) -> str:
    token = token.upper()
    return "S1" if token in ("S", "S1") else token


def structure_from_segment_name(name: str, terminology: Mapping[str, object] | None = None) -> str | None:
    """Structure name (``"L4"``, ``"L4-L5"``, ``"spinal_canal"``, ``"vertebra 2"`` ...) of a Slicer segment, or None.

    The name is matched case-insensitively with ``_`` read as a space; a vertebra the name does not
    give is recognised by its SNOMED CT code in the terminology entry (Slicer's TotalSegmentator codes).
    """
    text = re.sub(r"\s+", " ", name.replace("_", " ").strip().lower())
    if text in _NAMED:
        return _NAMED[text]
    if (m := _UNNUMBERED_RE.match(text)) is not None:
        kind = "vertebra" if m.group(1) == "vertebra" else "disc"
        return f"{kind} {int(m.group(2))}"
    if (m := _VERTEBRA_RE.match(text)) is not None:
        return _level(m.group(1))
    if (m := _DISC_RE.match(text)) is not None:
        return f"{_level(m.group(1))}-{_level(m.group(2))}"
    if terminology:
        code = terminology.get("type")
        if isinstance(code, (list, tuple)) and len(code) >= 2 and str(code[1]) in _VERTEBRA_CODE_TO_NAME:
            return _VERTEBRA_CODE_TO_NAME[str(code[1])]
    return None


def unnumbered_ids_are_consistent() -> bool:
    """The unnumbered ids of the model module and of :mod:`lumbarspine.labels` agree (checked in tests)."""
    return project_id("vertebra 1") == UNNUMBERED_VERTEBRA_BASE + 1 and project_id("disc 1") == UNNUMBERED_DISC_BASE + 1
