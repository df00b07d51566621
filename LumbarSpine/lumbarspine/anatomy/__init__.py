"""Spine anatomy: importing lab segmentations and finding the anatomy in a scan.

The result of every path is one :class:`~lumbarspine.anatomy.model.SpineAnatomy`, which grading
and planning take as input.
"""

from .model import (
    SUBREGIONS,
    UNNUMBERED_DISC_BASE,
    UNNUMBERED_VERTEBRA_BASE,
    DiscInfo,
    SpineAnatomy,
    VertebraInfo,
)

__all__ = [
    "SpineAnatomy",
    "VertebraInfo",
    "DiscInfo",
    "SUBREGIONS",
    "UNNUMBERED_VERTEBRA_BASE",
    "UNNUMBERED_DISC_BASE",
]
