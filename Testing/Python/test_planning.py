"""Pedicle screw planning and breach evaluation, checked against the phantom's truth and independently."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from lumbarspine.anatomy.build import anatomy_from_labels
from lumbarspine.phantom import PhantomSpec, generate_phantom
from lumbarspine.planning import PlanningMaps, PlanningParameters, evaluate_screw, gertzbein_robbins, plan_screws
from lumbarspine.planning.screws import SCREW_DIAMETERS_MM, SCREW_LENGTHS_MM
from lumbarspine.volume import Volume

from geometry_cases import screw_surface_ijk

GRIDS = {
    # coarse grids keep it fast: isotropic axial, oblique, anisotropic left-handed (LPS-like, 2 mm slices)
    "axial": dict(orientation="axial", spacing=(1.2, 1.2, 1.2)),
    "oblique": dict(orientation="oblique", spacing=(1.0, 1.1, 1.2)),
    "aniso-lefthanded": dict(orientation="axial-lps-lefthanded", spacing=(0.9, 0.9, 2.0)),
}
LEVELS = ("L1", "L2", "L3", "L4", "L5", "S1")


@pytest.fixture(scope="module")
def plans():
    out = {}
    for key, grid in GRIDS.items():
        phantom = generate_phantom(PhantomSpec(**grid))
        anatomy = anatomy_from_labels(phantom.labels, modality="ct", numbering="imported", source="phantom")
        labels_before = phantom.labels.array.copy()
        result = plan_screws(anatomy)
        np.testing.assert_array_equal(phantom.labels.array, labels_before)  # input untouched
        out[key] = (phantom, anatomy, result)
    return out


def _independent_breach(labels: Volume, label: int, entry: np.ndarray, tip: np.ndarray, diameter: float) -> float:
    """Largest distance (mm) from the screw's surface to the vertebra's bone, measured on voxels:
    surface points (every 0.3 mm, 40 around) -> nearest voxel -> that voxel's Euclidean distance (mm,
    spacing-aware) to the nearest voxel of the vertebra. 0 when every point's voxel is bone."""
    mask = np.asarray(labels.array) == label
    outside = ndimage.distance_transform_edt(~mask, sampling=labels.spacing[::-1])
    idx = np.rint(screw_surface_ijk(labels, entry, tip, diameter)).astype(int)
    return float(outside[idx[:, 2], idx[:, 1], idx[:, 0]].max())


def _sagittal_angle_to_plane_deg(direction: np.ndarray, normal: np.ndarray, truth_s1: dict) -> float:
    """Angle (deg) between ``direction`` projected on the sagittal plane (the lateral axis of the S1 truth
    removed) and the plane of unit ``normal``; positive toward the normal (cranial)."""
    lateral = np.cross(np.asarray(truth_s1["anterior_direction_ras"]), normal)
    lateral /= np.linalg.norm(lateral)
    sagittal = direction - np.dot(direction, lateral) * lateral
    sagittal /= np.linalg.norm(sagittal)
    return float(np.degrees(np.arcsin(np.dot(sagittal, normal))))


def _s1_rasterized_endplate_normal() -> np.ndarray:
    """Normal of the plane fitted (least squares) to the phantom's S1 upper endplate as it rasterizes it
    (phantom.anatomy.s1_top_offset on the canal arc) over the S1 body within 10 mm of the mid-line; the truth's
    normal is the canal tangent turned by the wedge, which the curved arc tilts by 1.4 deg across the body."""
    from lumbarspine.phantom.anatomy import (
        CANAL_SEMI_AP_MM,
        SACRUM_SEMI_AP_MM,
        Centreline,
        build_layout,
        s1_top_offset,
    )

    centreline, layout = Centreline(), build_layout()
    points = np.array(
        [
            centreline.suw_to_ras(layout.sacrum_s_top - float(s1_top_offset(w)), u, w)
            for w in np.arange(CANAL_SEMI_AP_MM + 4.0, CANAL_SEMI_AP_MM + 1.7 * SACRUM_SEMI_AP_MM, 1.0)
            for u in np.arange(-10.0, 10.1, 2.0)
        ]
    )
    normal = np.linalg.svd(points - points.mean(axis=0))[2][2]
    return normal if normal[2] > 0 else -normal


