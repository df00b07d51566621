"""Lateral recess width and foraminal height per disc level and side, where the sub-regions label the bone.

Both are the narrowest gap (mm) between two labelled bone structures through tissue that is not bone,
measured on the anatomy's label map (:attr:`~lumbarspine.anatomy.model.SpineAnatomy.labels`, which
vertebra) and its sub-region map (:attr:`~lumbarspine.anatomy.model.SpineAnatomy.subregions`, which part;
SPINEPS codes, left/right the **patient's**, as the segmentation assigned them):

* **lateral recess** (subarticular) width, per side: from the facet's articular processes (the superior
  articular process of the vertebra **below** the disc, 45 left / 46 right, together with the inferior
  articular process of the vertebra above, 47 / 48, see :data:`RECESS_POSTERIOR_CODES`) to the back of the
  disc (its label) or of the lower vertebra's body (49 / 50), both taken within the disc's extent along the
  canal plus :data:`RECESS_WINDOW_MARGIN_MM`; the gap's mid-point must lie on its side of the mid-line and,
  where the lower vertebra's pedicle is labelled, no farther lateral than the pedicle's centre (the recess is
  medial of the pedicle; lateral of it lies the foramen);
* **foraminal height**, per side: from the pedicle (51 left / 52 right) of the vertebra above to the pedicle of
  the vertebra below (the foramen's roof and floor).

The narrowest gap: the boundary voxels of the two structures (voxels of the structure with a 6-neighbour
outside it) are paired (:class:`scipy.spatial.cKDTree`); a pair counts only when the straight segment
between them crosses no bone (any vertebra's label) except the two structures' own voxels within
:data:`END_ALLOWANCE_VOXELS` voxels of its ends, so a gap is never measured through the pedicle that joins
the articular process to the body, nor through the articular process above a pedicle. Sub-voxel
approximation: the gap is the centre-to-centre distance of the two boundary voxels minus one voxel size
along the pair's direction (each surface taken half a voxel beyond its boundary voxel's centre); the two
reported points are those surface points (RAS mm). Its resolution is about one voxel along the gap
(``voxel_mm``).

Nothing is graded: the published grades are morphological (lateral recess: Bartynski & Lin 2003, root
compression in the recess; foramina: Lee 2010, perineural fat on sagittal T1; ../shared/docs/clinical-
reference.md), not thresholds on these distances. Where a side cannot be measured (no sub-regions, no
pedicle labels as in SPINEPS, the sacrum without sub-regions, a structure missing or cut by the field of
view) the reason is given instead of a number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from ..anatomy.model import SUBREGION_NAMES, SUBREGIONS, SpineAnatomy
from ..volume import Volume

__all__ = [
    "SideMeasure",
    "LateralResult",
    "measure_lateral",
    "RECESS_WINDOW_MARGIN_MM",
    "RECESS_POSTERIOR_CODES",
    "MAX_GAP_MM",
    "END_ALLOWANCE_VOXELS",
    "LATERAL_METHOD",
    "lateral_cells",
    "NOT_GRADED",
    "POSITION_RULE_SOURCES",
    "POSITION_RULE_REASON",
]

RECESS_WINDOW_MARGIN_MM = 3.0
"""The lateral recess is searched within the disc's extent along the canal (its labelled voxels' 2nd-98th
percentile along the disc's thin axis) plus this margin (mm) above and below: the subarticular zone lies at
the disc level, the recess proper runs on down to the upper border of the lower pedicle."""

RECESS_POSTERIOR_CODES: dict[str, tuple[int, int]] = {"left": (45, 47), "right": (46, 48)}
"""Per side, the sub-region codes of the recess's posterior wall: the superior articular process of the
vertebra below the disc and the inferior articular process of the vertebra above (the two halves of the
facet joint). The inferior one is included because segmentations split the facet joint unreliably: on the
1 mm CT phantom the automatic CT split gives 4 of the 10 superior articular processes mostly to the vertebra
above, labelled as its inferior articular process. In the phantom and in lumbar anatomy the superior
process lies in front of the inferior one, so the narrowest gap ends on the superior process where it is
labelled as such; the report names the structure it ended on (``posterior_structure``)."""

MAX_GAP_MM = 45.0
"""Pairs farther apart than this (mm) are not searched (a recess is a few mm, a foramen some 12-25 mm tall)."""

END_ALLOWANCE_VOXELS = 1.5
"""A segment may pass through its own two structures' voxels within this many voxels (largest spacing) of its
ends: it leaves a boundary voxel's centre and may graze the neighbouring boundary voxels of the same surface."""

