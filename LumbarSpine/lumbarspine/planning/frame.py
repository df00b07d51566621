"""A vertebra's own frame, found from its instance mask alone.

For one vertebra (a label of :attr:`SpineAnatomy.labels`):

1. **Body**: the thickest part of the bone. Voxels deeper than :data:`BODY_CORE_DEPTH_FRACTION` of
   the largest depth (signed distance map, mm) form the body core (largest connected piece); its
   centroid is the body centre.
2. **Superior axis**: the tangent of the canal centreline (dural sac) through this vertebra's
   foramen where the sac is labelled (the canal runs through the vertebra along its axis), a line
   fitted over +-:data:`TANGENT_HALF_LENGTH_MM` of the centreline (< 0.6 deg on the phantom's labels,
   also on 2 mm slices; < 1 deg on its CT segmentation, whose bony canal wobbles); where the
   centreline does not run on that far on both sides (its ends), or is absent, the normal of
   the endplates: planes fitted to where rays from the body centre leave the body (a smoothed
   surface; on thick axial slices its terraces can tilt it by a few degrees). S1 uses its upper
   endplate alone, starting from L5's axis, then refitted on the S1 body alone (rays in front of its
   canal, :func:`_s1_endplate_normal`; the sacrum's body core spans the alae, whose tops tilted the
   first fit 9-10 deg off the phantom's endplate; after the refit 0.8-2.7 deg on its labels, 1.4-3.3 on
   its CT segmentation): S1 screws run parallel to that endplate. It points superior (+S).
3. **Canal**: the vertebral foramen, the hole of the vertebra projected along the superior axis onto
   its transverse plane (a lumbar arch closes a ring around the canal; S1: the bone within
   +-:data:`SACRUM_PROJECTION_HALF_HEIGHT_MM` of its body centre only). Its centroid is the canal
   centre, its anterior edge the posterior wall of the body. Without a closed ring the canal
   centreline of the anatomy (or, failing that, a point behind the body) stands in, with a warning.
4. **Anterior axis**: from the canal centre to the body centre, perpendicular to the superior axis;
   **right** = anterior x superior (RAS).

All points and directions are RAS mm; the frame is right-handed (right, anterior, superior).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..volume import Volume
from .distance import DistanceMap, signed_distance_map

__all__ = ["VertebraFrame", "vertebra_frame", "BODY_CORE_DEPTH_FRACTION", "unit"]

BODY_CORE_DEPTH_FRACTION = 0.6
"""Body core: voxels deeper than this share of the vertebra's largest depth (the body is its thickest part)."""

PROJECTION_STEP_MM = 0.75
"""Pixel size (mm) of the transverse projection used to find the vertebral foramen."""

SURFACE_SMOOTHING_VOXELS = 0.7
"""Gaussian sigma (voxels) of the mask smoothing whose 0.5 level gives the surface used for chord lengths."""

TANGENT_HALF_LENGTH_MM = 20.0
"""Half length (mm of arc) of the canal centreline fitted for a vertebra's superior axis (about one vertebra
with its disc: the wobble of a segmented bony canal repeats with that period)."""

SACRUM_PROJECTION_HALF_HEIGHT_MM = 15.0
"""S1's foramen is looked for in the bone within this height (mm, along the superior axis) of its body centre,
about half the S1 body's height (28 mm at its back), not the +-25 mm of a lumbar vertebra: the fused sacrum's
label runs on into S2.., whose arch, tilted forward with the sacrum, then fills the S1 canal in the projection
(the real 3 mm CT, ``totalseg_example_ct``: at +-25 mm only three 40-72 mm2 remnants of the canal were left and
the smallest-offset one put the canal centre 10 mm to the right; at +-15 mm the canal is one 361 mm2 hole)."""

MIN_FORAMEN_AREA_MM2 = 40.0
"""A hole in the projection smaller than this (mm2) is not taken for the vertebral foramen."""

