"""Automatic segmentation of a lumbar T2-weighted MRI: dural sac, discs, vertebral bodies, levels.

:func:`segment_t2` works on any grid (sagittal series, thick axial stacks, 3D, oblique or
left-handed): it resamples the image onto a RAS-aligned working grid (:mod:`.t2_grid`), finds the
dural sac as the bright cranio-caudal tube and tracks it slice by slice (:mod:`.t2_sac`), finds the
discs and bodies in front of it and the sacrum at the sac's end (:mod:`.t2_levels`), names the
levels from the sacrum (:func:`~lumbarspine.anatomy.numbering.level_ids`; unnumbered without it)
and draws the sac on the image's own grid voxel by voxel (the per-slice thresholds of the working
grid applied to the original intensities, so partial volume is judged at the original voxels).

What it tells apart from the sac: subcutaneous fat (suppressed near the skin and as a sheet, not
a tube), epidural fat (the per-slice threshold lies between CSF and the next brightest tissue), disc
nuclei and bowel (short or flat, not a long tube), the coil bias field (divided out by a 20 mm
local mean for the detection; each slice's threshold is relative to its own CSF level). The cauda
equina rootlets inside the sac are filled in; where the spinal cord or the conus is clearly seen
as a dark tube inside the CSF (:func:`~.t2_sac.find_cord`) the sac is widened to hold it and the
cord gets label 1 (TotalSpineSeg's spinal cord), so the dural sac is labels 1 and 2 together, as
grading measures it. Discs and bodies are models (see :mod:`.t2_levels`); only the sac is voxel-exact.

Backend: the smoothing (the library's Gaussian filter) and the whole-volume array steps (local mean,
box filters, erosion / opening / dilation, skin distance map, peak search, column sampling, labelling
and hole filling of the sac) run on the ``backend`` switch through
:class:`~lumbarspine.anatomy.arrays.ArrayOps`; the SimpleITK resampling, the Otsu thresholds and the
per-slice 2D steps of the delineation stay on the CPU. The CuPy path is untested on a GPU and no speed-up
is claimed (see :mod:`.arrays`); on the NumPy backend the results are those of SciPy itself.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..backend import Backend
from ..labels import SACRUM, SPINAL_CANAL, SPINAL_CORD
from ..progress import CancelCallback, ProgressCallback, check_cancel
from ..volume import Volume, validate_scalar_volume
from .arrays import ArrayOps, numpy_ops, resolve_backend
from .build import anatomy_from_labels
from .components import largest_component
from .model import SpineAnatomy
from .numbering import level_ids
from .t2_grid import ras_work_grid, resample_to
from .t2_levels import find_levels, paint_levels
from .t2_sac import THICK_SLICE_MM, delineate_sac, track_sac, trim_track, tube_response

__all__ = ["segment_t2", "MIN_EXTENT_MM", "MISSING_LEVEL_FACTOR"]

MIN_EXTENT_MM = 40.0
"""The image must cover at least this much (mm) front to back and top to bottom to hold a lumbar canal."""
MISSING_LEVEL_FACTOR = 1.6
"""When two neighbouring discs are further apart than this many median spacings, a level may have been
missed, and counting from the sacrum would name every level above it wrongly: the levels stay unnumbered."""


def _report(progress: ProgressCallback | None, fraction: float, message: str) -> None:
    if progress is not None:
        progress(float(fraction), message)


def _smoother(backend: Backend, spacing: tuple[float, float, float]):  # type: ignore[no-untyped-def]
    """Isotropic Gaussian (sigma in mm) through the library's filter, on the chosen backend."""
    from ..filters import apply_filter

    def smooth(array: np.ndarray, sigma_mm: float) -> np.ndarray:
        vol = Volume(array=np.asarray(array, dtype=np.float32), spacing=spacing)
        return np.asarray(apply_filter(vol, "gaussian", sigma=float(sigma_mm), backend=backend).volume.array)

    return smooth


