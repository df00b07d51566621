"""Discs, vertebral bodies and the sacrum on T2, found in front of the tracked dural sac.

Works on the RAS working grid of :mod:`.t2_grid` (``[z, y, x]``, isotropic ``h`` mm) with the sac's
track from :mod:`.t2_sac`. Along the track, in the plane perpendicular to it, a box in front of the
sac (anterior, :data:`PROFILE_DEPTH_MM` deep, :data:`PROFILE_HALF_WIDTH_MM` to each side) is
sampled; its median intensity along the arc is the *column profile*. Vertebral bodies are the long
runs of even marrow signal in it; discs, bright (young nuclei), dark (degenerated) or as grey as
marrow, are the short uneven gaps between two bodies, since the endplates around every disc change
the signal (see :func:`_discs_between_bodies`).

The shapes painted for discs and bodies are a model (elliptic cylinders perpendicular to the canal,
their depth measured in the image where the anterior cortex is found, otherwise a typical lumbar
size); the sac is delineated voxel by voxel, the discs and bodies are not.

Sacrum: the dural sac normally ends at S1-S2 (range L5-S3). When the sac's caudal end lies inside
the image (the image continues at least :data:`SAC_END_MARGIN_MM` below it) and the lowest disc is
between :data:`SACRUM_DISC_MIN_MM` and :data:`SACRUM_DISC_MAX_MM` above that end, the lowest disc is
taken as L5-S1 and the bone below it as the sacrum. Otherwise the sacrum is not claimed, and the
levels stay unnumbered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from .arrays import numpy_ops
from .t2_sac import SacTrack

if TYPE_CHECKING:
    from .arrays import ArrayOps

__all__ = [
    "PROFILE_DEPTH_MM",
    "PROFILE_HALF_WIDTH_MM",
    "MIN_BODY_RUN_MM",
    "SAC_END_MARGIN_MM",
    "SACRUM_DISC_MIN_MM",
    "SACRUM_DISC_MAX_MM",
    "Levels",
    "find_levels",
    "paint_levels",
]

PROFILE_DEPTH_MM = 18.0
"""Depth (mm) of the sampled box in front of the sac (into the discs and bodies)."""
PROFILE_HALF_WIDTH_MM = 5.0
"""Half width (mm) of the sampled box, to each side of the midline."""
ROUGH_WINDOW_MM = 5.0
"""Window (mm) over which the profile's relative slope is widened (endplates to disc)."""
ROUGH_FACTOR = 2.5
"""Bodies are where the widened slope is under this many times its median along the column (most
of the column is bodies, so the median is about the marrow's own unevenness)."""
ROUGH_MIN = 0.02
"""Floor (relative change per mm) of that level, for columns with little contrast."""
MIN_BODY_RUN_MM = 12.0
"""Shortest run (mm) of even signal taken as a vertebral body (bodies are 20-30 mm high)."""
MIN_MARROW_RATIO = 0.7
"""A run of even signal darker than this share of the median run is soft tissue, not a body."""
LONG_RUN_FACTOR = 1.6
"""A run of even signal longer than this many typical runs is checked for a faint disc inside."""
SPLIT_CONTRAST = 2.0
"""A faint disc splits a long run when its widened slope exceeds the run's median this many times."""
DIP_RATIO = 0.75
"""A run of even slope is no body where its signal stays under this share of the run's median
(:func:`_split_at_dips`; the dark endplates and annulus of a disc hidden in it)."""
MIN_DIP_MM = 3
"""Shortest such dip (mm of arc) that cuts a run."""
MERGE_FACTOR = 0.5
"""Two discs closer than this share of the median level spacing are one disc (its two endplates)."""
MIN_DISC_GAP_MM = 4.0
MAX_DISC_GAP_MM = 30.0
"""Range (mm) of the gap between two bodies taken as one disc with its endplates.

The gap is measured on the widened slope, so it is longer than the disc: a lumbar disc (8-16 mm
high, L4-L5 the highest) plus its two endplates (1-3 mm each, dark on T2), plus about 4 mm at each
edge (the :data:`ROUGH_WINDOW_MM` window reaches 2 mm out, the 1 mm smoothing and the central
difference about 2 mm more), plus the spread of a disc tilted against the plane perpendicular to
the canal over the sampled depth (10 degrees over :data:`PROFILE_DEPTH_MM` is 3 mm): up to about
30 mm. (The bound was 24 mm until the phantom's L4-L5 disc, 12 mm high with dark endplates,
measured 24-25 mm on every grid after its sacrum was reshaped, and was dropped on two of them.) A
gap that hides a missed body holds two discs and a body, over 45 mm, so it stays out."""
SAC_END_MARGIN_MM = 10.0
"""The image must continue this far (mm) below the sac's end for the end to count as seen."""
SACRUM_DISC_MIN_MM = 8.0
SACRUM_DISC_MAX_MM = 75.0
"""Range (mm of arc) between the lowest disc and the sac's end for that disc to be L5-S1.

The dural sac usually ends at S1-S3 (S2 most often); with an S1 body of about 30 mm and the S2/S3
segments below it, the end lies up to about 70 mm of arc below the L5-S1 disc centre. The upper
bound was 60 mm until the phantom's sacrum got a sacral canal with the sac running into it (the sac
then ends 62 mm below L5-S1, inside that range); the lower bound keeps a sac that ends at the
lowest disc (L4-L5 with a sacralised L5, or a cut) from being read as S1."""
EXTEND_MM = 10.0
"""The column profile runs this far (mm) past each end of the sac (inside the image)."""
TYPICAL_BODY_DEPTH_MM = 32.0
"""Lumbar body depth (mm) used when the anterior cortex cannot be found."""


