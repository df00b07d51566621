"""Build a phantom (image + labels + truth) on a grid, and write it to disk."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..volume import Volume
from .anatomy import Centreline, build_layout
from .appearance import render_ct, render_t2
from .grid import direction_matrix, grid_geometry, phantom_extent_points
from .rasterize import rasterize
from .spec import MAX_VOXELS, PhantomSpec
from .truth import build_truth

__all__ = ["Phantom", "generate_phantom", "save_phantom", "write_phantom"]


@dataclass(frozen=True)
class Phantom:
    """A generated phantom.

    Attributes:
        spec: the :class:`PhantomSpec` it was built from.
        image: CT in HU (int16) or T2 (float32), on the spec's grid.
        labels: label map (uint8, ``is_label=True``) on the same grid, TotalSpineSeg values.
        truth: the analytic ground truth (JSON-ready dict; see :mod:`lumbarspine.phantom`).
    """

    spec: PhantomSpec
    image: Volume
    labels: Volume
    truth: dict[str, Any]


def generate_phantom(spec: PhantomSpec | None = None) -> Phantom:
    """Generate the phantom described by ``spec`` (default: ``PhantomSpec()``, CT 1 mm axial)."""
    spec = PhantomSpec() if spec is None else spec
    if not isinstance(spec, PhantomSpec):
        raise ValueError(f"generate_phantom expects a PhantomSpec; got {type(spec).__name__}.")
    centreline = Centreline()
    layout = build_layout()
    direction = direction_matrix(spec.orientation)
    origin, size = grid_geometry(
        phantom_extent_points(centreline, layout, lattice=True),
        direction,
        spec.spacing,
        spec.margin_mm,
        cover_ras=phantom_extent_points(centreline, layout),
    )
    n_vox = int(np.prod(size))
    if n_vox > MAX_VOXELS:
        raise ValueError(
            f"The grid for spacing {spec.spacing} mm would have {n_vox:,} voxels (limit {MAX_VOXELS:,}); "
            "use a coarser spacing."
        )
    ni, nj, nk = size
    step = direction * np.asarray(spec.spacing)[None, :]  # columns: RAS mm per i, j, k step
    i = np.arange(ni, dtype=np.float32)
    j = np.arange(nj, dtype=np.float32)
    k = np.arange(nk, dtype=np.float32)
    xyz = []
    for row in range(3):
        c = (
            np.float32(origin[row])
            + (np.float32(step[row, 2]) * k)[:, None, None]
            + (np.float32(step[row, 1]) * j)[None, :, None]
            + (np.float32(step[row, 0]) * i)[None, None, :]
        )
        xyz.append(c.astype(np.float32, copy=False))
    s, u, w = centreline.xyz_to_suw(*(c.ravel() for c in xyz))
    labels_flat, tissue_flat = rasterize(s, u, w, layout, dict(spec.stenosis), spec.osteophytes)
    del s, u, w
    shape = (nk, nj, ni)
    labels = labels_flat.reshape(shape)
    tissue = tissue_flat.reshape(shape)

    rng = np.random.default_rng(spec.seed)
    if spec.modality == "ct":
        image = render_ct(tissue, spec.spacing, rng, spec.noise)
    else:
        image = render_t2(tissue, spec.spacing, (xyz[0], xyz[1], xyz[2]), rng, spec.noise, spec.confounders)
    del xyz

    geometry_kwargs = dict(spacing=spec.spacing, origin=origin, direction=direction)
    image_vol = Volume(array=image, is_label=False, name=f"phantom_{spec.modality}", **geometry_kwargs)
    label_vol = Volume(array=labels, is_label=True, name="phantom_labels", **geometry_kwargs)
    geometry = {
        "origin_ras": [float(o) for o in origin],
        "spacing_ijk": [float(sp) for sp in spec.spacing],
        "direction": [[float(x) for x in row] for row in direction],
        "size_ijk": [int(n) for n in size],
        "right_handed": bool(np.linalg.det(direction) > 0),
    }
    present = [int(v) for v in np.unique(labels) if v != 0]
    truth = build_truth(spec.to_dict(), layout, centreline, dict(spec.stenosis), geometry, present)
    return Phantom(spec=spec, image=image_vol, labels=label_vol, truth=truth)


def save_phantom(
    phantom: Phantom, out_dir: str | os.PathLike[str], prefix: str = "", *, sac_fraction: bool = False
) -> dict[str, str]:
    """Write ``<prefix>image.nii.gz``, ``<prefix>labels.nii.gz`` and ``<prefix>truth.json`` into ``out_dir``.

    ``out_dir`` is created when missing. Returns ``{"image": path, "labels": path, "truth": path}``.
    ``sac_fraction=True`` also writes ``<prefix>sac_fraction.nii.gz``, the dural sac's partial-volume
    map (:func:`lumbarspine.phantom.partial_volume.sac_fraction`; key ``"sac_fraction"``).
    """
    from ..io import write_volume
    from ..safe_write import write_json

    out = os.fspath(out_dir)
    paths = {
        "image": os.path.join(out, f"{prefix}image.nii.gz"),
        "labels": os.path.join(out, f"{prefix}labels.nii.gz"),
        "truth": os.path.join(out, f"{prefix}truth.json"),
    }
    write_volume(phantom.image, paths["image"])
    write_volume(phantom.labels, paths["labels"])
    write_json(paths["truth"], phantom.truth)
    if sac_fraction:
        from .partial_volume import sac_fraction as fraction_of

        paths["sac_fraction"] = os.path.join(out, f"{prefix}sac_fraction.nii.gz")
        write_volume(fraction_of(phantom), paths["sac_fraction"])
    return paths


def write_phantom(
    out_dir: str | os.PathLike[str], spec: PhantomSpec | None = None, *, sac_fraction: bool = False
) -> dict[str, str]:
    """Generate a phantom and write ``image.nii.gz``, ``labels.nii.gz`` and ``truth.json`` into ``out_dir``.

    ``out_dir`` is created when missing. Returns ``{"image": path, "labels": path, "truth": path}``
    (and ``"sac_fraction"`` with ``sac_fraction=True``, see :func:`save_phantom`).
    """
    return save_phantom(generate_phantom(spec), out_dir, sac_fraction=sac_fraction)
