"""Volume filters for LumbarSpine: one function per filter, the same on the CPU and on the GPU.

Every filter takes a :class:`~lumbarspine.volume.Volume` and returns a new one (geometry preserved
exactly, except ``resample``; the input is never modified). The array work runs on the selected
:class:`~lumbarspine.backend.Backend`: NumPy/SciPy (or SimpleITK where it is the fastest CPU code) on
the CPU, CuPy / cupyx.scipy.ndimage and our own CuPy kernels on the GPU. Intensity outputs are
float32; masks are uint8 and component labels int32 (``is_label=True``).

Entry points:

* :data:`FILTERS` -- ``name -> FilterInfo`` (function, parameters with defaults / units / ranges /
  help, how the GPU and CPU paths are implemented, tolerances). UIs and the CLI build from it.
* :func:`apply_filter` -- run one filter by name -> :class:`FilterResult`.
* :data:`PRESETS` / :func:`apply_preset` -- a chain as one device pipeline (one upload, one download).
* the per-filter functions (``gaussian(volume, sigma=1.0, backend=...)`` etc.) returning a Volume.

Bad input raises ``ValueError`` naming the problem; ``cancel()`` returning True raises
:class:`FilterCancelled`; GPU out-of-memory reruns the whole call on the CPU with one warning
(``lumbarspine.backend.run_with_cpu_fallback``); chains of local filters that do not fit in free GPU
memory run in overlapping slabs instead, with the whole-volume result (:mod:`lumbarspine.filters.slabs`).
"""

from __future__ import annotations

from ._core import FilterCancelled
from .registry import FILTERS, PRESETS, FilterInfo, FilterResult, ParamInfo, Preset, apply_filter, apply_preset

__all__ = [
    "FILTERS",
    "PRESETS",
    "FilterCancelled",
    "FilterInfo",
    "FilterResult",
    "ParamInfo",
    "Preset",
    "apply_filter",
    "apply_preset",
]

for _name, _info in FILTERS.items():
    globals()[_name] = _info.function
    __all__.append(_name)
del _name, _info
