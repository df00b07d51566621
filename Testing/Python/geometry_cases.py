"""Geometry test cases shared by the tests: oblique, anisotropic and left-handed grids."""

from __future__ import annotations

import numpy as np

from lumbarspine.volume import Volume


def rotation(ax: float, ay: float, az: float) -> np.ndarray:
    """Rotation matrix (degrees about x, then y, then z)."""
    ax, ay, az = np.radians([ax, ay, az])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


GEOMETRIES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float], np.ndarray]] = {
    "axial-ras": ((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3)),
    "axial-lps-aniso": ((0.6, 0.6, 4.0), (120.0, 95.5, -40.0), np.diag([-1.0, -1.0, 1.0])),
    "sagittal": ((1.0, 1.0, 1.0), (-20.0, 50.0, 80.0), np.array([[0, 0, 1.0], [1.0, 0, 0], [0, -1.0, 0]])),
    "oblique-aniso": ((0.8, 1.1, 3.0), (12.5, -30.0, 44.0), rotation(17, -23, 31)),
    "oblique-lefthanded": ((0.7, 0.9, 2.5), (-5.0, 8.0, -60.0), rotation(-12, 28, 9) @ np.diag([1.0, 1.0, -1.0])),
}


def make_volume(name: str, shape=(9, 11, 13), dtype=np.int16, seed: int = 0, is_label: bool = False) -> Volume:
    """A random volume on the named geometry (array shape is (k, j, i))."""
    spacing, origin, direction = GEOMETRIES[name]
    rng = np.random.default_rng(seed)
    if is_label:
        array = rng.choice(np.array([0, 2, 41, 95], dtype=dtype), size=shape)
    elif np.dtype(dtype).kind == "f":
        array = rng.normal(100.0, 30.0, size=shape).astype(dtype)
    else:
        array = rng.integers(-1000, 2000, size=shape).astype(dtype)
    return Volume(array, spacing, origin, direction, is_label=is_label, name=name)


def random_points_inside(volume: Volume, n: int = 500, seed: int = 1) -> np.ndarray:
    """RAS points at random positions safely inside the grid (0.5 voxel margin)."""
    rng = np.random.default_rng(seed)
    size = np.asarray(volume.size_ijk, dtype=float)
    ijk = rng.uniform(0.5, size - 1.5, size=(n, 3))
    # keep away from voxel boundaries so nearest-neighbour look-ups are unambiguous
    ijk = np.round(ijk) + rng.uniform(-0.3, 0.3, size=(n, 3))
    return volume.ijk_to_ras_points(ijk)


def screw_surface_ijk(grid: Volume, entry: np.ndarray, tip: np.ndarray, diameter: float, start_mm: float = 0.0):
    """Points on a screw's surface in ``grid``'s continuous IJK (columns i, j, k), for the tests' own
    checks independent of the planner: rings every 0.3 mm from ``start_mm`` past the entry to the tip,
    40 points around, RAS -> IJK by inverting the grid's own 4x4 matrix (not the library's helper)."""
    axis = tip - entry
    length = float(np.linalg.norm(axis))
    d = axis / length
    a = np.cross(d, [0.3, 0.5, 0.8])
    a /= np.linalg.norm(a)
    b = np.cross(d, a)
    t = np.arange(start_mm, length + 1e-9, 0.3)
    phi = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    ring = np.cos(phi)[:, None] * a + np.sin(phi)[:, None] * b
    points = (entry + t[:, None, None] * d + diameter / 2 * ring[None]).reshape(-1, 3)
    return (np.linalg.inv(grid.ijk_to_ras) @ np.c_[points, np.ones(len(points))].T)[:3].T