@pytest.mark.parametrize("grid", list(GRIDS))
def test_every_screw_in_bone_and_on_the_true_pedicle_axis(plans, grid):
    phantom, anatomy, result = plans[grid]
    # Every level takes both screws, S1 included: the phantom's sacrum has bone (the S1 pedicle and ala)
    # lateral of the sacral canal on both sides at the S1 level (truth.json lists S1 with its body only).
    assert not result["refused"], [(r.vertebra, r.side, r.reason) for r in result["refused"]]
    planned = {(s.vertebra, s.side) for s in result["screws"]}
    assert planned == {(v, side) for v in LEVELS for side in ("left", "right")}
    voxel = max(phantom.labels.spacing)
    for screw in result["screws"]:
        truth_v = phantom.truth["vertebrae"][screw.vertebra]
        label = truth_v["label"]
        # independent check on the voxels: nothing outside the bone beyond the voxel quantisation
        breach = _independent_breach(phantom.labels, label, screw.entry_ras, screw.tip_ras, screw.diameter_mm)
        assert breach <= voxel + 1e-6, (screw.name, breach)
        assert screw.evaluation["gertzbein_robbins"] == "A", screw.name
        assert screw.diameter_mm in SCREW_DIAMETERS_MM and screw.length_mm in SCREW_LENGTHS_MM
        # the tip stays in this vertebra's body, short of the anterior cortex
        assert anatomy.labels.sample_nearest_ras(screw.tip_ras[None])[0] == label
        # a convergent pair never meets: each screw's surface stays on its own side of the mid-sagittal plane
        frame = result["frames"][screw.vertebra]
        sign = 1.0 if screw.side == "right" else -1.0
        assert sign * np.dot(screw.tip_ras - frame.canal_center, frame.right) >= screw.diameter_mm / 2, screw.name
        if screw.vertebra == "S1":
            assert 24.0 <= screw.medial_angle_deg <= 31.0  # 25-30 deg toward the promontory (+-2.5 search)
            # the S1 screw runs from the back of the sacrum into the S1 body, in front of the sacral canal
            truth_s1 = phantom.truth["vertebrae"]["S1"]
            ahead = np.dot(screw.tip_ras - np.asarray(truth_s1["canal_center_ras"]), truth_s1["anterior_direction_ras"])
            assert ahead >= 20.0, (screw.name, ahead)
            assert screw.length_mm >= 30.0
            # S1 screws run parallel to the S1 upper endplate (in the sagittal plane): within 3 deg of the truth's
            # endplate normal, and of the plane through the phantom's own rasterized endplate (measured: 0.8-2.7
            # deg from the truth normal; 9-10 deg before the S1 endplate refit)
            for normal in (np.asarray(truth_s1["superior_endplate_normal_ras"]), _s1_rasterized_endplate_normal()):
                assert abs(_sagittal_angle_to_plane_deg(screw.direction, normal, truth_s1)) < 3.0, screw.name
            continue
        pedicle = truth_v["pedicles"][screw.side]
        centre = np.asarray(pedicle["isthmus_center_ras"])
        axis = np.asarray(pedicle["axis_direction_ras"])
        offset = screw.entry_ras - centre
        assert np.linalg.norm(offset - np.dot(offset, axis) * axis) < 2.0, screw.name  # entry on the true axis
        angle = np.degrees(np.arccos(np.clip(np.dot(screw.direction, axis), -1, 1)))
        assert angle < 3.0, (screw.name, angle)  # issue target, every level (L5 2.8 deg at worst)
        assert screw.isthmus_width_mm == pytest.approx(pedicle["isthmus_width_mm"], abs=1.0)
        assert screw.diameter_mm <= 0.8 * screw.isthmus_width_mm + 1e-9
        depth = np.dot(np.asarray(truth_v["anterior_cortex_ras"]) - screw.tip_ras, truth_v["anterior_direction_ras"])
        assert depth >= 3.0, (screw.name, depth)


