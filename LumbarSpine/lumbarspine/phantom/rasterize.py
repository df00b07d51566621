"""Crisp voxel-centre rasterisation of the anatomy into labels and tissue classes.

Every structure is an implicit shape in the curvilinear coordinates ``(s, u, w)`` (mm, see
:mod:`lumbarspine.phantom.anatomy`) with a *depth* function (mm, > 0 inside, roughly the distance to
its surface). A voxel takes a structure's label when its centre is inside (depth > 0). Bone voxels
less than :data:`~lumbarspine.phantom.anatomy.CORTEX_MM` deep are cortical, the rest cancellous
(this only changes the appearance). Paint order (later wins): soft tissue, epidural fat (bony canal,
tapering in the sacrum), discs (L5-S1 wedge-shaped down to the tilted S1 endplate), stenotic disc
bulge / ligamentum flavum, vertebrae L1..L5 (with optional endplate osteophytes) and sacrum, dural sac.
Facet joints: the inferior articular process of each vertebra ends
:data:`~lumbarspine.phantom.anatomy.FACET_GAP_MM` medial to the superior articular process below.
"""

from __future__ import annotations

import math

import numpy as np

from ..labels import EPIDURAL_FAT, SACRUM, SPINAL_CANAL
from .anatomy import (
    CANAL_SEMI_AP_MM,
    CANAL_SEMI_LATERAL_MM,
    CORTEX_MM,
    FACET_GAP_MM,
    S1_BODY_HEIGHT_MM,
    SAC_SEMI_AP_MM,
    SACRAL_ALA_HALF_WIDTH_MM,
    SACRAL_END_SEMI_AXES_MM,
    SACRUM_SEMI_AP_MM,
    SACRUM_SEMI_LATERAL_MM,
    SKIN_SEMI_AP_MM,
    SKIN_SEMI_LATERAL_MM,
    STENOSIS_HALF_LENGTH_MM,
    Layout,
    VertebraDims,
    canal_semi_axes,
    s1_top_offset,
    sac_semi_axes,
)

__all__ = [
    "Tissue",
    "rasterize",
    "inside_sac",
    "pedicle_depth",
    "SAC_END_BELOW_S1_MM",
    "PEDICLE_TAPER_PER_MM2",
    "PEDICLE_POST_MM",
]


class Tissue:
    """Tissue classes (uint8) that drive the appearance."""

    AIR = 0
    SOFT = 1
    FAT = 2
    CSF = 3
    ANNULUS = 4
    NUCLEUS = 5
    CORTICAL = 6
    CANCELLOUS = 7
    LIGAMENT = 8


SAC_END_BELOW_S1_MM = 20.0
"""The dural sac ends this far (mm of arc) below the S1 upper endplate."""
PEDICLE_TAPER_PER_MM2 = 0.05
"""Pedicle half-width grows by this times t**2 (mm, t = mm from the isthmus along the axis), capped at 3 mm."""
PEDICLE_POST_MM = 8.0
"""Pedicle length posterior to the isthmus along its axis (mm)."""
SAP_INNER_U_MM = 13.5
"""Medial face |u| (mm) of a superior articular process; the inferior articular process of the vertebra
above ends :data:`~lumbarspine.phantom.anatomy.FACET_GAP_MM` medial to it (the facet joint space)."""
OSTEOPHYTE_MM = 4.0
"""Thickness (mm) of an osteophyte lip at the endplate rim, radially outward from the body wall."""
OSTEOPHYTE_REACH_MM = 3.5
"""How far (mm) an osteophyte reaches from its endplate into the disc space (two facing lips leave at
least 1 mm of the 8-11 mm discs open)."""


def _ell_depth(a_coord: np.ndarray, b_coord: np.ndarray, a: float, b: float) -> np.ndarray:
    q = np.sqrt((a_coord / a) ** 2 + (b_coord / b) ** 2)
    return (1.0 - q) * min(a, b)


