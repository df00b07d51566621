"""The headless Slicer (slicer-core): node conversions, segmentations, .mrb/.mrml round trips, 3D render."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lumbarspine.volume import Volume

from geometry_cases import GEOMETRIES, make_volume, random_points_inside

pytestmark = pytest.mark.slicer


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_volume_node_round_trip(slicer_scene, geometry):
    from lumbarspine.slicer_nodes import volume_from_node, volume_to_node

    vol = make_volume(geometry, dtype=np.float32)
    before = vol.array.copy()
    node = volume_to_node(vol, slicer_scene.scene)
    assert node.IsA("vtkMRMLScalarVolumeNode") and not node.IsA("vtkMRMLLabelMapVolumeNode")
    back = volume_from_node(node)
    np.testing.assert_array_equal(vol.array, before)  # input untouched
    assert back.is_right_handed  # Slicer's IJK frames are right-handed
    if vol.is_right_handed:
        assert back.same_geometry(vol, atol=1e-9)
        np.testing.assert_array_equal(back.array, vol.array)
    else:
        # flipped along k, but every voxel is where it was in RAS
        np.testing.assert_array_equal(back.array, vol.array[::-1])
    points = random_points_inside(vol)
    np.testing.assert_array_equal(back.sample_nearest_ras(points), vol.sample_nearest_ras(points))
    # Slicer's own IJK -> RAS matrix agrees with ours
    import vtk

    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    ours = back.ijk_to_ras
    np.testing.assert_allclose([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)], ours, atol=1e-9)


def test_label_node_and_update_in_place(slicer_scene):
    from lumbarspine.slicer_nodes import volume_from_node, volume_to_node

    labels = make_volume("oblique-aniso", is_label=True, dtype=np.uint8)
    node = volume_to_node(labels, slicer_scene.scene, name="labels")
    assert node.IsA("vtkMRMLLabelMapVolumeNode")
    assert node.GetDisplayNode().GetColorNode().GetName() == "LumbarSpine TotalSpineSeg labels"
    other = make_volume("axial-lps-aniso", shape=(4, 5, 6), is_label=True, dtype=np.uint8)
    same = volume_to_node(other, slicer_scene.scene, node=node)
    assert same is node
    back = volume_from_node(node)
    assert back.is_label and back.same_geometry(other) and np.array_equal(back.array, other.array)


@pytest.mark.parametrize("geometry", ["axial-lps-aniso", "oblique-lefthanded"])
def test_segmentation_round_trip_keeps_label_values(slicer_scene, geometry):
    from lumbarspine.slicer_nodes import labels_to_segmentation_node, segmentation_node_to_labels

    labels = make_volume(geometry, shape=(10, 12, 14), is_label=True, dtype=np.uint8)
    seg = labels_to_segmentation_node(labels, slicer_scene.scene, name="seg")
    segmentation = seg.GetSegmentation()
    names = sorted(segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments()))
    assert names == ["L1", "L4-L5", "dural sac"]
    back = segmentation_node_to_labels(seg, slicer_scene.scene, reference=labels.to_right_handed())
    points = random_points_inside(labels)
    np.testing.assert_array_equal(back.sample_nearest_ras(points), labels.sample_nearest_ras(points))
    # no temporary nodes left behind
    assert slicer_scene.scene.GetNumberOfNodesByClass("vtkMRMLLabelMapVolumeNode") == 0


def test_table_node(slicer_scene):
    from lumbarspine.slicer_nodes import rows_from_table_node, table_node_from_rows

    rows = [
        {"level": "L4-L5", "area_mm2": 61.5, "grade": "severe"},
        {"level": "L3-L4", "area_mm2": None, "grade": None},
    ]
    node = table_node_from_rows(rows, slicer_scene.scene, name="levels")
    back = rows_from_table_node(node)
    assert back[0] == {"level": "L4-L5", "area_mm2": 61.5, "grade": "severe"}
    assert back[1]["level"] == "L3-L4" and np.isnan(back[1]["area_mm2"]) and back[1]["grade"] == ""


def test_bad_nodes_give_clear_errors(slicer_scene):
    from lumbarspine.slicer_nodes import labels_to_segmentation_node, volume_from_node, volume_to_node

    with pytest.raises(ValueError, match="No input volume"):
        volume_from_node(None)
    empty = slicer_scene.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty")
    with pytest.raises(ValueError, match="no image data"):
        volume_from_node(empty)
    node = volume_to_node(make_volume("axial-ras"), slicer_scene.scene)
    transform = slicer_scene.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "T")
    node.SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(ValueError, match="harden"):
        volume_from_node(node)
    with pytest.raises(ValueError, match="empty"):
        labels_to_segmentation_node(Volume(np.zeros((3, 3, 3), np.uint8), is_label=True), slicer_scene.scene)
    with pytest.raises(ValueError, match="integers"):
        labels_to_segmentation_node(Volume(np.ones((3, 3, 3), np.float32)), slicer_scene.scene)


def _scene_with_data(ctx):
    from lumbarspine.slicer_nodes import labels_to_segmentation_node, table_node_from_rows, volume_to_node

    image = make_volume("oblique-aniso", shape=(12, 14, 16), dtype=np.int16)
    labels = np.zeros(image.shape, np.uint8)
    labels[3:9, 4:10, 5:11] = 44
    labels[5:7, 6:8, 7:9] = 2
    label_volume = image.with_array(labels, is_label=True, name="labels")
    volume_to_node(image, ctx.scene, name="image")
    volume_to_node(label_volume, ctx.scene, name="labels")
    seg = labels_to_segmentation_node(label_volume, ctx.scene, name="segmentation")
    seg.CreateClosedSurfaceRepresentation()
    table_node_from_rows([{"level": "L4-L5", "area_mm2": 60.0}], ctx.scene, name="table")
    return image, label_volume


def _summary(ctx):
    from lumbarspine.slicer_nodes import volume_from_node

    out = {}
    for node in ctx.data_nodes():
        entry = {"class": node.GetClassName()}
        if node.IsA("vtkMRMLScalarVolumeNode"):
            entry["array"] = volume_from_node(node).array
        if node.IsA("vtkMRMLSegmentationNode"):
            entry["segments"] = node.GetSegmentation().GetNumberOfSegments()
        if node.IsA("vtkMRMLTableNode"):
            entry["rows"] = node.GetTable().GetNumberOfRows()
        out[node.GetName()] = entry
    return out


@pytest.mark.parametrize("suffix", [".mrb", ".mrml"])
def test_scene_save_and_reload(tmp_path, slicer_scene, suffix):
    from lumbarspine.scene import load_scene, save_scene

    _scene_with_data(slicer_scene)
    before = _summary(slicer_scene)
    path = save_scene(slicer_scene, tmp_path / f"scene{suffix}")
    assert path.exists() and path.stat().st_size > 0
    reloaded = load_scene(path)
    after = _summary(reloaded)
    assert sorted(after) == sorted(before) == ["image", "labels", "segmentation", "table"]
    for name, entry in before.items():
        assert after[name]["class"] == entry["class"]
        if "array" in entry:
            np.testing.assert_array_equal(after[name]["array"], entry["array"])
    assert after["segmentation"]["segments"] == 2 and after["table"]["rows"] == 1
    with pytest.raises(ValueError, match="mrb"):
        save_scene(slicer_scene, tmp_path / "scene.txt")


def test_offscreen_render_draws_the_segmentation(tmp_path, slicer_scene):
    from lumbarspine.render import render_3d

    _scene_with_data(slicer_scene)
    result = render_3d(slicer_scene, tmp_path / "view.png", size=(320, 240))
    assert result["path"].exists()
    import vtk

    reader = vtk.vtkPNGReader()
    reader.SetFileName(str(result["path"]))
    reader.Update()
    assert reader.GetOutput().GetDimensions()[:2] == (320, 240)
    assert result["foreground_pixels"] > 0.05 * 320 * 240
    with pytest.raises(ValueError, match="Unknown view"):
        render_3d(slicer_scene, tmp_path / "x.png", view="top")


def test_committed_color_table_matches_the_label_convention(tmp_path, slicer_scene):
    import slicer

    from lumbarspine.labels import TOTALSPINESEG, write_color_table

    committed = Path(__file__).resolve().parents[2] / "Resources" / "ColorTables" / "LumbarSpine-TotalSpineSeg.ctbl"
    fresh = tmp_path / "fresh.ctbl"
    write_color_table(str(fresh))
    assert committed.read_text() == fresh.read_text(), "regenerate it with lumbarspine.labels.write_color_table"
    node = slicer_scene.scene.AddNewNodeByClass("vtkMRMLColorTableNode")
    storage = slicer.vtkMRMLColorTableStorageNode()
    slicer_scene.scene.AddNode(storage)
    storage.SetFileName(str(committed))
    assert storage.ReadData(node)
    for info in TOTALSPINESEG:
        # Slicer shows underscores in colour names as spaces
        assert node.GetColorName(info.value).replace(" ", "_") == info.name


@pytest.mark.parametrize(
    ("view", "direction"),
    [
        ("anterior", (0, 1, 0)),
        ("posterior", (0, -1, 0)),
        ("left", (-1, 0, 0)),  # the patient's left is -R
        ("right", (1, 0, 0)),
        ("superior", (0, 0, 1)),
    ],
)
def test_named_views_look_from_that_side_of_the_patient(view, direction):
    """The camera of each named view sits on that side of the scene (RAS), looking at its centre."""
    import numpy as np
    import vtk

    from lumbarspine.render import _place_camera

    renderer = vtk.vtkRenderer()
    source = vtk.vtkCubeSource()
    source.SetBounds(-10, 10, -20, 20, -40, 40)
    mapper = vtk.vtkPolyDataMapper()
    mapper.SetInputConnection(source.GetOutputPort())
    actor = vtk.vtkActor()
    actor.SetMapper(mapper)
    renderer.AddActor(actor)
    _place_camera(renderer, view, 1.0)
    camera = renderer.GetActiveCamera()
    seen_from = np.asarray(camera.GetPosition()) - np.asarray(camera.GetFocalPoint())
    np.testing.assert_allclose(seen_from / np.linalg.norm(seen_from), direction, atol=1e-9)
