"""Importing lab segmentations: every convention gives the same anatomy; the real TotalSegmentator output; errors."""

from __future__ import annotations

import numpy as np
import pytest

from lumbarspine.anatomy.conventions import CONVENTIONS, structure_from_segment_name
from lumbarspine.anatomy.importers import encode_in_convention, load_segmentation
from lumbarspine.io import read_volume, write_volume
from lumbarspine.phantom import PhantomSpec, generate_phantom
from lumbarspine.volume import Volume

VERTEBRAE = {41, 42, 43, 44, 45}
DISCS = {92, 93, 94, 95, 100}
# What each convention can express of the phantom (documented in lumbarspine.anatomy.conventions):
EXPRESSIBLE = {
    "totalspineseg": VERTEBRAE | DISCS | {2, 50, 201},
    "spineps": VERTEBRAE | DISCS | {2, 50},  # no epidural fat class
    "verse": VERTEBRAE | {50},  # vertebrae only
    "totalsegmentator": VERTEBRAE | {50},  # no disc and no canal class
    "totalsegmentator_vertebrae_mr": VERTEBRAE | {50},
    "spider": VERTEBRAE | DISCS | {2},  # no sacrum label
    "totalsegmentator_v1": VERTEBRAE | {50},
    "totalspineseg_2024": VERTEBRAE | DISCS | {2, 50},
}
NAMES = {41: "L1", 42: "L2", 43: "L3", 44: "L4", 45: "L5", 50: "S1"}
DISC_NAMES = {92: "L1-L2", 93: "L2-L3", 94: "L3-L4", 95: "L4-L5", 100: "L5-S1"}


@pytest.fixture(scope="module", params=["axial", "oblique-lefthanded"])
def phantom(request):
    return generate_phantom(PhantomSpec(seed=0, modality="ct", spacing=(2.0, 2.0, 2.0), orientation=request.param))


def _check_same_anatomy(anatomy, phantom_labels: Volume, expressible: set[int]) -> None:
    truth = np.asarray(phantom_labels.array)
    got = np.asarray(anatomy.labels.array)
    assert anatomy.labels.same_geometry(phantom_labels)
    assert set(np.unique(got)) - {0} == expressible & (set(np.unique(truth)) - {0})
    for value in expressible:
        np.testing.assert_array_equal(got == value, truth == value, err_msg=f"label {value}")
    assert [v.name for v in anatomy.vertebrae] == [NAMES[v] for v in sorted(expressible & set(NAMES))]
    assert [d.name for d in anatomy.discs] == [DISC_NAMES[v] for v in sorted(expressible & set(DISC_NAMES))]
    heights = [v.centroid_ras[2] for v in anatomy.vertebrae]
    assert heights == sorted(heights, reverse=True)  # cranial to caudal
    assert anatomy.numbering == "imported"


@pytest.mark.parametrize("convention", sorted(CONVENTIONS))
def test_phantom_labels_in_every_convention_give_the_same_anatomy(phantom, convention, tmp_path):
    encoded = encode_in_convention(phantom.labels, convention)
    before = encoded.array.copy()
    # the encoded map really is in that convention: its values are the convention's, and not the project's ids
    values = set(np.unique(encoded.array)) - {0}
    assert values <= CONVENTIONS[convention].values
    anatomy = load_segmentation(encoded, convention=convention, reference=phantom.image)
    np.testing.assert_array_equal(encoded.array, before)  # input not modified
    _check_same_anatomy(anatomy, phantom.labels, EXPRESSIBLE[convention])
    # and through a file
    path = write_volume(encoded, tmp_path / f"{convention}_seg.nii.gz")
    from_file = load_segmentation(path, convention=convention, reference=phantom.image)
    _check_same_anatomy(from_file, phantom.labels, EXPRESSIBLE[convention])


def test_phantom_as_slicer_seg_nrrd_gives_the_same_anatomy(phantom, tmp_path):
    from lumbarspine.anatomy.outputs import write_seg_nrrd

    path = write_seg_nrrd(phantom.labels, tmp_path / "phantom.seg.nrrd")
    anatomy = load_segmentation(path, reference=phantom.image)  # auto: a .seg.nrrd is read by segment name
    assert anatomy.source.startswith("import seg.nrrd")
    assert not any("resampled" in w for w in anatomy.warnings)  # a right-handed copy of the grid is not resampled
    _check_same_anatomy(anatomy, phantom.labels, EXPRESSIBLE["totalspineseg"])


