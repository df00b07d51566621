"""T2 confounders: the bright and dark things a real lumbar T2 has besides the dural sac.

Segmentation that is only tested on a clean phantom (one bright tube in grey tissue) proves little.
These confounders change **intensities only, never labels**, so ``truth.json`` and the label map stay
exact. They are switched on by :attr:`lumbarspine.phantom.PhantomSpec.confounders` (default on; T2
only). All positions are in the phantom's canal frame ``(s, u, w)`` (mm, see
:mod:`lumbarspine.phantom.anatomy`), recomputed here from the voxel RAS coordinates.

* **Subcutaneous fat** (fast spin echo fat is bright): the outer :data:`SUBCUTANEOUS_FAT_MM` of the
  body contour, posterior and lateral.
* **Bright epidural fat**: already a tissue class (fat, 650 here: about two thirds of CSF, as on fast spin echo).
* **Bright disc nuclei** (about as bright as CSF in young discs) and **dark degenerated discs**
  (:data:`DEGENERATED_DISCS`: L5-S1 dark, L4-L5 intermediate).
* **Cauda equina rootlets**: :data:`ROOTLET_COUNT` dark strands of radius :data:`ROOTLET_RADIUS_MM`
  running along the canal inside the sac, gathered dorsally (patients lie supine). Only CSF voxels
  are darkened, so the sac label is unchanged (the rootlets belong to the dural sac).
* **Dark ligamentum flavum** lining the posterolateral canal; a bright dorsal midline fat pad stays.
* **Bowel loop**: a bright fluid-filled tube in front of the spine.
* **Coil bias field**: a posterior surface coil, :func:`coil_field`, strong (the back's fat is
  brighter than the CSF), with cranio-caudal coil-element ripple.

Noise and the 0.5 mm partial volume blur are added by :func:`lumbarspine.phantom.appearance.render_t2`.
"""

from __future__ import annotations

import math

import numpy as np

from .anatomy import SKIN_SEMI_AP_MM, SKIN_SEMI_LATERAL_MM, Centreline, build_layout

__all__ = [
    "T2_CONFOUNDER_VALUES",
    "SUBCUTANEOUS_FAT_MM",
    "DEGENERATED_DISCS",
    "ROOTLET_COUNT",
    "ROOTLET_RADIUS_MM",
    "apply_t2_confounders",
    "coil_field",
]

T2_CONFOUNDER_VALUES: dict[str, float] = {
    "epidural_fat": 650.0,
    "subcutaneous_fat": 720.0,
    "nucleus_bright": 930.0,
    "rootlet": 380.0,
    "ligamentum_flavum": 130.0,
    "bowel_fluid": 1050.0,
}
"""T2 intensities (0-1000 scale, CSF = 1000 before the bias field) of the confounding tissues."""

SUBCUTANEOUS_FAT_MM = 16.0
"""Thickness (mm) of the subcutaneous fat layer under the skin ellipse."""

DEGENERATED_DISCS: dict[str, tuple[float, float]] = {"L5-S1": (210.0, 170.0), "L4-L5": (480.0, 220.0)}
"""Disc level -> (nucleus, annulus) T2 intensity of degenerated (dark) discs."""

ROOTLET_COUNT = 10
"""Number of cauda equina strands drawn inside the sac."""
ROOTLET_RADIUS_MM = 0.7
"""Radius (mm) of one rootlet strand."""


def coil_field(s: np.ndarray, w: np.ndarray, phase: float) -> np.ndarray:
    """Multiplicative field of a posterior surface coil (dimensionless).

    ``0.55 + 0.95 exp(-d / 55 mm)`` with ``d`` the depth (mm) in front of the posterior skin
    (about 1.5 at the skin, 0.85 at the canal, 0.7 at the front of the bodies), times a +-12 %
    cranio-caudal ripple of period 140 mm (coil elements).
    """
    depth = np.maximum(w + SKIN_SEMI_AP_MM, 0.0)
    field = 0.55 + 0.95 * np.exp(-depth / 55.0)
    field *= 1.0 + 0.12 * np.cos(2.0 * math.pi * s / 140.0 + phase)
    return field.astype(np.float32)


