"""Grade a spine: planes along the dural sac centreline, measurements, grades (the orchestration).

:func:`grade_anatomy` takes a :class:`~lumbarspine.anatomy.model.SpineAnatomy` (label map on the
image's grid, level names, canal centreline) and returns a :class:`GradingResult`:

1. the centreline is fitted as a smoothing spline and refined once on the sac's centroids
   (:mod:`.centreline`);
2. per disc level (``L1-L2`` .. ``L5-S1``, or ``disc n`` when unnumbered) the mid-level plane goes
   through the centreline point nearest the disc centroid, perpendicular to the centreline; planes
   every :data:`SEARCH_STEP_MM` over ``+-half the disc height`` (plus :data:`PROFILE_FIT_HALF_WIDTH_MM`
   on each side) along the centreline are measured (:mod:`.measure`), the area profile is smoothed
   by a local quadratic fit (:func:`fit_profile`) and the position of **minimum** fitted area within
   ``+-half the disc height`` is reported, with its offset from mid-level; the reported area is the
   fitted value there (the single plane's own area is kept as ``plane_area_mm2``);
3. a mid-vertebral reference plane is measured per vertebra (half-way between its two discs along
   the centreline), and each level's area is divided by the nearest reference whose area is normal
   (at least the moderate threshold);
4. the area on the **acquired slice** nearest the level (the number a routine axial read gives) is
   measured on the image's own grid when it is an axial stack, or on the axial series' grid when
   one is given (:func:`grade_anatomy` ``axial_labels``), else reported as not measured;
5. the area's standard uncertainty is the boundary term of :func:`.measure.measure_plane` plus a
   slice-thickness term ``e/sqrt(12) |dA/dt| + e**2/24 |d2A/dt2|`` (``e`` the voxel size along the
   plane normal, ``A(t)`` the area profile along the canal): the change of the area across one
   voxel of the measurement direction; grades, confidence and class probabilities follow
   (:mod:`.grades`).

Lateral recess widths and foraminal heights (mm, per side, not graded) come from :mod:`.lateral` where the
anatomy's sub-regions label the articular processes and pedicles; without sub-regions both are reported as
not measured (:data:`LATERAL_NOT_MEASURED`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..labels import DISC_LEVELS
from ..progress import CancelCallback, ProgressCallback, check_cancel
from ..volume import label_values
from .centreline import Centreline, disc_half_height_mm, fit_centreline
from .grades import RSNA_LABELS, GradingThresholds, class_probabilities, confidence, grade_value
from .lateral import LATERAL_METHOD, LateralResult, lateral_cells, measure_lateral
from .measure import (
    SAC_LABELS,
    MaskField,
    PlaneSection,
    SliceSection,
    acquired_slice_axis,
    check_sac_fraction,
    measure_acquired_slice,
    measure_plane,
    voxel_size_along,
)

__all__ = [
    "LevelResult",
    "ReferenceResult",
    "GradingResult",
    "grade_anatomy",
    "grade_levels",
    "SEARCH_STEP_MM",
    "PROFILE_FIT_HALF_WIDTH_MM",
    "PROFILE_STEP_MM",
    "FRACTION_MAX_SPACING_MM",
    "fit_profile",
    "LATERAL_NOT_MEASURED",
]

SEARCH_STEP_MM = 0.5
"""Spacing (mm along the centreline) of the planes searched for the minimum area in a disc space."""

PROFILE_FIT_HALF_WIDTH_MM = 2.0
"""Half-width (mm along the centreline) of the local quadratic fit that smooths the area profile of a
disc space before its minimum is taken (:func:`fit_profile`).

