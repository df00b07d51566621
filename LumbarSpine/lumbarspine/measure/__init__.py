"""Measurements on label maps (independent of how the labels were made)."""

from .cross_section import CrossSection, cross_section_area_mm2, plane_basis

__all__ = ["CrossSection", "cross_section_area_mm2", "plane_basis"]
