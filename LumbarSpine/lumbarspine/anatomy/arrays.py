"""The anatomy steps' array operations on the project's one backend switch (:mod:`lumbarspine.backend`).

The T2 and CT segmenters take ``backend`` in the project's vocabulary, :data:`~lumbarspine.backend.BACKEND_CHOICES`
(``"auto"``, ``"cupy"``, ``"numpy"``), or a :class:`~lumbarspine.backend.Backend`; :func:`resolve_backend`
turns it into a :class:`Backend` once per segmentation. The legacy names ``"cpu"`` and ``"gpu"`` that
``segment_ct`` used to take are still accepted and mapped (:data:`LEGACY_BACKEND_ALIASES`).

:class:`ArrayOps` dispatches the image operations the anatomy steps use (connected components, binary
morphology, hole filling, Euclidean distance maps with anisotropic sampling, Gaussian / rank / mean
filters, zoom and ``map_coordinates`` resampling) to ``scipy.ndimage`` on the NumPy backend and to
``cupyx.scipy.ndimage`` on the CuPy backend, with the same arguments. Transfers: an operation returns
its result where its input was. A NumPy array given to a CuPy :class:`ArrayOps` is uploaded once and
the result downloaded once; a device array (from :meth:`ArrayOps.asarray`) stays on the device, so a
chain of operations moves the array up once and back once (:meth:`ArrayOps.to_host`). On the NumPy
backend every operation is the ``scipy.ndimage`` call itself, so CPU results are bit-identical to
calling SciPy directly.

Status on the GPU: the CuPy path is covered by parity tests (``Testing/Python/test_anatomy_arrays_gpu.py``,
run by ``scripts/gpu_checks.sh``) but has **not been run on a GPU** when this was written, and nothing
is claimed about its speed: on the 1-2 mm working grids of the segmenters (a few million voxels) and
with the per-slice loops around these calls, transfers may well cost more than the GPU saves. The
steps with no ``cupyx`` twin stay on the CPU on every backend: SimpleITK's oriented resampling onto
the working grid (:mod:`.ct_grid`, :mod:`.t2_grid`), scikit-image's watershed and thresholds,
``ndimage.find_objects`` and the structuring-element helpers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Union

import numpy as np

from ..backend import BACKEND_CHOICES, BACKEND_ENV_VAR, Backend, select_backend

__all__ = [
    "LEGACY_BACKEND_ALIASES",
    "BackendSpec",
    "backend_name",
    "resolve_backend",
    "ArrayOps",
    "array_ops",
    "numpy_ops",
]

LEGACY_BACKEND_ALIASES = {"cpu": "numpy", "gpu": "cupy"}
"""Names ``segment_ct`` accepted before the project's one vocabulary; mapped onto it."""

BackendSpec = Union[str, Backend, None]


def _valid_names() -> str:
    legacy = ", ".join(f"{old!r} = {new!r}" for old, new in LEGACY_BACKEND_ALIASES.items())
    return f"{', '.join(repr(n) for n in BACKEND_CHOICES)} (legacy names {legacy})"


def backend_name(backend: BackendSpec) -> str:
    """The canonical name (one of :data:`~lumbarspine.backend.BACKEND_CHOICES`) of ``backend``, checked.

    ``None`` reads the ``LUMBARSPINE_BACKEND`` environment variable (default ``"auto"``); the legacy
    ``"cpu"`` / ``"gpu"`` map to ``"numpy"`` / ``"cupy"``; a :class:`Backend` gives its own name.
    Nothing is probed (no CUDA call).

    Raises:
        ValueError: an unknown name or type; the message lists the valid names.
    """
    if isinstance(backend, Backend):
        return backend.name
    if backend is not None and not isinstance(backend, str):
        raise ValueError(f"backend must be a name or a Backend; got {type(backend).__name__}. Use {_valid_names()}.")
    requested = (backend or os.environ.get(BACKEND_ENV_VAR) or "auto").strip().lower()
    requested = LEGACY_BACKEND_ALIASES.get(requested, requested)
    if requested not in BACKEND_CHOICES:
        raise ValueError(
            f"Unknown backend {backend!r}: use one of {_valid_names()} "
            f"(argument, --backend or the {BACKEND_ENV_VAR} environment variable)."
        )
    return requested


