"""The dural sac on T2: a bright tube tracked slice by slice along the cranio-caudal axis.

All arrays here live on the RAS working grid of :mod:`.t2_grid` (``[z, y, x]`` = ``[S, A, R]``,
isotropic spacing ``h`` mm). Four steps:

1. :func:`tube_response`: a low-frequency normalisation (the image divided by its own 20 mm
   local mean, which removes the coil bias field and damps large bright regions such as
   subcutaneous fat), then a 2D Laplacian-of-Gaussian in the axial plane (sigma
   :data:`TUBE_SIGMA_MM`) averaged over :data:`TUBE_LENGTH_MM` along z. A bright tube running
   cranio-caudally (the sac, 12-20 mm wide) answers strongly; sheets (fat layers), flat blobs
   (disc nuclei) and short blobs (bowel, cysts) answer much less.
2. :func:`track_sac`: per axial slice the local maxima of the response are candidates; a dynamic
   programme (local alignment, forward and backward) picks the one chain of candidates with the
   largest summed response under a continuity constraint (at most :data:`MAX_STEP_MM_PER_MM`
   lateral/AP step per mm of height, short gaps allowed). An optional seed point forces the chain
   through it. The chain's ends are where the tube stops answering.
3. :func:`delineate_sac`: per slice, the sac is the bright connected region around the track
   above a threshold half-way between the CSF level and the brightest part of the sac's immediate
   surround (iterated; the "half maximum" rule), so fat next to the sac stays out and the edge sits
   where partial volume crosses the middle. Holes (cauda equina rootlets, the conus) are filled.
   Two passes: after the first the track is moved onto the sac's centre (:func:`recentre_track`;
   the tube detector drifts towards the brightest CSF where the dark cord fills the sac).
4. :func:`find_cord`: the spinal cord / conus, dark inside the bright CSF, where it is clearly seen
   (a compact dark core ringed by CSF, one run along the canal); where the CSF rim around it is
   thinner than the threshold can hold, the sac is widened to the cord and the band around it, so
   the sac section is cord plus CSF, not a crescent of CSF beside the cord.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_multiotsu

from .arrays import numpy_ops
from .components import largest_component

if TYPE_CHECKING:
    from .arrays import ArrayOps

__all__ = [
    "TUBE_SIGMA_MM",
    "TUBE_LENGTH_MM",
    "MAX_STEP_MM_PER_MM",
    "MIN_SAC_LENGTH_MM",
    "SacTrack",
    "tube_response",
    "track_sac",
    "delineate_sac",
    "trim_track",
    "recentre_track",
    "find_cord",
    "CORD_DARK_RATIO",
    "THICK_SLICE_MM",
    "RAISE_KEEP_SHARE",
    "MIN_CORD_LENGTH_MM",
]

TUBE_SIGMA_MM = 4.0
"""In-plane scale (mm) of the Laplacian-of-Gaussian tube detector; matches a 12-16 mm wide sac."""
TUBE_LENGTH_MM = 9.0
"""Length (mm) over which the tube response is averaged along the cranio-caudal axis."""
NORMALISATION_SIGMA_MM = 20.0
"""Scale (mm) of the local mean that the image is divided by (bias field / large bright regions)."""
MAX_STEP_MM_PER_MM = 1.2
"""Largest in-plane move of the track per mm of height (about 50 degrees from the z axis)."""
MIN_SAC_LENGTH_MM = 40.0
"""A track shorter than this (mm, cranio-caudal) is not accepted as the dural sac."""
MIN_SKIN_DEPTH_MM = 8.0
"""The tube response is suppressed within this distance (mm) of air inside the image (the skin)."""
MAX_SAC_AREA_MM2 = 700.0
"""An axial sac section larger than this (mm2) is a leak into the surroundings, not a sac."""
END_CSF_RATIO = 0.8
"""A track end whose CSF level is under this share of the level further in is not dural sac."""
WINDOW_RADIUS_MM = 14.0
"""Radius (mm) of the disk around the track whose histogram sets each slice's threshold."""
MIN_SAC_AREA_MM2 = 12.0
"""Smallest plausible axial sac section (mm2); a severe stenosis leaves about 20-40 mm2."""
THICK_SLICE_MM = 2.0
"""Images whose largest voxel edge is at least this (mm) get the half-maximum raise of :func:`delineate_sac`."""
RAISE_KEEP_SHARE = 0.7
"""The half-maximum raise of a slice's threshold (half-way between the CSF and the window's middle
class, the epidural fat) is kept when the section keeps at least this share of its area."""