Why: on a crisp label map the area of one plane carries the aliasing of the voxel raster (about
+-2 % for a 60 mm2 section at 1 mm voxels, one standard deviation over sub-voxel grid shifts and
turns), and the minimum of a noisy profile picks the deepest noise dip (about -1.7 % at a normal
level of the 1 mm phantom, and up to -2.6 % at a stenosis on one of its turned grids). A quadratic
fit leaves a smooth minimum unbiased and averages part of that noise. Why not wider: a narrow
stenosis is flattened by a wide window (raised-cosine narrowing of 3 mm half-length, 90 mm2: fitted
minimum +1.3 % at 2 mm, +8 % at 3 mm, +20 % at 4 mm), so 2 mm is the widest window that stays within
the 3 % accuracy target for a narrowing only 6 mm long, shorter than a lumbar disc (measured in
``scripts/bench_grading.py``, section "rotation"). The fit is used only where the voxel size along the
plane normal is at most this half-width (the window then holds at least two voxel layers): on thick
slices cut across the profile is a linear interpolation between slices whose samples at the slice
centres are exact, and a fit over one slice would only lift the minimum between them (+0.3 and +0.6 %
at the 60 and 90 mm2 levels of the 0.6 x 0.6 x 4 mm axial phantom)."""

PROFILE_STEP_MM = 2.0
"""Spacing (mm along the centreline) of the area profile drawn along the whole canal."""

MAX_LEVEL_DISTANCE_MM = 45.0
"""A disc whose centroid is farther than this (mm) from the sac centreline is not measured (the sac
does not reach it)."""

LATERAL_NOT_MEASURED = (
    "not measured: the segmentation has no sub-regions (articular processes, pedicles, vertebral bodies), so the "
    "lateral recess width and the foraminal height cannot be measured from it (nor from nerve-root, ligamentum "
    "flavum or facet joint labels, which no convention read here holds)"
)


def _round(value: Any, digits: int = 2) -> Any:
    if value is None:
        return None
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_round(v, digits) for v in value]
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


@dataclass
class ReferenceResult:
    """A mid-vertebral reference plane.

    Attributes:
        vertebra: its name (``"L3"``, ``"vertebra 2"``).
        t_mm: position along the centreline (mm from the cranial end).
        section: the measurement, or None with ``reason``.
    """

    vertebra: str
    t_mm: float
    section: PlaneSection | None
    reason: str | None = None

    @property
    def area_mm2(self) -> float:
        return self.section.area_mm2 if self.section is not None else float("nan")

    def to_dict(self) -> dict[str, Any]:
        s = self.section
        return {
            "vertebra": self.vertebra,
            "dural_sac_area_mm2": _round(self.area_mm2),
            "ap_diameter_mm": _round(s.ap_diameter_mm) if s else None,
            "transverse_width_mm": _round(s.transverse_width_mm) if s else None,
            "position_along_canal_mm": _round(self.t_mm, 1),
            "plane_center_ras": _round(s.center_ras, 3) if s else None,
            "plane_normal_ras": _round(s.normal_ras, 5) if s else None,
            "status": "measured" if s else "not measured",
            "reason": self.reason,
        }


@dataclass
class LevelResult:
    """Everything measured at one disc level (see :meth:`to_dict` for the report fields)."""

    level: str
    status: str = "not measured"
    reason: str | None = None
    disc_label: int | None = None
    disc_centroid_ras: np.ndarray | None = None
    t_mid_mm: float = float("nan")
    t_min_mm: float = float("nan")
    search_half_height_mm: float = float("nan")
    fit_half_width_mm: float = float("nan")
    mid: PlaneSection | None = None
    minimum: PlaneSection | None = None
    area_fit_mm2: float = float("nan")
    area_sd_mm2: float = float("nan")
    boundary_sd_mm2: float = float("nan")
    slice_sd_mm2: float = float("nan")
    grade: str | None = None
    ap_grade: str | None = None
    confidence: float | None = None
    borderline: bool | None = None
    ap_confidence: float | None = None
    probabilities: dict[str, float] | None = None
    axial: SliceSection | None = None
    axial_reason: str | None = None
    axial_source: str | None = None
    reference: ReferenceResult | None = None
    reference_note: str | None = None
    truncated: bool = False
    search: list[tuple[float, float]] = field(default_factory=list)
    search_fit: list[float] = field(default_factory=list)
    quality_warnings: list[str] = field(default_factory=list)
    lateral: LateralResult | None = None

    @property
    def measured(self) -> bool:
        return self.minimum is not None

    @property
    def area_mm2(self) -> float:
        """The reported DSCSA (mm2): the fitted profile's minimum (:func:`fit_profile`), or the
        minimum plane's own area where the profile could not be fitted; NaN when not measured."""
        if self.minimum is None:
            return float("nan")
        return self.area_fit_mm2 if math.isfinite(self.area_fit_mm2) else self.minimum.area_mm2

    @property
    def area_ratio(self) -> float:
        if self.reference is None or self.minimum is None:
            return float("nan")
        return self.area_mm2 / self.reference.area_mm2

    def to_dict(self) -> dict[str, Any]:
        """The level's entry of ``report.json`` (mm, mm2, RAS)."""
        s = self.minimum
        axial_area = self.axial.area_mm2 if self.axial is not None else None
        return {
            "level": self.level,
            "status": self.status,
            "reason": self.reason,
            "dural_sac_area_mm2": _round(self.area_mm2) if s else None,
            "plane_area_mm2": _round(s.area_mm2) if s else None,
            "plane_area_note": "area of the single plane drawn (outline, AP line); dural_sac_area_mm2 is the "
            "minimum of the area profile smoothed by a local quadratic fit over +-profile_fit_half_width_mm along "
            "the canal (0: the raw profile, on slices thicker than the fit window)",
            "axial_slice_area_mm2": _round(axial_area),
            "ap_diameter_mm": _round(s.ap_diameter_mm) if s else None,
            "transverse_width_mm": _round(s.transverse_width_mm) if s else None,
            "central_canal_grade": self.grade,
            "confidence": _round(self.confidence, 3),
            "borderline": self.borderline,
            "plane_center_ras": _round(s.center_ras, 3) if s else None,
            "plane_normal_ras": _round(s.normal_ras, 5) if s else None,
            "ap_direction_ras": _round(s.ap_direction_ras, 5) if s else None,
            "dural_sac_area_sd_mm2": _round(self.area_sd_mm2),
            "area_sd_boundary_mm2": _round(self.boundary_sd_mm2),
            "area_sd_slice_thickness_mm2": _round(self.slice_sd_mm2),
            "class_probabilities": {k: _round(v, 4) for k, v in self.probabilities.items()}
            if self.probabilities
            else None,
            "ap_grade": self.ap_grade,
            "ap_confidence": _round(self.ap_confidence, 3),
            "ap_diameter_sd_mm": _round(s.ap_sd_mm) if s else None,
            "perimeter_mm": _round(s.perimeter_mm) if s else None,
            "minimum_offset_mm": _round(self.t_mid_mm - self.t_min_mm) if s else None,
            "minimum_offset_note": "signed distance along the centreline from the disc's mid-level plane to the "
            "plane of minimum (fitted) area; positive = cranial",
            "search_half_range_mm": _round(self.search_half_height_mm),
            "profile_fit_half_width_mm": _round(self.fit_half_width_mm),
            "mid_level_area_mm2": _round(self.mid.area_mm2) if self.mid else None,
            "mid_level_plane_center_ras": _round(self.mid.center_ras, 3) if self.mid else None,
            "mid_level_plane_normal_ras": _round(self.mid.normal_ras, 5) if self.mid else None,
            "position_along_canal_mm": _round(self.t_min_mm, 1) if s else None,
            "reference_level": self.reference.vertebra if self.reference else None,
            "reference_area_mm2": _round(self.reference.area_mm2) if self.reference else None,
            "area_ratio_to_reference": _round(self.area_ratio, 3) if self.reference and s else None,
            "reference_note": self.reference_note,
            "axial_slice": {
                "source": self.axial_source,
                "slice_index": self.axial.slice_index,
                "slice_axis": "ijk"[self.axial.axis],
                "plane_center_ras": _round(self.axial.center_ras, 3),
                "plane_normal_ras": _round(self.axial.normal_ras, 5),
                "distance_from_level_mm": _round(self.axial.distance_mm),
                "angle_to_measurement_plane_deg": _round(
                    math.degrees(math.acos(min(1.0, abs(float(np.dot(self.axial.normal_ras, s.normal_ras)))))), 1
                )
                if s
                else None,
            }
            if self.axial is not None
            else {"source": self.axial_source, "status": "not measured", "reason": self.axial_reason},
            "lateral_recess": self.lateral.recess_dict() if self.lateral is not None else LATERAL_NOT_MEASURED,
            "neural_foramina": self.lateral.foramen_dict() if self.lateral is not None else LATERAL_NOT_MEASURED,
            "quality_warnings": list(self.quality_warnings),
            "disc_label": self.disc_label,
            "disc_truncated": self.truncated,
            "rsna_target": rsna_target(self.level),
        }


