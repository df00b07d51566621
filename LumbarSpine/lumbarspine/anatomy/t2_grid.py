"""The RAS-aligned working grid of the T2 segmentation, and the way back to the image's grid.

The T2 segmentation tracks the dural sac slice by slice along the patient's cranio-caudal axis, so
it works on a grid whose axes are the RAS axes whatever the image's orientation (sagittal series,
thick axial stacks, oblique or left-handed grids): the image is resampled (linear, SimpleITK) onto
an isotropic grid with direction = identity in RAS. Its array is indexed ``[z, y, x]`` =
``[S, A, R]``: axis 0 runs inferior -> superior, axis 1 posterior -> anterior, axis 2 left -> right
(patient's right is +x). Results go back to the image's own grid by resampling with the same exact
geometry (no shift: both grids map voxel indices to RAS mm through :class:`~lumbarspine.volume.Volume`).
"""

from __future__ import annotations

import numpy as np

from ..volume import Volume

__all__ = ["WORK_SPACING_MM", "MAX_WORK_VOXELS", "ras_work_grid", "resample_to"]

WORK_SPACING_MM = 1.0
"""Isotropic spacing of the working grid (mm) unless the field of view would make it too large."""

MAX_WORK_VOXELS = 12_000_000
"""The working grid's spacing grows above :data:`WORK_SPACING_MM` to stay under this many voxels."""


def _sitk():
    import SimpleITK as sitk

    return sitk


def ras_work_grid(volume: Volume, spacing_mm: float = WORK_SPACING_MM) -> tuple[Volume, np.ndarray]:
    """Resample ``volume`` onto an isotropic RAS-aligned grid covering its field of view.

    Returns ``(work, valid)``: ``work`` a float32 Volume with direction = identity (array
    ``[z, y, x]``, RAS), ``valid`` a boolean array on the same grid, True inside the image's
    field of view (the rest of ``work`` is 0 and must not be read as tissue).
    """
    sitk = _sitk()
    lo, hi = volume.bounds_ras()
    extent = hi - lo
    h = float(spacing_mm)
    n_vox = float(np.prod(extent / h + 1.0))
    if n_vox > MAX_WORK_VOXELS:
        h *= (n_vox / MAX_WORK_VOXELS) ** (1.0 / 3.0)
    size = [int(np.floor(e / h)) + 1 for e in extent]
    ref = Volume(
        array=np.zeros((size[2], size[1], size[0]), dtype=np.uint8),
        spacing=(h, h, h),
        origin=tuple(float(v) for v in lo),
        direction=np.eye(3),
    )
    src = volume.with_array(np.asarray(volume.array, dtype=np.float32), is_label=False).to_sitk()
    ref_img = ref.to_sitk()
    out = sitk.Resample(src, ref_img, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    ones = volume.with_array(np.ones(volume.shape, dtype=np.uint8), is_label=True).to_sitk()
    valid = sitk.Resample(ones, ref_img, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    work = ref.with_array(sitk.GetArrayFromImage(out).astype(np.float32), is_label=False)
    return work, sitk.GetArrayFromImage(valid).astype(bool)


def resample_to(array: np.ndarray, source: Volume, target: Volume, *, linear: bool, fill: float = 0.0) -> np.ndarray:
    """Resample an array on ``source``'s grid onto ``target``'s grid (both exact RAS geometries).

    ``linear=True`` interpolates linearly (float32 out), otherwise nearest neighbour (dtype kept as
    int32 for labels). Points outside ``source`` get ``fill``.
    """
    sitk = _sitk()
    if linear:
        src = source.with_array(np.asarray(array, dtype=np.float32), is_label=False).to_sitk()
        ref = target.with_array(np.zeros(target.shape, dtype=np.float32), is_label=False).to_sitk()
        out = sitk.Resample(src, ref, sitk.Transform(), sitk.sitkLinear, float(fill), sitk.sitkFloat32)
        return sitk.GetArrayFromImage(out)
    src = source.with_array(np.asarray(array, dtype=np.int32), is_label=True).to_sitk()
    ref = target.with_array(np.zeros(target.shape, dtype=np.int32), is_label=True).to_sitk()
    out = sitk.Resample(src, ref, sitk.Transform(), sitk.sitkNearestNeighbor, int(fill), sitk.sitkInt32)
    return sitk.GetArrayFromImage(out)
