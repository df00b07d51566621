"""The voxel grid: direction matrices for each orientation and a field of view covering the phantom.

The anatomy is fixed in RAS; only the grid turns. ``direction`` columns are the RAS unit vectors of
the i, j, k axes (see :class:`lumbarspine.volume.Volume`):

* ``axial``: i -> L, j -> P, k -> S (the usual DICOM/ITK axial layout), right-handed.
* ``sagittal``: i -> P, j -> I, k -> R (slices are stacked across x), right-handed.
* ``coronal``: i -> R, j -> I, k -> A, right-handed.
* ``oblique``: the axial frame turned 20 deg about R then 15 deg about A, right-handed.
* ``axial-lps-lefthanded``: i -> L, j -> P, k -> I (axial slices stored head to foot), det = -1.
* ``oblique-lefthanded``: the left-handed axial frame turned 25 deg about S then -18 deg about R.
"""

from __future__ import annotations

import math

import numpy as np

from .anatomy import Centreline, Layout

__all__ = ["direction_matrix", "grid_geometry", "phantom_extent_points", "GRID_PHASE"]

GRID_PHASE = (0.287, 0.413, 0.359)
"""Sub-voxel shift (fraction of the spacing along i, j, k) of the grid relative to the centred field of view."""


def _rot(axis: str, degrees: float) -> np.ndarray:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def direction_matrix(orientation: str) -> np.ndarray:
    """3x3 direction matrix (columns = RAS unit vectors of i, j, k) of a named orientation."""
    lps_axial = np.diag([-1.0, -1.0, 1.0])
    if orientation == "axial":
        return lps_axial
    if orientation == "sagittal":
        return np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    if orientation == "coronal":
        return np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    if orientation == "oblique":
        return _rot("y", 15.0) @ _rot("x", 20.0) @ lps_axial
    if orientation == "axial-lps-lefthanded":
        return np.diag([-1.0, -1.0, -1.0])
    if orientation == "oblique-lefthanded":
        return _rot("x", -18.0) @ _rot("z", 25.0) @ np.diag([-1.0, -1.0, -1.0])
    raise ValueError(f"Unknown orientation {orientation!r}.")


def phantom_extent_points(centreline: Centreline, layout: Layout, *, lattice: bool = False) -> np.ndarray:
    """RAS points (N, 3) whose bounding box contains the whole spine (a sampled curvilinear box).

    ``lattice=True`` gives the box the voxel lattice is anchored to (:data:`Layout.lattice_s_min`, a
    fixed anatomical range), so lengthening the sacrum adds whole voxels without moving the others.
    """
    s_min = layout.lattice_s_min if lattice else layout.s_min
    s = np.append(np.arange(s_min, layout.s_max, 2.0), layout.s_max)
    pts = [
        centreline.suw_to_ras(s, u, w)
        for u in (-layout.u_extent, layout.u_extent)
        for w in (layout.w_min, layout.w_max)
    ]
    return np.concatenate(pts, axis=0)


def grid_geometry(
    points_ras: np.ndarray,
    direction: np.ndarray,
    spacing: tuple[float, float, float],
    margin_mm: float,
    cover_ras: np.ndarray | None = None,
) -> tuple[tuple[float, float, float], tuple[int, int, int]]:
    """Origin (RAS of voxel 0 centre, mm) and size ``(ni, nj, nk)`` of a grid covering the points.

    The points are projected on the grid axes; the grid covers their range plus ``margin_mm`` on
    every side. ``cover_ras``: further points to cover (plus the margin) by adding whole voxels at the
    ends, keeping the lattice that ``points_ras`` defines.
    """
    coords = np.asarray(points_ras, float) @ direction  # (N, 3): coordinate along i, j, k in mm
    lo = coords.min(axis=0) - margin_mm
    hi = coords.max(axis=0) + margin_mm
    sp = np.asarray(spacing, float)
    size = np.floor((hi - lo) / sp).astype(int) + 1
    # centre the voxels on the covered range, then shift by a fraction of a voxel so that no row of voxel
    # centres falls exactly on the phantom's round-number boundaries (e.g. the sac's lateral edge at x = +-8 mm)
    lo = lo + ((hi - lo) - (size - 1) * sp) / 2 + np.asarray(GRID_PHASE) * sp
    if cover_ras is not None:
        extra = np.asarray(cover_ras, float) @ direction
        below = np.maximum(0, np.ceil((lo - (extra.min(axis=0) - margin_mm)) / sp)).astype(int)
        top = lo + (size - 1) * sp
        above = np.maximum(0, np.ceil(((extra.max(axis=0) + margin_mm) - top) / sp)).astype(int)
        lo = lo - below * sp
        size = size + below + above
    origin = direction @ lo
    return tuple(float(o) for o in origin), tuple(int(n) for n in size)  # type: ignore[return-value]