def _range_depth(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.minimum(x - lo, hi - x)


def _box(ss, uu, ww, s_rng, u_rng, w_rng) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.minimum(np.minimum(_range_depth(ss, *s_rng), _range_depth(uu, *u_rng)), _range_depth(ww, *w_rng))


def pedicle_axis(v: VertebraDims, side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Isthmus centre ``(u, w)``, anterior axis ``(du, dw)`` and lateral in-plane normal, all in mm / unit.

    ``side`` is +1 for the right pedicle (u > 0) and -1 for the left. The axis turns medially by
    ``v.medial_angle_deg`` as it goes anteriorly.
    """
    alpha = math.radians(v.medial_angle_deg)
    centre = np.array([side * v.pedicle_u, v.pedicle_w])
    axis = np.array([-side * math.sin(alpha), math.cos(alpha)])
    lateral = np.array([side * math.cos(alpha), math.sin(alpha)])
    return centre, axis, lateral


def pedicle_front_length(v: VertebraDims) -> float:
    """Pedicle length anterior to the isthmus along its axis (mm): it reaches 6 mm into the body.

    "Into the body" is measured where the pedicle's lateral wall meets the body's (elliptic, curved)
    posterior surface, not on the mid-line, so the tube never ends short of the body and leaves a
    notch at the pedicle-body junction (bone is continuous there, as in a real vertebra).
    """
    cos_a = math.cos(math.radians(v.medial_angle_deg))
    u_lateral = min(v.pedicle_u + v.pedicle_width / 2 + 3.0, 0.98 * v.body_semi_lateral)
    w_surface = v.body_w_center - v.body_semi_ap * math.sqrt(1.0 - (u_lateral / v.body_semi_lateral) ** 2)
    return (max(CANAL_SEMI_AP_MM, w_surface) + 6.0 - v.pedicle_w) / cos_a


def pedicle_depth(v: VertebraDims, ss: np.ndarray, uu: np.ndarray, ww: np.ndarray, side: int) -> np.ndarray:
    """Depth (mm) of the pedicle of ``v`` on ``side`` (+1 right, -1 left): an hourglass elliptic tube along
    :func:`pedicle_axis`; ``ss`` relative to the vertebra's centre, ``uu``/``ww`` lateral/AP (mm)."""
    c, d, e = pedicle_axis(v, side)
    du, dw = uu - c[0], ww - c[1]
    t = du * d[0] + dw * d[1]
    n = du * e[0] + dw * e[1]
    hw = v.pedicle_width / 2 + np.minimum(PEDICLE_TAPER_PER_MM2 * t * t, 3.0)
    hh = v.pedicle_height / 2
    q = np.sqrt((n / hw) ** 2 + ((ss - (v.pedicle_s - v.s_center)) / hh) ** 2)
    return np.minimum((1 - q) * np.minimum(hw, hh), np.minimum(t + PEDICLE_POST_MM, pedicle_front_length(v) - t))


def _vertebra_depth(
    v: VertebraDims, ss: np.ndarray, uu: np.ndarray, ww: np.ndarray, osteophytes: tuple[bool, bool] = (False, False)
) -> np.ndarray:
    """Depth (mm) of the union of one lumbar vertebra's parts; ``ss`` is relative to the body centre.

    ``osteophytes``: (upper endplate, lower endplate) rims that carry an osteophyte.
    """
    h2 = v.height / 2
    au, aw = CANAL_SEMI_LATERAL_MM, CANAL_SEMI_AP_MM
    # body
    depth = np.minimum(_ell_depth(uu, ww - v.body_w_center, v.body_semi_lateral, v.body_semi_ap), h2 - np.abs(ss))
    # pedicles (hourglass elliptic tubes)
    sp = v.pedicle_s - v.s_center
    for side in (1, -1):
        depth = np.maximum(depth, pedicle_depth(v, ss, uu, ww, side))
    # laminae: ring behind the bony canal
    ring = np.minimum(-_ell_depth(uu, ww, au, aw), _ell_depth(uu, ww, au + 7.5, aw + 6.0))
    lam = np.minimum(np.minimum(ring, -1.0 - ww), _range_depth(ss, -h2 - 3.0, h2 - 5.0))
    depth = np.maximum(depth, lam)
    # spinous process
    depth = np.maximum(
        depth, _box(ss, uu, ww, (-h2 - 4.0, h2 - 8.0), (-3.0, 3.0), (-(aw + v.spinous_length), -(aw + 3)))
    )
    au_abs = np.abs(uu)
    # transverse processes
    tp_u = (v.pedicle_u + 2.0, v.pedicle_u + v.pedicle_width / 2 + v.transverse_length)
    depth = np.maximum(depth, _box(ss, au_abs, ww, (sp - 4.0, sp + 4.0), tp_u, (-8.0, -2.0)))
    # superior and inferior articular processes
    depth = np.maximum(depth, _box(ss, au_abs, ww, (h2 - 6.0, h2 + 9.0), (SAP_INNER_U_MM, 19.5), (-13.0, -4.0)))
    depth = np.maximum(
        depth, _box(ss, au_abs, ww, (-h2 - 9.0, -h2 + 5.0), (8.0, SAP_INNER_U_MM - FACET_GAP_MM), (-15.0, -6.0))
    )
    # osteophytes: a bony lip around the anterior and lateral rim of an endplate, reaching into the disc space
    for end, on in ((1.0, osteophytes[0]), (-1.0, osteophytes[1])):
        if not on:
            continue
        q = np.sqrt((uu / v.body_semi_lateral) ** 2 + ((ww - v.body_w_center) / v.body_semi_ap) ** 2)
        radial = (q - 1.0) * min(v.body_semi_lateral, v.body_semi_ap)  # mm outside the body's side wall
        along = end * ss - h2  # mm beyond the endplate into the disc space (negative: inside the body)
        reach = OSTEOPHYTE_MM * (1.0 - np.clip(along, 0.0, None) / OSTEOPHYTE_REACH_MM)
        lip = np.minimum(np.minimum(reach - radial, radial + 1.0), np.minimum(along + 4.0, OSTEOPHYTE_REACH_MM - along))
        lip = np.where(ww > v.body_w_center - 0.3 * v.body_semi_ap, lip, -1.0)
        depth = np.maximum(depth, lip)
    return depth


def _sacrum_depth(ss: np.ndarray, uu: np.ndarray, ww: np.ndarray, length: float) -> np.ndarray:
    """Depth (mm) of the sacrum; ``ss`` is relative to ``layout.sacrum_s_top`` (negative = inferior).

    S1 body: an elliptic cylinder (:data:`SACRUM_SEMI_LATERAL_MM` x :data:`SACRUM_SEMI_AP_MM`) whose
    upper endplate is tilted forward (:func:`~lumbarspine.phantom.anatomy.s1_top_offset`, a wedge),
    :data:`~lumbarspine.phantom.anatomy.S1_BODY_HEIGHT_MM` tall at its back; below it the fused
    segments narrow to half the width and depth at the lower end. Alae: lateral masses beside S1
    reaching :data:`~lumbarspine.phantom.anatomy.SACRAL_ALA_HALF_WIDTH_MM`, narrowing downwards. The
    sacral canal (tapering, :func:`~lumbarspine.phantom.anatomy.canal_semi_axes`) is closed behind by
    the fused laminae and the median crest; S1 superior articular processes face the L5 facets.
    """
    top = -s1_top_offset(ww)  # the tilted S1 upper endplate (above 0 behind the body axis, below in front)
    f = np.clip(-ss / length, 0.0, 1.0)  # 0 at the top, 1 at the lower end
    a_body = SACRUM_SEMI_LATERAL_MM * (1.0 - 0.5 * np.clip((-ss - S1_BODY_HEIGHT_MM) / length, 0.0, 1.0))
    b_body = SACRUM_SEMI_AP_MM * (1.0 - 0.5 * np.clip((-ss - S1_BODY_HEIGHT_MM) / length, 0.0, 1.0))
    canal_a = CANAL_SEMI_LATERAL_MM + f * (SACRAL_END_SEMI_AXES_MM[0] - CANAL_SEMI_LATERAL_MM)
    canal_b = CANAL_SEMI_AP_MM + f * (SACRAL_END_SEMI_AXES_MM[1] - CANAL_SEMI_AP_MM)
    q = np.sqrt((uu / a_body) ** 2 + ((ww - (canal_b + b_body)) / b_body) ** 2)
    depth = np.minimum((1.0 - q) * np.minimum(a_body, b_body), np.minimum(top - ss, ss + length))
    au_abs = np.abs(uu)
    # alae / lateral masses: from the body sideways, their reach shrinking from S1 down to the lower end
    reach = SACRAL_ALA_HALF_WIDTH_MM - (SACRAL_ALA_HALF_WIDTH_MM - 14.0) * np.clip((-ss - 20.0) / (length - 20.0), 0, 1)
    ala = np.minimum(
        np.minimum(reach - au_abs, au_abs - 8.0),
        np.minimum(np.minimum(top - 3.0 - ss, ss + length), np.minimum(ww + 10.0, 24.0 - ww)),
    )
    ala = np.minimum(ala, -_ell_depth_arr(uu, ww, canal_a, canal_b))  # never inside the canal
    depth = np.maximum(depth, ala)
    depth = np.maximum(depth, _box(ss, au_abs, ww, (-6.0, 9.0), (SAP_INNER_U_MM, 19.5), (-13.0, -4.0)))  # S1 SAP
    # roof of the sacral canal (fused laminae) and median sacral crest
    ring = np.minimum(-_ell_depth_arr(uu, ww, canal_a, canal_b), _ell_depth_arr(uu, ww, canal_a + 7.5, canal_b + 6.0))
    depth = np.maximum(depth, np.minimum(np.minimum(ring, -1.0 - ww), _range_depth(ss, -length, -6.0)))
    crest = np.minimum(
        np.minimum(_range_depth(ss, -length, -8.0), _range_depth(uu, -3.0, 3.0)),
        np.minimum(-(canal_b + 3.0) - ww, ww + canal_b + 16.0),
    )
    return np.maximum(depth, crest)


def _ell_depth_arr(a_coord: np.ndarray, b_coord: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """:func:`_ell_depth` with per-point semi-axes."""
    q = np.sqrt((a_coord / a) ** 2 + (b_coord / b) ** 2)
    return (1.0 - q) * np.minimum(a, b)


def _paint_bone(labels, tissue, idx, depth, label) -> None:  # type: ignore[no-untyped-def]
    inside = depth > 0
    sel = idx[inside]
    labels[sel] = label
    tissue[sel] = np.where(depth[inside] < CORTEX_MM, Tissue.CORTICAL, Tissue.CANCELLOUS)


def inside_sac(s: np.ndarray, u: np.ndarray, w: np.ndarray, layout: Layout, stenosis: dict[str, float]) -> np.ndarray:
    """True where the point ``(s, u, w)`` (mm) lies inside the dural sac: the ellipse of
    :func:`~lumbarspine.phantom.anatomy.sac_semi_axes` in the plane perpendicular to the canal, from the
    top of the lumbar range down to :data:`SAC_END_BELOW_S1_MM` below the S1 upper endplate."""
    a_sac, b_sac = sac_semi_axes(s, layout, stenosis)
    inside = (u / a_sac) ** 2 + (w / b_sac) ** 2 <= 1.0
    inside &= (s >= layout.s_min) & (s <= layout.s_max) & (s >= layout.sacrum_s_top - SAC_END_BELOW_S1_MM)
    # the rasteriser only looks inside the bony canal's bounding box (the sac lies well within it)
    return inside & (np.abs(u) < CANAL_SEMI_LATERAL_MM + 0.5) & (np.abs(w) < CANAL_SEMI_AP_MM + 0.5)


def rasterize(
    s: np.ndarray,
    u: np.ndarray,
    w: np.ndarray,
    layout: Layout,
    stenosis: dict[str, float],
    osteophytes: tuple[str, ...] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """Label (uint8, TotalSpineSeg values) and tissue class (uint8) at points given in ``(s, u, w)`` mm.

    ``osteophytes``: disc levels (``"L3-L4"``...) whose two endplate rims carry an osteophyte (for
    L5-S1 only the L5 side).
    """
    n = s.size
    labels = np.zeros(n, dtype=np.uint8)
    tissue = np.zeros(n, dtype=np.uint8)
    tissue[(u / SKIN_SEMI_LATERAL_MM) ** 2 + (w / SKIN_SEMI_AP_MM) ** 2 <= 1.0] = Tissue.SOFT

    in_range = (s >= layout.s_min) & (s <= layout.s_max)
    canal_idx = np.flatnonzero(
        in_range & (np.abs(u) < CANAL_SEMI_LATERAL_MM + 0.5) & (np.abs(w) < CANAL_SEMI_AP_MM + 0.5)
    )
    cs, cu, cw = s[canal_idx], u[canal_idx], w[canal_idx]
    ca, cb = canal_semi_axes(cs, layout)
    canal = _ell_depth_arr(cu, cw, ca, cb) > 0
    labels[canal_idx[canal]] = EPIDURAL_FAT
    tissue[canal_idx[canal]] = Tissue.FAT

    # discs (L5-S1 reaches down to the tilted S1 endplate: a wedge, taller in front)
    for disc in layout.discs:
        lowest = disc.label == layout.discs[-1].label
        extra = 15.0 if lowest else 0.0
        idx = np.flatnonzero(
            (s - disc.s_center >= -disc.height / 2 - 1.0 - extra) & (s - disc.s_center <= disc.height / 2 + 1.0)
        )
        ss, uu, ww = s[idx] - disc.s_center, u[idx], w[idx]
        bottom = -disc.height / 2 - (s1_top_offset(ww) if lowest else 0.0)
        inside = (_ell_depth(uu, ww - disc.w_center, disc.semi_lateral, disc.semi_ap) > 0) & (ss <= disc.height / 2)
        inside &= ss >= bottom
        labels[idx[inside]] = disc.label
        nucleus = (
            inside
            & (
                _ell_depth(uu, ww - (disc.w_center - 0.1 * disc.semi_ap), 0.55 * disc.semi_lateral, 0.5 * disc.semi_ap)
                > 0
            )
            & (np.abs(ss) <= disc.height / 2 - 1.5)
        )
        tissue[idx[inside]] = Tissue.ANNULUS
        tissue[idx[nucleus]] = Tissue.NUCLEUS

    # stenosis: disc bulge in front of the narrowed sac, thick ligamentum flavum behind it
    a_sac, b_sac = sac_semi_axes(cs, layout, stenosis)
    narrowed = b_sac < SAC_SEMI_AP_MM - 0.5
    for disc in layout.discs:
        if disc.level not in stenosis:
            continue
        ds = np.abs(cs - disc.s_center)
        bulge = canal & narrowed & (ds <= disc.height / 2) & (cw >= b_sac + 0.5)
        labels[canal_idx[bulge]] = disc.label
        tissue[canal_idx[bulge]] = Tissue.ANNULUS
        lig = canal & narrowed & (ds <= 0.8 * STENOSIS_HALF_LENGTH_MM) & (cw <= -(b_sac + 0.5))
        labels[canal_idx[lig]] = 0
        tissue[canal_idx[lig]] = Tissue.LIGAMENT

    # vertebrae
    levels = [d.level for d in layout.discs]
    for n_v, v in enumerate(layout.vertebrae):
        above = n_v > 0 and levels[n_v - 1] in osteophytes
        below = levels[n_v] in osteophytes
        idx = np.flatnonzero((s > v.s_bottom - 10.0) & (s < v.s_top + 10.0) & (np.abs(u) < 50.0))
        depth = _vertebra_depth(v, s[idx] - v.s_center, u[idx], w[idx], (above, below))
        _paint_bone(labels, tissue, idx, depth, v.label)
    idx = np.flatnonzero((s > layout.s_min - 1.0) & (s < layout.sacrum_s_top + 10.0) & (np.abs(u) < 50.0))
    depth = _sacrum_depth(s[idx] - layout.sacrum_s_top, u[idx], w[idx], layout.sacrum_length)
    _paint_bone(labels, tissue, idx, depth, SACRUM)

    # dural sac (exact ellipse in the plane perpendicular to the canal)
    sac = inside_sac(cs, cu, cw, layout, stenosis)
    labels[canal_idx[sac]] = SPINAL_CANAL
    tissue[canal_idx[sac]] = Tissue.CSF
    return labels, tissue
