"""Pedicle screws sized to the patient, from the vertebra instance masks alone.

For every lumbar vertebra present (L1-L5) and S1, on each side:

1. **Frame** (:mod:`lumbarspine.planning.frame`): body centre, endplate normal (superior), canal
   centre (vertebral foramen), anterior and right axes.
2. **Pedicle**: planes perpendicular to the anterior axis, from the body's posterior wall back to the
   canal centre, cut the bone lateral to the canal on that side; there the only bone joining the body
   to the posterior elements is the pedicle, and its section centroids give a first pedicle axis.
   Sections perpendicular to that axis, every :data:`SECTION_STEP_MM`, are then measured; the
   narrowest one (width across the pedicle in the vertebra's transverse plane) is the **isthmus**, and
   the line fitted through the section centroids around it is the **pedicle axis** (repeated twice).
   S1 has no slender pedicle: its "pedicle" is the bone within :data:`S1_PEDICLE_LATERAL_MM` lateral
   of the canal and within :data:`S1_PEDICLE_HEIGHT_MM` below that bone's top (the fused sacrum runs on
   into S2 without a boundary), and its screw converges by :attr:`PlanningParameters.s1_medial_angle_deg`
   (25-30 deg toward the promontory, clinical-reference.md) parallel to the S1 upper endplate (the S1 frame's
   transverse plane is that endplate, :mod:`lumbarspine.planning.frame`; within 3 deg on the phantom).
3. **Trajectory** (:data:`TRAJECTORIES`; default ``"pedicle-axis"``): the straight line along the
   pedicle's own axis through the isthmus centre. This is the anatomical trajectory whose medial
   angulation the reference values describe (about 5 deg x level number, L1 5 deg ... L5 25 deg,
   Dickman 1992, ``shared/docs/clinical-reference.md``): the planner measures the patient's pedicle
   instead of assuming the average. ``"pedicle-triangle"``: from the vertebra's anterior point
   (anterior cortex on the mid-line) through the isthmus centre. ``"roy-camille"``, ``"magerl"``,
   ``"weinstein"``: the classic entry points (clinical-reference.md), which need the sub-regions
   (articular and transverse processes); without them the screw is refused with that reason.
4. **Diameter**: the largest of :attr:`PlanningParameters.diameters_mm` at most
   :attr:`PlanningParameters.max_diameter_fraction` (80 %) of the isthmus width (clinical-reference.md).
5. **Entry**: going back from the isthmus along the trajectory, the last point where the screw's whole
   cross-section is still in bone (with :attr:`PlanningParameters.clearance_mm`); the screw head sits on
   the bone surface just behind it. With a classic entry point the entry is the technique's point on the
   dorsal bone surface, moved along the trajectory to where that line enters the bone (where the screw enters
   the bone at the posterior cortex, clinical-reference.md); the screw crossing that cortex is its entry, not a
   breach, and the planner applies the evaluation's own rule to it (:func:`lumbarspine.planning.evaluate.
   counted_surface`: each surface line counts from where it reaches the bone, within 1.75 radii past the
   axis' entry; beyond that the whole ring keeps the clearance). **Tip**: at :attr:`PlanningParameters.body_depth_fraction` (80 %) of
   the body depth along the trajectory (a convention, clinical-reference.md), never closer than
   :attr:`PlanningParameters.anterior_margin_mm` to the anterior cortex and never with the screw's
   surface outside the bone, nor with its surface across the vertebra's mid-sagittal plane
   (:data:`MIDLINE_CLEARANCE_MM`: a convergent pair never meets); the **length** is the longest of
   :attr:`PlanningParameters.lengths_mm` that ends there.

A side that cannot take a screw (pedicle narrower than the smallest size / 0.8, no pedicle found,
cut by the field of view, not enough bone for the shortest screw) is refused with its reason.
Angles are in the vertebra's own frame: ``medial_angle_deg`` is the trajectory's angle toward the
mid-line from the anterior axis in the transverse (endplate) plane; ``caudal_angle_deg`` its angle
below that plane (positive: the tip lies caudal to the entry).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..anatomy.model import SpineAnatomy
from ..progress import CancelCallback, ProgressCallback, check_cancel
from .evaluate import ENTRY_ZONE_RADII, PlanningMaps, counted_surface, evaluate_screw, ring_directions
from .frame import VertebraFrame, unit, vertebra_frame

__all__ = [
    "PlanningParameters",
    "ScrewPlan",
    "RefusedScrew",
    "Isthmus",
    "SCREW_DIAMETERS_MM",
    "SCREW_LENGTHS_MM",
    "TRAJECTORIES",
    "find_isthmus",
    "plan_screws",
    "plan_one_screw",
    "SIDES",
]

SCREW_DIAMETERS_MM: tuple[float, ...] = (4.5, 5.0, 5.5, 6.0, 6.5, 7.0, 7.5)
"""Standard pedicle screw diameters (mm) offered by common lumbar systems."""
SCREW_LENGTHS_MM: tuple[float, ...] = (30.0, 35.0, 40.0, 45.0, 50.0, 55.0)
"""Standard lumbar pedicle screw lengths (mm), 5 mm steps."""
TRAJECTORIES: tuple[str, ...] = ("pedicle-axis", "pedicle-triangle", "roy-camille", "magerl", "weinstein")
"""Trajectory choices; ``"pedicle-axis"`` is the default (see the module docstring and its source)."""
SIDES: tuple[str, ...] = ("left", "right")
LUMBAR_NAMES = ("L1", "L2", "L3", "L4", "L5", "S1")

SECTION_STEP_MM = 0.5
"""Spacing (mm) of the pedicle sections along its axis."""
SECTION_PIXEL_MM = 0.4
"""Pixel size (mm) of a pedicle section."""
SECTION_HALF_SIZE_MM = 16.0
"""Half side (mm) of a pedicle section's square; a section touching its edge is not a closed pedicle."""
PEDICLE_PASSES = 4
"""Passes of the transverse correction of the pedicle axis."""
PEDICLE_CHORD_FACTOR = 1.25
"""Chords across the pedicle up to this times the narrowest one count as pedicle when fitting its axis.
Measured on the phantom's labels (three grids, L1-L5): the largest axis error is 3.5 deg at 1.2, 2.8 at
1.25, 2.3 at 1.3, 3.0 at 1.4 and 8 at 1.5 (the run then reaches where the pedicle merges with the body);
on the phantom's CT segmentation 2.7 deg at 1.2, 3.2 at 1.25 and 5 at 1.3. 1.25 keeps both under the
issue's targets (3 deg on labels); the fit over such short runs (4-6 mm) stays sensitive to this value.
Checked beyond the test grids at 1.25: labels on six more grids (1.0 / 1.5 mm axial, 1.5 mm oblique,
1.2 mm oblique left-handed, sagittal, 0.8 x 0.8 x 2.5 mm) at most 2.8 deg (mean 1.3); CT segmentations
at 1.5 mm axial, 1.2 mm oblique and 0.8 x 0.8 x 2.5 mm: 12/12 screws, at most 3.9 deg."""
S1_PEDICLE_LATERAL_MM = 15.0
"""The S1 'pedicle' is the bone up to this far (mm) lateral of the canal's lateral edge."""
MIDLINE_CLEARANCE_MM = 0.5
"""A screw's surface stays this far (mm) on its own side of the vertebra's mid-sagittal plane, so the two
screws of a convergent pair (S1: 25-30 deg toward the promontory) never touch."""
S1_PEDICLE_HEIGHT_MM = 20.0
"""The S1 'pedicle' is the bone within this height (mm, along the superior axis) below the top of the sacrum's
bone lateral of the canal: the S1 pedicle and ala start at the S1 upper endplate, and the fused sacrum has no
S1-S2 boundary to stop at (S1 body height about 28 mm at its back)."""
REFERENCE_MEDIAL_DEG: dict[str, float] = {"L1": 5.0, "L2": 10.0, "L3": 15.0, "L4": 20.0, "L5": 25.0}
"""Reference medial (transverse) angulation of the lumbar pedicles, about 5 deg x level number (Dickman 1992,
``shared/docs/clinical-reference.md``); used on a coarse CT only (see :func:`plan_one_screw`)."""
REFERENCE_ANGLE_TOLERANCE_DEG = 10.0
"""On a coarse CT a measured pedicle axis more than this (deg) off :data:`REFERENCE_MEDIAL_DEG` is not trusted."""
TALL_CHORD_MM = 20.0
"""Half reach (mm) of the cranio-caudal chord through a pedicle when the usual 12 mm runs out of it (on a coarse
CT the pedicle, the articular processes and the lamina can merge into one bone bridge taller than 24 mm)."""
ISTHMUS_RESWEEP_MM = 3.0
"""Reach (mm, along the final pedicle axis) of the search for the narrowest chord when the last turn of the axis
swung the chord at the isthmus out of the pedicle (see :func:`_narrowest_across`)."""
S1_ACROSS_MM = 4.5
"""How far (mm) the S1 trajectory may move across its 'pedicle' when the search through its centre finds too little
bone (see :func:`_s1_trajectory`). Real 3 mm CT, with S1's canal found within +-15 mm of its body centre
(:data:`lumbarspine.planning.frame.SACRUM_PROJECTION_HALF_HEIGHT_MM`): at 3 mm S1 left kept 21 mm of bone
(refused), at 4.5 mm both S1 sides take a 45 mm screw, grade A (measured 2026-12-03)."""
S1_WINDOW_HALF_HEIGHT_MM = 45.0
"""Half height (mm) of the window searched for the S1 pedicle (the sacrum's bone lateral of the canal is tall)."""


