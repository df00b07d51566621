"""Signed distance maps (mm) of label masks, sampled at RAS points.

A :class:`DistanceMap` holds, on a crop of the label map's grid, the signed Euclidean distance in
mm to the surface of a mask: positive inside, negative outside. It is computed with
``scipy.ndimage.distance_transform_edt`` on the ``(k, j, i)`` spacing, as
``inside distance - outside distance`` between voxel centres, so under linear interpolation the zero
level lies halfway between a mask voxel and its non-mask neighbour (the voxel face). Sampling maps
RAS mm to continuous IJK explicitly (:meth:`lumbarspine.volume.Volume.ras_to_ijk_points`) and
interpolates trilinearly, so oblique, anisotropic and left-handed grids give the same distances.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..volume import Volume

__all__ = ["DistanceMap", "signed_distance_map", "mask_box"]

DEFAULT_MARGIN_MM = 15.0
"""Space (mm) kept around the mask in the crop; farther points read as at least this far outside."""


def mask_box(mask: np.ndarray, spacing_kji: np.ndarray, margin_mm: float) -> tuple[slice, slice, slice] | None:
    """Bounding box ``[k, j, i]`` slices of ``mask`` grown by ``margin_mm`` (clipped to the grid); None if empty."""
    nonzero = np.nonzero(mask)
    if len(nonzero[0]) == 0:
        return None
    pad = np.ceil(margin_mm / np.asarray(spacing_kji, float)).astype(int) + 1
    lo = np.maximum([int(idx.min()) for idx in nonzero] - pad, 0)
    hi = np.minimum([int(idx.max()) + 1 for idx in nonzero] + pad, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))  # type: ignore[return-value]


@dataclass(frozen=True, eq=False)
class DistanceMap:
    """Signed distance in mm (positive inside the mask) on a crop of ``grid``.

    Attributes:
        values: ``[k, j, i]`` float32 signed distances in mm on the crop.
        start_kji: index of the crop's first voxel in the full grid.
        grid: the full label map (for its geometry only).
        touches_border: the mask touches the edge of the field of view.
    """

    values: np.ndarray
    start_kji: tuple[int, int, int]
    grid: Volume
    touches_border: bool = False

    def sample(self, ras: np.ndarray) -> np.ndarray:
        """Signed distance (mm) at RAS points ``(N, 3)``, trilinear; outside the crop, the crop's edge value."""
        from scipy import ndimage

        ras = np.asarray(ras, dtype=float).reshape(-1, 3)
        ijk = self.grid.ras_to_ijk_points(ras)
        kji = ijk[:, ::-1] - np.asarray(self.start_kji, float)[None, :]
        return ndimage.map_coordinates(self.values, kji.T, order=1, mode="nearest").astype(float)

    def inside_grid(self, ras: np.ndarray, margin_voxels: float = 0.5) -> np.ndarray:
        """True for RAS points inside the full image grid (at least ``margin_voxels`` from its edge)."""
        ijk = self.grid.ras_to_ijk_points(np.asarray(ras, float).reshape(-1, 3))
        size = np.asarray(self.grid.size_ijk, float)
        return np.all((ijk >= margin_voxels - 0.5) & (ijk <= size - 0.5 - margin_voxels), axis=1)


def signed_distance_map(grid: Volume, mask: np.ndarray, margin_mm: float = DEFAULT_MARGIN_MM) -> DistanceMap:
    """Signed distance map (mm) of a boolean ``[k, j, i]`` ``mask`` on ``grid``'s geometry.

    Only the mask's bounding box grown by ``margin_mm`` is computed. Raises ``ValueError`` for an
    empty mask or a mask of another shape.
    """
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    if mask.shape != grid.shape:
        raise ValueError(f"The mask's shape {mask.shape} does not match the label map's grid {grid.shape}.")
    spacing_kji = np.asarray(grid.spacing[::-1], float)
    box = mask_box(mask, spacing_kji, margin_mm)
    if box is None:
        raise ValueError("The mask is empty: there is no structure to measure distances to.")
    crop = mask[box]
    inside = ndimage.distance_transform_edt(crop, sampling=spacing_kji)
    outside = ndimage.distance_transform_edt(~crop, sampling=spacing_kji)
    values = (inside - outside).astype(np.float32)
    border = bool(mask[[0, -1], :, :].any() or mask[:, [0, -1], :].any() or mask[:, :, [0, -1]].any())
    start = tuple(int(s.start) for s in box)
    return DistanceMap(values=values, start_kji=start, grid=grid, touches_border=border)  # type: ignore[arg-type]
