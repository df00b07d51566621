"""Grading from a partial-volume (probability) map of the dural sac: the phantom's sub-voxel sac, the
rotation target at 1 mm that the crisp labels cannot meet, the thick-slice rule, bad maps, the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import integrate, ndimage

from lumbarspine.anatomy.build import anatomy_from_labels
from lumbarspine.cli import main
from lumbarspine.grading import grade_anatomy
from lumbarspine.grading.core import FRACTION_MAX_SPACING_MM
from lumbarspine.grading.measure import MaskField, check_sac_fraction
from lumbarspine.labels import DISC_LEVELS, SPINAL_CANAL
from lumbarspine.phantom import PhantomSpec, generate_phantom, sac_fraction
from lumbarspine.phantom.anatomy import build_layout, sac_semi_axes
from lumbarspine.phantom.rasterize import SAC_END_BELOW_S1_MM
from lumbarspine.volume import Volume

STENOSIS = {"L3-L4": 90.0, "L4-L5": 60.0}
_CACHE: dict = {}


def _graded(spacing, orientation):
    key = (spacing, orientation)
    if key not in _CACHE:
        phantom = generate_phantom(PhantomSpec(stenosis=STENOSIS, spacing=spacing, orientation=orientation))
        fraction = sac_fraction(phantom)
        anatomy = anatomy_from_labels(phantom.labels, modality="ct", numbering="imported", source="phantom")
        before = np.array(fraction.array, copy=True)
        result = grade_anatomy(anatomy, sac_fraction=fraction, sac_fraction_source="phantom partial volume")
        assert np.array_equal(fraction.array, before)  # the map is not modified
        _CACHE[key] = (phantom, fraction, anatomy, result)
    return _CACHE[key]


def _analytic_sac_volume_mm3(stenosis) -> float:
    """Volume of the phantom's sac: the integral of its elliptic area along the arc (Pappus: the
    ellipse is centred on the canal's arc, so the curvature term integrates to zero)."""
    layout = build_layout()
    lo = max(layout.s_min, layout.sacrum_s_top - SAC_END_BELOW_S1_MM)

    def area(s: float) -> float:
        a, b = sac_semi_axes(np.array([s]), layout, stenosis)
        return math.pi * float(a[0]) * float(b[0])

    points = [disc.s_center for disc in layout.discs if lo < disc.s_center < layout.s_max]
    value, _ = integrate.quad(area, lo, layout.s_max, points=points, limit=200)
    return value


@pytest.mark.parametrize("spacing,orientation", [((1.0, 1.0, 1.0), "oblique-lefthanded"), ((0.6, 0.6, 4.0), "axial")])
def test_phantom_sac_fraction_integrates_to_the_analytic_volume(spacing, orientation):
    phantom, fraction, _, _ = _graded(spacing, orientation)
    values = np.asarray(fraction.array)
    assert values.dtype == np.float32 and fraction.same_geometry(phantom.labels) and not fraction.is_label
    assert values.min() >= 0.0 and values.max() <= 1.0
    crisp = np.asarray(phantom.labels.array) == SPINAL_CANAL
    # fully inside / outside voxels keep their crisp value; only a boundary band is fractional
    partial = (values > 0.0) & (values < 1.0)
    assert partial.any() and np.count_nonzero(partial) < 0.6 * np.count_nonzero(crisp)
    truth = _analytic_sac_volume_mm3(STENOSIS)
    measured = float(values.sum(dtype=np.float64)) * fraction.voxel_volume_mm3
    assert measured == pytest.approx(truth, rel=0.002), (measured, truth)


def test_area_at_1mm_is_stable_within_2_percent_when_the_grid_turns_20_degrees():
    """The issue's rotation target at 1 mm, on grids regenerated 20-25 degrees turned (not the same
    voxels turned): from the crisp labels the 60 mm2 level moves 3.7 % (test_grading.py), from the
    partial-volume map at most 0.16 % (measured), and every level is within 1 % of the truth."""
    _, _, _, axial = _graded((1.0, 1.0, 1.0), "axial")
    for orientation in ("oblique", "oblique-lefthanded"):
        phantom, _, _, turned = _graded((1.0, 1.0, 1.0), orientation)
        assert turned.method["sac_fraction"] == "used (phantom partial volume)"
        assert "partial-volume map" in turned.method["area"]
        for a, b in zip(axial.levels, turned.levels):
            assert a.level == b.level and b.status == "measured"
            assert abs(a.area_mm2 - b.area_mm2) <= 0.02 * a.area_mm2, (orientation, a.level, a.area_mm2, b.area_mm2)
            assert abs(a.area_mm2 - b.area_mm2) <= 0.005 * a.area_mm2, (orientation, a.level, a.area_mm2, b.area_mm2)
            truth = phantom.truth["levels"][b.level]["dural_sac_area_mm2"]
            assert abs(b.area_mm2 - truth) <= 0.01 * truth, (orientation, b.level, b.area_mm2, truth)
            assert b.minimum.ap_diameter_mm == pytest.approx(
                phantom.truth["levels"][b.level]["ap_diameter_mm"], abs=0.5
            )


def test_the_labels_still_give_levels_and_the_acquired_slice_area():
    phantom, _, anatomy, with_map = _graded((1.0, 1.0, 1.0), "axial")
    crisp = grade_anatomy(anatomy)
    assert [lv.level for lv in with_map.levels] == list(DISC_LEVELS)
    for a, b in zip(crisp.levels, with_map.levels):
        assert b.axial.area_mm2 == a.axial.area_mm2  # the routine read counts the label map's pixels
        assert b.t_mid_mm == pytest.approx(a.t_mid_mm, abs=0.3)
        assert b.grade == a.grade