def rsna_target(level: str) -> str | None:
    """``spinal_canal_stenosis_l4_l5`` for ``L4-L5`` (None for unnumbered levels)."""
    if level not in DISC_LEVELS:
        return None
    return "spinal_canal_stenosis_" + level.lower().replace("-", "_")


@dataclass
class GradingResult:
    """The graded study (see :func:`grade_anatomy`)."""

    levels: list[LevelResult]
    references: list[ReferenceResult]
    centreline: Centreline
    profile_t_mm: np.ndarray
    profile_area_mm2: np.ndarray
    thresholds: GradingThresholds
    warnings: list[str]
    method: dict[str, Any]
    seconds: float = 0.0

    def level(self, name: str) -> LevelResult | None:
        return next((lv for lv in self.levels if lv.level == name), None)


def fit_profile(t_mm: np.ndarray, area_mm2: np.ndarray, half_width_mm: float = PROFILE_FIT_HALF_WIDTH_MM) -> np.ndarray:
    """The area profile smoothed by a local quadratic least-squares fit (a Savitzky-Golay filter on
    an irregular grid): at each ``t`` the parabola through the finite samples within
    ``+-half_width_mm`` (mm along the centreline) is evaluated at ``t``.

    A quadratic profile is returned unchanged; a window with fewer than five finite samples (or one
    that does not reach both sides of ``t``) gives the raw sample (NaN stays NaN).

    Args:
        t_mm: positions along the centreline (mm), any order.
        area_mm2: areas at those positions (mm2, NaN where the plane missed the sac).
        half_width_mm: half-width of the fit window (mm); 0 returns the raw profile.
    """
    t = np.asarray(t_mm, dtype=float)
    a = np.asarray(area_mm2, dtype=float)
    out = a.copy()
    if half_width_mm <= 0:
        return out
    finite = np.isfinite(a)
    for i, ti in enumerate(t):
        if not finite[i]:
            continue
        sel = finite & (np.abs(t - ti) <= half_width_mm + 1e-9)
        dt = t[sel] - ti
        if sel.sum() < 5 or dt.min() >= 0 or dt.max() <= 0:
            continue
        out[i] = float(np.polyfit(dt, a[sel], 2)[-1])
    return out


