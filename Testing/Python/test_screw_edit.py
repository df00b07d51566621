"""Editing one planned screw (``lumbarspine.planning.screw_edit``): re-plan a side with or without a chosen
size, resize along the trajectory, and the label-map entry points of the planning module."""

from __future__ import annotations

import numpy as np
import pytest

from lumbarspine.phantom import PhantomSpec, generate_phantom
from lumbarspine.planning import PlanningParameters, evaluate_screw, plan_screws, replan_screw, resize_screw
from lumbarspine.planning.no_go import no_go_zone
from lumbarspine.planning.screw_edit import (
    anatomy_from_label_map,
    plan_label_map,
    replan_label_map_screw,
    sized_parameters,
)
from lumbarspine.planning.screws import RefusedScrew, ScrewPlan


@pytest.fixture(scope="module")
def phantom():
    return generate_phantom(PhantomSpec(spacing=(2.0, 2.0, 2.0), noise=0.0))


@pytest.fixture(scope="module")
def anatomy(phantom):
    return anatomy_from_label_map(phantom.labels)


@pytest.fixture(scope="module")
def plan(anatomy):
    return plan_screws(anatomy)


def test_replan_without_a_size_is_the_planners_screw(anatomy, plan):
    for screw in plan["screws"][::3]:
        again = replan_screw(anatomy, screw.vertebra, screw.side)
        assert isinstance(again, ScrewPlan)
        assert (again.diameter_mm, again.length_mm) == (screw.diameter_mm, screw.length_mm)
        np.testing.assert_allclose(again.entry_ras, screw.entry_ras, atol=1e-9)
        np.testing.assert_allclose(again.tip_ras, screw.tip_ras, atol=1e-9)
        assert again.evaluation == screw.evaluation


def test_replan_with_a_chosen_size_keeps_the_rules(anatomy, plan):
    screw = next(s for s in plan["screws"] if s.name == "L4 left")
    smaller = replan_screw(anatomy, "L4", "left", diameter_mm=screw.diameter_mm - 1.0, length_mm=30.0)
    assert isinstance(smaller, ScrewPlan) and (smaller.diameter_mm, smaller.length_mm) == (screw.diameter_mm - 1, 30.0)
    np.testing.assert_allclose(np.linalg.norm(smaller.tip_ras - smaller.entry_ras), 30.0, atol=1e-9)
    # wider than 80 % of the isthmus: refused, with the rule and the numbers in the reason
    too_wide = 0.8 * screw.isthmus_width_mm + 0.6
    refused = replan_screw(anatomy, "L4", "left", diameter_mm=too_wide)
    assert isinstance(refused, RefusedScrew)
    assert "80%" in refused.reason and f"{screw.isthmus_width_mm:.1f} mm pedicle isthmus" in refused.reason
    longer = replan_screw(anatomy, "L4", "left", length_mm=150.0)
    assert isinstance(longer, RefusedScrew) and "shorter than the chosen screw (150 mm)" in longer.reason
    for bad in (dict(diameter_mm=0.5), dict(length_mm=float("nan"))):
        with pytest.raises(ValueError, match="must be between"):
            replan_screw(anatomy, "L4", "left", **bad)
    with pytest.raises(ValueError, match="No vertebra 'T12'"):
        replan_screw(anatomy, "T12", "left")
    with pytest.raises(ValueError, match="Unknown side"):
        replan_screw(anatomy, "L4", "middle")
    assert sized_parameters(None, 5.0).diameters_mm == (5.0,)
    assert sized_parameters(PlanningParameters(), None, None) == PlanningParameters()


def test_resize_keeps_entry_and_direction_and_grades_the_new_screw(anatomy, plan):
    screw = next(s for s in plan["screws"] if s.name == "L3 right")
    out = resize_screw(anatomy, screw.entry_ras, screw.tip_ras, 7.5, 55.0, vertebra="L3")
    axis = screw.tip_ras - screw.entry_ras
    tip = screw.entry_ras + 55.0 * axis / np.linalg.norm(axis)  # the same arithmetic, bit for bit
    np.testing.assert_allclose(out["tip_ras"], tip, atol=1e-3)
    assert out == evaluate_screw(anatomy, screw.entry_ras, tip, 7.5, vertebra="L3")
    assert out["length_mm"] == pytest.approx(55.0) and out["breach_mm"] > screw.evaluation["breach_mm"]
    with pytest.raises(ValueError, match="same point"):
        resize_screw(anatomy, screw.entry_ras, screw.entry_ras, 6.0, 40.0)


def test_label_map_entry_points(phantom, plan):
    out = plan_label_map(phantom.labels, margin_mm=3.0)
    np.testing.assert_array_equal(out["zone"].array, no_go_zone(phantom.labels, margin_mm=3.0).array)
    assert [row["name"] for row in out["screws"]] == [s.name for s in plan["screws"]]
    assert all(row["min_distance_to_no_go_zone_mm"] is not None for row in out["screws"])
    assert {(r["vertebra"], r["side"]) for r in out["refused"]} == {(r.vertebra, r.side) for r in plan["refused"]}
    assert plan_label_map(phantom.labels, screws=False)["screws"] == []
    row = replan_label_map_screw(phantom.labels, "L2", "right", diameter_mm=5.0)
    assert row["name"] == "L2 right" and row["diameter_mm"] == 5.0 and "gertzbein_robbins" in row
    refused = replan_label_map_screw(phantom.labels, "S1", "left", length_mm=150.0)
    assert "shorter than the chosen screw" in refused["reason"] and refused["vertebra"] == "S1"


def test_label_map_entry_points_with_the_ct_plan_on_its_refined_bone(phantom):
    """With the CT (a 2 mm label map: refined by the HU, :mod:`lumbarspine.planning.refine`) the worker's plan and
    its re-plan of one side are the library's plan on that bone, ``label_map_maps``' pair."""
    from lumbarspine.planning.screw_edit import label_map_maps

    anatomy, maps = label_map_maps(phantom.labels, phantom.image)
    assert maps.refined and maps.image is phantom.image
    assert not label_map_maps(phantom.labels)[1].refined
    truth = plan_screws(anatomy, maps=maps)
    out = plan_label_map(phantom.labels, image=phantom.image)
    assert [row["name"] for row in out["screws"]] == [s.name for s in truth["screws"]]
    for row, screw in zip(out["screws"], truth["screws"]):
        np.testing.assert_allclose(row["entry_ras"], screw.entry_ras, atol=1e-3)
        assert row["bone"] == "label refined by the CT's HU"
    for row in out["screws"][:4]:  # re-planned alone, the same screw as in the plan
        again = replan_label_map_screw(phantom.labels, row["vertebra"], row["side"], image=phantom.image)
        np.testing.assert_allclose(again["entry_ras"], row["entry_ras"], atol=1e-3)
        np.testing.assert_allclose(again["tip_ras"], row["tip_ras"], atol=1e-3)
        assert (again["diameter_mm"], again["breach_mm"]) == (row["diameter_mm"], row["breach_mm"])
    with pytest.raises(ValueError, match="image planned with must be a Volume"):
        label_map_maps(phantom.labels, np.zeros((3, 3, 3)))
    with pytest.raises(ValueError, match="label map must be a Volume"):
        label_map_maps(None)