POSITION_RULE_SOURCES: tuple[str, ...] = ("automatic ct",)
"""Anatomy sources whose sub-regions are position rules in the spine frame, not shapes
(:func:`lumbarspine.anatomy.ct_levels._subregions`): nothing is measured from them unless asked
(``measure_lateral(..., trust_position_rules=True)``), see :data:`POSITION_RULE_REASON`."""

POSITION_RULE_REASON = (
    "not measured: the automatic CT segmentation's sub-regions are position rules (fixed bands beside the canal), "
    "not the bone's shapes: its pedicle bands of neighbouring vertebrae touch on 3 mm CT (foraminal heights "
    "0-8 mm on the example CT), its disc label runs into the foramen and its articular-process labels take the "
    "lateral lamina (on the 1 mm CT phantom the recess comes out 4-6 mm narrower than the phantom's); import "
    "a shape-based sub-region segmentation (SPINEPS) to measure it"
)

NOT_GRADED = (
    "measured, not graded: the published grades are morphological (lateral recess Bartynski & Lin 2003, "
    "foramina Lee 2010; clinical-reference.md), with no threshold on this distance"
)

LATERAL_METHOD = (
    "lateral recess: narrowest gap from the articular processes of the level (superior articular process of "
    "the vertebra below, inferior articular process of the vertebra above) to the back of the disc or of the "
    f"lower body, within the disc's extent along the canal +-{RECESS_WINDOW_MARGIN_MM:g} mm, medial of the "
    "lower pedicle's centre where labelled; foraminal height: narrowest gap between the pedicles of the two "
    "vertebrae; both through non-bone only (straight segment), boundary voxel centres minus one voxel size "
    "along the gap; left/right the patient's. " + NOT_GRADED
)

_SIDES = ("left", "right")
_SIGN = {"left": -1.0, "right": 1.0}
_PEDICLE = {"left": SUBREGIONS["pedicle_left"], "right": SUBREGIONS["pedicle_right"]}
_BODY_CODES = (SUBREGIONS["body_border"], SUBREGIONS["body"])


@dataclass(frozen=True)
class SideMeasure:
    """One side's gap (mm) with its two surface points (RAS mm), or the reason it was not measured.

    Attributes:
        value_mm: the gap in mm, or None.
        points_ras: ``(2, 3)`` RAS mm: the point on the first structure (articular process / upper pedicle),
            then the one on the second (disc or body / lower pedicle).
        structures: what the two points lie on (e.g. ``"superior articular process left of L5"``).
        voxel_mm: voxel size (mm) along the gap, the measure's resolution.
        reason: why not measured (None when measured).
    """

    value_mm: float | None = None
    points_ras: np.ndarray | None = None
    structures: tuple[str, str] | None = None
    voxel_mm: float | None = None
    reason: str | None = None

    @property
    def measured(self) -> bool:
        return self.value_mm is not None

    def to_dict(self, key: str) -> dict[str, Any]:
        """``{key: mm, "points_ras": [[..], [..]], ...}`` or ``{"not_measured": reason}``."""
        if self.value_mm is None or self.points_ras is None or self.structures is None:
            return {"not_measured": self.reason}
        return {
            key: round(float(self.value_mm), 2),
            "points_ras": [[round(float(c), 3) for c in p] for p in self.points_ras],
            "posterior_structure" if key == "width_mm" else "upper_structure": self.structures[0],
            "anterior_structure" if key == "width_mm" else "lower_structure": self.structures[1],
            "voxel_mm": None if self.voxel_mm is None else round(float(self.voxel_mm), 2),
        }


@dataclass(frozen=True)
class LateralResult:
    """Lateral recess width and foraminal height of one disc level, per side (``"left"``, ``"right"``)."""

    level: str
    recess: dict[str, SideMeasure]
    foramen: dict[str, SideMeasure]

    def recess_dict(self) -> dict[str, Any]:
        """The ``lateral_recess`` entry of ``report.json``."""
        out: dict[str, Any] = {side: self.recess[side].to_dict("width_mm") for side in _SIDES}
        out["note"] = NOT_GRADED
        return out

    def foramen_dict(self) -> dict[str, Any]:
        """The ``neural_foramina`` entry of ``report.json``."""
        out: dict[str, Any] = {side: self.foramen[side].to_dict("height_mm") for side in _SIDES}
        out["note"] = NOT_GRADED
        return out


