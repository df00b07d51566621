"""The spine anatomy object, its builder and level numbering (the interface grading and planning take)."""

from __future__ import annotations

import numpy as np
import pytest

from lumbarspine.anatomy import UNNUMBERED_DISC_BASE, UNNUMBERED_VERTEBRA_BASE, SpineAnatomy
from lumbarspine.anatomy.build import anatomy_from_labels, canal_centreline
from lumbarspine.anatomy.numbering import disc_name, level_ids, vertebra_name
from lumbarspine.phantom import PhantomSpec, generate_phantom
from lumbarspine.volume import Volume


@pytest.fixture(scope="module")
def phantom():
    return generate_phantom(PhantomSpec(seed=0, modality="ct", spacing=(1.5, 1.5, 1.5)))


def test_numbering_from_the_sacrum_names_the_lowest_levels_first():
    vertebrae, discs, numbering, warnings = level_ids(6, 6, sacrum=True)
    assert [vertebra_name(v) for v in vertebrae] == ["T12", "L1", "L2", "L3", "L4", "L5"]
    assert [disc_name(d) for d in discs] == ["T12-L1", "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    assert numbering == "sacrum" and warnings == []


def test_without_the_sacrum_nothing_is_named():
    vertebrae, discs, numbering, warnings = level_ids(4, 3, sacrum=False)
    assert numbering is None
    assert [vertebra_name(v) for v in vertebrae] == ["vertebra 1", "vertebra 2", "vertebra 3", "vertebra 4"]
    assert [disc_name(d) for d in discs] == ["disc 1", "disc 2", "disc 3"]
    assert vertebrae[0] == UNNUMBERED_VERTEBRA_BASE + 1 and discs[0] == UNNUMBERED_DISC_BASE + 1
    assert len(warnings) == 1 and "sacrum" in warnings[0]


def test_impossible_counts_are_refused():
    with pytest.raises(ValueError, match="more than a spine has"):
        level_ids(40, 0, sacrum=True)
    with pytest.raises(ValueError, match="negative"):
        level_ids(-1, 0, sacrum=True)


def test_thoracic_and_cervical_names():
    assert vertebra_name(21) == "T1" and vertebra_name(17) == "C7" and vertebra_name(50) == "S1"
    assert disc_name(71) == "C7-T1" and disc_name(82) == "T11-T12" and disc_name(63) == "C2-C3"
    assert vertebra_name(2) is None and disc_name(2) is None


def test_anatomy_of_the_phantom_matches_its_truth(phantom):
    anatomy = anatomy_from_labels(phantom.labels, modality="ct", numbering="imported", source="phantom")
    assert [v.name for v in anatomy.vertebrae] == ["L1", "L2", "L3", "L4", "L5", "S1"]
    assert [d.name for d in anatomy.discs] == ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    for disc in anatomy.discs:
        truth = np.asarray(phantom.truth["levels"][disc.name]["disc_center_ras"])
        # 2.5 mm: the L5-S1 disc is a wedge on the sloped sacrum, so its centroid is not its truth centre
        assert np.linalg.norm(np.asarray(disc.centroid_ras) - truth) < 2.5
    # The centreline runs superior to inferior and passes near every level's true canal centre.
    line = anatomy.centreline_ras
    assert line[0][2] > line[-1][2]
    for level in phantom.truth["levels"].values():
        centre = np.asarray(level["plane_center_ras"])
        assert np.min(np.linalg.norm(line - centre, axis=1)) < 2.0
    summary = anatomy.to_dict()
    assert summary["numbered"] and summary["discs"][3]["name"] == "L4-L5"
    assert anatomy.disc("L4-L5").label == 95 and anatomy.vertebra("S1").label == 50
    assert anatomy.disc("L6-S1") is None


@pytest.mark.parametrize("orientation", ["oblique", "oblique-lefthanded"])
def test_centreline_is_independent_of_the_grid(orientation):
    spec = PhantomSpec(seed=0, modality="ct", spacing=(1.5, 1.5, 1.5), orientation=orientation)
    ph = generate_phantom(spec)
    line = canal_centreline(ph.labels)
    for level in ph.truth["levels"].values():
        assert np.min(np.linalg.norm(line - np.asarray(level["plane_center_ras"]), axis=1)) < 2.0


def test_truncated_structures_are_flagged():
    array = np.zeros((20, 20, 20), dtype=np.uint8)
    array[0:5, 5:15, 5:15] = 41  # touches k = 0
    array[8:12, 5:15, 5:15] = 92
    anatomy = anatomy_from_labels(Volume(array), numbering="imported", source="test")
    assert anatomy.vertebra("L1").truncated and not anatomy.disc("L1-L2").truncated
    assert any("L1 touches the edge" in w for w in anatomy.warnings)
    assert anatomy.centreline_ras is None


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="integer labels"):
        anatomy_from_labels(Volume(np.ones((4, 4, 4), dtype=np.float32)), numbering=None, source="x")
    with pytest.raises(ValueError, match="empty"):
        anatomy_from_labels(Volume(np.zeros((4, 4, 4), dtype=np.uint8)), numbering=None, source="x")
    labels = Volume(np.ones((4, 4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="modality"):
        SpineAnatomy(labels, modality="pet")
    with pytest.raises(ValueError, match="same grid"):
        SpineAnatomy(labels, subregions=Volume(np.ones((5, 4, 4), dtype=np.uint8)))
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        SpineAnatomy(labels, centreline_ras=np.zeros((4, 2)))
