"""Area and diameters of a labelled structure in an arbitrary plane (e.g. the dural sac perpendicular
to the canal).

The plane is given by a centre point and a normal in RAS (mm). A square window of half-width
``radius_mm`` in the plane is sampled on a regular grid with spacing ``step_mm``; each sample is
looked up in the label map, the connected component (4-connectivity in the plane) containing the
centre is kept, and ``area = count * step_mm**2`` (mm2).

Look-up methods:

* ``"linear"`` (default): the binary mask ``label in label_values`` is interpolated trilinearly at
  each sample and thresholded at 0.5. This places the boundary half-way between inside and outside
  voxel centres, which removes part of the staircase error of the voxel grid.
* ``"nearest"``: the label of the nearest voxel (:meth:`Volume.sample_nearest_ras`).

Accuracy (measured on the synthetic phantom, 1 mm voxels, 8 random sub-voxel grid shifts, axial and
oblique grids; error of the area relative to the analytic truth): dural sac of 163 mm2 -- linear
sd 0.7-0.9 %, nearest 0.8-1.2 %; 60 mm2 stenosis -- linear sd 1.9-2.1 %, nearest 2.8 %. "linear" is
therefore the default. The remaining error is the aliasing of the crisp voxel raster itself (the
same label map is produced by any boundary within +-half a voxel), so it shrinks with the voxel size
and grows as the section gets smaller; at 1 mm a 60 mm2 section cannot be measured to better than
about 2 % (one standard deviation) from labels alone. A light Gaussian smoothing of the mask before
interpolation was also tried: it lowers the spread a little but biases small sections (the 0.5 level
of a blurred convex section shrinks by about pi * sigma**2 mm2), so it is not used.

Diameters are chords through the section's centroid along two in-plane directions:
``ap_direction_ras`` (given, or the RAS anterior axis projected into the plane) and
``lateral = ap x normal`` (the patient's right for an upward normal); the Feret extents along the
same directions are reported too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..volume import Volume

__all__ = ["CrossSection", "cross_section_area_mm2", "plane_basis", "METHODS", "MAX_SAMPLES"]

METHODS = ("linear", "nearest")
MAX_SAMPLES = 16_000_000
"""Largest number of in-plane samples (``(2 * radius_mm / step_mm + 1) ** 2``) accepted."""


@dataclass(frozen=True)
class CrossSection:
    """A measured cross-section (all lengths mm, areas mm2, points and directions RAS).

    Attributes:
        area_mm2: area of the connected component containing the centre.
        ap_diameter_mm: length of the chord along ``ap_direction_ras`` through the centroid (the Feret
            extent when the centroid lies outside the section).
        lateral_diameter_mm: the same along ``lateral_direction_ras``.
        ap_feret_mm, lateral_feret_mm: Feret extents (max - min of the projections + one step); they
            are biased upward by the voxel staircase of the boundary.
        n_samples: number of in-plane samples inside the component.
        step_mm: sampling step.
        center_ras, normal_ras (unit), ap_direction_ras, lateral_direction_ras: the plane and its basis.
        centroid_ras: centroid of the component.
        center_inside: False when the centre itself was outside the label and the nearest component
            (within ``max_center_offset_mm``) was used.
        method: ``"linear"`` or ``"nearest"``.
    """

    area_mm2: float
    ap_diameter_mm: float
    lateral_diameter_mm: float
    ap_feret_mm: float
    lateral_feret_mm: float
    n_samples: int
    step_mm: float
    center_ras: tuple[float, float, float]
    normal_ras: tuple[float, float, float]
    ap_direction_ras: tuple[float, float, float]
    lateral_direction_ras: tuple[float, float, float]
    centroid_ras: tuple[float, float, float]
    center_inside: bool
    method: str


def _vec3(value: object, what: str) -> np.ndarray:
    try:
        v = np.asarray(value, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be three numbers (RAS, mm); got {value!r}.") from None
    if v.size != 3:
        raise ValueError(f"{what} must be three numbers (RAS, mm); got {v.size} values.")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{what} must be finite; got {v.tolist()}.")
    return v


def plane_basis(
    normal_ras: Iterable[float], ap_direction_ras: Iterable[float] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit ``(normal, ap, lateral)`` RAS vectors of a plane; ``lateral = ap x normal``.

    ``ap`` is ``ap_direction_ras`` (or RAS anterior ``(0, 1, 0)``, or superior when the normal is
    nearly anterior) made orthogonal to the normal.
    """
    n = _vec3(normal_ras, "normal_ras")
    norm = np.linalg.norm(n)
    if norm < 1e-9:
        raise ValueError("normal_ras has zero length; give the plane normal as a non-zero RAS vector.")
    n = n / norm
    if ap_direction_ras is None:
        ap = np.array([0.0, 1.0, 0.0])
        if np.linalg.norm(ap - n * (ap @ n)) < 0.3:
            ap = np.array([0.0, 0.0, 1.0])
    else:
        ap = _vec3(ap_direction_ras, "ap_direction_ras")
    ap = ap - n * (ap @ n)
    if np.linalg.norm(ap) < 1e-6:
        raise ValueError("ap_direction_ras is parallel to the plane normal; it must have an in-plane component.")
    ap = ap / np.linalg.norm(ap)
    lateral = np.cross(ap, n)
    return n, ap, lateral / np.linalg.norm(lateral)


