"""Sub-voxel measurements of the dural sac in a plane, and on an acquired slice.

**Oblique plane** (:func:`measure_plane`). The binary sac mask (labels 1 cord + 2 canal/dural sac of
the project's convention: the dural sac holds the cord or the cauda equina) is interpolated
trilinearly (:class:`MaskField`) on a square in-plane grid (step ``step_mm``). The section is the
connected component of ``field >= 0.5`` that contains the plane centre (or the nearest within
:data:`MAX_CENTER_OFFSET_MM`). Then

* **area** = the *partial-volume area*: the integral of the interpolated mask over the component and
  a band around it as wide as the largest voxel edge (``sum(field) * step**2``, mm2). For a grid
  plane this equals the voxel count times the pixel area exactly (the integral of a bilinear
  interpolant is the sum of its samples), so it is unbiased for crisp voxel-centre labels, and it
  changes smoothly when the grid turns;
* **outline** = the 0.5 iso-contour (marching squares, :func:`skimage.measure.find_contours`) as
  RAS points, and its **perimeter**;
* **AP diameter** = the chord through the section's centroid along the AP direction (from the
  canal towards the disc), with the two 0.5 crossings located by linear interpolation on a
  0.05 mm line; **transverse width** = the same chord along ``lateral = ap x normal``.

This re-uses :func:`lumbarspine.measure.cross_section.plane_basis` for the in-plane frame; the
count-at-0.5 area of :func:`~lumbarspine.measure.cross_section.cross_section_area_mm2` is not used
here because grading needs the outline, the perimeter and the uncertainty as well.

**Partial-volume map** (:meth:`MaskField.from_fraction`, checked by :func:`check_sac_fraction`). A
crisp label map only tells which voxel centres lie inside, so at 1 mm a 60 mm2 section reads up to
3-5 % differently on two grids of the same anatomy, whatever the measurement. Given a map of the
sac's share of each voxel (or a network's sac probability, values in [0, 1], on any grid), its
trilinear interpolant replaces the crisp mask's and the same section, area (its integral), outline
and chords are measured on it: the phantom's 1 mm grids turned by 20-25 degrees then agree within
0.2 % (``scripts/benchmarks/grading-partial-volume-*.md``). The uncertainty model below stays the
crisp one (a probability map's own calibration is not known here).

**Uncertainty** (:func:`boundary_sd_mm2`). A crisp label map is consistent with any boundary
within about half a voxel of the one drawn, and a segmentation's boundary error is mostly the same
sign all round (a sac drawn a little too big or too small). The area's standard uncertainty is
therefore modelled as a common boundary offset with standard deviation
``BOUNDARY_SD_VOXELS * e(n)`` at each outline point, where ``e(n)`` is the voxel size along the
outline's in-plane normal ``n`` (``sqrt(sum_i (n . d_i)**2 * s_i**2)``, so thick slices that the
plane cuts obliquely count in full): ``sd_area = integral over the outline of that offset``
(roughly perimeter x 0.29 voxel). The AP diameter's uncertainty is twice the offset along the AP
direction. A slice-thickness term is added by the caller from the area profile along the canal.

**Acquired slice** (:func:`measure_acquired_slice`). The area a routine axial read gives: the sac
component on one slice of the image's own grid, ``pixel count x pixel area`` (mm2), no
interpolation across slices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..labels import SPINAL_CANAL, SPINAL_CORD
from ..measure.cross_section import plane_basis
from ..volume import Volume, label_mask

__all__ = [
    "SAC_LABELS",
    "BOUNDARY_SD_VOXELS",
    "MAX_CENTER_OFFSET_MM",
    "MaskField",
    "check_sac_fraction",
    "PlaneSection",
    "SliceSection",
    "measure_plane",
    "measure_acquired_slice",
    "voxel_size_along",
    "acquired_slice_axis",
]

SAC_LABELS: tuple[int, ...] = (SPINAL_CORD, SPINAL_CANAL)
"""Labels whose union is the dural sac (TotalSpineSeg: 1 spinal cord, 2 spinal canal)."""

BOUNDARY_SD_VOXELS = 1.0 / np.sqrt(12.0)
"""Standard deviation of the sac boundary position, in voxels along the boundary normal (0.289:
a boundary known only to lie within +-half a voxel, uniformly)."""

MAX_CENTER_OFFSET_MM = 5.0
"""When the plane centre is not inside the sac, the nearest sac section within this distance (mm) is measured."""


def voxel_size_along(volume: Volume, directions_ras: np.ndarray) -> np.ndarray:
    """Voxel size (mm) of ``volume``'s grid along unit RAS ``directions_ras`` ``(N, 3)``:
    ``sqrt(sum_i (n . d_i)**2 s_i**2)`` (the spacing itself along a grid axis)."""
    n = np.atleast_2d(np.asarray(directions_ras, dtype=float))
    proj = n @ np.asarray(volume.direction, dtype=float)  # (N, 3): cosine with the i, j, k axes
    return np.sqrt(np.sum((proj * np.asarray(volume.spacing, dtype=float)[None, :]) ** 2, axis=1))


def _bounding_box(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last index (k, j, i) of a non-empty mask, from its projections on the three axes."""
    first = np.empty(3, dtype=np.int64)
    last = np.empty(3, dtype=np.int64)
    for axis in range(3):
        along = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        first[axis], last[axis] = along[0], along[-1]
    return first, last


