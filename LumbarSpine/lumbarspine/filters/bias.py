"""N4 bias-field correction (SimpleITK ``N4BiasFieldCorrectionImageFilter``, on the CPU for both backends).

Neither CuPy nor cuCIM has N4, so this step always runs on the CPU through SimpleITK, also inside a
GPU pipeline (a preset does it on the host *before* the single upload). The field is fitted on a
copy shrunk by ``shrink_factor`` (per axis, capped so every axis keeps at least 4 voxels), then
evaluated on the full grid (``GetLogBiasFieldAsImage``) and divided out: ``out = in / exp(log_field)``.
The mask defaults to Otsu's foreground (``OtsuThreshold``, 200 bins) and is always restricted to
positive voxels (N4 works on log intensities). Tolerance: identical to calling SimpleITK the same way.
"""

from __future__ import annotations

import numpy as np

from ..volume import Volume
from ._core import FilterCancelled, RunContext, host_array


def n4_impl(
    volume: Volume,
    ctx: RunContext,
    *,
    shrink_factor: int = 4,
    iterations: int = 50,
    fitting_levels: int = 4,
    control_points: int = 4,
    convergence: float = 0.001,
    mask: Volume | None = None,
) -> Volume:
    import SimpleITK as sitk

    arr = np.ascontiguousarray(host_array(volume), dtype=np.float32)
    img = volume.with_array(arr).to_sitk()
    if mask is not None:
        if not isinstance(mask, Volume) or mask.shape != volume.shape:
            raise ValueError("n4: the mask must be a Volume on the same grid as the input (same shape).")
        m = np.asarray(host_array(mask)) != 0
    else:
        m = sitk.GetArrayFromImage(sitk.OtsuThreshold(img, 0, 1, 200)) != 0
    m &= arr > 0
    if int(m.sum()) < 16:
        raise ValueError("n4: fewer than 16 positive voxels in the mask; N4 needs positive foreground intensities.")
    mask_img = sitk.GetImageFromArray(m.astype(np.uint8))
    mask_img.CopyInformation(img)
    factors = [int(max(1, min(int(shrink_factor), n // 4))) for n in volume.size_ijk]
    small = sitk.Shrink(img, factors)
    small_mask = sitk.Shrink(mask_img, factors)
    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.SetMaximumNumberOfIterations([int(iterations)] * int(fitting_levels))
    corrector.SetConvergenceThreshold(float(convergence))
    corrector.SetNumberOfControlPoints([int(control_points)] * 3)
    cancelled = []

    def on_progress() -> None:
        try:
            ctx.report(0.9 * corrector.GetProgress(), "N4 bias correction")
        except FilterCancelled:
            cancelled.append(True)
            corrector.Abort()

    corrector.AddCommand(sitk.sitkProgressEvent, on_progress)
    try:
        corrector.Execute(small, small_mask)
    except RuntimeError:
        if cancelled:
            raise FilterCancelled("Filtering was cancelled by the user.") from None
        raise
    if cancelled:
        raise FilterCancelled("Filtering was cancelled by the user.")
    log_field = sitk.GetArrayFromImage(corrector.GetLogBiasFieldAsImage(img)).astype(np.float32)
    out = arr / np.exp(log_field)
    ctx.report(1.0, "N4 bias correction")
    return volume.with_array(out.astype(np.float32, copy=False))
