"""The dural sac centreline as a smoothing spline, and the measurement planes along it.

The centreline is a parametric cubic smoothing spline ``C(t)`` through points of the canal axis
(RAS mm), parametrised by arc length ``t`` in mm from its cranial end. It starts from the anatomy's
binned canal centroids (:attr:`lumbarspine.anatomy.model.SpineAnatomy.centreline_ras`) and is
refined once: in planes perpendicular to the first spline every :data:`REFINE_STEP_MM` the dural
sac's centroid is measured and the spline is fitted again through those centroids. The plane
normal at ``t`` is the unit tangent, oriented **cranial** (towards the head), so that a plane's
normal points superior like the phantom's truth and Slicer's axial slice normal.

Planes:

* a disc level's **mid-level plane** goes through the centreline point nearest the disc label's
  centroid, perpendicular to the centreline (:meth:`Centreline.nearest`);
* its **AP direction** is the in-plane direction from the canal towards the disc centroid;
* the **disc space** searched for the minimum area is ``+-half the disc height`` along the
  centreline (:func:`disc_half_height_mm`, measured from the disc label along the plane normal).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Centreline",
    "fit_centreline",
    "disc_half_height_mm",
    "SMOOTHING_SD_MM",
    "REFINE_STEP_MM",
    "DEFAULT_DISC_HALF_HEIGHT_MM",
]

SMOOTHING_SD_MM = 0.7
"""Expected scatter (mm, one standard deviation) of the centreline points about the smooth axis;
the spline's smoothing condition is ``sum of squared residuals <= n_points * SMOOTHING_SD_MM**2``."""

REFINE_STEP_MM = 2.0
"""Spacing (mm along the canal) of the planes whose sac centroids refine the centreline."""

DEFAULT_DISC_HALF_HEIGHT_MM = 4.0
"""Half disc height (mm) used when the disc label is too thin or too sparse to measure it."""

MAX_DISC_HALF_HEIGHT_MM = 8.0
"""Upper bound (mm) on the half disc height searched for the minimum area (a tall disc search range
would reach the vertebral body level)."""


@dataclass(frozen=True)
class Centreline:
    """A smooth curve through the dural sac, cranial end first (all RAS mm).

    Attributes:
        tck: the scipy B-spline representation (``splprep``), parameter in mm.
        length_mm: parameter range ``[0, length_mm]``; ``t`` is (close to) arc length from the cranial end.
        source: how it was made (``"anatomy centreline"``, ``"refined on sac centroids"``).
    """

    tck: tuple
    length_mm: float
    source: str

    def points(self, t: np.ndarray | float) -> np.ndarray:
        """RAS points ``(N, 3)`` at parameters ``t`` (mm)."""
        from scipy.interpolate import splev

        t = np.clip(np.atleast_1d(np.asarray(t, dtype=float)), 0.0, self.length_mm)
        return np.stack(splev(t, self.tck), axis=1)

    def normals(self, t: np.ndarray | float) -> np.ndarray:
        """Unit tangents ``(N, 3)`` at ``t``, pointing cranial (the plane normals)."""
        from scipy.interpolate import splev

        t = np.clip(np.atleast_1d(np.asarray(t, dtype=float)), 0.0, self.length_mm)
        d = np.stack(splev(t, self.tck, der=1), axis=1)
        d = -d  # the parameter runs cranial -> caudal; normals point cranial
        return d / np.linalg.norm(d, axis=1, keepdims=True)

    def nearest(self, point_ras: np.ndarray, step_mm: float = 0.05) -> float:
        """Parameter ``t`` (mm) of the centreline point nearest ``point_ras``."""
        point = np.asarray(point_ras, dtype=float).reshape(3)
        t = np.arange(0.0, self.length_mm + step_mm, step_mm)
        d = np.linalg.norm(self.points(t) - point, axis=1)
        return float(t[int(np.argmin(d))])

    def sample(self, step_mm: float) -> np.ndarray:
        """Parameters every ``step_mm`` from the cranial end to the caudal end."""
        return np.append(np.arange(0.0, self.length_mm, step_mm), self.length_mm)