def test_moved_line_markup_re_evaluates_and_a_lateral_move_breaches(plans, slicer_scene):
    from lumbarspine.planning.evaluate import ATTR_BREACH, ATTR_GRADE, observe_line_markup
    from lumbarspine.planning.scene import add_screw

    phantom, anatomy, result = plans["axial"]
    maps = PlanningMaps(anatomy)
    seen = []
    for screw in result["screws"]:
        if screw.vertebra not in ("L1", "L2", "L3", "L4"):
            continue  # L5's 11 mm pedicle takes the 4 mm move with a grade B (see the report)
        line, model = add_screw(slicer_scene.scene, screw.to_dict(), anatomy)
        assert line.GetName() == f"{screw.vertebra} {screw.side}"
        assert line.GetAttribute(ATTR_GRADE) == "A"
        observe_line_markup(line, anatomy, maps=maps, on_result=lambda node, res: seen.append(res))
        lateral = np.asarray(
            phantom.truth["vertebrae"][screw.vertebra]["pedicles"][screw.side]["transverse_direction_ras"]
        )
        moved = screw.entry_ras + 4.0 * lateral
        line.SetNthControlPointPositionWorld(0, *moved)
        assert seen and seen[-1]["gertzbein_robbins"] in ("C", "D", "E"), (screw.name, seen[-1])
        assert line.GetAttribute(ATTR_GRADE) == seen[-1]["gertzbein_robbins"]
        assert float(line.GetAttribute(ATTR_BREACH)) >= 2.0
        # the screw model followed the line
        bounds = np.zeros(6)
        model.GetPolyData().GetBounds(bounds)
        assert bounds[0] - 1 <= moved[0] <= bounds[1] + 1
        # independent of the library: the moved screw's surface really leaves the bone by >= 2 mm
        label = phantom.truth["vertebrae"][screw.vertebra]["label"]
        assert _independent_breach(phantom.labels, label, moved, screw.tip_ras, screw.diameter_mm) >= 2.0


def test_gertzbein_robbins_limits():
    assert [gertzbein_robbins(x) for x in (0.0, 0.01, 1.99, 2.0, 3.99, 4.0, 5.99, 6.0, 12.0)] == list("ABBCCDDEE")
    with pytest.raises(ValueError, match="0 mm or more"):
        gertzbein_robbins(-1.0)


def test_evaluate_screw_errors_and_distances(plans):
    phantom, anatomy, result = plans["axial"]
    screw = result["screws"][0]
    with pytest.raises(ValueError, match="same point"):
        evaluate_screw(anatomy, screw.entry_ras, screw.entry_ras, 5.0)
    with pytest.raises(ValueError, match="between 1 and 15 mm"):
        evaluate_screw(anatomy, screw.entry_ras, screw.tip_ras, 40.0)
    with pytest.raises(ValueError, match="No vertebra 'T9'"):
        evaluate_screw(anatomy, screw.entry_ras, screw.tip_ras, 5.0, vertebra="T9")
    # a screw driven through the canal enters the dural sac and the no-go zone
    canal = np.asarray(phantom.truth["vertebrae"]["L3"]["canal_center_ras"])
    right = np.array([1.0, 0.0, 0.0])
    bad = evaluate_screw(anatomy, canal - 20 * right, canal + 20 * right, 5.0, vertebra="L3")
    assert bad["enters_dural_sac"] and bad["enters_no_go_zone"]
    assert bad["min_distance_to_dural_sac_mm"] == 0.0
    good = result["screws"][0].evaluation
    assert good["min_distance_to_dural_sac_mm"] > 2.0 and not good["enters_no_go_zone"]


def test_refusals_say_why(plans):
    phantom, anatomy, _ = plans["axial"]
    # only thick screws on offer: the narrow upper lumbar pedicles cannot take them
    thick = plan_screws(anatomy, PlanningParameters(diameters_mm=(7.5,)), vertebrae=("L1", "L2"))
    assert not thick["screws"]
    assert all("narrower than the smallest screw" in r.reason for r in thick["refused"])
    # classic entry points need the sub-regions, which a plain label map does not have
    classic = plan_screws(anatomy, PlanningParameters(trajectory="magerl"), vertebrae=("L3",))
    assert len(classic["refused"]) == 2 and all("needs sub-regions" in r.reason for r in classic["refused"])
    # a field of view cutting through L1's pedicles
    labels = phantom.labels
    truth = phantom.truth["vertebrae"]["L1"]["pedicles"]["left"]["isthmus_center_ras"]
    k_cut = int(round(labels.ras_to_ijk_points(np.asarray(truth)[None])[0, 2]))
    cut = Volume(
        np.ascontiguousarray(labels.array[:k_cut]), labels.spacing, labels.origin, labels.direction, is_label=True
    )
    cut_anatomy = anatomy_from_labels(cut, modality="ct", numbering="imported", source="phantom cut")
    assert cut_anatomy.vertebra("L1").truncated
    refused = plan_screws(cut_anatomy, vertebrae=("L1",))
    assert not refused["screws"] and len(refused["refused"]) == 2
    assert all("field of view" in r.reason for r in refused["refused"])


