"""Automatic CT segmentation of the lumbar spine: vertebrae, sacrum, discs and the spinal canal.

:func:`segment_ct` takes a CT volume in Hounsfield units (any grid: oblique, anisotropic,
left-handed) and returns a :class:`~lumbarspine.anatomy.model.SpineAnatomy`:

* vertebrae (body with pedicles, laminae and processes) as separate labels, numbered from the
  sacrum when it is in the field of view (L1..L5 = 41..45, T12.. above, sacrum 50) and unnumbered
  (300 + n from the top, with a warning) when it is not: the level names are never guessed;
* discs (soft tissue between two consecutive bodies) with the matching disc ids;
* sub-regions of every vertebra (``anatomy.subregions``, SPINEPS codes as an imported SPINEPS map:
  50 body, 51/52 pedicle left/right, 42 spinous process, 43/44 transverse, 45/46 superior and 47/48
  inferior articular process left/right, 41 the laminae and pars) from their position in the spine
  frame (:func:`.ct_levels._subregions`; the sacrum: body, pedicles, superior articular processes,
  median crest);
* the spinal canal (label 2): the space enclosed by each vertebral foramen, bridged across the disc
  levels by interpolation and joined into one tube; its centreline comes from
  :func:`~lumbarspine.anatomy.build.canal_centreline`.

Method, one module per step (each documents its thresholds with their sources):

1. :mod:`.ct_grid`: resample to an isotropic RAS-aligned working grid (linear, SimpleITK).
2. :mod:`.ct_bone`: bone by HU (cortical and cancellous thresholds), enclosed marrow filled.
3. :mod:`.ct_canal`: the canal from the axial rings of bone, tracked cranio-caudally.
4. :mod:`.ct_levels`: disc levels from the HU profile in front of the canal, vertebrae by a
   watershed seeded in the bodies (posterior elements reach their own body through the pedicles),
   sacrum test, discs.
5. Labels mapped back onto the input grid (nearest neighbour) and handed to
   :func:`~lumbarspine.anatomy.build.anatomy_from_labels`.

The working-grid labels are nearest-neighbour resampled onto the input grid; on a grid much finer
than the working spacing the boundaries are therefore as coarse as the working grid (give
``working_spacing_mm`` to refine, at a cost in time).

Backend: the whole-volume array steps of 2-4 (Gaussian, morphology, labelling, distance maps) run on
the ``backend`` switch through :class:`~lumbarspine.anatomy.arrays.ArrayOps` (``scipy.ndimage`` or
``cupyx.scipy.ndimage``); resampling (SimpleITK), the watershed and convex hulls (scikit-image) and the
small per-slice steps run on the CPU on every backend. The CuPy path is untested on a GPU and no speed-up
is claimed (see :mod:`.arrays`); on the NumPy backend the results are those of SciPy itself.
"""

from __future__ import annotations

import numpy as np

from ..backend import Backend
from ..labels import SPINAL_CANAL
from ..progress import CancelCallback, ProgressCallback, check_cancel
from ..volume import Volume, validate_scalar_volume
from .arrays import ArrayOps, resolve_backend
from .build import anatomy_from_labels
from .ct_bone import body_midline, bone_mask
from .ct_canal import find_canal
from .ct_grid import body_bounds, crop_volume, resample_onto, working_grid, working_spacing
from .ct_levels import spine_frame, split_levels
from .model import SpineAnatomy
from .numbering import level_ids

__all__ = ["segment_ct", "CT_MIN_BONE_VOXELS"]

BODY_HU = -400.0
"""Voxels above this (HU) are the patient (air is -1000); the work is cropped to their bounding box."""
CT_MIN_BONE_VOXELS = 200
"""Fewer bone voxels than this on the working grid: the image is not a CT of the spine."""


def _report(progress: ProgressCallback | None, fraction: float, message: str) -> None:
    if progress is not None:
        progress(float(fraction), message)