@dataclass(frozen=True)
class PlanningParameters:
    """Screw sizing rules (defaults and sources: ``shared/docs/clinical-reference.md``).

    Attributes:
        diameters_mm: available diameters (mm).
        lengths_mm: available lengths (mm).
        max_diameter_fraction: the diameter is at most this share of the isthmus width (0.8: "at most
            about 80 % of the pedicle isthmus width").
        body_depth_fraction: the tip aims at this share of the body depth along the trajectory, from
            the body's posterior wall (0.8, a convention).
        anterior_margin_mm: the tip stays at least this far (mm) behind the anterior cortex.
        clearance_mm: the screw's surface keeps at least this much bone (mm, signed distance) around it.
        s1_medial_angle_deg: S1 medial convergence toward the promontory (25-30 deg; 27.5).
        trajectory: one of :data:`TRAJECTORIES`.
        sagittal: ``"endplate"`` (default): the screw runs parallel to the vertebra's endplates (the
            straight-forward sagittal trajectory; the transverse angle is the pedicle's own);
            ``"pedicle"``: it also follows the pedicle's measured cranio-caudal tilt.
        no_go_margin_mm: margin (mm) of the no-go zone the screws are checked against.
    """

    diameters_mm: tuple[float, ...] = SCREW_DIAMETERS_MM
    lengths_mm: tuple[float, ...] = SCREW_LENGTHS_MM
    max_diameter_fraction: float = 0.8
    body_depth_fraction: float = 0.8
    anterior_margin_mm: float = 3.0
    clearance_mm: float = 0.25
    s1_medial_angle_deg: float = 27.5
    trajectory: str = "pedicle-axis"
    sagittal: str = "endplate"
    no_go_margin_mm: float = 2.0

    def __post_init__(self) -> None:
        if self.sagittal not in ("endplate", "pedicle"):
            raise ValueError(f"sagittal must be 'endplate' or 'pedicle'; got {self.sagittal!r}.")
        if self.trajectory not in TRAJECTORIES:
            raise ValueError(f"Unknown trajectory {self.trajectory!r}: choose one of {', '.join(TRAJECTORIES)}.")
        if not self.diameters_mm or min(self.diameters_mm) <= 0:
            raise ValueError("diameters_mm must list positive screw diameters in mm.")
        if not self.lengths_mm or min(self.lengths_mm) <= 0:
            raise ValueError("lengths_mm must list positive screw lengths in mm.")
        if not 0.3 <= self.max_diameter_fraction <= 1.0:
            raise ValueError(f"max_diameter_fraction must be between 0.3 and 1; got {self.max_diameter_fraction}.")
        if not 0.3 <= self.body_depth_fraction <= 1.0:
            raise ValueError(f"body_depth_fraction must be between 0.3 and 1; got {self.body_depth_fraction}.")
        if not 0.0 <= self.s1_medial_angle_deg <= 45.0:
            raise ValueError(f"s1_medial_angle_deg must be between 0 and 45; got {self.s1_medial_angle_deg}.")
        object.__setattr__(self, "diameters_mm", tuple(sorted(float(d) for d in self.diameters_mm)))
        object.__setattr__(self, "lengths_mm", tuple(sorted(float(v) for v in self.lengths_mm)))

    @property
    def min_isthmus_mm(self) -> float:
        """Narrowest isthmus (mm) that takes the smallest screw."""
        return self.diameters_mm[0] / self.max_diameter_fraction


@dataclass(frozen=True)
class Isthmus:
    """The narrowest section of one pedicle (RAS mm, unit axis pointing anteriorly)."""

    center: np.ndarray
    axis: np.ndarray
    width_mm: float
    height_mm: float
    across: np.ndarray


