"""Connected-component helpers shared by the T2 and CT segmentation steps."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .arrays import numpy_ops

if TYPE_CHECKING:
    from .arrays import ArrayOps


def largest_component(
    mask: np.ndarray, structure: np.ndarray | None = None, *, ops: ArrayOps | None = None
) -> np.ndarray:
    """The largest connected component of the boolean ``mask`` (``structure`` as in ``ndimage.label``;
    default face connectivity). An empty mask gives an all-False array; ties go to the lowest label
    (first in raster order). The labelling runs on ``ops``' backend (:mod:`.arrays`; NumPy by default),
    the sizes on the host."""
    lab, n = (ops or numpy_ops()).label(mask, structure=structure)
    if n == 0:
        return np.zeros(np.shape(mask), dtype=bool)
    if n == 1:
        return lab == 1
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == int(np.argmax(sizes))