S1_ENDPLATE_BACK_MM = 4.0
"""The S1 endplate refit starts this far (mm) in front of the posterior wall (rays nearer it may leave the body
through the wall's upper rim)."""
S1_ENDPLATE_FRONT_FRACTION = 0.6
"""... and ends at this share of the body depth (the anterior rim of the endplate rounds off). Measured against the
phantom's rasterized endplate (3 label grids, 3 CT segmentations): S1 axis within 1.8 deg at 0.6, 2.4 deg at 0.85."""
S1_ENDPLATE_HALF_WIDTH_MM = 10.0
"""... within this (mm) of the mid-line (the S1 body is about 45-50 mm wide; a narrow grid fits a plane badly)."""
S1_ENDPLATE_MAX_TURN_DEG = 20.0
"""A refit turning the S1 superior axis more than this (deg) from the first fit is not trusted (the first stays)."""
S1_ENDPLATE_PASSES = 3
"""Refits of the S1 endplate, each on the frame rebuilt from the previous one (stops when it turns < 0.2 deg)."""


def unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    n = float(np.linalg.norm(v))
    if n < 1e-12:
        raise ValueError("A direction of zero length came up while building the vertebra frame.")
    return v / n


@dataclass(frozen=True, eq=False)
class VertebraFrame:
    """A vertebra's frame and landmarks (RAS mm).

    Attributes:
        name, label: the vertebra.
        sdf: its signed distance map (mm, positive in bone).
        canal_center: centre of the vertebral foramen (origin of the frame).
        body_center: centroid of the body core.
        right, anterior, superior: unit axes (right = anterior x superior).
        posterior_wall: where the canal meets the body (foramen's anterior edge, on the mid-line).
        anterior_cortex: where the mid-sagittal line through the body centre leaves the body anteriorly.
        canal_half_width_mm: half the foramen's lateral width (mm).
        canal_half_depth_mm: half the foramen's antero-posterior depth (mm).
        canal_area_mm2: the foramen's area in the projection (mm2), or None when not found.
        notes: what had to be guessed.
    """

    name: str
    label: int
    sdf: DistanceMap
    canal_center: np.ndarray
    body_center: np.ndarray
    right: np.ndarray
    anterior: np.ndarray
    superior: np.ndarray
    posterior_wall: np.ndarray
    anterior_cortex: np.ndarray
    canal_half_width_mm: float
    canal_half_depth_mm: float
    canal_area_mm2: float | None
    foramen_found: bool
    notes: tuple[str, ...] = field(default_factory=tuple)
    surface: DistanceMap | None = None

    @property
    def smooth(self) -> DistanceMap:
        """A field whose zero level is the bone surface smoothed by :data:`SURFACE_SMOOTHING_VOXELS`
        (for chord lengths: no voxel staircase); its values are not distances."""
        return self.surface if self.surface is not None else self.sdf

    @property
    def body_depth_mm(self) -> float:
        """Body depth (mm) from its posterior wall to its anterior cortex, along the anterior axis."""
        return float(np.dot(self.anterior_cortex - self.posterior_wall, self.anterior))

    def to_local(self, ras: np.ndarray) -> np.ndarray:
        """RAS points ``(N, 3)`` -> frame coordinates ``(right, anterior, superior)`` mm from the canal centre."""
        d = np.asarray(ras, float).reshape(-1, 3) - self.canal_center
        return np.stack([d @ self.right, d @ self.anterior, d @ self.superior], axis=1)

    def to_ras(self, local: np.ndarray) -> np.ndarray:
        """Frame coordinates ``(N, 3)`` -> RAS points."""
        local = np.asarray(local, float).reshape(-1, 3)
        return (
            self.canal_center
            + local[:, :1] * self.right
            + local[:, 1:2] * self.anterior
            + local[:, 2:3] * self.superior
        )


def _crop_points(sdf: DistanceMap, selection: np.ndarray) -> np.ndarray:
    """RAS mm of the crop voxels where ``selection`` is True."""
    kji = np.argwhere(selection).astype(float) + np.asarray(sdf.start_kji, float)[None, :]
    return sdf.grid.ijk_to_ras_points(kji[:, ::-1])


