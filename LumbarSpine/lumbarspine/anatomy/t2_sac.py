"""The dural sac on T2: a bright tube tracked slice by slice along the cranio-caudal axis.

All arrays here live on the RAS working grid of :mod:`.t2_grid` (``[z, y, x]`` = ``[S, A, R]``,
isotropic spacing ``h`` mm). Three steps:

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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_multiotsu

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
END_CSF_RATIO = 0.8
"""A track end whose CSF level is under this share of the level further in is not dural sac."""
WINDOW_RADIUS_MM = 14.0
"""Radius (mm) of the disk around the track whose histogram sets each slice's threshold."""
MIN_SAC_AREA_MM2 = 12.0
"""Smallest plausible axial sac section (mm2); a severe stenosis leaves about 20-40 mm2."""
"""An axial sac section larger than this (mm2) is a leak into the surroundings, not a sac."""


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


def _local_mean(image: np.ndarray, valid: np.ndarray, sigma_vox: float) -> np.ndarray:
    """Normalised-convolution local mean (down-sampled by 4 for speed, then linearly up-sampled)."""
    f = 4
    pad = [(0, (-n) % f) for n in image.shape]
    a = np.pad(image * valid, pad)
    m = np.pad(valid.astype(np.float32), pad)
    shp = tuple(n // f for n in a.shape)
    a = a.reshape(shp[0], f, shp[1], f, shp[2], f).mean(axis=(1, 3, 5))
    m = m.reshape(shp[0], f, shp[1], f, shp[2], f).mean(axis=(1, 3, 5))
    a = ndimage.gaussian_filter(a, sigma_vox / f, mode="nearest")
    m = ndimage.gaussian_filter(m, sigma_vox / f, mode="nearest")
    mean = a / np.maximum(m, 1e-3)
    zoom = [n / s for n, s in zip(a.shape, shp)]
    up = ndimage.zoom(mean, [f * 1.0] * 3, order=1, mode="nearest", grid_mode=True)
    del zoom
    return up[: image.shape[0], : image.shape[1], : image.shape[2]]


def tube_response(
    work_array: np.ndarray, valid: np.ndarray, h: float, smooth: callable
) -> tuple[np.ndarray, np.ndarray]:
    """Bright cranio-caudal tube response on the working grid, and the normalised image.

    ``smooth(array, sigma_mm)`` is the isotropic Gaussian to use (the library's filter on the
    selected backend). Returns ``(response, normalised)``, both float32 ``[z, y, x]``; the response
    is dimensionless (scale-normalised LoG of the normalised image), 0 outside the field of view.
    """
    local = _local_mean(work_array, valid, NORMALISATION_SIGMA_MM / h)
    fg_level = np.percentile(work_array[valid], 99.0) if valid.any() else 1.0
    norm = np.where(valid & (local > 0.03 * fg_level), work_array / np.maximum(local, 1e-6), 0.0).astype(np.float32)
    norm = np.minimum(norm, 4.0)
    g = smooth(norm, TUBE_SIGMA_MM)
    s = TUBE_SIGMA_MM / h
    lap = np.zeros_like(g)
    lap[:, 1:-1, :] += g[:, 2:, :] - 2 * g[:, 1:-1, :] + g[:, :-2, :]
    lap[:, :, 1:-1] += g[:, :, 2:] - 2 * g[:, :, 1:-1] + g[:, :, :-2]
    resp = (-lap * s * s).astype(np.float32)
    resp = ndimage.uniform_filter1d(resp, size=max(1, int(round(TUBE_LENGTH_MM / h))), axis=0, mode="nearest")
    resp[~ndimage.binary_erosion(valid, iterations=2, border_value=0)] = 0.0
    resp *= _depth_weight(work_array, valid, h, fg_level)
    return resp, norm


def _depth_weight(work_array: np.ndarray, valid: np.ndarray, h: float, fg_level: float) -> np.ndarray:
    """0 within :data:`MIN_SKIN_DEPTH_MM` of air seen inside the field of view, ramping to 1 at twice that.

    The dural sac lies several centimetres under the skin of the back; the subcutaneous fat, which
    is as bright as CSF on fast spin echo (and brighter still next to a surface coil), lies right
    under it. Voxels outside the field of view are not taken for air.
    """
    smooth = ndimage.uniform_filter(work_array, size=max(3, int(round(3.0 / h))))
    air = valid & (smooth < 0.06 * fg_level)
    air = ndimage.binary_opening(air, iterations=2)
    if not air.any():
        return np.ones(work_array.shape, dtype=np.float32)
    depth = ndimage.distance_transform_edt(~air, sampling=h)
    return np.clip((depth - MIN_SKIN_DEPTH_MM) / MIN_SKIN_DEPTH_MM, 0.0, 1.0).astype(np.float32)


def _candidates(resp: np.ndarray, h: float, per_slice: int = 8) -> list[tuple[np.ndarray, np.ndarray]]:
    size = max(3, int(round(8.0 / h)) | 1)
    peaks = (resp == ndimage.maximum_filter(resp, size=(1, size, size))) & (resp > 0)
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


def track_sac(resp: np.ndarray, h: float, seed_zyx: np.ndarray | None = None) -> SacTrack:
    """The dural sac's track through the slices (see the module docstring).

    Raises:
        ValueError: no bright tube long enough (at least :data:`MIN_SAC_LENGTH_MM`) was found.
    """
    cands = _candidates(resp, h)
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


def delineate_sac(work_array: np.ndarray, track: SacTrack, h: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sac mask on the working grid plus the per-slice threshold and CSF level.

    Returns ``(mask, threshold_z, csf_z)``: ``mask`` bool ``[z, y, x]``; ``threshold_z`` and
    ``csf_z`` float arrays over all z slices (NaN off the track), in the image's intensity units.
    """
    nz, ny, nx = work_array.shape
    half = int(round(22.0 / h))
    r_core = 4.0 / h
    mask = np.zeros(work_array.shape, dtype=bool)
    thr = np.full(nz, np.nan)
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
            t_hi = float(threshold_multiotsu(vals, classes=3)[1])
        except ValueError:  # flat window
            continue
        t_hi = min(max(t_hi, 0.5 * c_in), 0.95 * c_in)
        area = _slice_mask(img, (cy, cx), t_hi, core).sum() * area_px
        if area > MAX_SAC_AREA_MM2:
            t_hi = 0.5 * (t_hi + c_in)
        csf[z], thr[z] = c_in, t_hi
    on = ~np.isnan(thr)
    if on.any():
        ratio = thr[on] / csf[on]
        thr[on] = ndimage.median_filter(ratio, size=7, mode="nearest") * csf[on]
    for z, (cy, cx) in zip(track.z, np.rint(track.yx).astype(int)):
        if np.isnan(thr[z]):
            continue
        img, (sy, sx), (wy, wx) = window(z, cy, cx)
        mask[z, sy, sx] = _slice_mask(img, (cy, cx), thr[z], disk_core[wy, wx])
    # keep the largest 3D component
    lab, n = ndimage.label(mask)
    if n > 1:
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        mask = lab == int(np.argmax(sizes))
    return mask, thr, csf