def _mask_values(labels: Volume, values: np.ndarray, ras: np.ndarray, method: str) -> np.ndarray:
    """Mask value in [0, 1] at each RAS point: nearest-neighbour (0/1) or trilinear interpolation."""
    if method == "nearest":
        inside = np.isin(labels.sample_nearest_ras(ras, fill=0), values) & _inside_grid(labels, ras, 0.5)
        return inside.astype(np.float32)
    ijk = labels.ras_to_ijk_points(ras)
    size = np.asarray(labels.size_ijk)
    lo = np.clip(np.floor(ijk.min(axis=0)).astype(int) - 1, 0, size - 1)
    hi = np.clip(np.ceil(ijk.max(axis=0)).astype(int) + 2, 1, size)
    if np.any(hi <= lo):
        return np.zeros(len(ras), dtype=np.float32)
    crop = np.asarray(labels.array)[lo[2] : hi[2], lo[1] : hi[1], lo[0] : hi[0]]
    mask = np.isin(crop, values).astype(np.float32)
    coords = np.stack([ijk[:, 2] - lo[2], ijk[:, 1] - lo[1], ijk[:, 0] - lo[0]])
    value = ndimage.map_coordinates(mask, coords, order=1, mode="constant", cval=0.0, prefilter=False)
    # beyond the outermost voxel centres the grid holds no information: count as outside
    return np.where(_inside_grid(labels, ras, 0.0), np.clip(value, 0.0, 1.0), 0.0).astype(np.float32)


def _chord(line: np.ndarray, index: int) -> int:
    """Length (in samples) of the run of True in ``line`` that contains ``index`` (0 when outside)."""
    if not line[index]:
        return 0
    outside = np.flatnonzero(~line)
    before = outside[outside < index]
    after = outside[outside > index]
    start = before[-1] + 1 if before.size else 0
    stop = after[0] if after.size else line.size
    return int(stop - start)


def _inside_grid(labels: Volume, ras: np.ndarray, pad: float) -> np.ndarray:
    ijk = labels.ras_to_ijk_points(ras)
    size = np.asarray(labels.size_ijk)
    return np.all((ijk >= -pad) & (ijk <= size - 1 + pad), axis=1)