RECENTRE_AREA_SHARE = 0.6
RECENTRE_WINDOW_MM = 15.0
"""A slice's sac section gives the track's centre when it is at least this share of the median
section over this many mm of height (see :func:`recentre_track`)."""
CORD_DARK_RATIO = 0.6
"""Signal under this share of the slice's sac threshold may be cord or conus. On T2 the cord is about a
third of the CSF signal and the threshold about two thirds of it, so the cord lies under 0.6 x the
threshold and the thin, partial-volumed CSF rim around it above."""
CORD_MIN_AREA_MM2 = 12.0
CORD_MAX_AREA_MM2 = 110.0
"""Range (mm2) of the dark core of an axial cord / conus section: the lower thoracic cord is about
8 x 6 mm (about 40 mm2), the lumbar enlargement and conus up to about 10 x 8 mm; the core under the
dark threshold is smaller than the cord, the range is wide on both sides."""
CORD_OPENING_MM = 2.0
"""Radius (mm) of the opening that cuts a cord candidate off the dark tissue outside the sac where the
cord touches the dura (thin necks of dark signal, up to about 3 mm wide, are cut)."""
CORD_MAX_RADIUS_MM = 7.0
"""No point of a cord section lies further than this (mm) from its centre (compact, not a sheet)."""
CORD_RING_MM = 3.0
"""Width (mm) of the band around a cord candidate that must be CSF-like (the CSF rim)."""
CORD_RING_NOT_DARK = 0.6
CORD_RING_CSF = 0.25
CORD_RING_IN_SAC = 0.2
"""Shares of that band that must be not dark, above the sac threshold (CSF), and inside the sac found."""
MIN_CORD_LENGTH_MM = 20.0
"""The cord is the longest 3D-connected run of cord sections, at least this long (mm, cranio-caudal)."""
CORD_TIP_AREA_MM2 = 8.0
CORD_FOLLOW_SHRINK = 0.5
CORD_FOLLOW_GROWTH = 1.1
CORD_FOLLOW_MM = 30.0
"""Following the cord past its run (:func:`_follow_cord`): smallest section (mm2; the conus tip, about
3 mm across), smallest share of the section before (it breaks up), largest share of the run's end
section (it leaks into the dark around it: the cord tapers towards its tip and is followed for at
most this many mm)."""
CORD_GAP_MM = 4.0
"""Cord sections up to this far apart (mm, cranio-caudal) belong to one run (a slice or two where the
cord is not clear, e.g. a root leaving, does not cut it)."""


CLOSING_VOX = 3
"""Radius (working-grid voxels, about 3 mm) of the per-slice closing that bridges gaps in the CSF ring
around the conus or a bundle of rootlets, so that they are counted inside the sac."""
_yy, _xx = np.mgrid[-CLOSING_VOX : CLOSING_VOX + 1, -CLOSING_VOX : CLOSING_VOX + 1]
_DISK = _yy**2 + _xx**2 <= CLOSING_VOX**2


@dataclass(frozen=True)
class SacTrack:
    """The tracked sac centre: ``z`` slice indices (ascending) and ``(y, x)`` voxel positions."""

    z: np.ndarray
    yx: np.ndarray
    score: float


