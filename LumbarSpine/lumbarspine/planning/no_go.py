"""The no-go zone around the neural elements.

The no-go zone is every voxel within ``margin_mm`` (Euclidean distance in mm, spacing-aware) of
the neural elements of a TotalSpineSeg label map: the spinal cord (1) and the spinal canal /
dural sac (2). A screw trajectory or a burr that enters it is flagged. The default margin of 2 mm
matches the Gertzbein-Robbins grade B limit (a breach < 2 mm outside the pedicle cortex is counted
acceptable; ``shared/docs/clinical-reference.md``), so a plan that stays out of the zone keeps at
least that clearance from the dural sac.
"""

from __future__ import annotations

import numpy as np

from ..labels import SPINAL_CANAL, SPINAL_CORD, check_totalspineseg
from ..volume import Volume, validate_label_volume

__all__ = ["NO_GO_ZONE", "NEURAL_LABELS", "DEFAULT_MARGIN_MM", "no_go_zone", "neural_mask"]

NO_GO_ZONE = 1
"""Label value of the no-go zone in the label map :func:`no_go_zone` returns."""

NEURAL_LABELS: tuple[int, ...] = (SPINAL_CORD, SPINAL_CANAL)
"""TotalSpineSeg labels of the neural elements (cord, canal/dural sac)."""

DEFAULT_MARGIN_MM = 2.0
"""Clearance around the neural elements in mm (Gertzbein-Robbins grade B limit, < 2 mm)."""


def no_go_zone(
    label_volume: Volume,
    margin_mm: float = DEFAULT_MARGIN_MM,
    neural_labels: tuple[int, ...] = NEURAL_LABELS,
) -> Volume:
    """Label map (uint8, value :data:`NO_GO_ZONE`) of the neural elements grown by ``margin_mm``.

    Args:
        label_volume: TotalSpineSeg label map (not modified).
        margin_mm: clearance in mm, 0 to 30; 0 gives the neural elements themselves.
        neural_labels: label values taken as neural elements.

    Raises:
        ValueError: not an integer label map, labels outside TotalSpineSeg, margin out of range, or none of ``neural_labels``
            present (the message lists the labels that are).
    """
    from scipy import ndimage

    validate_label_volume(label_volume)
    margin = float(margin_mm)
    if not np.isfinite(margin) or not 0.0 <= margin <= 30.0:
        raise ValueError(f"The no-go margin must be between 0 and 30 mm; got {margin_mm}.")
    check_totalspineseg(np.unique(label_volume.array))
    neural = np.isin(label_volume.array, np.asarray(neural_labels))
    if not neural.any():
        present = sorted(int(v) for v in np.unique(label_volume.array) if v)
        raise ValueError(
            f"No neural elements (labels {list(neural_labels)}) in the label map; it holds {present}. "
            "Use a TotalSpineSeg label map (1 cord, 2 canal) or convert the labels first."
        )
    zone = neural.copy()
    if margin > 0.0:
        # work in the neural elements' bounding box grown by the margin (+1 voxel), then paste back
        spacing_kji = np.asarray(label_volume.spacing[::-1])
        pad = np.ceil(margin / spacing_kji).astype(int) + 1
        nonzero = np.nonzero(neural)
        lo = np.maximum([int(idx.min()) for idx in nonzero] - pad, 0)
        hi = np.minimum([int(idx.max()) + 1 for idx in nonzero] + pad, neural.shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        # distance (mm) from every voxel to the nearest neural voxel; sampling is the (k, j, i) spacing
        distance = ndimage.distance_transform_edt(~neural[box], sampling=spacing_kji)
        zone[box] = distance <= margin
    return label_volume.with_array(zone.astype(np.uint8) * NO_GO_ZONE, is_label=True, name="no_go_zone")


def neural_mask(labels: Volume, neural_labels: tuple[int, ...] = NEURAL_LABELS) -> np.ndarray:
    """Boolean ``[k, j, i]`` mask of the neural elements (no convention check: unnumbered ids allowed)."""
    return np.isin(np.asarray(labels.array), np.asarray(neural_labels))
