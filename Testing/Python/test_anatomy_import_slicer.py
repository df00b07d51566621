"""Segment names, colours and terminology in a real headless Slicer scene, and through .seg.nrrd files."""

from __future__ import annotations

import numpy as np
import pytest

from lumbarspine.labels import label_color, segment_name, segment_terminology
from lumbarspine.phantom import PhantomSpec, generate_phantom

pytestmark = pytest.mark.slicer


@pytest.fixture(scope="module")
def phantom():
    return generate_phantom(
        PhantomSpec(seed=2, modality="ct", spacing=(2.5, 2.5, 2.5), orientation="oblique-lefthanded")
    )


def _terminology(segment) -> str:
    import vtk

    value = vtk.reference("")
    segment.GetTag("TerminologyEntry", value)
    return str(value)


def test_label_map_to_segmentation_names_colours_terminology(slicer_scene, phantom):
    from lumbarspine.slicer_nodes import labels_to_segmentation_node, segmentation_node_to_labels

    node = labels_to_segmentation_node(phantom.labels, slicer_scene.scene, name="spine")
    segmentation = node.GetSegmentation()
    names = {segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())}
    expected = {"L1", "L2", "L3", "L4", "L5", "S1", "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1", "dural sac"}
    assert expected | {"epidural fat"} == names
    for index in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(index)
        value = int(segment.GetLabelValue())
        assert segment.GetName() == segment_name(value)
        np.testing.assert_allclose(segment.GetColor(), [c / 255.0 for c in label_color(value)], atol=1e-6)
        assert _terminology(segment) == segment_terminology(value)
    back = segmentation_node_to_labels(node, slicer_scene.scene, reference=phantom.labels.to_right_handed())
    np.testing.assert_array_equal(back.array, phantom.labels.to_right_handed().array)  # project ids come back


def test_seg_nrrd_written_by_the_project_loads_in_slicer(slicer_scene, phantom, tmp_path):
    import slicer

    from lumbarspine.anatomy.outputs import write_seg_nrrd
    from lumbarspine.slicer_nodes import segmentation_node_to_labels

    path = write_seg_nrrd(phantom.labels, tmp_path / "spine.seg.nrrd")
    scene = slicer_scene.scene
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "loaded")
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.ReadData(node)
    segmentation = node.GetSegmentation()
    seen = {}
    for index in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(index)
        seen[segment.GetName()] = (tuple(segment.GetColor()), _terminology(segment))
    values = [int(v) for v in np.unique(phantom.labels.array) if v != 0]
    assert set(seen) == {segment_name(v) for v in values}
    for value in values:
        colour, terminology = seen[segment_name(value)]
        np.testing.assert_allclose(colour, [c / 255.0 for c in label_color(value)], atol=1e-5)
        assert terminology == segment_terminology(value)
    assert "SCT^11994002^L4 vertebra" in seen["L4"][1]
    assert "SCT^54735007^Sacrum" in seen["S1"][1]
    back = segmentation_node_to_labels(node, scene, reference=phantom.labels.to_right_handed())
    np.testing.assert_array_equal(back.array, phantom.labels.to_right_handed().array)


def test_seg_nrrd_saved_by_slicer_imports(slicer_scene, phantom, tmp_path):
    """A segmentation saved by Slicer's own storage node (as a lab would) imports to the same anatomy."""
    import slicer

    from lumbarspine.anatomy.importers import load_segmentation
    from lumbarspine.slicer_nodes import labels_to_segmentation_node

    node = labels_to_segmentation_node(phantom.labels, slicer_scene.scene, name="spine")
    storage = slicer.vtkMRMLSegmentationStorageNode()
    slicer_scene.scene.AddNode(storage)
    storage.SetFileName(str(tmp_path / "saved.seg.nrrd"))
    assert storage.WriteData(node)
    anatomy = load_segmentation(tmp_path / "saved.seg.nrrd", reference=phantom.image)
    truth = np.asarray(phantom.labels.array)
    for value in [int(v) for v in np.unique(truth) if v != 0]:
        np.testing.assert_array_equal(np.asarray(anatomy.labels.array) == value, truth == value)
    assert [v.name for v in anatomy.vertebrae] == ["L1", "L2", "L3", "L4", "L5", "S1"]
