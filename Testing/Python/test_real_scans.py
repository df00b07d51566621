"""Smoke runs on the real scans in ../shared/data (skipped where that folder is absent).

The phantom gives the quantitative truth; these check that real-world inputs (int16 MRI in RAS, a
3 mm CT crop, LPS MRI, a TotalSegmentator label map) go through the filters, the presets and the
headless Slicer scene with their geometry intact and clear errors where the input does not fit.
"""

from __future__ import annotations

import numpy as np
import pytest

from lumbarspine.filters import apply_filter, apply_preset
from lumbarspine.io import read_volume

pytestmark = pytest.mark.data


def test_t2_canal_preset_on_the_real_lumbar_t2(shared_data):
    t2 = read_volume(shared_data / "sct_t2_lumbar.nii.gz")
    before = t2.array.copy()
    result = apply_preset(t2, "t2-canal", backend="numpy")
    out = result.volume
    np.testing.assert_array_equal(t2.array, before)
    assert out.same_geometry(t2) and out.array.dtype == np.float32
    assert np.isfinite(out.array).all()
    # z-score inside Otsu's foreground: the bright tissue is centred near 0 with unit spread
    foreground = out.array[t2.array > np.percentile(t2.array, 60)]
    assert abs(float(np.median(foreground))) < 1.5 and 0.2 < float(foreground.std()) < 3.0


@pytest.mark.parametrize("name", ["totalseg_example_ct_sm.nii.gz", "totalseg_example_mr_sm.nii.gz"])
def test_filters_keep_the_geometry_of_real_scans(shared_data, name):
    scan = read_volume(shared_data / name)
    for filter_name, params in [
        ("gaussian", {"sigma": 2.0}),
        ("median", {"radius": 1}),
        ("resample", {"spacing": 2.0}),
    ]:
        out = apply_filter(scan, filter_name, backend="numpy", **params).volume
        assert np.isfinite(out.array).all()
        if filter_name == "resample":
            np.testing.assert_allclose(out.spacing, (2.0, 2.0, 2.0))
            np.testing.assert_allclose(out.direction, scan.direction, atol=1e-9)
            lo, hi = scan.bounds_ras()
            olo, ohi = out.bounds_ras()
            assert np.all(olo >= lo - 3.0) and np.all(ohi <= hi + 3.0)  # same physical extent
        else:
            assert out.same_geometry(scan)


def test_ct_bone_preset_on_the_real_ct(shared_data):
    ct = read_volume(shared_data / "totalseg_example_ct.nii.gz")
    out = apply_preset(ct, "ct-bone", backend="numpy").volume
    assert out.same_geometry(ct)
    bone = read_volume(shared_data / "totalseg_example_ct_sm_seg.nii.gz")
    assert bone.is_label and float(out.array.max()) > 300.0  # vertebral bone survives the chain


@pytest.mark.slicer
def test_real_scan_and_labels_through_the_headless_scene(shared_data, slicer_scene, tmp_path):
    from lumbarspine.scene import load_scene, save_scene
    from lumbarspine.slicer_nodes import labels_to_segmentation_node, volume_from_node, volume_to_node

    ct = read_volume(shared_data / "totalseg_example_ct_sm.nii.gz")
    seg = read_volume(shared_data / "totalseg_example_ct_sm_seg.nii.gz")
    volume_to_node(ct, slicer_scene.scene, name="ct")
    node = labels_to_segmentation_node(seg, slicer_scene.scene, name="totalseg")
    assert node.GetSegmentation().GetNumberOfSegments() == len(np.unique(seg.array)) - 1
    path = save_scene(slicer_scene, tmp_path / "real.mrb")
    reloaded = load_scene(path)
    ct_node = next(n for n in reloaded.data_nodes() if n.GetName() == "ct")
    back = volume_from_node(ct_node)
    assert back.same_geometry(ct, atol=1e-4)
    np.testing.assert_array_equal(back.array, ct.array)
