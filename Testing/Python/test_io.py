"""File I/O through SimpleITK: NIfTI, NRRD, MetaImage, DICOM series; the real shared scans."""

from __future__ import annotations

import numpy as np
import pytest

from lumbarspine.io import read_dicom_series, read_volume, write_dicom_series, write_volume

from geometry_cases import GEOMETRIES, make_volume, random_points_inside


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_file_round_trip_keeps_geometry(tmp_path, suffix, geometry):
    vol = make_volume(geometry)
    path = write_volume(vol, tmp_path / f"vol{suffix}")
    back = read_volume(path)
    np.testing.assert_array_equal(back.array, vol.array)
    # NIfTI stores its matrices in float32: allow for that
    atol = 1e-4 if suffix == ".nii.gz" else 1e-9
    assert back.same_geometry(vol, atol=atol), (back, vol)
    assert back.name == "vol"


def test_label_guess_from_file_name(tmp_path):
    labels = make_volume("oblique-aniso", is_label=True, dtype=np.uint8)
    back = read_volume(write_volume(labels, tmp_path / "case_labels.nii.gz"))
    assert back.is_label
    image = read_volume(write_volume(make_volume("axial-ras"), tmp_path / "case.nii.gz"))
    assert not image.is_label


@pytest.mark.parametrize("geometry", ["axial-lps-aniso", "oblique-aniso", "oblique-lefthanded"])
def test_dicom_series_round_trip_is_physically_identical(tmp_path, geometry):
    vol = make_volume(geometry, shape=(6, 10, 12))
    files = write_dicom_series(vol, tmp_path / "dicom")
    assert len(files) == 6
    back = read_dicom_series(tmp_path / "dicom")
    assert back.is_right_handed  # DICOM slices are stacked along the slice normal
    np.testing.assert_allclose(sorted(back.spacing), sorted(vol.spacing), atol=1e-4)
    points = random_points_inside(vol)
    np.testing.assert_array_equal(back.sample_nearest_ras(points), vol.sample_nearest_ras(points))
    assert read_volume(tmp_path / "dicom").shape == back.shape


def test_bad_paths_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="No such file"):
        read_volume(tmp_path / "missing.nii.gz")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="supported"):
        read_volume(tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No DICOM series"):
        read_volume(tmp_path / "empty")
    with pytest.raises(ValueError, match="use one of"):
        write_volume(make_volume("axial-ras"), tmp_path / "out.png")


@pytest.mark.data
def test_real_scans_read_with_their_geometry(shared_data):
    t2 = read_volume(shared_data / "sct_t2_lumbar.nii.gz")
    assert t2.size_ijk == (38, 257, 201)
    np.testing.assert_allclose(t2.spacing, (1.0, 1.0, 1.0), atol=1e-3)
    assert t2.array.dtype == np.int16
    seg = read_volume(shared_data / "totalseg_example_ct_sm_seg.nii.gz")
    ct = read_volume(shared_data / "totalseg_example_ct_sm.nii.gz")
    assert seg.is_label and not ct.is_label
    assert seg.same_geometry(ct, atol=1e-3)
    assert {30, 31}.issubset(set(np.unique(seg.array).tolist()))  # L2 and L1 in the TotalSegmentator convention
    mr = read_volume(shared_data / "totalseg_example_mr_sm.nii.gz")
    assert mr.shape == (20, 91, 117)
