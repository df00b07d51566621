"""Volume geometry: IJK <-> RAS, SimpleITK round trips on oblique, anisotropic, left-handed grids."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from lumbarspine.volume import RAS_TO_LPS, Volume, validate_label_volume, validate_scalar_volume

from geometry_cases import GEOMETRIES, make_volume, random_points_inside


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_ijk_ras_inverse(geometry):
    vol = make_volume(geometry)
    ijk = np.random.default_rng(0).uniform(-3, 20, size=(50, 3))
    ras = vol.ijk_to_ras_points(ijk)
    np.testing.assert_allclose(vol.ras_to_ijk_points(ras), ijk, atol=1e-9)
    homogeneous = (vol.ijk_to_ras @ np.c_[ijk, np.ones(len(ijk))].T).T[:, :3]
    np.testing.assert_allclose(homogeneous, ras, atol=1e-9)
    np.testing.assert_allclose(vol.ras_to_ijk @ vol.ijk_to_ras, np.eye(4), atol=1e-9)


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_sitk_round_trip_is_exact(geometry):
    vol = make_volume(geometry, dtype=np.float32)
    image = vol.to_sitk()
    # SimpleITK's own index -> physical mapping is the LPS image of ours
    for ijk in [(0, 0, 0), (3, 5, 7), (12, 10, 8)]:
        lps = np.asarray(image.TransformIndexToPhysicalPoint(ijk))
        np.testing.assert_allclose(RAS_TO_LPS @ lps, vol.ijk_to_ras_points(ijk)[0], atol=1e-9)
    back = Volume.from_sitk(image)
    assert back.same_geometry(vol, atol=1e-12)
    np.testing.assert_array_equal(back.array, vol.array)
    assert back.is_right_handed == vol.is_right_handed


def test_left_handed_to_right_handed_keeps_every_voxel_in_place():
    vol = make_volume("oblique-lefthanded")
    assert not vol.is_right_handed
    rh = vol.to_right_handed()
    assert rh.is_right_handed
    points = random_points_inside(vol)
    np.testing.assert_array_equal(rh.sample_nearest_ras(points), vol.sample_nearest_ras(points))
    assert vol.to_right_handed() is not vol
    right = make_volume("oblique-aniso")
    assert right.to_right_handed() is right


def test_bad_volumes_are_rejected_with_clear_messages():
    with pytest.raises(ValueError, match="3D array"):
        Volume(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="empty"):
        Volume(np.zeros((0, 4, 4)))
    with pytest.raises(ValueError, match="positive"):
        Volume(np.zeros((2, 2, 2)), spacing=(1, 0, 1))
    with pytest.raises(ValueError, match="orthonormal"):
        Volume(np.zeros((2, 2, 2)), direction=[[1, 0, 0], [1, 1, 0], [0, 0, 1]])
    vol = Volume(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="does not match"):
        vol.with_array(np.zeros((3, 3, 4)))
    nan = vol.with_array(np.full((2, 3, 4), np.nan, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        validate_scalar_volume(nan)
    with pytest.raises(ValueError, match="empty"):
        validate_label_volume(Volume(np.zeros((2, 2, 2), np.uint8), is_label=True))
    with pytest.raises(ValueError, match="integer"):
        validate_label_volume(Volume(np.ones((2, 2, 2), np.float32), is_label=True))


def test_bounds_and_sampling():
    vol = make_volume("axial-lps-aniso")
    lo, hi = vol.bounds_ras()
    assert np.all(hi > lo)
    outside = np.array([[1e4, 1e4, 1e4]])
    assert vol.sample_nearest_ras(outside, fill=-7)[0] == -7
    # voxel (i, j, k) = (2, 3, 4) sampled at its own centre
    centre = vol.ijk_to_ras_points([2, 3, 4])
    assert vol.sample_nearest_ras(centre)[0] == vol.array[4, 3, 2]


def test_sitk_rejects_vector_and_2d_images():
    with pytest.raises(ValueError, match="3D"):
        Volume.from_sitk(sitk.Image(4, 4, sitk.sitkFloat32))
    with pytest.raises(ValueError, match="scalar"):
        Volume.from_sitk(sitk.Image([4, 4, 4], sitk.sitkVectorFloat32, 3))