def resolve_backend(backend: BackendSpec) -> Backend:
    """``"auto"`` / ``"cupy"`` / ``"numpy"`` (or legacy ``"cpu"`` / ``"gpu"``), ``None`` or a :class:`Backend`.

    ``None`` reads the ``LUMBARSPINE_BACKEND`` environment variable (default ``"auto"``), as
    :func:`~lumbarspine.backend.select_backend` does; ``"auto"`` probes CuPy once.

    Raises:
        ValueError: an unknown name or type; the message lists the valid names.
        BackendUnavailableError: ``"cupy"`` was asked for and no CUDA device works.
    """
    if isinstance(backend, Backend):
        return backend
    return select_backend(backend_name(backend))


class ArrayOps:
    """``scipy.ndimage`` / ``cupyx.scipy.ndimage`` operations on one :class:`Backend`.

    Each method takes the ``scipy.ndimage`` arguments; array arguments (structures, masks, footprints,
    coordinates) are moved to the backend with the input. The result is on the host when the input
    was a NumPy array and stays on the device when it was a device array. Untested on a GPU (see
    the module docstring).
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    # ------------------------------------------------------------------ placement
    @property
    def is_gpu(self) -> bool:
        return self.backend.is_gpu

    @property
    def xp(self) -> Any:
        return self.backend.xp

    def asarray(self, array: Any) -> Any:
        """``array`` on the backend (one upload for CuPy; no copy when already there)."""
        return self.backend.asarray(array)

    def to_host(self, array: Any) -> np.ndarray:
        """``array`` as a NumPy array (one download for a device array)."""
        return np.asarray(self.backend.to_host(array))

    def _on_device(self, array: Any) -> bool:
        return self.is_gpu and not isinstance(array, np.ndarray) and not np.isscalar(array)

    def _call(self, name: str, array: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Run ``ndimage.<name>`` on the backend; bring the result back when ``array`` came from the host."""
        if not self.is_gpu:
            return getattr(self.backend.ndimage, name)(array, *args, **kwargs)
        back = not self._on_device(array)
        moved = {k: (self.asarray(v) if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
        out = getattr(self.backend.ndimage, name)(self.asarray(array), *args, **moved)
        if not back:
            return out
        if isinstance(out, tuple):
            return tuple(self._host_item(o) for o in out)
        return self.to_host(out)

    def _host_item(self, item: Any) -> Any:
        if isinstance(item, (int, float, np.integer, np.floating)):
            return item
        return self.to_host(item)

    # ------------------------------------------------------------------ connected components
    def label(self, mask: Any, /, structure: np.ndarray | None = None) -> tuple[Any, int]:
        """Connected components (``ndimage.label``): ``(labels int32, count)``; face connectivity by default."""
        labels, count = self._call("label", mask, structure=structure)
        return labels, int(count)

    # ------------------------------------------------------------------ binary morphology
    def binary_erosion(self, mask: Any, /, **kwargs: Any) -> Any:
        """``ndimage.binary_erosion`` (``structure``, ``iterations``, ``mask``, ``border_value``, ...)."""
        return self._call("binary_erosion", mask, **kwargs)

    def binary_dilation(self, mask: Any, /, **kwargs: Any) -> Any:
        """``ndimage.binary_dilation`` (``structure``, ``iterations``, ``mask``, ``border_value``, ...)."""
        return self._call("binary_dilation", mask, **kwargs)

    def binary_opening(self, mask: Any, /, **kwargs: Any) -> Any:
        """``ndimage.binary_opening`` (``structure``, ``iterations``, ...)."""
        return self._call("binary_opening", mask, **kwargs)

    def binary_closing(self, mask: Any, /, **kwargs: Any) -> Any:
        """``ndimage.binary_closing`` (``structure``, ``iterations``, ``border_value``, ...)."""
        return self._call("binary_closing", mask, **kwargs)

    def binary_fill_holes(self, mask: Any, /, **kwargs: Any) -> Any:
        """``ndimage.binary_fill_holes`` (holes: background not connected to the array border)."""
        return self._call("binary_fill_holes", mask, **kwargs)

    def grey_closing(self, array: Any, /, **kwargs: Any) -> Any:
        """``ndimage.grey_closing`` (``size`` or ``footprint``)."""
        return self._call("grey_closing", array, **kwargs)

    # ------------------------------------------------------------------ distance maps
    def distance_transform_edt(
        self, mask: Any, /, sampling: float | Sequence[float] | None = None, **kwargs: Any
    ) -> Any:
        """Euclidean distance (in the units of ``sampling``, mm per axis in array order) to the nearest zero."""
        return self._call("distance_transform_edt", mask, sampling=sampling, **kwargs)

    # ------------------------------------------------------------------ filters
    def gaussian_filter(self, array: Any, /, sigma: float | Sequence[float], **kwargs: Any) -> Any:
        """``ndimage.gaussian_filter`` (``sigma`` in voxels per axis)."""
        return self._call("gaussian_filter", array, sigma, **kwargs)

    def uniform_filter(self, array: Any, /, size: int | Sequence[int], **kwargs: Any) -> Any:
        """``ndimage.uniform_filter`` (box mean, ``size`` in voxels)."""
        return self._call("uniform_filter", array, size, **kwargs)

    def uniform_filter1d(self, array: Any, /, size: int, **kwargs: Any) -> Any:
        """``ndimage.uniform_filter1d`` (box mean of ``size`` voxels along ``axis``)."""
        return self._call("uniform_filter1d", array, size, **kwargs)

    def maximum_filter(self, array: Any, /, **kwargs: Any) -> Any:
        """``ndimage.maximum_filter`` (``size`` or ``footprint``)."""
        return self._call("maximum_filter", array, **kwargs)

    def median_filter(self, array: Any, /, **kwargs: Any) -> Any:
        """``ndimage.median_filter`` (``size`` or ``footprint``)."""
        return self._call("median_filter", array, **kwargs)

    # ------------------------------------------------------------------ resampling
    def zoom(self, array: Any, /, zoom: float | Sequence[float], **kwargs: Any) -> Any:
        """``ndimage.zoom`` (``order``, ``mode``, ``grid_mode``, ...)."""
        return self._call("zoom", array, zoom, **kwargs)

    def map_coordinates(self, array: Any, /, coordinates: Any, **kwargs: Any) -> Any:
        """``ndimage.map_coordinates``: ``array`` sampled at ``coordinates`` (index space, one row per axis)."""
        return self._call("map_coordinates", array, coordinates=coordinates, **kwargs)


_NUMPY_OPS: list[ArrayOps] = []


def numpy_ops() -> ArrayOps:
    """The (shared, stateless) NumPy/SciPy :class:`ArrayOps`: the default of every anatomy step."""
    if not _NUMPY_OPS:
        _NUMPY_OPS.append(ArrayOps(select_backend("numpy")))
    return _NUMPY_OPS[0]


def array_ops(backend: BackendSpec | ArrayOps = "numpy") -> ArrayOps:
    """An :class:`ArrayOps` for ``backend`` (an :class:`ArrayOps` is returned as is)."""
    if isinstance(backend, ArrayOps):
        return backend
    name = backend_name(backend)
    if name == "numpy" and not isinstance(backend, Backend):
        return numpy_ops()
    return ArrayOps(resolve_backend(backend))