def cross_section_area_mm2(
    labels: Volume,
    label_values: int | Iterable[int],
    center_ras: Iterable[float],
    normal_ras: Iterable[float],
    *,
    ap_direction_ras: Iterable[float] | None = None,
    step_mm: float = 0.1,
    radius_mm: float = 30.0,
    method: str = "linear",
    max_center_offset_mm: float = 5.0,
) -> CrossSection:
    """Area (mm2) and diameters (mm) of ``label_values`` in the plane through ``center_ras`` normal to ``normal_ras``.

    Args:
        labels: integer label map (any grid orientation, right- or left-handed).
        label_values: one label value or several (their union is measured).
        center_ras: a RAS point (mm) inside the structure (e.g. the canal centreline point).
        normal_ras: the plane normal in RAS (any length > 0).
        ap_direction_ras: in-plane direction for ``ap_diameter_mm`` (projected into the plane).
        step_mm: in-plane sampling step (mm); area resolution is ``step_mm**2``.
        radius_mm: half-width of the square sampling window (mm).
        method: ``"linear"`` (interpolated mask at 0.5, default) or ``"nearest"`` (see module doc).
        max_center_offset_mm: when the centre is not inside the label, the nearest component within
            this distance is measured instead.

    Raises:
        ValueError: bad inputs (non-finite or zero vectors, bad step/radius, unknown method, not a
            label map), no labelled sample near the centre, or a component reaching the window edge.
    """
    if not isinstance(labels, Volume):
        raise ValueError(f"labels must be a lumbarspine Volume; got {type(labels).__name__}.")
    if np.dtype(labels.array.dtype).kind not in "biu":
        raise ValueError(f"labels must hold integer labels; its voxel type is {labels.array.dtype}.")
    values = np.atleast_1d(np.asarray(label_values if not isinstance(label_values, int) else [label_values]))
    if values.size == 0 or values.dtype.kind not in "iu":
        raise ValueError(f"label_values must be one or more integer label values; got {label_values!r}.")
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}: use one of {', '.join(METHODS)}.")
    center = _vec3(center_ras, "center_ras")
    n, ap, lateral = plane_basis(normal_ras, ap_direction_ras)
    step = float(step_mm)
    radius = float(radius_mm)
    if not (np.isfinite(step) and step > 0):
        raise ValueError(f"step_mm must be a positive number of mm; got {step_mm!r}.")
    if not (np.isfinite(radius) and radius > step):
        raise ValueError(f"radius_mm must be larger than step_mm ({step:g} mm); got {radius_mm!r}.")
    half = int(np.floor(radius / step))
    m = 2 * half + 1
    if m * m > MAX_SAMPLES:
        raise ValueError(
            f"{m * m:,} in-plane samples requested (radius {radius:g} mm, step {step:g} mm); the limit is "
            f"{MAX_SAMPLES:,}. Use a larger step_mm or a smaller radius_mm."
        )
    offsets = np.arange(-half, half + 1) * step
    b, a = np.meshgrid(offsets, offsets, indexing="ij")  # rows: ap offset, columns: lateral offset
    ras = center[None, :] + a.reshape(-1, 1) * lateral[None, :] + b.reshape(-1, 1) * ap[None, :]
    inside = _mask_values(labels, values, ras, method).reshape(m, m) >= 0.5
    if not inside.any():
        raise ValueError(
            f"No sample of label(s) {values.tolist()} in the plane within {radius:g} mm of {center.round(2).tolist()} "
            "(RAS): the plane misses the structure (check the centre, the normal and the label values)."
        )
    components, _ = ndimage.label(inside)
    center_inside = bool(inside[half, half])
    if center_inside:
        comp = components[half, half]
    else:
        rows, cols = np.nonzero(inside)
        d2 = (rows - half) ** 2 + (cols - half) ** 2
        nearest = int(np.argmin(d2))
        if np.sqrt(d2[nearest]) * step > max_center_offset_mm:
            raise ValueError(
                f"The plane centre {center.round(2).tolist()} (RAS) is not inside label(s) {values.tolist()} and the "
                f"nearest labelled sample is {np.sqrt(d2[nearest]) * step:.1f} mm away (limit "
                f"{max_center_offset_mm:g} mm): no structure found at the centre."
            )
        comp = components[rows[nearest], cols[nearest]]
    sel = components == comp
    if sel[0, :].any() or sel[-1, :].any() or sel[:, 0].any() or sel[:, -1].any():
        raise ValueError(
            f"The labelled section reaches the edge of the {2 * radius:g} mm sampling window, so its area would be "
            "truncated: increase radius_mm, or check that the plane really cuts the structure across."
        )
    count = int(sel.sum())
    area = count * step * step
    pa, pb = a[sel], b[sel]
    centroid = center + pa.mean() * lateral + pb.mean() * ap
    row = int(np.clip(np.rint(pb.mean() / step) + half, 0, m - 1))  # sample row/column through the centroid
    col = int(np.clip(np.rint(pa.mean() / step) + half, 0, m - 1))
    ap_chord = _chord(sel[:, col], row) * step
    lateral_chord = _chord(sel[row, :], col) * step
    ap_feret = float(pb.max() - pb.min() + step)
    lateral_feret = float(pa.max() - pa.min() + step)
    return CrossSection(
        area_mm2=area,
        ap_diameter_mm=ap_chord if ap_chord > 0 else ap_feret,
        lateral_diameter_mm=lateral_chord if lateral_chord > 0 else lateral_feret,
        ap_feret_mm=ap_feret,
        lateral_feret_mm=lateral_feret,
        n_samples=count,
        step_mm=step,
        center_ras=tuple(float(x) for x in center),  # type: ignore[arg-type]
        normal_ras=tuple(float(x) for x in n),  # type: ignore[arg-type]
        ap_direction_ras=tuple(float(x) for x in ap),  # type: ignore[arg-type]
        lateral_direction_ras=tuple(float(x) for x in lateral),  # type: ignore[arg-type]
        centroid_ras=tuple(float(x) for x in centroid),  # type: ignore[arg-type]
        center_inside=center_inside,
        method=method,
    )
