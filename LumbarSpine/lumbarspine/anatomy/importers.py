"""Import a lab's spine segmentation (any convention of :mod:`.conventions`) as a :class:`SpineAnatomy`.

:func:`load_segmentation` reads a label map file (NIfTI, NRRD, MetaImage) or a Slicer ``.seg.nrrd``,
or takes a :class:`~lumbarspine.volume.Volume`, re-encodes it in the project's convention and ends in
:func:`~lumbarspine.anatomy.build.anatomy_from_labels`.

Rules:

* ``convention="auto"`` picks a convention only when the label set allows exactly one reading: every
  convention whose value set holds all the values present is a candidate; when the candidates
  disagree on what a value means, a reading that puts the vertebrae in an impossible order (upside
  down by the RAS S of their centroids, or with more than one vertebra missing between two it reads,
  e.g. C1 next to the sacrum) is ruled out, with a warning naming the conventions ruled out. When
  more than one reading is left, the import stops with a ``ValueError`` that lists them and says to
  choose one with ``--convention NAME`` (``convention=`` in Python).
* Label maps stored as floating point are read as labels when every value is a whole number (VerSe
  stores its masks so); fractional, NaN or infinite values are an error (a probability map or an
  image, not labels).
* Unknown, empty and non-3D maps are errors. A map whose grid differs from ``reference`` (the image)
  is an error, with one exception: when both grids overlap in space, the labels are resampled
  onto the image grid by nearest neighbour (each image voxel takes the label at its centre) and a
  warning in the anatomy says so. Grids that do not overlap are an error (a label map of another scan).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..labels import EPIDURAL_FAT, SPINAL_CANAL, SPINAL_CORD
from ..volume import RAS_TO_LPS, Volume, label_values
from .build import anatomy_from_labels
from .conventions import (
    CONVENTION_NAMES,
    CONVENTIONS,
    SEG_NRRD,
    SPINEPS_SUBREGION_CODES,
    detect_conventions,
    project_id,
    structure_from_segment_name,
)
from .model import SpineAnatomy

__all__ = ["load_segmentation", "read_label_map", "encode_in_convention", "NUMBERING_IMPORTED"]

NUMBERING_IMPORTED = "imported"
_HOW = "Choose one with --convention NAME (Python: convention='NAME')"


def _as_label_array(array: Any, what: str) -> np.ndarray:
    """Integer copy of a label array; whole-number floats accepted, anything else a clear error."""
    array = np.asarray(array)
    if array.ndim != 3:
        raise ValueError(f"The {what} must be a 3D label map; it has {array.ndim} dimensions (shape {array.shape}).")
    kind = np.dtype(array.dtype).kind
    if kind == "b":
        return array.astype(np.uint8)
    if kind in "iu":
        if array.size and int(array.min()) < 0:
            raise ValueError(f"The {what} holds negative values (min {int(array.min())}): labels are 0 or positive.")
        return array
    if kind != "f":
        raise ValueError(f"The {what} holds {array.dtype} values; a label map holds whole numbers.")
    finite = np.isfinite(array)
    if not finite.all():
        raise ValueError(f"The {what} contains {int((~finite).sum())} NaN or infinite voxels: it is not a label map.")
    if not np.array_equal(array, np.round(array)):
        fractional = np.unique(array[array != np.round(array)])[:5]
        raise ValueError(
            f"The {what} holds non-whole values (e.g. {', '.join(f'{v:g}' for v in fractional)}): it looks like a "
            "probability map or an image, not labels. Threshold or argmax it into integer labels first."
        )
    if array.size and float(array.min()) < 0:
        raise ValueError(f"The {what} holds negative values (min {float(array.min()):g}): labels are 0 or positive.")
    if array.size and float(array.max()) > np.iinfo(np.int32).max:
        raise ValueError(f"The {what} holds values too large to be labels (max {float(array.max()):g}).")
    return array.astype(np.int32)


def read_label_map(path: str | os.PathLike[str]) -> Volume:
    """Read a label map file (NIfTI/NRRD/MHA) as an integer :class:`Volume` (whole-number floats accepted)."""
    from ..io import read_volume

    volume = read_volume(path, is_label=True)
    return volume.with_array(_as_label_array(volume.array, f"label map {Path(path).name}"), is_label=True)


def _read_seg_nrrd(path: Path) -> tuple[Volume, dict[int, str], list[str], str | None]:
    """A Slicer ``.seg.nrrd`` as an integer map (one value per recognised segment, project ids) + names + skipped."""
    import slicerio

    try:
        segmentation = slicerio.read_segmentation(str(path))
    except Exception as exc:  # noqa: BLE001 - slicerio raises plain exceptions of several kinds
        raise ValueError(f"Could not read the Slicer segmentation {path}: {exc}") from exc
    matrix = np.asarray(segmentation["ijkToLPS"], dtype=float)
    spacing = np.linalg.norm(matrix[:3, :3], axis=0)
    if np.any(spacing <= 0):
        raise ValueError(f"The Slicer segmentation {path} has a degenerate grid (spacing {spacing}).")
    direction = RAS_TO_LPS @ (matrix[:3, :3] / spacing[None, :])
    origin = RAS_TO_LPS @ matrix[:3, 3]
    segments = segmentation.get("segments") or []
    if not segments:
        raise ValueError(f"The Slicer segmentation {path} has no segments: nothing to import.")
    shape_ijk = np.asarray(segmentation["voxels"]).shape[-3:]
    out = np.zeros(shape_ijk[::-1], dtype=np.int32)  # [k, j, i]
    names: dict[int, str] = {}
    skipped: list[str] = []
    wanted: list[tuple[int, int, dict]] = []
    for index, segment in enumerate(segments):
        name = str(segment.get("name", segment.get("id", "")))
        structure = structure_from_segment_name(name, segment.get("terminology"))
        target = project_id(structure) if structure else None
        if target is None:
            skipped.append(name)
        else:
            wanted.append((index, target, segment))
    # Overlapping segments (Slicer keeps them in layers): containers first, what they contain on top
    # (epidural fat, then the dural sac / canal, then the cord), bones and discs last.
    priority = {EPIDURAL_FAT: 0, SPINAL_CANAL: 1, SPINAL_CORD: 2}
    overlaps: set[str] = set()
    for _, target, segment in sorted(wanted, key=lambda item: (priority.get(item[1], 3), item[0])):
        mask = np.asarray(slicerio.segment_mask(segmentation, segment)).transpose(2, 1, 0)
        taken = out[mask]
        if np.any((taken != 0) & (taken != target)):
            overlaps.add(str(segment.get("name")))
        out[mask] = target
        names[target] = str(segment.get("name", ""))
    overlap_note = None
    if overlaps:
        overlap_note = (
            f"Overlapping segments ({', '.join(sorted(overlaps))}) were drawn over the segments they lie in "
            "(order: epidural fat, dural sac / canal, spinal cord, then bones and discs)."
        )
    if not names:
        raise ValueError(
            f"No segment of {path.name} names a spine structure ({', '.join(skipped[:8])}): name them L1..L5, S1, "
            "L1-L2..L5-S1, 'dural sac', 'spinal cord' (or vertebrae_L4, disc_L4_L5 ...) and import again."
        )
    volume = Volume(out, spacing=tuple(spacing), origin=tuple(origin), direction=direction, is_label=True)
    return volume, names, skipped, overlap_note


def encode_in_convention(labels: Volume, convention: str) -> Volume:
    """Re-encode a project-convention label map in another label convention (used to test the importers).

    Structures the convention has no class for become 0. Raises ``ValueError`` for ``seg.nrrd`` or an unknown name.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"Unknown label convention {convention!r}: choose one of {', '.join(CONVENTIONS)}.")
    spec = CONVENTIONS[convention]
    # Every source value read without transitional vertebrae (they change SPINEPS's disc names); the lowest
    # source value of a structure is used (sacrum 25 not 26, a vertebra not its endplate or partial copy).
    mapping, _ = spec.mapping(spec.values - {25, 28, 125, 128, 225, 228} if convention == "spineps" else spec.values)
    reverse: dict[int, int] = {}
    for value in sorted(mapping):
        reverse.setdefault(mapping[value], value)
    array = np.asarray(labels.array)
    out = np.zeros(array.shape, dtype=np.uint16)
    for target, value in reverse.items():
        out[array == target] = value
    return labels.with_array(out, is_label=True)