def segment_ct(
    volume: Volume,
    *,
    backend: str | Backend | None = "auto",
    working_spacing_mm: float | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
) -> SpineAnatomy:
    """Vertebrae, sacrum, discs and spinal canal of a lumbar CT (HU), as a :class:`SpineAnatomy`.

    Args:
        volume: CT in Hounsfield units, any grid (the input is not modified).
        backend: ``"auto"``, ``"cupy"``, ``"numpy"`` (:data:`~lumbarspine.backend.BACKEND_CHOICES`;
            the legacy ``"cpu"`` / ``"gpu"`` are mapped to ``"numpy"`` / ``"cupy"``), ``None``
            (``LUMBARSPINE_BACKEND``) or a :class:`~lumbarspine.backend.Backend`.
        working_spacing_mm: isotropic spacing of the working grid (mm); default: the input's mean
            voxel size clipped to 1-2 mm (:data:`~lumbarspine.anatomy.ct_grid.WORKING_SPACING_RANGE_MM`).
        progress: ``progress(fraction, message)`` callback.
        cancel: ``cancel() -> bool``; True stops with :class:`~lumbarspine.progress.OperationCancelled`.

    Returns:
        The anatomy (``modality="ct"``, ``source="automatic ct"``), labels on the input grid.

    Raises:
        ValueError: not a scalar volume, not in HU (no bone), or no spinal canal / vertebra found.
    """
    validate_scalar_volume(volume, what="CT volume")
    backend = resolve_backend(backend)
    if volume.is_label:
        raise ValueError("segment_ct needs a CT image in HU, not a label map.")
    array = np.asarray(volume.array)
    if float(np.max(array)) < 200.0 or float(np.min(array)) > -200.0:
        raise ValueError(
            f"The volume does not look like a CT in Hounsfield units (values {float(np.min(array)):.0f} to "
            f"{float(np.max(array)):.0f}; bone is above 200 HU and air/fat below -200 HU). Rescale it to HU "
            "(slope/intercept) or use the T2 MRI path."
        )
    _report(progress, 0.0, "Resampling to the working grid")
    # work only on the patient's body (air around it and the empty corners of an oblique grid cost time)
    bounds = body_bounds(volume, BODY_HU)
    spacing = working_spacing(volume, working_spacing_mm, bounds)
    grid = working_grid(volume, spacing, bounds)
    hu = resample_onto(volume, grid, linear=True, default=-1024.0)
    check_cancel(cancel, "CT segmentation")

    _report(progress, 0.15, "Bone mask")
    ops = ArrayOps(backend)
    bone, generous, smooth = bone_mask(hu, spacing, ops=ops)
    if int(bone.sum()) < CT_MIN_BONE_VOXELS:
        raise ValueError("No bone found in the CT (fewer than 200 voxels above the bone thresholds).")
    midline = body_midline(smooth, spacing, ops=ops)
    check_cancel(cancel, "CT segmentation")

    _report(progress, 0.35, "Spinal canal")
    canal = find_canal(generous, smooth, spacing, midline, solid=bone, ops=ops)
    if canal is None or len(canal.centres) < 10:
        raise ValueError(
            "No spinal canal was found: no chain of bony rings (vertebral foramina) near the midline. "
            "Is this a CT of the spine in HU with the vertebrae in the field of view?"
        )
    check_cancel(cancel, "CT segmentation")

    _report(progress, 0.5, "Vertebrae and discs")
    frame = spine_frame(canal.centres)
    ones = volume.with_array(np.ones(volume.shape, dtype=np.uint8), is_label=True)
    in_view = resample_onto(ones, grid, linear=False, default=0, dtype=np.uint8).astype(bool)
    levels = split_levels(bone, smooth, canal.mask, frame, spacing, in_view, hu=hu, ops=ops)
    if levels.n_vertebrae == 0:
        raise ValueError("No vertebral body was found in front of the spinal canal.")
    check_cancel(cancel, "CT segmentation")

    _report(progress, 0.8, "Numbering")
    n_mobile = levels.n_vertebrae - (1 if levels.sacrum else 0)
    n_discs = n_mobile if levels.sacrum else max(0, n_mobile - 1)
    vert_ids, disc_ids, numbering, notes = level_ids(n_mobile, n_discs, sacrum=levels.sacrum)
    warnings = list(levels.warnings) + notes
    lut_v = np.zeros(levels.n_vertebrae + 1, dtype=np.uint16)
    lut_v[1 : n_mobile + 1] = vert_ids
    if levels.sacrum:
        lut_v[levels.n_vertebrae] = 50
    lut_d = np.zeros(levels.n_vertebrae + 1, dtype=np.uint16)
    lut_d[1 : len(disc_ids) + 1] = disc_ids
    labels_work = lut_v[levels.vertebrae]
    disc_voxels = (levels.discs > 0) & (labels_work == 0)
    labels_work[disc_voxels] = lut_d[levels.discs[disc_voxels]]
    labels_work[canal.mask & (labels_work == 0)] = SPINAL_CANAL
    check_cancel(cancel, "CT segmentation")

    _report(progress, 0.9, "Labels onto the input grid")
    nz = np.argwhere(labels_work > 0)
    lo = np.maximum(nz.min(axis=0) - 2, 0)
    hi = np.minimum(nz.max(axis=0) + 3, labels_work.shape)
    cropped = crop_volume(grid.with_array(labels_work, is_label=True), tuple(lo), tuple(hi))
    out = resample_onto(cropped, volume, linear=False, default=0, dtype=np.uint16)
    labels = Volume(out, volume.spacing, volume.origin, volume.direction, is_label=True, name="ct_segmentation")
    if not np.any(out):
        raise ValueError("The segmentation is empty on the input grid.")
    subregions = None
    if levels.subregions is not None:
        sub_work = crop_volume(grid.with_array(levels.subregions, is_label=True), tuple(lo), tuple(hi))
        sub = resample_onto(sub_work, volume, linear=False, default=0, dtype=np.uint8)
        vertebra_voxels = np.zeros(out.shape, dtype=bool)
        for v_id in (*vert_ids, 50):
            vertebra_voxels |= out == v_id
        sub[~vertebra_voxels] = 0
        subregions = Volume(sub, volume.spacing, volume.origin, volume.direction, is_label=True, name="ct_subregions")
    anatomy = anatomy_from_labels(
        labels, modality="ct", numbering=numbering, source="automatic ct", warnings=warnings, subregions=subregions
    )
    _report(progress, 1.0, "Done")
    return anatomy