def test_seg_nrrd_with_other_segment_names_and_unknown_segments(tmp_path):
    import slicerio

    labels = np.zeros((6, 7, 8), np.uint8)
    labels[1:3, 1:3, 1:3] = 1
    labels[3:5, 1:3, 1:3] = 2
    labels[1:3, 4:6, 4:6] = 3
    labels[4:6, 4:6, 4:6] = 4
    seg = slicerio.create_segmentation((8, 7, 6), np.diag([-1.5, -1.5, 2.0, 1.0]))
    seg["voxels"] = labels.transpose(2, 1, 0).copy()
    seg["segments"] = [
        {"id": "a", "name": "vertebrae_L4", "labelValue": 1, "layer": 0, "color": [1, 0, 0]},
        {"id": "b", "name": "disc_L4_L5", "labelValue": 2, "layer": 0, "color": [0, 1, 0]},
        {"id": "c", "name": "Spinal Canal", "labelValue": 3, "layer": 0, "color": [0, 0, 1]},
        {"id": "d", "name": "liver", "labelValue": 4, "layer": 0, "color": [1, 1, 0]},
    ]
    slicerio.write_segmentation(str(tmp_path / "lab.seg.nrrd"), seg)
    anatomy = load_segmentation(tmp_path / "lab.seg.nrrd", convention="seg.nrrd")
    got = np.asarray(anatomy.labels.array)
    assert np.array_equal(got == 44, labels == 1) and np.array_equal(got == 95, labels == 2)
    assert np.array_equal(got == 2, labels == 3) and not np.any(got[labels == 4])
    assert any("liver" in w for w in anatomy.warnings)
    assert np.allclose(anatomy.labels.spacing, (1.5, 1.5, 2.0)) and np.allclose(anatomy.labels.direction, np.eye(3))
    seg["segments"] = [dict(seg["segments"][3], labelValue=4)]
    slicerio.write_segmentation(str(tmp_path / "liver.seg.nrrd"), seg)
    with pytest.raises(ValueError, match="names a spine structure"):
        load_segmentation(tmp_path / "liver.seg.nrrd")


def test_seg_nrrd_overlapping_segments_in_layers(tmp_path):
    """A lab's segmentation with the cord drawn inside the dural sac (Slicer puts them in two layers)."""
    import slicerio

    seg = slicerio.create_segmentation((10, 10, 10), np.eye(4))
    sac = np.zeros((10, 10, 10), bool)
    sac[2:8, 2:8, :] = True
    cord = np.zeros((10, 10, 10), bool)
    cord[4:6, 4:6, :5] = True
    l4 = np.zeros((10, 10, 10), bool)
    l4[0:2, :, :] = True
    slicerio.add_segment(seg, cord, {"name": "spinal cord"})  # listed first: must still end up on top
    slicerio.add_segment(seg, sac, {"name": "dural sac"})
    slicerio.add_segment(seg, l4, {"name": "L4"})
    assert seg["voxels"].ndim == 4  # two layers
    slicerio.write_segmentation(str(tmp_path / "layers.seg.nrrd"), seg)
    anatomy = load_segmentation(tmp_path / "layers.seg.nrrd")
    got = np.asarray(anatomy.labels.array).transpose(2, 1, 0)  # back to i, j, k
    assert np.array_equal(got == 1, cord) and np.array_equal(got == 2, sac & ~cord) and np.array_equal(got == 44, l4)
    assert any("Overlapping segments (spinal cord)" in w for w in anatomy.warnings)