def _fit(points: np.ndarray, source: str, smoothing_sd_mm: float) -> Centreline:
    from scipy.interpolate import splev, splprep

    pts = np.asarray(points, dtype=float)
    keep = np.ones(len(pts), dtype=bool)
    keep[1:] = np.linalg.norm(np.diff(pts, axis=0), axis=1) > 1e-6  # splprep refuses repeated points
    pts = pts[keep]
    if len(pts) < 4:
        raise ValueError(
            f"The dural sac centreline has only {len(pts)} distinct points: the sac label is too short to grade "
            "(it must run through at least one disc level)."
        )
    u = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    tck, _ = splprep(pts.T, u=u, k=3, s=len(pts) * smoothing_sd_mm**2)
    # re-parametrise by true arc length of the smooth curve (the chord length of noisy points is longer)
    dense_u = np.linspace(0.0, u[-1], max(200, int(u[-1] / 0.25)))
    dense = np.stack(splev(dense_u, tck), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
    tck, _ = splprep(dense.T, u=arc, k=3, s=len(dense) * 1e-4)
    return Centreline(tck=tck, length_mm=float(arc[-1]), source=source)


def fit_centreline(
    points_ras: np.ndarray,
    *,
    section_centroid=None,
    smoothing_sd_mm: float = SMOOTHING_SD_MM,
    refine_step_mm: float = REFINE_STEP_MM,
) -> Centreline:
    """Smoothing spline through ``points_ras`` (``(N, 3)`` RAS, cranial first), refined once.

    Args:
        points_ras: canal axis points, e.g. :attr:`SpineAnatomy.centreline_ras`.
        section_centroid: optional ``f(center_ras, normal_ras) -> centroid_ras | None``, the sac
            centroid in a plane; when given, the spline is refitted through the centroids measured
            every ``refine_step_mm`` (one iteration).
        smoothing_sd_mm: see :data:`SMOOTHING_SD_MM`.
        refine_step_mm: see :data:`REFINE_STEP_MM`.

    Raises:
        ValueError: fewer than four distinct points.
    """
    pts = np.asarray(points_ras, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"The centreline must be (N, 3) RAS points; got shape {pts.shape}.")
    if len(pts) >= 2 and pts[0, 2] < pts[-1, 2]:
        pts = pts[::-1]  # cranial (superior) end first
    line = _fit(pts, "anatomy centreline", smoothing_sd_mm)
    if section_centroid is None:
        return line
    t = line.sample(refine_step_mm)
    centroids = []
    for p, n in zip(line.points(t), line.normals(t)):
        c = section_centroid(p, n)
        if c is not None:
            centroids.append(c)
    if len(centroids) < 4:
        return line
    return _fit(np.asarray(centroids), "refined on dural sac centroids", smoothing_sd_mm)


def disc_half_height_mm(disc_points_ras: np.ndarray, disc_centroid_ras: np.ndarray, normal_ras: np.ndarray) -> float:
    """Half the disc height (mm) along ``normal_ras`` near the disc's centre.

    The disc voxels within 4 mm of the line through the disc centroid along the normal are
    projected on the normal; half their extent (plus half a sample) is returned, clipped to
    ``[1, MAX_DISC_HALF_HEIGHT_MM]``. :data:`DEFAULT_DISC_HALF_HEIGHT_MM` when too few voxels.
    """
    pts = np.asarray(disc_points_ras, dtype=float)
    n = np.asarray(normal_ras, dtype=float)
    n = n / np.linalg.norm(n)
    rel = pts - np.asarray(disc_centroid_ras, dtype=float)
    along = rel @ n
    radial = np.linalg.norm(rel - along[:, None] * n[None, :], axis=1)
    near = along[radial <= 4.0]
    if near.size < 5:
        return DEFAULT_DISC_HALF_HEIGHT_MM
    half = 0.5 * float(np.percentile(near, 98) - np.percentile(near, 2))
    return float(np.clip(half, 1.0, MAX_DISC_HALF_HEIGHT_MM))
