"""File I/O through SimpleITK: NIfTI, NRRD, MetaImage, DICOM series; the real shared scans."""

from __future__ import annotations

import numpy as np
import pytest

from lumbarspine.io import read_dicom_series, read_volume, read_volume_geometry, write_dicom_series, write_volume

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


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
@pytest.mark.parametrize("geometry", ["oblique-aniso", "oblique-lefthanded", "axial-lps-aniso", "sagittal"])
@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_read_volume_geometry_matches_read_volume(tmp_path, suffix, geometry, dtype):
    """The header-only reader gives exactly read_volume's grid (RAS), name and label flag, and no data."""
    name = "case_seg" if dtype == np.uint8 else "case"
    vol = make_volume(geometry, shape=(7, 10, 12), dtype=dtype, is_label=dtype == np.uint8)
    path = write_volume(vol, tmp_path / f"{name}{suffix}")
    full = read_volume(path)
    geo = read_volume_geometry(path)
    assert geo.shape == full.shape == vol.shape
    assert geo.size_ijk == full.size_ijk
    assert geo.spacing == full.spacing  # exactly, not within a tolerance
    assert geo.origin == full.origin
    np.testing.assert_array_equal(geo.direction, full.direction)
    assert geo.is_right_handed == full.is_right_handed == vol.is_right_handed
    assert (geo.name, geo.is_label) == (full.name, full.is_label) == (name, dtype == np.uint8)
    assert geo.array.dtype == full.array.dtype
    np.testing.assert_array_equal(geo.ijk_to_ras, full.ijk_to_ras)
    # a placeholder: no voxel data held, and it cannot be written into
    assert geo.array.strides == (0, 0, 0) and not geo.array.flags.writeable
    assert not np.any(geo.array)
    assert read_volume_geometry(path, is_label=True, name="other").is_label
    assert read_volume_geometry(path, name="other").name == "other"


def test_read_volume_geometry_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="No such file"):
        read_volume_geometry(tmp_path / "missing.nii.gz")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="supported"):
        read_volume_geometry(tmp_path / "notes.txt")
    (tmp_path / "garbage.nii.gz").write_bytes(b"not a volume at all" * 10)
    with pytest.raises(ValueError, match="garbage.nii.gz"):
        read_volume_geometry(tmp_path / "garbage.nii.gz")
    (tmp_path / "garbage.nrrd").write_bytes(b"not a volume at all" * 10)
    with pytest.raises(ValueError, match="Cannot read .*garbage.nrrd"):
        read_volume_geometry(tmp_path / "garbage.nrrd")
    vol = make_volume("oblique-aniso", shape=(20, 30, 40), dtype=np.float32)
    # truncated NIfTI files are still refused without reading their voxels (size / gzip length checks)
    for suffix in (".nii", ".nii.gz"):
        path = write_volume(vol, tmp_path / f"whole{suffix}")
        raw = path.read_bytes()
        cut = tmp_path / f"cut{suffix}"
        cut.write_bytes(raw[: len(raw) // 2])
        with pytest.raises(ValueError, match="truncated|damaged"):
            read_volume_geometry(cut)
        with pytest.raises(ValueError, match="truncated|damaged"):
            read_volume(cut)
    # 2D images are refused as read_volume refuses them
    import SimpleITK as sitk

    sitk.WriteImage(sitk.Image([8, 9], sitk.sitkUInt8), str(tmp_path / "flat.nrrd"))
    with pytest.raises(ValueError, match="2D image"):
        read_volume_geometry(tmp_path / "flat.nrrd")
    with pytest.raises(ValueError, match="2D image"):
        read_volume(tmp_path / "flat.nrrd")


def test_read_volume_geometry_accepts_a_multi_member_gzip(tmp_path):
    """A .nii.gz made of several gzip members (bgzip) has no single length trailer: the full check decides."""
    import gzip

    vol = make_volume("oblique-lefthanded", shape=(6, 8, 10), dtype=np.int16)
    plain = write_volume(vol, tmp_path / "vol.nii", compress=False).read_bytes()
    half = len(plain) // 2
    path = tmp_path / "members.nii.gz"
    path.write_bytes(gzip.compress(plain[:half]) + gzip.compress(plain[half:]))
    geo = read_volume_geometry(path)
    full = read_volume(path)
    assert geo.shape == full.shape and geo.origin == full.origin and geo.spacing == full.spacing
    np.testing.assert_array_equal(full.array, vol.array)


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