@pytest.mark.parametrize(
    ("name", "structure"),
    [
        ("L4", "L4"),
        ("vertebrae_L4", "L4"),
        ("L4 vertebra", "L4"),
        ("sacrum", "S1"),
        ("vertebrae_S1", "S1"),
        ("L5-S1", "L5-S1"),
        ("disc_L5_S", "L5-S1"),
        ("L4/L5", "L4-L5"),
        ("dural sac", "spinal_canal"),
        ("spinal_cord", "spinal_cord"),
        ("vertebra 3", "vertebra 3"),
        ("disc 2", "disc 2"),
        ("liver", None),
    ],
)
def test_segment_names(name, structure):
    assert structure_from_segment_name(name) == structure


def test_segment_recognised_by_terminology_code():
    terminology = {"category": ["SCT", "123037004", "Anatomical Structure"], "type": ["SCT", "11994002", "x"]}
    assert structure_from_segment_name("Segment_7", terminology) == "L4"


def test_real_totalsegmentator_output(shared_data):
    seg_path = shared_data / "totalseg_example_ct_sm_seg.nii.gz"
    ct = read_volume(shared_data / "totalseg_example_ct_sm.nii.gz")
    raw = read_volume(seg_path)
    anatomy = load_segmentation(seg_path, reference=ct)  # auto: the organ labels make it unambiguous
    assert anatomy.source.startswith("import totalsegmentator")
    assert anatomy.modality == "ct" and anatomy.numbering == "imported"
    assert [v.name for v in anatomy.vertebrae] == ["T11", "T12", "L1", "L2"]
    assert [v.label for v in anatomy.vertebrae] == [31, 32, 41, 42]
    # TotalSegmentator 33 = T11, 32 = T12, 31 = L1, 30 = L2: the same voxels
    for source, info in zip((33, 32, 31, 30), anatomy.vertebrae):
        assert info.voxels == int(np.count_nonzero(raw.array == source))
        np.testing.assert_array_equal(anatomy.labels.array == info.label, raw.array == source)
    heights = [v.centroid_ras[2] for v in anatomy.vertebrae]
    assert heights == sorted(heights, reverse=True)
    assert np.count_nonzero(anatomy.labels.array == 1) == np.count_nonzero(raw.array == 79)  # spinal cord
    assert anatomy.centreline_ras is not None and anatomy.centreline_ras[0][2] > anatomy.centreline_ras[-1][2]
    assert anatomy.labels.same_geometry(ct)
    assert any("not spine structures" in w for w in anatomy.warnings)


def test_spineps_subregions_and_transitional_vertebrae():
    inst = np.zeros((12, 4, 4), np.uint16)
    # top to bottom along k (k increases superior on an identity grid: so fill from the top index down)
    for k, value in zip(range(11, -1, -1), (23, 123, 24, 124, 25, 225, 125, 26, 61, 0, 0, 0)):
        inst[k] = value
    sem = np.where(np.isin(inst % 100, [23, 24, 25]) & (inst < 100), 50, 0).astype(np.uint8)
    sem[inst == 225] = 41
    sem[inst == 26] = 26  # sacrum in the semantic mask is not a sub-region
    vol = Volume(inst, is_label=True)
    anatomy = load_segmentation(vol, convention="spineps", subregions=Volume(sem, is_label=True))
    assert [v.name for v in anatomy.vertebrae] == ["L4", "L5", "L6", "S1"]
    assert [d.name for d in anatomy.discs] == ["L4-L5", "L5-L6", "L6-S1"]
    assert int(anatomy.labels.array[6, 0, 0]) == 46  # the L6 endplate (225) is part of L6
    assert anatomy.subregions is not None
    assert set(np.unique(anatomy.subregions.array)) == {0, 41, 50}
    verse = load_segmentation(Volume(np.array([[[28, 20, 0]]] * 2, np.uint8), is_label=True), convention="verse")
    assert [v.name for v in verse.vertebrae] == ["T13", "L1"]


def test_spider_numbering_is_stated(phantom):
    anatomy = load_segmentation(encode_in_convention(phantom.labels, "spider"), convention="spider")
    assert any("SPIDER numbering" in w for w in anatomy.warnings)


def test_float_whole_number_labels_are_read(phantom, tmp_path):
    verse = encode_in_convention(phantom.labels, "verse")
    as_float = verse.with_array(verse.array.astype(np.float32))
    path = write_volume(as_float, tmp_path / "verse_msk.nii.gz")
    anatomy = load_segmentation(path, convention="verse", reference=phantom.image)
    _check_same_anatomy(anatomy, phantom.labels, EXPRESSIBLE["verse"])