def _body_core(sdf: DistanceMap) -> np.ndarray:
    from scipy import ndimage

    depth = sdf.values
    core = depth >= BODY_CORE_DEPTH_FRACTION * float(depth.max())
    lab, n = ndimage.label(core)
    if n > 1:
        sizes = ndimage.sum_labels(np.ones_like(lab), lab, index=np.arange(1, n + 1))
        core = lab == (int(np.argmax(sizes)) + 1)
    return _crop_points(sdf, core)


def _line_exit(sdf: DistanceMap, start: np.ndarray, direction: np.ndarray, max_mm: float, step: float = 0.25) -> float:
    """Distance (mm) from ``start`` along ``direction`` to where the signed distance first drops below 0."""
    t = np.arange(0.0, max_mm, step)
    values = sdf.sample(start[None, :] + t[:, None] * direction[None, :])
    outside = np.flatnonzero(values < 0)
    if outside.size == 0:
        return float(max_mm)
    i = int(outside[0])
    if i == 0:
        return 0.0
    v0, v1 = values[i - 1], values[i]
    return float(t[i - 1] + step * v0 / (v0 - v1))


def _centreline_tangent(centreline_ras: np.ndarray | None, point: np.ndarray) -> np.ndarray | None:
    """Superior unit tangent of the canal centreline near ``point``: the line fitted (least squares) to the
    centreline within :data:`TANGENT_HALF_LENGTH_MM` of arc on either side of its point nearest ``point``.

    None without a centreline or where it does not run on for 2/3 of that on both sides (its end: a
    one-sided tangent tilts). A bony canal segmented from CT changes its section between the foramina and
    the disc levels, which makes its centreline wobble with the vertebra's period; a fit over one vertebra's
    height averages that out (on the phantom's CT segmentation 0.4-1.0 deg from the true axis, against 2-5
    deg for a tangent over +-5 mm)."""
    if centreline_ras is None or len(centreline_ras) < 3:
        return None
    line = np.asarray(centreline_ras, float)
    i = int(np.argmin(np.linalg.norm(line - point, axis=1)))
    arc = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=1))]
    reach = 2.0 / 3.0 * TANGENT_HALF_LENGTH_MM
    if arc[i] < reach or arc[-1] - arc[i] < reach:
        return None
    near = line[np.abs(arc - arc[i]) <= TANGENT_HALF_LENGTH_MM]
    _, _, vt = np.linalg.svd(near - near.mean(axis=0), full_matrices=False)
    cranial = line[0] - line[-1]  # the centreline runs cranial -> caudal
    return unit(vt[0] if np.dot(vt[0], cranial) >= 0 else -vt[0])


def _nearest(line: np.ndarray | None, point: np.ndarray) -> np.ndarray:
    line = np.asarray(line, float)
    return line[int(np.argmin(np.linalg.norm(line - point, axis=1)))]


def _fit_plane_normal(points: np.ndarray, orient: np.ndarray) -> np.ndarray | None:
    """Unit normal of the least-squares plane through ``points`` (one pass dropping > 2 mm residuals)."""
    if len(points) < 6:
        return None
    for _ in range(2):
        centre = points.mean(axis=0)
        _, _, vt = np.linalg.svd(points - centre, full_matrices=False)
        normal = vt[2]
        residual = np.abs((points - centre) @ normal)
        keep = residual <= 2.0
        if keep.all() or keep.sum() < 6:
            break
        points = points[keep]
    return normal * (1.0 if normal @ orient >= 0 else -1.0)