def test_pedicle_triangle_converges_more(plans):
    _, anatomy, result = plans["axial"]
    triangle = plan_screws(anatomy, PlanningParameters(trajectory="pedicle-triangle"), vertebrae=("L2", "L3"))
    axis = {(s.vertebra, s.side): s for s in result["screws"]}
    assert len(triangle["screws"]) + len(triangle["refused"]) == 4
    for screw in triangle["screws"]:
        assert screw.evaluation["gertzbein_robbins"] == "A"
        assert screw.medial_angle_deg > axis[(screw.vertebra, screw.side)].medial_angle_deg
    for refusal in triangle["refused"]:
        assert refusal.reason


def test_screws_on_the_ct_segmentation_of_the_phantom_follow_its_true_pedicles():
    """The demo's path: the phantom's CT (1 mm, L4-L5 stenosis) segmented automatically (no labels), then planned.

    Reached when written (issue #9): all 12 screws planned; against the phantom's truth the entry lies within
    0.95 mm of the true pedicle axis and the axis within 3.2 deg (L4 left; the others 0.9-2.4 deg), the
    isthmus width within 1.9 mm (L5: the segmentation's pedicle is about a voxel wider each side); on the
    true labels no screw leaves its vertebra by more than one voxel (the voxel check's quantisation). Automated planners are reported at 4.5-6 deg
    from a surgeon's plan and two surgeons 5.3 deg apart (Scherer 2023, Knez 2015; clinical-reference.md).
    """
    from lumbarspine.anatomy.segment import segment_image

    phantom = generate_phantom(PhantomSpec(modality="ct", spacing=(1.0, 1.0, 1.0), stenosis={"L4-L5": 60.0}))
    anatomy = segment_image(phantom.image, modality="ct")
    result = plan_screws(anatomy)
    assert not result["refused"], [(r.vertebra, r.side, r.reason) for r in result["refused"]]
    assert {(s.vertebra, s.side) for s in result["screws"]} == {(v, side) for v in LEVELS for side in ("left", "right")}
    voxel = max(phantom.labels.spacing)
    for screw in result["screws"]:
        truth_v = phantom.truth["vertebrae"][screw.vertebra]
        # judged on the phantom's true bone, not on the segmentation it was planned on
        breach = _independent_breach(
            phantom.labels, truth_v["label"], screw.entry_ras, screw.tip_ras, screw.diameter_mm
        )
        assert breach <= voxel + 1e-6, (screw.name, breach)
        assert phantom.labels.sample_nearest_ras(screw.tip_ras[None])[0] == truth_v["label"], screw.name
        if screw.vertebra == "S1":
            assert 24.0 <= screw.medial_angle_deg <= 31.0
            continue
        pedicle = truth_v["pedicles"][screw.side]
        axis = np.asarray(pedicle["axis_direction_ras"])
        offset = screw.entry_ras - np.asarray(pedicle["isthmus_center_ras"])
        assert np.linalg.norm(offset - np.dot(offset, axis) * axis) < 2.0, screw.name
        angle = np.degrees(np.arccos(np.clip(np.dot(screw.direction, axis), -1, 1)))
        assert angle < 5.0, (screw.name, angle)
        assert abs(screw.medial_angle_deg - pedicle["medial_angle_deg"]) < 5.0, screw.name
        assert screw.isthmus_width_mm == pytest.approx(pedicle["isthmus_width_mm"], abs=2.0), screw.name