def test_auto_refuses_an_ambiguous_label_set(phantom):
    verse = encode_in_convention(phantom.labels, "verse")
    with pytest.raises(ValueError, match=r"ambiguous.*spineps, verse, totalsegmentator.*--convention"):
        load_segmentation(verse)


def test_auto_rules_out_readings_with_an_impossible_vertebra_order(phantom):
    """A TotalSpineSeg map without the project's 201 also fits TotalSegmentator v1/v2 by its values, but those
    read L1..L5 as T3..C6 (upside down) or as C1 next to the sacrum: auto keeps the one possible reading."""
    labels = np.where(phantom.labels.array == 201, 0, phantom.labels.array)
    anatomy = load_segmentation(phantom.labels.with_array(labels))
    assert anatomy.source.startswith("import totalspineseg ")
    assert any("Label convention totalspineseg chosen" in w and "totalsegmentator" in w for w in anatomy.warnings)
    _check_same_anatomy(anatomy, phantom.labels, VERTEBRAE | DISCS | {2, 50})


def test_resampling_onto_an_overlapping_image_grid_is_stated(phantom):
    image = phantom.image
    shifted = Volume(
        np.zeros(image.shape, np.int16), spacing=image.spacing, origin=np.add(image.origin, 0.4),
        direction=image.direction,
    )  # fmt: skip
    anatomy = load_segmentation(phantom.labels, convention="totalspineseg", reference=shifted)
    assert anatomy.labels.same_geometry(shifted)
    assert any("resampled onto the image grid" in w for w in anatomy.warnings)
    overlap = np.mean(anatomy.labels.array[phantom.labels.array > 0] > 0)
    assert overlap > 0.9


@pytest.mark.parametrize(
    ("make", "kwargs", "message"),
    [
        (lambda: Volume(np.zeros((4, 4, 4), np.uint8), is_label=True), {}, "empty"),
        (lambda: Volume(np.full((4, 4, 4), 2.5, np.float32)), {}, "non-whole"),
        (lambda: Volume(np.full((4, 4, 4), np.nan, np.float32)), {}, "NaN"),
        (lambda: Volume(np.full((4, 4, 4), 5000, np.int32), is_label=True), {}, "Unknown label convention"),
        (lambda: Volume(np.full((4, 4, 4), 41, np.uint8), is_label=True), {"convention": "verse"}, "does not use"),
        (lambda: Volume(np.full((4, 4, 4), 41, np.uint8), is_label=True), {"convention": "nope"}, "Unknown label"),
        (lambda: Volume(np.full((4, 4, 4), -3, np.int16), is_label=True), {}, "negative"),
        (
            lambda: Volume(np.full((4, 4, 4), 41, np.uint8), is_label=True),
            {"convention": "totalspineseg", "reference": Volume(np.zeros((4, 4, 4)), origin=(500.0, 0.0, 0.0))},
            "do not overlap",
        ),
        (
            lambda: Volume(np.full((4, 4, 4), 41, np.uint8), is_label=True),
            {"convention": "totalspineseg", "subregions": Volume(np.full((4, 4, 4), 50, np.uint8))},
            "SPINEPS",
        ),
    ],
)
def test_bad_inputs_give_clear_errors(make, kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_segmentation(make(), **kwargs)


def test_bad_files_give_clear_errors(tmp_path):
    import SimpleITK as sitk

    with pytest.raises(ValueError, match="No such segmentation file"):
        load_segmentation(tmp_path / "missing.nii.gz")
    sitk.WriteImage(sitk.Image(5, 6, sitk.sitkUInt8), str(tmp_path / "flat.nii.gz"))
    with pytest.raises(ValueError, match="3D"):
        load_segmentation(tmp_path / "flat.nii.gz")
    write_volume(Volume(np.full((3, 3, 3), 41, np.uint8), is_label=True), tmp_path / "l.nii.gz")
    with pytest.raises(ValueError, match="seg.nrrd"):
        load_segmentation(tmp_path / "l.nii.gz", convention="seg.nrrd")