def segment_t2(
    volume: Volume,
    *,
    seed_ras=None,  # type: ignore[no-untyped-def]
    backend: str | Backend | None = "auto",
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
) -> SpineAnatomy:
    """Find the dural sac, discs, vertebral bodies and levels in a lumbar T2-weighted MRI.

    Args:
        volume: the T2 image (any grid orientation and spacing); never modified.
        seed_ras: optional point ``(R, A, S)`` in mm inside the canal (a markups point); the sac's
            track is forced through it.
        backend: ``"auto"``, ``"cupy"``, ``"numpy"`` (:data:`~lumbarspine.backend.BACKEND_CHOICES`;
            legacy ``"cpu"`` / ``"gpu"`` are mapped), ``None`` (``LUMBARSPINE_BACKEND``) or a
            :class:`~lumbarspine.backend.Backend`: where the smoothing and the array steps run.
        progress: ``progress(fraction, message)``.
        cancel: ``cancel() -> bool``; True stops with :class:`~lumbarspine.progress.OperationCancelled`.

    Returns:
        :class:`~lumbarspine.anatomy.model.SpineAnatomy` (modality ``"t2"``, source ``"automatic t2"``):
        label 2 the dural sac (CSF and rootlets), label 1 the spinal cord / conus inside it where seen, discs and bodies with TotalSpineSeg ids numbered from the sacrum
        when it is seen (sacrum 50), otherwise unnumbered ids and a warning.

    Raises:
        ValueError: not a 3D scalar image, too small a field of view, a seed outside the image, or
            no dural sac found (the message says what to check).
    """
    if not isinstance(volume, Volume):
        raise ValueError(f"segment_t2 expects a lumbarspine Volume; got {type(volume).__name__}.")
    if volume.is_label:
        raise ValueError("segment_t2 needs the T2 image, not a label map.")
    validate_scalar_volume(volume, what="T2 image")
    backend = resolve_backend(backend)
    lo, hi = volume.bounds_ras()
    if np.any(hi - lo < MIN_EXTENT_MM * np.array([0.0, 1.0, 1.0])) or np.max(hi - lo) < 2 * MIN_EXTENT_MM:
        raise ValueError(
            f"The image covers only {np.round(hi - lo, 1).tolist()} mm (R, A, S); a lumbar T2 needs at least "
            f"{MIN_EXTENT_MM:.0f} mm front to back and top to bottom."
        )
    arr = np.asarray(volume.array, dtype=np.float32)
    if float(np.percentile(arr, 99.5)) <= float(np.percentile(arr, 1.0)):
        raise ValueError("The T2 image is flat (no contrast): nothing to segment.")
    seed = None
    if seed_ras is not None:
        seed = np.asarray(seed_ras, dtype=float).reshape(-1)
        if seed.size != 3 or not np.all(np.isfinite(seed)):
            raise ValueError(f"seed_ras must be one RAS point (R, A, S) in mm; got {seed_ras!r}.")
        if np.any(seed < lo - 1.0) or np.any(seed > hi + 1.0):
            raise ValueError(f"The seed point {seed.tolist()} (RAS mm) lies outside the image.")

    _report(progress, 0.0, "Resampling onto a RAS-aligned working grid")
    work, valid = ras_work_grid(volume)
    h = work.spacing[0]
    check_cancel(cancel, "T2 segmentation")

    _report(progress, 0.15, "Looking for the bright cranio-caudal tube (dural sac)")
    smooth = _smoother(backend, work.spacing)
    ops = ArrayOps(backend)
    resp, _ = tube_response(work.array, valid, h, smooth, ops=ops)
    check_cancel(cancel, "T2 segmentation")

    _report(progress, 0.35, "Tracking the dural sac slice by slice")
    seed_zyx = None
    if seed is not None:
        ijk = work.ras_to_ijk_points(seed[None, :])[0]
        seed_zyx = ijk[::-1]
    track = trim_track(work.array, track_sac(resp, h, seed_zyx, ops=ops), h)
    check_cancel(cancel, "T2 segmentation")

    _report(progress, 0.5, "Delineating the dural sac")
    thick = float(max(volume.spacing)) >= THICK_SLICE_MM
    mask, thr, csf, cord = delineate_sac(work.array, track, h, raise_to_half_max=thick)
    if mask.sum() * h**3 < 2000.0:
        raise ValueError(
            "The dural sac found is implausibly small (under 2 cm3): the image may not show the lumbar canal "
            "on T2. Give a seed point inside the canal or check the series."
        )
    check_cancel(cancel, "T2 segmentation")

    _report(progress, 0.65, "Finding discs, vertebral bodies and the sacrum")
    levels = find_levels(work.array, valid, mask, track, h, ops=ops)
    if not levels.disc_s:
        raise ValueError(
            "The bright tube found has no intervertebral disc in front of it, so it is not taken for the dural "
            "sac: the image may not show the lumbar canal on T2 (or only a few slices of it). Check the series, "
            "or give a seed point inside the canal."
        )
    warnings = list(levels.notes)
    n_discs = len(levels.disc_s)
    n_vert = n_discs + (0 if levels.sacrum else 1) if n_discs else 0
    sacrum = levels.sacrum
    if sacrum and n_discs >= 3:
        spacing = -np.diff(levels.disc_s)
        if spacing.max() > MISSING_LEVEL_FACTOR * np.median(spacing):
            sacrum = False
            n_vert += 1
            warnings.append(
                "Two discs found are much further apart than the others: a level may be missing between them, "
                "so the levels are not numbered from the sacrum."
            )
    vert_ids, disc_ids, numbering, notes = level_ids(n_vert, n_discs, sacrum=sacrum)
    warnings.extend(notes)
    work_labels = paint_levels(work.shape, valid, levels, h, disc_ids, vert_ids, SACRUM if sacrum else None)
    check_cancel(cancel, "T2 segmentation")

    _report(progress, 0.8, "Drawing the dural sac on the image's own grid")
    labels = resample_to(work_labels, work, volume, linear=False).astype(np.uint16)
    sac = _sac_on_image_grid(volume, work, mask, thr, ops)
    labels[labels == SPINAL_CANAL] = 0
    labels[sac] = SPINAL_CANAL
    if cord.any():
        cord_img = resample_to(cord.astype(np.float32), work, volume, linear=True) >= 0.5
        labels[cord_img & sac] = SPINAL_CORD
    label_vol = volume.with_array(labels, is_label=True, name=f"{volume.name or 'image'}_t2_labels")
    _report(progress, 0.95, "Building the anatomy")
    anatomy = anatomy_from_labels(
        label_vol, modality="t2", numbering=numbering, source="automatic t2", warnings=warnings
    )
    _report(progress, 1.0, "Done")
    return anatomy


