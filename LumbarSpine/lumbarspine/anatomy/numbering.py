"""Level names from structures found in a scan, counted up from the sacrum (never guessed).

Automatic segmentation finds vertebrae and discs as anonymous instances ordered from the top of
the image to the bottom. :func:`level_ids` turns that order into label ids of the project's
convention (:mod:`lumbarspine.labels`):

* with the sacrum in the field of view, the lowest mobile vertebra above it is L5, the next L4 and
  so on (T12, T11 ... above L1), and the disc directly above the sacrum is L5-S1;
* without the sacrum nothing is numbered: vertebra n and disc n (n = 1 at the top of the image)
  get the *unnumbered* ids (:data:`~lumbarspine.anatomy.model.UNNUMBERED_VERTEBRA_BASE` + n,
  :data:`~lumbarspine.anatomy.model.UNNUMBERED_DISC_BASE` + n) and a warning says why.

Counting from the sacrum assumes five lumbar vertebrae; transitional anatomy (a sacralised L5 or a
lumbarised S1, in roughly 10 % of people) shifts every name by one, which only a whole-spine view
can settle. The numbering method is stated in the anatomy's ``numbering`` field so a reader can
check it.
"""

from __future__ import annotations

from .model import UNNUMBERED_DISC_BASE, UNNUMBERED_VERTEBRA_BASE

__all__ = ["level_ids", "vertebra_name", "disc_name", "NUMBERING_FROM_SACRUM"]

NUMBERING_FROM_SACRUM = "sacrum"

# Vertebra ids from the sacrum upwards (TotalSpineSeg): L5..L1 = 45..41, T12..T1 = 32..21, C7..C1 = 17..11.
_VERTEBRAE_UPWARDS: tuple[int, ...] = (45, 44, 43, 42, 41, *range(32, 20, -1), *range(17, 10, -1))
# Disc ids from the sacrum upwards: L5-S1 = 100, L4-L5..L1-L2 = 95..92, T12-L1 = 91, T11-T12..C7-T1 = 82..71,
# C6-C7..C2-C3 = 67..63.
_DISCS_UPWARDS: tuple[int, ...] = (100, 95, 94, 93, 92, 91, *range(82, 70, -1), *range(67, 62, -1))

_VERTEBRA_NAMES: dict[int, str] = {
    **{41 + n: f"L{n + 1}" for n in range(5)},
    **{21 + n: f"T{n + 1}" for n in range(12)},
    **{11 + n: f"C{n + 1}" for n in range(7)},
    50: "S1",
    33: "T13",  # project labels for transitional vertebrae (lumbarspine.labels.PROJECT_LABELS)
    46: "L6",
}
_DISC_NAMES: dict[int, str] = {
    100: "L5-S1",
    **{92 + n: f"L{n + 1}-L{n + 2}" for n in range(4)},
    91: "T12-L1",
    **{71 + n: (f"T{n}-T{n + 1}" if n else "C7-T1") for n in range(12)},
    **{63 + n: f"C{n + 2}-C{n + 3}" for n in range(5)},
    83: "T12-T13",  # project labels next to transitional vertebrae (lumbarspine.labels.PROJECT_LABELS)
    84: "T13-L1",
    96: "L5-L6",
    101: "L6-S1",
}


def vertebra_name(label: int) -> str | None:
    """Name of a vertebra id (``"L4"``, ``"S1"`` for the sacrum, ``"vertebra 2"`` when unnumbered)."""
    label = int(label)
    if label in _VERTEBRA_NAMES:
        return _VERTEBRA_NAMES[label]
    if UNNUMBERED_VERTEBRA_BASE < label < UNNUMBERED_DISC_BASE:
        return f"vertebra {label - UNNUMBERED_VERTEBRA_BASE}"
    return None


def disc_name(label: int) -> str | None:
    """Name of a disc id (``"L4-L5"``, ``"disc 3"`` when unnumbered)."""
    label = int(label)
    if label in _DISC_NAMES:
        return _DISC_NAMES[label]
    if UNNUMBERED_DISC_BASE < label < UNNUMBERED_DISC_BASE + 50:
        return f"disc {label - UNNUMBERED_DISC_BASE}"
    return None


def level_ids(n_vertebrae: int, n_discs: int, *, sacrum: bool) -> tuple[list[int], list[int], str | None, list[str]]:
    """Label ids for vertebrae and discs found top to bottom, numbered from the sacrum when present.

    Args:
        n_vertebrae: mobile vertebrae found (the sacrum not included), ordered top to bottom.
        n_discs: discs found, ordered top to bottom; with the sacrum the lowest is taken as the
            disc directly above it (L5-S1).
        sacrum: True when the sacrum was found below the lowest vertebra.

    Returns:
        ``(vertebra_ids, disc_ids, numbering, warnings)``: ids in the same top-to-bottom order,
        ``numbering`` = :data:`NUMBERING_FROM_SACRUM` or None, and messages for the user.
    """
    if n_vertebrae < 0 or n_discs < 0:
        raise ValueError("Counts of vertebrae and discs cannot be negative.")
    warnings: list[str] = []
    if not sacrum:
        warnings.append(
            "The sacrum is not in the field of view (or was not found), so the levels cannot be numbered: "
            "they are reported from the top of the image as 'vertebra 1', 'disc 1', ... Give a segmentation "
            "or a scan that includes the sacrum to name them."
        )
        vertebrae = [UNNUMBERED_VERTEBRA_BASE + n + 1 for n in range(n_vertebrae)]
        discs = [UNNUMBERED_DISC_BASE + n + 1 for n in range(n_discs)]
        return vertebrae, discs, None, warnings
    if n_vertebrae > len(_VERTEBRAE_UPWARDS) or n_discs > len(_DISCS_UPWARDS):
        raise ValueError(f"Found {n_vertebrae} vertebrae and {n_discs} discs above the sacrum: more than a spine has.")
    vertebrae = list(reversed(_VERTEBRAE_UPWARDS[:n_vertebrae]))
    discs = list(reversed(_DISCS_UPWARDS[:n_discs]))
    return vertebrae, discs, NUMBERING_FROM_SACRUM, warnings
