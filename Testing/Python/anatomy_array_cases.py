"""Inputs and calls for the anatomy array operations (lumbarspine.anatomy.arrays), shared by the CPU and GPU tests.

Each case is ``(id, op name, input builder, positional args, keyword args, GPU tolerance)``. Inputs:
random data (a float volume with a bright ellipsoid and a mask of thresholded smoothed noise) and a
mask derived from the CT phantom on an anisotropic grid (vertebrae and sacrum, 1.6 x 1.6 x 3 mm voxels);
the operations that take a sampling or per-axis parameters get anisotropic values. The GPU tolerance
is an absolute one (0.0: identical), for the CuPy result against SciPy's.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from scipy import ndimage

SHAPE = (20, 36, 40)
PHANTOM_SPACING = (1.6, 1.6, 3.0)  # (i, j, k) mm
SAMPLING_KJI = (3.0, 1.6, 1.6)  # the same in array order (k, j, i)


@cache
def random_volume(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal(100.0, 20.0, size=SHAPE)
    k, j, i = np.indices(SHAPE)
    a += 80.0 * (((i - 20) / 12.0) ** 2 + ((j - 18) / 9.0) ** 2 + ((k - 10) / 6.0) ** 2 < 1.0)
    return a.astype(np.float32)


@cache
def random_mask(seed: int = 3) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(size=SHAPE)
    return ndimage.gaussian_filter(noise, 1.5) > 0.05


@cache
def phantom_mask() -> np.ndarray:
    """Bone of the CT phantom (vertebrae 41-45 and sacrum 50) on a 1.6 x 1.6 x 3 mm grid, cropped."""
    from lumbarspine.phantom import PhantomSpec, generate_phantom

    labels = generate_phantom(PhantomSpec(seed=1, modality="ct", spacing=PHANTOM_SPACING)).labels.array
    bone = np.isin(labels, (41, 42, 43, 44, 45, 50))
    nz = np.argwhere(bone)
    lo, hi = nz.min(axis=0), nz.max(axis=0) + 1
    return bone[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].copy()


def _disk(radius: int, axis: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return np.expand_dims(r[:, None] ** 2 + r[None, :] ** 2 <= radius**2 + 0.5, axis)


def _in_plane() -> np.ndarray:
    s = np.zeros((3, 3, 3), dtype=bool)
    s[1] = ndimage.generate_binary_structure(2, 1)
    return s


def _points() -> np.ndarray:
    rng = np.random.default_rng(7)
    pts = rng.uniform(-1.0, 1.0, size=(500, 3)) + rng.uniform(0, 1, size=(500, 3)) * (np.array(SHAPE) - 1)
    return pts.T.copy()  # (3, N): one row per axis, some outside (cval)


CASES = [
    ("label-random", "label", random_mask, (), {}, 0.0),
    ("label-phantom-26", "label", phantom_mask, (), {"structure": ndimage.generate_binary_structure(3, 3)}, 0.0),
    ("label-background-in-plane", "label", lambda: ~phantom_mask(), (), {"structure": _in_plane()}, 0.0),
    ("erosion-border1", "binary_erosion", phantom_mask, (), {"iterations": 2, "border_value": 1}, 0.0),
    (
        "dilation-in-plane-masked",
        "binary_dilation",
        random_mask,
        (),
        {"structure": _in_plane(), "iterations": 2, "mask": random_mask(5) | random_mask()},
        0.0,
    ),
    ("dilation-phantom", "binary_dilation", phantom_mask, (), {"iterations": 2, "border_value": 0}, 0.0),
    ("opening", "binary_opening", random_mask, (), {"iterations": 2}, 0.0),
    ("closing-disk", "binary_closing", phantom_mask, (), {"structure": _disk(2, 0)}, 0.0),
    ("closing-faces", "binary_closing", random_mask, (), {"structure": ndimage.generate_binary_structure(3, 1)}, 0.0),
    ("fill-holes", "binary_fill_holes", phantom_mask, (), {}, 0.0),
    ("grey-closing", "grey_closing", random_volume, (), {"size": (3, 3, 3)}, 0.0),
    ("edt-phantom-anisotropic", "distance_transform_edt", phantom_mask, (), {"sampling": SAMPLING_KJI}, 1e-6),
    ("edt-random-anisotropic", "distance_transform_edt", random_mask, (), {"sampling": (2.5, 0.8, 0.8)}, 1e-6),
    ("edt-random-isotropic", "distance_transform_edt", lambda: ~random_mask(), (), {"sampling": 1.5}, 1e-6),
    (
        "gaussian-anisotropic",
        "gaussian_filter",
        random_volume,
        ((0.5, 1.2, 1.2),),
        {"mode": "nearest", "truncate": 3.0},
        1e-3,
    ),
    ("gaussian-phantom", "gaussian_filter", lambda: phantom_mask().astype(np.float32), (1.0,), {}, 1e-5),
    ("uniform", "uniform_filter", random_volume, (3,), {}, 1e-3),
    ("uniform1d-axis0", "uniform_filter1d", random_volume, (5,), {"axis": 0, "mode": "nearest"}, 1e-3),
    ("maximum-in-plane", "maximum_filter", random_volume, (), {"size": (1, 5, 5)}, 0.0),
    ("median", "median_filter", random_volume, (), {"size": 3}, 0.0),
    ("zoom-anisotropic", "zoom", random_volume, ((2.0, 1.5, 1.0),), {"order": 1, "mode": "nearest"}, 1e-3),
    ("zoom-grid-mode", "zoom", random_volume, ([4.0] * 3,), {"order": 1, "mode": "nearest", "grid_mode": True}, 1e-3),
    (
        "map-coordinates",
        "map_coordinates",
        random_volume,
        (_points(),),
        {"order": 1, "mode": "constant", "cval": np.nan},
        1e-3,
    ),
]
"""GPU tolerances: float32 filters of values ~100 agree to about 1e-5 relative (1e-3 absolute here)."""


def scipy_reference(op: str, data: np.ndarray, args: tuple, kwargs: dict):  # type: ignore[no-untyped-def]
    return getattr(ndimage, op)(data, *args, **kwargs)