class _DiscPoints:
    """RAS points (mm) of each disc label's voxels, the label map scanned once for all discs.

    The labelled voxels are found once (``flatnonzero``, the map is mostly background) and grouped
    by value on that short list: the same points, in the same (C, ``[k, j, i]``) order, as
    ``numpy.nonzero(labels.array == value)`` per disc, without one pass over the whole grid per disc.
    """

    def __init__(self, labels) -> None:
        self.labels = labels
        self._index: np.ndarray | None = None
        self._values: np.ndarray | None = None

    def __call__(self, value: int) -> np.ndarray:
        array = np.asarray(self.labels.array)
        if self._index is None:
            flat = array.reshape(-1)
            self._index = np.flatnonzero(flat)
            self._values = flat[self._index]
        chosen = self._index[self._values == value] if value != 0 else np.flatnonzero(array.reshape(-1) == 0)
        k, j, i = np.unravel_index(chosen, array.shape)
        return self.labels.ijk_to_ras_points(np.stack([i, j, k], axis=1))


FRACTION_MAX_SPACING_MM = 2.0
"""Largest voxel edge (mm) of a sac partial-volume map that is measured. A thicker voxel integrates
the sac over its whole slice, and along the canal that averages a narrowing into its neighbours:
on the phantom's 0.6 x 0.6 x 4 mm axial stack the partial-volume map reads a 60 mm2 stenosis 7.5 %
high, the crisp labels (sampled at the slice centres) 3.6 % (``scripts/benchmarks/grading-*.md``,
section "Partial volume"). The same limit as the profile fit's half-width."""


