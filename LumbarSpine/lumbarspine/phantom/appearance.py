"""Intensities from tissue classes: CT in Hounsfield units and T2-weighted MRI.

CT (int16, HU): air -1000, soft tissue/muscle 40, fat -100, CSF 10, annulus 90, nucleus 75,
cortical bone 1000 (compact bone 700-1200 HU on thin-slice CT), cancellous bone 220 (healthy adult
trabecular bone 150-300 HU), ligament 60; Gaussian noise (default sd 12 HU).

T2 (float32, arbitrary units on a 0-1000 scale): air 0, soft tissue 250, fat 800, CSF 1000, annulus
200, nucleus 750, cortical bone 40, cancellous marrow 450, ligament 150; Rician noise (default sd 15)
and a smooth multiplicative bias field (about +-20 %, low-order polynomial in RAS mm).

T2 confounders (``PhantomSpec(confounders=True)``, the default): see
:mod:`lumbarspine.phantom.confounders`.

Partial volume: the tissue intensities are blurred with a Gaussian of 0.5 mm standard deviation
(per axis, in mm, so anisotropic grids are handled) before the noise is added. Labels are never
blurred.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .rasterize import Tissue

__all__ = ["CT_HU", "T2_VALUES", "PARTIAL_VOLUME_SIGMA_MM", "render_ct", "render_t2", "bias_field"]

CT_HU: dict[int, float] = {
    Tissue.AIR: -1000.0,
    Tissue.SOFT: 40.0,
    Tissue.FAT: -100.0,
    Tissue.CSF: 10.0,
    Tissue.ANNULUS: 90.0,
    Tissue.NUCLEUS: 75.0,
    Tissue.CORTICAL: 1000.0,
    Tissue.CANCELLOUS: 220.0,
    Tissue.LIGAMENT: 60.0,
}
T2_VALUES: dict[int, float] = {
    Tissue.AIR: 0.0,
    Tissue.SOFT: 250.0,
    Tissue.FAT: 800.0,
    Tissue.CSF: 1000.0,
    Tissue.ANNULUS: 200.0,
    Tissue.NUCLEUS: 750.0,
    Tissue.CORTICAL: 40.0,
    Tissue.CANCELLOUS: 450.0,
    Tissue.LIGAMENT: 150.0,
}
PARTIAL_VOLUME_SIGMA_MM = 0.5
CT_NOISE_HU = 12.0
T2_NOISE = 15.0


def _lookup(tissue: np.ndarray, table: dict[int, float]) -> np.ndarray:
    lut = np.zeros(256, dtype=np.float32)
    for key, value in table.items():
        lut[key] = value
    return lut[tissue]


def _blur(image: np.ndarray, spacing_ijk: tuple[float, float, float]) -> np.ndarray:
    sigma_kji = [PARTIAL_VOLUME_SIGMA_MM / sp for sp in spacing_ijk[::-1]]
    return ndimage.gaussian_filter(image, sigma=sigma_kji, mode="nearest", truncate=3.0)


def render_ct(
    tissue: np.ndarray, spacing_ijk: tuple[float, float, float], rng: np.random.Generator, noise: float | None
) -> np.ndarray:
    """CT image in HU (int16) from a tissue-class array indexed ``[k, j, i]``."""
    image = _blur(_lookup(tissue, CT_HU), spacing_ijk)
    sd = CT_NOISE_HU if noise is None else noise
    if sd > 0:
        image += rng.normal(0.0, sd, size=image.shape).astype(np.float32)
    return np.clip(np.rint(image), -1024, 3071).astype(np.int16)


def bias_field(ras_xyz: tuple[np.ndarray, np.ndarray, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Smooth multiplicative field ``exp(p(x, y, z))``, ``p`` a random quadratic, about +-20 % over 200 mm."""
    x, y, z = (c / 100.0 for c in ras_xyz)  # decimetres
    c = rng.uniform(-0.08, 0.08, size=7)
    p = c[0] * x + c[1] * y + c[2] * z + c[3] * x * y + c[4] * y * z + c[5] * z * z + c[6] * x * x
    return np.exp(p).astype(np.float32)


def render_t2(
    tissue: np.ndarray,
    spacing_ijk: tuple[float, float, float],
    ras_xyz: tuple[np.ndarray, np.ndarray, np.ndarray],
    rng: np.random.Generator,
    noise: float | None,
    confounders: bool = False,
) -> np.ndarray:
    """T2-weighted image (float32) with bias field and Rician noise, indexed ``[k, j, i]``.

    With ``confounders`` the intensities get the confounders of a real T2
    (:func:`lumbarspine.phantom.confounders.apply_t2_confounders`: subcutaneous and bright epidural
    fat, bright and degenerated discs, cauda equina rootlets, ligamentum flavum, a bowel loop) and
    the strong posterior coil field on top of the smooth random bias. Labels are never touched.
    """
    base = _lookup(tissue, T2_VALUES)
    field = bias_field(ras_xyz, rng)
    if confounders:
        from .confounders import apply_t2_confounders

        base, coil = apply_t2_confounders(base, tissue, ras_xyz, rng)
        field = field * coil
    image = _blur(base, spacing_ijk) * field
    sd = T2_NOISE if noise is None else noise
    if sd > 0:
        n1 = rng.normal(0.0, sd, size=image.shape).astype(np.float32)
        n2 = rng.normal(0.0, sd, size=image.shape).astype(np.float32)
        image = np.sqrt((image + n1) ** 2 + n2**2)
    return image.astype(np.float32)
