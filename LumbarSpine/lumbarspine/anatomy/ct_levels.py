"""Vertebrae, sacrum and discs in CT: split the bone along the canal and assign the posterior elements.

Works on the working grid (:mod:`.ct_grid`; arrays ``[S, A, R]``, mm = index x spacing) after the
canal (:mod:`.ct_canal`) is known:

1. **Spine frame.** The canal's centre line (per-slice centres, smoothed, extended by
   :data:`FRAME_EXTENSION_MM` beyond both ends along the end tangents) gives each voxel near the spine
   curvilinear coordinates: ``t`` (mm along the canal, superior positive), ``u`` (mm to the patient's
   right) and ``w`` (mm anterior, in the plane perpendicular to the canal).
2. **Disc spaces.** The mean HU in a band in front of the canal (the vertebral bodies:
   :data:`BODY_BAND_W_MM`, ``|u| <`` :data:`BODY_BAND_U_MM`) as a function of ``t`` has a narrow dip
   at every disc (disc 70-110 HU between two bright endplates). Low-density bodies also dip in their
   middle (basivertebral veins), but wider: a black top-hat of :data:`DISC_TOPHAT_MM` keeps the
   narrow dips, and the disc levels are the most marked chain of dips spaced like vertebrae
   (:data:`DISC_SPACING_RANGE_MM`).
3. **Vertebrae.** Seeds in the middle of each body (between two disc levels) and in its pedicles
   (:data:`PEDICLE_U_MM`, :data:`PEDICLE_W_MM`, upper half of the segment) grow over the bone
   mask by a watershed of the negated distance to the bone surface plus a barrier at thin dark gaps
   (:data:`GAP_BARRIER_MM_PER_100HU`): fronts meet at the joint spaces and the narrowest bone, so
   each vertebra keeps its own pedicles, laminae and processes. Bone far from the spine (ribs beyond the transverse processes, pelvis)
   is flooded from its own marker and dropped.
4. **Sacrum.** The lowest segment is the sacrum when its bone runs on for at least
   :data:`SACRUM_MIN_LENGTH_MM` below the last disc (no lumbar body is that tall; 1.5 times that
   when the segment is cut by the field of view); otherwise nothing is numbered (the caller warns).
5. **Discs.** Soft tissue between two consecutive bodies: not bone, not canal, in front of the
   canal, with the upper body above and the lower body below it along ``t``.
6. **Sub-regions** (:func:`_subregions`): body, pedicles, spinous process, transverse processes,
   superior and inferior articular processes and the rest of the arch (laminae, pars) of each vertebra,
   by position in the spine frame relative to its pedicles and the canal's walls (SPINEPS codes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from .arrays import numpy_ops
from .components import largest_component
from .ct_bone import holes

if TYPE_CHECKING:
    from .arrays import ArrayOps

__all__ = [
    "FRAME_EXTENSION_MM",
    "BODY_BAND_W_MM",
    "BODY_BAND_U_MM",
    "DISC_SPACING_RANGE_MM",
    "DISC_TOPHAT_MM",
    "DISC_MIN_PROMINENCE_HU",
    "SACRUM_MIN_LENGTH_MM",
    "SpineFrame",
    "spine_frame",
    "Levels",
    "split_levels",
]

FRAME_EXTENSION_MM = 45.0
"""The canal centre line is extended by this (mm) beyond its ends along the end tangents."""
BODY_BAND_W_MM = (11.0, 30.0)
"""Anterior offsets (mm from the canal centre) of the band sampled for the disc profile."""
BODY_BAND_U_MM = 10.0
"""Half-width (mm, right-left) of the band sampled for the disc profile."""
DISC_SPACING_RANGE_MM = (22.0, 55.0)
"""Distance along the canal between two neighbouring disc levels (mm): one vertebra, body 20-35 mm
(thoracic to lumbar) plus a disc of 5-12 mm."""
DISC_TOPHAT_MM = 16.0
"""Dips of the profile narrower than this (mm: a disc with its two endplates) are disc candidates."""
DISC_MIN_PROMINENCE_HU = 15.0
"""Depth (HU) of a dip in the top-hat filtered profile to be a disc candidate."""
DISC_CLEAR_HALF_MM = 3.0
"""Within this distance (mm along the canal) of a disc level, in front of the canal, ..."""
DISC_CLEAR_BELOW_HU = 150.0
"""... voxels darker than this (smoothed HU; disc 70-110, cancellous bone >= 150 where healthy) are
disc, not bone: this undoes bony rims (osteophytes) that enclosed a disc and got it filled as marrow."""
GAP_WINDOW_MM = 1.5
"""Half-size (mm) of the black top-hat that finds thin dark gaps (joint spaces up to ~3 mm) in bone."""
GAP_BARRIER_MM_PER_100HU = 0.0
"""Each 100 HU of gap darkness adds this (mm of equivalent bone thinning) to the watershed landscape, so
the fronts of two vertebrae meet in their facet joint rather than at the narrowest bone (the pars)."""
PEDICLE_U_MM = (9.0, 22.0)
"""Right-left distance (mm) from the canal centre of the pedicle seeds (lumbar canal half-width 10-13 mm,
pedicles 7-18 mm wide beside it)."""
PEDICLE_W_MM = (-1.0, 6.0)
"""Anterior offsets (mm from the canal centre) of the pedicle seeds: between the back of the body and the
lamina, in front of the articular processes of the neighbours."""
BODY_HULL_MIN_W_MM = 8.0
"""Bone more than this (mm) in front of the canal centre is vertebral body, filled to its convex hull in
each axial slice (the body's posterior wall is 7-10 mm in front of the canal centre). The hull is
filled only where the vertebra's own bone (or the field of view's edge) lies above and below along S:
the endplates close the marrow, while the notch between a pedicle and the body's lateral wall is open
there (filling it widened the L5 pedicles of the phantom's CT by 3 mm and turned their axis 10 deg)."""
BODY_HULL_DISC_MARGIN_MM = 4.0
"""No hull filling within this distance (mm along the canal) of a disc level."""
END_DISC_MIN_FRACTION = 0.4
"""A dip at either end of the chain shallower than this fraction of the chain's median depth is
dropped (the rudimentary S1-S2 disc of the fused sacrum, partial-volume noise at the field's edge)."""
SACRUM_MIN_LENGTH_MM = 40.0
"""Bone running on at least this far (mm along the canal) below the lowest disc is the sacrum."""
SPINE_RADIUS_MM = 65.0
"""Bone farther than this from the canal (mm, right-left) belongs to something else (ribs, pelvis)."""

# Sub-regions of the posterior arch (:func:`_subregions`). Position rules in the spine frame, from the adult
# lumbar anatomy (the pedicle joins the body to the arch at the upper half of the body; the superior articular
# process rises above it, the inferior one hangs from the lower lamina, the transverse process leaves the
# pedicle-lamina junction laterally at pedicle height, the spinous process runs back on the mid-line behind the
# laminae). They are rounded to the millimetre; checked on the phantom (whose processes are boxes at these
# places, :mod:`lumbarspine.phantom.rasterize`) and looked at on the 3 mm TotalSegmentator example CT.
PEDICLE_BAND_MAX_W_MM = 3.0
"""The pedicle band (the cranio-caudal extent of the pedicle, 5th-95th percentile of ``t``) is measured on the
pedicle voxels less than this (mm) in front of the canal centre: there, beside the canal, the only bone of the
vertebra is the pedicle, whereas nearer the body the pedicle zone also holds the body's postero-lateral corner
over the body's whole height (real vertebrae: the body's back is flat, not elliptic)."""
SPINOUS_HALF_WIDTH_MM = 6.0
"""Half-width (mm, right-left) of the mid-line zone the spinous process is taken from (the lumbar spinous
process is a sagittal plate some 5-10 mm thick; the phantom's is 6 mm)."""
LAMINA_THICKNESS_MM = 6.0
"""Bone more than this (mm) behind the canal's posterior wall on the mid-line is spinous process, not lamina
(the laminae and the root of the spinous process behind the canal are a few mm to ~8 mm thick in adults; the
phantom's lamina ring is 6 mm)."""
CANAL_BACK_DEFAULT_MM = 8.0
"""Posterior wall of the canal (mm behind its centre) assumed when no canal is seen at a vertebra (lumbar canal
AP diameter 15-18 mm; the phantom's 17 mm)."""
TRANSVERSE_MIN_U_MM = 20.0
"""Arch bone at pedicle height more than this (mm) lateral of the canal centre is transverse process: beyond the
pedicles (canal half-width 10-13 mm plus a pedicle of 7-18 mm, whose lateral part the pedicle rule keeps up to
:data:`PEDICLE_U_MM`)."""
TRANSVERSE_BAND_MARGIN_MM = 2.0
"""The transverse process is taken within this (mm along the canal) of the pedicle band (the process is about as
tall as the pedicle at its root, 8-15 mm)."""
TRANSVERSE_MAX_BEHIND_MM = 6.0
"""... and at most this (mm) behind the canal's posterior wall: the process lies in the coronal plane of the
pedicle-lamina junction, the articular processes (mammillary process) behind it."""
ARTICULAR_MIN_U_MM = 6.0
"""Inferior articular processes lie more than this (mm) lateral of the mid-line (the facet joints are 10-20 mm
from the mid-line, the inferior process medial of the superior one below; medial of 6 mm lies the lamina and the
spinous process)."""
CANAL_HALF_DEFAULT_MM = 11.0
"""Half-width of the canal (mm) assumed when no canal is seen at a vertebra. Superior articular processes lie
lateral of the canal's lateral edge (measured at the pedicle band: the 98th percentile of ``|u|`` of the canal),
beside and behind the lateral recess; medial of it, above the pedicles, lies the upper edge of the lamina."""
SUPERIOR_ARTICULAR_BELOW_TOP_MM = 4.0
"""Arch bone above (pedicle band top - this, mm) is superior articular process: the process's base reaches a few
mm down beside the upper pedicle (phantom: 4 mm), its facet rises 10-15 mm above it."""
INFERIOR_ARTICULAR_BELOW_MM = 4.0
"""Arch bone more than this (mm) below the pedicle band is inferior articular process: between the two lies the
pars interarticularis (arch), some 5-10 mm tall."""


@dataclass
class SpineFrame:
    """The canal's centre line (``points`` mm, array order S, A, R, superior first) with its frame."""

    points: np.ndarray
    t: np.ndarray  # arc length (mm), superior positive, 0 at the lowest canal point
    tangent: np.ndarray  # unit, superior
    lateral: np.ndarray  # unit, patient's right (+R)
    anterior: np.ndarray  # unit, +A
    t_canal: tuple[float, float]  # (lowest, highest) t of the real canal (the rest is extension)

    def coordinates(self, mm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(t, u, w, index of the nearest frame point)`` for points ``(N, 3)`` in mm (array order)."""
        from scipy.spatial import cKDTree

        _, idx = cKDTree(self.points).query(mm, workers=-1)
        d = mm - self.points[idx]
        t = self.t[idx] + np.einsum("ij,ij->i", d, self.tangent[idx])
        u = np.einsum("ij,ij->i", d, self.lateral[idx])
        w = np.einsum("ij,ij->i", d, self.anterior[idx])
        return t, u, w, idx


def spine_frame(centres: np.ndarray, step_mm: float = 1.0) -> SpineFrame:
    """Smooth, resampled and extended canal centre line from per-slice centres (mm, superior first)."""
    pts = np.asarray(centres, dtype=float)[::-1]  # inferior first
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    grid = np.arange(0.0, s[-1] + 1e-9, step_mm)
    line = np.stack([np.interp(grid, s, pts[:, d]) for d in range(3)], axis=1)
    sigma = max(1.0, 6.0 / step_mm)
    line = ndimage.gaussian_filter1d(line, sigma, axis=0, mode="nearest")
    tangent = np.gradient(line, axis=0)
    tangent = ndimage.gaussian_filter1d(tangent, sigma, axis=0, mode="nearest")
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    n_ext = int(round(FRAME_EXTENSION_MM / step_mm))
    low = line[0] - np.arange(n_ext, 0, -1)[:, None] * step_mm * tangent[0]
    high = line[-1] + np.arange(1, n_ext + 1)[:, None] * step_mm * tangent[-1]
    line = np.concatenate([low, line, high])
    tangent = np.concatenate([np.repeat(tangent[:1], n_ext, 0), tangent, np.repeat(tangent[-1:], n_ext, 0)])
    t = (np.arange(len(line)) - n_ext) * step_mm
    right = np.array([0.0, 0.0, 1.0])
    lateral = right[None, :] - (tangent @ right)[:, None] * tangent
    lateral /= np.linalg.norm(lateral, axis=1, keepdims=True)
    anterior = np.cross(tangent, lateral)  # (S, A, R) order: S x R = -A ... fix the sign below
    anterior *= np.sign(anterior[:, 1:2] + 1e-12)
    return SpineFrame(
        line[::-1].copy(),
        t[::-1].copy(),
        tangent[::-1].copy(),
        lateral[::-1].copy(),
        anterior[::-1].copy(),
        (0.0, float(grid[-1])),
    )


@dataclass
class Levels:
    """Labelled vertebrae (1..n top to bottom) and discs (1..n-1, disc i below vertebra i) on the working grid."""

    vertebrae: np.ndarray  # int32, 0 = none
    discs: np.ndarray  # int32, 0 = none
    n_vertebrae: int
    sacrum: bool  # the lowest vertebra is the sacrum
    disc_t: list[float]
    warnings: list[str]
    subregions: np.ndarray | None = None  # uint8 sub-region codes (SUBREGIONS) of the vertebra voxels


def _profile(t: np.ndarray, values: np.ndarray, t_lo: float, t_hi: float) -> tuple[np.ndarray, np.ndarray]:
    edges = np.arange(np.floor(t_lo), np.ceil(t_hi) + 1.0, 1.0)
    idx = np.clip(np.digitize(t, edges) - 1, 0, len(edges) - 2)
    sums = np.bincount(idx, weights=values, minlength=len(edges) - 1)
    counts = np.bincount(idx, minlength=len(edges) - 1)
    centres = (edges[:-1] + edges[1:]) / 2
    prof = np.full(len(centres), np.nan)
    ok = counts > 3
    prof[ok] = sums[ok] / counts[ok]
    return centres, prof


def _peaks(x: np.ndarray, distance: int, prominence: float) -> tuple[list[int], list[float]]:
    """Local maxima of ``x`` with their prominence (height above the higher of the two lowest points
    reached before a higher value on either side), at least ``distance`` samples apart (the higher wins)."""
    n = len(x)
    found: list[tuple[float, int, float]] = []
    for p in range(1, n - 1):
        if not (x[p] > x[p - 1] and x[p] >= x[p + 1]):
            continue
        left = p
        low_left = x[p]
        while left > 0 and x[left - 1] <= x[p]:
            left -= 1
            low_left = min(low_left, x[left])
        right = p
        low_right = x[p]
        while right < n - 1 and x[right + 1] <= x[p]:
            right += 1
            low_right = min(low_right, x[right])
        prom = float(x[p] - max(low_left, low_right))
        if prom >= prominence:
            found.append((float(x[p]), p, prom))
    kept: list[tuple[int, float]] = []
    for _, p, prom in sorted(found, reverse=True):
        if all(abs(p - q) >= distance for q, _ in kept):
            kept.append((p, prom))
    kept.sort()
    return [p for p, _ in kept], [pr for _, pr in kept]


def _upsample(a: np.ndarray, shape: tuple[int, ...], step: int) -> np.ndarray:
    """Linear interpolation of ``a`` sampled every ``step`` voxels (first sample at 0) onto ``shape``."""
    out = a
    for axis, n in enumerate(shape):
        coarse = np.arange(out.shape[axis]) * step
        fine = np.arange(n)
        idx = np.clip(np.searchsorted(coarse, fine, side="right") - 1, 0, len(coarse) - 2) if len(coarse) > 1 else None
        if idx is None:
            out = np.repeat(out, n, axis=axis)
            continue
        f = (fine - coarse[idx]) / step
        shape_f = [1] * out.ndim
        shape_f[axis] = n
        f = f.reshape(shape_f).astype(np.float32)
        out = np.take(out, idx, axis=axis) * (1 - f) + np.take(out, idx + 1, axis=axis) * f
    return out


def _frame_coordinates(
    frame: SpineFrame, shape: tuple[int, ...], origin: np.ndarray, spacing: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(t, u, w)`` (mm) of every voxel of a sub-grid (``origin`` = its first voxel's index), computed every
    2 mm and interpolated linearly (the coordinates are smooth)."""
    step = max(1, int(round(2.0 / spacing)))
    grids = [np.arange(0, n + step - 1, step) for n in shape]  # covers the last voxel
    kk, jj, ii = np.meshgrid(*grids, indexing="ij")
    mm = (np.stack([kk.ravel(), jj.ravel(), ii.ravel()], axis=1) + origin) * spacing
    t, u, w, _ = frame.coordinates(mm)
    coarse_shape = kk.shape
    out = []
    for values in (t, u, w):
        out.append(_upsample(values.reshape(coarse_shape).astype(np.float32), shape, step))
    return out[0], out[1], out[2]


def _subregions(
    vertebrae: np.ndarray,
    t: np.ndarray,
    u: np.ndarray,
    w: np.ndarray,
    canal: np.ndarray,
    sacrum_label: int | None,
) -> np.ndarray:
    """Sub-regions of the vertebra voxels (SPINEPS codes + project pedicles, :data:`~.model.SUBREGIONS`).

    Every rule works in the spine frame of :class:`SpineFrame` (``t`` mm along the canal, superior
    positive; ``u`` mm to the patient's right, so *left* is ``u < 0`` in RAS whatever the input grid;
    ``w`` mm anterior of the canal centre), per vertebra, in this order (the first rule that holds wins):

    1. **body** (50): ``w >`` :data:`BODY_HULL_MIN_W_MM` (in front of the body's posterior wall).
    2. **pedicle** left/right (51/52): beside the canal between the body and the arch (:data:`PEDICLE_W_MM`
       widened to the body, :data:`PEDICLE_U_MM`). The pedicle voxels of each side behind
       :data:`PEDICLE_BAND_MAX_W_MM` give the vertebra's *pedicle band* along ``t`` (their 5th-95th
       percentile, the mean of the two sides; one side's when the other has none, the body's upper half
       when neither has).
    3. **spinous process** (42): ``|u| <`` :data:`SPINOUS_HALF_WIDTH_MM` and more than
       :data:`LAMINA_THICKNESS_MM` behind the canal's posterior wall (measured on the mid-line at the
       pedicle band): the bone behind the lamina on the mid-line.
    4. **transverse process** left/right (43/44): ``|u| >`` :data:`TRANSVERSE_MIN_U_MM` (lateral of the
       pedicles), within :data:`TRANSVERSE_BAND_MARGIN_MM` of the pedicle band (the process leaves the
       pedicle-lamina junction at pedicle height) and not more than :data:`TRANSVERSE_MAX_BEHIND_MM`
       behind the canal's posterior wall (the articular processes lie behind it).
    5. **superior articular process** left/right (45/46): lateral of the canal's lateral edge (measured,
       :data:`CANAL_HALF_DEFAULT_MM`) and above ``band top -`` :data:`SUPERIOR_ARTICULAR_BELOW_TOP_MM`: the
       process rises from the upper pedicle-lamina junction above the pedicle.
    6. **inferior articular process** left/right (47/48): ``|u| >`` :data:`ARTICULAR_MIN_U_MM` and more
       than :data:`INFERIOR_ARTICULAR_BELOW_MM` below the pedicle band: it hangs from the lower lamina.
    7. the rest: **arch** (41): the laminae and the pars interarticularis between the two facets.

    The sacrum (``sacrum_label``) gets only body, pedicles (S1 pedicle and the alae's root, as rule 2
    finds them), the median crest as spinous process, the S1 superior articular processes (above the
    band's top as in rule 5) and arch for the rest: it has no free transverse or inferior articular
    processes. The rules are position rules, not a shape model: on a real CT a voxel near a boundary
    may fall on either side (e.g. the root of a transverse process into the superior articular process).
    """
    from .model import SUBREGIONS

    out = np.zeros(vertebrae.shape, dtype=np.uint8)
    bone = vertebrae > 0
    out[bone] = SUBREGIONS["arch"]
    body = bone & (w > BODY_HULL_MIN_W_MM)
    pedicle = bone & ~body & (w > PEDICLE_W_MM[0]) & (np.abs(u) > PEDICLE_U_MM[0]) & (np.abs(u) < PEDICLE_U_MM[1])
    out[body] = SUBREGIONS["body"]
    out[pedicle & (u < 0)] = SUBREGIONS["pedicle_left"]
    out[pedicle & (u > 0)] = SUBREGIONS["pedicle_right"]
    arch = bone & ~body & ~pedicle
    for index, sl in enumerate(ndimage.find_objects(vertebrae), start=1):
        if sl is None:
            continue
        _split_arch(index, vertebrae[sl] == index, out[sl], arch[sl], t[sl], u[sl], w[sl], canal[sl], sacrum_label)
    return out


def _split_arch(
    label: int,
    mine: np.ndarray,
    out: np.ndarray,
    arch: np.ndarray,
    t: np.ndarray,
    u: np.ndarray,
    w: np.ndarray,
    canal: np.ndarray,
    sacrum_label: int | None,
) -> None:
    """Rules 3-7 of :func:`_subregions` for vertebra ``label`` (voxels ``mine`` of its bounding box; ``out``
    changed in place)."""
    from .model import SUBREGIONS

    sacrum = sacrum_label is not None and int(label) == sacrum_label
    sides: list[tuple[float, float]] = []
    for side in ("left", "right"):
        ped_t = t[mine & (out == SUBREGIONS[f"pedicle_{side}"]) & (w < PEDICLE_BAND_MAX_W_MM)]
        if ped_t.size >= 5:
            sides.append((float(np.percentile(ped_t, 5)), float(np.percentile(ped_t, 95))))
    if sides:  # one band for both sides (a vertebra is symmetric; the mean of two noisy percentiles is steadier)
        lo, hi = float(np.mean([b[0] for b in sides])), float(np.mean([b[1] for b in sides]))
    else:
        body_t = t[mine & (out == SUBREGIONS["body"])]
        if body_t.size == 0:
            return
        lo, hi = (float(body_t.min()) + float(body_t.max())) / 2, float(body_t.max())
    at_band = canal & (t >= lo) & (t <= hi)
    mid_canal = at_band & (np.abs(u) < 3.0)  # the canal's mid-line strip (+-3 mm)
    w_back = float(np.percentile(w[mid_canal], 2)) if mid_canal.sum() >= 3 else -CANAL_BACK_DEFAULT_MM
    canal_half = float(np.percentile(np.abs(u[at_band]), 98)) if at_band.sum() >= 3 else CANAL_HALF_DEFAULT_MM
    sel = arch & mine
    spinous = sel & (np.abs(u) < SPINOUS_HALF_WIDTH_MM) & (w < w_back - LAMINA_THICKNESS_MM)
    out[spinous] = SUBREGIONS["spinous_process"]
    sel &= ~spinous
    for side, sign in (("left", -1.0), ("right", 1.0)):
        lateral = sel & (sign * u > 0)
        if not sacrum:
            tp = (
                lateral
                & (sign * u > TRANSVERSE_MIN_U_MM)
                & (t > lo - TRANSVERSE_BAND_MARGIN_MM)
                & (t < hi + TRANSVERSE_BAND_MARGIN_MM)
                & (w > w_back - TRANSVERSE_MAX_BEHIND_MM)
            )
            out[tp] = SUBREGIONS[f"transverse_process_{side}"]
            lateral &= ~tp
        articular = lateral & (sign * u > ARTICULAR_MIN_U_MM)
        superior = articular & (sign * u > canal_half) & (t > hi - SUPERIOR_ARTICULAR_BELOW_TOP_MM)
        out[superior] = SUBREGIONS[f"superior_articular_{side}"]
        if not sacrum:
            inferior = articular & ~superior & (t < lo - INFERIOR_ARTICULAR_BELOW_MM)
            out[inferior] = SUBREGIONS[f"inferior_articular_{side}"]


def _enclosed_along(mask: np.ndarray, axis: int) -> np.ndarray:
    """Voxels with ``mask`` on both sides along ``axis`` (anywhere before and anywhere after them)."""
    before = np.maximum.accumulate(mask, axis=axis)
    after = np.flip(np.maximum.accumulate(np.flip(mask, axis=axis), axis=axis), axis=axis)
    return before & after


def _touches_border(mask: np.ndarray, box: tuple[slice, ...], shape: tuple[int, ...]) -> bool:
    """True when ``mask`` (on the sub-grid ``box``) reaches the edge of the full working grid."""
    for axis, (sl, n) in enumerate(zip(box, shape)):
        if sl.start == 0 and np.take(mask, 0, axis=axis).any():
            return True
        if sl.stop == n and np.take(mask, -1, axis=axis).any():
            return True
    return False


def _regular_chain(cands: list[tuple[float, float]]) -> list[float]:
    """Disc levels: the chain of candidates ``(t, depth)`` with neighbours :data:`DISC_SPACING_RANGE_MM`
    apart and the largest total depth (the column of vertebrae is regular; a stray dip is not)."""
    cands = sorted(cands)
    if not cands:
        return []
    best = [c[1] for c in cands]
    prev: list[int | None] = [None] * len(cands)
    for b in range(len(cands)):
        for a in range(b):
            gap = cands[b][0] - cands[a][0]
            if DISC_SPACING_RANGE_MM[0] <= gap <= DISC_SPACING_RANGE_MM[1] and best[a] + cands[b][1] > best[b]:
                best[b], prev[b] = best[a] + cands[b][1], a
    end = int(np.argmax(best))
    chain = [end]
    while prev[chain[-1]] is not None:
        chain.append(prev[chain[-1]])  # type: ignore[arg-type]
    chain = chain[::-1]
    # shallow dips at the ends of the chain are fused remnants (S1-S2) or noise, not disc levels
    typical = float(np.median([cands[n][1] for n in chain]))
    while len(chain) > 2 and cands[chain[0]][1] < END_DISC_MIN_FRACTION * typical:
        chain = chain[1:]
    while len(chain) > 2 and cands[chain[-1]][1] < END_DISC_MIN_FRACTION * typical:
        chain = chain[:-1]
    return [cands[n][0] for n in chain]


def split_levels(
    bone: np.ndarray,
    smooth: np.ndarray,
    canal: np.ndarray,
    frame: SpineFrame,
    spacing: float,
    in_view: np.ndarray,
    hu: np.ndarray | None = None,
    *,
    ops: ArrayOps | None = None,
) -> Levels:
    """Split the spine's bone into vertebrae (and the sacrum) and find the discs between them.

    ``in_view`` marks the working-grid voxels inside the input's field of view; ``hu`` (the unsmoothed
    working-grid image) lets the watershed see the joint spaces between neighbouring vertebrae.
    The 3D distance map, closing, dilation and hole labelling run on ``ops``' backend (:mod:`.arrays`,
    NumPy by default); the watershed and convex hulls (scikit-image) and the 1D profiles stay on the CPU.
    """
    ops = ops or numpy_ops()
    from skimage.segmentation import watershed

    warnings: list[str] = []
    shape = bone.shape
    # voxels near the spine: within SPINE_RADIUS_MM of the frame line in every axial slice it covers
    pts = frame.points / spacing
    k_lo = max(0, int(np.floor(pts[:, 0].min())) - 2)
    k_hi = min(shape[0], int(np.ceil(pts[:, 0].max())) + 3)
    rad = int(np.ceil(SPINE_RADIUS_MM / spacing))
    j_lo = max(0, int(pts[:, 1].min()) - rad)
    j_hi = min(shape[1], int(pts[:, 1].max()) + rad + 1)
    i_lo = max(0, int(pts[:, 2].min()) - rad)
    i_hi = min(shape[2], int(pts[:, 2].max()) + rad + 1)
    box = (slice(k_lo, k_hi), slice(j_lo, j_hi), slice(i_lo, i_hi))
    b_bone = bone[box].copy()
    origin = np.array([k_lo, j_lo, i_lo])
    t, u, w = _frame_coordinates(frame, b_bone.shape, origin, spacing)

    # 2. disc profile
    band = (np.abs(u) < BODY_BAND_U_MM) & (w > BODY_BAND_W_MM[0]) & (w < BODY_BAND_W_MM[1])
    values = np.clip(smooth[box][band], -200.0, 1000.0)
    centres, prof = _profile(t[band], values, float(t[band].min()), float(t[band].max()))
    valid = ~np.isnan(prof)
    prof_f = np.interp(centres, centres[valid], prof[valid]) if valid.any() else np.zeros_like(centres)
    prof_f = ndimage.gaussian_filter1d(prof_f, 1.5, mode="nearest")
    # narrow dips (a disc between two endplates) stand out of a black top-hat; the wider, shallower dips in
    # the middle of low-density bodies (basivertebral veins) do not
    tophat = ndimage.grey_closing(prof_f, size=int(round(DISC_TOPHAT_MM))) - prof_f
    peaks, prominences = _peaks(tophat, distance=8, prominence=DISC_MIN_PROMINENCE_HU)
    # bone fraction in the band tells where the column of bodies is
    frac_c, frac = _profile(t[band], b_bone[band].astype(float), float(t[band].min()), float(t[band].max()))
    frac = np.nan_to_num(frac)
    bony = frac > 0.3
    cand = [
        (float(centres[p]), float(pr))
        for p, pr in zip(peaks, prominences)
        if bony[max(0, p - 15) : p].any() and bony[p : p + 15].any()
    ]
    disc_t = sorted(_regular_chain(cand), reverse=True)
    # at each disc level, disc-dark voxels between the bodies are never bone, even where osteophytes or a
    # bridged rim closed a ring around the disc and the marrow fill took it
    b_smooth = smooth[box]
    column = (np.abs(u) < 30.0) & (w > 5.0) & (w < 60.0) & (b_smooth < DISC_CLEAR_BELOW_HU)
    for td in disc_t:
        b_bone[column & (np.abs(t - td) <= DISC_CLEAR_HALF_MM)] = False
    # segments between discs, top first
    t_top = float(frac_c[bony].max()) if bony.any() else float(centres.max())
    t_bottom = float(frac_c[bony].min()) if bony.any() else float(centres.min())
    bounds = [t_top, *disc_t, t_bottom]
    segments = [(bounds[n], bounds[n + 1]) for n in range(len(bounds) - 1)]
    seeds = np.zeros(b_bone.shape, dtype=np.int32)
    body_zone = (np.abs(u) < 15.0) & (w > 9.0) & (w < 40.0) & b_bone
    kept: list[tuple[float, float]] = []
    # depth in the bone (mm), used for the pedicle zone and the watershed (b_bone is not changed in between)
    bone_depth = ops.distance_transform_edt(b_bone, sampling=spacing)
    inner = bone_depth >= 1.5
    pedicle_zone = (
        b_bone
        & inner
        & (np.abs(u) > PEDICLE_U_MM[0])
        & (np.abs(u) < PEDICLE_U_MM[1])
        & (w > PEDICLE_W_MM[0])
        & (w < PEDICLE_W_MM[1])
    )
    for hi, lo in segments:
        length = hi - lo
        if length < 8.0:
            continue
        margin = min(0.3 * length, 8.0)
        sel = body_zone & (t < hi - margin) & (t > lo + margin)
        if sel.sum() * spacing**3 < 300.0:
            continue
        kept.append((hi, lo))
        seeds[sel] = len(kept)
        # pedicle seeds: the posterior arch hangs on the pedicles, which leave the upper half of the body
        # just beside the canal; seeding them keeps each arch with its own body
        if hi - lo >= 15.0:
            ped = pedicle_zone & (t < hi - 3.0) & (t > lo + 0.45 * length) & (seeds == 0)
            seeds[ped] = len(kept)
    n = len(kept)
    vertebrae = np.zeros(shape, dtype=np.int32)
    discs = np.zeros(shape, dtype=np.int32)
    if n == 0:
        return Levels(vertebrae, discs, 0, False, disc_t, ["No vertebral body was found along the canal."])
    other = n + 1
    far = b_bone & ((np.abs(u) > SPINE_RADIUS_MM) | (w > 70.0) | (w < -90.0)) & (seeds == 0)
    seeds[far] = other
    depth = bone_depth.astype(np.float32)
    landscape = -depth
    if hu is not None:
        # thin dark gaps between bright cortices (facet joint spaces, the cleft between touching processes)
        # stand out of a black top-hat; marrow spaces, wider than the window, do not
        r = max(1, int(round(GAP_WINDOW_MM / spacing)))
        b_hu = np.clip(hu[box], -200.0, 1500.0)
        gaps = ops.grey_closing(b_hu, size=(2 * r + 1,) * 3) - b_hu
        landscape = landscape + gaps.astype(np.float32) * (GAP_BARRIER_MM_PER_100HU / 100.0)
    ws = watershed(landscape, markers=seeds, mask=b_bone)
    ws[ws == other] = 0

    # 4. sacrum: bone of the lowest segment runs on far below the last disc
    sacrum = False
    if n >= 2 and disc_t:
        lowest_disc = min(disc_t)
        below = (ws == n) & body_zone
        if below.any():
            extent = lowest_disc - float(t[below].min())
            outside = np.pad(~in_view, 1, constant_values=True)[tuple(slice(b.start + 1, b.stop + 1) for b in box)]
            cut = bool(np.any(ops.binary_dilation(ws == n, iterations=2, border_value=0) & outside))
            cut |= _touches_border(ws == n, box, shape)
            # a segment cut by the field of view may be a lumbar vertebra seen in part: ask for more
            needed = SACRUM_MIN_LENGTH_MM * (1.5 if cut else 1.0)
            sacrum = extent >= needed
            if not sacrum and extent >= SACRUM_MIN_LENGTH_MM:
                warnings.append(
                    "The lowest bone segment may be the sacrum but is cut by the field of view; it is not used "
                    "to number the levels."
                )
    # fill hollow bodies (low-density marrow not caught by the bone mask) inside each vertebra, keep canal out
    b_canal = canal[box]
    filled = np.zeros_like(ws)
    for label in range(1, n + 1):
        sl = ndimage.find_objects((ws == label).astype(np.int8))
        if not sl or sl[0] is None:
            continue
        sub = ws[sl[0]] == label
        full = sub.copy()
        for axis in range(3):
            full |= holes(sub, axis)  # one small box per vertebra: SciPy on every backend
        full &= ~b_canal[sl[0]]
        region = filled[sl[0]]
        region[full & (region == 0) & ((ws[sl[0]] == 0) | sub)] = label
    # vertebral bodies are convex in axial section: fill each body's hull where the marrow is too dark for the
    # bone mask (osteoporosis, basivertebral veins), never into the canal or another vertebra
    from skimage.morphology import convex_hull_image

    front = (w > BODY_HULL_MIN_W_MM) & (np.abs(u) < 35.0)
    # outside the field of view counts as closed (a body cut by the scan's first or last slice)
    beyond = np.pad(~in_view, 1, constant_values=True)[tuple(slice(b.start + 1, b.stop + 1) for b in box)]
    if box[0].start == 0:
        beyond[0] = True
    if box[0].stop == shape[0]:
        beyond[-1] = True
    allowed = (filled == 0) & ~b_canal & (b_smooth > -50.0) & front
    for td in disc_t:  # a ring of osteophytes around a disc is no body
        allowed &= np.abs(t - td) > BODY_HULL_DISC_MARGIN_MM
    for label in range(1, n + 1):
        body = (filled == label) & front
        # only under and over the vertebra's own bone (the endplates close the marrow above and below; the
        # notch between a pedicle and the body's lateral wall, which an axial hull would fill, is open there)
        capped = _enclosed_along((filled == label) | beyond, 0)
        for k in np.nonzero(body.any(axis=(1, 2)))[0]:
            if body[k].sum() < 4:
                continue
            hull = convex_hull_image(body[k]) & capped[k]
            add = hull & allowed[k]
            filled[k][add] = label
            allowed[k][add] = False
    # 5. discs between consecutive vertebrae
    cell = max(spacing, 2.0)
    for upper in range(1, n):
        lower = upper + 1
        hi_up, lo_up = kept[upper - 1]
        hi_lo, lo_lo = kept[lower - 1]
        t_mid = (lo_up + hi_lo) / 2
        win = (t > t_mid - 20.0) & (t < t_mid + 20.0) & (np.abs(u) < 25.0) & (w > 7.0) & (w < 55.0)
        up = win & (filled == upper)
        lo = win & (filled == lower)
        if not up.any() or not lo.any():
            continue
        cu = np.floor((u + 30.0) / cell).astype(np.int32)
        cw = np.floor(w / cell).astype(np.int32)
        ncw = int(60.0 / cell) + 2
        key = np.clip(cu, 0, 10_000) * ncw + np.clip(cw, 0, ncw - 1)
        size = int(key[win].max()) + 1
        up_min = np.full(size, np.inf)
        np.minimum.at(up_min, key[up], t[up])
        lo_max = np.full(size, -np.inf)
        np.maximum.at(lo_max, key[lo], t[lo])
        cand = win & (filled == 0) & ~b_canal & ~b_bone
        kc = key[cand]
        tc = t[cand]
        inside = (tc > lo_max[kc]) & (tc < up_min[kc]) & (up_min[kc] - lo_max[kc] < 25.0)
        disc = np.zeros(b_bone.shape, dtype=bool)
        disc[cand] = inside
        disc = largest_component(disc, ops=ops)
        if not disc.any():
            continue
        discs[box][disc] = upper
    vertebrae[box] = filled
    subregions = np.zeros(shape, dtype=np.uint8)
    subregions[box] = _subregions(filled, t, u, w, b_canal, n if sacrum else None)
    return Levels(vertebrae, discs, n, sacrum, disc_t, warnings, subregions)