class MaskField:
    """The sac mask of a label map as a trilinearly interpolated field in RAS (values in [0, 1]).

    Only the bounding box of the mask (plus a margin) is kept, as float32. Beyond the field of view
    the mask is 0 and interpolated like any other boundary (``grid-constant``), so a sac cut by the
    field of view ends half a voxel beyond the last voxel centre; :meth:`inside_grid` tells where
    that happened.
    """

    def __init__(self, labels: Volume, values: tuple[int, ...] = SAC_LABELS, margin: int = 3):
        mask = label_mask(np.asarray(labels.array), np.asarray(values))
        self._keep(labels, tuple(int(v) for v in values), mask, mask, margin)

    @classmethod
    def from_fraction(cls, fraction: Volume, margin: int = 3) -> MaskField:
        """The field of a partial-volume map of the sac (float in [0, 1]: a probabilistic segmentation's
        sac probability, or the fraction of each voxel inside the sac), on its own grid.

        Its trilinear interpolant replaces the crisp mask's: the section is its ``>= 0.5`` component and
        the area its integral, so the sub-voxel boundary the map carries is measured instead of the
        crisp raster's (:func:`check_sac_fraction` checks the map first).
        """
        self = cls.__new__(cls)
        array = np.asarray(fraction.array, dtype=np.float32)
        self._keep(fraction, (), array > 0.0, array, margin)
        self.data = np.clip(self.data, 0.0, 1.0)
        return self

    def _keep(self, grid: Volume, values: tuple[int, ...], present: np.ndarray, field: np.ndarray, margin: int) -> None:
        """Keep ``field`` (on ``grid``) as float32 over the bounding box of ``present`` plus ``margin`` voxels."""
        self.labels = grid
        self.values = values
        self.empty = not present.any()
        if self.empty:
            self.lo = np.zeros(3, dtype=int)
            self.data = np.zeros((1, 1, 1), dtype=np.float32)
        else:
            first, last = _bounding_box(present)
            lo = np.maximum(first - margin, 0)
            hi = np.minimum(last + margin + 1, np.asarray(field.shape))
            self.lo = lo  # (k, j, i)
            self.data = field[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].astype(np.float32)
        self.max_spacing = float(max(grid.spacing))

    def inside_grid(self, ras: np.ndarray) -> np.ndarray:
        """True for RAS points inside the label map's field of view (within half a voxel of its voxel centres)."""
        ijk = self.labels.ras_to_ijk_points(ras)
        size = np.asarray(self.labels.size_ijk)
        return np.all((ijk >= -0.5) & (ijk <= size - 0.5), axis=1)

    def sample(self, ras: np.ndarray) -> np.ndarray:
        """Interpolated mask value at each RAS point ``(N, 3)``; 0 outside the kept box."""
        ijk = self.labels.ras_to_ijk_points(ras)
        coords = np.stack([ijk[:, 2] - self.lo[0], ijk[:, 1] - self.lo[1], ijk[:, 0] - self.lo[2]])
        value = ndimage.map_coordinates(self.data, coords, order=1, mode="grid-constant", cval=0.0, prefilter=False)
        return np.clip(value, 0.0, 1.0)