def _vertebra_pair(anatomy: SpineAnatomy, level: str, tangent: np.ndarray, centre: np.ndarray):  # type: ignore[no-untyped-def]
    """The vertebrae above and below the disc: by name (``L4-L5``) when numbered, else the nearest vertebra
    centroid on each side along the disc's axis."""
    if anatomy.numbered and "-" in level:
        upper_name, lower_name = level.split("-", 1)
        return anatomy.vertebra(upper_name), anatomy.vertebra(lower_name), upper_name, lower_name
    along = [(float((np.asarray(v.centroid_ras) - centre) @ tangent), v) for v in anatomy.vertebrae]
    above = [a for a in along if a[0] > 0]
    below = [a for a in along if a[0] < 0]
    upper = min(above, key=lambda a: a[0])[1] if above else None
    lower = max(below, key=lambda a: a[0])[1] if below else None
    return upper, lower, "the vertebra above", "the vertebra below"


def _boundary(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a 6-neighbour outside it (the crop's edge counts as outside)."""
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def _touches_border(mask: np.ndarray, lo: np.ndarray, shape: tuple[int, ...], full: tuple[int, ...]) -> bool:
    """True when ``mask`` (a crop starting at ``lo`` of a grid of shape ``full``) reaches the grid's edge."""
    for axis in range(3):
        if lo[axis] == 0 and np.take(mask, 0, axis=axis).any():
            return True
        if lo[axis] + shape[axis] == full[axis] and np.take(mask, -1, axis=axis).any():
            return True
    return False


class _Crop:
    """The box of the label map around one level, its bone mask and voxel-centre RAS lookup."""

    def __init__(self, anatomy: SpineAnatomy, labels_in: list[int]) -> None:
        labels = np.asarray(anatomy.labels.array)
        self.grid: Volume = anatomy.labels
        present = np.isin(labels, labels_in)
        if not present.any():
            raise ValueError("none of the level's structures is in the label map")
        lo, hi = [], []
        for axis in range(3):
            idx = np.flatnonzero(present.any(axis=tuple(a for a in range(3) if a != axis)))
            lo.append(max(0, int(idx[0]) - 2))
            hi.append(min(labels.shape[axis], int(idx[-1]) + 3))
        self.lo = np.asarray(lo)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        self.labels = labels[box]
        self.sub = np.asarray(anatomy.subregions.array)[box] if anatomy.subregions is not None else None
        self.full_shape = labels.shape
        vertebra_labels = [v.label for v in anatomy.vertebrae]
        self.bone = np.isin(self.labels, vertebra_labels)
        self.max_spacing = float(max(self.grid.spacing))
        self.step_mm = 0.5 * float(min(self.grid.spacing))

    def ras(self, kji: np.ndarray) -> np.ndarray:
        """RAS mm of crop indices ``(N, 3)`` in ``[k, j, i]`` order."""
        full = kji + self.lo[None, :]
        return self.grid.ijk_to_ras_points(full[:, ::-1].astype(float))

    def points(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Crop indices ``[k, j, i]`` and RAS mm of the boundary voxels of ``mask``."""
        kji = np.argwhere(_boundary(mask))
        return kji, self.ras(kji)

    def cut(self, mask: np.ndarray) -> bool:
        return _touches_border(mask, self.lo, mask.shape, self.full_shape)

    def blocked(self, pa: np.ndarray, pb: np.ndarray, own: np.ndarray) -> np.ndarray:
        """True per pair where the segment ``pa[n] -> pb[n]`` (RAS mm) crosses bone other than ``own``'s
        voxels within :data:`END_ALLOWANCE_VOXELS` of its ends."""
        d = np.linalg.norm(pb - pa, axis=1)
        m = max(2, int(math.ceil(float(d.max()) / self.step_mm)))
        f = (np.arange(1, m) / m)[None, :, None]  # interior samples
        pts = pa[:, None, :] + f * (pb - pa)[:, None, :]
        ijk = self.grid.ras_to_ijk_points(pts.reshape(-1, 3))
        kji = np.rint(ijk[:, ::-1]).astype(np.int64) - self.lo[None, :]
        inside = np.all((kji >= 0) & (kji < np.asarray(self.bone.shape)[None, :]), axis=1)
        kji = np.where(inside[:, None], kji, 0)
        bone = self.bone[kji[:, 0], kji[:, 1], kji[:, 2]] & inside
        mine = own[kji[:, 0], kji[:, 1], kji[:, 2]] & inside
        dist_end = (np.minimum(f, 1.0 - f)[:, :, 0] * d[:, None]).reshape(-1)
        allowance = END_ALLOWANCE_VOXELS * self.max_spacing
        hit = bone & (~mine | (dist_end > allowance))
        return hit.reshape(len(pa), m - 1).any(axis=1)


def _nearest_clear_pair(
    crop: _Crop,
    a_mask: np.ndarray,
    b_mask: np.ndarray,
    accept: Any = None,
) -> tuple[float, np.ndarray, int, int, float] | None:
    """The narrowest gap between the masks through non-bone: ``(gap_mm, points (2, 3), a_index, b_index,
    voxel_mm)`` with the boundary-voxel indices into ``crop.points``; None when no pair within
    :data:`MAX_GAP_MM` is clear. ``accept(pa, pb)`` may veto pairs (a bool array)."""
    from .measure import voxel_size_along

    a_kji, a_ras = crop.points(a_mask)
    b_kji, b_ras = crop.points(b_mask)
    if len(a_ras) == 0 or len(b_ras) == 0:
        return None
    own = a_mask | b_mask
    tree_a, tree_b = cKDTree(a_ras), cKDTree(b_ras)
    d0 = float(tree_b.query(a_ras, k=1)[0].min())
    if d0 > MAX_GAP_MM:
        return None
    for reach in (d0 + 5.0, d0 + 15.0, MAX_GAP_MM):
        reach = min(reach, MAX_GAP_MM)
        pairs = tree_a.sparse_distance_matrix(tree_b, reach, output_type="ndarray")
        ia, ib, dist = pairs["i"].astype(np.int64), pairs["j"].astype(np.int64), pairs["v"].astype(float)
        keep = dist > 0
        ia, ib, dist = ia[keep], ib[keep], dist[keep]
        if len(dist) == 0:
            continue
        direction = (b_ras[ib] - a_ras[ia]) / dist[:, None]
        e = voxel_size_along(crop.grid, direction)
        gap = np.maximum(dist - e, 0.0)
        if accept is not None:
            ok = np.asarray(accept(a_ras[ia], b_ras[ib]), dtype=bool)
            ia, ib, dist, e, gap, direction = ia[ok], ib[ok], dist[ok], e[ok], gap[ok], direction[ok]
        order = np.argsort(gap, kind="stable")
        for start in range(0, len(order), 2048):
            batch = order[start : start + 2048]
            hit = crop.blocked(a_ras[ia[batch]], b_ras[ib[batch]], own)
            clear = np.flatnonzero(~hit)
            if clear.size:
                n = batch[clear[0]]
                half = 0.5 * (dist[n] - gap[n])
                pa = a_ras[ia[n]] + half * direction[n]
                pb = b_ras[ib[n]] - half * direction[n]
                return float(gap[n]), np.stack([pa, pb]), int(ia[n]), int(ib[n]), float(e[n])
        if reach >= MAX_GAP_MM:
            break
    return None


def _structure_name(code: int, vertebra: str) -> str:
    return f"{SUBREGION_NAMES.get(code, 'disc')} of {vertebra}"


def _disc_axis(points: np.ndarray) -> np.ndarray:
    """Unit thin axis of a disc's voxels (smallest principal axis), oriented superior (RAS +S)."""
    rel = points - points.mean(axis=0)
    _, _, vt = np.linalg.svd(rel[:: max(1, len(rel) // 20000)], full_matrices=False)
    axis = vt[-1]
    return axis if axis[2] >= 0 else -axis


def measure_lateral(anatomy: SpineAnatomy, level: str, *, trust_position_rules: bool = False) -> LateralResult | None:
    """Lateral recess width and foraminal height (mm) of the disc level ``level`` on both sides.

    Args:
        anatomy: the spine anatomy; its :attr:`~SpineAnatomy.subregions` name the parts (SPINEPS codes,
            project pedicles 51/52).
        level: a disc name of the anatomy (``"L4-L5"``, ``"disc 3"``).
        trust_position_rules: measure also from sub-regions made by position rules
            (:data:`POSITION_RULE_SOURCES`; for research and tests): otherwise every side gives
            :data:`POSITION_RULE_REASON`.

    Returns:
        None when the anatomy has no sub-regions (nothing measurable: the caller keeps its fixed reason);
        else per side the measures or their reasons (see the module docstring for the method).
    """
    sub_volume = anatomy.subregions
    if sub_volume is None or not np.any(sub_volume.array):
        return None
    disc = anatomy.disc(level)
    if anatomy.source in POSITION_RULE_SOURCES and not trust_position_rules:
        why = POSITION_RULE_REASON
        return LateralResult(
            level, {s: SideMeasure(reason=why) for s in _SIDES}, {s: SideMeasure(reason=why) for s in _SIDES}
        )
    if disc is None:
        why = f"not measured: the disc {level} is not in the segmentation"
        return LateralResult(
            level, {s: SideMeasure(reason=why) for s in _SIDES}, {s: SideMeasure(reason=why) for s in _SIDES}
        )
    labels_full = np.asarray(anatomy.labels.array)
    disc_kji = np.argwhere(labels_full == disc.label)
    disc_ras = anatomy.labels.ijk_to_ras_points(disc_kji[:, ::-1].astype(float))
    centre = np.asarray(disc.centroid_ras, dtype=float)
    tangent = _disc_axis(disc_ras)
    upper, lower, upper_name, lower_name = _vertebra_pair(anatomy, level, tangent, centre)
    recess: dict[str, SideMeasure] = {}
    foramen: dict[str, SideMeasure] = {}
    missing = [n for n, v in ((upper_name, upper), (lower_name, lower)) if v is None]
    if missing:
        why = f"not measured: {' and '.join(missing)} not in the segmentation (outside the field of view or not found)"
        return LateralResult(
            level, {s: SideMeasure(reason=why) for s in _SIDES}, {s: SideMeasure(reason=why) for s in _SIDES}
        )
    assert upper is not None and lower is not None
    crop = _Crop(anatomy, [disc.label, upper.label, lower.label])
    assert crop.sub is not None
    lab, sub = crop.labels, crop.sub
    is_upper, is_lower, is_disc = lab == upper.label, lab == lower.label, lab == disc.label
    upper_has = bool(np.any(sub[is_upper])) if is_upper.any() else False
    lower_has = bool(np.any(sub[is_lower])) if is_lower.any() else False
    # position along the disc's axis and to the patient's right (RAS +R made perpendicular to the axis)
    right = np.array([1.0, 0.0, 0.0]) - tangent[0] * tangent
    right /= np.linalg.norm(right)
    along_disc = (disc_ras - centre) @ tangent
    window = (
        float(np.percentile(along_disc, 2)) - RECESS_WINDOW_MARGIN_MM,
        float(np.percentile(along_disc, 98)) + RECESS_WINDOW_MARGIN_MM,
    )
    kji_all = np.argwhere(is_upper | is_lower | is_disc)
    ras_all = crop.ras(kji_all) - centre
    along = np.full(lab.shape, np.nan, dtype=np.float32)
    along[tuple(kji_all.T)] = ras_all @ tangent
    lateral = np.zeros(lab.shape, dtype=np.float32)  # mm to the patient's right of the disc centroid
    lateral[tuple(kji_all.T)] = ras_all @ right
    in_window = (along >= window[0]) & (along <= window[1])
    has_pedicles = bool(np.isin(sub_volume.array, list(_PEDICLE.values())).any())

    for side in _SIDES:
        sign = _SIGN[side]
        sap_code, iap_code = RECESS_POSTERIOR_CODES[side]
        # ---- lateral recess
        if not lower_has:
            recess[side] = SideMeasure(reason=f"not measured: {lower_name} has no sub-regions in the segmentation")
        else:
            posterior = in_window & ((is_lower & (sub == sap_code)) | (is_upper & (sub == iap_code)))
            # this side's half of the disc and body (a structure cut on the other side does not matter here)
            front = in_window & (sign * lateral >= 0) & (is_disc | (is_lower & np.isin(sub, _BODY_CODES)))
            ped = is_lower & (sub == _PEDICLE[side])
            limit = None
            if ped.any():
                ped_ras = crop.ras(np.argwhere(ped))
                limit = float(np.median(sign * ((ped_ras - centre) @ right)))
            recess[side] = _measure_side(
                crop,
                posterior,
                front,
                lambda pa, pb, sign=sign, limit=limit: _medial(pa, pb, centre, right, sign, limit),
                what=(
                    f"the {side} articular processes ({SUBREGION_NAMES[sap_code]} of {lower_name} or "
                    f"{SUBREGION_NAMES[iap_code]} of {upper_name}) near the disc level",
                    f"the back of the disc {level} or of the body of {lower_name}",
                ),
                names=lambda a, b, lower_name=lower_name, upper_name=upper_name: (
                    _structure_name(int(a[1]), lower_name if a[0] == lower.label else upper_name),
                    f"disc {level}" if b[0] == disc.label else _structure_name(int(b[1]), lower_name),
                ),
            )
        # ---- foraminal height
        if not has_pedicles:
            foramen[side] = SideMeasure(
                reason="not measured: the sub-regions have no pedicle labels (SPINEPS codes 41-50 hold none), so the "
                "foramen's roof and floor are not known"
            )
        elif not (upper_has and lower_has):
            name = upper_name if not upper_has else lower_name
            foramen[side] = SideMeasure(reason=f"not measured: {name} has no sub-regions in the segmentation")
        else:
            code = _PEDICLE[side]
            foramen[side] = _measure_side(
                crop,
                is_upper & (sub == code),
                is_lower & (sub == code),
                None,
                what=(f"the {side} pedicle of {upper_name}", f"the {side} pedicle of {lower_name}"),
                names=lambda a, b, code=code: (_structure_name(code, upper_name), _structure_name(code, lower_name)),
            )
    return LateralResult(level, recess, foramen)


def _medial(pa: np.ndarray, pb: np.ndarray, centre: np.ndarray, right: np.ndarray, sign: float, limit: float | None):
    """Pairs whose mid-point lies on its side of the mid-line and (with a pedicle) not lateral of its centre."""
    x = sign * ((0.5 * (pa + pb) - centre) @ right)
    ok = x > 0
    if limit is not None:
        ok &= x <= limit
    return ok


def _measure_side(
    crop: _Crop, a_mask: np.ndarray, b_mask: np.ndarray, accept: Any, what: tuple[str, str], names: Any
) -> SideMeasure:
    """One gap between ``a_mask`` and ``b_mask`` (see :func:`_nearest_clear_pair`), or its reason."""
    for mask, label in ((a_mask, what[0]), (b_mask, what[1])):
        if not mask.any():
            return SideMeasure(reason=f"not measured: {label} not in the sub-regions")
        if crop.cut(mask):  # the structure goes on beyond the image: its narrowest gap may lie outside
            return SideMeasure(reason=f"not measured: {label} is cut by the field of view")
    found = _nearest_clear_pair(crop, a_mask, b_mask, accept)
    if found is None:
        return SideMeasure(
            reason=f"not measured: no straight path free of bone within {MAX_GAP_MM:g} mm from {what[0]} to {what[1]}"
        )
    gap, points, ia, ib, e = found
    a_kji = np.argwhere(_boundary(a_mask))[ia]
    b_kji = np.argwhere(_boundary(b_mask))[ib]
    a_info = (int(crop.labels[tuple(a_kji)]), int(crop.sub[tuple(a_kji)]) if crop.sub is not None else 0)
    b_info = (int(crop.labels[tuple(b_kji)]), int(crop.sub[tuple(b_kji)]) if crop.sub is not None else 0)
    return SideMeasure(value_mm=gap, points_ras=points, structures=names(a_info, b_info), voxel_mm=e)


def lateral_cells(level: dict[str, Any]) -> dict[str, Any]:
    """The four lateral columns of a level (``LevelResult.to_dict()``; ``report.csv`` and the Slicer table) (mm; None where not measured or a fixed not-measured string)."""
    out: dict[str, Any] = {}
    for entry, key, column in (
        ("lateral_recess", "width_mm", "lateral_recess"),
        ("neural_foramina", "height_mm", "foraminal_height"),
    ):
        value = level.get(entry)
        for side in ("left", "right"):
            out[f"{column}_{side}_mm"] = value.get(side, {}).get(key) if isinstance(value, dict) else None
    return out
