"""A 3D image with its geometry, and lossless conversion to and from SimpleITK.

Conventions (used everywhere in LumbarSpine):

* ``array`` is indexed ``[k, j, i]`` (slowest to fastest), like ``slicer.util.arrayFromVolume``
  and ``SimpleITK.GetArrayFromImage``.
* ``spacing`` is ``(i, j, k)`` in mm.
* ``origin`` is the **RAS** position in mm of the centre of voxel ``(i, j, k) = (0, 0, 0)``.
* ``direction`` is a 3x3 matrix whose *columns* are the RAS unit vectors of the i, j and k axes.
  It may be oblique and it may be left-handed (determinant -1).

So ``ras = origin + direction @ (spacing * ijk)``. ITK/SimpleITK and DICOM use LPS: the
conversion flips the sign of the first two rows of the origin and direction (``LPS = diag(-1,-1,1)
RAS``) and is exact (no resampling). Slicer's volume nodes use RAS like this class.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

__all__ = ["Volume", "RAS_TO_LPS", "validate_scalar_volume", "validate_label_volume", "label_values", "label_mask"]

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])
"""3x3 matrix converting RAS coordinates to LPS (it is its own inverse)."""

_ORTHO_TOL = 1e-4


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D scalar image (intensities or labels) with its geometry.

    Attributes:
        array: voxel values, shape ``(nk, nj, ni)``.
        spacing: voxel size ``(i, j, k)`` in mm, all > 0.
        origin: RAS position (mm) of the centre of voxel (0, 0, 0).
        direction: 3x3, columns are the RAS unit vectors of the i, j, k axes (orthonormal).
        is_label: True for a label map (integer classes, nearest-neighbour semantics).
        name: a display name (becomes the MRML node name).
    """

    array: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    is_label: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        array = self.array
        if not hasattr(array, "ndim"):
            array = np.asarray(array)
            object.__setattr__(self, "array", array)
        if array.ndim != 3:
            raise ValueError(
                f"A Volume needs a 3D array indexed [k, j, i]; got {array.ndim}D with shape {tuple(array.shape)}. "
                "For a single 2D slice add a leading axis (array[None])."
            )
        if min(array.shape) < 1:
            raise ValueError(f"The volume is empty (shape {tuple(array.shape)}); every axis needs at least one voxel.")
        spacing = tuple(float(s) for s in np.asarray(self.spacing, dtype=float).reshape(3))
        if not all(np.isfinite(spacing)) or min(spacing) <= 0:
            raise ValueError(f"Voxel spacing must be three positive numbers in mm; got {spacing}.")
        origin = tuple(float(o) for o in np.asarray(self.origin, dtype=float).reshape(3))
        if not all(np.isfinite(origin)):
            raise ValueError(f"The origin must be finite RAS coordinates in mm; got {origin}.")
        direction = np.array(self.direction, dtype=float).reshape(3, 3)
        if not np.allclose(direction.T @ direction, np.eye(3), atol=_ORTHO_TOL):
            raise ValueError(
                "The direction matrix must be orthonormal (columns = unit RAS vectors of the i, j, k axes); "
                f"got\n{direction}"
            )
        direction.setflags(write=False)
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "direction", direction)

    # ----------------------------------------------------------------------------------- geometry
    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(nk, nj, ni)``."""
        return tuple(int(n) for n in self.array.shape)  # type: ignore[return-value]

    @property
    def size_ijk(self) -> tuple[int, int, int]:
        """Number of voxels along ``(i, j, k)`` (the array shape reversed)."""
        return self.shape[::-1]  # type: ignore[return-value]

    @property
    def ijk_to_ras(self) -> np.ndarray:
        """4x4 homogeneous matrix from voxel indices ``(i, j, k, 1)`` to RAS mm."""
        m = np.eye(4)
        m[:3, :3] = self.direction * np.asarray(self.spacing)[None, :]
        m[:3, 3] = self.origin
        return m

    @property
    def ras_to_ijk(self) -> np.ndarray:
        """4x4 homogeneous matrix from RAS mm to continuous voxel indices ``(i, j, k)``."""
        return np.linalg.inv(self.ijk_to_ras)

    @property
    def is_right_handed(self) -> bool:
        """True when ``det(direction) > 0`` (Slicer keeps its IJK frames right-handed)."""
        return bool(np.linalg.det(self.direction) > 0)

    @property
    def voxel_volume_mm3(self) -> float:
        """Volume of one voxel in mm3."""
        return float(np.prod(self.spacing))

    def ijk_to_ras_points(self, ijk: np.ndarray) -> np.ndarray:
        """Map an ``(N, 3)`` array of (i, j, k) indices to RAS mm."""
        ijk = np.asarray(ijk, dtype=float).reshape(-1, 3)
        return ijk @ (self.direction * np.asarray(self.spacing)[None, :]).T + np.asarray(self.origin)

    def ras_to_ijk_points(self, ras: np.ndarray) -> np.ndarray:
        """Map an ``(N, 3)`` array of RAS mm to continuous (i, j, k) indices."""
        ras = np.asarray(ras, dtype=float).reshape(-1, 3)
        return ((ras - np.asarray(self.origin)) @ self.direction) / np.asarray(self.spacing)[None, :]

    def bounds_ras(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned RAS box (min, max) enclosing all voxel centres."""
        n = np.asarray(self.size_ijk) - 1
        corners = np.array([[i, j, k] for i in (0, n[0]) for j in (0, n[1]) for k in (0, n[2])], dtype=float)
        ras = self.ijk_to_ras_points(corners)
        return ras.min(axis=0), ras.max(axis=0)

    def same_geometry(self, other: Volume, atol: float = 1e-5) -> bool:
        """True when ``other`` has the same grid (shape, spacing, origin, direction)."""
        return (
            self.shape == other.shape
            and np.allclose(self.spacing, other.spacing, atol=atol)
            and np.allclose(self.origin, other.origin, atol=atol)
            and np.allclose(self.direction, other.direction, atol=atol)
        )

    # ------------------------------------------------------------------------------- derivations
    def with_array(self, array: Any, *, is_label: bool | None = None, name: str | None = None) -> Volume:
        """A new Volume on the same grid holding ``array`` (which must have the same shape)."""
        array = np.asarray(array) if not hasattr(array, "ndim") else array
        if tuple(array.shape) != self.shape:
            raise ValueError(f"New array shape {tuple(array.shape)} does not match the volume's grid {self.shape}.")
        return replace(
            self,
            array=array,
            is_label=self.is_label if is_label is None else is_label,
            name=self.name if name is None else name,
        )

    def copy(self) -> Volume:
        """A deep copy (the array is copied)."""
        return replace(self, array=np.array(self.array, copy=True))

    def to_right_handed(self) -> Volume:
        """The same image on a right-handed IJK frame.

        A left-handed volume is flipped along k: the array is reversed on its first axis, the k
        direction column is negated and the origin moves to the old last slice, so every voxel keeps
        its RAS position (this is what Slicer does when it loads such an image). Right-handed
        volumes are returned unchanged.
        """
        if self.is_right_handed:
            return self
        direction = np.array(self.direction)
        nk = self.shape[0]
        origin = np.asarray(self.origin) + direction[:, 2] * self.spacing[2] * (nk - 1)
        direction[:, 2] *= -1.0
        return replace(self, array=np.ascontiguousarray(self.array[::-1]), origin=tuple(origin), direction=direction)

    def sample_nearest_ras(self, ras: np.ndarray, fill: float = 0) -> np.ndarray:
        """Value of the nearest voxel at each RAS point ``(N, 3)``; ``fill`` outside the grid."""
        ijk = np.rint(self.ras_to_ijk_points(ras)).astype(np.int64)
        size = np.asarray(self.size_ijk)
        inside = np.all((ijk >= 0) & (ijk < size[None, :]), axis=1)
        out = np.full(len(ijk), fill, dtype=self.array.dtype)
        idx = ijk[inside]
        out[inside] = np.asarray(self.array)[idx[:, 2], idx[:, 1], idx[:, 0]]
        return out

    # ------------------------------------------------------------------------------ SimpleITK
    @classmethod
    def from_sitk(cls, image: Any, *, is_label: bool = False, name: str = "") -> Volume:
        """Build a Volume from a 3D scalar ``SimpleITK.Image`` (LPS geometry converted to RAS)."""
        import SimpleITK as sitk

        if image.GetDimension() != 3:
            raise ValueError(f"Expected a 3D image; this one is {image.GetDimension()}D (size {image.GetSize()}).")
        if image.GetNumberOfComponentsPerPixel() != 1:
            raise ValueError(
                f"Expected a scalar image; this one has {image.GetNumberOfComponentsPerPixel()} components per voxel "
                "(RGB or vector). Extract one component first."
            )
        return cls.on_itk_grid(image, sitk.GetArrayFromImage(image), is_label=is_label, name=name)

    @classmethod
    def on_itk_grid(cls, source: Any, array: Any, *, is_label: bool = False, name: str = "") -> Volume:
        """A Volume of ``array`` ([k, j, i]) on the grid of ``source``: a ``SimpleITK.Image`` or an
        ``ImageFileReader`` after ``ReadImageInformation`` (spacing in mm; LPS origin and direction
        converted to RAS)."""
        direction_lps = np.asarray(source.GetDirection(), dtype=float).reshape(3, 3)
        origin_lps = np.asarray(source.GetOrigin(), dtype=float)
        return cls(
            array=array,
            spacing=tuple(source.GetSpacing()),
            origin=tuple(RAS_TO_LPS @ origin_lps),
            direction=RAS_TO_LPS @ direction_lps,
            is_label=is_label,
            name=name,
        )

    def to_sitk(self) -> Any:
        """This volume as a ``SimpleITK.Image`` (LPS geometry; the array is copied)."""
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(np.ascontiguousarray(self.array), isVector=False)
        image.SetSpacing(tuple(float(s) for s in self.spacing))
        image.SetOrigin(tuple(float(o) for o in RAS_TO_LPS @ np.asarray(self.origin)))
        image.SetDirection(tuple(float(d) for d in (RAS_TO_LPS @ self.direction).ravel()))
        return image

    def __repr__(self) -> str:
        kind = "label" if self.is_label else "scalar"
        return (
            f"Volume({self.name!r}, {kind}, shape(k,j,i)={self.shape}, dtype={self.array.dtype}, "
            f"spacing={tuple(round(s, 4) for s in self.spacing)}, origin={tuple(round(o, 3) for o in self.origin)})"
        )