def _sac_on_image_grid(
    volume: Volume, work: Volume, mask: np.ndarray, thr: np.ndarray, ops: ArrayOps | None = None
) -> np.ndarray:
    """The sac on the image's grid: the working grid's per-slice thresholds on the original intensities.

    Allowed region: the working-grid sac dilated by 2 mm; holes of the working-grid sac (rootlets,
    conus) are kept; the largest connected part is returned, its enclosed holes filled. The 3D dilation,
    labelling and hole filling run on ``ops``' backend (NumPy by default), the per-slice fills on SciPy.
    """
    ops = ops or numpy_ops()
    h = work.spacing[0]
    on = ~np.isnan(thr)
    zs = np.arange(len(thr))
    tz = np.interp(zs, zs[on], thr[on]) if on.any() else np.full(len(thr), np.inf)
    tfield = np.broadcast_to(tz[:, None, None], work.shape).astype(np.float32)
    allowed = ops.binary_dilation(mask, iterations=max(1, int(round(2.0 / h))))
    filled = np.zeros_like(mask)
    for z in np.nonzero(mask.any(axis=(1, 2)))[0]:
        filled[z] = ndimage.binary_fill_holes(mask[z])
    holes = filled & (work.array < tfield)
    t_img = resample_to(tfield, work, volume, linear=True, fill=np.inf)
    allowed_img = resample_to(allowed.astype(np.float32), work, volume, linear=True) >= 0.5
    mask_img = resample_to(mask.astype(np.float32), work, volume, linear=True) >= 0.5
    holes_img = resample_to(holes.astype(np.float32), work, volume, linear=True) >= 0.5
    img = np.asarray(volume.array, dtype=np.float32)
    sac = ((img >= t_img) & allowed_img) | (holes_img & mask_img)
    return ops.binary_fill_holes(largest_component(sac, ops=ops))
