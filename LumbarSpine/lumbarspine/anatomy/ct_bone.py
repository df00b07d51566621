"""Bone in CT: a filled bone mask, the thick cores of the vertebral bodies, and the spinal column.

Works on the isotropic RAS-aligned working grid (:mod:`.ct_grid`): arrays ``[S, A, R]``, spacing
``w`` mm on every axis.

Thresholds (Hounsfield units; typical values: cortical bone 700-1200 HU on thin-slice CT, healthy
cancellous bone 150-300 HU and 50-150 HU in osteoporosis, muscle 40-60 HU, disc 70-110 HU, CSF
0-15 HU, fat -100 HU; partial volume brings thin cortices down to 250-500 HU at 3 mm slices):

* :data:`CORTICAL_BONE_HU`: voxels at or above it are bone (cortex and dense trabeculae);
* :data:`CANCELLOUS_BONE_HU`: a voxel of the image smoothed with :data:`SMOOTH_SIGMA_MM` at or
  above it is bone (cancellous bone of normal density);
* :data:`MARROW_MIN_HU`: a hole enclosed by bone in an axial slice whose median (smoothed) HU is at
  or above it is marrow of low density (osteoporotic cancellous bone, fatty marrow) and filled;
  holes below it are the spinal canal (CSF, epidural fat) or other soft tissue and stay open.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from .arrays import numpy_ops
from .components import largest_component

if TYPE_CHECKING:
    from .arrays import ArrayOps

__all__ = [
    "CORTICAL_BONE_HU",
    "CANCELLOUS_BONE_HU",
    "MARROW_MIN_HU",
    "SMOOTH_SIGMA_MM",
    "RING_CLOSING_RADIUS_MM",
    "bone_mask",
    "in_plane_structure",
    "holes",
    "body_midline",
]

CORTICAL_BONE_HU = 250.0
"""HU at or above which a voxel is bone (cortex; thin cortices at 3 mm still exceed it)."""
CANCELLOUS_BONE_HU = 150.0
"""HU of the smoothed image at or above which a voxel is bone (normal cancellous bone is 150-300 HU)."""
MARROW_MIN_HU = 60.0
"""Median HU above which an enclosed axial hole is low-density marrow rather than canal (CSF 0-15, fat -100)."""
SOFT_TISSUE_HU = 40.0
"""Muscle / soft tissue around the spine (HU), the low end of the half-maximum edge threshold."""
EDGE_LAYER_MM = 2.0
"""Depth (mm) of the outer layer of the bone mask checked against the half-maximum threshold."""
EDGE_WINDOW_MM = 2.0
"""Half-size (mm) of the window in which the local bone maximum for the edge threshold is taken."""
GAP_HALF_WIDTH_MM = 1.0
"""Half-width (mm, at least one voxel) of the window that finds joint spaces (clefts up to ~2 voxels wide)."""
GAP_TOPHAT_HU = 200.0
"""A voxel at least this much darker (HU) than the closing of its neighbourhood, and below half maximum,
lies in a joint space between two bones and is not bone."""
SMOOTH_SIGMA_MM = 1.0
"""Gaussian smoothing (mm) of the image before the cancellous threshold (noise of 10-30 HU)."""
RING_CLOSING_RADIUS_MM = (5.0, 2.0, 2.0)
"""Closing radius (mm) in axial, coronal and sagittal planes: in each plane, gaps in a cortical ring up to
about twice this are bridged before the enclosed marrow is filled. Axial rings may be bridged
generously (a disc space is never inside an axial plane); in coronal and sagittal planes the radius
stays well under half a disc height so that two bodies and their disc never form one ring."""


def holes(mask: np.ndarray, axis: int | None = None, *, ops: ArrayOps | None = None) -> np.ndarray:
    """Background voxels enclosed by ``mask``: in 3D (``axis=None``) or within each plane normal to ``axis``.

    Same result as ``ndimage.binary_fill_holes(mask) & ~mask`` (with an in-plane structure for a
    plane), by labelling the background once instead of iterated dilations (much faster). The
    labelling runs on ``ops``' backend (:mod:`.arrays`, NumPy by default).
    """
    if axis is None:
        structure = ndimage.generate_binary_structure(3, 1)
        faces = (0, 1, 2)
    else:
        structure = np.expand_dims(ndimage.generate_binary_structure(2, 1), axis)
        structure = np.pad(structure, [(1, 1) if a == axis else (0, 0) for a in range(3)])
        faces = tuple(a for a in range(3) if a != axis)
    lab, n = (ops or numpy_ops()).label(~mask, structure=structure)
    if n == 0:
        return np.zeros(mask.shape, dtype=bool)
    outside = np.zeros(n + 1, dtype=bool)
    for a in faces:
        outside[np.unique(np.take(lab, 0, axis=a))] = True
        outside[np.unique(np.take(lab, -1, axis=a))] = True
    outside[0] = True
    return ~outside[lab]


def in_plane_structure() -> np.ndarray:
    """3x3x3 structuring element connecting only within an axial slice (4-connectivity)."""
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = ndimage.generate_binary_structure(2, 1)
    return structure


def bone_mask(
    hu: np.ndarray, spacing: float, *, ops: ArrayOps | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Filled bone mask, the same before the half-maximum edge step, and the smoothed image (HU).

    Bone = (HU >= :data:`CORTICAL_BONE_HU`) or (smoothed HU >= :data:`CANCELLOUS_BONE_HU`), closed by
    one voxel, with enclosed marrow filled: voxels of marrow-like HU (>= :data:`MARROW_MIN_HU`)
    inside closed shells in 3D and inside rings in axial, coronal and sagittal planes
    (:data:`RING_CLOSING_RADIUS_MM`). The surface is then put at half maximum: voxels of the outer
    :data:`EDGE_LAYER_MM` stay bone only when brighter than halfway between the local maximum (within
    :data:`EDGE_WINDOW_MM`) and :data:`SOFT_TISSUE_HU`; joint spaces (thin clefts darker than half
    maximum by :data:`GAP_TOPHAT_HU` under a closing) are opened again. Specks under 50 mm3 are dropped.

    The filters, morphology and labelling run on ``ops``' backend (:mod:`.arrays`, NumPy by default);
    arrays in and out are NumPy arrays.
    """
    ops = ops or numpy_ops()
    smooth = ops.gaussian_filter(hu, SMOOTH_SIGMA_MM / spacing, mode="nearest", truncate=3.0)
    seed = (hu >= CORTICAL_BONE_HU) | (smooth >= CANCELLOUS_BONE_HU)
    closed = ops.binary_closing(seed, structure=ndimage.generate_binary_structure(3, 1)) | seed
    filled = seed | (holes(closed, ops=ops) & (smooth >= MARROW_MIN_HU))
    marrow_like = smooth >= MARROW_MIN_HU
    for axis, radius_mm in zip((0, 1, 2), RING_CLOSING_RADIUS_MM):
        radius = max(1, int(round(radius_mm / spacing)))
        r = np.arange(-radius, radius + 1)
        disk2d = r[:, None] ** 2 + r[None, :] ** 2 <= radius**2 + 0.5
        disk = np.expand_dims(disk2d, axis)
        pad = [(radius, radius)] * 3
        pad[axis] = (0, 0)
        crop = tuple(slice(None) if a == axis else slice(radius, -radius) for a in range(3))
        ring = ops.binary_closing(np.pad(filled, pad), structure=disk)[crop] | filled
        filled |= holes(ring, axis, ops=ops) & marrow_like
    filled = ops.binary_closing(filled, structure=ndimage.generate_binary_structure(3, 1)) | filled
    # surface at half maximum: the outer layers keep only voxels brighter than halfway between the
    # local bone maximum and soft tissue (smoothing and closing would otherwise add a halo of 1-2 voxels)
    layers = max(1, int(round(EDGE_LAYER_MM / spacing)))
    shell = filled & ~ops.binary_erosion(filled, iterations=layers, border_value=1)
    size = 2 * max(1, int(round(EDGE_WINDOW_MM / spacing))) + 1
    local_max = ops.maximum_filter(hu, size=size)
    generous = filled.copy()
    half_max = hu >= 0.5 * (local_max + SOFT_TISSUE_HU)
    filled &= ~shell | half_max
    # joint spaces: thin dark clefts between two bright cortices (facet joints, touching processes) that the
    # closing bridged; a black top-hat one voxel wide finds them (marrow spaces are wider and stay)
    window = 2 * max(1, int(round(GAP_HALF_WIDTH_MM / spacing))) + 1
    cleft = ops.grey_closing(hu, size=(window,) * 3) - hu >= GAP_TOPHAT_HU
    filled &= ~(cleft & ~half_max)
    lab, n = ops.label(filled)
    if n:
        sizes = np.bincount(lab.ravel())
        small = sizes * spacing**3 < 50.0
        small[0] = False
        filled[small[lab]] = False
    return filled, generous, smooth


def body_midline(smooth: np.ndarray, spacing: float, *, ops: ArrayOps | None = None) -> float:
    """Right-left position (working-grid mm along R) of the patient's body: centroid of the largest
    region above -400 HU (air excluded)."""
    body = smooth > -400.0
    big = largest_component(body, ops=ops)
    if not big.any():
        return smooth.shape[2] * spacing / 2.0
    counts = big.sum(axis=(0, 1)).astype(float)
    return float((counts * np.arange(len(counts))).sum() / max(counts.sum(), 1.0) * spacing)
