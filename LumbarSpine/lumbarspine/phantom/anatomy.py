"""The phantom's anatomy: the curved canal frame and the size of every structure.

Frame. The anatomy lives in a fixed RAS frame (x = Right, y = Anterior, z = Superior, mm). The canal
centreline is a circular arc in the mid-sagittal plane ``x = 0``, radius :data:`CANAL_RADIUS_MM`, with
its centre of curvature posterior at ``C = (0, -R, 0)`` (lumbar lordosis). The arc passes through
the RAS origin at arc length ``s = 0`` (near the middle of L3) with a vertical tangent there.

Curvilinear coordinates of a RAS point ``p = (x, y, z)``:

* ``theta = atan2(z, y + R)`` (radians), ``s = R * theta``: arc length along the centreline (mm,
  positive superior);
* ``u = x``: lateral offset (mm, positive to the patient's right);
* ``w = hypot(y + R, z) - R``: anterior offset from the centreline in the sagittal plane (mm).

Every plane ``theta = const`` contains the x axis direction and the radius, so it is exactly the
plane perpendicular to the canal at arc length ``s``, and ``(u, w)`` are Euclidean coordinates in
it. A structure defined as an ellipse in ``(u, w)`` therefore has an exactly known cross-section
perpendicular to the canal. Lengths along ``s`` are arc lengths on the centreline; at an anterior
offset ``w`` they stretch by ``(R + w) / R`` (so discs and bodies are slightly wedge-shaped).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CANAL_RADIUS_MM",
    "SAC_SEMI_LATERAL_MM",
    "SAC_SEMI_AP_MM",
    "NORMAL_SAC_AREA_MM2",
    "MIN_STENOSIS_AREA_MM2",
    "CANAL_SEMI_LATERAL_MM",
    "CANAL_SEMI_AP_MM",
    "STENOSIS_HALF_LENGTH_MM",
    "STENOSIS_AP_EXPONENT",
    "Centreline",
    "VertebraDims",
    "Layout",
    "build_layout",
    "sac_semi_axes",
    "canal_semi_axes",
    "s1_top_offset",
    "SACRUM_LENGTH_MM",
    "S1_BODY_HEIGHT_MM",
    "S1_WEDGE_DEG",
    "SACRAL_END_SEMI_AXES_MM",
    "FACET_GAP_MM",
]

CANAL_RADIUS_MM = 230.0
"""Radius of the canal centreline arc (mm); gives about 43 degrees of lordosis from L1 to S1."""

SAC_SEMI_LATERAL_MM = 8.0
"""Normal dural sac ellipse semi-axis, lateral (mm)."""
SAC_SEMI_AP_MM = 6.5
"""Normal dural sac ellipse semi-axis, antero-posterior (mm)."""
NORMAL_SAC_AREA_MM2 = math.pi * SAC_SEMI_LATERAL_MM * SAC_SEMI_AP_MM
"""Normal dural sac area perpendicular to the canal, about 163.4 mm2 (normal: 150-180 mm2)."""
MIN_STENOSIS_AREA_MM2 = 10.0
"""Smallest dural sac area a stenosis may request (mm2)."""

CANAL_SEMI_LATERAL_MM = 11.5
"""Bony canal ellipse semi-axis, lateral (mm); epidural fat fills the canal around the sac."""
CANAL_SEMI_AP_MM = 8.5
"""Bony canal ellipse semi-axis, antero-posterior (mm); the body's posterior wall is at w = +8.5."""

STENOSIS_HALF_LENGTH_MM = 10.0
"""Half-length along the canal (mm of arc) of the raised-cosine narrowing around a disc level."""
STENOSIS_AP_EXPONENT = 0.7
"""Share of the (log) area reduction taken by the AP semi-axis; the lateral one takes the rest."""

SKIN_SEMI_LATERAL_MM = 62.0
SKIN_SEMI_AP_MM = 64.0
CORTEX_MM = 1.3
"""Cortical shell thickness (mm) used for the appearance (labels do not distinguish it)."""


