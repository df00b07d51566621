"""Grading the real lumbar T2 (../shared/data) from its automatic segmentation: plausible numbers.

Skipped where the shared data folder is absent. Until the T2 segmentation found the cord (issue #8),
the sac at one level was only the CSF crescent in front of the conus (about 5 mm wide), which the
width bound caught; the cord and the CSF around it are now one sac (labels 1 and 2).
"""

from __future__ import annotations

import pytest


@pytest.mark.data
def test_real_t2_grades_with_plausible_numbers(shared_data, tmp_path):
    from lumbarspine.grading import grade_study

    summary = grade_study(shared_data / "sct_t2_lumbar.nii.gz", tmp_path, pictures=True)
    report = summary["report"]
    measured = [lv for lv in report["levels"] if lv["dural_sac_area_mm2"] is not None]
    assert len(measured) >= 3, report["levels"]
    for lv in report["levels"]:
        if lv["dural_sac_area_mm2"] is None:
            assert lv["reason"], lv  # a level that is not measured says why
            continue
        # adult lumbar dural sac: tens to a few hundred mm2, AP 5-25 mm, width 8-30 mm (sagittal 1 mm scan)
        assert 30.0 < lv["dural_sac_area_mm2"] < 350.0, lv
        assert 4.0 < lv["ap_diameter_mm"] < 25.0, lv
        assert 8.0 < lv["transverse_width_mm"] < 30.0, lv
        assert lv["central_canal_grade"] in ("normal_mild", "moderate", "severe")
        assert 0.5 <= lv["confidence"] <= 1.0
        assert lv["axial_slice_area_mm2"] is None  # sagittal acquisition
        assert (tmp_path / f"plane_{lv['level'].replace(' ', '_').replace('-', '_')}.png").is_file()
    assert (tmp_path / "area_along_canal.png").is_file()