def apply_t2_confounders(
    base: np.ndarray,
    tissue: np.ndarray,
    ras_xyz: tuple[np.ndarray, np.ndarray, np.ndarray],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Confounded intensities and the coil field, both float32 ``[k, j, i]`` like ``tissue``.

    ``base`` is the clean T2 intensity per voxel (from the tissue classes); it is not modified.
    Returns ``(image, field)``: ``image`` before blur, bias and noise, ``field`` multiplicative.
    """
    from .rasterize import Tissue

    s, u, w = Centreline().xyz_to_suw(*ras_xyz)
    image = base.astype(np.float32, copy=True)
    values = T2_CONFOUNDER_VALUES

    fat = tissue == Tissue.FAT
    image[fat] = values["epidural_fat"]
    # ligamentum flavum: posterolateral canal lining, leaving a dorsal midline fat pad
    flavum = fat & (w < -4.5) & (np.abs(u) > 4.0)
    image[flavum] = values["ligamentum_flavum"]

    # subcutaneous fat: outer layer of the body contour (skin ellipse), posterior and lateral half
    q = np.sqrt((u / SKIN_SEMI_LATERAL_MM) ** 2 + (w / SKIN_SEMI_AP_MM) ** 2)
    skin_depth = (1.0 - q) * min(SKIN_SEMI_LATERAL_MM, SKIN_SEMI_AP_MM)
    subcut = (tissue == Tissue.SOFT) & (skin_depth < SUBCUTANEOUS_FAT_MM) & (w < 20.0)
    image[subcut] = values["subcutaneous_fat"]

    # discs: bright nuclei, some degenerated (dark)
    layout = build_layout()
    nucleus = tissue == Tissue.NUCLEUS
    image[nucleus] = values["nucleus_bright"]
    for disc in layout.discs:
        if disc.level not in DEGENERATED_DISCS:
            continue
        nuc_value, ann_value = DEGENERATED_DISCS[disc.level]
        near = np.abs(s - disc.s_center) <= disc.height / 2 + 1.0
        image[near & nucleus] = nuc_value
        image[near & (tissue == Tissue.ANNULUS)] = ann_value

    # cauda equina: dark strands inside the CSF, gathered dorsally (fixed positions in the canal frame)
    csf = tissue == Tissue.CSF
    strand_rng = np.random.default_rng(20240607)  # the strands' layout is anatomy, not noise
    angles = np.linspace(0.0, 2.0 * math.pi, ROOTLET_COUNT, endpoint=False) + strand_rng.uniform(
        -0.2, 0.2, ROOTLET_COUNT
    )
    radii = strand_rng.uniform(0.25, 0.6, ROOTLET_COUNT)
    idx = np.flatnonzero(csf)
    su, sw = u.ravel()[idx], w.ravel()[idx]
    strands = np.zeros(idx.size, dtype=bool)
    for angle, radius in zip(angles, radii):
        cu = 8.0 * radius * math.cos(angle)
        cw = 6.5 * radius * math.sin(angle) - 1.5  # dorsal
        strands |= (su - cu) ** 2 + (sw - cw) ** 2 <= ROOTLET_RADIUS_MM**2
    image.ravel()[idx[strands]] = values["rootlet"]

    # a fluid-filled bowel loop in front of the spine (bright, tube-like over 40 mm)
    mid = 0.5 * (layout.discs[2].s_center + layout.discs[3].s_center)
    bowel = ((u - 14.0) ** 2 + (w - 50.0) ** 2 <= 9.0**2) & (np.abs(s - mid) <= 20.0) & (tissue == Tissue.SOFT)
    image[bowel] = values["bowel_fluid"]

    field = coil_field(s, w, float(rng.uniform(0.0, 2.0 * math.pi)))
    return image, field
