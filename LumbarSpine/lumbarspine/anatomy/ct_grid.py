"""The working grid of the CT segmentation: an isotropic, RAS-aligned grid and resampling to and from it.

Every step of :func:`lumbarspine.anatomy.ct.segment_ct` runs on one grid whose axes are the patient
axes (array ``[k, j, i]`` = ``[S, A, R]``: i -> Right, j -> Anterior, k -> Superior, identity
direction, right-handed) with the same spacing on every axis. So "axial slice" means a plane of
constant S in RAS, whatever the scanner's grid was (oblique, left-handed, anisotropic), and distances
in voxels times the spacing are mm. The result is mapped back onto the input's grid at the end.
"""

from __future__ import annotations

import numpy as np

from ..volume import Volume

__all__ = [
    "WORKING_SPACING_RANGE_MM",
    "WORKING_SPACING_FACTOR",
    "working_spacing",
    "working_grid",
    "resample_onto",
    "crop_volume",
]

WORKING_SPACING_RANGE_MM = (1.0, 2.0)
"""Automatic working spacing: :data:`WORKING_SPACING_FACTOR` times the input's mean voxel size (cube
root of the voxel volume), clipped to this range (mm). Finer grids add time without adding bone
detail the thresholds can use; coarser ones lose the 1-2 mm gaps of the facet joints."""
WORKING_SPACING_FACTOR = 0.7
"""The working grid is finer than the input (linear interpolation): the watershed then finds the
narrow necks between neighbouring vertebrae (facet joints) that a grid as coarse as the input blurs
(on 1.5 mm phantoms: vertebra Dice 0.80-0.89 at 1.5 mm, 0.9-0.97 at 1.05 mm)."""


MAX_WORKING_VOXELS = 24_000_000
"""The automatic working spacing is made coarser (up to 2 mm) when the grid would exceed this many voxels
(memory and time on a 2-core machine: a 512 x 512 x 400 CT at 1 mm would hold ~100 million)."""


def working_spacing(
    volume: Volume, spacing_mm: float | None = None, bounds: tuple[np.ndarray, np.ndarray] | None = None
) -> float:
    """The isotropic working spacing in mm (``spacing_mm`` when given, else automatic).

    ``bounds``: the RAS box (min, max) the working grid will cover (default: the whole volume).
    """
    if spacing_mm is not None:
        value = float(spacing_mm)
        if not (np.isfinite(value) and 0.3 <= value <= 5.0):
            raise ValueError(f"working spacing must be between 0.3 and 5 mm; got {spacing_mm!r}.")
        return value
    mean = float(np.prod(volume.spacing)) ** (1.0 / 3.0)
    lo, hi = volume.bounds_ras() if bounds is None else bounds
    box_mm3 = float(np.prod(np.maximum(np.asarray(hi) - np.asarray(lo), 1.0)))
    fits = (box_mm3 / MAX_WORKING_VOXELS) ** (1.0 / 3.0)
    return float(np.clip(max(WORKING_SPACING_FACTOR * mean, fits), *WORKING_SPACING_RANGE_MM))


def working_grid(volume: Volume, spacing_mm: float, bounds: tuple[np.ndarray, np.ndarray] | None = None) -> Volume:
    """An empty (uint8) RAS-aligned grid with isotropic ``spacing_mm`` covering ``volume``'s voxel centres
    (or the RAS box ``bounds`` = (min, max))."""
    lo, hi = volume.bounds_ras() if bounds is None else (np.asarray(bounds[0], float), np.asarray(bounds[1], float))
    size = np.floor((hi - lo) / spacing_mm).astype(int) + 1
    return Volume(
        np.zeros(tuple(int(n) for n in size[::-1]), dtype=np.uint8),
        spacing=(spacing_mm,) * 3,
        origin=tuple(float(v) for v in lo),
        direction=np.eye(3),
    )


def resample_onto(
    source: Volume, reference: Volume, *, linear: bool, default: float = 0.0, dtype: type = np.float32
) -> np.ndarray:
    """``source`` resampled onto ``reference``'s grid (SimpleITK; RAS geometry respected), as an array ``[k, j, i]``.

    ``linear`` picks linear interpolation (intensities, soft masks) or nearest neighbour (labels);
    points outside ``source`` get ``default``.
    """
    import SimpleITK as sitk

    src_array = np.asarray(source.array)
    if linear and src_array.dtype != np.float32:
        src_array = src_array.astype(np.float32)
    src = Volume(src_array, source.spacing, source.origin, source.direction).to_sitk()
    ref = reference.with_array(np.zeros(reference.shape, dtype=np.uint8)).to_sitk()
    interpolator = sitk.sitkLinear if linear else sitk.sitkNearestNeighbor
    out = sitk.Resample(src, ref, sitk.Transform(), interpolator, float(default), src.GetPixelID())
    return sitk.GetArrayFromImage(out).astype(dtype, copy=False)


def body_bounds(volume: Volume, threshold_hu: float, step_mm: float = 4.0) -> tuple[np.ndarray, np.ndarray] | None:
    """RAS box (min, max) of the voxels above ``threshold_hu`` (the patient), found on a coarse grid and
    widened by one coarse step; None when there are none."""
    coarse = working_grid(volume, step_mm)
    values = resample_onto(volume, coarse, linear=True, default=-1024.0)
    inside = np.argwhere(values > threshold_hu)
    if len(inside) == 0:
        return None
    lo = coarse.ijk_to_ras_points((inside.min(axis=0)[::-1] - 1).astype(float))[0]
    hi = coarse.ijk_to_ras_points((inside.max(axis=0)[::-1] + 1).astype(float))[0]
    full_lo, full_hi = volume.bounds_ras()
    return np.maximum(np.minimum(lo, hi), full_lo), np.minimum(np.maximum(lo, hi), full_hi)


def crop_volume(volume: Volume, lo_kji: tuple[int, int, int], hi_kji: tuple[int, int, int]) -> Volume:
    """The sub-grid ``[lo, hi)`` (array indices k, j, i) of ``volume`` with the matching origin."""
    lo = np.asarray(lo_kji)
    array = volume.array[lo[0] : hi_kji[0], lo[1] : hi_kji[1], lo[2] : hi_kji[2]]
    origin = volume.ijk_to_ras_points(lo[::-1].astype(float))[0]
    return Volume(array, volume.spacing, tuple(origin), volume.direction, is_label=volume.is_label, name=volume.name)