@dataclass(frozen=True)
class Levels:
    """Discs and bodies along the track (arc lengths ``s`` in mm from the track's lowest point)."""

    s: np.ndarray  # arc length per track point (ascending = superior)
    points: np.ndarray  # (N, 3) track points, voxel [z, y, x]
    tangent: np.ndarray  # (N, 3) unit, superior
    anterior: np.ndarray  # (N, 3) unit
    lateral: np.ndarray  # (N, 3) unit
    sac_front_mm: float  # distance from the track to the front of the sac (mm)
    disc_s: tuple[float, ...]  # superior first
    disc_height: tuple[float, ...]
    body_depth_mm: float
    body_width_mm: float
    sacrum: bool
    notes: tuple[str, ...]


def _frame(track: SacTrack) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    pts = np.column_stack([track.z.astype(float), track.yx[:, 0], track.yx[:, 1]])
    k = 5
    tan = np.gradient(ndimage.uniform_filter1d(pts, size=2 * k + 1, axis=0, mode="nearest"), axis=0)
    tan /= np.maximum(np.linalg.norm(tan, axis=1, keepdims=True), 1e-9)
    ey = np.array([0.0, 1.0, 0.0])
    ant = ey[None, :] - (tan @ ey)[:, None] * tan
    ant /= np.maximum(np.linalg.norm(ant, axis=1, keepdims=True), 1e-9)
    lat = np.cross(tan, ant)
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    return pts, tan, ant, lat, s


def _extend(pts, tan, ant, lat, s, valid, h):  # type: ignore[no-untyped-def]
    """Extend the track's frame by up to :data:`EXTEND_MM` past each end, inside the field of view."""
    n = int(round(EXTEND_MM / h))
    shape = np.asarray(valid.shape)

    def run(p0: np.ndarray, t0: np.ndarray) -> np.ndarray:
        steps = p0[None, :] + np.arange(1, n + 1)[:, None] * t0[None, :]
        idx = np.rint(steps).astype(int)
        ok = np.all((idx >= 0) & (idx < shape[None, :]), axis=1)
        ok[ok] = valid[idx[ok, 0], idx[ok, 1], idx[ok, 2]]
        stop = int(np.argmin(ok)) if not ok.all() else n
        return steps[:stop]

    lower = run(pts[0], -tan[0])[::-1]
    upper = run(pts[-1], tan[-1])
    nl, nu = len(lower), len(upper)

    def pad(a: np.ndarray) -> np.ndarray:
        return np.vstack([np.repeat(a[:1], nl, axis=0), a, np.repeat(a[-1:], nu, axis=0)])

    s_new = np.concatenate([-h * np.arange(nl, 0, -1), s, s[-1] + h * np.arange(1, nu + 1)])
    return np.vstack([lower.reshape(-1, 3), pts, upper.reshape(-1, 3)]), pad(tan), pad(ant), pad(lat), s_new