def grade_anatomy(
    anatomy,
    *,
    thresholds: GradingThresholds | None = None,
    axial_labels=None,
    axial_source: str = "",
    step_mm: float = 0.25,
    sac_fraction=None,
    sac_fraction_source: str = "",
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
) -> GradingResult:
    """Measure and grade the central canal at every disc level of ``anatomy``.

    Args:
        anatomy: a :class:`~lumbarspine.anatomy.model.SpineAnatomy` (not modified).
        thresholds: grading cut-offs (:class:`GradingThresholds`, defaults from the clinical reference).
        axial_labels: optional label map on an axial series' grid (same patient coordinates) whose
            sac is measured on its acquired slices instead of the anatomy's own grid.
        axial_source: how ``axial_labels`` was made (written into the report).
        step_mm: in-plane sampling step of the plane measurements (mm).
        sac_fraction: optional partial-volume map of the dural sac (a Volume of fractions in [0, 1] on
            any grid of the same patient coordinates: a probabilistic segmentation's sac probability).
            The planes are then measured on it instead of the crisp labels, which removes the voxel
            raster's aliasing (at 1 mm a 60 mm2 section moves by up to 3-5 % between two crisp grids
            of the same anatomy, by under 1 % on its partial-volume map). The labels still give the
            levels, the centreline and the acquired-slice area. A map with voxels thicker than
            :data:`FRACTION_MAX_SPACING_MM` is checked but not measured (a warning says so).
        sac_fraction_source: what ``sac_fraction`` is (written into the method).
        progress, cancel: see :mod:`lumbarspine.progress`.

    Raises:
        ValueError: no dural sac label (1 or 2), no disc level at all, or a ``sac_fraction`` that is
            not a [0, 1] map of this sac (:func:`~lumbarspine.grading.measure.check_sac_fraction`).
    """
    started = time.perf_counter()
    thresholds = thresholds or GradingThresholds()

    def report(fraction: float, message: str) -> None:
        check_cancel(cancel, "Stenosis grading")
        if progress is not None:
            progress(fraction, message)

    labels = anatomy.labels
    field_ = MaskField(labels)  # the sac mask; empty when no sac label is present
    if field_.empty:
        present = set(int(v) for v in label_values(labels.array))
        raise ValueError(
            "No canal found: the segmentation has no dural sac / spinal canal (labels 1 cord, 2 canal in the "
            f"TotalSpineSeg convention); it holds {sorted(v for v in present if v)}. Segment the canal or convert the "
            "labels."
        )
    if not anatomy.discs:
        raise ValueError(
            "No disc level in the segmentation: grading needs the intervertebral discs (92-95, 100 L1-L2..L5-S1 in "
            "the TotalSpineSeg convention) to place the levels. Check the label convention."
        )
    if anatomy.centreline_ras is None:
        raise ValueError("The dural sac is too small to follow (no canal centreline): check the segmentation.")
    warnings = list(anatomy.warnings)
    fraction_note = "not given: the crisp labels are measured"
    if sac_fraction is not None:
        fraction_field = check_sac_fraction(sac_fraction, labels)
        thickest = float(max(sac_fraction.spacing))
        if thickest > FRACTION_MAX_SPACING_MM:
            fraction_note = (
                f"not used: its voxels are {thickest:g} mm thick (over {FRACTION_MAX_SPACING_MM:g} mm), so its slice "
                "partial volume averages a narrowing along the canal; the crisp labels are measured instead"
            )
            warnings.append(f"The sac probability map was {fraction_note}.")
        else:
            field_ = fraction_field
            fraction_note = f"used ({sac_fraction_source or 'sac probability'})"
    report(0.0, "fitting the dural sac centreline")

    def centroid(p, n):
        s = measure_plane(field_, p, n, step_mm=0.5, with_outline=False)
        return s.centroid_ras if isinstance(s, PlaneSection) else None

    line = fit_centreline(anatomy.centreline_ras, section_centroid=centroid)

    # ------------------------------------------------------------------ levels
    if anatomy.numbered:
        names = list(DISC_LEVELS)
        extra = [d.name for d in anatomy.discs if d.name not in DISC_LEVELS]
        if extra:
            warnings.append(f"Disc levels outside L1-L2..L5-S1 are not graded: {', '.join(extra)}.")
    else:
        names = [d.name for d in anatomy.discs]
    levels: list[LevelResult] = []
    disc_points = _DiscPoints(labels)
    axial_grid = axial_labels if axial_labels is not None else labels
    axis, orientation = acquired_slice_axis(axial_grid)
    if axial_labels is not None:
        source = axial_source or "axial series"
        axial_ok = orientation == "axial"
        axial_why = f"the axial series' slices are {orientation}, not axial"
    else:
        source = "this image's own slices"
        axial_ok = orientation == "axial"
        axial_why = (
            f"the image is not an axial stack (its slices are {orientation}); give the axial series (--axial) to "
            "measure the routine axial area"
        )
    for index, name in enumerate(names):
        report(0.1 + 0.6 * index / max(1, len(names)), f"measuring {name}")
        lv = LevelResult(level=name, axial_source=source)
        levels.append(lv)
        disc = anatomy.disc(name)
        if disc is None:
            lv.status = "outside field of view"
            lv.reason = f"the disc {name} is not in the segmentation (outside the field of view or not found)"
            continue
        lv.disc_label, lv.truncated = disc.label, disc.truncated
        lv.disc_centroid_ras = np.asarray(disc.centroid_ras, dtype=float)
        t_mid = line.nearest(lv.disc_centroid_ras)
        centre = line.points(t_mid)[0]
        distance = float(np.linalg.norm(centre - lv.disc_centroid_ras))
        if distance > MAX_LEVEL_DISTANCE_MM:
            lv.reason = f"the dural sac does not reach the disc {name} (nearest sac point {distance:.0f} mm away)"
            continue
        normal = line.normals(t_mid)[0]
        ap_hint = lv.disc_centroid_ras - centre
        lv.t_mid_mm = t_mid
        lv.search_half_height_mm = disc_half_height_mm(disc_points(disc.label), lv.disc_centroid_ras, normal)
        mid = measure_plane(field_, centre, normal, ap_hint, step_mm=step_mm)
        lv.mid = mid if isinstance(mid, PlaneSection) else None
        # the disc space +-half its height, plus the fit's half-width on each side so that the fit is centred
        e_normal = float(voxel_size_along(field_.labels, normal[None, :])[0])
        lv.fit_half_width_mm = PROFILE_FIT_HALF_WIDTH_MM if e_normal <= PROFILE_FIT_HALF_WIDTH_MM else 0.0
        reach = lv.search_half_height_mm + lv.fit_half_width_mm
        n_side = int(np.floor(reach / SEARCH_STEP_MM + 1e-9))
        offsets = np.arange(-n_side, n_side + 1) * SEARCH_STEP_MM
        ts = t_mid + offsets
        keep = (ts >= 0.0) & (ts <= line.length_mm)
        offsets, ts = offsets[keep], ts[keep]
        areas = []
        for t in ts:
            s = measure_plane(
                field_, line.points(t)[0], line.normals(t)[0], ap_hint, step_mm=step_mm, with_outline=False
            )
            areas.append(s.area_mm2 if isinstance(s, PlaneSection) else np.nan)
        areas_arr = np.asarray(areas, dtype=float)
        lv.search = list(zip(ts.tolist(), areas_arr.tolist()))
        if not np.isfinite(areas_arr).any():
            lv.reason = mid if isinstance(mid, str) else "the planes of this disc space miss the dural sac"
            continue
        fitted = fit_profile(ts, areas_arr, lv.fit_half_width_mm)
        lv.search_fit = fitted.tolist()
        inner = np.abs(offsets) <= lv.search_half_height_mm + 1e-9
        if not np.isfinite(fitted[inner]).any():
            lv.reason = mid if isinstance(mid, str) else "the planes of this disc space miss the dural sac"
            continue
        best = int(np.nanargmin(np.where(inner, fitted, np.nan)))
        lv.t_min_mm = float(ts[best])
        lv.area_fit_mm2 = float(fitted[best])
        section = measure_plane(field_, line.points(ts[best])[0], line.normals(ts[best])[0], ap_hint, step_mm=step_mm)
        if not isinstance(section, PlaneSection):  # pragma: no cover - the same plane was just measured
            lv.reason = section
            continue
        lv.minimum = section
        lv.status = "measured"
        if section.cut_by_field_of_view:
            lv.quality_warnings.append(
                "the dural sac section is cut by the edge of the image's field of view: the area is a lower bound"
            )
        if section.other_area_mm2 > 0.1 * section.area_mm2:
            lv.quality_warnings.append(
                f"the dural sac is in several pieces in the measurement plane ({section.other_area_mm2:.0f} mm2 "
                "outside the measured piece): check the segmentation (holes, a missing cord label)"
            )
        warnings.extend(f"{name}: {text}." for text in lv.quality_warnings)
        # uncertainty: boundary term + slice-thickness term from the profile's slope and curvature
        e = float(voxel_size_along(field_.labels, section.normal_ras[None, :])[0])
        finite = np.isfinite(areas_arr)
        slope = curvature = 0.0
        if finite.sum() >= 5:
            grad = np.gradient(np.where(finite, areas_arr, np.nanmean(areas_arr)), SEARCH_STEP_MM)
            grad2 = np.gradient(grad, SEARCH_STEP_MM)
            lo, hi = max(0, best - 2), min(len(ts), best + 3)
            slope = float(np.nanmean(np.abs(grad[lo:hi])))
            curvature = float(np.nanmean(np.abs(grad2[lo:hi])))
        lv.boundary_sd_mm2 = section.area_sd_mm2
        lv.slice_sd_mm2 = e / math.sqrt(12.0) * slope + e * e / 24.0 * curvature
        lv.area_sd_mm2 = math.hypot(lv.boundary_sd_mm2, lv.slice_sd_mm2)
        area = lv.area_mm2
        lv.grade = grade_value(area, thresholds.area_moderate_mm2, thresholds.area_severe_mm2)
        lv.confidence, lv.borderline = confidence(
            area, lv.area_sd_mm2, thresholds.area_moderate_mm2, thresholds.area_severe_mm2
        )
        lv.probabilities = class_probabilities(
            area, lv.area_sd_mm2, thresholds.area_moderate_mm2, thresholds.area_severe_mm2
        )
        lv.ap_grade = grade_value(section.ap_diameter_mm, thresholds.ap_moderate_mm, thresholds.ap_severe_mm)
        lv.ap_confidence, _ = confidence(
            section.ap_diameter_mm, section.ap_sd_mm, thresholds.ap_moderate_mm, thresholds.ap_severe_mm
        )
        # the routine read: the acquired slice nearest the mid-level point
        if not axial_ok:
            lv.axial_reason = axial_why
        else:
            sl = measure_acquired_slice(axial_grid, centre)
            if isinstance(sl, SliceSection):
                lv.axial = sl
            else:
                lv.axial_reason = sl
        if lv.truncated:
            warnings.append(f"The disc {name} is cut by the field of view: its level may be placed inaccurately.")

    # ------------------------------------------------- lateral recesses and foramina (sub-regions only)
    for lv in levels:
        if lv.disc_label is not None:
            lv.lateral = measure_lateral(anatomy, lv.level)

    # -------------------------------------------------------------- references
    report(0.75, "measuring the mid-vertebral reference planes")
    references: list[ReferenceResult] = []
    level_t = {lv.level: lv.t_mid_mm for lv in levels if math.isfinite(lv.t_mid_mm)}
    disc_names = [d.name for d in anatomy.discs]
    for vertebra in anatomy.vertebrae:
        if vertebra.label == 50:  # the sacrum: no mid-vertebral canal reference
            continue
        above = next((n for n in disc_names if n.endswith("-" + vertebra.name)), None)
        below = next((n for n in disc_names if n.startswith(vertebra.name + "-")), None)
        ts_ = [level_t[n] for n in (above, below) if n in level_t]
        if not anatomy.numbered:
            ts_ = []
        t_ref = float(np.mean(ts_)) if len(ts_) == 2 else line.nearest(np.asarray(vertebra.centroid_ras))
        if t_ref <= 0.0 or t_ref >= line.length_mm:
            references.append(ReferenceResult(vertebra.name, t_ref, None, "at the end of the dural sac"))
            continue
        section = measure_plane(field_, line.points(t_ref)[0], line.normals(t_ref)[0], step_mm=step_mm)
        if isinstance(section, PlaneSection):
            references.append(ReferenceResult(vertebra.name, t_ref, section))
        else:
            references.append(ReferenceResult(vertebra.name, t_ref, None, section))
    normal_refs = [r for r in references if r.section is not None and r.area_mm2 >= thresholds.area_moderate_mm2]
    for lv in levels:
        if not lv.measured:
            continue
        if normal_refs:
            lv.reference = min(normal_refs, key=lambda r: abs(r.t_mm - lv.t_min_mm))
        else:
            lv.reference_note = (
                "no mid-vertebral reference plane has a normal area (>= the moderate threshold): no ratio"
            )

    # ----------------------------------------------------------------- profile
    report(0.85, "measuring the area along the canal")
    ts_profile = [float(t) for t in line.sample(PROFILE_STEP_MM)]
    areas_profile = []
    for t in ts_profile:
        check_cancel(cancel, "Stenosis grading")
        s = measure_plane(field_, line.points(t)[0], line.normals(t)[0], step_mm=0.4, with_outline=False)
        areas_profile.append(s.area_mm2 if isinstance(s, PlaneSection) else np.nan)
    for lv in levels:
        for t, a in lv.search:
            ts_profile.append(t)
            areas_profile.append(a)
    order = np.argsort(ts_profile)
    spacing = tuple(round(float(s), 4) for s in labels.spacing)
    method = {
        "centreline": line.source + " (cubic smoothing spline)",
        "plane": "perpendicular to the centreline through the centreline point nearest the disc centroid; minimum "
        f"area searched every {SEARCH_STEP_MM} mm over +-half the disc height along the centreline, on the area "
        f"profile smoothed by a local quadratic fit over +-{PROFILE_FIT_HALF_WIDTH_MM:g} mm (where the voxel size "
        "along the normal is at most that; raw profile on thicker slices)",
        "area": (
            "partial-volume area of the trilinearly interpolated dural sac mask (labels 1 + 2) in the plane, "
            f"in-plane step {step_mm} mm"
            if field_.values
            else "integral of the trilinearly interpolated dural sac partial-volume map "
            f"({sac_fraction_source or 'sac probability'}) over its 0.5 section in the plane, in-plane step "
            f"{step_mm} mm"
        ),
        "ap_diameter": "chord through the section centroid towards the disc, 0.5 crossings of the interpolated mask",
        "transverse_width": "chord through the section centroid along ap x normal (patient right)",
        "uncertainty": "boundary offset of 1/sqrt(12) voxel along the outline normal, integrated over the outline, "
        "plus a slice-thickness term from the area profile; confidence = Phi(|area - nearest threshold| / sd)",
        "axial_slice_area": "sac pixel count x pixel area on the acquired slice nearest the mid-level point",
        "label_spacing_mm": spacing,
    }
    method["sac_fraction"] = fraction_note
    method["lateral"] = LATERAL_METHOD
    if not field_.values:
        method["sac_fraction_spacing_mm"] = tuple(round(float(v), 4) for v in sac_fraction.spacing)
    report(1.0, "graded")
    return GradingResult(
        levels=levels,
        references=references,
        centreline=line,
        profile_t_mm=np.asarray(ts_profile)[order],
        profile_area_mm2=np.asarray(areas_profile, dtype=float)[order],
        thresholds=thresholds,
        warnings=warnings,
        method=method,
        seconds=time.perf_counter() - started,
    )