def _local_mean(image: np.ndarray, valid: np.ndarray, sigma_vox: float, ops: ArrayOps) -> np.ndarray:
    """Normalised-convolution local mean (down-sampled by 4 for speed, then linearly up-sampled)."""
    f = 4
    pad = [(0, (-n) % f) for n in image.shape]
    a = np.pad(image * valid, pad)
    m = np.pad(valid.astype(np.float32), pad)
    shp = tuple(n // f for n in a.shape)
    a = a.reshape(shp[0], f, shp[1], f, shp[2], f).mean(axis=(1, 3, 5))
    m = m.reshape(shp[0], f, shp[1], f, shp[2], f).mean(axis=(1, 3, 5))
    a = ops.gaussian_filter(a, sigma_vox / f, mode="nearest")
    m = ops.gaussian_filter(m, sigma_vox / f, mode="nearest")
    mean = a / np.maximum(m, 1e-3)
    zoom = [n / s for n, s in zip(a.shape, shp)]
    up = ops.zoom(mean, [f * 1.0] * 3, order=1, mode="nearest", grid_mode=True)
    del zoom
    return up[: image.shape[0], : image.shape[1], : image.shape[2]]


def tube_response(
    work_array: np.ndarray, valid: np.ndarray, h: float, smooth: callable, *, ops: ArrayOps | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Bright cranio-caudal tube response on the working grid, and the normalised image.

    ``smooth(array, sigma_mm)`` is the isotropic Gaussian to use (the library's filter on the
    selected backend). Returns ``(response, normalised)``, both float32 ``[z, y, x]``; the response
    is dimensionless (scale-normalised LoG of the normalised image), 0 outside the field of view.
    The local mean, box filters, erosion, opening and skin distance map run on ``ops``' backend
    (:mod:`.arrays`, NumPy by default); arrays in and out are NumPy arrays.
    """
    ops = ops or numpy_ops()
    local = _local_mean(work_array, valid, NORMALISATION_SIGMA_MM / h, ops)
    fg_level = np.percentile(work_array[valid], 99.0) if valid.any() else 1.0
    norm = np.where(valid & (local > 0.03 * fg_level), work_array / np.maximum(local, 1e-6), 0.0).astype(np.float32)
    norm = np.minimum(norm, 4.0)
    g = smooth(norm, TUBE_SIGMA_MM)
    s = TUBE_SIGMA_MM / h
    lap = np.zeros_like(g)
    lap[:, 1:-1, :] += g[:, 2:, :] - 2 * g[:, 1:-1, :] + g[:, :-2, :]
    lap[:, :, 1:-1] += g[:, :, 2:] - 2 * g[:, :, 1:-1] + g[:, :, :-2]
    resp = (-lap * s * s).astype(np.float32)
    resp = ops.uniform_filter1d(resp, max(1, int(round(TUBE_LENGTH_MM / h))), axis=0, mode="nearest")
    resp[~ops.binary_erosion(valid, iterations=2, border_value=0)] = 0.0
    resp *= _depth_weight(work_array, valid, h, fg_level, ops)
    return resp, norm


def _depth_weight(work_array: np.ndarray, valid: np.ndarray, h: float, fg_level: float, ops: ArrayOps) -> np.ndarray:
    """0 within :data:`MIN_SKIN_DEPTH_MM` of air seen inside the field of view, ramping to 1 at twice that.

    The dural sac lies several centimetres under the skin of the back; the subcutaneous fat, which
    is as bright as CSF on fast spin echo (and brighter still next to a surface coil), lies right
    under it. Voxels outside the field of view are not taken for air.
    """
    smooth = ops.uniform_filter(work_array, max(3, int(round(3.0 / h))))
    air = valid & (smooth < 0.06 * fg_level)
    air = ops.binary_opening(air, iterations=2)
    if not air.any():
        return np.ones(work_array.shape, dtype=np.float32)
    depth = ops.distance_transform_edt(~air, sampling=h)
    return np.clip((depth - MIN_SKIN_DEPTH_MM) / MIN_SKIN_DEPTH_MM, 0.0, 1.0).astype(np.float32)


def _candidates(resp: np.ndarray, h: float, ops: ArrayOps, per_slice: int = 8) -> list[tuple[np.ndarray, np.ndarray]]:
    size = max(3, int(round(8.0 / h)) | 1)
    peaks = (resp == ops.maximum_filter(resp, size=(1, size, size))) & (resp > 0)
    zz, yy, xx = np.nonzero(peaks)
    vals = resp[zz, yy, xx]
    out: list[tuple[np.ndarray, np.ndarray]] = []
    order = np.lexsort((-vals, zz))
    zz, yy, xx, vals = zz[order], yy[order], xx[order], vals[order]
    starts = np.searchsorted(zz, np.arange(resp.shape[0] + 1))
    for z in range(resp.shape[0]):
        a, b = starts[z], min(starts[z + 1], starts[z] + per_slice)
        out.append((np.stack([yy[a:b], xx[a:b]], axis=1).astype(float), vals[a:b].astype(float)))
    return out


def _dp(cands, gains, h: float, reverse: bool, max_gap: int = 4):  # type: ignore[no-untyped-def]
    """Local-alignment DP over slices; returns best scores and back-pointers (z', index) per slice."""
    nz = len(cands)
    order = range(nz - 1, -1, -1) if reverse else range(nz)
    score: list[np.ndarray] = [np.zeros(0)] * nz
    back: list[list[tuple[int, int] | None]] = [[] for _ in range(nz)]
    step = -1 if reverse else 1
    for z in order:
        pos, g = cands[z][0], gains[z]
        s = g.copy()
        bp: list[tuple[int, int] | None] = [None] * len(g)
        best = np.zeros(len(g))
        for dz in range(1, max_gap + 1):
            zp = z - dz * step
            if zp < 0 or zp >= nz or len(cands[zp][0]) == 0 or len(g) == 0:
                continue
            d = np.linalg.norm(pos[:, None, :] - cands[zp][0][None, :, :], axis=2) * h
            ok = d <= MAX_STEP_MM_PER_MM * dz * h + 1.5
            val = np.where(ok, score[zp][None, :] - 0.03 * d - 0.15 * (dz - 1), -np.inf)
            j = np.argmax(val, axis=1)
            v = val[np.arange(len(g)), j]
            for c in range(len(g)):
                if v[c] > best[c]:
                    best[c] = v[c]
                    bp[c] = (zp, int(j[c]))
        s = g + best
        score[z] = s
        back[z] = bp
    return score, back


def track_sac(
    resp: np.ndarray, h: float, seed_zyx: np.ndarray | None = None, *, ops: ArrayOps | None = None
) -> SacTrack:
    """The dural sac's track through the slices (see the module docstring); the peak search (a maximum
    filter) runs on ``ops``' backend (:mod:`.arrays`, NumPy by default).

    Raises:
        ValueError: no bright tube long enough (at least :data:`MIN_SAC_LENGTH_MM`) was found.
    """
    cands = _candidates(resp, h, ops or numpy_ops())
    allv = np.concatenate([v for _, v in cands]) if cands else np.zeros(0)
    if allv.size == 0:
        raise ValueError("No bright structure was found in the image: is it a T2-weighted MRI of the spine?")
    ref = float(np.percentile(allv, 99.0))
    gains = [v / ref - 0.3 for _, v in cands]
    if seed_zyx is not None:
        zs = int(round(seed_zyx[0]))
        if 0 <= zs < len(cands):
            pos, v = cands[zs]
            d = np.linalg.norm(pos - seed_zyx[1:][None, :], axis=1) * h if len(pos) else np.zeros(0)
            keep = d <= 8.0
            if not keep.any():
                pos = np.vstack([pos, seed_zyx[1:][None, :]]) if len(pos) else seed_zyx[1:][None, :].astype(float)
                v = np.append(v, ref * 0.5)
                keep = np.zeros(len(v), dtype=bool)
                keep[-1] = True
            cands[zs] = (pos[keep], v[keep])
            gains[zs] = v[keep] / ref - 0.3 + 5.0  # the seed slice must be on the path
    fwd, fback = _dp(cands, gains, h, reverse=False)
    bwd, bback = _dp(cands, gains, h, reverse=True)
    best, where = -np.inf, None
    for z in range(len(cands)):
        if len(gains[z]) == 0:
            continue
        total = fwd[z] + bwd[z] - gains[z]
        c = int(np.argmax(total))
        if total[c] > best:
            best, where = float(total[c]), (z, c)
    if where is None:
        raise ValueError("No bright tube (dural sac) was found in the image.")
    path = [where]
    node = where
    while (nxt := fback[node[0]][node[1]]) is not None:
        path.append(nxt)
        node = nxt
    node = where
    while (nxt := bback[node[0]][node[1]]) is not None:
        path.insert(0, nxt)
        node = nxt
    path.sort()
    zs = np.array([p[0] for p in path])
    yx = np.array([cands[z][0][c] for z, c in path])
    # fill gaps by linear interpolation, one entry per slice
    zfull = np.arange(zs.min(), zs.max() + 1)
    yx_full = np.stack([np.interp(zfull, zs, yx[:, 0]), np.interp(zfull, zs, yx[:, 1])], axis=1)
    if len(zfull) * h < MIN_SAC_LENGTH_MM:
        raise ValueError(
            f"The brightest cranio-caudal tube in the image is only {len(zfull) * h:.0f} mm long (at least "
            f"{MIN_SAC_LENGTH_MM:.0f} mm expected for the lumbar dural sac): the image may not show the lumbar "
            "canal, or not on T2. Give a seed point inside the canal, or check the series."
        )
    k = min(5, len(zfull))
    kernel = np.ones(k) / k
    sm = np.stack(
        [np.convolve(np.pad(yx_full[:, d], (k // 2, k - 1 - k // 2), mode="edge"), kernel, "valid") for d in (0, 1)],
        axis=1,
    )
    return SacTrack(z=zfull, yx=sm, score=best)


def trim_track(work_array: np.ndarray, track: SacTrack, h: float) -> SacTrack:
    """Cut the track's ends where the tube is no longer CSF.

    Past the sac's caudal end the tracking can follow the fat-filled sacral canal, which is bright
    but darker than CSF. Slices at either end whose CSF level (90th percentile within 6 mm of the
    track) is under :data:`END_CSF_RATIO` times the median of the next 30 mm inward are dropped.
    """
    r = int(round(6.0 / h))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    disk = yy**2 + xx**2 <= r * r
    nz, ny, nx = work_array.shape
    level = np.zeros(len(track.z))
    for n, (z, (cy, cx)) in enumerate(zip(track.z, np.rint(track.yx).astype(int))):
        ys, xs = cy + yy[disk], cx + xx[disk]
        ok = (ys >= 0) & (ys < ny) & (xs >= 0) & (xs < nx)
        level[n] = np.percentile(work_array[z, ys[ok], xs[ok]], 90) if ok.any() else 0.0
    w = max(3, int(round(30.0 / h)))
    lo, hi = 0, len(level)
    while hi - lo > 2 * w and level[lo] < END_CSF_RATIO * np.median(level[lo + 5 : lo + 5 + w]):
        lo += 1
    while hi - lo > 2 * w and level[hi - 1] < END_CSF_RATIO * np.median(level[hi - 5 - w : hi - 5]):
        hi -= 1
    return SacTrack(z=track.z[lo:hi], yx=track.yx[lo:hi], score=track.score)


def _slice_mask(img: np.ndarray, centre: np.ndarray, t: float, core: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(img >= t)
    if n == 0:
        return np.zeros(img.shape, dtype=bool)
    hits = np.bincount(lab[core], minlength=n + 1)
    hits[0] = 0
    if hits.max() == 0:
        return np.zeros(img.shape, dtype=bool)
    comp = lab == int(np.argmax(hits))
    # close gaps of the CSF ring around the cord / conus or a rootlet bundle, then fill what it encloses
    closed = ndimage.binary_closing(np.pad(comp, CLOSING_VOX), structure=_DISK, iterations=1)
    closed = closed[CLOSING_VOX:-CLOSING_VOX, CLOSING_VOX:-CLOSING_VOX]
    return ndimage.binary_fill_holes(closed | comp)


def _delineate_pass(
    work_array: np.ndarray, track: SacTrack, h: float, raise_to_half_max: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One delineation pass around ``track``: ``(mask, threshold_z, csf_z)`` (see :func:`delineate_sac`)."""
    nz, ny, nx = work_array.shape
    half = int(round(22.0 / h))
    r_core = 4.0 / h
    mask = np.zeros(work_array.shape, dtype=bool)
    thr = np.full(nz, np.nan)
    raised = np.full(nz, np.nan)
    csf = np.full(nz, np.nan)
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    disk_core = yy**2 + xx**2 <= r_core**2
    disk_csf = yy**2 + xx**2 <= (6.0 / h) ** 2

    def window(z: int, cy: int, cx: int) -> tuple[np.ndarray, tuple[slice, slice], tuple[slice, slice]]:
        y0, y1, x0, x1 = cy - half, cy + half + 1, cx - half, cx + half + 1
        sy = slice(max(y0, 0), min(y1, ny))
        sx = slice(max(x0, 0), min(x1, nx))
        wy = slice(sy.start - y0, sy.start - y0 + (sy.stop - sy.start))
        wx = slice(sx.start - x0, sx.start - x0 + (sx.stop - sx.start))
        return work_array[z, sy, sx], (sy, sx), (wy, wx)

    disk_win = yy**2 + xx**2 <= (WINDOW_RADIUS_MM / h) ** 2
    area_px = h * h
    for z, (cy, cx) in zip(track.z, np.rint(track.yx).astype(int)):
        img, (sy, sx), (wy, wx) = window(z, cy, cx)
        core = disk_core[wy, wx]
        c_in = float(np.percentile(img[disk_csf[wy, wx]], 90))
        if c_in <= 0:
            continue
        vals = img[disk_win[wy, wx]]
        try:
            t_lo, t_hi = (float(t) for t in threshold_multiotsu(vals, classes=3))
        except ValueError:  # flat window
            continue
        # the half-maximum cut (used with raise_to_half_max, see delineate_sac): half-way between the CSF
        # and the middle class; kept below where it trims the section to at least RAISE_KEEP_SHARE of it,
        # after both cuts are smoothed along the track
        t_hi = min(max(t_hi, 0.5 * c_in), 0.95 * c_in)
        area = _slice_mask(img, (cy, cx), t_hi, core).sum() * area_px
        if area > MAX_SAC_AREA_MM2:
            t_hi = 0.5 * (t_hi + c_in)
        csf[z], thr[z], raised[z] = c_in, t_hi, t_hi
        if raise_to_half_max:
            middle = vals[(vals > t_lo) & (vals < t_hi)]
            if middle.size:
                raised[z] = max(t_hi, min(0.5 * (c_in + float(np.median(middle))), 0.95 * c_in))
    on = ~np.isnan(thr)
    if on.any():
        thr[on] = ndimage.median_filter(thr[on] / csf[on], size=7, mode="nearest") * csf[on]
        if raise_to_half_max:
            raised[on] = ndimage.median_filter(raised[on] / csf[on], size=7, mode="nearest") * csf[on]
    for z, (cy, cx) in zip(track.z, np.rint(track.yx).astype(int)):
        if np.isnan(thr[z]):
            continue
        img, (sy, sx), (wy, wx) = window(z, cy, cx)
        section = _slice_mask(img, (cy, cx), thr[z], disk_core[wy, wx])
        if raise_to_half_max and raised[z] > thr[z]:
            trimmed = _slice_mask(img, (cy, cx), raised[z], disk_core[wy, wx])
            if trimmed.sum() >= RAISE_KEEP_SHARE * section.sum():
                section, thr[z] = trimmed, raised[z]
        mask[z, sy, sx] = section
    mask = largest_component(mask)  # keep the largest 3D component
    return mask, thr, csf


def recentre_track(track: SacTrack, mask: np.ndarray, h: float) -> SacTrack:
    """The track moved onto the centre of the delineated sac, slice by slice.

    The tube detector answers to the bright CSF, so where the dark cord or conus fills the sac its
    maximum slides towards the brightest part of the CSF, sometimes onto a bright structure beside
    the sac. Slices whose sac section is plausible (at least :data:`RECENTRE_AREA_SHARE` of the
    median over :data:`RECENTRE_WINDOW_MM`) give the centre (centroid of the section); the others
    are interpolated between them, and the path is smoothed over 5 slices.
    """
    area = mask[track.z].sum(axis=(1, 2)).astype(float)
    ref = ndimage.median_filter(area, size=max(3, int(round(RECENTRE_WINDOW_MM / h)) | 1), mode="nearest")
    good = (area > 0) & (area >= RECENTRE_AREA_SHARE * ref)
    if good.sum() < 2:
        return track
    zz = track.z.astype(float)
    centres = np.array([ndimage.center_of_mass(mask[z]) for z in track.z[good]], dtype=float)
    yx = np.stack([np.interp(zz, zz[good], centres[:, k]) for k in (0, 1)], axis=1)
    yx = ndimage.uniform_filter1d(yx, size=min(5, len(zz)), axis=0, mode="nearest")
    return SacTrack(z=track.z, yx=yx, score=track.score)


def _disk(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return yy**2 + xx**2 <= radius * radius


def _cord_candidate(img: np.ndarray, sac: np.ndarray, t: float, csf_level: float, h: float) -> np.ndarray | None:
    """The cord / conus section in one slice window, or None (see :func:`find_cord`).

    The dark region is opened with a 1 mm disk first (a thin lower thoracic cord keeps its shape);
    if no candidate passes, with a :data:`CORD_OPENING_MM` disk (a conus touching the dura on one
    side is cut off the dark tissue outside).
    """
    ring_se = _disk(max(1, int(round(CORD_RING_MM / h))))
    t_dark = CORD_DARK_RATIO * t
    near = ndimage.binary_dilation(sac, structure=_disk(max(1, int(round(2.0 / h)))))
    best = None
    for radius_mm in (1.0, CORD_OPENING_MM):
        dark = ndimage.binary_opening(img < t_dark, structure=_disk(max(1, int(round(radius_mm / h)))))
        lab, _ = ndimage.label(dark)
        best_area = 0.0
        for c in np.unique(lab[near & dark]):
            if c == 0:
                continue
            comp = lab == c
            area = comp.sum() * h * h
            if not (CORD_MIN_AREA_MM2 <= area <= CORD_MAX_AREA_MM2):
                continue
            yy, xx = np.nonzero(comp)
            if np.sqrt((yy - yy.mean()) ** 2 + (xx - xx.mean()) ** 2).max() * h > CORD_MAX_RADIUS_MM:
                continue
            ring = ndimage.binary_dilation(comp, structure=ring_se) & ~comp
            if (img[ring] >= t_dark).mean() < CORD_RING_NOT_DARK or (img[ring] >= t).mean() < CORD_RING_CSF:
                continue
            if sac[ring].mean() < CORD_RING_IN_SAC:
                continue
            if area > best_area:
                best, best_area = comp, area
        if best is not None:
            break
    if best is None:
        return None
    # the cord's edge where the signal crosses half-way between the cord's own level and the CSF's
    edge = 0.5 * (float(np.median(img[best])) + csf_level)
    grown = ndimage.binary_dilation(best, structure=_disk(max(1, int(round(1.0 / h))))) & (img < edge)
    return grown | best


def _follow_cord(work_array: np.ndarray, cord: np.ndarray, track: SacTrack, thr: np.ndarray, h: float) -> np.ndarray:
    """Follow the cord past the ends of its run, slice by slice, while it stays a dark core.

    Towards its tip the conus thins and lies among the roots of the cauda equina, where the
    per-slice test of :func:`_cord_candidate` (a compact dark region ringed by CSF) no longer holds.
    From each end of the run the next slice's section is the dark signal (under
    :data:`CORD_DARK_RATIO` times that slice's threshold) within 1 mm of the section before; the
    following stops where the section shrinks under :data:`CORD_TIP_AREA_MM2` or under
    :data:`CORD_FOLLOW_SHRINK` of the section before (it breaks up), grows over
    :data:`CORD_FOLLOW_GROWTH` times the run's end section (it leaks into the dark around it), or
    after :data:`CORD_FOLLOW_MM`.
    """
    out = cord.copy()
    zs = np.nonzero(cord.any(axis=(1, 2)))[0]
    if zs.size == 0:
        return out
    on_track = np.zeros(len(thr), dtype=bool)
    on_track[track.z] = True
    step_se = _disk(max(1, int(round(1.0 / h))))
    for z_end, direction in ((int(zs[0]), -1), (int(zs[-1]), 1)):
        prev = cord[z_end]
        a_end = prev.sum() * h * h
        for k in range(1, int(round(CORD_FOLLOW_MM / h)) + 1):
            z = z_end + direction * k
            if z < 0 or z >= len(thr) or not on_track[z] or np.isnan(thr[z]):
                break
            region = largest_component(
                ndimage.binary_dilation(prev, structure=step_se) & (work_array[z] < CORD_DARK_RATIO * thr[z])
            )
            if not region.any():
                break
            a, a_prev = region.sum() * h * h, prev.sum() * h * h
            if a < CORD_TIP_AREA_MM2 or a < CORD_FOLLOW_SHRINK * a_prev or a > CORD_FOLLOW_GROWTH * a_end:
                break
            out[z] = region
            prev = region
    return out


def find_cord(
    work_array: np.ndarray, track: SacTrack, mask: np.ndarray, thr: np.ndarray, csf: np.ndarray, h: float
) -> tuple[np.ndarray, np.ndarray]:
    """The spinal cord / conus where it is clearly seen inside the sac, and the sac enlarged around it.

    On T2 the cord and the conus are dark (about a third of the CSF signal) inside the bright CSF;
    where the CSF rim around them is thin it falls under the sac's threshold (partial volume), so
    the CSF above the threshold is only a crescent in front of (or behind) the cord and the sac
    comes out too narrow. Per slice a cord candidate is a compact dark region (under
    :data:`CORD_DARK_RATIO` times the slice's threshold; :data:`CORD_MIN_AREA_MM2`-
    :data:`CORD_MAX_AREA_MM2`, within :data:`CORD_MAX_RADIUS_MM` of its centre) that touches the sac
    and is ringed (:data:`CORD_RING_MM`) by signal that is mostly not dark and partly CSF and sac.
    Only the longest run of such sections connected in 3D, at least :data:`MIN_CORD_LENGTH_MM`
    long, is taken as the cord (nerve-root bundles of the cauda equina make short, scattered runs).
    Where the cord is found the sac is the sac found, the cord and the not-dark band
    (:data:`CORD_RING_MM`) around it, closed and filled.

    Returns ``(sac, cord)``: boolean ``[z, y, x]`` arrays on the working grid (``cord`` inside ``sac``).
    """
    nz, ny, nx = work_array.shape
    half = int(round(22.0 / h))
    cord = np.zeros(work_array.shape, dtype=bool)
    for z, (cy, cx) in zip(track.z, np.rint(track.yx).astype(int)):
        if np.isnan(thr[z]) or not mask[z].any():
            continue
        sy = slice(max(cy - half, 0), min(cy + half + 1, ny))
        sx = slice(max(cx - half, 0), min(cx + half + 1, nx))
        found = _cord_candidate(work_array[z, sy, sx], mask[z, sy, sx], float(thr[z]), float(csf[z]), h)
        if found is not None:
            cord[z, sy, sx] = found
    # sections a few slices apart (a slice where the cord was not clear) belong to one run
    gap = max(1, int(round(CORD_GAP_MM / h)))
    bridge = np.zeros((2 * gap + 1, 1, 1), dtype=bool)
    bridge[:, 0, 0] = True
    lab, n = ndimage.label(ndimage.binary_dilation(cord, structure=bridge))
    if n == 0:
        return mask, cord
    spans = ndimage.find_objects(lab)
    lengths = np.array([(sl[0].stop - sl[0].start - 2 * gap) * h for sl in spans])
    best = int(np.argmax(lengths))
    if lengths[best] < MIN_CORD_LENGTH_MM:
        return mask, np.zeros_like(cord)
    run = lab == best + 1
    # a slice of the run where the cord was not clear takes it from the slices around (closing along z)
    cord = (cord | ndimage.binary_closing(cord, structure=bridge)) & run
    cord = _follow_cord(work_array, cord, track, thr, h)
    sac = mask.copy()
    r_ring = max(1, int(round(CORD_RING_MM / h)))
    ring_se = _disk(r_ring)
    for z in np.nonzero(cord.any(axis=(1, 2)))[0]:
        c, m, img = cord[z], mask[z], work_array[z]
        band = ndimage.binary_dilation(c, structure=ring_se) & (img >= CORD_DARK_RATIO * thr[z])
        ext = np.pad(m | c | band, r_ring)
        ext = ndimage.binary_closing(ext, structure=ring_se)[r_ring:-r_ring, r_ring:-r_ring]
        sac[z] = ndimage.binary_fill_holes(ext | m | c)
    return sac, cord & sac


def delineate_sac(
    work_array: np.ndarray, track: SacTrack, h: float, *, raise_to_half_max: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sac mask on the working grid plus the per-slice threshold and CSF level, and the cord.

    A first pass around the tracked centre, the track moved onto the sac's centre
    (:func:`recentre_track`), a second pass around it, then the cord / conus inside it
    (:func:`find_cord`), which the sac is enlarged to hold.

    ``raise_to_half_max`` (for stacks of thick slices, :data:`THICK_SLICE_MM`): each slice's cut is
    raised to half-way between the CSF and the window's middle class (the epidural fat) where that
    keeps at least :data:`RAISE_KEEP_SHARE` of the section. At a stenosis the window holds more disc
    bulge, ligament and fat than CSF, Otsu's upper cut falls between the dark tissue and the fat, and
    the fat beside the sac was taken for CSF: on the phantom's 0.6 x 0.6 x 4 mm stacks the 60 mm2
    level read +10 % and a 90 mm2 level +12.5 % (normal instead of moderate); with the raise
    -0.1 % and -0.2 %. Not on thin images: there the cut barely moves the edge (1 mm phantom: within
    0.5 %), and on the real 1 mm T2 the middle class is the cord and the rootlets, so the raise
    thinned the sac below the conus.

    Returns ``(mask, threshold_z, csf_z, cord)``: ``mask`` and ``cord`` bool ``[z, y, x]`` (the
    cord inside the mask, empty where no cord is seen); ``threshold_z`` and ``csf_z`` float arrays
    over all z slices (NaN off the track), in the image's intensity units.
    """
    mask, _, _ = _delineate_pass(work_array, track, h, raise_to_half_max)
    centred = recentre_track(track, mask, h)
    mask, thr, csf = _delineate_pass(work_array, centred, h, raise_to_half_max)
    mask, cord = find_cord(work_array, centred, mask, thr, csf, h)
    return mask, thr, csf, cord