def validate_scalar_volume(volume: Volume, *, what: str = "input volume", allow_nonfinite: bool = False) -> None:
    """Raise ``ValueError`` naming the problem when ``volume`` cannot be filtered.

    Checks: a :class:`Volume`, a real numeric dtype, finite values (unless ``allow_nonfinite``).
    """
    if not isinstance(volume, Volume):
        raise ValueError(f"The {what} must be a lumbarspine Volume; got {type(volume).__name__}.")
    dtype = np.dtype(volume.array.dtype)
    if dtype.kind not in "biuf":
        raise ValueError(f"The {what} must hold real numbers; its voxel type is {dtype}.")
    if not allow_nonfinite and dtype.kind == "f":
        xp = _array_module(volume.array)
        bad = int(xp.count_nonzero(~xp.isfinite(volume.array)))
        if bad:
            raise ValueError(
                f"The {what} contains {bad} NaN or infinite voxel(s). Replace them first "
                "(for example with numpy.nan_to_num) or mask them out."
            )


def validate_label_volume(volume: Volume, *, what: str = "label map") -> None:
    """Raise ``ValueError`` when ``volume`` is not an integer label map with at least one label."""
    if not isinstance(volume, Volume):
        raise ValueError(f"The {what} must be a lumbarspine Volume; got {type(volume).__name__}.")
    dtype = np.dtype(volume.array.dtype)
    if dtype.kind not in "biu":
        raise ValueError(f"The {what} must hold integer labels; its voxel type is {dtype}.")
    if not np.any(volume.array):
        raise ValueError(f"The {what} is empty (all voxels are 0): nothing is labelled.")