def table_rows(result: GradingResult) -> list[dict[str, Any]]:
    """One flat row per level for a table (numbers as float, NaN where not measured)."""
    rows = []
    nan = float("nan")
    for lv in result.levels:
        d = lv.to_dict()
        s = lv.minimum
        centre = s.center_ras if s is not None else [nan] * 3
        normal = s.normal_ras if s is not None else [nan] * 3
        rows.append(
            {
                "level": lv.level,
                "dural_sac_area_mm2": nan if d["dural_sac_area_mm2"] is None else d["dural_sac_area_mm2"],
                "axial_slice_area_mm2": nan if d["axial_slice_area_mm2"] is None else d["axial_slice_area_mm2"],
                "ap_diameter_mm": nan if d["ap_diameter_mm"] is None else d["ap_diameter_mm"],
                "transverse_width_mm": nan if d["transverse_width_mm"] is None else d["transverse_width_mm"],
                "grade": RSNA_LABELS.get(lv.grade or "", "not measured"),
                "central_canal_grade": lv.grade or "",
                "ap_grade": RSNA_LABELS.get(lv.ap_grade or "", "not measured"),
                "confidence": nan if lv.confidence is None else round(lv.confidence, 3),
                "borderline": "" if lv.borderline is None else ("yes" if lv.borderline else "no"),
                "area_ratio_to_reference": nan
                if d["area_ratio_to_reference"] is None
                else d["area_ratio_to_reference"],
                "rsna_target": rsna_target(lv.level) or "",
                "center_r": round(float(centre[0]), 2),
                "center_a": round(float(centre[1]), 2),
                "center_s": round(float(centre[2]), 2),
                "normal_r": round(float(normal[0]), 4),
                "normal_a": round(float(normal[1]), 4),
                "normal_s": round(float(normal[2]), 4),
                **{key: nan if value is None else value for key, value in lateral_cells(d).items()},
                "note": "; ".join([lv.reason] if lv.reason else lv.quality_warnings),
            }
        )
    return rows