def _resolve_grid(labels: Volume, reference: Volume | None, notes: list[str]) -> Volume:
    if reference is None or labels.same_geometry(reference, atol=1e-3):
        if reference is not None and labels.shape != reference.shape:  # pragma: no cover - same_geometry checks it
            raise ValueError("The label map's grid does not match the image.")
        return labels if reference is None else reference.with_array(labels.array, is_label=True)
    if labels.to_right_handed().same_geometry(reference.to_right_handed(), atol=1e-3):
        # the same voxels on a grid stored the other way along k (Slicer keeps grids right-handed): no resampling
        array = np.asarray(labels.to_right_handed().array)
        return reference.with_array(array if reference.is_right_handed else array[::-1].copy(), is_label=True)
    lo_l, hi_l = labels.bounds_ras()
    lo_r, hi_r = reference.bounds_ras()
    overlap = np.minimum(hi_l, hi_r) - np.maximum(lo_l, lo_r)
    detail = (
        f"label map {labels.shape[::-1]} voxels (i, j, k), spacing {tuple(round(s, 3) for s in labels.spacing)} mm, "
        f"origin {tuple(round(o, 1) for o in labels.origin)}; image {reference.shape[::-1]} voxels, spacing "
        f"{tuple(round(s, 3) for s in reference.spacing)} mm, origin {tuple(round(o, 1) for o in reference.origin)}"
    )
    if np.any(overlap <= 0):
        raise ValueError(
            f"The label map's grid does not match the image and the two do not overlap in space ({detail}): it "
            "belongs to another scan. Give the segmentation made on this image."
        )
    ijk = np.indices(reference.shape[::-1], dtype=float).reshape(3, -1).T  # (i, j, k) of every image voxel
    ras = reference.ijk_to_ras_points(ijk)
    values = labels.sample_nearest_ras(ras, fill=0)
    array = values.reshape(reference.shape[::-1]).transpose(2, 1, 0)
    if not np.any(array):
        raise ValueError(f"The label map's grid does not match the image and no label falls inside it ({detail}).")
    notes.append(
        "The label map's grid differed from the image's; its labels were resampled onto the image grid by nearest "
        f"neighbour ({detail}). Check the outlines on the image."
    )
    return reference.with_array(np.ascontiguousarray(array), is_label=True)