class Centreline:
    """The lordotic canal centreline and its curvilinear coordinates ``(s, u, w)`` (see module doc)."""

    def __init__(self, radius_mm: float = CANAL_RADIUS_MM) -> None:
        self.radius = float(radius_mm)

    def ras_to_suw(self, ras: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """RAS points ``(N, 3)`` mm -> ``(s, u, w)`` arrays in mm."""
        ras = np.asarray(ras, dtype=float).reshape(-1, 3)
        return self.xyz_to_suw(ras[:, 0], ras[:, 1], ras[:, 2])

    def xyz_to_suw(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """RAS coordinate arrays (mm) -> ``(s, u, w)`` arrays (mm)."""
        r = self.radius
        yc = y + r
        s = r * np.arctan2(z, yc)
        w = np.hypot(yc, z) - r
        return s, x, w

    def suw_to_ras(self, s: np.ndarray | float, u: np.ndarray | float, w: np.ndarray | float) -> np.ndarray:
        """``(s, u, w)`` mm -> RAS points ``(N, 3)`` mm (``(3,)`` for scalars)."""
        s, u, w = np.broadcast_arrays(np.asarray(s, float), np.asarray(u, float), np.asarray(w, float))
        theta = s / self.radius
        rho = self.radius + w
        out = np.stack([u, rho * np.cos(theta) - self.radius, rho * np.sin(theta)], axis=-1)
        return out

    def tangent(self, s: float) -> np.ndarray:
        """Unit canal tangent at arc length ``s`` (RAS, pointing superior)."""
        t = s / self.radius
        return np.array([0.0, -math.sin(t), math.cos(t)])

    def anterior(self, s: float) -> np.ndarray:
        """Unit anterior direction (the ``w`` axis) in the plane perpendicular to the canal at ``s`` (RAS)."""
        t = s / self.radius
        return np.array([0.0, math.cos(t), math.sin(t)])

    def plane_vectors(self, s: float, u: float, w: float, du: float, dw: float) -> tuple[np.ndarray, np.ndarray]:
        """RAS point of ``(s, u, w)`` and the RAS direction of the in-plane vector ``(du, dw)``."""
        point = self.suw_to_ras(s, u, w)
        direction = np.array([du, 0.0, 0.0]) + dw * self.anterior(s)
        return point, direction


@dataclass(frozen=True)
class VertebraDims:
    """Sizes of one lumbar vertebra (mm, degrees). ``s_*`` are arc lengths on the centreline."""

    name: str
    label: int
    s_center: float
    height: float  # body height along the centreline arc, mm
    body_semi_lateral: float  # mm
    body_semi_ap: float  # mm
    pedicle_width: float  # isthmus width, transverse, mm
    pedicle_height: float  # along s, mm
    medial_angle_deg: float  # pedicle axis toward the midline, degrees
    transverse_length: float  # transverse process length beyond the pedicle, mm
    spinous_length: float  # mm

    @property
    def body_w_center(self) -> float:
        """Anterior offset of the body axis from the canal centreline (mm)."""
        return CANAL_SEMI_AP_MM + self.body_semi_ap

    @property
    def s_top(self) -> float:
        return self.s_center + self.height / 2

    @property
    def s_bottom(self) -> float:
        return self.s_center - self.height / 2

    @property
    def pedicle_s(self) -> float:
        """Arc length of the pedicle isthmus centre (pedicles sit on the upper half of the body)."""
        return self.s_top - self.pedicle_height / 2 - 2.0

    @property
    def pedicle_u(self) -> float:
        """Lateral offset |u| of the pedicle isthmus centre (mm)."""
        return CANAL_SEMI_LATERAL_MM + 1.0 + self.pedicle_width / 2

    @property
    def pedicle_w(self) -> float:
        """Anterior offset w of the pedicle isthmus centre (mm)."""
        return 2.0


@dataclass(frozen=True)
class DiscDims:
    """One intervertebral disc (mm); ``s_center`` is the disc level used for the stenosis truth."""

    level: str
    label: int
    s_center: float
    height: float  # along the centreline arc, mm
    semi_lateral: float
    semi_ap: float
    w_center: float


@dataclass(frozen=True)
class Layout:
    """All structures along the canal (bottom of sacrum to top of the phantom)."""

    vertebrae: tuple[VertebraDims, ...]
    discs: tuple[DiscDims, ...]
    sacrum_s_top: float
    sacrum_length: float
    s_min: float
    s_max: float
    u_extent: float
    w_min: float
    w_max: float
    lattice_s_min: float = 0.0  # lower end of the range the voxel lattice is anchored to (see grid.py)


# name, label, body height, body semi-lateral, body semi-AP, pedicle width, pedicle height, TP length, SP length
_VERTEBRAE = (
    ("L1", 41, 24.0, 21.0, 15.0, 7.0, 14.0, 14.0, 30.0),
    ("L2", 42, 25.0, 22.0, 15.5, 7.5, 14.0, 18.0, 32.0),
    ("L3", 43, 25.0, 23.0, 16.0, 8.0, 14.0, 22.0, 33.0),
    ("L4", 44, 25.0, 24.0, 16.5, 9.0, 14.0, 19.0, 31.0),
    ("L5", 45, 24.0, 25.0, 16.5, 11.0, 14.0, 16.0, 27.0),
)
_DISCS = (("L1-L2", 92, 8.0), ("L2-L3", 93, 9.0), ("L3-L4", 94, 10.0), ("L4-L5", 95, 11.0), ("L5-S1", 100, 11.0))
SACRUM_LENGTH_MM = 55.0
"""Length of the phantom's sacrum along the canal arc (S1, S2 and the top of S3), mm."""
SACRUM_SEMI_LATERAL_MM = 25.0
"""S1 body ellipse semi-axis, lateral (mm)."""
SACRUM_SEMI_AP_MM = 17.0
"""S1 body ellipse semi-axis, antero-posterior (mm)."""
LATTICE_SACRUM_MM = 35.0
"""The voxel lattice is anchored to the box that ends this far below the S1 endplate (the length of the
first phantom's sacrum block), so that every grid keeps the voxel positions, and hence the exact
rasterisation of the canal, it had before the sacrum grew; the longer sacrum adds whole voxels."""
S1_BODY_HEIGHT_MM = 28.0
"""Height of the S1 body at its posterior wall (mm of arc); the fused S2.. segments follow, narrowing."""
S1_WEDGE_DEG = 15.0
"""The S1 upper endplate is turned this much further forward than the plane perpendicular to the canal
(about the S1 body axis), so the L5-S1 disc is wedge-shaped and the sacral slope (angle of the
endplate to the horizontal) is about 21 + 15 = 36 degrees (normal adults: 35-45 degrees)."""
SACRAL_END_SEMI_AXES_MM = (6.0, 3.5)
"""The sacral canal tapers linearly from the lumbar canal's semi-axes at the S1 upper endplate to these
(lateral, AP; mm) at the lower end of the phantom's sacrum."""
SACRAL_ALA_HALF_WIDTH_MM = 48.0
"""Lateral reach of the sacral alae from the midline at the level of S1 (mm)."""
FACET_GAP_MM = 1.5
"""Gap between the inferior articular process of a vertebra and the superior articular process of the
one below (facet joint space, mm; normal 1-2 mm)."""
TOP_MARGIN_MM = 12.0


def build_layout() -> Layout:
    """Stack L1..L5 and the discs along ``s`` (centred so that the L1-top..S1-top span is centred on 0)."""
    total = sum(v[2] for v in _VERTEBRAE) + sum(d[2] for d in _DISCS)
    s = total / 2.0  # top of L1
    verts: list[VertebraDims] = []
    discs: list[DiscDims] = []
    for n, (name, label, h, wl, wa, pw, ph, tp, sp) in enumerate(_VERTEBRAE, start=1):
        verts.append(VertebraDims(name, label, s - h / 2, h, wl, wa, pw, ph, 5.0 * n, tp, sp))
        s -= h
        level, dlabel, dh = _DISCS[n - 1]
        lower_lat = _VERTEBRAE[n][3] if n < 5 else SACRUM_SEMI_LATERAL_MM
        lower_ap = _VERTEBRAE[n][4] if n < 5 else SACRUM_SEMI_AP_MM
        semi_lat = (wl + lower_lat) / 2 + 0.5
        semi_ap = (wa + lower_ap) / 2 + 0.5
        discs.append(DiscDims(level, dlabel, s - dh / 2, dh, semi_lat, semi_ap, CANAL_SEMI_AP_MM + semi_ap - 0.5))
        s -= dh
    sacrum_top = s
    return Layout(
        vertebrae=tuple(verts),
        discs=tuple(discs),
        sacrum_s_top=sacrum_top,
        sacrum_length=SACRUM_LENGTH_MM,
        s_min=sacrum_top - SACRUM_LENGTH_MM,
        s_max=total / 2.0 + TOP_MARGIN_MM,
        u_extent=48.0,
        w_min=-(CANAL_SEMI_AP_MM + max(v[8] for v in _VERTEBRAE) + 2.0),
        w_max=CANAL_SEMI_AP_MM + 2 * SACRUM_SEMI_AP_MM + 1.0,
        lattice_s_min=sacrum_top - LATTICE_SACRUM_MM,
    )


def s1_top_offset(w: np.ndarray | float) -> np.ndarray:
    """How far (mm of arc) the S1 upper endplate lies below ``layout.sacrum_s_top`` at anterior offset ``w`` (mm).

    The endplate is the plane perpendicular to the canal at ``sacrum_s_top`` turned forward by
    :data:`S1_WEDGE_DEG` about the S1 body axis (``w = CANAL_SEMI_AP_MM + SACRUM_SEMI_AP_MM``): lower in
    front of the axis, higher behind it (negative values), so the L5-S1 disc is a wedge, taller in
    front, whose centre stays at the disc level.
    """
    axis = CANAL_SEMI_AP_MM + SACRUM_SEMI_AP_MM
    return (np.asarray(w, dtype=float) - axis) * math.tan(math.radians(S1_WEDGE_DEG))


def canal_semi_axes(s: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """Bony canal semi-axes ``(lateral, AP)`` in mm at arc lengths ``s``: constant above the S1 upper
    endplate, tapering linearly to :data:`SACRAL_END_SEMI_AXES_MM` at the sacrum's lower end."""
    s = np.asarray(s, dtype=float)
    f = np.clip((layout.sacrum_s_top - s) / layout.sacrum_length, 0.0, 1.0)
    a = CANAL_SEMI_LATERAL_MM + f * (SACRAL_END_SEMI_AXES_MM[0] - CANAL_SEMI_LATERAL_MM)
    b = CANAL_SEMI_AP_MM + f * (SACRAL_END_SEMI_AXES_MM[1] - CANAL_SEMI_AP_MM)
    return a, b


def sac_semi_axes(s: np.ndarray, layout: Layout, stenosis: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Dural sac semi-axes ``(a_lateral, b_ap)`` in mm at arc lengths ``s``.

    Normal: :data:`SAC_SEMI_LATERAL_MM` x :data:`SAC_SEMI_AP_MM`. At a stenotic disc level the area
    ratio ``f = A / A_normal`` is reached exactly at the disc's ``s`` and blends back to 1 with a
    raised cosine over +-:data:`STENOSIS_HALF_LENGTH_MM`: ``b *= f**(p g)``, ``a *= f**((1-p) g)``
    with ``g = (1 + cos(pi ds / L)) / 2`` and ``p`` = :data:`STENOSIS_AP_EXPONENT`.
    """
    s = np.asarray(s, dtype=float)
    log_b = np.zeros_like(s)
    log_a = np.zeros_like(s)
    for disc in layout.discs:
        area = stenosis.get(disc.level)
        if area is None:
            continue
        lf = math.log(area / NORMAL_SAC_AREA_MM2)
        ds = np.abs(s - disc.s_center)
        g = np.where(ds < STENOSIS_HALF_LENGTH_MM, 0.5 * (1 + np.cos(np.pi * ds / STENOSIS_HALF_LENGTH_MM)), 0.0)
        log_b = log_b + STENOSIS_AP_EXPONENT * lf * g
        log_a = log_a + (1 - STENOSIS_AP_EXPONENT) * lf * g
    return SAC_SEMI_LATERAL_MM * np.exp(log_a), SAC_SEMI_AP_MM * np.exp(log_b)
