"""The CT phantom's realism: sacrum shape and truth, cortical / cancellous HU, facet joint space, osteophytes."""

from __future__ import annotations

import numpy as np
import pytest

from lumbarspine.phantom import PhantomSpec, generate_phantom
from lumbarspine.phantom.anatomy import (
    FACET_GAP_MM,
    SACRAL_END_SEMI_AXES_MM,
    Centreline,
    build_layout,
    canal_semi_axes,
)
from lumbarspine.phantom.rasterize import SAP_INNER_U_MM, rasterize


@pytest.fixture(scope="module")
def phantom():
    return generate_phantom(PhantomSpec(modality="ct", osteophytes="L4-L5, L3-L4"))


def _label_at(layout, centreline, s, u, w, **kw):
    labels, tissue = rasterize(
        np.atleast_1d(np.float64(s)), np.atleast_1d(np.float64(u)), np.atleast_1d(np.float64(w)), layout, {}, **kw
    )
    return int(labels[0]), int(tissue[0])


def test_sacrum_truth_and_shape(phantom):
    s1 = phantom.truth["vertebrae"]["S1"]
    assert 30.0 <= s1["sacral_slope_deg"] <= 45.0  # normal adults 35-45; the phantom ~36
    normal = np.array(s1["superior_endplate_normal_ras"])
    assert abs(np.linalg.norm(normal) - 1) < 1e-6 and normal[1] > 0 and normal[2] > 0  # faces up and forward
    top = np.array(s1["superior_endplate_center_ras"])
    # just below the endplate centre is sacrum, just above it the L5-S1 disc
    assert phantom.labels.sample_nearest_ras(top - 3.0 * normal)[0] == 50
    assert phantom.labels.sample_nearest_ras(top + 3.0 * normal)[0] == 100
    assert phantom.labels.sample_nearest_ras(np.array(s1["body_center_ras"]))[0] == 50
    # the alae reach far to both sides of the S1 body; a lumbar body does not
    layout, centreline = build_layout(), Centreline()
    s_ala = layout.sacrum_s_top - 12.0
    assert _label_at(layout, centreline, s_ala, 40.0, 5.0)[0] == 50
    assert _label_at(layout, centreline, s_ala, -40.0, 5.0)[0] == 50
    l3 = layout.vertebrae[2]
    assert _label_at(layout, centreline, l3.s_center, 40.0, 20.0)[0] != 43


def test_l5_s1_disc_is_a_wedge():
    layout = build_layout()
    disc = layout.discs[-1]
    heights = []
    for w in (10.0, 38.0):  # behind and in front of the S1 body axis
        s = np.arange(disc.s_center - 15.0, disc.s_center + 10.0, 0.1)
        labels, _ = rasterize(s, np.zeros_like(s), np.full_like(s, w), layout, {})
        heights.append(np.count_nonzero(labels == disc.label) * 0.1)
    assert heights[1] > heights[0] + 5.0


def test_sacral_canal_tapers_and_continues_the_lumbar_canal(phantom):
    layout = build_layout()
    a_top, b_top = canal_semi_axes(np.array([layout.sacrum_s_top + 1.0]), layout)
    a_end, b_end = canal_semi_axes(np.array([layout.s_min]), layout)
    assert a_end[0] == pytest.approx(SACRAL_END_SEMI_AXES_MM[0]) and b_end[0] == pytest.approx(
        SACRAL_END_SEMI_AXES_MM[1]
    )
    assert a_end[0] < a_top[0] and b_end[0] < b_top[0]
    # the canal (sac or epidural fat) runs on inside the sacrum, with bone behind it (the sacral roof)
    centreline = Centreline()
    s = layout.sacrum_s_top - 35.0
    assert _label_at(layout, centreline, s, 0.0, 0.0)[0] in (2, 201)
    assert _label_at(layout, centreline, s, 0.0, -(float(canal_semi_axes(np.array([s]), layout)[1][0]) + 3.0))[0] == 50


def test_ct_cortical_and_cancellous_hu(phantom):
    img, lab = phantom.image.array.astype(float), phantom.labels.array
    from scipy import ndimage

    body = lab == 43
    core = ndimage.binary_erosion(body, iterations=4)
    assert 150.0 <= np.median(img[core]) <= 300.0  # cancellous
    assert 700.0 <= np.percentile(img[body], 99) <= 1200.0  # cortex (after partial volume)


def test_facet_joint_space():
    layout, centreline = build_layout(), Centreline()
    upper, lower = layout.vertebrae[2], layout.vertebrae[3]  # L3 / L4
    s = upper.s_bottom - 6.0  # where the L3 inferior and L4 superior articular processes face each other
    w = -9.0
    inner = SAP_INNER_U_MM
    assert _label_at(layout, centreline, s, inner - FACET_GAP_MM - 0.3, w)[0] == upper.label  # L3 IAP
    assert _label_at(layout, centreline, s, inner - FACET_GAP_MM / 2, w)[0] == 0  # the joint space
    assert _label_at(layout, centreline, s, inner + 0.3, w)[0] == lower.label  # L4 SAP
    assert 1.0 <= FACET_GAP_MM <= 2.0


def test_osteophytes_option(phantom):
    assert phantom.spec.osteophytes == ("L3-L4", "L4-L5")
    assert phantom.truth["spec"]["osteophytes"] == ["L3-L4", "L4-L5"]
    assert phantom.truth["levels"]["L4-L5"]["osteophytes"] and not phantom.truth["levels"]["L1-L2"]["osteophytes"]
    assert hash(PhantomSpec(osteophytes=("L4-L5",))) == hash(PhantomSpec(osteophytes="L4-L5"))
    layout, centreline = build_layout(), Centreline()
    l4 = layout.vertebrae[3]
    front = l4.body_w_center + l4.body_semi_ap + 2.0  # 2 mm in front of the body wall, 1 mm into the disc space
    with_lip = _label_at(layout, centreline, l4.s_bottom - 1.0, 0.0, front, osteophytes=("L4-L5",))
    without = _label_at(layout, centreline, l4.s_bottom - 1.0, 0.0, front)
    assert with_lip[0] == l4.label and without[0] != l4.label
    with pytest.raises(ValueError, match="Unknown disc level"):
        PhantomSpec(osteophytes=("L6-L7",))
