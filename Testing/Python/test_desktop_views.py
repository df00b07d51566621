"""Slice views on a plane (``SpineModulesLib.views``): each view's Slicer preset turned into the plane's frame."""

from __future__ import annotations

import numpy as np
import pytest

from SpineModulesLib.views import SLICE_PRESETS, place_views_on_plane, slice_to_ras_of, view_matrix


def _plane(angle: float = 0.3) -> np.ndarray:
    """A plane tilted by ``angle`` (rad) about the R axis, centred at (1, -2, 30) RAS mm."""
    c, s = np.cos(angle), np.sin(angle)
    frame = np.eye(4)
    frame[:3, :3] = [[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]]
    frame[:3, 3] = (1.0, -2.0, 30.0)
    return frame


def test_an_untilted_plane_gives_slicers_own_presets():
    identity = np.eye(4)
    for name, preset in SLICE_PRESETS.items():
        np.testing.assert_array_equal(view_matrix(identity, name)[:3, :3], preset)


def test_views_keep_their_handedness_and_share_the_centre():
    plane = _plane()
    for name, preset in SLICE_PRESETS.items():
        matrix = view_matrix(plane, name)
        np.testing.assert_allclose(matrix[:3, 3], plane[:3, 3])
        assert np.linalg.det(matrix[:3, :3]) == pytest.approx(np.linalg.det(preset))
    np.testing.assert_allclose(view_matrix(plane, "Axial")[:3, 2], plane[:3, 2])  # the axial view shows the plane


def test_bad_planes_and_orientations_are_refused():
    with pytest.raises(ValueError, match="4x4"):
        view_matrix(np.eye(3), "Axial")
    with pytest.raises(ValueError, match="orthonormal"):
        view_matrix(np.diag([2.0, 1.0, 1.0, 1.0]), "Axial")
    with pytest.raises(ValueError, match="Unknown slice orientation"):
        view_matrix(np.eye(4), "Oblique")
    with pytest.raises(ValueError, match="scene"):
        place_views_on_plane(None, np.eye(4))


def test_place_views_moves_only_the_named_views(slicer_scene):
    import slicer

    scene = slicer_scene.scene
    assert place_views_on_plane(scene, _plane()) == []  # no slice views yet
    layout = slicer.vtkMRMLLayoutLogic()
    layout.SetMRMLScene(scene)
    layout.SetMRMLScene(None)
    moved = place_views_on_plane(scene, _plane(), layout_names=("Red",))
    assert [node.GetLayoutName() for node in moved] == ["Red"]
    np.testing.assert_allclose(slice_to_ras_of(moved[0]), view_matrix(_plane(), "Axial"), atol=1e-12)
    others = [scene.GetNthNodeByClass(i, "vtkMRMLSliceNode") for i in range(3)]
    for node in others:
        if node.GetLayoutName() != "Red":
            np.testing.assert_allclose(slice_to_ras_of(node)[:3, 3], 0.0)  # untouched