_BINCOUNT_MAX = 1 << 16
"""Largest label value (exclusive) counted with ``numpy.bincount``; larger values go through ``numpy.unique``."""


def label_values(array: Any) -> np.ndarray:
    """The distinct values of a label array, sorted (exactly ``numpy.unique(array)``, but faster).

    Label maps are mostly background: the non-zero voxels are found once (``flatnonzero``) and
    their values counted with ``bincount`` (0 is added when any voxel is 0). On a 29 M-voxel
    uint8 / uint16 map with 5 % labelled voxels this takes about 0.07 s instead of 0.25 s.
    Every voxel is looked at (no subsampling). Arrays that are not non-negative integers below
    2**16 (negative values, floats, large ids) fall back to ``numpy.unique`` on the non-zero voxels.

    Args:
        array: any array (a :class:`Volume`'s ``array``, ``[k, j, i]``); not modified.

    Returns:
        1D array of the distinct values, ascending, in ``array``'s dtype (empty for an empty array).
    """
    flat = np.asarray(array).reshape(-1)
    if flat.size == 0:
        return np.unique(flat)
    if flat.dtype.kind not in "biu":
        return np.unique(flat)
    nonzero = flat[np.flatnonzero(flat)]
    if nonzero.size and flat.dtype.kind == "i" and int(nonzero.min()) < 0:
        found = np.unique(nonzero)
    elif nonzero.size and int(nonzero.max()) < _BINCOUNT_MAX:
        found = np.flatnonzero(np.bincount(nonzero)).astype(flat.dtype)
    else:
        found = np.unique(nonzero)
    if nonzero.size < flat.size:  # some voxels are 0
        found = np.unique(np.concatenate([found, np.zeros(1, dtype=flat.dtype)]))
    return found


def label_mask(array: Any, values: Any) -> np.ndarray:
    """``numpy.isin(array, values)`` (a boolean array of ``array``'s shape), faster for a few values.

    Up to four values are compared one by one (``array == v``, or-ed): on a 29 M-voxel uint16 map two
    comparisons take about 0.03 s where ``isin`` takes 0.2 s. More values go through ``numpy.isin``.
    """
    array = np.asarray(array)
    wanted = np.unique(np.asarray(values).reshape(-1))
    if wanted.size == 0 or wanted.size > 4 or array.dtype.kind not in "biu" or wanted.dtype.kind not in "biu":
        return np.isin(array, wanted)
    mask = np.zeros(array.shape, dtype=bool)
    info = np.iinfo(array.dtype) if array.dtype.kind in "iu" else None
    for value in wanted.tolist():
        if info is not None and not info.min <= value <= info.max:
            continue  # no voxel can hold it
        mask |= array == value
    return mask


def _array_module(array: Any) -> Any:
    if type(array).__module__.startswith("cupy"):
        import cupy

        return cupy
    return np