FRACTION_TOLERANCE = 1e-3
"""How far (absolute) a partial-volume map's values may stray outside [0, 1] (float rounding of a resampled map)."""
MIN_SAC_COVERAGE = 0.5
"""A partial-volume map must average at least this fraction over the label map's sac voxels (same structure, same frame)."""
SAC_VOLUME_RATIO_RANGE = (0.5, 2.0)
"""Accepted ratio of the map's sac volume (its integral) to the label map's sac volume."""


def check_sac_fraction(fraction: object, labels: Volume, values: tuple[int, ...] = SAC_LABELS) -> MaskField:
    """Check a partial-volume (probability) map of the dural sac against the label map; return its field.

    Raises:
        ValueError: not a Volume, values that are not finite or not in [0, 1] (with the likely scale),
            nothing at 0.5 or above, or a map that does not cover the label map's sac (another series,
            another structure, or a different frame of reference).
    """
    if not isinstance(fraction, Volume):
        raise ValueError(
            f"The sac probability map must be a lumbarspine Volume (or an image file); got {type(fraction).__name__}."
        )
    array = np.asarray(fraction.array)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"The sac probability map must hold numbers; its voxel type is {array.dtype}.")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ValueError(
            f"The sac probability map holds {int(np.count_nonzero(~np.isfinite(array)))} voxels that are NaN or "
            "infinite: fix or replace them (0 outside the sac) and grade again."
        )
    lo, hi = float(array.min()), float(array.max())
    if lo < -FRACTION_TOLERANCE or hi > 1.0 + FRACTION_TOLERANCE:
        hint = ""
        if hi <= 255.0 and lo >= 0.0:
            hint = " If it is stored as 0-100 % or 0-255, divide it by 100 or 255 first."
        raise ValueError(
            f"The sac probability map must hold fractions in [0, 1] (the probability or the share of each voxel "
            f"inside the dural sac); its values run from {lo:g} to {hi:g}.{hint} A label map belongs in --segmentation."
        )
    field_ = MaskField.from_fraction(fraction)
    if field_.empty or hi < 0.5:
        raise ValueError("The sac probability map has no voxel at 0.5 or above: it holds no dural sac.")
    crisp = label_mask(np.asarray(labels.array), np.asarray(values))
    kji = np.argwhere(crisp)
    if kji.size == 0:
        return field_
    stride = max(1, len(kji) // 200_000)
    ras = labels.ijk_to_ras_points(kji[::stride, ::-1].astype(float))
    coverage = float(field_.sample(ras).mean())
    ratio = float(array.sum(dtype=np.float64)) * fraction.voxel_volume_mm3 / (len(kji) * labels.voxel_volume_mm3)
    if coverage < MIN_SAC_COVERAGE or not SAC_VOLUME_RATIO_RANGE[0] <= ratio <= SAC_VOLUME_RATIO_RANGE[1]:
        raise ValueError(
            f"The sac probability map does not match the segmentation's dural sac: it averages {coverage:.2f} over "
            f"the labelled sac (needs {MIN_SAC_COVERAGE:g}) and its sac volume is {ratio:.2f} x the label map's "
            f"(accepted {SAC_VOLUME_RATIO_RANGE[0]:g}-{SAC_VOLUME_RATIO_RANGE[1]:g}). Give the dural sac probability "
            "of the same series and session (same patient coordinates)."
        )
    return field_


@dataclass(frozen=True)
class PlaneSection:
    """The dural sac in one plane (lengths mm, areas mm2, points and directions RAS).

    Attributes:
        area_mm2: partial-volume area of the section.
        contour_area_mm2: area enclosed by the 0.5 outline (a cross-check; slightly smaller for
            convex sections because marching squares cuts the corners).
        perimeter_mm: length of the outline.
        ap_diameter_mm, transverse_width_mm: chords through the centroid.
        center_ras, normal_ras, ap_direction_ras, lateral_direction_ras: the plane and its frame.
        centroid_ras: centroid of the section.
        outline_ras: ``(N, 3)`` closed outline (first point not repeated).
        ap_line_ras, transverse_line_ras: ``(2, 3)`` chord end points (AP: posterior end first).
        area_sd_mm2: boundary term of the area's standard uncertainty (see module docstring).
        ap_sd_mm: standard uncertainty of the AP diameter.
        step_mm: in-plane sampling step.
        other_area_mm2: area of the other sac pieces in the sampling window (0 for an intact section;
            more means a split or holed segmentation, or nerve-root sleeves).
        cut_by_field_of_view: the section touches the edge of the image's field of view, so its area
            is a lower bound.
    """

    area_mm2: float
    contour_area_mm2: float
    perimeter_mm: float
    ap_diameter_mm: float
    transverse_width_mm: float
    center_ras: np.ndarray
    normal_ras: np.ndarray
    ap_direction_ras: np.ndarray
    lateral_direction_ras: np.ndarray
    centroid_ras: np.ndarray
    outline_ras: np.ndarray = field(repr=False)
    ap_line_ras: np.ndarray = field(repr=False)
    transverse_line_ras: np.ndarray = field(repr=False)
    area_sd_mm2: float = 0.0
    ap_sd_mm: float = 0.0
    step_mm: float = 0.25
    other_area_mm2: float = 0.0
    cut_by_field_of_view: bool = False


def _chord(mask_field: MaskField, origin: np.ndarray, direction: np.ndarray, radius: float) -> np.ndarray | None:
    """End points ``(2, 3)`` of the run of ``field >= 0.5`` through ``origin`` along ``direction``."""
    step = 0.05
    s = np.arange(-radius, radius + step / 2, step)
    values = mask_field.sample(origin[None, :] + s[:, None] * direction[None, :]) - 0.5
    inside = values >= 0
    centre = len(s) // 2
    if not inside[centre]:
        idx = np.flatnonzero(inside)
        if idx.size == 0:
            return None
        centre = int(idx[np.argmin(np.abs(idx - centre))])
    outside = np.flatnonzero(~inside)
    before = outside[outside < centre]
    after = outside[outside > centre]
    if before.size == 0 or after.size == 0:
        return None
    a0, b0 = before[-1], after[0]  # last outside before, first outside after

    def crossing(out_index: int, in_index: int) -> float:
        v_out, v_in = values[out_index], values[in_index]
        frac = v_out / (v_out - v_in) if v_out != v_in else 0.5
        return float(s[out_index] + frac * (s[in_index] - s[out_index]))

    lo = crossing(a0, a0 + 1)
    hi = crossing(b0, b0 - 1)
    return np.stack([origin + lo * direction, origin + hi * direction])


def measure_plane(
    mask_field: MaskField,
    center_ras: np.ndarray,
    normal_ras: np.ndarray,
    ap_hint_ras: np.ndarray | None = None,
    *,
    step_mm: float = 0.25,
    radius_mm: float = 20.0,
    with_outline: bool = True,
    boundary_sd_voxels: float = BOUNDARY_SD_VOXELS,
) -> PlaneSection | str:
    """Measure the sac in the plane through ``center_ras`` normal to ``normal_ras``.

    Returns a :class:`PlaneSection`, or a string saying why nothing was measured (the plane misses
    the sac, or the section reaches the sampling window's edge). ``with_outline=False`` measures the
    area and centroid only (no outline, chords or uncertainty: NaN), for searches and profiles.
    """
    n, ap, lat = plane_basis(normal_ras, ap_hint_ras)
    center = np.asarray(center_ras, dtype=float)
    half = int(np.floor(radius_mm / step_mm))
    m = 2 * half + 1
    offsets = np.arange(-half, half + 1) * step_mm
    b, a = np.meshgrid(offsets, offsets, indexing="ij")  # rows: AP offset, columns: lateral offset
    ras = center[None, :] + a.reshape(-1, 1) * lat[None, :] + b.reshape(-1, 1) * ap[None, :]
    values = mask_field.sample(ras).reshape(m, m)
    inside = values >= 0.5
    if not inside.any():
        return f"no dural sac within {radius_mm:g} mm of the plane centre"
    components, _ = ndimage.label(inside)
    if inside[half, half]:
        comp = components[half, half]
    else:
        rows, cols = np.nonzero(inside)
        d2 = (rows - half) ** 2 + (cols - half) ** 2
        nearest = int(np.argmin(d2))
        if np.sqrt(d2[nearest]) * step_mm > MAX_CENTER_OFFSET_MM:
            return f"the plane centre is {np.sqrt(d2[nearest]) * step_mm:.1f} mm from the nearest dural sac section"
        comp = components[rows[nearest], cols[nearest]]
    sel = components == comp
    # partial-volume band: the component's bounding box grown by one (largest) voxel edge
    rows = np.flatnonzero(sel.any(axis=1))
    cols = np.flatnonzero(sel.any(axis=0))
    grow = int(np.ceil((mask_field.max_spacing + step_mm) / step_mm))
    r0, r1, c0, c1 = rows[0] - grow, rows[-1] + grow + 1, cols[0] - grow, cols[-1] + grow + 1
    if r0 < 0 or c0 < 0 or r1 > m or c1 > m:
        return "the dural sac section reaches the edge of the sampling window (the plane runs along the sac)"
    box = values[r0:r1, c0:c1]
    other = (components[r0:r1, c0:c1] > 0) & ~sel[r0:r1, c0:c1]
    area = float(np.where(other, 0.0, box).sum()) * step_mm * step_mm
    other_area = float(np.count_nonzero(inside & ~sel)) * step_mm * step_mm
    near = ndimage.binary_dilation(sel[r0:r1, c0:c1], iterations=2)
    cut = not bool(mask_field.inside_grid(ras.reshape(m, m, 3)[r0:r1, c0:c1][near]).all())
    weight = sel.sum()
    cb = float((sel.sum(axis=1) * offsets).sum() / weight)
    ca = float((sel.sum(axis=0) * offsets).sum() / weight)
    centroid = center + ca * lat + cb * ap
    ap_line = tr_line = None
    if with_outline:
        ap_line = _chord(mask_field, centroid, ap, radius_mm)
        tr_line = _chord(mask_field, centroid, lat, radius_mm)
    ap_mm = float(np.linalg.norm(ap_line[1] - ap_line[0])) if ap_line is not None else float("nan")
    tr_mm = float(np.linalg.norm(tr_line[1] - tr_line[0])) if tr_line is not None else float("nan")
    outline = np.zeros((0, 3))
    contour_area = float("nan")
    perimeter = float("nan")
    area_sd = float("nan")
    if with_outline:
        from skimage.measure import find_contours

        masked = np.where(ndimage.binary_dilation(sel, iterations=2), values, 0.0)
        contours = [c for c in find_contours(masked, 0.5) if len(c) > 3 and np.allclose(c[0], c[-1])]
        if contours:
            signed = [0.5 * float(np.sum(c[:-1, 1] * c[1:, 0] - c[1:, 1] * c[:-1, 0])) for c in contours]
            contour_area = abs(sum(signed)) * step_mm * step_mm
            outer = contours[int(np.argmax(np.abs(signed)))]
            pa = (outer[:, 1] - half) * step_mm  # lateral offsets
            pb = (outer[:, 0] - half) * step_mm  # AP offsets
            seg_a, seg_b = np.diff(pa), np.diff(pb)
            lengths = np.hypot(seg_a, seg_b)
            perimeter = float(lengths.sum())
            # in-plane normal of each outline segment, in RAS
            ok = lengths > 0
            normals = (seg_b[ok, None] * lat[None, :] - seg_a[ok, None] * ap[None, :]) / lengths[ok, None]
            e = voxel_size_along(mask_field.labels, normals)
            area_sd = float(boundary_sd_voxels * np.sum(e * lengths[ok]))
            outline = center[None, :] + pa[:-1, None] * lat[None, :] + pb[:-1, None] * ap[None, :]
    ap_sd = float(2.0 * boundary_sd_voxels * voxel_size_along(mask_field.labels, ap[None, :])[0])
    return PlaneSection(
        area_mm2=area,
        contour_area_mm2=contour_area,
        perimeter_mm=perimeter,
        ap_diameter_mm=ap_mm,
        transverse_width_mm=tr_mm,
        center_ras=center,
        normal_ras=n,
        ap_direction_ras=ap,
        lateral_direction_ras=lat,
        centroid_ras=centroid,
        outline_ras=outline,
        ap_line_ras=ap_line if ap_line is not None else np.full((2, 3), np.nan),
        transverse_line_ras=tr_line if tr_line is not None else np.full((2, 3), np.nan),
        area_sd_mm2=area_sd,
        ap_sd_mm=ap_sd,
        step_mm=step_mm,
        other_area_mm2=other_area,
        cut_by_field_of_view=cut,
    )


def acquired_slice_axis(volume: Volume) -> tuple[int, str]:
    """The grid axis (0 = i, 1 = j, 2 = k) across which the image was acquired, and its orientation.

    The axis with the largest spacing when it is clearly the largest (> 1.2 x the others: a stack of
    thick slices); on a near-isotropic grid the axis with the fewest voxels when it has less than
    half as many as the others (a slab, e.g. a sagittal 3D slab resampled and stored with axial k),
    else k (the stacking axis of the file). Orientation: ``"axial"`` when that axis is within 45
    degrees of superior-inferior, ``"sagittal"`` within 45 degrees of right-left, else ``"coronal"``.
    """
    spacing = np.asarray(volume.spacing, dtype=float)
    size = np.asarray(volume.size_ijk)
    order = np.argsort(spacing)
    by_size = np.argsort(size)
    if spacing[order[2]] > 1.2 * spacing[order[1]]:
        axis = int(order[2])
    elif size[by_size[0]] < 0.5 * size[by_size[1]]:
        axis = int(by_size[0])
    else:
        axis = 2
    d = np.abs(np.asarray(volume.direction, dtype=float)[:, axis])
    name = ("sagittal", "coronal", "axial")[int(np.argmax(d))]
    return axis, name


@dataclass(frozen=True)
class SliceSection:
    """The sac on one acquired slice.

    Attributes:
        area_mm2: pixel count x pixel area of the sac component on the slice.
        slice_index: index along :attr:`axis` (0 = i, 1 = j, 2 = k) of the image grid.
        axis: the slice axis.
        center_ras, normal_ras: the slice plane (centre = the slice point nearest the level).
        distance_mm: distance from the level's point to the slice plane.
    """

    area_mm2: float
    slice_index: int
    axis: int
    center_ras: np.ndarray
    normal_ras: np.ndarray
    distance_mm: float


def measure_acquired_slice(labels: Volume, point_ras: np.ndarray, values: tuple[int, ...] = SAC_LABELS):
    """Area of the sac on the acquired slice of ``labels``' grid nearest ``point_ras``.

    Returns a :class:`SliceSection` or a string saying why not (point outside the slab, no sac on
    the slice, or the sac more than :data:`MAX_CENTER_OFFSET_MM` from the point).
    """
    axis, _ = acquired_slice_axis(labels)
    ijk = labels.ras_to_ijk_points(np.asarray(point_ras, dtype=float)[None, :])[0]
    size = np.asarray(labels.size_ijk)
    index = int(np.rint(ijk[axis]))
    if index < 0 or index >= size[axis]:
        return "the level lies outside the stack of slices"
    array = np.asarray(labels.array)
    plane = np.take(array, index, axis=2 - axis)  # array axes are (k, j, i)
    mask = np.isin(plane, np.asarray(values))
    in_plane_axes = [ax for ax in (0, 1, 2) if ax != axis]  # grid axes of the slice's columns/rows
    # plane is indexed [row, col] = [larger grid axis, smaller grid axis]
    row_axis, col_axis = in_plane_axes[1], in_plane_axes[0]
    target = np.array([ijk[row_axis], ijk[col_axis]])
    if not mask.any():
        return f"no dural sac on slice {index}"
    components, _ = ndimage.label(mask)
    r, c = int(np.rint(target[0])), int(np.rint(target[1]))
    pixel = (float(labels.spacing[row_axis]), float(labels.spacing[col_axis]))
    if 0 <= r < mask.shape[0] and 0 <= c < mask.shape[1] and mask[r, c]:
        comp = components[r, c]
    else:
        rows, cols = np.nonzero(mask)
        d = np.hypot((rows - target[0]) * pixel[0], (cols - target[1]) * pixel[1])
        nearest = int(np.argmin(d))
        if d[nearest] > MAX_CENTER_OFFSET_MM:
            return f"the dural sac on slice {index} is {d[nearest]:.1f} mm from the level's canal point"
        comp = components[rows[nearest], cols[nearest]]
    count = int((components == comp).sum())
    centre_ijk = ijk.copy()
    centre_ijk[axis] = index
    centre = labels.ijk_to_ras_points(centre_ijk[None, :])[0]
    normal = np.asarray(labels.direction, dtype=float)[:, axis].copy()
    if normal[2] < 0:
        normal = -normal
    return SliceSection(
        area_mm2=count * pixel[0] * pixel[1],
        slice_index=index,
        axis=axis,
        center_ras=centre,
        normal_ras=normal,
        distance_mm=float(abs(ijk[axis] - index) * labels.spacing[axis]),
    )
