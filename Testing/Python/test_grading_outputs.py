"""Grading outputs: the 'grade' command, report files, pictures, multi-series, the Slicer scene, conventions."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from lumbarspine.anatomy.build import anatomy_from_labels
from lumbarspine.cli import main
from lumbarspine.grading import grade_anatomy, grade_study
from lumbarspine.labels import DISC_LEVELS
from lumbarspine.phantom import PhantomSpec, generate_phantom, write_phantom
from lumbarspine.progress import OperationCancelled

REPORT_FIELDS = {
    "level",
    "dural_sac_area_mm2",
    "axial_slice_area_mm2",
    "ap_diameter_mm",
    "transverse_width_mm",
    "central_canal_grade",
    "confidence",
    "borderline",
    "plane_center_ras",
    "plane_normal_ras",
}


@pytest.fixture(scope="module")
def sagittal_study(tmp_path_factory):
    """A T2 phantom written as a sagittal 1 mm series, its labels (TotalSpineSeg) and its truth."""
    folder = tmp_path_factory.mktemp("sagittal")
    spec = PhantomSpec(modality="t2", stenosis={"L4-L5": 60.0, "L3-L4": 90.0}, orientation="sagittal")
    write_phantom(folder, spec)
    return folder, json.loads((folder / "truth.json").read_text())


def test_grade_command_writes_the_report_pictures_and_rsna_row(sagittal_study, tmp_path):
    folder, truth = sagittal_study
    out = tmp_path / "graded"
    code = main(
        [
            "grade",
            str(folder / "image.nii.gz"),
            "--segmentation",
            str(folder / "labels.nii.gz"),
            "--out",
            str(out),
            "--area-moderate",
            "111",
            "--quiet",
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert [lv["level"] for lv in report["levels"]] == list(DISC_LEVELS)
    for entry in report["levels"]:
        assert REPORT_FIELDS <= set(entry)
        expected = truth["levels"][entry["level"]]["dural_sac_area_mm2"]
        assert entry["dural_sac_area_mm2"] == pytest.approx(expected, rel=0.03)
        assert entry["axial_slice_area_mm2"] is None  # a sagittal series has no axial slices
        assert len(entry["plane_center_ras"]) == 3 and np.linalg.norm(entry["plane_normal_ras"]) == pytest.approx(
            1.0, abs=1e-4
        )
    grades = {lv["level"]: lv["central_canal_grade"] for lv in report["levels"]}
    assert grades == {
        "L1-L2": "normal_mild",
        "L2-L3": "normal_mild",
        "L3-L4": "moderate",
        "L4-L5": "severe",
        "L5-S1": "normal_mild",
    }
    assert report["thresholds"]["area_moderate_mm2"] == 111.0 and report["thresholds"]["area_severe_mm2"] == 75.0
    assert report["software_version"].startswith("lumbarspine")
    assert {"input", "warnings", "method"} <= set(report)
    assert report["input"]["image_acquisition"] == "sagittal"

    with open(out / "report.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["level"] for r in rows] == list(DISC_LEVELS)
    assert float(rows[3]["dural_sac_area_mm2"]) == report["levels"][3]["dural_sac_area_mm2"]
    with open(out / "rsna.csv", newline="") as fh:
        rsna = list(csv.DictReader(fh))
    assert len(rsna) == 1
    assert rsna[0]["spinal_canal_stenosis_l4_l5"] == "Severe"
    assert rsna[0]["spinal_canal_stenosis_l1_l2"] == "Normal/Mild"
    total = sum(float(rsna[0][f"spinal_canal_stenosis_l3_l4_{c}"]) for c in ("normal_mild", "moderate", "severe"))
    assert total == pytest.approx(1.0, abs=1e-3)

    # pictures: one per level with the outline in the grade's colour, and the area plot
    from PIL import Image

    for level in DISC_LEVELS:
        picture = np.asarray(Image.open(out / f"plane_{level.replace('-', '_')}.png").convert("RGB")).astype(int)
        assert picture.shape[0] > 300 and picture.shape[1] > 300
        grey = np.abs(picture - picture.mean(axis=2, keepdims=True)).max(axis=2) < 8
        assert grey.mean() > 0.5  # mostly the resampled image
        red = (picture[..., 0] > 180) & (picture[..., 1] < 90) & (picture[..., 2] < 90)
        if grades[level] == "severe":
            assert red.sum() > 50  # the severe outline is drawn in red
    plot = np.asarray(Image.open(out / "area_along_canal.png").convert("RGB"))
    assert plot.shape[1] > 600
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # safe_write left no temporary files


def test_axial_series_gives_the_routine_axial_area(sagittal_study, tmp_path):
    """Levels from the sagittal series, axial areas from a 0.6 x 0.6 x 4 mm axial series of the same 'session'."""
    import SimpleITK as sitk

    folder, truth = sagittal_study
    axial_dir = tmp_path / "axial"
    write_phantom(axial_dir, PhantomSpec(modality="t2", stenosis={"L4-L5": 60.0, "L3-L4": 90.0}, spacing=(0.6, 0.6, 4)))
    summary = grade_study(
        folder / "image.nii.gz",
        tmp_path / "out",
        segmentation=folder / "labels.nii.gz",
        axial=axial_dir / "image.nii.gz",
        pictures=False,
    )
    report = summary["report"]
    assert report["input"]["axial"]["overlap_fraction"] > 0.9
    assert "resampled" in report["input"]["axial"]["mask"]
    axial_labels = sitk.ReadImage(str(axial_dir / "labels.nii.gz"))
    for entry in report["levels"]:
        assert "axial series" in entry["axial_slice"]["source"]
        # the axial series' own labels on that slice, counted independently
        k = entry["axial_slice"]["slice_index"]
        plane = sitk.GetArrayFromImage(axial_labels[:, :, k])
        own = float(np.isin(plane, [1, 2]).sum()) * 0.6 * 0.6
        assert entry["axial_slice_area_mm2"] == pytest.approx(own, rel=0.08), entry["level"]
        assert entry["axial_slice_area_mm2"] >= 0.95 * truth["levels"][entry["level"]]["dural_sac_area_mm2"]

    # a series elsewhere in patient space: said so, nothing made up
    from lumbarspine.io import read_volume

    far = read_volume(axial_dir / "image.nii.gz")
    far = type(far)(far.array, far.spacing, tuple(np.asarray(far.origin) + 1000.0), far.direction)
    summary = grade_study(
        folder / "image.nii.gz", tmp_path / "far", segmentation=folder / "labels.nii.gz", axial=far, pictures=False
    )
    assert any("does not overlap" in w for w in summary["report"]["warnings"])
    assert all(lv["axial_slice_area_mm2"] is None for lv in summary["report"]["levels"])


def test_grade_study_reports_progress_and_cancels_cleanly(sagittal_study, tmp_path):
    folder, _ = sagittal_study
    fractions = []
    grade_study(
        folder / "image.nii.gz",
        tmp_path / "ok",
        segmentation=folder / "labels.nii.gz",
        pictures=False,
        progress=lambda f, m: fractions.append(f),
    )
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(OperationCancelled):
        grade_study(
            folder / "image.nii.gz", tmp_path / "cancelled", segmentation=folder / "labels.nii.gz", cancel=cancel
        )
    assert not (tmp_path / "cancelled" / "report.json").exists()
    assert main(["grade", str(tmp_path / "missing.nii.gz"), "--segmentation", "x", "--out", str(tmp_path)]) == 2
    # a threshold pair that makes no sense: exit status 2, nothing written
    bad = tmp_path / "bad"
    args = ["grade", str(folder / "image.nii.gz"), "--segmentation", str(folder / "labels.nii.gz"), "--out", str(bad)]
    assert main([*args, "--area-severe", "120", "--quiet"]) == 2
    assert not bad.exists()


def _without_timing(value):
    if isinstance(value, dict):
        return {k: _without_timing(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_without_timing(v) for v in value]
    return value


@pytest.mark.parametrize("grid", ["sagittal", "oblique-lefthanded"])
def test_grade_study_is_the_same_whether_or_not_the_image_voxels_are_read(sagittal_study, tmp_path, monkeypatch, grid):
    """From a segmentation without pictures only the image's header is read; the report files are the same as
    with the pictures (which read the image) and as with a forced full read of the image."""
    import lumbarspine.io as io

    if grid == "sagittal":
        folder, _ = sagittal_study
    else:
        folder = tmp_path / "study"
        spec = PhantomSpec(modality="t2", stenosis={"L4-L5": 60.0}, orientation=grid, spacing=(1.2, 1.2, 1.2))
        write_phantom(folder, spec)
    image, labels = folder / "image.nii.gz", folder / "labels.nii.gz"
    read_in_full = []
    real_read_volume = io.read_volume

    def recording_read_volume(path, **kwargs):
        read_in_full.append(str(path))
        return real_read_volume(path, **kwargs)

    monkeypatch.setattr(io, "read_volume", recording_read_volume)
    grade_study(image, tmp_path / "header", segmentation=labels, pictures=False)
    assert str(image) not in read_in_full and str(labels) in read_in_full  # the image's voxels were not read
    read_in_full.clear()
    grade_study(image, tmp_path / "pictures", segmentation=labels, pictures=True)
    assert str(image) in read_in_full
    monkeypatch.setattr(io, "read_volume_geometry", recording_read_volume)  # a full read instead of the header
    grade_study(image, tmp_path / "full", segmentation=labels, pictures=False)
    reports = {}
    for name in ("header", "pictures", "full"):
        reports[name] = json.loads((tmp_path / name / "report.json").read_text())
        assert reports[name]["levels"][3]["status"] == "measured"
    assert (
        _without_timing(reports["header"]) == _without_timing(reports["pictures"]) == _without_timing(reports["full"])
    )
    for name in ("report.csv", "rsna.csv"):
        header = (tmp_path / "header" / name).read_bytes()
        assert header == (tmp_path / "pictures" / name).read_bytes() == (tmp_path / "full" / name).read_bytes()
    assert (tmp_path / "pictures" / "area_along_canal.png").exists()
    assert not (tmp_path / "header" / "area_along_canal.png").exists()


def test_grade_study_refuses_a_truncated_image_without_reading_its_voxels(sagittal_study, tmp_path):
    folder, _ = sagittal_study
    raw = (folder / "image.nii.gz").read_bytes()
    cut = tmp_path / "image.nii.gz"
    cut.write_bytes(raw[: len(raw) // 3])
    with pytest.raises(ValueError, match="truncated|damaged"):
        grade_study(cut, tmp_path / "out", segmentation=folder / "labels.nii.gz", pictures=False)
    assert not (tmp_path / "out" / "report.json").exists()


def test_grade_study_with_pictures_refuses_a_damaged_image_before_writing(sagittal_study, tmp_path):
    """With pictures the image is read in full (beside the grading): a gzip stream damaged inside, at full
    length, is refused as before, and no report file is written."""
    folder, _ = sagittal_study
    raw = bytearray((folder / "image.nii.gz").read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 64] = bytes(64)  # zeros inside the deflate stream, the file keeps its length
    damaged = tmp_path / "image.nii.gz"
    damaged.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="damaged|Cannot read"):
        grade_study(damaged, tmp_path / "out", segmentation=folder / "labels.nii.gz", pictures=True)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    with pytest.raises(ValueError, match="damaged|Cannot read"):  # the image's error first, as it was read first
        grade_study(damaged, tmp_path / "out2", segmentation=tmp_path / "missing_labels.nii.gz", pictures=True)


def test_the_scene_holds_table_markups_chart_and_graded_sac(slicer_scene, tmp_path):
    from lumbarspine.grading.scene import add_grading_to_scene, place_slice_node, slice_to_ras
    from lumbarspine.scene import load_scene, save_scene
    from lumbarspine.slicer_nodes import rows_from_table_node

    phantom = generate_phantom(PhantomSpec(stenosis={"L4-L5": 60.0}, spacing=(1.2, 1.2, 1.2), noise=0.0))
    anatomy = anatomy_from_labels(phantom.labels, modality="ct", numbering="imported", source="phantom")
    result = grade_anatomy(anatomy)
    scene = slicer_scene.scene
    nodes = add_grading_to_scene(result, scene, labels=anatomy.labels)
    assert set(nodes["outlines"]) == set(DISC_LEVELS) == set(nodes["ap_lines"])
    # slice placement: an orthonormal frame on the measurement plane, applied to a slice node
    level = result.level("L4-L5")
    matrix = slice_to_ras(level)
    np.testing.assert_allclose(matrix[:3, :3].T @ matrix[:3, :3], np.eye(3), atol=1e-9)
    np.testing.assert_allclose(matrix[:3, 2], level.minimum.normal_ras, atol=1e-9)
    assert matrix[0, 0] > 0.9  # the plane frame's X is patient right (right-handed frame)
    np.testing.assert_allclose(np.linalg.det(matrix[:3, :3]), 1.0, atol=1e-9)
    slice_node = scene.AddNewNodeByClass("vtkMRMLSliceNode")
    returned = place_slice_node(slice_node, level.to_dict())
    placed = np.array([[slice_node.GetSliceToRAS().GetElement(r, c) for c in range(4)] for r in range(4)])
    np.testing.assert_allclose(placed, returned, atol=1e-9)
    # shown as Slicer's axial view shows an axial slice: patient right on the screen's left, anterior up
    assert placed[0, 0] < -0.9 and placed[1, 1] > 0.9
    np.testing.assert_allclose(placed[:3, 2], level.minimum.normal_ras, atol=1e-4)  # report values are rounded
    np.testing.assert_allclose(placed[:3, 3], matrix[:3, 3], atol=1e-3)
    reference = scene.AddNewNodeByClass("vtkMRMLSliceNode")
    reference.SetOrientationToAxial()  # Slicer's own axial preset, for the sign convention
    axial = np.array([[reference.GetSliceToRAS().GetElement(r, c) for c in range(3)] for r in range(3)])
    np.testing.assert_allclose(np.sign(np.diag(axial)), [-1.0, 1.0, 1.0])

    path = save_scene(slicer_scene, tmp_path / "graded.mrb")
    loaded = load_scene(path).scene

    def by_name(cls, name):
        found = [loaded.GetNthNodeByClass(i, cls) for i in range(loaded.GetNumberOfNodesByClass(cls))]
        return [n for n in found if n.GetName() == name]

    table = by_name("vtkMRMLTableNode", "Stenosis grading")[0]
    rows = rows_from_table_node(table)
    assert [r["level"] for r in rows] == list(DISC_LEVELS)
    assert rows[3]["grade"] == "Severe" and rows[3]["dural_sac_area_mm2"] == pytest.approx(level.area_mm2, abs=0.01)
    curve = by_name("vtkMRMLMarkupsClosedCurveNode", "L4-L5 dural sac outline")[0]
    assert curve.GetNumberOfControlPoints() >= 20
    points = np.array([curve.GetNthControlPointPositionWorld(i) for i in range(curve.GetNumberOfControlPoints())])
    assert np.abs((points - level.minimum.center_ras) @ level.minimum.normal_ras).max() < 1e-3  # in the plane
    line = by_name("vtkMRMLMarkupsLineNode", "L4-L5 AP diameter")[0]
    ends = np.array([line.GetNthControlPointPositionWorld(i) for i in range(2)])
    assert np.linalg.norm(ends[1] - ends[0]) == pytest.approx(level.minimum.ap_diameter_mm, abs=1e-3)
    chart = by_name("vtkMRMLPlotChartNode", "Dural sac area along the canal")[0]
    assert chart.GetNumberOfPlotSeriesNodes() == 3
    series = chart.GetNthPlotSeriesNode(0)
    assert series.GetTableNode() is not None and series.GetYColumnName() == "area_mm2"
    segmentation = by_name("vtkMRMLSegmentationNode", "Dural sac by grade")[0].GetSegmentation()
    names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
    assert "L4-L5 dural sac (Severe)" in names and "L1-L2 dural sac (Normal/Mild)" in names
    severe = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName("L4-L5 dural sac (Severe)"))
    assert severe.GetColor()[0] > 0.8 and severe.GetColor()[1] < 0.3


def test_the_same_report_from_labels_in_every_supported_convention():
    """Once lumbarspine.anatomy.importers lands: TotalSpineSeg and SPINEPS label maps give the same grades."""
    importers = pytest.importorskip("lumbarspine.anatomy.importers", reason="lumbarspine.anatomy.importers not merged")
    phantom = generate_phantom(PhantomSpec(stenosis={"L4-L5": 60.0}, spacing=(1.2, 1.2, 1.2), noise=0.0))
    labels = phantom.labels
    # SPINEPS / TPTBox: L1-L5 = 20-24, sacrum 26, disc = vertebra above + 100, cord 60, canal 61
    spineps = {
        1: 60,
        2: 61,
        41: 20,
        42: 21,
        43: 22,
        44: 23,
        45: 24,
        50: 26,
        92: 120,
        93: 121,
        94: 122,
        95: 123,
        100: 124,
    }
    converted = np.zeros(labels.shape, np.uint16)
    for old, new in spineps.items():
        converted[labels.array == old] = new
    reports = {}
    for convention, volume in (
        ("totalspineseg", labels),
        ("spineps", labels.with_array(converted)),
    ):
        anatomy = importers.load_segmentation(volume, convention=convention, reference=phantom.image)
        result = grade_anatomy(anatomy)
        reports[convention] = {lv.level: (lv.grade, round(lv.area_mm2, 1)) for lv in result.levels}
    assert reports["spineps"] == reports["totalspineseg"]
    assert reports["totalspineseg"]["L4-L5"][0] == "severe"
