"""Issue #6 on the real scans: no false alarms from the integrity checks, a cut real file refused,
a real label map resampled as labels, the T2 presets at clinical sub-millimetre spacing."""

from __future__ import annotations

import numpy as np
import pytest

from lumbarspine.filters import apply_filter, apply_preset
from lumbarspine.io import check_nifti_integrity, read_volume
from lumbarspine.volume import Volume


@pytest.mark.data
def test_real_files_pass_the_integrity_check(shared_data):
    files = sorted(shared_data.glob("*.nii.gz"))
    assert files
    for path in files:
        info = check_nifti_integrity(path)
        assert info["data_bytes"] == info["expected_bytes"] - info["header"]["vox_offset"]
        assert info["nonfinite"] == 0
        read_volume(path)


@pytest.mark.data
def test_a_cut_real_scan_is_refused(shared_data, tmp_path):
    data = (shared_data / "sct_t2_lumbar.nii.gz").read_bytes()
    cut = tmp_path / "t2_download_interrupted.nii.gz"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(ValueError, match="Get the file again"):
        read_volume(cut)


@pytest.mark.data
def test_real_label_map_resampled_as_labels(shared_data):
    seg = read_volume(shared_data / "totalseg_example_ct_sm_seg.nii.gz")
    assert seg.is_label
    out = apply_filter(seg, "resample", spacing=1.5, backend="numpy").volume
    assert out.is_label and out.array.dtype == seg.array.dtype
    assert set(np.unique(out.array)) == set(np.unique(seg.array))
    # each label keeps its volume within a few percent (nearest neighbour on a finer grid)
    for value in (30, 31, 79):
        before = np.count_nonzero(seg.array == value) * np.prod(seg.spacing)
        after = np.count_nonzero(out.array == value) * np.prod(out.spacing)
        assert after == pytest.approx(before, rel=0.05)


@pytest.mark.data
@pytest.mark.parametrize("preset", ["t2-canal", "t2-smooth"])
def test_t2_presets_on_the_real_t2_at_0_4_mm(shared_data, preset):
    t2 = read_volume(shared_data / "sct_t2_lumbar.nii.gz")
    crop = Volume(
        np.asarray(t2.array)[80:110, 80:140, 10:28], spacing=t2.spacing, origin=t2.origin, direction=t2.direction
    )
    fine = apply_filter(crop, "resample", spacing=[1.0, 0.4, 0.4], backend="numpy").volume  # sagittal in-plane j, k
    out = apply_preset(fine, preset, backend="numpy").volume
    assert np.isfinite(out.array).all() and out.shape == fine.shape