def load_segmentation(
    path_or_volume: str | os.PathLike[str] | Volume,
    *,
    convention: str = "auto",
    reference: Volume | None = None,
    modality: str = "unknown",
    subregions: str | os.PathLike[str] | Volume | None = None,
) -> SpineAnatomy:
    """Read a lab's spine segmentation and return its :class:`SpineAnatomy` in the project's convention.

    Args:
        path_or_volume: a label map file (``.nii.gz``, ``.nrrd``, ``.mha`` ...), a Slicer ``.seg.nrrd``, or a
            :class:`Volume` (not modified).
        convention: ``"auto"`` or one of :data:`~lumbarspine.anatomy.conventions.CONVENTION_NAMES`.
        reference: the image the segmentation belongs to; the labels end up on its grid (see the module
            docstring for what happens when the grids differ).
        modality: ``"t2"``, ``"ct"`` or ``"unknown"``; with ``"unknown"`` a CT-only convention (VerSe,
            TotalSegmentator ``total``) sets ``"ct"``.
        subregions: the SPINEPS semantic mask (file or Volume, same grid) for ``convention="spineps"``; its
            sub-region codes 41-50 become :attr:`SpineAnatomy.subregions`.

    Raises:
        ValueError: unknown file or convention, ambiguous ``auto``, empty / non-whole / non-3D map, grid mismatch.
    """
    if convention != "auto" and convention not in CONVENTION_NAMES:
        raise ValueError(f"Unknown label convention {convention!r}: use auto or one of {', '.join(CONVENTION_NAMES)}.")
    notes: list[str] = []
    source_name = "volume"
    if isinstance(path_or_volume, Volume):
        raw = path_or_volume.with_array(_as_label_array(path_or_volume.array, "label map"), is_label=True)
        is_seg_nrrd = False
    else:
        path = Path(path_or_volume)
        source_name = path.name
        if not path.is_file():
            raise ValueError(f"No such segmentation file: {path}. Check the path.")
        is_seg_nrrd = path.name.lower().endswith(".seg.nrrd")
        if convention == SEG_NRRD and not is_seg_nrrd:
            raise ValueError(f"--convention seg.nrrd needs a Slicer .seg.nrrd file; got {path.name}.")
        if is_seg_nrrd and convention not in ("auto", SEG_NRRD):
            raise ValueError(
                f"{path.name} is a Slicer segmentation: its segments are read by name (--convention seg.nrrd or auto)."
            )
        raw = None if is_seg_nrrd else read_label_map(path)
    if is_seg_nrrd:
        labels, names, skipped, overlap_note = _read_seg_nrrd(path)
        if overlap_note:
            notes.append(overlap_note)
        chosen = SEG_NRRD
        how = "level names taken from the Slicer segment names"
        if skipped:
            notes.append(
                f"Segments not imported (no spine structure of the project's convention): {', '.join(skipped)}."
            )
        conv_modality = "unknown"
    else:
        assert raw is not None
        # the labelled voxels, found once: their values and, below, their new values (the map is mostly 0)
        flat = np.asarray(raw.array).reshape(-1)
        labelled = np.flatnonzero(flat)
        labelled_values = flat[labelled]
        present = [int(v) for v in label_values(labelled_values)]
        if not present:
            raise ValueError(f"The label map {source_name} is empty (all voxels are 0): nothing is labelled.")
        if convention == SEG_NRRD:
            raise ValueError("--convention seg.nrrd needs a Slicer .seg.nrrd file, not a label map.")
        if convention == "auto":
            chosen = _detect(present, source_name, raw, notes)
        else:
            chosen = convention
            outside = sorted(set(present) - CONVENTIONS[chosen].values)
            if outside:
                shown = ", ".join(str(v) for v in outside[:10])
                others = detect_conventions(present)
                hint = f" It fits: {', '.join(others)}." if others else " No known convention uses all of its values."
                raise ValueError(
                    f"The label map {source_name} holds values that the {chosen} convention does not use ({shown})."
                    + hint
                )
        spec = CONVENTIONS[chosen]
        mapping, skipped = spec.mapping(present)
        if not mapping:
            raise ValueError(
                f"The label map {source_name} holds no spine structure in the {chosen} convention "
                f"(values {', '.join(str(v) for v in present[:10])}): nothing to import."
            )
        if skipped:
            notes.append(_skipped_note(skipped))
        notes.extend(spec.warnings)
        lut = np.zeros(max(present) + 1, dtype=np.int32)
        for value, target in mapping.items():
            lut[value] = target
        # lut[array].astype(uint16), gathered on the labelled voxels only (lut[0] is 0: 0 is not in the mapping)
        mapped = np.zeros(flat.shape, dtype=np.uint16)
        mapped[labelled] = lut.astype(np.uint16)[labelled_values]
        labels = raw.with_array(mapped.reshape(np.asarray(raw.array).shape), is_label=True)
        how = spec.numbering_note
        conv_modality = spec.modality
    labels = _resolve_grid(labels, reference, notes)
    sub = _load_subregions(subregions, chosen, labels)
    if modality == "unknown":
        modality = conv_modality
    numbering = NUMBERING_IMPORTED if _has_named_levels(labels) else None
    anatomy = anatomy_from_labels(
        labels.with_array(np.asarray(labels.array).astype(np.uint16, copy=False), is_label=True),
        modality=modality,
        numbering=numbering,
        source=f"import {chosen} ({source_name}); {how}",
        warnings=notes,
        subregions=sub,
    )
    return anatomy


