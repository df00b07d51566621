"""Stenosis grading measured against the phantom's analytic truth (areas, grades, routine axial area)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lumbarspine.anatomy.build import anatomy_from_labels
from lumbarspine.grading import GradingThresholds, class_probabilities, confidence, grade_anatomy
from lumbarspine.grading.core import PROFILE_FIT_HALF_WIDTH_MM, fit_profile
from lumbarspine.grading.measure import MaskField, measure_plane
from lumbarspine.labels import DISC_LEVELS
from lumbarspine.phantom import PhantomSpec, generate_phantom
from lumbarspine.volume import Volume

# true areas chosen around the thresholds (100, 75 mm2), each more than 5 % away from both
STENOSIS = {"L1-L2": 108.0, "L2-L3": 92.0, "L3-L4": 80.0, "L4-L5": 60.0}
EXPECTED = {"L1-L2": "normal_mild", "L2-L3": "moderate", "L3-L4": "moderate", "L4-L5": "severe", "L5-S1": "normal_mild"}

_CACHE: dict = {}


def graded(spacing=(1.0, 1.0, 1.0), orientation="axial", stenosis=None, thresholds=None):
    key = (spacing, orientation, tuple(sorted((stenosis or STENOSIS).items())))
    if key not in _CACHE:
        phantom = generate_phantom(PhantomSpec(stenosis=stenosis or STENOSIS, spacing=spacing, orientation=orientation))
        anatomy = anatomy_from_labels(phantom.labels, modality="ct", numbering="imported", source="phantom")
        _CACHE[key] = (phantom, anatomy, grade_anatomy(anatomy))
    phantom, anatomy, result = _CACHE[key]
    if thresholds is not None:
        result = grade_anatomy(anatomy, thresholds=thresholds)
    return phantom, anatomy, result


def _true_area(phantom, level):
    return phantom.truth["levels"][level]["dural_sac_area_mm2"]


@pytest.mark.parametrize(
    "spacing,orientation",
    [((1.0, 1.0, 1.0), "axial"), ((1.0, 1.0, 1.0), "sagittal"), ((1.0, 1.0, 1.0), "oblique-lefthanded")],
)
def test_area_within_3_percent_on_isotropic_grids(spacing, orientation):
    phantom, _, result = graded(spacing, orientation)
    assert [lv.level for lv in result.levels] == list(DISC_LEVELS)
    for lv in result.levels:
        truth = _true_area(phantom, lv.level)
        assert lv.status == "measured", lv.reason
        assert abs(lv.area_mm2 - truth) <= max(0.03 * truth, 3.0), (lv.level, lv.area_mm2, truth)
        # the plane is perpendicular to the canal: within 2 degrees of the analytic tangent
        normal = lv.minimum.normal_ras
        cosine = abs(float(normal @ np.asarray(phantom.truth["levels"][lv.level]["plane_normal_ras"])))
        assert math.degrees(math.acos(min(1.0, cosine))) < 2.0
        # the AP line runs towards the disc, the transverse width across it
        assert lv.minimum.ap_diameter_mm == pytest.approx(phantom.truth["levels"][lv.level]["ap_diameter_mm"], abs=1.0)
        assert lv.minimum.transverse_width_mm == pytest.approx(
            phantom.truth["levels"][lv.level]["lateral_diameter_mm"], abs=1.0
        )
        assert lv.grade == EXPECTED[lv.level]


def test_area_within_7_percent_on_thick_axial_stacks():
    phantom, _, result = graded((0.6, 0.6, 4.0), "axial")
    for lv in result.levels:
        truth = _true_area(phantom, lv.level)
        assert abs(lv.area_mm2 - truth) <= 0.07 * truth, (lv.level, lv.area_mm2, truth)
        assert lv.grade == EXPECTED[lv.level]
        # the slice-thickness term of the uncertainty is larger than on 1 mm data at the narrowed levels
    iso = graded((1.0, 1.0, 1.0), "axial")[2]
    assert result.level("L4-L5").slice_sd_mm2 > iso.level("L4-L5").slice_sd_mm2


def test_area_is_stable_when_the_grid_turns_20_degrees():
    """Axial grid vs the 'oblique' grid (20 deg about R, then 15 deg about A), 0.7 mm voxels: within 2 %.

    (At 1 mm see the next test: there the voxel raster of the label map alone moves a 60 mm2 section
    by more than 2 % between grids.)"""
    stenosis = {"L3-L4": 90.0, "L4-L5": 60.0}
    _, _, axial = graded((0.7, 0.7, 0.7), "axial", stenosis)
    _, _, oblique = graded((0.7, 0.7, 0.7), "oblique", stenosis)
    for a, b in zip(axial.levels, oblique.levels):
        assert a.level == b.level
        assert abs(a.area_mm2 - b.area_mm2) <= 0.02 * a.area_mm2, (a.level, a.area_mm2, b.area_mm2)


@pytest.mark.parametrize("orientation,axis", [("axial", 0), ("oblique-lefthanded", 1)])
def test_area_at_1mm_is_invariant_when_the_label_map_itself_turns_20_degrees(orientation, axis):
    """The whole 1 mm volume turned rigidly by 20 degrees (its direction matrix and origin, the voxels
    unchanged, as a hardened transform without resampling): every level within 0.2 % (measured: at
    most 0.06 %). The method is rotation invariant; what moves between the grids of the next test is
    the label map itself (a different voxel raster of the same anatomy)."""
    stenosis = {"L3-L4": 90.0, "L4-L5": 60.0}
    phantom, _, result = graded((1.0, 1.0, 1.0), orientation, stenosis)
    labels = phantom.labels
    angle = math.radians(20.0)
    turn = np.eye(3)
    b, c = [k for k in range(3) if k != axis]
    turn[b, b] = turn[c, c] = math.cos(angle)
    turn[b, c], turn[c, b] = -math.sin(angle), math.sin(angle)
    centre = labels.ijk_to_ras_points(np.asarray(labels.size_ijk, dtype=float)[None, :] / 2.0)[0]
    origin = turn @ (np.asarray(labels.origin) - centre) + centre
    turned = Volume(labels.array, labels.spacing, tuple(origin), turn @ np.asarray(labels.direction), is_label=True)
    again = grade_anatomy(anatomy_from_labels(turned, modality="ct", numbering="imported", source="phantom"))
    for a, b_ in zip(result.levels, again.levels):
        assert a.level == b_.level
        assert abs(a.area_mm2 - b_.area_mm2) <= 0.002 * a.area_mm2, (a.level, a.area_mm2, b_.area_mm2)
        # the plane turned with the volume
        assert float(np.dot(turn @ a.minimum.normal_ras, b_.minimum.normal_ras)) > math.cos(math.radians(0.5))


def _true_plane_area(phantom, level: str) -> float:
    """The label map's single-plane area in the phantom's true plane (no centreline, no search)."""
    entry = phantom.truth["levels"][level]
    section = measure_plane(
        MaskField(phantom.labels),
        np.asarray(entry["plane_center_ras"]),
        np.asarray(entry["plane_normal_ras"]),
        np.asarray(entry["ap_direction_ras"]),
        with_outline=False,
    )
    return section.area_mm2


@pytest.mark.parametrize("orientation", ["oblique", "oblique-lefthanded"])
def test_area_at_1mm_when_the_grid_turns_20_degrees(orientation):
    """1 mm voxels, axial grid vs a grid turned by 20-25 degrees: the measured truth.

    The 2 % target holds at the 90-163 mm2 levels (measured: at most 1.7 %). At the 60 mm2 level the
    turned grids differ by up to 3.7 % (oblique-lefthanded), and that difference is already in the
    label maps: measured in the phantom's true plane, with no centreline or search of ours, they
    differ by 3.5 %. Over phantoms regenerated on randomly turned and shifted 1 mm grids a single
    plane of a 60 mm2 section scatters by about 2-2.5 % (one sd; scripts/benchmarks/grading-*.md,
    section "Rotation"), so no measurement of these crisp labels can promise 2 % there; the profile
    fit of the minimum removed what the method added (raw minimum 2.4 % -> fit 1.7 % at L3-L4 of the
    oblique grid, where the label maps agree within 0.1 % in the true plane). Measured on the phantom's
    partial-volume sac map instead, the same grids agree within 0.2 % at every level:
    test_grading_partial_volume.py."""
    stenosis = {"L3-L4": 90.0, "L4-L5": 60.0}
    ph_a, _, axial = graded((1.0, 1.0, 1.0), "axial", stenosis)
    ph_b, _, turned = graded((1.0, 1.0, 1.0), orientation, stenosis)
    for a, b in zip(axial.levels, turned.levels):
        assert a.level == b.level
        spread = abs(a.area_mm2 - b.area_mm2) / a.area_mm2
        assert spread <= 0.04, (a.level, a.area_mm2, b.area_mm2)
        if a.area_mm2 >= 85.0:
            assert spread <= 0.02, (a.level, a.area_mm2, b.area_mm2)
        elif spread > 0.02:
            # the excess over 2 % is the label maps' own: their true-plane areas differ by nearly as much
            true_spread = abs(_true_plane_area(ph_a, a.level) - _true_plane_area(ph_b, a.level)) / a.area_mm2
            assert true_spread >= spread - 0.005, (a.level, spread, true_spread)


def test_thresholds_are_parameters():
    phantom, _, result = graded()
    strict = GradingThresholds(area_moderate_mm2=111.0, area_severe_mm2=85.0)
    _, _, stricter = graded(thresholds=strict)
    assert result.level("L1-L2").grade == "normal_mild" and stricter.level("L1-L2").grade == "moderate"
    assert result.level("L3-L4").grade == "moderate" and stricter.level("L3-L4").grade == "severe"
    assert stricter.thresholds.to_dict()["area_moderate_mm2"] == 111.0
    with pytest.raises(ValueError, match="area_severe_mm2 < area_moderate_mm2"):
        GradingThresholds(area_moderate_mm2=70.0)
    with pytest.raises(ValueError, match="finite number"):
        GradingThresholds(ap_severe_mm=float("nan"))


def test_confidence_and_borderline_follow_the_uncertainty():
    _, _, result = graded()
    for lv in result.levels:
        distance = min(abs(lv.area_mm2 - 100.0), abs(lv.area_mm2 - 75.0))
        assert lv.area_sd_mm2 > 0
        assert lv.borderline == (distance < lv.area_sd_mm2)
        assert 0.5 <= lv.confidence <= 1.0
        assert lv.confidence == pytest.approx(0.5 * (1 + math.erf(distance / lv.area_sd_mm2 / math.sqrt(2))))
        assert sum(lv.probabilities.values()) == pytest.approx(1.0)
        assert max(lv.probabilities, key=lv.probabilities.get) == lv.grade
    # the boundary term is about perimeter x 0.29 voxel at 1 mm
    lv = result.level("L5-S1")
    assert lv.boundary_sd_mm2 == pytest.approx(lv.minimum.perimeter_mm / math.sqrt(12.0), rel=0.05)
    # far from a threshold: confident; on it: a coin toss
    assert confidence(160.0, 10.0, 100.0, 75.0) == (pytest.approx(1.0), False)
    assert confidence(100.0, 10.0, 100.0, 75.0) == (pytest.approx(0.5), True)
    p = class_probabilities(75.0, 5.0, 100.0, 75.0)
    assert p["severe"] == pytest.approx(0.5) and p["normal_mild"] < 1e-4


def test_mid_vertebral_references_and_ratio():
    phantom, _, result = graded()
    names = [r.vertebra for r in result.references]
    assert names == ["L1", "L2", "L3", "L4", "L5"]
    normal = phantom.truth["canal"]["normal_sac_area_mm2"]
    for ref in result.references:
        assert ref.area_mm2 == pytest.approx(normal, rel=0.03)
    lv = result.level("L4-L5")
    assert lv.reference.vertebra in ("L4", "L5")
    assert lv.area_ratio == pytest.approx(60.0 / normal, rel=0.05)


def test_routine_axial_area_equals_an_independent_count():
    """The acquired-slice area against SimpleITK: its own index of the level point, its own components."""
    import SimpleITK as sitk

    phantom, _, result = graded((0.6, 0.6, 4.0), "axial")
    image = phantom.labels.to_sitk()
    for lv in result.levels:
        centre = np.asarray(lv.mid.center_ras)
        index = image.TransformPhysicalPointToIndex([float(-centre[0]), float(-centre[1]), float(centre[2])])
        k = index[2]
        plane = image[:, :, k]
        sac = sitk.BinaryThreshold(plane, 1, 2, 1, 0)
        components = sitk.ConnectedComponent(sac, True)
        stats = sitk.LabelShapeStatisticsImageFilter()
        stats.Execute(components)
        label = components[index[0], index[1]]
        assert label > 0
        expected = stats.GetPhysicalSize(label)
        entry = lv.to_dict()
        assert entry["axial_slice"]["slice_index"] == k
        assert entry["axial_slice_area_mm2"] == pytest.approx(expected, abs=0.01), lv.level
        # a routine axial read overestimates the area where the canal is oblique to the slices (L5-S1)
    l5 = result.level("L5-S1")
    assert l5.axial.area_mm2 > l5.area_mm2


def test_non_axial_images_say_why_the_axial_area_is_missing():
    _, _, result = graded((1.0, 1.0, 1.0), "sagittal")
    for lv in result.levels:
        entry = lv.to_dict()
        assert entry["axial_slice_area_mm2"] is None
        assert "not an axial stack" in entry["axial_slice"]["reason"]
        assert entry["lateral_recess"].startswith("not measured")


def _crop_k(volume: Volume, k0: int, k1: int) -> Volume:
    origin = volume.ijk_to_ras_points(np.array([[0, 0, k0]]))[0]
    return Volume(
        np.ascontiguousarray(volume.array[k0:k1]), volume.spacing, tuple(origin), volume.direction, volume.is_label
    )


def test_a_level_outside_the_field_of_view_is_listed_with_its_reason():
    phantom, _, _ = graded()
    labels = phantom.labels  # axial: k runs inferior -> superior
    disc_k = np.argwhere(labels.array == 93)[:, 0]  # L2-L3
    cropped = _crop_k(labels, 0, int(disc_k.max()) + 4)  # keeps L2-L3 and below, cuts L1-L2 off
    before = cropped.array.copy()
    anatomy = anatomy_from_labels(cropped, modality="ct", numbering="imported", source="phantom")
    result = grade_anatomy(anatomy)
    np.testing.assert_array_equal(cropped.array, before)
    first = result.levels[0].to_dict()
    assert first["level"] == "L1-L2" and first["status"] == "outside field of view"
    assert "not in the segmentation" in first["reason"] and first["dural_sac_area_mm2"] is None
    assert [lv.level for lv in result.levels if lv.measured] == ["L2-L3", "L3-L4", "L4-L5", "L5-S1"]


def test_unnumbered_levels_keep_their_names():
    phantom, _, _ = graded()
    array = phantom.labels.array.astype(np.uint16)
    for n, value in enumerate((92, 93, 94, 95, 100), start=1):
        array[phantom.labels.array == value] = 350 + n
    for n, value in enumerate((41, 42, 43, 44, 45), start=1):
        array[phantom.labels.array == value] = 300 + n
    array[phantom.labels.array == 50] = 0
    labels = phantom.labels.with_array(array.astype(np.uint16))
    result = grade_anatomy(anatomy_from_labels(labels, modality="ct", numbering=None, source="test"))
    assert [lv.level for lv in result.levels] == ["disc 1", "disc 2", "disc 3", "disc 4", "disc 5"]
    assert result.level("disc 4").grade == "severe"
    assert result.level("disc 4").to_dict()["rsna_target"] is None


def test_grading_errors_say_what_is_wrong():
    phantom, _, _ = graded()
    labels = phantom.labels
    no_sac = labels.with_array(np.where(np.isin(labels.array, [1, 2]), 0, labels.array).astype(np.uint8))
    with pytest.raises(ValueError, match="No canal found"):
        grade_anatomy(anatomy_from_labels(no_sac, numbering="imported", source="test"))
    no_discs = labels.with_array(np.where(labels.array >= 90, 0, labels.array).astype(np.uint8))
    with pytest.raises(ValueError, match="No disc level"):
        grade_anatomy(anatomy_from_labels(no_discs, numbering="imported", source="test"))


def test_plane_measurement_of_a_known_disc_on_an_oblique_grid():
    """A cylinder of radius 6 mm along a known oblique axis, 0.5 mm voxels: area and diameters sub-voxel."""
    from geometry_cases import rotation

    direction = rotation(20, -10, 35)
    spacing = (0.5, 0.5, 0.5)
    n = 80
    origin = -direction @ (np.array(spacing) * (n - 1) / 2)
    ijk = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), axis=-1)[..., ::-1].reshape(-1, 3)
    grid = Volume(np.zeros((n, n, n), np.uint8), spacing, tuple(origin), direction, is_label=True)
    ras = grid.ijk_to_ras_points(ijk)
    axis = np.array([0.2, 0.3, 1.0]) / np.linalg.norm([0.2, 0.3, 1.0])
    radial = np.linalg.norm(ras - np.outer(ras @ axis, axis), axis=1)
    array = (radial <= 6.0).astype(np.uint8).reshape(n, n, n) * 2
    section = measure_plane(MaskField(grid.with_array(array)), np.zeros(3), axis, np.array([0.0, 1.0, 0.0]))
    assert section.area_mm2 == pytest.approx(math.pi * 36.0, rel=0.01)
    assert section.ap_diameter_mm == pytest.approx(12.0, abs=0.3)
    assert section.transverse_width_mm == pytest.approx(12.0, abs=0.3)
    # the 0.5 outline follows the voxel staircase a little, so the perimeter runs a few per cent long
    assert 2 * math.pi * 6.0 <= section.perimeter_mm <= 1.06 * 2 * math.pi * 6.0
    # the outline lies in the plane, on the cylinder
    assert np.abs(section.outline_ras @ axis).max() < 1e-6
    assert np.abs(np.linalg.norm(section.outline_ras, axis=1) - 6.0).max() < 0.5
    missing = measure_plane(MaskField(grid.with_array(array)), np.array([0.0, 15.0, 0.0]), axis)
    assert isinstance(missing, str) and "mm" in missing


def test_a_section_cut_by_the_field_of_view_is_flagged():
    phantom, _, _ = graded()
    labels = phantom.labels  # axial LPS grid: i runs towards patient left
    n = labels.size_ijk[0]
    r = labels.ijk_to_ras_points(np.stack([np.arange(n), np.zeros(n), np.zeros(n)], axis=1))[:, 0]
    keep = np.flatnonzero(r <= 4.0)  # the field of view ends 4 mm right of the sac's centre (sac: +-8 mm)
    origin = labels.ijk_to_ras_points(np.array([[keep[0], 0, 0]]))[0]
    cropped = Volume(
        np.ascontiguousarray(labels.array[:, :, keep[0] : keep[-1] + 1]),
        labels.spacing,
        tuple(origin),
        labels.direction,
        is_label=True,
    )
    result = grade_anatomy(anatomy_from_labels(cropped, modality="ct", numbering="imported", source="phantom"))
    lv = result.level("L4-L5")
    assert lv.minimum.cut_by_field_of_view
    assert any("field of view" in text for text in lv.to_dict()["quality_warnings"])
    assert any(w.startswith("L4-L5: the dural sac section is cut") for w in result.warnings)
    assert not graded()[2].level("L4-L5").minimum.cut_by_field_of_view  # the whole phantom is not cut


def test_profile_fit_keeps_a_parabola_and_smooths_noise():
    t = np.arange(-6.0, 6.001, 0.5)
    parabola = 60.0 + 1.5 * (t - 0.7) ** 2
    np.testing.assert_allclose(fit_profile(t, parabola), parabola, atol=1e-9)
    # a one-plane dip of 5 mm2 is mostly averaged away, the smooth minimum stays where it is
    dipped = parabola.copy()
    dipped[np.argmin(np.abs(t - 2.0))] -= 5.0
    fitted = fit_profile(t, dipped)
    assert dipped.min() < 58.0  # the raw minimum is the dip
    assert abs(t[np.argmin(fitted)] - 0.7) <= 0.5 and fitted.min() == pytest.approx(60.0, abs=1.0)
    # NaN stays NaN; too few samples in the window, or a one-sided window, gives the raw sample; 0 = raw profile
    holed = parabola.copy()
    holed[3] = np.nan
    out = fit_profile(t, holed)
    assert np.isnan(out[3]) and out[0] == holed[0] and out[-1] == holed[-1]
    np.testing.assert_array_equal(fit_profile(t, dipped, 0.0), dipped)
    sparse = np.array([0.0, 1.0, 2.0])
    np.testing.assert_array_equal(fit_profile(sparse, np.array([3.0, 1.0, 2.0])), [3.0, 1.0, 2.0])


def test_reported_area_is_the_minimum_of_the_fitted_disc_space_profile():
    phantom, _, result = graded()
    for lv in result.levels:
        entry = lv.to_dict()
        assert lv.fit_half_width_mm == PROFILE_FIT_HALF_WIDTH_MM  # 1 mm voxels: the fit is used
        t = np.array([p for p, _ in lv.search])
        fitted = fit_profile(t, np.array([a for _, a in lv.search]), lv.fit_half_width_mm)
        inner = np.abs(t - lv.t_mid_mm) <= lv.search_half_height_mm + 1e-9
        best = np.nanargmin(np.where(inner, fitted, np.nan))
        assert lv.t_min_mm == pytest.approx(t[best]) and lv.area_mm2 == pytest.approx(fitted[best])
        assert entry["dural_sac_area_mm2"] == pytest.approx(lv.area_mm2, abs=0.01)
        assert entry["plane_area_mm2"] == pytest.approx(lv.minimum.area_mm2, abs=0.01)
        # the drawn plane's own area is close to the fitted one (the fit only averages the raster)
        assert abs(lv.minimum.area_mm2 - lv.area_mm2) <= 0.03 * lv.area_mm2
    # thick slices cut across: the raw profile (its samples at the slice centres are exact)
    _, _, thick = graded((0.6, 0.6, 4.0), "axial")
    assert all(lv.fit_half_width_mm == 0.0 for lv in thick.levels)