def test_a_map_with_thick_slices_is_checked_but_the_labels_are_measured():
    """0.6 x 0.6 x 4 mm: the map's slice partial volume would read the 60 mm2 stenosis 7.5 % high."""
    assert FRACTION_MAX_SPACING_MM == 2.0
    _, _, anatomy, result = _graded((0.6, 0.6, 4.0), "axial")
    crisp = grade_anatomy(anatomy)
    assert result.method["sac_fraction"].startswith("not used: its voxels are 4 mm thick")
    assert any("sac probability map was not used" in w for w in result.warnings)
    for a, b in zip(crisp.levels, result.levels):
        assert b.area_mm2 == a.area_mm2


def _labels_and_map():
    phantom, fraction, anatomy, _ = _graded((1.0, 1.0, 1.0), "axial")
    return phantom, fraction, anatomy


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda a: np.where(a > 0.5, np.nan, a).astype(np.float32), "NaN or infinite"),
        (lambda a: (a * 255).astype(np.float32), "divide it by 100 or 255"),
        (lambda a: a - 0.5, "fractions in \\[0, 1\\]"),
        (lambda a: np.zeros_like(a), "no voxel at 0.5 or above"),
        (lambda a: np.roll(a, 25, axis=2), "does not match the segmentation's dural sac"),
        # the whole bony canal and more (a structure far bigger than the sac)
        (lambda a: ndimage.binary_dilation(a > 0, iterations=6).astype(np.float32), "sac volume is [3-9]"),
    ],
)
def test_bad_maps_are_refused_with_what_to_do(change, message):
    _, fraction, anatomy = _labels_and_map()
    bad = fraction.with_array(np.asarray(change(np.asarray(fraction.array))))
    with pytest.raises(ValueError, match=message):
        grade_anatomy(anatomy, sac_fraction=bad)


def test_a_label_map_or_a_non_volume_is_refused():
    phantom, _, anatomy = _labels_and_map()
    with pytest.raises(ValueError, match="fractions in \\[0, 1\\].*--segmentation"):
        grade_anatomy(anatomy, sac_fraction=phantom.labels)
    with pytest.raises(ValueError, match="must be a lumbarspine Volume"):
        grade_anatomy(anatomy, sac_fraction=np.zeros((3, 3, 3)))


def test_a_map_on_another_grid_of_the_same_patient_is_measured():
    """The map need not share the label grid: the 0.7 mm map of the same phantom measures within 1 %."""
    phantom, _, anatomy = _labels_and_map()
    fine = sac_fraction(
        generate_phantom(PhantomSpec(stenosis=STENOSIS, spacing=(0.7, 0.7, 0.7), orientation="oblique"))
    )
    field_ = check_sac_fraction(fine, anatomy.labels)
    assert isinstance(field_, MaskField) and field_.values == ()
    result = grade_anatomy(anatomy, sac_fraction=fine)
    for lv in result.levels:
        truth = phantom.truth["levels"][lv.level]["dural_sac_area_mm2"]
        assert abs(lv.area_mm2 - truth) <= 0.01 * truth, (lv.level, lv.area_mm2, truth)
    assert result.method["sac_fraction_spacing_mm"] == (0.7, 0.7, 0.7)


def test_phantom_and_grade_commands_write_and_use_the_map(tmp_path):
    folder = tmp_path / "phantom"
    assert main(["phantom", "--out", str(folder), "--modality", "t2", "--stenosis", "L4-L5=60", "--sac-fraction"]) == 0
    assert (folder / "sac_fraction.nii.gz").exists()
    out = tmp_path / "graded"
    args = ["grade", str(folder / "image.nii.gz"), "--segmentation", str(folder / "labels.nii.gz"), "--quiet"]
    assert (
        main([*args, "--sac-probability", str(folder / "sac_fraction.nii.gz"), "--no-pictures", "--out", str(out)]) == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert report["input"]["sac_probability"]["path"].endswith("sac_fraction.nii.gz")
    assert report["input"]["sac_probability"]["measured"].startswith("used (sac probability map ")
    truth = json.loads((folder / "truth.json").read_text())
    for entry in report["levels"]:
        expected = truth["levels"][entry["level"]]["dural_sac_area_mm2"]
        assert abs(entry["dural_sac_area_mm2"] - expected) <= 0.01 * expected, entry
    # a map that is not a fraction: exit status 2 and nothing written
    bad = tmp_path / "bad"
    assert main([*args, "--sac-probability", str(folder / "labels.nii.gz"), "--out", str(bad)]) == 2
    assert not bad.exists()
    missing = tmp_path / "missing"
    assert main([*args, "--sac-probability", str(tmp_path / "nope.nii.gz"), "--out", str(missing)]) == 2
    assert not missing.exists()


def test_an_integer_mask_counts_as_a_crisp_fraction():
    """A 0/1 integer mask of the sac is a valid (crisp) map: it measures what the labels measure."""
    phantom, _, anatomy = _labels_and_map()
    mask = Volume(
        (np.asarray(phantom.labels.array) == SPINAL_CANAL).astype(np.uint8),
        phantom.labels.spacing,
        phantom.labels.origin,
        phantom.labels.direction,
    )
    crisp = grade_anatomy(anatomy)
    result = grade_anatomy(anatomy, sac_fraction=mask)
    for a, b in zip(crisp.levels, result.levels):
        assert b.area_mm2 == pytest.approx(a.area_mm2, abs=1e-6)
