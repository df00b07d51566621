"""The spinal canal in CT: the space enclosed by each vertebral foramen, joined into one tube.

A threshold cannot separate the canal's contents (CSF 0-15 HU, epidural fat -100 HU, nerve roots)
from the soft tissue around the spine. What marks the canal is the bony ring around it: vertebral
body in front, pedicles at the sides, laminae behind. So, in every axial slice of the working grid
(:mod:`.ct_grid`), the bone mask is closed in-plane (:data:`CANAL_RING_CLOSING_MM`) and the holes it
encloses are candidates; the canal is the longest chain of candidates running cranio-caudally near
the midline with a vertebral body in front. Where the ring is open (the disc levels, the
interlaminar spaces, the foramina), the cross-section is interpolated between the nearest enclosed
foramina above and below (linear interpolation of signed distance maps). Bone is removed at the end
(the rings' 1-2 voxel halo outside the half-maximum bone surface goes to the canal, not to the
vertebra: a canal short of the foramen wall had made the pedicles look wider) and the largest
connected piece kept, so the result is one tube.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from .arrays import numpy_ops
from .components import largest_component
from .ct_bone import EDGE_LAYER_MM, MARROW_MIN_HU, holes, in_plane_structure

if TYPE_CHECKING:
    from .arrays import ArrayOps

__all__ = [
    "CANAL_RING_CLOSING_MM",
    "CANAL_AREA_RANGE_MM2",
    "CANAL_MAX_GAP_MM",
    "CanalResult",
    "find_canal",
]

CANAL_RING_CLOSING_MM = 3.0
"""In-plane closing radius (mm) of the bone before the enclosed holes are taken: bridges thin gaps
of the ring (partial volume, a thin lamina) but not the canal itself (10-25 mm across)."""
CANAL_AREA_RANGE_MM2 = (30.0, 700.0)
"""Cross-sectional area of an enclosed hole (mm2) to be a canal candidate (normal lumbar canal
150-300 mm2, stenotic down to ~50; the sacral canal tapers to a few tens of mm2)."""
CANAL_MAX_GAP_MM = 45.0
"""Longest stretch along S (mm) bridged by interpolation between two enclosed foramina (a disc level
with its neighbouring open stretches)."""
CANAL_MIDLINE_MM = 35.0
"""Candidates lie within this distance (mm along R) of the body's midline."""


@dataclass
class CanalResult:
    """The canal tube (bool mask on the working grid) and its per-slice centres (mm, array order S, A, R)."""

    mask: np.ndarray
    centres: np.ndarray  # (N, 3) mm, one per axial slice with canal, superior first
    enclosed_slices: int


def _candidates(
    bone: np.ndarray, smooth: np.ndarray, spacing: float, midline: float, ops: ArrayOps
) -> tuple[list[tuple], np.ndarray | None]:
    """Enclosed axial holes that may be the canal: ``(slice k, centre mm, area mm2, hole id)`` and the hole labels."""
    radius = max(1, int(round(CANAL_RING_CLOSING_MM / spacing)))
    r = np.arange(-radius, radius + 1)
    disk = (r[:, None] ** 2 + r[None, :] ** 2 <= radius**2 + 0.5)[None]
    pad = ((0, 0), (radius, radius), (radius, radius))
    ring = ops.binary_closing(np.pad(bone, pad), structure=disk)[:, radius:-radius, radius:-radius] | bone
    plane = in_plane_structure()
    lab, n = ops.label(holes(ring, axis=0, ops=ops), structure=plane)
    if n == 0:
        return [], None
    index = np.arange(1, n + 1)
    area = np.bincount(lab.ravel(), minlength=n + 1)[1:] * spacing**2
    ok = (area >= CANAL_AREA_RANGE_MM2[0]) & (area <= CANAL_AREA_RANGE_MM2[1])
    if not ok.any():
        return [], None
    index = index[ok]
    centres = np.asarray(ndimage.center_of_mass(np.ones(lab.shape, np.uint8), lab, index)) * spacing
    sums = np.bincount(lab.ravel(), weights=smooth.ravel(), minlength=n + 1)
    medians = sums[index] / np.maximum(area[index - 1] / spacing**2, 1.0)  # mean HU of each hole
    out = []
    front_lo, front_hi = int(round(12.0 / spacing)), int(round(30.0 / spacing))
    half = max(1, int(round(6.0 / spacing)))
    for value, centre, median in zip(index, centres, medians):
        if median >= MARROW_MIN_HU or abs(centre[2] - midline) > CANAL_MIDLINE_MM:  # marrow, or off the midline
            continue
        k, j, i = (int(round(c / spacing)) for c in centre)
        # a vertebral body (thick bone) in front: anterior = +A (array axis 1)
        box = bone[k, j + front_lo : j + front_hi, max(0, i - half) : i + half + 1]
        if box.size == 0 or box.mean() < 0.4:
            continue
        out.append((k, centre, float(area[value - 1]), int(value)))
    return out, lab