def _skipped_note(skipped: list[str]) -> str:
    numbers = sorted(int(item.split()[1]) for item in skipped if item.startswith("label "))
    named = sorted({item for item in skipped if not item.startswith("label ")})
    parts = []
    if numbers:
        shown = ", ".join(str(v) for v in numbers[:20]) + (" ..." if len(numbers) > 20 else "")
        parts.append(f"{len(numbers)} label value(s) that are not spine structures ({shown})")
    if named:
        parts.append(f"structures the project has no label for ({', '.join(named)})")
    return "Not imported: " + "; ".join(parts) + "."


def _has_named_levels(labels: Volume) -> bool:
    values = label_values(labels.array)
    return bool(np.any((values > 2) & (values < 300) & (values != 201)))


_ANATOMICAL_ORDER: dict[int, int] = {}


def _vertebra_rank(project_value: int) -> int | None:
    """Position of a vertebra from the top of the spine (C1 = 0 ... L6, then S1); None for other structures."""
    from .numbering import vertebra_name

    if not _ANATOMICAL_ORDER:
        names = [*(f"C{n}" for n in range(1, 8)), *(f"T{n}" for n in range(1, 14)), *(f"L{n}" for n in range(1, 7))]
        names.append("S1")
        by_name = {name: rank for rank, name in enumerate(names)}
        for value in range(1, 300):
            name = vertebra_name(value)
            if name in by_name:
                _ANATOMICAL_ORDER[value] = by_name[name]
    return _ANATOMICAL_ORDER.get(int(project_value))