def grade_levels(labels, thresholds: GradingThresholds | None = None) -> list[dict[str, Any]]:
    """Grade a label map in the TotalSpineSeg convention; one table row per disc level found.

    The label-map entry point of the Slicer module: the map becomes a
    :class:`~lumbarspine.anatomy.model.SpineAnatomy` (names as imported) and goes through
    :func:`grade_anatomy`; levels whose disc is absent are left out here (the full report lists them).

    Raises:
        ValueError: not a label map, labels outside TotalSpineSeg or no lumbar disc (unknown label
            convention), or no canal label ("No canal found").
    """
    from ..anatomy.build import anatomy_from_labels
    from ..labels import DISC_LABELS, check_totalspineseg
    from ..volume import validate_label_volume

    validate_label_volume(labels)
    present = set(int(v) for v in label_values(labels.array))
    check_totalspineseg(present)
    if not any(DISC_LABELS[level] in present for level in DISC_LEVELS):
        raise ValueError(
            "No lumbar disc labels (92-95, 100 in the TotalSpineSeg convention) in the label map, which holds "
            f"{sorted(v for v in present if v)}: unknown label convention? Convert the labels to TotalSpineSeg."
        )
    if not present & set(SAC_LABELS):
        raise ValueError(
            f"No canal found: labels 1/2 (spinal cord / canal, TotalSpineSeg) are not in the label map, which holds "
            f"{sorted(v for v in present if v)}. Segment the canal (e.g. with TotalSpineSeg) or convert the labels."
        )
    anatomy = anatomy_from_labels(labels, numbering="imported", source="label map")
    result = grade_anatomy(anatomy, thresholds=thresholds)
    return [row for row, lv in zip(table_rows(result), result.levels) if lv.status != "outside field of view"]
