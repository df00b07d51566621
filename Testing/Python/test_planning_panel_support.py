"""lumbarspine.planning.panel_support: what the planning panel's worker runs (no Slicer needed)."""

from __future__ import annotations

import numpy as np
import pytest

from lumbarspine.phantom import PhantomSpec, generate_phantom
from lumbarspine.planning.decompression import plan_decompressions
from lumbarspine.planning.panel_support import (
    NO_GO_SEGMENT,
    decompression_rows,
    normalise_levels,
    pack_masks,
    plan_image,
    unpack_masks,
)
from lumbarspine.planning.study import load_inputs, plan_anatomy


@pytest.fixture(scope="module")
def phantom():
    return generate_phantom(PhantomSpec(stenosis={"L4-L5": 60.0}, spacing=(2.0, 2.0, 2.0), noise=20.0))


def test_normalise_levels():
    assert normalise_levels("l4-l5, L5_S1;L4-L5  T12-L1") == ["L4-L5", "L5-S1", "T12-L1"]
    assert normalise_levels(["L3-L4"]) == ["L3-L4"] and normalise_levels(None) == [] and normalise_levels("") == []
    for bad in ("L4", "L4-L9x", "disc 1"):
        with pytest.raises(ValueError, match="not a disc level"):
            normalise_levels(bad)


def test_pack_and_unpack_masks_round_trip_with_overlap(phantom):
    rng = np.random.default_rng(0)
    masks = [(f"m{n}", rng.random(phantom.labels.shape) < 0.3) for n in range(9)]  # 9 masks: uint16
    packed, names = pack_masks(phantom.labels, masks)
    assert packed.is_label and packed.same_geometry(phantom.labels) and packed.array.dtype == np.uint16
    back = unpack_masks(packed, names)
    for name, mask in masks:
        np.testing.assert_array_equal(back[name], mask)
    small, _ = pack_masks(phantom.labels, masks[:8])
    assert small.array.dtype == np.uint8
    with pytest.raises(ValueError, match="shape"):
        pack_masks(phantom.labels, [("wrong", np.zeros((2, 2, 2), bool))])


def test_plan_image_is_the_librarys_plan(phantom):
    """The same screws, decompressions and no-go zone as plan_anatomy on the same inputs, graded levels
    decompressed cranial to caudal whatever the report's order."""
    grades = {"L4-L5": "severe", "L2-L3": "normal_mild", "L3-L4": "moderate"}
    planned = plan_image(phantom.image, phantom.labels, grades=grades, margin_mm=3.0)
    assert planned["levels"] == ["L3-L4", "L4-L5"] and not planned["segmented"]
    image, anatomy = load_inputs(phantom.image, phantom.labels)
    truth = plan_anatomy(anatomy, levels=["L3-L4", "L4-L5"], grades=grades, no_go_margin_mm=3.0, image=image)
    # the 2 mm CT: planned on the bone refined by its HU, as 'lumbarspine plan' does (issue #9)
    assert planned["refined_bone"] and truth["maps"].refined
    assert [s["name"] for s in planned["screws"]] == [s.name for s in truth["screws"]]
    for row, screw in zip(planned["screws"], truth["screws"]):
        np.testing.assert_allclose(row["entry_ras"], screw.entry_ras, atol=1e-3)
        np.testing.assert_allclose(row["tip_ras"], screw.tip_ras, atol=1e-3)
        assert row["gertzbein_robbins"] == screw.evaluation["gertzbein_robbins"]
    masks = unpack_masks(planned["masks"], planned["mask_names"])
    np.testing.assert_array_equal(masks[NO_GO_SEGMENT], truth["no_go_mask"])
    for plan in truth["decompressions"]:
        np.testing.assert_array_equal(masks[f"Decompression {plan.level}"], plan.mask)
    rows = decompression_rows(planned["decompressions"])
    direct = plan_decompressions(anatomy, ["L4-L5"], grades=grades)[0]
    row = rows[1]
    assert row["level"] == "L4-L5" and row["grade"] == "severe"
    assert row["bone_volume_cm3"] == pytest.approx(direct.bone_volume_cm3, abs=1e-3)
    assert row["facet_left_removed_pct"] == pytest.approx(100 * direct.facet_removed_fraction["left"], abs=0.05)
    assert row["canal_area_after_mm2"] == pytest.approx(direct.canal_area_after_mm2, abs=0.01)
    # chosen levels override the grades; screws=False drops the screws only
    picked = plan_image(None, phantom.labels, grades=grades, levels="L5-S1", screws=False)
    assert picked["levels"] == ["L5-S1"] and picked["screws"] == [] and picked["grades"] == grades
    assert not picked["refined_bone"]  # no image: the labels alone


def test_plan_image_refuses_bad_input(phantom):
    with pytest.raises(ValueError, match="Give an image, a segmentation"):
        plan_image(None, None)
    with pytest.raises(ValueError, match="margin"):
        plan_image(None, phantom.labels, margin_mm=25.0)
    with pytest.raises(ValueError, match="not a disc level"):
        plan_image(None, phantom.labels, levels="L4")
    bones = phantom.labels.with_array(np.where(np.isin(phantom.labels.array, [1, 2]), 0, phantom.labels.array))
    with pytest.raises(ValueError, match="No neural elements"):
        plan_image(None, bones)
