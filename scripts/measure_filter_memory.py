"""Measure each filter's peak NumPy working memory per voxel (tracemalloc) on the CPU twins.

The numbers back the estimates in ``lumbarspine.filters.registry._BYTES_PER_VOXEL`` that the filters
check against the available memory before they start. tracemalloc sees NumPy's allocations only, not
SimpleITK's own buffers (median, bilateral, n4), which the estimates add by hand.

Usage: python scripts/measure_filter_memory.py [--shape 48 96 96] > scripts/benchmarks/filter_memory.txt
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import tracemalloc

import numpy as np

from lumbarspine.filters import FILTERS, apply_filter
from lumbarspine.filters.registry import _BYTES_PER_VOXEL
from lumbarspine.volume import Volume

MASK_FILTERS = ("binary_morphology", "fill_holes", "connected_components", "distance_map")
PARAMS = {"binary_morphology": {"radius": 5.0, "operation": "close"}, "threshold": {"lower": 100.0}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", type=int, nargs=3, default=(48, 96, 96), help="k j i")
    args = parser.parse_args()
    os.environ.setdefault("LUMBARSPINE_THREADS", "1")
    shape = tuple(args.shape)
    n = float(np.prod(shape))
    rng = np.random.default_rng(0)
    image = Volume(rng.normal(100, 20, shape).astype(np.float32))
    mask = Volume((np.asarray(image.array) > 100).astype(np.uint8), is_label=True)
    print(f"# {platform.node()} {platform.machine()} {platform.python_version()}, {datetime.date.today()}")
    print(f"# shape {shape} (k j i), float32 image / uint8 mask, CPU twins, LUMBARSPINE_THREADS=1")
    print(f"{'filter':22s} {'measured B/voxel':>17s} {'estimate':>9s}")
    for name in FILTERS:
        volume = mask if name in MASK_FILTERS else image
        tracemalloc.start()
        apply_filter(volume, name, backend="numpy", **PARAMS.get(name, {}))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        estimate = _BYTES_PER_VOXEL.get(name, "resample: 16 in + 24 out")
        print(f"{name:22s} {peak / n:17.1f} {estimate!s:>9s}")


if __name__ == "__main__":
    main()