def test_coarse_ct_phantom_planned_on_the_bone_refined_by_its_hu():
    """The phantom on a 3 mm grid with its CT: the bone refined by the HU (:mod:`lumbarspine.planning.refine`)
    plans all 12 sides like the labels alone, within the true pedicles. Measured when written (issue #9): entry
    at most 2.2 mm off the true axis, axis at most 8.6 deg off (the 3 mm labels alone: 1.5 mm, 5.9 deg),
    every diameter below the true isthmus width, grade A, 100 % of each surface at >= 60 HU."""
    phantom = generate_phantom(PhantomSpec(spacing=(3.0, 3.0, 3.0)))
    anatomy = anatomy_from_labels(phantom.labels, modality="ct", numbering="imported", source="phantom")
    image_before = phantom.image.array.copy()
    maps = PlanningMaps(anatomy, image=phantom.image)
    assert maps.refined
    result = plan_screws(anatomy, maps=maps)
    np.testing.assert_array_equal(phantom.image.array, image_before)  # input untouched
    assert not result["refused"], [(r.vertebra, r.side, r.reason) for r in result["refused"]]
    assert len(result["screws"]) == 12
    for screw in result["screws"]:
        assert screw.evaluation["gertzbein_robbins"] == "A", screw.name
        assert screw.evaluation["surface_in_hu_bone_fraction"] >= 0.95, screw.name
        if screw.vertebra == "S1":
            assert 24.0 <= screw.medial_angle_deg <= 31.0
            continue
        pedicle = phantom.truth["vertebrae"][screw.vertebra]["pedicles"][screw.side]
        centre = np.asarray(pedicle["isthmus_center_ras"])
        axis = np.asarray(pedicle["axis_direction_ras"])
        offset = screw.entry_ras - centre
        assert np.linalg.norm(offset - np.dot(offset, axis) * axis) < 3.0, screw.name  # one 3 mm voxel
        angle = np.degrees(np.arccos(np.clip(np.dot(screw.direction, axis), -1, 1)))
        assert angle < 10.0, (screw.name, angle)
        assert screw.diameter_mm < pedicle["isthmus_width_mm"], screw.name


def test_scene_observers_grade_on_the_plans_refined_bone(slicer_scene):
    """``build_plan_scene(..., image=CT, observe=True)`` (the scene ``lumbarspine plan`` builds, interactive): a
    moved screw line is graded on the bone the plan was made on, the 3 mm label refined by the CT's HU, not on the
    label alone; some planned screws (grade A) read B on the 3 mm labels alone (measured when written: L1 left,
    L4 right), and must stay A when re-evaluated in place."""
    from lumbarspine.planning.evaluate import ATTR_BREACH, ATTR_GRADE
    from lumbarspine.planning.scene import build_plan_scene

    phantom = generate_phantom(PhantomSpec(spacing=(3.0, 3.0, 3.0)))
    anatomy = anatomy_from_labels(phantom.labels, modality="ct", numbering="imported", source="phantom")
    maps = PlanningMaps(anatomy, image=phantom.image)
    planned = plan_screws(anatomy, maps=maps)
    labels_only = PlanningMaps(anatomy)
    differing = {}
    for screw in planned["screws"]:
        alone = evaluate_screw(anatomy, screw.entry_ras, screw.tip_ras, screw.diameter_mm, maps=labels_only)
        if alone["breach_mm"] != screw.evaluation["breach_mm"]:
            differing[screw.name] = (screw, alone)
    assert differing, "the labels alone grade every screw as the refined bone does: no proof here"
    plan = {"screws": [s.to_dict() for s in planned["screws"]]}
    nodes = build_plan_scene(slicer_scene, anatomy, plan, image=phantom.image, observe=True)
    lines = {line.GetName(): line for line, _model in nodes["screws"]}
    for name, (screw, alone) in differing.items():
        line = lines[name]
        line.SetNthControlPointPositionWorld(1, *(screw.tip_ras + screw.direction))  # a drag, and back
        line.SetNthControlPointPositionWorld(1, *screw.tip_ras)
        assert line.GetAttribute(ATTR_GRADE) == screw.evaluation["gertzbein_robbins"] == "A", name
        assert float(line.GetAttribute(ATTR_BREACH)) == pytest.approx(screw.evaluation["breach_mm"], abs=0.005)
        assert float(line.GetAttribute(ATTR_BREACH)) != pytest.approx(alone["breach_mm"], abs=0.005)
