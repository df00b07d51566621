"""Sub-voxel bone for planning on a coarse CT: the vertebra's label refined by the CT's HU on a finer grid.

On a routine 3 mm CT a lumbar pedicle (7-18 mm wide, clinical-reference.md) is only 2-4 voxels of the
label map, and a binary label loses what partial volume still shows in the HU: a voxel half filled
with cortex reads several hundred HU. When the planner is given the CT (:class:`PlanningMaps` with
``image``) and the label map is coarser than :data:`REFINE_ABOVE_SPACING_MM`, each vertebra's bone is
rebuilt on a working grid of :data:`WORKING_SPACING_MM` (same orientation as the label map, over the
vertebra's bounding box grown by :data:`CROP_MARGIN_MM`):

1. **Label-aware upsampling**: the signed distance map (mm) of the vertebra's label and that of all the
   *other* bone labels are interpolated trilinearly onto the working grid. The vertebra's **territory**
   is where it is the nearer bone label and at most :data:`TERRITORY_MM` (one coarse voxel) outside its
   own label: partial volume can hide about one voxel of bone, no more, and a neighbour's bone
   (facet joints, the next vertebra) is never taken.
2. **HU refinement**: in that territory a working voxel is bone where the CT, interpolated linearly
   on its own grid, reaches the half-maximum edge: half-way between :data:`SOFT_TISSUE_HU` and the
   largest HU within :data:`EDGE_WINDOW_MM`, but at least :data:`BONE_HU` (250 HU; see there), or where it lies at least
   :data:`CORE_DEPTH_VOXELS` coarse voxels inside the label (the cancellous interior, 100-300 HU and
   lower in osteoporosis, is bone because the label says so, not by its HU), or inside the label where
   the CT reaches :data:`LABEL_RIM_MIN_HU`. Enclosed holes are filled and only the pieces that touch
   the label are kept. So the label's rim follows the CT (out where a half-filled voxel still holds
   cortex, in where the label overreaches into the canal, fat or muscle).
3. The result is a :class:`lumbarspine.planning.distance.DistanceMap` on the working grid (signed mm,
   positive in bone) and a smoothed field for chord lengths, both sampled at RAS points as before, so
   the pedicle sections, the screw's fit and the Gertzbein-Robbins breach are all measured on the same
   refined bone.

Independently of the labels, the CT alone marks bone on the same working grid where its HU reaches
:data:`MARROW_MIN_HU` (above CSF, fat and muscle) or inside :func:`hu_bone_mask` (HU >= :data:`BONE_HU`
closed, enclosed marrow filled); :func:`lumbarspine.planning.evaluate.evaluate_screw` reports the share of
the screw's surface there (``surface_in_hu_bone_fraction``), an HU-based check that a planned screw stays
out of the canal and the soft tissue. It is coarse: a 3 mm voxel half bone, half muscle also passes it.

Without an image, or with a fine label map, nothing here is used and planning runs on the labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..volume import Volume
from .distance import DistanceMap, mask_box, signed_distance_map

__all__ = [
    "BONE_HU",
    "MARROW_MIN_HU",
    "WORKING_SPACING_MM",
    "REFINE_ABOVE_SPACING_MM",
    "TERRITORY_MM",
    "CORE_DEPTH_VOXELS",
    "LABEL_RIM_MIN_HU",
    "RefinedBone",
    "refined_bone",
    "hu_bone_mask",
    "refines",
]

BONE_HU = 250.0
"""HU at or above which a voxel of the CT holds bone at its surface. Cortical bone is 500-2000 HU and
trabecular bone 100-300 HU (MIMICS bone segmentation, AISOBE 2012 proceedings); a cortex blurred by
partial volume reads a mean of about 300-560 HU in a clinical CT (teleradphysics.com, "What is the HU of
bone?", 2019), and the soft tissue around the spine 40-60 HU; 250 HU is about half-way between muscle
and such a blurred cortex (the half-maximum edge), the same value as the project's CT segmentation
(:data:`lumbarspine.anatomy.ct_bone.CORTICAL_BONE_HU`)."""
SOFT_TISSUE_HU = 40.0
"""Muscle / soft tissue around the spine (HU, 40-60), the low end of the half-maximum edge."""
EDGE_WINDOW_MM = 3.0
"""The half-maximum edge is taken from the largest HU within this distance (mm, about one 3 mm voxel)."""
MARROW_MIN_HU = 60.0
"""A hole enclosed by bone (in a slice of the working grid) whose median HU is at least this is marrow
(osteoporotic cancellous bone is 50-150 HU) and filled; CSF (0-15 HU) and epidural fat (-100 HU) in the
canal stay open (the same value as :data:`lumbarspine.anatomy.ct_bone.MARROW_MIN_HU`)."""
WORKING_SPACING_MM = 0.75
"""Spacing (mm) of the working grid (at most the label map's own spacing on each axis)."""
REFINE_ABOVE_SPACING_MM = 1.5
"""The bone is refined only when the label map's largest spacing exceeds this (mm): on finer grids a
pedicle spans 5 or more voxels and the labels alone plan it (the phantom tests: 0.9-2 mm)."""
TERRITORY_MM = 3.0
"""Bone found by HU counts for the vertebra at most this far (mm) outside its label: about one voxel of a
3 mm CT, the most that partial volume can hide. Grows to the label map's largest spacing if coarser."""
CORE_DEPTH_VOXELS = 0.5
"""Working voxels this many coarse voxels (or more) inside the label are bone whatever their HU (the
cancellous interior); the outer half voxel of the label is kept only where the HU says bone."""
LABEL_RIM_MIN_HU = 60.0
"""The outer half voxel of the label stays bone where the CT reaches this (HU, = :data:`MARROW_MIN_HU`): above
the canal's CSF (0-15 HU), fat and most muscle (40-60 HU), as low as osteoporotic cancellous bone (50-150
HU). Measured on the real 3 mm CT (``totalseg_example_ct``, bodies' cancellous median 102-161 HU), with a fixed
250 HU edge: 9 of 12 sides planned at 60 HU, 3 at 100 HU (the rim of low-density bone trimmed away), 6 with
no trimming (8 of 12 at 60 HU with the half-maximum edge)."""
CROP_MARGIN_MM = 8.0
"""Space (mm) kept around the vertebra's label on the working grid."""
SURFACE_SMOOTHING_VOXELS = 0.7
"""Gaussian sigma (working voxels) of the smoothed field whose 0.5 level gives the surface for chords."""


@dataclass(frozen=True, eq=False)
class RefinedBone:
    """One vertebra's refined bone on its working grid.

    Attributes:
        sdf: signed distance (mm, positive in bone) to the refined bone.
        surface: a field whose zero level is the refined surface, smoothed (values are not distances).
        hu_bone: the label-free HU bone (:func:`hu_bone_mask`) on the same working grid.
        grid: the working grid (its array is the refined bone mask, uint8).
    """

    sdf: DistanceMap
    surface: DistanceMap
    hu_bone: DistanceMap
    grid: Volume


def looks_like_ct(image: Volume) -> bool:
    """True for an image in HU: air or fat below -200 HU and bone above :data:`BONE_HU` present."""
    array = np.asarray(image.array)
    if array.size == 0 or not np.issubdtype(array.dtype, np.number):
        return False
    return bool(float(np.min(array)) < -200.0 and float(np.max(array)) > BONE_HU)


def refines(labels: Volume, image: Volume | None) -> bool:
    """Whether planning on ``labels`` with ``image`` uses the refined bone (see the module docstring)."""
    return image is not None and max(labels.spacing) > REFINE_ABOVE_SPACING_MM and looks_like_ct(image)


def _working_grid(labels: Volume, box: tuple[slice, slice, slice]) -> tuple[Volume, np.ndarray, np.ndarray]:
    """The working grid over the coarse crop ``box`` (``[k, j, i]`` slices): same direction, finer spacing;
    with the continuous coarse ``(k, j, i)`` index of its first voxel centre and its step (coarse voxels)."""
    spacing = np.asarray(labels.spacing, float)
    fine = np.minimum(spacing, WORKING_SPACING_MM)
    lo = np.array([box[2].start, box[1].start, box[0].start], float) - 0.5  # coarse voxel faces, (i, j, k)
    hi = np.array([box[2].stop, box[1].stop, box[0].stop], float) - 0.5
    n = np.maximum(np.floor((hi - lo) * spacing / fine).astype(int), 1)
    first = lo + 0.5 * fine / spacing  # continuous coarse index of the first working voxel centre
    origin = labels.ijk_to_ras_points(first[None])[0]
    grid = Volume(
        np.zeros((n[2], n[1], n[0]), np.uint8),
        spacing=tuple(fine),
        origin=tuple(origin),
        direction=labels.direction,
        is_label=True,
        name="working grid",
    )
    return grid, first[::-1].copy(), (fine / spacing)[::-1].copy()


def _resample(
    array: np.ndarray, first_kji: np.ndarray, step_kji: np.ndarray, shape: tuple[int, ...], cval: float | None
) -> np.ndarray:
    """``array`` (coarse ``[k, j, i]``) trilinear at the working voxel centres (an axis-aligned scaling);
    outside it the nearest edge value (``cval`` None) or ``cval``."""
    from scipy import ndimage

    return ndimage.affine_transform(
        np.asarray(array, np.float32),
        np.asarray(step_kji, float),
        offset=np.asarray(first_kji, float),
        output_shape=shape,
        order=1,
        mode="nearest" if cval is None else "constant",
        cval=0.0 if cval is None else cval,
    )


def _sample_coarse(values: DistanceMap, first_kji: np.ndarray, step_kji: np.ndarray, shape: tuple[int, int, int]):
    return _resample(values.values, first_kji - np.asarray(values.start_kji, float), step_kji, shape, None)


def _sample_image(image: Volume, grid: Volume, labels: Volume, first_kji, step_kji) -> np.ndarray:
    """The CT (HU) at the working voxel centres, trilinear on its own grid; -1024 outside it."""
    from scipy import ndimage

    if image.same_geometry(labels):
        return _resample(image.array, first_kji, step_kji, grid.shape, -1024.0)
    kk, jj, ii = np.indices(grid.shape).reshape(3, -1)
    ras = grid.ijk_to_ras_points(np.stack([ii, jj, kk], axis=1).astype(float))
    ijk = image.ras_to_ijk_points(ras)
    array = np.asarray(image.array, np.float32)
    return ndimage.map_coordinates(array, ijk[:, ::-1].T, order=1, mode="constant", cval=-1024.0).reshape(grid.shape)


def _fill_marrow(bone: np.ndarray, hu: np.ndarray) -> np.ndarray:
    """``bone`` with the holes it encloses in its ``k`` slices filled where their median HU >= MARROW_MIN_HU."""
    from scipy import ndimage

    out = bone.copy()
    for k in range(bone.shape[0]):
        holes, n = ndimage.label(ndimage.binary_fill_holes(bone[k]) & ~bone[k])
        if n == 0:
            continue
        medians = ndimage.median(hu[k], holes, index=np.arange(1, n + 1))
        keep = np.flatnonzero(np.asarray(medians) >= MARROW_MIN_HU) + 1
        out[k] |= np.isin(holes, keep)
    return out


def hu_bone_mask(hu: np.ndarray, spacing_mm: float = WORKING_SPACING_MM, gap_mm: float = 1.5) -> np.ndarray:
    """Bone of a CT alone (no labels): HU >= :data:`BONE_HU`, closed over gaps up to ``gap_mm`` (a thin cortex
    dips below the threshold on a coarse CT), with the marrow enclosed in a slice filled (median HU >=
    :data:`MARROW_MIN_HU`; the canal's CSF and fat stay open). ``hu``: ``[k, j, i]`` HU on a grid of
    ``spacing_mm``."""
    from scipy import ndimage

    hu = np.asarray(hu)
    r = max(int(round(gap_mm / spacing_mm)), 1)
    zz, yy, xx = np.indices((2 * r + 1,) * 3) - r
    ball = zz**2 + yy**2 + xx**2 <= r * r
    dense = ndimage.binary_closing(np.pad(hu >= BONE_HU, r), structure=ball)[r:-r, r:-r, r:-r]
    return _fill_marrow(dense, hu)


def refined_bone(labels: Volume, label: int, image: Volume, bone_labels: tuple[int, ...]) -> RefinedBone:
    """Vertebra ``label``'s bone refined by the CT's HU on a working grid (see the module docstring).

    Args:
        labels: the label map (coarse).
        label: the vertebra's id.
        image: the CT in HU (any grid; sampled at RAS points).
        bone_labels: ids of all the bone labels (vertebrae, sacrum), ``label`` among them or not.

    Raises:
        ValueError: ``label`` is not in the label map.
    """
    from scipy import ndimage

    array = np.asarray(labels.array)
    mine = array == label
    if not mine.any():
        raise ValueError(f"Label {label} is not in the label map: no vertebra to refine.")
    spacing_kji = np.asarray(labels.spacing[::-1], float)
    voxel = float(max(labels.spacing))
    territory_mm = max(TERRITORY_MM, voxel)
    box = mask_box(mine, spacing_kji, CROP_MARGIN_MM)
    assert box is not None
    grid, first_kji, step_kji = _working_grid(labels, box)
    shape = grid.shape
    own = signed_distance_map(labels, mine, CROP_MARGIN_MM + territory_mm + 2 * voxel)
    d_own = _face_depth(_sample_coarse(own, first_kji, step_kji, shape), voxel)
    others = np.isin(array, np.asarray([b for b in bone_labels if b != label], dtype=array.dtype))
    if others[box].any():
        near = others & _grown(box, array.shape, 2 * voxel, spacing_kji)
        d_other = _face_depth(
            _sample_coarse(signed_distance_map(labels, near, 4 * voxel), first_kji, step_kji, shape), voxel
        )
    else:
        d_other = np.full(shape, -np.inf, np.float32)
    hu = _sample_image(image, grid, labels, first_kji, step_kji)
    territory = (d_own >= -territory_mm) & (d_own >= d_other)
    core = d_own >= CORE_DEPTH_VOXELS * voxel
    # the edge at half the local maximum (a dense cortex blurred over a voxel: its half-maximum lies on its
    # surface), never below BONE_HU
    reach = max(int(round(EDGE_WINDOW_MM / float(min(grid.spacing)))), 1)
    local_max = ndimage.maximum_filter(hu, size=2 * reach + 1)
    edge = np.maximum(BONE_HU, 0.5 * (local_max + SOFT_TISSUE_HU))
    bone = territory & ((hu >= edge) | core | ((d_own >= 0) & (hu >= LABEL_RIM_MIN_HU)))
    bone = ndimage.binary_fill_holes(bone)
    pieces, n = ndimage.label(bone)
    if n > 1:
        touching = np.unique(pieces[(d_own >= 0) & bone])
        bone = np.isin(pieces, touching[touching > 0])
    if not bone.any():
        bone = d_own >= 0
    bone_grid = grid.with_array(bone.astype(np.uint8))
    sdf = signed_distance_map(bone_grid, bone)
    smooth = ndimage.gaussian_filter(bone.astype(np.float32), SURFACE_SMOOTHING_VOXELS) - 0.5
    surface = DistanceMap(values=smooth, start_kji=(0, 0, 0), grid=bone_grid, touches_border=sdf.touches_border)
    hu_only = (hu_bone_mask(hu, float(min(grid.spacing))) | (hu >= MARROW_MIN_HU)).astype(np.float32)
    hu_map = DistanceMap(values=hu_only, start_kji=(0, 0, 0), grid=bone_grid)
    return RefinedBone(sdf=sdf, surface=surface, hu_bone=hu_map, grid=bone_grid)


def _face_depth(d: np.ndarray, voxel: float) -> np.ndarray:
    """Signed depth (mm) below the label's voxel faces from its voxel-centre distance map ``d`` (mm): the map
    is 0 on the faces and +-``voxel`` at the centres next to them, then grows 1 mm per mm."""
    d = np.asarray(d, np.float32)
    return np.where(np.abs(d) <= voxel, 0.5 * d, np.sign(d) * (np.abs(d) - 0.5 * voxel)).astype(np.float32)


def _grown(
    box: tuple[slice, slice, slice], shape: tuple[int, ...], pad_mm: float, spacing_kji: np.ndarray
) -> np.ndarray:
    """A boolean array of ``shape``, True in ``box`` grown by ``pad_mm``."""
    out = np.zeros(shape, bool)
    pad = np.ceil(pad_mm / spacing_kji).astype(int)
    out[
        tuple(
            slice(max(int(s.start) - int(p), 0), min(int(s.stop) + int(p), int(n))) for s, p, n in zip(box, pad, shape)
        )
    ] = True
    return out
