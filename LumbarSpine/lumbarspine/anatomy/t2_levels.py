"""Discs, vertebral bodies and the sacrum on T2, found in front of the tracked dural sac.

Works on the RAS working grid of :mod:`.t2_grid` (``[z, y, x]``, isotropic ``h`` mm) with the sac's
track from :mod:`.t2_sac`. Along the track, in the plane perpendicular to it, a box in front of the
sac (anterior, :data:`PROFILE_DEPTH_MM` deep, :data:`PROFILE_HALF_WIDTH_MM` to each side) is
sampled; its median intensity along the arc is the *column profile*. Discs are the bands that
differ from the vertebral bodies on both sides, bright (young nuclei) or dark (degenerated discs,
and the dark endplates around every disc): the peaks of the absolute band-pass of the profile
(:data:`DISC_BAND_MM` against :data:`BODY_BAND_MM`), at least :data:`MIN_DISC_SPACING_MM` apart.
Vertebral bodies are the segments between them.

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

import numpy as np
from scipy import ndimage
from scipy.signal import find_peaks
from scipy.spatial import cKDTree

from .t2_sac import SacTrack

__all__ = [
    "PROFILE_DEPTH_MM",
    "PROFILE_HALF_WIDTH_MM",
    "DISC_BAND_MM",
    "BODY_BAND_MM",
    "MIN_DISC_SPACING_MM",
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
DISC_BAND_MM = 5.0
"""Width (mm) of the band-pass's inner window (a disc's core)."""
BODY_BAND_MM = 27.0
"""Width (mm) of the band-pass's outer window (disc plus the bodies around it)."""
MIN_DISC_SPACING_MM = 18.0
"""Two discs are at least this far apart along the canal (mm); lumbar levels are 30-45 mm apart."""
MIN_DISC_SCORE = 0.06
"""Smallest band-pass contrast (fraction of the local median intensity) accepted as a disc."""
SIDE_MM = 14.0
"""A disc needs this much (mm) of column on each side along the track, differing from it in the same sense."""
SAC_END_MARGIN_MM = 10.0
"""The image must continue this far (mm) below the sac's end for the end to count as seen."""
SACRUM_DISC_MIN_MM = 8.0
SACRUM_DISC_MAX_MM = 60.0
"""Range (mm of arc) between the lowest disc and the sac's end for that disc to be L5-S1."""
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


def _sample(work: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return ndimage.map_coordinates(work, pts.T, order=1, mode="constant", cval=np.nan)


def _two_sided(pk: int, q: np.ndarray, inner: np.ndarray, score: np.ndarray, grid: np.ndarray) -> bool:
    """A disc differs from the column on BOTH sides in the same sense (a step at the end of the
    column, e.g. the top of a body under soft tissue, differs on one side only)."""
    if grid[pk] < SIDE_MM or grid[pk] > grid[-1] - SIDE_MM:
        return False
    above = inner[pk] - float(np.mean(q[pk + 6 : pk + int(SIDE_MM)]))
    below = inner[pk] - float(np.mean(q[pk - int(SIDE_MM) + 1 : pk - 5]))
    return above * below > 0 and min(abs(above), abs(below)) >= 0.3 * score[pk]


def _regularise(peaks: np.ndarray, weak: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Levels are roughly evenly spaced: fill a gap of about two spacings with the best weaker peak
    near its middle, and drop an end peak much closer to its neighbour than the usual spacing."""
    if peaks.size < 3:
        return peaks
    spacing = float(np.median(np.diff(peaks)))
    out = list(peaks)
    for a, b in zip(peaks[:-1], peaks[1:]):
        if b - a > 1.6 * spacing:
            mid = 0.5 * (a + b)
            cand = [w for w in weak if abs(w - mid) < 0.3 * (b - a)]
            if cand:
                out.append(max(cand, key=lambda w: score[w]))
    out = sorted(out)
    if len(out) >= 3 and out[-1] - out[-2] < 0.8 * spacing:
        out = out[:-1]
    if len(out) >= 3 and out[1] - out[0] < 0.8 * spacing:
        out = out[1:]
    return np.asarray(out, dtype=int)


def find_levels(work: np.ndarray, valid: np.ndarray, sac_mask: np.ndarray, track: SacTrack, h: float) -> Levels:
    """Disc positions along the sac's track, body size, and whether the sacrum is seen (see module doc)."""
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
    # column profile in front of the sac
    d = np.arange(front, front + PROFILE_DEPTH_MM, 1.0) / h
    lw = np.arange(-PROFILE_HALF_WIDTH_MM, PROFILE_HALF_WIDTH_MM + 0.5, 1.0) / h
    dd, ll = np.meshgrid(d, lw, indexing="ij")
    offs = dd.ravel()[None, :, None] * ant[:, None, :] + ll.ravel()[None, :, None] * lat[:, None, :]
    samples = _sample(work, (pts[:, None, :] + offs).reshape(-1, 3)).reshape(len(pts), -1)
    with np.errstate(all="ignore"):
        prof = np.nanmedian(samples, axis=1)
    prof = np.where(np.isfinite(prof), prof, np.nanmedian(prof))
    # resample on a 1 mm arc grid
    grid = np.arange(0.0, s[-1] + 1e-6, 1.0)
    p = np.interp(grid, s, prof)
    base = ndimage.median_filter(p, size=61, mode="nearest")
    q = p / np.maximum(base, 1e-6) - 1.0
    inner = ndimage.uniform_filter1d(q, size=int(DISC_BAND_MM), mode="nearest")
    outer = ndimage.uniform_filter1d(q, size=int(BODY_BAND_MM), mode="nearest")
    score = np.abs(inner - outer)
    allpk, _ = find_peaks(score, distance=int(MIN_DISC_SPACING_MM), height=0.5 * MIN_DISC_SCORE)
    allpk = np.asarray([pk for pk in allpk if _two_sided(pk, q, inner, score, grid)], dtype=int)
    peaks = allpk[score[allpk] >= MIN_DISC_SCORE] if allpk.size else allpk
    # keep peaks that stand out against the strongest ones (bodies' marrow can be patchy)
    if peaks.size:
        strong = np.percentile(score[peaks], 75)
        peaks = peaks[score[peaks] >= 0.35 * strong]
    peaks = _regularise(np.sort(peaks), allpk, score)
    heights = []
    for pk in peaks:
        level = inner[pk]
        lo, hi = pk, pk
        while lo > 0 and abs(inner[lo] - outer[pk]) > 0.5 * abs(level - outer[pk]) and pk - lo < 8:
            lo -= 1
        while hi < len(inner) - 1 and abs(inner[hi] - outer[pk]) > 0.5 * abs(level - outer[pk]) and hi - pk < 8:
            hi += 1
        heights.append(float(np.clip(hi - lo + DISC_BAND_MM - 1.0, 5.0, 14.0)))
    disc_s = [float(grid[pk]) for pk in peaks]
    # body depth: anterior cortex in the middle of each body
    depths = []
    for a, b in zip(disc_s[:-1], disc_s[1:]):
        i = int(np.argmin(np.abs(s - 0.5 * (a + b))))
        dline = np.arange(front, front + 60.0, 1.0) / h
        line = _sample(work, pts[i][None, :] + dline[:, None] * ant[i][None, :])
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
        end = pts[0]
        below = end - np.arange(1.0, SAC_END_MARGIN_MM / h + 1.0)[:, None] * tan[0][None, :]
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
    _, idx = tree.query(vox * h)
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
