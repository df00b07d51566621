"""Automatic CT segmentation (lumbarspine.anatomy.ct.segment_ct) against the phantom's labels and real CT.

What is reached when these tests were written: on 1.5 mm phantoms (axial with osteophytes and a stenosis,
oblique, oblique left-handed, sagittal) every lumbar vertebra Dice 0.86-0.98 and the sacrum 0.96-0.98;
on 0.8 x 0.8 x 2.5 mm slices 0.83-0.96 (the inferior articular tips sit 4 mm above the lamina below,
less than two slices); canal Dice against the bony canal content (dural sac + epidural fat) 0.82-0.84
(the phantom's canal runs on 12 mm above L1 where no bony ring encloses it). On the real
TotalSegmentator crop (3 mm voxels, osteoporotic marrow near soft-tissue HU) the three vertebrae found
reach Dice 0.81 (T12) / 0.81 (L1) / 0.85 (L2, cut by the field of view) against TotalSegmentator.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from lumbarspine.anatomy.ct import segment_ct
from lumbarspine.anatomy.model import UNNUMBERED_VERTEBRA_BASE
from lumbarspine.io import read_volume
from lumbarspine.phantom import PhantomSpec, generate_phantom
from lumbarspine.progress import OperationCancelled
from lumbarspine.volume import Volume

LUMBAR = ["L1", "L2", "L3", "L4", "L5", "S1"]
DISCS = ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]

# name: (spec kwargs, minimum vertebra Dice)
PHANTOM_CASES = {
    "axial-1.5mm-osteophytes-stenosis": (
        dict(spacing=(1.5, 1.5, 1.5), osteophytes=("L3-L4", "L4-L5"), stenosis={"L4-L5": 60.0}),
        0.85,
    ),
    "oblique-1.5mm": (dict(spacing=(1.5, 1.5, 1.5), orientation="oblique"), 0.85),
    "oblique-lefthanded-1.5mm": (dict(spacing=(1.5, 1.5, 1.5), orientation="oblique-lefthanded"), 0.85),
    # 2.5 mm slices: the inferior articular tips and the lamina below blur together along the slice axis
    "axial-anisotropic-0.8x0.8x2.5": (dict(spacing=(0.8, 0.8, 2.5)), 0.80),
}

_CACHE: dict[str, tuple] = {}


def _segmented(case: str):
    if case not in _CACHE:
        kwargs, _ = PHANTOM_CASES[case]
        phantom = generate_phantom(PhantomSpec(modality="ct", **kwargs))
        _CACHE[case] = (phantom, segment_ct(phantom.image))
    return _CACHE[case]


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2.0 * np.count_nonzero(a & b) / max(1, np.count_nonzero(a) + np.count_nonzero(b)))


@pytest.mark.parametrize("case", list(PHANTOM_CASES))
def test_phantom_vertebrae_named_and_separated(case):
    phantom, anatomy = _segmented(case)
    _, min_dice = PHANTOM_CASES[case]
    assert anatomy.modality == "ct" and anatomy.source == "automatic ct"
    assert anatomy.numbering == "sacrum"
    assert [v.name for v in anatomy.vertebrae] == LUMBAR
    assert [d.name for d in anatomy.discs] == DISCS
    labels, truth = anatomy.labels.array, phantom.labels.array
    assert anatomy.labels.same_geometry(phantom.image)
    for v in anatomy.vertebrae:
        dice = _dice(labels == v.label, truth == v.label)
        assert dice >= min_dice, f"{case} {v.name}: Dice {dice:.3f}"
    # each disc lies at its level: its centroid within 6 mm of the truth disc centre
    for d in anatomy.discs:
        centre = np.array(phantom.truth["levels"][d.name]["disc_center_ras"])
        assert np.linalg.norm(np.array(d.centroid_ras) - centre) < 6.0, d.name


@pytest.mark.parametrize("case", list(PHANTOM_CASES))
def test_phantom_canal_is_one_tube_through_the_levels(case):
    phantom, anatomy = _segmented(case)
    canal = anatomy.labels.array == 2
    truth = np.isin(phantom.labels.array, [2, 201])
    assert _dice(canal, truth) >= 0.78
    _, n = ndimage.label(canal, structure=np.ones((3, 3, 3)))
    assert n == 1
    # the tube passes through the canal at every disc level, and the centreline runs cranial to caudal
    for level in DISCS:
        centre = np.array(phantom.truth["levels"][level]["plane_center_ras"])
        assert anatomy.labels.sample_nearest_ras(centre)[0] == 2, level
    line = anatomy.centreline_ras
    assert line is not None and line[0][2] > line[-1][2]
    dist = [np.min(np.linalg.norm(line - phantom.truth["levels"][lv]["plane_center_ras"], axis=1)) for lv in DISCS]
    assert max(dist) < 3.0


@pytest.mark.parametrize("case", ["oblique-lefthanded-1.5mm", "axial-anisotropic-0.8x0.8x2.5"])
def test_phantom_subregions_body_and_pedicles(case):
    phantom, anatomy = _segmented(case)
    sub = anatomy.subregions
    assert sub is not None and sub.same_geometry(anatomy.labels)
    # every sub-region voxel belongs to a vertebra, and every vertebra voxel has a sub-region
    vertebra = np.isin(anatomy.labels.array, [v.label for v in anatomy.vertebrae])
    np.testing.assert_array_equal(sub.array > 0, vertebra)
    for name in LUMBAR[:-1]:
        truth = phantom.truth["vertebrae"][name]
        assert sub.sample_nearest_ras(np.array(truth["body_center_ras"]))[0] == 50, name
        for side, code in (("left", 51), ("right", 52)):
            centre = np.array(truth["pedicles"][side]["isthmus_center_ras"])
            assert sub.sample_nearest_ras(centre)[0] == code, (name, side)


def test_without_sacrum_nothing_is_numbered():
    phantom = generate_phantom(PhantomSpec(modality="ct", spacing=(1.5, 1.5, 1.5)))
    image = phantom.image
    # cut the field of view above the L5-S1 disc (axial grid: k runs inferior -> superior)
    cut_ras = np.array(phantom.truth["levels"]["L4-L5"]["plane_center_ras"]) - np.array([0.0, 0.0, 30.0])
    k0 = int(np.ceil(image.ras_to_ijk_points(cut_ras)[0][2]))
    cropped = Volume(
        np.ascontiguousarray(image.array[k0:]),
        image.spacing,
        tuple(image.ijk_to_ras_points(np.array([[0.0, 0.0, k0]]))[0]),
        image.direction,
    )
    anatomy = segment_ct(cropped)
    assert anatomy.numbering is None
    assert all(v.label > UNNUMBERED_VERTEBRA_BASE for v in anatomy.vertebrae)
    assert [v.name for v in anatomy.vertebrae][:4] == ["vertebra 1", "vertebra 2", "vertebra 3", "vertebra 4"]
    assert any("sacrum is not in the field of view" in w for w in anatomy.warnings)


def test_input_untouched_progress_and_cancel():
    phantom = generate_phantom(PhantomSpec(modality="ct", spacing=(2.0, 2.0, 2.0)))
    before = phantom.image.array.copy()
    seen: list[float] = []
    anatomy = segment_ct(phantom.image, progress=lambda f, m: seen.append(f))
    np.testing.assert_array_equal(phantom.image.array, before)
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)
    assert anatomy.vertebra("L3") is not None
    with pytest.raises(OperationCancelled):
        segment_ct(phantom.image, cancel=lambda: True)


def test_bad_inputs_say_what_is_wrong():
    phantom = generate_phantom(PhantomSpec(modality="ct", spacing=(2.0, 2.0, 2.0)))
    with pytest.raises(ValueError, match="label map"):
        segment_ct(phantom.labels)
    t2 = generate_phantom(PhantomSpec(modality="t2", spacing=(2.0, 2.0, 2.0)))
    with pytest.raises(ValueError, match="Hounsfield"):
        segment_ct(t2.image)
    water = phantom.image.with_array(np.where(phantom.image.array > 150, 40, phantom.image.array).astype(np.int16))
    with pytest.raises(ValueError, match="bone|canal"):
        segment_ct(water)
    with pytest.raises(ValueError, match="backend"):
        segment_ct(phantom.image, backend="quantum")


def test_real_ct_crop_matches_totalsegmentator(shared_data):
    image = read_volume(shared_data / "totalseg_example_ct_sm.nii.gz")
    reference = read_volume(shared_data / "totalseg_example_ct_sm_seg.nii.gz").array
    anatomy = segment_ct(image)
    # T11 (a 70-voxel sliver), T12, L1, L2 in view, no sacrum: unnumbered, with the warning
    assert anatomy.numbering is None
    assert any("sacrum is not in the field of view" in w for w in anatomy.warnings)
    labels = anatomy.labels.array
    matched = []
    for v in anatomy.vertebrae:
        mask = labels == v.label
        overlaps = {ref: np.count_nonzero(mask & (reference == ref)) for ref in (30, 31, 32, 33)}
        best = max(overlaps, key=overlaps.get)
        matched.append((v.name, best, _dice(mask, reference == best)))
    # T12 (32), L1 (31), L2 (30) found, top to bottom, each once
    assert [m[1] for m in matched] == [32, 31, 30], matched
    for name, ref, dice in matched:
        assert dice >= 0.75, f"{name} vs TotalSegmentator {ref}: Dice {dice:.2f}"
    # the canal holds the spinal cord TotalSegmentator found
    cord = reference == 79
    assert np.count_nonzero(cord & (labels == 2)) / np.count_nonzero(cord) > 0.5


def test_real_ct_full_numbered_from_the_sacrum(shared_data):
    image = read_volume(shared_data / "totalseg_example_ct.nii.gz")
    anatomy = segment_ct(image)
    assert anatomy.numbering == "sacrum"
    names = [v.name for v in anatomy.vertebrae]
    assert names[-6:] == LUMBAR
    assert [d.name for d in anatomy.discs][-5:] == DISCS
    centroids = np.array([v.centroid_ras for v in anatomy.vertebrae])
    assert np.all(np.diff(centroids[:, 2]) < 0)  # cranial to caudal
    canal = anatomy.labels.array == 2
    _, n = ndimage.label(canal, structure=np.ones((3, 3, 3)))
    assert n == 1
    line = anatomy.centreline_ras
    assert line is not None and np.ptp(line[:, 2]) > 150.0  # from T12 into the sacrum