def _order_is_possible(raw: Volume, mapping: dict[int, int]) -> bool | None:
    """Whether a reading puts the vertebrae in their anatomical cranio-caudal order (RAS S of the centroids)
    without gaps of more than one vertebra (a reading of the same voxels as C1 and the sacrum is not a spine).

    None when fewer than two vertebrae are read (nothing to judge).
    """
    from scipy import ndimage

    ranked = [(rank, value) for value, target in mapping.items() if (rank := _vertebra_rank(target)) is not None]
    if len(ranked) < 2:
        return None
    array = np.asarray(raw.array)
    values = [value for _, value in ranked]
    centres = ndimage.center_of_mass(np.ones(array.shape, np.uint8), array, values)
    heights = raw.ijk_to_ras_points(np.asarray(centres, dtype=float)[:, ::-1])[:, 2]
    height = dict(zip(values, heights))
    ranked.sort()
    ordered = [height[value] for _, value in ranked]
    in_order = all(upper > lower for upper, lower in zip(ordered, ordered[1:]))
    # contiguous: at most one vertebra (or a transitional slot, T13 / L6) missing between two that are read
    ranks = [rank for rank, _ in ranked]
    contiguous = all(lower - upper <= 2 for upper, lower in zip(ranks, ranks[1:]))
    return in_order and contiguous


def _detect(present: list[int], source_name: str, raw: Volume, notes: list[str]) -> str:
    candidates = detect_conventions(present)
    if not candidates:
        shown = ", ".join(str(v) for v in present[:12]) + (" ..." if len(present) > 12 else "")
        raise ValueError(
            f"Unknown label convention: no known convention uses all the values of {source_name} ({shown}). "
            f"Known: {', '.join(CONVENTIONS)}. Convert the map or name its structures in a Slicer .seg.nrrd."
        )
    if len(candidates) == 1:
        return candidates[0]
    readings = {name: CONVENTIONS[name].mapping(present)[0] for name in candidates}
    first = readings[candidates[0]]
    if all(reading == first for reading in readings.values()):
        return candidates[0]  # e.g. VerSe and SPINEPS agree on vertebra-only maps
    # A reading that puts the vertebrae in an impossible order (L2 above L1, C1 next to the sacrum) is not a candidate.
    possible = [name for name in candidates if _order_is_possible(raw, readings[name]) is not False]
    distinct = {tuple(sorted(readings[name].items())) for name in possible}
    if len(distinct) == 1:
        ruled_out = [name for name in candidates if name not in possible]
        notes.append(
            f"Label convention {possible[0]} chosen: its values also fit {', '.join(ruled_out)}, but those read "
            "the vertebrae in an impossible order (upside down, or with whole regions of the spine missing between them)."
        )
        return possible[0]
    shown = ", ".join(str(v) for v in present[:12]) + (" ..." if len(present) > 12 else "")
    remaining = possible or candidates
    raise ValueError(
        f"The label convention of {source_name} is ambiguous: its values ({shown}) fit "
        f"{', '.join(remaining)}, which read them as different structures. {_HOW}, e.g. "
        f"--convention {remaining[0]}."
    )


def _load_subregions(subregions: Any, convention: str, labels: Volume) -> Volume | None:
    if subregions is None:
        return None
    if convention != "spineps":
        raise ValueError(
            f"A sub-region map goes with a SPINEPS instance mask (--convention spineps), not with {convention}."
        )
    volume = subregions if isinstance(subregions, Volume) else read_label_map(subregions)
    array = _as_label_array(volume.array, "sub-region map")
    if not volume.same_geometry(labels, atol=1e-3):
        raise ValueError(
            "The SPINEPS sub-region (semantic) map does not lie on the grid of the instance mask / image: "
            "give the semantic mask SPINEPS wrote beside the instance mask."
        )
    keep = np.isin(array, list(SPINEPS_SUBREGION_CODES))
    if not keep.any():
        raise ValueError("The sub-region map holds none of the SPINEPS sub-region codes 41-50.")
    return labels.with_array(np.where(keep, array, 0).astype(np.uint8), is_label=True)