@dataclass(frozen=True)
class ScrewPlan:
    """One planned screw; ``evaluation`` is :func:`evaluate_screw`'s result for it."""

    vertebra: str
    side: str
    entry_ras: np.ndarray
    tip_ras: np.ndarray
    diameter_mm: float
    length_mm: float
    medial_angle_deg: float
    caudal_angle_deg: float
    isthmus_width_mm: float
    isthmus_center_ras: np.ndarray
    trajectory: str
    evaluation: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.vertebra} {self.side}"

    @property
    def direction(self) -> np.ndarray:
        return unit(self.tip_ras - self.entry_ras)

    def to_dict(self) -> dict[str, Any]:
        def r(values: Any) -> list[float]:
            return [round(float(v), 3) for v in values]

        ev = self.evaluation
        return {
            "vertebra": self.vertebra,
            "side": self.side,
            "name": self.name,
            "entry_ras": r(self.entry_ras),
            "tip_ras": r(self.tip_ras),
            "direction_ras": r(self.direction),
            "diameter_mm": self.diameter_mm,
            "length_mm": self.length_mm,
            "medial_angle_deg": round(self.medial_angle_deg, 2),
            "caudal_angle_deg": round(self.caudal_angle_deg, 2),
            "isthmus_width_mm": round(self.isthmus_width_mm, 2),
            "isthmus_center_ras": r(self.isthmus_center_ras),
            "trajectory": self.trajectory,
            "breach_mm": ev.get("breach_mm"),
            "gertzbein_robbins": ev.get("gertzbein_robbins"),
            "min_distance_to_dural_sac_mm": ev.get("min_distance_to_dural_sac_mm"),
            "min_distance_to_no_go_zone_mm": ev.get("min_distance_to_no_go_zone_mm"),
            "enters_no_go_zone": ev.get("enters_no_go_zone"),
            **(
                {"surface_in_hu_bone_fraction": ev["surface_in_hu_bone_fraction"], "bone": ev.get("bone")}
                if "surface_in_hu_bone_fraction" in ev
                else {}
            ),
        }


@dataclass(frozen=True)
class RefusedScrew:
    """A side that cannot take a screw, and why."""

    vertebra: str
    side: str
    reason: str
    isthmus_width_mm: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "vertebra": self.vertebra,
            "side": self.side,
            "reason": self.reason,
            "isthmus_width_mm": None if self.isthmus_width_mm is None else round(self.isthmus_width_mm, 2),
        }


