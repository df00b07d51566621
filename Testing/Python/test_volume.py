"""Volume geometry: IJK <-> RAS, SimpleITK round trips on oblique, anisotropic, left-handed grids."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from lumbarspine.volume import (
    RAS_TO_LPS,
    Volume,
    label_mask,
    label_values,
    validate_label_volume,
    validate_scalar_volume,
)

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


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.uint32, np.int64, bool, np.float32])
def test_label_values_equals_numpy_unique(dtype):
    """Exact (every voxel looked at): the same values and dtype as numpy.unique, on sparse, dense, negative,
    large-id and all-zero arrays."""
    rng = np.random.default_rng(3)
    sparse = np.zeros((30, 40, 50), dtype=np.int64)
    sparse[rng.integers(0, 30, 200), rng.integers(0, 40, 200), rng.integers(0, 50, 200)] = rng.choice(
        [2, 41, 95, 201], 200
    )
    sparse[29, 39, 49] = 7  # a value held by a single voxel, the very last one
    cases = [
        sparse,
        rng.integers(1, 5, size=(6, 7, 8)),  # no background at all
        rng.integers(-3, 3, size=(6, 7, 8)),  # negative values
        rng.integers(0, 70000, size=(5, 6, 7)),  # ids beyond the bincount range
        np.zeros((4, 5, 6), dtype=np.int64),
        np.zeros((0, 3, 3), dtype=np.int64),
    ]
    for case in cases:
        if np.dtype(dtype).kind in "ub" and case.size and case.min() < 0:
            continue
        array = case.astype(dtype)
        expected = np.unique(array)
        found = label_values(array)
        assert found.dtype == expected.dtype
        np.testing.assert_array_equal(found, expected)
    volume = Volume(sparse.astype(np.uint16), is_label=True)
    before = volume.array.copy()
    assert label_values(volume.array).tolist() == [0, 2, 7, 41, 95, 201]
    np.testing.assert_array_equal(volume.array, before)  # not modified


def test_label_mask_equals_isin():
    rng = np.random.default_rng(4)
    for dtype in (np.uint8, np.uint16, np.int16, np.int32):
        array = rng.integers(0, 6, size=(5, 6, 7)).astype(dtype)
        for values in ((1, 2), (2, 1), (3,), (0, 5, 300), (1, 2, 3, 4, 5), (), (70000,)):
            np.testing.assert_array_equal(
                label_mask(array, values), np.isin(array, values), err_msg=f"{dtype} {values}"
            )