def _endplate_axis(
    sdf: DistanceMap, centre: np.ndarray, core: np.ndarray, guess: np.ndarray, *, both: bool = True, iterations: int = 3
) -> np.ndarray | None:
    """Endplate normal: rays along +-``guess`` from a grid over the body's middle find the endplates;
    a plane is fitted to each and the mean normal becomes the next guess (``both=False``: top only)."""
    step = 0.25
    t = np.arange(0.0, 45.0, step)
    for _ in range(iterations):
        guess = unit(guess)
        helper = np.array([1.0, 0.0, 0.0]) if abs(guess[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        a = unit(np.cross(guess, helper))
        b = np.cross(guess, a)
        rel = core - centre
        ua, ub = rel @ a, rel @ b
        ga = np.arange(0.8 * ua.min(), 0.8 * ua.max() + 1e-9, 2.0)
        gb = np.arange(0.8 * ub.min(), 0.8 * ub.max() + 1e-9, 2.0)
        grid_a, grid_b = (g.ravel() for g in np.meshgrid(ga, gb))
        starts = centre + grid_a[:, None] * a + grid_b[:, None] * b
        normals = []
        for sign in (1.0, -1.0) if both else (1.0,):
            points = starts[:, None, :] + sign * t[None, :, None] * guess[None, None, :]
            values = sdf.sample(points.reshape(-1, 3)).reshape(len(starts), len(t))
            ok = (values[:, 0] > 0) & (values < 0).any(axis=1)
            if ok.sum() < 6:
                return None
            first = np.argmax(values < 0, axis=1)[ok]
            v0 = values[ok, first - 1]
            v1 = values[ok, first]
            tt = t[first - 1] + step * v0 / (v0 - v1)
            normal = _fit_plane_normal(starts[ok] + sign * tt[:, None] * guess, guess)
            if normal is None:
                return None
            normals.append(normal)
        guess = unit(np.sum(normals, axis=0))
    return guess


def vertebra_frame(
    labels: Volume,
    label: int,
    name: str,
    *,
    centreline_ras: np.ndarray | None = None,
    superior_hint: np.ndarray | None = None,
    whole_centroid_ras: np.ndarray | None = None,
) -> VertebraFrame:
    """The frame of vertebra ``label`` (see the module docstring).

    Args:
        labels: the label map.
        label: the vertebra's id.
        name: its name (``"L4"``, ``"S1"``...).
        centreline_ras: the anatomy's canal centreline (cranial first), used for the sacrum's axis and
            when the foramen is not closed.
        superior_hint: first guess of the superior axis (the sacrum: L5's axis); default the canal
            centreline's tangent, else +S. The endplate fit refines it.
        whole_centroid_ras: the vertebra's centroid (default: computed).

    Raises:
        ValueError: the label is absent or too small to have a body.
    """
    from scipy import ndimage

    mask = np.asarray(labels.array) == label
    if int(mask.sum()) < 50:
        raise ValueError(f"{name} (label {label}) has {int(mask.sum())} voxels: too few to plan on.")
    sdf = signed_distance_map(labels, mask)
    crop = tuple(slice(a, a + n) for a, n in zip(sdf.start_kji, sdf.values.shape))
    smooth = ndimage.gaussian_filter(mask[crop].astype(np.float32), SURFACE_SMOOTHING_VOXELS) - 0.5
    surface = DistanceMap(values=smooth, start_kji=sdf.start_kji, grid=labels, touches_border=sdf.touches_border)
    notes: list[str] = []
    core = _body_core(sdf)
    body_center = core.mean(axis=0)
    whole = (
        np.asarray(whole_centroid_ras, float)
        if whole_centroid_ras is not None
        else _crop_points(sdf, sdf.values > 0).mean(0)
    )

    # superior axis: normal of the endplates (planes fitted to where rays from the body centre leave it)
    guess = unit(superior_hint) if superior_hint is not None else _centreline_tangent(centreline_ras, body_center)
    if guess is None:
        guess = np.array([0.0, 0.0, 1.0])
    tangent = _centreline_tangent(centreline_ras, body_center) if name != "S1" else None
    if tangent is not None and float(np.linalg.norm(_nearest(centreline_ras, body_center) - body_center)) < 60.0:
        superior = tangent  # the canal through this vertebra's foramen (robust on thick slices)
    else:
        superior = _endplate_axis(surface, body_center, core, guess, both=name != "S1")
    if superior is None:
        superior = guess
        notes.append(f"{name}: the endplates could not be fitted; the canal (or image) axis stands in.")
    if superior[2] < 0:
        superior = -superior
    frame = _assemble(labels, label, name, sdf, surface, body_center, whole, unit(superior), centreline_ras, notes)
    if name == "S1":
        # the sacrum's body core spans the alae: the first fit mixes the S1 endplate with the alae's tops (9-10 deg
        # off on the phantom); refit on the S1 body alone, in front of its canal, and rebuild the frame on it
        first = frame
        for _ in range(S1_ENDPLATE_PASSES):
            refit = _s1_endplate_normal(frame)
            if refit is None or _angle_deg(refit, first.superior) > S1_ENDPLATE_MAX_TURN_DEG:
                break
            turn = _angle_deg(refit, frame.superior)
            frame = _assemble(labels, label, name, sdf, surface, body_center, whole, refit, centreline_ras, notes)
            if turn < 0.2:
                break
    return frame


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle (deg) between two unit vectors."""
    return float(np.degrees(np.arccos(np.clip(float(np.dot(a, b)), -1.0, 1.0))))


def _s1_endplate_normal(frame: VertebraFrame) -> np.ndarray | None:
    """Normal (unit, superior) of the S1 upper endplate fitted on the S1 body alone: rays along the frame's
    superior axis from a grid in front of the canal (from :data:`S1_ENDPLATE_BACK_MM` in front of the posterior
    wall to :data:`S1_ENDPLATE_FRONT_FRACTION` of the body depth, within :data:`S1_ENDPLATE_HALF_WIDTH_MM` of the
    mid-line, every 1.5 mm) at the body centre's height; a plane through where they leave the bone (the smoothed surface,
    sub-voxel, the last bone along each ray). None when fewer than 6 rays find it."""
    depth = frame.body_depth_mm
    if depth <= 2 * S1_ENDPLATE_BACK_MM:
        return None
    a = np.arange(S1_ENDPLATE_BACK_MM, S1_ENDPLATE_FRONT_FRACTION * depth + 1e-9, 1.5)
    r = np.arange(-S1_ENDPLATE_HALF_WIDTH_MM, S1_ENDPLATE_HALF_WIDTH_MM + 1e-9, 1.5)
    aa, rr = (g.ravel() for g in np.meshgrid(a, r))
    height = float(np.dot(frame.body_center - frame.posterior_wall, frame.superior))
    starts = (
        frame.posterior_wall
        + height * frame.superior
        + aa[:, None] * frame.anterior[None, :]
        + rr[:, None] * frame.right[None, :]
    )
    step = 0.25
    t = np.arange(0.0, 45.0, step)
    values = frame.smooth.sample((starts[:, None, :] + t[None, :, None] * frame.superior).reshape(-1, 3))
    values = values.reshape(len(starts), len(t))
    # the last bone along each ray: nothing of the sacrum lies above its upper endplate in front of the canal, and
    # a hole in a segmented body (marrow) would stop a ray at its first exit
    inside = values > 0
    ok = inside[:, 0] & ~inside[:, -1]
    if ok.sum() < 6:
        return None
    last = len(t) - 1 - np.argmax(inside[:, ::-1], axis=1)[ok]
    v0 = values[ok, last]
    v1 = values[ok, last + 1]
    tt = t[last] + step * v0 / (v0 - v1)
    normal = _fit_plane_normal(starts[ok] + tt[:, None] * frame.superior, frame.superior)
    return None if normal is None else unit(normal)


def _assemble(
    labels: Volume,
    label: int,
    name: str,
    sdf: DistanceMap,
    surface: DistanceMap,
    body_center: np.ndarray,
    whole: np.ndarray,
    superior: np.ndarray,
    centreline_ras: np.ndarray | None,
    notes_in: list[str],
) -> VertebraFrame:
    """Steps 3-4 of the module docstring (canal, anterior and right axes) for a given superior axis."""
    from scipy import ndimage

    notes = list(notes_in)
    # first anterior guess: the posterior elements pull the whole centroid behind the body
    guess = body_center - whole
    guess = guess - np.dot(guess, superior) * superior
    if np.linalg.norm(guess) < 1e-3:
        guess = np.array([0.0, 1.0, 0.0]) - superior[1] * superior
    anterior0 = unit(guess)
    right0 = unit(np.cross(anterior0, superior))

    # transverse projection of the bone: the foramen is the hole behind the body
    step = PROJECTION_STEP_MM
    bone = _crop_points(sdf, sdf.values > 0)
    rel = bone - body_center
    u = rel @ right0
    v = rel @ anterior0
    h = rel @ superior
    keep = np.abs(h) <= (SACRUM_PROJECTION_HALF_HEIGHT_MM if name == "S1" else 25.0)
    u, v = u[keep], v[keep]
    u0, v0 = u.min() - 2 * step, v.min() - 2 * step
    nu = int(np.ceil((u.max() - u0) / step)) + 3
    nv = int(np.ceil((v.max() - v0) / step)) + 3
    proj = np.zeros((nv, nu), dtype=bool)
    proj[((v - v0) / step).astype(int), ((u - u0) / step).astype(int)] = True
    # fill the sampling gaps of a coarse grid before looking for holes
    spacing = max(labels.spacing)
    if spacing > step:
        proj = ndimage.binary_closing(proj, iterations=int(np.ceil(spacing / step)), border_value=0)
    filled = ndimage.binary_fill_holes(proj)
    holes, n_holes = ndimage.label(filled & ~proj)
    foramen = None
    best = np.inf
    for index in range(1, n_holes + 1):
        pix = np.argwhere(holes == index)
        area = len(pix) * step * step
        if area < MIN_FORAMEN_AREA_MM2:
            continue
        cv = pix[:, 0].mean() * step + v0
        cu = pix[:, 1].mean() * step + u0
        if cv >= 0:  # the foramen lies behind the body centre
            continue
        score = abs(cu) + abs(cv)
        if score < best:
            best, foramen = score, (pix, area)
    if foramen is not None:
        pix, canal_area = foramen
        pv = pix[:, 0] * step + v0
        pu = pix[:, 1] * step + u0
        cu, cv = float(pu.mean()), float(pv.mean())
        canal_center = body_center + cu * right0 + cv * anterior0
        half_width = float((pu.max() - pu.min() + step) / 2)
        half_depth = float((pv.max() - pv.min() + step) / 2)
        front = float(pv.max() + step / 2)  # foramen's anterior edge (relative v)
        foramen_found = True
    else:
        canal_area = None
        foramen_found = False
        canal_center = None
        if centreline_ras is not None and len(centreline_ras):
            line = np.asarray(centreline_ras, float)
            i = int(np.argmin(np.linalg.norm(line - body_center, axis=1)))
            if np.linalg.norm(line[i] - body_center) < 45.0:
                canal_center = line[i] - np.dot(line[i] - body_center, superior) * superior
                notes.append(f"{name}: the vertebral arch is not closed; the canal centreline located the canal.")
        if canal_center is None:
            depth = float(v.max())
            canal_center = body_center - (depth + 10.0) * anterior0
            notes.append(f"{name}: no vertebral foramen and no canal label; the canal position is a guess.")
        half_width = 11.0
        half_depth = 8.0
        front = None
    anterior = body_center - canal_center
    anterior = unit(anterior - np.dot(anterior, superior) * superior)
    right = unit(np.cross(anterior, superior))
    if front is None:
        # posterior wall: first bone met going forward from the canal centre
        t = np.arange(0.0, 40.0, 0.25)
        values = sdf.sample(canal_center[None, :] + t[:, None] * anterior[None, :])
        inside = np.flatnonzero(values > 0)
        distance = float(t[inside[0]]) if inside.size else 0.0
        posterior_wall = canal_center + distance * anterior
    else:
        posterior_wall = body_center + front * anterior0 + cu * right0
        posterior_wall = canal_center + np.dot(posterior_wall - canal_center, anterior) * anterior
    exit_mm = _line_exit(sdf, body_center, anterior, 80.0)
    anterior_cortex = body_center + exit_mm * anterior
    return VertebraFrame(
        surface=surface,
        name=name,
        label=int(label),
        sdf=sdf,
        canal_center=np.asarray(canal_center, float),
        body_center=body_center,
        right=right,
        anterior=anterior,
        superior=unit(superior),
        posterior_wall=posterior_wall,
        anterior_cortex=anterior_cortex,
        canal_half_width_mm=half_width,
        canal_half_depth_mm=half_depth,
        canal_area_mm2=canal_area,
        foramen_found=foramen_found,
        notes=tuple(notes),
    )