class _Refuse(Exception):
    def __init__(self, reason: str, width: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.width = width


# ------------------------------------------------------------------------------------------- sections
def _section(
    frame: VertebraFrame, centre: np.ndarray, e1: np.ndarray, e2: np.ndarray, near: np.ndarray | None = None
) -> dict[str, Any] | None:
    """The bone section in the plane spanned by ``e1, e2`` through ``centre``: the 2D component at
    (or nearest) ``near`` (default the centre). None when no bone, or the piece touches the square's edge."""
    from scipy import ndimage

    half, px = SECTION_HALF_SIZE_MM, SECTION_PIXEL_MM
    g = np.arange(-half, half + 1e-9, px)
    a, b = np.meshgrid(g, g, indexing="ij")
    points = centre + a.reshape(-1, 1) * e1 + b.reshape(-1, 1) * e2
    depth = frame.sdf.sample(points).reshape(a.shape)
    bone = depth > 0
    if not bone.any():
        return None
    lab, n = ndimage.label(bone)
    target = np.zeros(2) if near is None else np.array([np.dot(near - centre, e1), np.dot(near - centre, e2)])
    ia, ib = (np.clip(np.rint((target + half) / px).astype(int), 0, len(g) - 1)).tolist()
    index = int(lab[ia, ib])
    if index == 0:
        pix = np.argwhere(bone)
        dist = (g[pix[:, 0]] - target[0]) ** 2 + (g[pix[:, 1]] - target[1]) ** 2
        if float(dist.min()) > 9.0:  # nothing within 3 mm
            return None
        k = int(np.argmin(dist))
        index = int(lab[pix[k, 0], pix[k, 1]])
    piece = lab == index
    if piece[0, :].any() or piece[-1, :].any() or piece[:, 0].any() or piece[:, -1].any():
        return None
    ca, cb = float(a[piece].mean()), float(b[piece].mean())
    return {"centroid": centre + ca * e1 + cb * e2, "area": float(piece.sum()) * px * px}


def _chord(frame: VertebraFrame, point: np.ndarray, direction: np.ndarray, max_mm: float = 20.0) -> float:
    """Length (mm) of the bone chord through ``point`` along ``direction`` (sub-voxel zero crossings)."""
    step = 0.1
    t = np.arange(-max_mm, max_mm + 1e-9, step)
    values = frame.sdf.sample(point[None, :] + t[:, None] * direction[None, :])
    mid = len(t) // 2
    if values[mid] <= 0:
        return 0.0
    ends = []
    for sign in (1, -1):
        i = mid
        while 0 < i < len(t) - 1 and values[i + sign] > 0:
            i += sign
        j = i + sign
        if not 0 <= j < len(t):
            ends.append(t[i])
            continue
        v0, v1 = values[i], values[j]
        ends.append(t[i] + sign * step * v0 / (v0 - v1))
    return float(abs(ends[0] - ends[1]))


def _frame_axes(frame: VertebraFrame, axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors across a pedicle with ``axis``: transverse (in the endplate plane) and cranio-caudal."""
    across = np.cross(axis, frame.superior)
    across = unit(across)
    up = unit(np.cross(across, axis))
    return across, up


def _side_sign(side: str) -> float:
    return 1.0 if side == "right" else -1.0


def find_isthmus(frame: VertebraFrame, side: str, sagittal: str = "endplate", *, coarse: bool = False) -> Isthmus:
    """The pedicle isthmus of ``frame``'s vertebra on ``side`` (see the module docstring).

    ``coarse`` (the bone refined from a coarse CT, :mod:`lumbarspine.planning.refine`): a cranio-caudal chord
    that runs out of the usual 12 mm is followed to :data:`TALL_CHORD_MM`, and the width is measured again
    across the pedicle's centre height (the first chord may run below or above it on an irregular section).

    Raises:
        _Refuse: no pedicle found on that side.
    """
    sign = _side_sign(side)
    lateral = sign * frame.right
    s1 = frame.name == "S1"
    # 1. sections perpendicular to the anterior axis, between the body and the canal centre
    wall = float(np.dot(frame.posterior_wall - frame.canal_center, frame.anterior))
    half_width = frame.canal_half_width_mm
    reach = half_width + (S1_PEDICLE_LATERAL_MM if s1 else 30.0)
    centroids = []
    widths = []
    for a0 in np.arange(min(wall - 1.0, 12.0), 0.0, -0.5):
        origin = frame.canal_center + a0 * frame.anterior
        # a window lateral of the mid-line on this side: r from 2 mm to ``reach``, s within +-25 mm
        step = SECTION_PIXEL_MM
        r = np.arange(2.0, reach, step)
        s = np.arange(-S1_WINDOW_HALF_HEIGHT_MM if s1 else -25.0, S1_WINDOW_HALF_HEIGHT_MM if s1 else 25.0, step)
        rr, ss = np.meshgrid(r, s, indexing="ij")
        points = origin + rr.reshape(-1, 1) * lateral + ss.reshape(-1, 1) * frame.superior
        bone = frame.sdf.sample(points).reshape(rr.shape) > 0
        if not bone.any():
            continue
        from scipy import ndimage

        lab, n = ndimage.label(bone)
        sizes = ndimage.sum_labels(np.ones_like(lab), lab, index=np.arange(1, n + 1))
        biggest = lab == (int(np.argmax(sizes)) + 1)
        if s1:
            # the sacrum continues below S1 into the fused S2.. (no boundary): the piece may reach the window's
            # lower edge (and the lateral one: the ala); the S1 pedicle is its upper S1_PEDICLE_HEIGHT_MM
            if biggest[:, -1].any():
                continue
            biggest &= ss >= float(ss[biggest].max()) - S1_PEDICLE_HEIGHT_MM
        elif biggest[:, 0].any() or biggest[:, -1].any() or biggest[-1, :].any():
            continue
        centroids.append(origin + rr[biggest].mean() * lateral + ss[biggest].mean() * frame.superior)
        widths.append(float(np.ptp(rr[biggest])) + step)
    if len(centroids) < 3:
        raise _Refuse(f"no pedicle found on the {side}: no bone bridge between the body and the posterior elements")
    centroids_arr = np.asarray(centroids)
    if s1:
        # S1: a wide block; its axis is set by the convergence rule, the 'isthmus' is its middle
        centre = centroids_arr[len(centroids_arr) // 2]
        across, up = _frame_axes(frame, frame.anterior)
        width = _chord(frame, centre, across, 30.0)
        height = _chord(frame, centre, up, 30.0)
        return Isthmus(centre, frame.anterior.copy(), width, height, across)
    widths_arr = np.asarray(widths)
    point = centroids_arr[int(np.argmin(widths_arr))]
    slim = centroids_arr[widths_arr <= 1.5 * widths_arr.min()]
    axis = frame.anterior.copy()
    if len(slim) >= 3:
        _, _, vt = np.linalg.svd(slim - slim.mean(axis=0), full_matrices=False)
        first = vt[0] if np.dot(vt[0], frame.anterior) > 0 else -vt[0]
        if np.dot(first, frame.anterior) > math.cos(math.radians(45.0)):
            axis = unit(first)
    # 2. the pedicle's walls: mid-points of chords across the pedicle (at three heights) along the
    # current axis, kept where the chord is still pedicle (<= PEDICLE_CHORD_FACTOR x the narrowest, in
    # one run around it), give the transverse correction of the axis; four passes.
    axis = _transverse(frame, axis)
    ts = np.arange(-6.0, 6.0 + 1e-9, SECTION_STEP_MM)
    tilt = 0.0
    first_pass = True
    for _ in range(PEDICLE_PASSES):
        across, up = _frame_axes(frame, axis)
        height, mid_h = _chord_mid(frame, point, up)
        if height <= 0 and coarse:
            # a tall bone bridge (pedicle, facets and lamina one piece on a coarse CT): follow it further
            height, mid_h = _chord_mid(frame, point, up, TALL_CHORD_MM)
        if height <= 0:
            raise _Refuse(f"no pedicle found on the {side}: the expected pedicle centre is not in bone")
        point = point + mid_h * up
        rows = []
        for t in ts:
            for level in (-0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3):
                w, m = _chord_mid(frame, point + t * axis + level * height * up, across)
                rows.append((t, level, w, m))
        arr = np.array(rows)
        centre_rows = arr[(arr[:, 1] == 0.0) & (arr[:, 2] > 0)]
        if len(centre_rows) < 5:
            raise _Refuse(f"no pedicle found on the {side}: the bone along the expected pedicle is not a closed tube")
        # the narrowest chord; after the first pass only near the current centre (no walking away)
        near = np.abs(centre_rows[:, 0]) <= (4.0 if first_pass else 1.5)
        if not near.any():
            raise _Refuse(f"no pedicle found on the {side}: the pedicle could not be followed")
        k = int(np.flatnonzero(near)[np.argmin(centre_rows[near, 2])])
        first_pass = False
        w_min, t_min = float(centre_rows[k, 2]), float(centre_rows[k, 0])
        # the run of t around t_min where the middle chord stays slim
        slim_t = centre_rows[centre_rows[:, 2] <= PEDICLE_CHORD_FACTOR * w_min, 0]
        lo, hi = t_min, t_min
        while np.any(np.isclose(slim_t, lo - SECTION_STEP_MM)):
            lo -= SECTION_STEP_MM
        while np.any(np.isclose(slim_t, hi + SECTION_STEP_MM)):
            hi += SECTION_STEP_MM
        keep = (arr[:, 2] > 0) & (arr[:, 2] <= PEDICLE_CHORD_FACTOR * w_min) & (arr[:, 0] >= lo) & (arr[:, 0] <= hi)
        point = point + t_min * axis + float(centre_rows[k, 3]) * across
        if keep.sum() < 6 or hi - lo < 2.0:
            break
        slope = _robust_slope(arr[keep, 0], arr[keep, 3])
        axis = unit(axis + slope * across)
        if abs(slope) < 0.005:
            break
    if sagittal == "pedicle":
        across, up = _frame_axes(frame, axis)
        rows = []
        for t in ts:
            h, m = _chord_mid(frame, point + t * axis, up)
            if h > 0:
                rows.append((t, h, m))
        arr = np.array(rows) if rows else np.zeros((0, 3))
        if len(arr) >= 5:
            keep = arr[:, 1] <= PEDICLE_CHORD_FACTOR * arr[:, 1].min()
            if keep.sum() >= 4:
                tilt = float(np.polyfit(arr[keep, 0], arr[keep, 2], 1)[0])
                axis = unit(axis + tilt * up)
    across, up = _frame_axes(frame, axis)
    point, w, mid = _narrowest_across(frame, point, axis, across, w_min)
    h, mid_h = _chord_mid(frame, point, up)
    if h <= 0 and coarse:
        h, mid_h = _chord_mid(frame, point, up, TALL_CHORD_MM)
    if w <= 0 or h <= 0:
        raise _Refuse(f"no pedicle found on the {side}: the pedicle centre fell outside the bone")
    centre = point + mid * across + mid_h * up
    # the width across the pedicle at its centre height (the chord at ``point`` may run below or above it)
    w_centre, mid_centre = _chord_mid(frame, centre, across) if coarse else (0.0, 0.0)
    if w_centre > 0:
        w = w_centre
        centre = centre + mid_centre * across
    return Isthmus(centre, axis, w, h, across)


def _narrowest_across(
    frame: VertebraFrame, point: np.ndarray, axis: np.ndarray, across: np.ndarray, expected_mm: float
) -> tuple[np.ndarray, float, float]:
    """The chord across the pedicle at ``point`` (width mm, offset mm of its mid-point along ``across``), or,
    where it is not in one piece with the last pass's narrowest chord (``expected_mm``: missing, or longer than
    :data:`PEDICLE_CHORD_FACTOR` times it: the last turn of the axis swung the chord into the body or the
    posterior elements), the narrowest chord across the final axis within :data:`ISTHMUS_RESWEEP_MM` of
    ``point`` (a short pedicle between a wide body and wide posterior elements). Returns (point, width, offset)."""
    w, mid = _chord_mid(frame, point, across)
    if 0 < w <= PEDICLE_CHORD_FACTOR * expected_mm:
        return point, w, mid
    best = (point, w, mid)
    for t in np.arange(-ISTHMUS_RESWEEP_MM, ISTHMUS_RESWEEP_MM + 1e-9, SECTION_STEP_MM):
        moved = point + t * axis
        wt, mt = _chord_mid(frame, moved, across)
        if wt > 0 and (best[1] <= 0 or wt < best[1]):
            best = (moved, wt, mt)
    return best


def _robust_slope(t: np.ndarray, offset: np.ndarray) -> float:
    """Slope of ``offset`` against ``t`` by least squares, refitted twice without points > 0.4 mm off the line
    (where the pedicle starts to merge with the arch or the body on one side only)."""
    keep = np.ones(len(t), dtype=bool)
    coef = np.polyfit(t, offset, 1)
    for _ in range(2):
        residual = np.abs(np.polyval(coef, t) - offset)
        new_keep = residual <= max(0.4, 2.5 * float(np.median(residual[keep])))
        if new_keep.sum() < 5 or np.ptp(t[new_keep]) < 2.0:
            break
        keep = new_keep
        coef = np.polyfit(t[keep], offset[keep], 1)
    return float(coef[0])


def _transverse(frame: VertebraFrame, direction: np.ndarray) -> np.ndarray:
    """``direction`` projected onto the vertebra's transverse (endplate) plane, unit."""
    return unit(direction - np.dot(direction, frame.superior) * frame.superior)


def _chord_mid(
    frame: VertebraFrame, point: np.ndarray, direction: np.ndarray, max_mm: float = 12.0
) -> tuple[float, float]:
    """Bone chord through ``point`` along ``direction``: (length mm, offset of its mid-point from ``point``).

    (0, 0) when ``point`` is not in bone or the chord runs longer than ``2 * max_mm``."""
    step = 0.1
    t = np.arange(-max_mm, max_mm + 1e-9, step)
    values = frame.smooth.sample(point[None, :] + t[:, None] * direction[None, :])
    mid = len(t) // 2
    if values[mid] <= 0:
        return 0.0, 0.0
    ends = []
    for sign in (1, -1):
        i = mid
        while 0 < i < len(t) - 1 and values[i + sign] > 0:
            i += sign
        j = i + sign
        if not 0 <= j < len(t):
            return 0.0, 0.0
        v0, v1 = values[i], values[j]
        ends.append(t[i] + sign * step * v0 / (v0 - v1))
    return float(ends[0] - ends[1]), float((ends[0] + ends[1]) / 2)


# ----------------------------------------------------------------------------------------- trajectory
def _ring_depths(frame: VertebraFrame, centres: np.ndarray, direction: np.ndarray, radius: float) -> np.ndarray:
    """Signed distances (mm) ``(N, RING_POINTS)`` around rings of ``radius`` at ``centres`` (N, 3); the points
    are those of :func:`~lumbarspine.planning.evaluate.screw_surface_points` (same basis and angles)."""
    ring = ring_directions(direction)
    pts = centres[:, None, :] + radius * ring[None, :, :]
    return frame.sdf.sample(pts.reshape(-1, 3)).reshape(len(centres), len(ring))


def _ring_depth(frame: VertebraFrame, centres: np.ndarray, direction: np.ndarray, radius: float) -> np.ndarray:
    """Smallest signed distance (mm) around rings of ``radius`` at ``centres`` (N, 3)."""
    return _ring_depths(frame, centres, direction, radius).min(axis=1)


def _classic_bone_run(
    frame: VertebraFrame, entry: np.ndarray, direction: np.ndarray, t: np.ndarray, radius: float, clearance: float
) -> float | None:
    """How far (mm, from ``entry`` along ``direction``, on the samples ``t`` >= 0) a screw of ``radius`` from a
    classic entry point stays in bone, by the evaluation's own rule (:func:`~lumbarspine.planning.evaluate.
    counted_surface`): inside the entry zone no counted surface point may lie outside the bone (a surface line
    still crossing the dorsal cortex there is entering, not breaching); beyond it the whole ring keeps
    ``clearance`` mm of bone. None when the axis never enters the bone."""
    centres = entry + t[:, None] * direction
    depths = _ring_depths(frame, centres, direction, radius)
    counted, t_in = counted_surface(depths, frame.sdf.sample(centres), t, radius)
    if t_in is None:
        return None
    in_zone = t <= t_in + ENTRY_ZONE_RADII * radius
    ok = np.where(in_zone, ~(counted & (depths < 0)).any(axis=1), depths.min(axis=1) >= clearance)
    bad = np.flatnonzero(~ok)
    if not bad.size:
        return float(t[-1])
    return float(t[bad[0] - 1]) if bad[0] > 0 else 0.0


def _onto_bone_surface(frame: VertebraFrame, point: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """``point`` (a classic entry point on the dorsal bone surface, found going straight forward) moved along
    the trajectory ``direction`` to where that line itself enters the bone (the zero crossing of the signed
    distance, mm): the entry point is where the screw enters the bone at the dorsal cortex. Unchanged when the
    line has no such crossing within 10 mm."""
    step = 0.1
    t = np.arange(-10.0, 10.0 + 1e-9, step)
    depth = frame.sdf.sample(point[None, :] + t[:, None] * direction[None, :])
    zero = int(np.argmin(np.abs(t)))
    inside = depth > 0
    if inside[zero]:
        i = zero
        while i > 0 and inside[i - 1]:
            i -= 1
        if i == 0:
            return point  # deep in bone along the trajectory: keep the technique's point
    else:
        ahead = np.flatnonzero(inside[zero:])
        if not ahead.size:
            return point
        i = zero + int(ahead[0])
    v0, v1 = float(depth[i - 1]), float(depth[i])
    t_cross = float(t[i - 1]) + step * (-v0) / (v1 - v0) if v1 != v0 else float(t[i])
    return point + t_cross * direction


def _angles(frame: VertebraFrame, direction: np.ndarray, side: str) -> tuple[float, float]:
    medial = -_side_sign(side) * frame.right
    horizontal = float(np.dot(direction, frame.anterior))
    medial_deg = math.degrees(math.atan2(float(np.dot(direction, medial)), horizontal))
    caudal_deg = math.degrees(math.asin(float(np.clip(-np.dot(direction, frame.superior), -1, 1))))
    return medial_deg, caudal_deg


def _classic_entry(anatomy: SpineAnatomy, frame: VertebraFrame, side: str, rule: str) -> np.ndarray:
    """Entry point of a classic technique from the sub-regions (superior articular and transverse process)."""
    from ..anatomy.model import SUBREGIONS

    if anatomy.subregions is None:
        raise _Refuse(
            f"the {rule} entry point needs sub-regions (superior articular and transverse processes); "
            "this segmentation has none: use the pedicle-axis or pedicle-triangle trajectory"
        )
    sub = np.asarray(anatomy.subregions.array)
    mine = np.asarray(anatomy.labels.array) == frame.label
    sap = mine & (sub == SUBREGIONS[f"superior_articular_{side}"])
    tp = mine & (sub == SUBREGIONS[f"transverse_process_{side}"])
    if not sap.any() or not tp.any():
        raise _Refuse(f"the {rule} entry point needs the {side} superior articular and transverse processes")
    grid = anatomy.labels
    sap_pts = frame.to_local(grid.ijk_to_ras_points(np.argwhere(sap)[:, ::-1].astype(float)))
    tp_pts = frame.to_local(grid.ijk_to_ras_points(np.argwhere(tp)[:, ::-1].astype(float)))
    sign = _side_sign(side)
    s_line = float(tp_pts[:, 2].mean())  # mid-transverse-process line
    if rule == "roy-camille":
        r_line = float(sap_pts[:, 0].mean())  # mid-facet line
    elif rule == "magerl":
        r_line = float((sap_pts[:, 0] * sign).max()) * sign  # lateral edge of the superior facet
    else:  # weinstein: latero-inferior corner of the superior facet
        r_line = float((sap_pts[:, 0] * sign).max()) * sign
        s_line = float(sap_pts[:, 2].min())
    # the dorsal bone surface at (r_line, s_line): march forward from far behind the canal
    t = np.arange(-60.0, 10.0, 0.25)
    local = np.stack([np.full_like(t, r_line), t, np.full_like(t, s_line)], axis=1)
    depth = frame.sdf.sample(frame.to_ras(local))
    inside = np.flatnonzero(depth > 0)
    if inside.size == 0:
        raise _Refuse(f"no bone at the {rule} entry point on the {side}")
    return frame.to_ras(local[inside[0]])[0]


def _s1_trajectory(
    frame: VertebraFrame, isthmus: Isthmus, side: str, params: PlanningParameters
) -> tuple[np.ndarray, np.ndarray]:
    """S1 (see :func:`_searched_trajectory`): through the 'isthmus' moved up or down; where that keeps less bone
    than the shortest screw needs, also moved across by up to +-:data:`S1_ACROSS_MM` (on the real 3 mm CT the S1
    block's centre can sit where the thinnest screw has no bone around it: both S1 sides are planned so, at
    most one without)."""
    offsets = tuple(np.arange(-6.0, 6.01, 1.5))
    found = _searched_trajectory(frame, isthmus, side, params, params.s1_medial_angle_deg, (0.0, -2.5, 2.5), offsets)
    if found[2] < params.lengths_mm[0]:
        across = (0.0, -S1_ACROSS_MM / 2, S1_ACROSS_MM / 2, -S1_ACROSS_MM, S1_ACROSS_MM)
        wider = _searched_trajectory(
            frame, isthmus, side, params, params.s1_medial_angle_deg, (0.0, -2.5, 2.5), offsets, across
        )
        if wider[2] > found[2]:
            found = wider
    return found[0], found[1]


def _searched_trajectory(
    frame: VertebraFrame,
    isthmus: Isthmus,
    side: str,
    params: PlanningParameters,
    nominal_deg: float,
    spreads_deg: tuple[float, ...],
    heights_mm: tuple[float, ...],
    across_mm: tuple[float, ...] = (0.0,),
) -> tuple[np.ndarray, np.ndarray, float]:
    """A trajectory parallel to the endplate converging by ``nominal_deg`` + one of ``spreads_deg``, through the
    isthmus centre moved by one of ``heights_mm`` (superior) and ``across_mm`` (across the pedicle): the one
    that keeps the longest stretch of the thinnest screw in bone, less 1 mm per degree off the nominal angle
    and 0.1 mm per mm off the centre (the nominal wins unless the others keep clearly more bone). S1:
    ``s1_medial_angle_deg`` +-2.5 deg, heights +-6 mm. Returns (point, direction, score mm)."""
    medial = -_side_sign(side) * frame.right
    radius = params.diameters_mm[0] / 2
    # the planner's own step (0.25 mm, _plan_one): a coarser one can step over a ring just under the clearance
    # and choose a trajectory the planner then cuts short (L3 left on the real 3 mm CT: 49 mm here, 8 mm there)
    t = np.arange(-40.0, 80.0, 0.25)
    best = (-1.0, isthmus.center, frame.anterior)
    for angle_deg in [nominal_deg + d for d in spreads_deg]:
        angle = math.radians(angle_deg)
        direction = unit(math.cos(angle) * frame.anterior + math.sin(angle) * medial)
        for dz, dx in [(z, x) for z in heights_mm for x in across_mm]:
            point = isthmus.center + dz * frame.superior + dx * isthmus.across
            depth = _ring_depth(frame, point + t[:, None] * direction, direction, radius)
            inside = depth >= params.clearance_mm
            zero = int(np.argmin(np.abs(t)))
            if not inside[zero]:
                continue
            lo = zero
            while lo > 0 and inside[lo - 1]:
                lo -= 1
            hi = zero
            while hi < len(t) - 1 and inside[hi + 1]:
                hi += 1
            # prefer the nominal angle and height: 1 mm of bone per degree off, 0.1 mm per mm of height
            run = float(t[hi] - t[lo]) - 0.1 * abs(dz) - 0.1 * abs(dx) - abs(angle_deg - nominal_deg)
            if run > best[0]:
                best = (run, point, direction)
    return best[1], best[2], best[0]


def plan_one_screw(
    anatomy: SpineAnatomy,
    frame: VertebraFrame,
    side: str,
    params: PlanningParameters = PlanningParameters(),
    *,
    maps: PlanningMaps | None = None,
) -> ScrewPlan | RefusedScrew:
    """Plan one side of one vertebra (see the module docstring); never raises for anatomy reasons.

    On a coarse CT whose bone is refined by its HU (``maps.refined``, :mod:`lumbarspine.planning.refine`) the
    measured pedicle axis of a 2-4 voxel pedicle is unreliable: where the ``"pedicle-axis"`` screw is refused
    once its isthmus was found, or its medial angle lies more than :data:`REFERENCE_ANGLE_TOLERANCE_DEG` off
    the reference (:data:`REFERENCE_MEDIAL_DEG`, Dickman 1992), the trajectory is searched instead: through
    the measured isthmus (+-3 mm high, +-1.5 mm across), within +-7.5 deg of the reference angle, the one
    that keeps the most of the screw in bone (trajectory ``"pedicle-axis (reference angle, coarse CT)"``)."""
    try:
        planned = _plan_one(anatomy, frame, side, params, maps)
    except _Refuse as refusal:
        planned = RefusedScrew(frame.name, side, refusal.reason, refusal.width)
    nominal = REFERENCE_MEDIAL_DEG.get(frame.name)
    if (
        maps is None
        or not maps.refined
        or nominal is None
        or params.trajectory != "pedicle-axis"
        or (isinstance(planned, RefusedScrew) and planned.isthmus_width_mm is None)
        or (isinstance(planned, ScrewPlan) and abs(planned.medial_angle_deg - nominal) <= REFERENCE_ANGLE_TOLERANCE_DEG)
    ):
        return planned
    try:
        return _plan_one(anatomy, frame, side, params, maps, reference_deg=nominal)
    except _Refuse as refusal:
        if isinstance(planned, ScrewPlan):
            return RefusedScrew(
                frame.name,
                side,
                f"the measured pedicle axis converges {planned.medial_angle_deg:.0f} deg (reference {nominal:g} "
                f"+- {REFERENCE_ANGLE_TOLERANCE_DEG:g} deg) and at the reference angle {refusal.reason}",
                refusal.width,
            )
        return RefusedScrew(frame.name, side, f"{planned.reason}; at the reference angle too", planned.isthmus_width_mm)


def _plan_one(
    anatomy: SpineAnatomy,
    frame: VertebraFrame,
    side: str,
    params: PlanningParameters,
    maps: PlanningMaps | None,
    reference_deg: float | None = None,
) -> ScrewPlan:
    isthmus = find_isthmus(frame, side, params.sagittal, coarse=maps is not None and maps.refined)
    width = isthmus.width_mm
    if width < params.min_isthmus_mm:
        raise _Refuse(
            f"pedicle isthmus {width:.1f} mm is narrower than the smallest screw allows "
            f"({params.diameters_mm[0]:g} mm / {params.max_diameter_fraction:g} = {params.min_isthmus_mm:.1f} mm)",
            width,
        )
    through = isthmus.center
    s1 = frame.name == "S1"
    rule = "s1-convergent" if s1 else params.trajectory
    if s1:
        through, direction = _s1_trajectory(frame, isthmus, side, params)
    elif reference_deg is not None:
        through, direction, _ = _searched_trajectory(
            frame,
            isthmus,
            side,
            params,
            reference_deg,
            (0.0, -2.5, 2.5, -5.0, 5.0, -7.5, 7.5),
            (0.0, -1.5, 1.5, -3.0, 3.0),
            (0.0, -0.75, 0.75, -1.5, 1.5),
        )
        rule = "pedicle-axis (reference angle, coarse CT)"
    elif params.trajectory == "pedicle-axis":
        direction = isthmus.axis
    elif params.trajectory == "pedicle-triangle":
        direction = unit(frame.anterior_cortex - isthmus.center)
    else:
        entry_point = _classic_entry(anatomy, frame, side, params.trajectory)
        if params.trajectory == "roy-camille":
            direction = frame.anterior.copy()
        else:
            direction = unit(isthmus.center - entry_point)
        through = _onto_bone_surface(frame, entry_point, direction)
    if np.dot(direction, frame.anterior) <= 0.2:
        raise _Refuse(f"the trajectory on the {side} does not point into the body")
    candidates = [d for d in params.diameters_mm if d <= params.max_diameter_fraction * width + 1e-9]
    step = 0.25
    back = np.arange(0.0, -45.0, -step)
    fwd = np.arange(0.0, 90.0, step)
    chosen = None
    shortfall: tuple[float, float] | None = None
    for diameter in sorted(candidates, reverse=True):
        radius = diameter / 2
        probe = through
        if params.trajectory in ("roy-camille", "magerl", "weinstein") and not s1:
            # t from the classic entry point on the dorsal bone surface; the screw crossing that cortex is its
            # entry, not a breach (evaluate.counted_surface: the same rule as the grade)
            t_entry = 0.0
            run = _classic_bone_run(frame, probe, direction, fwd, radius, params.clearance_mm)
            if run is None:
                continue
            t_ring_out = run
        else:
            # the screw must fit where it crosses the isthmus
            ring_back = _ring_depth(frame, probe + back[:, None] * direction, direction, radius)
            ring_fwd = _ring_depth(frame, probe + fwd[:, None] * direction, direction, radius)
            if ring_back[0] < params.clearance_mm:
                continue
            out_back = np.flatnonzero(ring_back < params.clearance_mm)
            t_entry = float(back[out_back[0] - 1]) if out_back.size else float(back[-1])
            out_fwd = np.flatnonzero(ring_fwd < params.clearance_mm)
            t_ring_out = float(fwd[out_fwd[0] - 1]) if out_fwd.size else float(fwd[-1])
        axis_depth = frame.sdf.sample(probe + fwd[:, None] * direction)
        # anterior exit: the first exit of the axis from the bone after the body's posterior wall
        wall_t = float(np.dot(frame.posterior_wall - probe, frame.anterior) / np.dot(direction, frame.anterior))
        exits = np.flatnonzero((fwd >= max(wall_t, 0.0)) & (axis_depth < 0))
        if exits.size == 0:
            raise _Refuse(
                f"the trajectory on the {side} does not leave the body anteriorly within 90 mm (field of view?)"
            )
        t_anterior = float(fwd[exits[0]])
        target = wall_t + params.body_depth_fraction * (t_anterior - wall_t)
        # the screw stays on its own side of the mid-sagittal plane (a convergent pair never meets)
        offset = _side_sign(side) * ((probe + fwd[:, None] * direction - frame.canal_center) @ frame.right)
        crossing = np.flatnonzero(offset < radius + MIDLINE_CLEARANCE_MM)
        t_midline = float(fwd[crossing[0] - 1]) if crossing.size and crossing[0] > 0 else float(fwd[-1])
        limit = min(t_ring_out, t_anterior - params.anterior_margin_mm, t_midline)
        available = limit - t_entry
        wanted = target - t_entry
        fitting = [L for L in params.lengths_mm if L <= available + 1e-9]
        if not fitting:
            shortfall = (diameter, available)
            continue  # a thinner screw may pass where this one leaves the bone
        chosen = (diameter, t_entry, probe, fitting, wanted)
        break
    if chosen is None:
        if shortfall is not None:
            raise _Refuse(
                f"only {max(shortfall[1], 0.0):.0f} mm of bone along the trajectory on the {side}, shorter than the shortest "
                f"screw ({params.lengths_mm[0]:g} mm)",
                width,
            )
        raise _Refuse(
            f"no screw diameter fits the pedicle on the {side} with {params.clearance_mm:g} mm of bone", width
        )
    diameter, t_entry, probe, fitting, wanted = chosen
    under = [L for L in fitting if L <= wanted + 1e-9]
    length = max(under) if under else min(fitting)
    entry = probe + t_entry * direction
    tip = entry + length * direction
    grid_ok = _inside_field_of_view(anatomy, np.stack([entry - 3.0 * direction, tip]), margin_voxels=1.0)
    if not grid_ok.all():
        raise _Refuse(
            f"the screw on the {side} reaches the edge of the field of view: the vertebra is cut by it", width
        )
    medial_deg, caudal_deg = _angles(frame, direction, side)
    evaluation = evaluate_screw(
        anatomy, entry, tip, diameter, vertebra=frame.name, maps=maps, no_go_margin_mm=params.no_go_margin_mm
    )
    return ScrewPlan(
        vertebra=frame.name,
        side=side,
        entry_ras=entry,
        tip_ras=tip,
        diameter_mm=float(diameter),
        length_mm=float(length),
        medial_angle_deg=medial_deg,
        caudal_angle_deg=caudal_deg,
        isthmus_width_mm=width,
        isthmus_center_ras=isthmus.center,
        trajectory=rule,
        evaluation=evaluation,
    )


def _inside_field_of_view(anatomy: SpineAnatomy, ras: np.ndarray, margin_voxels: float) -> np.ndarray:
    """True for RAS points inside the label map's grid (at least ``margin_voxels`` from its edge)."""
    grid = anatomy.labels
    ijk = grid.ras_to_ijk_points(np.asarray(ras, float).reshape(-1, 3))
    size = np.asarray(grid.size_ijk, float)
    return np.all((ijk >= margin_voxels - 0.5) & (ijk <= size - 0.5 - margin_voxels), axis=1)


def use_planning_bone(frame: VertebraFrame, maps: PlanningMaps) -> VertebraFrame:
    """``frame`` measuring on the bone the evaluation uses: with a refining CT in ``maps``
    (:mod:`lumbarspine.planning.refine`) its distance map and surface become the refined ones (the frame's
    landmarks stay those of the labels); otherwise ``maps`` takes the frame's own distance map."""
    refined = maps.refined_bone(frame.label)
    if refined is None:
        maps.set_bone(frame.label, frame.sdf)
        return frame
    from dataclasses import replace

    maps.set_bone(frame.label, refined.sdf)
    return replace(frame, sdf=refined.sdf, surface=refined.surface)


def vertebra_frames(anatomy: SpineAnatomy, names: tuple[str, ...] | None = None) -> dict[str, VertebraFrame | str]:
    """Frames of the lumbar vertebrae and S1 present (name -> frame, or the reason none could be built)."""
    frames: dict[str, VertebraFrame | str] = {}
    wanted = names or LUMBAR_NAMES
    for info in anatomy.vertebrae:
        if info.name not in wanted:
            continue
        hint = None
        if info.name == "S1" and isinstance(frames.get("L5"), VertebraFrame):
            hint = frames["L5"].superior  # type: ignore[union-attr]
        try:
            frames[info.name] = vertebra_frame(
                anatomy.labels,
                info.label,
                info.name,
                centreline_ras=anatomy.centreline_ras,
                superior_hint=hint,
                whole_centroid_ras=np.asarray(info.centroid_ras),
            )
        except ValueError as exc:
            frames[info.name] = str(exc)
    return frames


def plan_screws(
    anatomy: SpineAnatomy,
    params: PlanningParameters = PlanningParameters(),
    *,
    vertebrae: tuple[str, ...] | None = None,
    maps: PlanningMaps | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
) -> dict[str, Any]:
    """Plan both sides of every lumbar vertebra and S1 present.

    Args:
        anatomy: the spine (numbered levels; unnumbered vertebrae are skipped with a warning).
        params: sizing rules and trajectory (:class:`PlanningParameters`).
        vertebrae: restrict to these names (default L1-L5 and S1).
        maps: cached distance maps to share with later evaluations; give ``PlanningMaps(anatomy, image=ct)``
            to plan on the bone refined by the CT's HU (:mod:`lumbarspine.planning.refine`).
        progress, cancel: callbacks (:mod:`lumbarspine.progress`).

    Returns:
        ``{"screws": [ScrewPlan], "refused": [RefusedScrew], "frames": {name: VertebraFrame},
        "warnings": [str]}``.
    """
    if not isinstance(anatomy, SpineAnatomy):
        raise ValueError(f"plan_screws needs a SpineAnatomy; got {type(anatomy).__name__}.")
    maps = maps if maps is not None else PlanningMaps(anatomy)
    warnings: list[str] = []
    if not anatomy.numbered:
        warnings.append("The levels are not numbered (no sacrum found?): screws are planned only on named vertebrae.")
    present = [v.name for v in anatomy.vertebrae if v.name in (vertebrae or LUMBAR_NAMES)]
    if not present:
        warnings.append("No lumbar vertebra (L1-L5) or S1 in the segmentation: no screw planned.")
    frames_or_reasons = vertebra_frames(anatomy, tuple(present))
    screws: list[ScrewPlan] = []
    refused: list[RefusedScrew] = []
    frames: dict[str, VertebraFrame] = {}
    for n, name in enumerate(present):
        check_cancel(cancel, "Screw planning")
        if progress is not None:
            progress(n / max(len(present), 1), f"planning the screws of {name}")
        item = frames_or_reasons[name]
        if isinstance(item, str):
            for side in SIDES:
                refused.append(RefusedScrew(name, side, f"no vertebra frame: {item}"))
            continue
        item = use_planning_bone(item, maps)
        frames[name] = item
        warnings.extend(item.notes)
        for side in SIDES:
            result = plan_one_screw(anatomy, item, side, params, maps=maps)
            if isinstance(result, RefusedScrew):
                info = anatomy.vertebra(name)
                if info is not None and info.truncated and "field of view" not in result.reason:
                    result = RefusedScrew(
                        name, side, result.reason + f"; {name} is cut by the field of view", result.isthmus_width_mm
                    )
                refused.append(result)
            else:
                screws.append(result)
    if progress is not None:
        progress(1.0, "screws planned")
    return {"screws": screws, "refused": refused, "frames": frames, "warnings": warnings}