def _chain(cands: list[tuple], spacing: float) -> list[int]:
    """Indices of the longest cranio-caudal chain of candidates (one per slice), superior first."""
    order = sorted(range(len(cands)), key=lambda n: -cands[n][0])
    best = {n: 1.0 for n in order}
    prev: dict[int, int | None] = {n: None for n in order}
    max_gap = CANAL_MAX_GAP_MM / spacing
    for pos, b in enumerate(order):
        kb, cb = cands[b][0], cands[b][1]
        for a in order[:pos]:
            ka, ca = cands[a][0], cands[a][1]
            dk = ka - kb
            if dk <= 0 or dk > max_gap:
                continue
            dz = dk * spacing
            if np.hypot(*(ca[1:] - cb[1:])) > 4.0 + 0.9 * dz:
                continue
            score = best[a] + 1.0 - 0.02 * dk
            if score > best[b]:
                best[b], prev[b] = score, a
    if not order:
        return []
    end = max(order, key=lambda n: best[n])
    chain = [end]
    while prev[chain[-1]] is not None:
        chain.append(prev[chain[-1]])  # type: ignore[arg-type]
    return chain[::-1]


def _sdf(mask2d: np.ndarray) -> np.ndarray:
    inside = ndimage.distance_transform_edt(mask2d)
    outside = ndimage.distance_transform_edt(~mask2d)
    return outside - inside


def find_canal(
    bone: np.ndarray,
    smooth: np.ndarray,
    spacing: float,
    midline: float,
    solid: np.ndarray | None = None,
    *,
    ops: ArrayOps | None = None,
) -> CanalResult | None:
    """The canal tube on the working grid, or None when no enclosed foramen was found.

    ``bone`` gives the rings; ``solid`` (default ``bone``) is the bone removed from the tube at the end.
    The 3D morphology and labelling run on ``ops``' backend (:mod:`.arrays`, NumPy by default); the
    small per-gap 2D steps (dilation, signed distances) stay on SciPy.
    """
    ops = ops or numpy_ops()
    cands, lab = _candidates(bone, smooth, spacing, midline, ops)
    if not cands or lab is None:
        return None
    chain = _chain(cands, spacing)
    if len(chain) < 2:
        return None
    areas = np.array([cands[n][2] for n in chain])
    typical = float(np.median(areas))
    chain = [n for n in chain if cands[n][2] <= 2.2 * typical] or chain
    mask = np.zeros(bone.shape, dtype=bool)
    slices: dict[int, np.ndarray] = {}
    for n in chain:
        k, _, _, value = cands[n]
        slices[k] = lab[k] == value
        mask[k] |= slices[k]
    ks = sorted(slices)
    for k0, k1 in zip(ks[:-1], ks[1:]):
        if k1 - k0 <= 1:
            continue
        both = slices[k0] | slices[k1]
        jj, ii = np.nonzero(ndimage.binary_dilation(both, iterations=3))
        box = (slice(jj.min(), jj.max() + 1), slice(ii.min(), ii.max() + 1))
        d0, d1 = _sdf(slices[k0][box]), _sdf(slices[k1][box])
        for k in range(k0 + 1, k1):
            f = (k - k0) / (k1 - k0)
            mask[k][box] |= ((1 - f) * d0 + f * d1) < 0
    mask &= ~(bone if solid is None else solid)
    if solid is not None:
        # the rings' halo (``bone`` minus ``solid``: the smoothing and closing add 1-2 voxels around the bone
        # that the half-maximum surface removes) lines the foramen: it is canal, not vertebra
        halo = bone & ~solid
        layers = max(1, int(round(EDGE_LAYER_MM / spacing)))
        mask = ops.binary_dilation(mask, structure=in_plane_structure(), iterations=layers, mask=mask | halo)
    mask = largest_component(mask, structure=ndimage.generate_binary_structure(3, 2), ops=ops)
    if not mask.any():
        return None
    kk = np.nonzero(mask.any(axis=(1, 2)))[0][::-1]
    centres = []
    for k in kk:
        jj, ii = np.nonzero(mask[k])
        centres.append((k * spacing, jj.mean() * spacing, ii.mean() * spacing))
    return CanalResult(mask=mask, centres=np.asarray(centres), enclosed_slices=len(chain))