def _sample(work: Any, pts: np.ndarray, ops: ArrayOps) -> np.ndarray:
    """Linear samples of ``work`` (host or, for CuPy, already on the device) at index points ``pts`` (N, 3)."""
    return ops.to_host(ops.map_coordinates(work, pts.T, order=1, mode="constant", cval=np.nan))


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of the runs of True in a 1D boolean array (stop exclusive)."""
    padded = np.concatenate([[False], flags, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _split_long_runs(bodies: list[tuple[int, int]], rough: np.ndarray) -> list[tuple[int, int]]:
    """Split a run about two bodies long at its middle disc when that disc's edges are faint.

    A disc whose nucleus is as grey as marrow changes the profile far less than a bright or dark
    one, so the column-wide level can swallow it into one long run. Such a run (over
    :data:`LONG_RUN_FACTOR` times the median inner run; not the end runs) is split where its own widened slope peaks in its
    middle half, when the peak is over :data:`SPLIT_CONTRAST` times the run's median slope.
    """
    if len(bodies) < 4:
        return bodies
    typical = float(np.median([b - a for a, b in bodies[1:-1]]))  # the end runs may be cut or soft tissue
    out: list[tuple[int, int]] = []
    for n, (a, b) in enumerate(bodies):
        if n in (0, len(bodies) - 1) or b - a <= LONG_RUN_FACTOR * typical:
            out.append((a, b))
            continue
        q1, q3 = a + (b - a) // 4, b - (b - a) // 4
        inner = rough[q1:q3]
        peak = q1 + int(np.argmax(inner))
        if rough[peak] <= SPLIT_CONTRAST * max(float(np.median(rough[a:b])), 1e-6):
            out.append((a, b))
            continue
        half = 0.5 * (rough[peak] + float(np.median(rough[a:b])))
        lo, hi = peak, peak
        while lo > a and rough[lo - 1] > half:
            lo -= 1
        while hi < b - 1 and rough[hi + 1] > half:
            hi += 1
        out.extend([(a, lo), (hi + 1, b)])
    return out


def _split_at_dips(runs: list[tuple[int, int]], p: np.ndarray) -> list[tuple[int, int]]:
    """Cut each run of even slope where its signal dips under :data:`DIP_RATIO` of the run's median for
    at least :data:`MIN_DIP_MM` (1 mm steps): a body's marrow is even in signal, not only in slope.

    On thick or oblique stacks the interpolated profile is smooth enough that the two dark endplate
    bands of a grey (degenerated) disc change it no faster than the column's typical roughness; the
    disc then hides inside a body run, and only one endplate band is found, several mm off the disc's
    middle. Its dark bands are deep dips of the signal, which this finds."""
    out: list[tuple[int, int]] = []
    for a, b in runs:
        if b - a < MIN_BODY_RUN_MM:
            out.append((a, b))
            continue
        dark = p[a:b] < DIP_RATIO * float(np.median(p[a:b]))
        dips = [(a + i, a + j) for i, j in _runs(dark) if j - i >= MIN_DIP_MM]
        start = a
        for i, j in dips:
            if i > start:
                out.append((start, i))
            start = j
        if start < b:
            out.append((start, b))
    return out


def _discs_between_bodies(p: np.ndarray, base: np.ndarray) -> tuple[list[float], list[float]]:
    """Disc centres and heights (mm of arc, ascending) from the column profile ``p`` (1 mm steps).

    Vertebral bodies (and the sacrum) are long runs of even marrow signal; every disc, bright, dark
    or as grey as marrow, is bounded by endplates that make the profile change. The profile's
    relative slope is taken, widened by :data:`ROUGH_WINDOW_MM`; runs below :data:`ROUGH_FACTOR` times
    its median, at least :data:`MIN_BODY_RUN_MM` long, are bodies. A disc is the gap
    between two bodies when it is :data:`MIN_DISC_GAP_MM`-:data:`MAX_DISC_GAP_MM` long; a longer gap
    (a level may hide in it) gives no disc, and the caller's missing-level rule then withholds the
    numbering.
    """
    ps = ndimage.gaussian_filter1d(p, 1.0, mode="nearest")
    slope = np.abs(np.gradient(ps)) / np.maximum(base, 1e-6)
    rough = ndimage.maximum_filter1d(slope, size=int(ROUGH_WINDOW_MM), mode="nearest")
    level = max(ROUGH_MIN, ROUGH_FACTOR * float(np.median(rough)))
    bodies = [(a, b) for a, b in _split_at_dips(_runs(rough < level), p) if b - a >= MIN_BODY_RUN_MM]
    if bodies:  # soft tissue beyond the ends of the column is even too, but darker than marrow
        levels = np.array([np.median(p[a:b]) for a, b in bodies])
        bodies = [run for run, lv in zip(bodies, levels) if lv >= MIN_MARROW_RATIO * np.median(levels)]
    bodies = _split_long_runs(bodies, rough)
    centres: list[float] = []
    heights: list[float] = []
    for (_, end), (start, _) in zip(bodies[:-1], bodies[1:]):
        gap = start - end
        if not (MIN_DISC_GAP_MM <= gap <= MAX_DISC_GAP_MM):
            continue
        centres.append(0.5 * (end + start))
        heights.append(float(np.clip(gap - 2.0, 4.0, 16.0)))
    if len(centres) >= 3:
        spacing = float(np.median(np.diff(centres)))
        if centres[-1] - centres[-2] < 0.6 * spacing:
            centres, heights = centres[:-1], heights[:-1]
        if centres[1] - centres[0] < 0.6 * spacing:
            centres, heights = centres[1:], heights[1:]
    if len(centres) >= 3:
        spacing = float(np.median(np.diff(centres)))
        # two bands much closer than a level apart are the two endplates of one grey disc
        merged_c, merged_h = [centres[0]], [heights[0]]
        for c, hgt in zip(centres[1:], heights[1:]):
            if c - merged_c[-1] < MERGE_FACTOR * spacing:
                lo, hi = merged_c[-1] - merged_h[-1] / 2, c + hgt / 2
                merged_c[-1], merged_h[-1] = 0.5 * (lo + hi), float(np.clip(hi - lo, 4.0, 16.0))
            else:
                merged_c.append(c)
                merged_h.append(hgt)
        centres, heights = merged_c, merged_h
    return centres, heights


def find_levels(
    work: np.ndarray,
    valid: np.ndarray,
    sac_mask: np.ndarray,
    track: SacTrack,
    h: float,
    *,
    ops: ArrayOps | None = None,
) -> Levels:
    """Disc positions along the sac's track, body size, and whether the sacrum is seen (see module doc).

    The image is sampled along the column with ``map_coordinates`` on ``ops``' backend (:mod:`.arrays`,
    NumPy by default; on CuPy ``work`` is uploaded once for all the samples).
    """
    ops = ops or numpy_ops()
    work_on = ops.asarray(work)
    pts, tan, ant, lat, s_vox = _frame(track)
    s = s_vox * h
    notes: list[str] = []
    # front of the sac: how far the sac reaches along the anterior direction (median over slices)
    fronts = []
    for i, z in enumerate(track.z):
        yy, xx = np.nonzero(sac_mask[z])
        if yy.size:
            rel = np.column_stack([np.zeros(yy.size), yy - pts[i, 1], xx - pts[i, 2]])
            fronts.append(float(np.max(rel @ ant[i])))
    front = (float(np.median(fronts)) * h if fronts else 6.0) + 2.0
    # the column goes on past the sac's ends (the sacrum below it): extend the frame along the end tangents
    pts, tan, ant, lat, s = _extend(pts, tan, ant, lat, s, valid, h)
    # column profile in front of the sac
    d = np.arange(front, front + PROFILE_DEPTH_MM, 1.0) / h
    lw = np.arange(-PROFILE_HALF_WIDTH_MM, PROFILE_HALF_WIDTH_MM + 0.5, 1.0) / h
    dd, ll = np.meshgrid(d, lw, indexing="ij")
    offs = dd.ravel()[None, :, None] * ant[:, None, :] + ll.ravel()[None, :, None] * lat[:, None, :]
    samples = _sample(work_on, (pts[:, None, :] + offs).reshape(-1, 3), ops).reshape(len(pts), -1)
    with np.errstate(all="ignore"):
        prof = np.nanmedian(samples, axis=1)
    prof = np.where(np.isfinite(prof), prof, np.nanmedian(prof))
    # resample on a 1 mm arc grid
    grid = np.arange(s[0], s[-1] + 1e-6, 1.0)
    p = np.interp(grid, s, prof)
    base = ndimage.median_filter(p, size=61, mode="nearest")
    disc_s, heights = _discs_between_bodies(p, base)
    disc_s = [c + float(s[0]) for c in disc_s]
    # body depth: anterior cortex in the middle of each body
    depths = []
    for a, b in zip(disc_s[:-1], disc_s[1:]):
        i = int(np.argmin(np.abs(s - 0.5 * (a + b))))
        dline = np.arange(front, front + 60.0, 1.0) / h
        line = _sample(work_on, pts[i][None, :] + dline[:, None] * ant[i][None, :], ops)
        if not np.all(np.isfinite(line[:15])):
            continue
        marrow = float(np.median(line[2:15]))
        low = np.nonzero(ndimage.uniform_filter1d(np.nan_to_num(line), 3) < 0.5 * marrow)[0]
        low = low[low > 18]
        if low.size:
            depths.append(float(low[0]))
    depth = float(np.clip(np.median(depths), 22.0, 45.0)) if depths else TYPICAL_BODY_DEPTH_MM
    if not depths:
        notes.append(
            f"The vertebral body depth could not be measured; a typical {TYPICAL_BODY_DEPTH_MM:.0f} mm is used."
        )
    width = float(np.clip(1.35 * depth, 28.0, 55.0))
    # sacrum: the sac's caudal end is inside the image and the lowest disc sits just above it
    sacrum = False
    if disc_s:
        i0 = int(np.argmin(np.abs(s)))  # the sac's lower end (s = 0)
        below = pts[i0] - np.arange(1.0, SAC_END_MARGIN_MM / h + 1.0)[:, None] * tan[i0][None, :]
        inside = ndimage.map_coordinates(valid.astype(np.uint8), below.T, order=0, mode="constant", cval=0)
        lowest = min(disc_s)
        if inside.all() and SACRUM_DISC_MIN_MM <= lowest <= SACRUM_DISC_MAX_MM:
            sacrum = True
        elif not inside.all():
            notes.append(
                "The dural sac runs out of the image at its lower end, so its end (and the sacrum) is not seen."
            )
        else:
            notes.append(
                f"The dural sac ends {lowest:.0f} mm below the lowest disc found, outside the "
                f"{SACRUM_DISC_MIN_MM:.0f}-{SACRUM_DISC_MAX_MM:.0f} mm expected when that disc is L5-S1."
            )
    order = np.argsort(disc_s)[::-1]
    return Levels(
        s=s,
        points=pts,
        tangent=tan,
        anterior=ant,
        lateral=lat,
        sac_front_mm=front,
        disc_s=tuple(disc_s[i] for i in order),
        disc_height=tuple(heights[i] for i in order),
        body_depth_mm=depth,
        body_width_mm=width,
        sacrum=sacrum,
        notes=tuple(notes),
    )


def paint_levels(
    shape: tuple[int, int, int],
    valid: np.ndarray,
    levels: Levels,
    h: float,
    disc_ids: list[int],
    vertebra_ids: list[int],
    sacrum_id: int | None,
) -> np.ndarray:
    """Label array on the working grid with the disc and body models (int32; the sac is not painted).

    ``disc_ids`` follow ``levels.disc_s`` (superior first); ``vertebra_ids`` are the bodies from the
    top: the one above each disc, and (without the sacrum) one below the lowest disc.
    """
    out = np.zeros(shape, dtype=np.int32)
    if not levels.disc_s:
        return out
    pts_mm = levels.points * h
    tree = cKDTree(pts_mm)
    reach = levels.sac_front_mm + levels.body_depth_mm + 5.0
    lo = np.maximum(np.floor(levels.points.min(axis=0) - (reach + 40.0) / h), 0).astype(int)
    hi = np.minimum(np.ceil(levels.points.max(axis=0) + (reach + 40.0) / h) + 1, shape).astype(int)
    zz, yy, xx = np.mgrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    vox = np.column_stack([zz.ravel(), yy.ravel(), xx.ravel()]).astype(float)
    _, idx = tree.query(vox * h, workers=-1)  # both cores; the same nearest points as one thread
    rel = (vox - levels.points[idx]) * h
    s = levels.s[idx] + np.einsum("ij,ij->i", rel, levels.tangent[idx])
    d = np.einsum("ij,ij->i", rel, levels.anterior[idx])
    lat = np.einsum("ij,ij->i", rel, levels.lateral[idx])
    depth, width = levels.body_depth_mm, levels.body_width_mm
    front = levels.sac_front_mm
    ell = ((d - (front + depth / 2)) / (depth / 2)) ** 2 + (lat / (width / 2)) ** 2 <= 1.0
    labels = np.zeros(len(vox), dtype=np.int32)
    edges = [(sc + hd / 2, sc - hd / 2) for sc, hd in zip(levels.disc_s, levels.disc_height)]
    gaps = [a[1] - b[0] for a, b in zip(edges[:-1], edges[1:])]
    body_h = float(np.median(gaps)) if gaps else 25.0
    # bodies: above each disc, and below the lowest (or the sacrum)
    for n, (top, _bottom) in enumerate(edges):
        upper = edges[n - 1][1] if n > 0 else top + body_h
        if n < len(vertebra_ids):
            labels[ell & (s > top) & (s < upper)] = vertebra_ids[n]
    low_top = edges[-1][1]
    if sacrum_id is not None:
        labels[ell & (s < low_top) & (s > low_top - 30.0)] = sacrum_id
    elif len(vertebra_ids) > len(edges):
        labels[ell & (s < low_top) & (s > low_top - body_h)] = vertebra_ids[len(edges)]
    for (top, bottom), lab in zip(edges, disc_ids):
        labels[ell & (s <= top) & (s >= bottom)] = lab
    block = labels.reshape(zz.shape)
    block[~valid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]] = 0
    out[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = block
    return out
