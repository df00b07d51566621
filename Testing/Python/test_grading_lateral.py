"""Lateral recess width and foraminal height (lumbarspine.grading.lateral) against the phantom's analytic shapes.

The phantom (lumbarspine.phantom.rasterize) builds each vertebra from analytic parts: body, hourglass pedicle
tubes, lamina ring, boxes for the superior / inferior articular processes. Here its true label map gets a
shape-exact sub-region map (a perfect "SPINEPS-style" import: each vertebra voxel coded by the part whose
analytic depth holds it; pedicle = the tube beside the canal, ``w >= -1`` mm, outside the body, as the CT rules
define it) and the measured gaps are compared with an independent brute-force truth: the analytic parts'
surfaces sampled every 0.25 mm (and 3 degrees round the pedicle tubes), all pairs within 3 mm of the nearest
one sorted, and the first whose straight segment crosses no bone of the phantom's own rasteriser (sampled
every 0.2 mm) taken, with the same constraints (recess: within the disc's extent +-3 mm along the canal, mid-
point medial of the lower pedicle's centre). Reached on the 1 mm axial and oblique left-handed
grids: recess 13.1-13.9 mm against 13.8-14.1 mm (-0.72 to -0.08 mm), foraminal height L1-L2..L4-L5 17.2-21.7 mm
against 17.9-22.0 mm (-0.76 to +0.06 mm): within one voxel, the labels' own resolution (each surface is known to
+-0.5 voxel; the narrowest of many voxel pairs leans low). Tolerance asserted: 1.0 mm.

The automatic CT segmentation's sub-regions are position rules; measured with ``trust_position_rules`` on the
1 mm phantom the foraminal heights L1-L2..L4-L5 are within 1.5 mm of the truth, the recesses 4-6 mm narrower
(its disc label runs into the foramen, its articular labels take the lateral lamina), so grading reports them
as not measured (``POSITION_RULE_REASON``); on the 3 mm example CT its pedicle bands touch (0-8 mm).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree

from lumbarspine.anatomy.build import anatomy_from_labels
from lumbarspine.grading import grade_anatomy
from lumbarspine.grading.core import LATERAL_NOT_MEASURED, table_rows
from lumbarspine.grading.lateral import POSITION_RULE_REASON, RECESS_WINDOW_MARGIN_MM, measure_lateral
from lumbarspine.grading.report import build_report, write_report_csv
from lumbarspine.labels import DISC_LEVELS
from lumbarspine.phantom import PhantomSpec, generate_phantom
from lumbarspine.phantom.anatomy import CANAL_RADIUS_MM, FACET_GAP_MM, Centreline, build_layout
from lumbarspine.phantom.rasterize import (
    PEDICLE_POST_MM,
    PEDICLE_TAPER_PER_MM2,
    SAP_INNER_U_MM,
    _ell_depth,
    pedicle_axis,
    pedicle_depth,
    pedicle_front_length,
    rasterize,
)
from lumbarspine.volume import Volume

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
if not DATA.is_dir():
    DATA = Path("/work/shared/data")
LAYOUT = build_layout()
LINE = Centreline(CANAL_RADIUS_MM)
PEDICLE_MIN_W_MM = -1.0  # the pedicle is the tube in front of this (beside the canal), as the CT rules say
LUMBAR_LABELS = {v.label: v for v in LAYOUT.vertebrae}
SACRUM = 50
SAP_BOX = ((SAP_INNER_U_MM, 19.5), (-13.0, -4.0))  # |u|, w (rasterize._vertebra_depth)
S1_SEMI = (25.0, 17.0, 8.5 + 17.0)  # S1 body semi-axes (lateral, AP) and centre w (rasterize._sacrum_depth)
IAP_BOX = ((8.0, SAP_INNER_U_MM - FACET_GAP_MM), (-15.0, -6.0))

_CACHE: dict = {}


# ------------------------------------------------------------------ the phantom's analytic parts
def _pedicle_depth(v, ss, uu, ww, side):
    """Depth (mm) of the pedicle tube of ``v`` on ``side`` (+1 right): the phantom's own shape."""
    return pedicle_depth(v, ss, uu, ww, side)


def _in_range(x, lo, hi):
    return (x > lo) & (x < hi)


def _body(v, ss, uu, ww):
    return (_ell_depth(uu, ww - v.body_w_center, v.body_semi_lateral, v.body_semi_ap) > 0) & (np.abs(ss) < v.height / 2)


def _sap(ss, uu, ww, h2, side):
    return _in_range(ss, h2 - 6.0, h2 + 9.0) & _in_range(side * uu, *SAP_BOX[0]) & _in_range(ww, *SAP_BOX[1])


def _iap(ss, uu, ww, h2, side):
    return _in_range(ss, -h2 - 9.0, -h2 + 5.0) & _in_range(side * uu, *IAP_BOX[0]) & _in_range(ww, *IAP_BOX[1])


def _pedicle(v, ss, uu, ww, side):
    return (_pedicle_depth(v, ss, uu, ww, side) > 0) & (ww >= PEDICLE_MIN_W_MM) & ~_body(v, ss, uu, ww)


def _ideal_subregions(phantom, with_pedicles=True) -> Volume:
    """Sub-region codes of every vertebra voxel of the phantom's true labels from its analytic parts."""
    labels = phantom.labels
    arr = np.asarray(labels.array)
    out = np.zeros(arr.shape, dtype=np.uint8)
    kji = np.argwhere(np.isin(arr, list(LUMBAR_LABELS) + [SACRUM]))
    s, u, w = LINE.ras_to_suw(labels.ijk_to_ras_points(kji[:, ::-1].astype(float)))
    lab = arr[tuple(kji.T)]
    code = np.full(len(lab), 41, dtype=np.uint8)
    for label, v in LUMBAR_LABELS.items():
        m = lab == label
        ss, uu, ww, h2 = s[m] - v.s_center, u[m], w[m], v.height / 2
        c = np.full(m.sum(), 41, dtype=np.uint8)
        for side, sap, iap, ped in ((-1, 45, 47, 51), (1, 46, 48, 52)):
            c[_iap(ss, uu, ww, h2, side)] = iap
            c[_sap(ss, uu, ww, h2, side)] = sap
            if with_pedicles:
                c[_pedicle(v, ss, uu, ww, side)] = ped
        c[_body(v, ss, uu, ww)] = 50
        code[m] = c
    m = lab == SACRUM
    ss, uu, ww = s[m] - LAYOUT.sacrum_s_top, u[m], w[m]
    c = np.full(m.sum(), 41, dtype=np.uint8)
    for side, sap in ((-1, 45), (1, 46)):
        c[_in_range(ss, -6.0, 9.0) & _in_range(side * uu, *SAP_BOX[0]) & _in_range(ww, *SAP_BOX[1])] = sap
    c[((uu / S1_SEMI[0]) ** 2 + ((ww - S1_SEMI[2]) / S1_SEMI[1]) ** 2 < 1) & (ss < 0)] = 50  # the S1 body
    code[m] = c
    out[tuple(kji.T)] = code
    return labels.with_array(out, is_label=True, name="subregions")


def _phantom_anatomy(orientation="axial", with_pedicles=True, subregions=True):
    key = (orientation, with_pedicles, subregions)
    if key not in _CACHE:
        phantom = _phantom(orientation)
        sub = _ideal_subregions(phantom, with_pedicles) if subregions else None
        source = "import spineps" if not with_pedicles else "phantom sub-regions"
        _CACHE[key] = anatomy_from_labels(
            phantom.labels, modality="ct", numbering="imported", source=source, subregions=sub
        )
    return _CACHE[key]


def _phantom(orientation="axial"):
    key = ("phantom", orientation)
    if key not in _CACHE:
        _CACHE[key] = generate_phantom(PhantomSpec(modality="ct", spacing=(1.0, 1.0, 1.0), orientation=orientation))
    return _CACHE[key]


# ------------------------------------------------------------------ the brute-force truth
def _bone(points_suw):
    s, u, w = points_suw
    labels, _ = rasterize(s, u, w, LAYOUT, {})
    return np.isin(labels, list(LUMBAR_LABELS) + [SACRUM])


def _clear_min(a_suw, b_suw, accept=None):
    """Narrowest distance (mm) between the sampled surfaces through non-bone (the phantom's rasteriser)."""
    a = LINE.suw_to_ras(*a_suw).reshape(-1, 3)
    b = LINE.suw_to_ras(*b_suw).reshape(-1, 3)
    tree_a, tree_b = cKDTree(a), cKDTree(b)
    d0 = float(tree_b.query(a)[0].min())
    for reach in (d0 + 3.0, d0 + 10.0):
        pairs = tree_a.sparse_distance_matrix(tree_b, reach, output_type="ndarray")
        order = np.argsort(pairs["v"])
        ia, ib, dist = pairs["i"][order], pairs["j"][order], pairs["v"][order]
        if accept is not None:
            ok = accept(a[ia], b[ib])
            ia, ib, dist = ia[ok], ib[ok], dist[ok]
        for start in range(0, len(dist), 500):
            sl = slice(start, start + 500)
            pa, pb, d = a[ia[sl]], b[ib[sl]], dist[sl]
            m = int(np.ceil(d.max() / 0.2)) + 1
            f = np.linspace(0.0, 1.0, m)[None, :, None]
            pts = (pa[:, None, :] + f * (pb - pa)[:, None, :]).reshape(-1, 3)
            s, u, w = LINE.ras_to_suw(pts)
            hit = _bone((s, u, w)).reshape(len(d), m)
            ends = (np.minimum(f, 1 - f)[0, :, 0][None, :] * d[:, None]) <= 0.3
            clear = ~np.any(hit & ~ends, axis=1)
            if clear.any():
                return float(d[np.argmax(clear)])
    raise AssertionError("no clear pair")


def _box_surface(s_rng, u_rng, w_rng, step=0.25):
    """Points on the faces of an (s, u, w) box, ``(s, u, w)`` arrays."""
    axes = [np.arange(lo, hi + 1e-9, step) for lo, hi in (s_rng, u_rng, w_rng)]
    pts = []
    for axis in range(3):
        for end in (axes[axis][0], axes[axis][-1]):
            grids = [axes[a] if a != axis else np.array([end]) for a in range(3)]
            mesh = np.meshgrid(*grids, indexing="ij")
            pts.append(np.stack([g.ravel() for g in mesh], 1))
    p = np.concatenate(pts)
    return p[:, 0], p[:, 1], p[:, 2]


def _ellipse_cylinder(s_rng, a, b, w_c, step=0.25, u_sign=None):
    s = np.arange(s_rng[0], s_rng[1] + 1e-9, step)
    phi = np.linspace(0, 2 * np.pi, int(2 * np.pi * max(a, b) / step), endpoint=False)
    ss, pp = np.meshgrid(s, phi, indexing="ij")
    u, w = a * np.cos(pp).ravel(), w_c + b * np.sin(pp).ravel()
    keep = w < w_c  # the posterior half faces the canal
    if u_sign is not None:
        keep &= u_sign * u > 0
    return ss.ravel()[keep], u[keep], w[keep]


def _true_recess(level, side):
    disc = next(d for d in LAYOUT.discs if d.level == level)
    upper_name, lower_name = level.split("-")
    upper = next(v for v in LAYOUT.vertebrae if v.name == upper_name)
    lower = next((v for v in LAYOUT.vertebrae if v.name == lower_name), None)
    lo, hi = (
        disc.s_center - disc.height / 2 - RECESS_WINDOW_MARGIN_MM,
        disc.s_center + disc.height / 2 + RECESS_WINDOW_MARGIN_MM,
    )
    top = lower.s_top if lower is not None else LAYOUT.sacrum_s_top
    sap_s = (max(lo, top - 6.0), min(hi, top + 9.0))
    iap_s = (max(lo, upper.s_bottom - 9.0), min(hi, upper.s_bottom + 5.0))
    su = [side * x for x in SAP_BOX[0]][::side]
    iu = [side * x for x in IAP_BOX[0]][::side]
    parts = [_box_surface(sap_s, su, SAP_BOX[1]), _box_surface(iap_s, iu, IAP_BOX[1])]
    a = tuple(np.concatenate([p[i] for p in parts]) for i in range(3))
    fronts = [
        _ellipse_cylinder(
            (disc.s_center - disc.height / 2, disc.s_center + disc.height / 2),
            disc.semi_lateral,
            disc.semi_ap,
            disc.w_center,
            u_sign=side,
        )
    ]
    if lower is not None:
        fronts.append(
            _ellipse_cylinder(
                (max(lo, lower.s_bottom), lower.s_top),
                lower.body_semi_lateral,
                lower.body_semi_ap,
                lower.body_w_center,
                u_sign=side,
            )
        )
        limit = lower.pedicle_u
    else:  # S1: its body; no pedicle sub-region, so no medial limit
        fronts.append(_ellipse_cylinder((lo, LAYOUT.sacrum_s_top - 6.0), *S1_SEMI, u_sign=side))
        limit = None
    b = tuple(np.concatenate([p[i] for p in fronts]) for i in range(3))

    def accept(pa, pb):
        x = side * 0.5 * (pa[:, 0] + pb[:, 0])  # RAS x = u in the phantom's frame
        return (x > 0) & (x <= limit) if limit is not None else x > 0

    return _clear_min(a, b, accept)


def _tube_surface(v, side, step=0.25):
    c, d, e = pedicle_axis(v, side)
    t = np.arange(-PEDICLE_POST_MM, pedicle_front_length(v) + 1e-9, step)
    phi = np.deg2rad(np.arange(0, 360, 3.0))
    tt, pp = np.meshgrid(t, phi, indexing="ij")
    hw = v.pedicle_width / 2 + np.minimum(PEDICLE_TAPER_PER_MM2 * tt * tt, 3.0)
    n = hw * np.cos(pp)
    s = v.pedicle_s + v.pedicle_height / 2 * np.sin(pp)
    u = c[0] + tt * d[0] + n * e[0]
    w = c[1] + tt * d[1] + n * e[1]
    s, u, w = s.ravel(), u.ravel(), w.ravel()
    keep = (w >= PEDICLE_MIN_W_MM) & ~_body(v, s - v.s_center, u, w)
    return s[keep], u[keep], w[keep]


def _true_foramen(level, side):
    upper_name, lower_name = level.split("-")
    upper = next(v for v in LAYOUT.vertebrae if v.name == upper_name)
    lower = next(v for v in LAYOUT.vertebrae if v.name == lower_name)
    return _clear_min(_tube_surface(upper, side), _tube_surface(lower, side))


# ------------------------------------------------------------------ tests
LUMBAR_LEVELS = ("L1-L2", "L2-L3", "L3-L4", "L4-L5")


def test_truth_is_plausible():
    """The brute-force truth: recess 12-15 mm (the phantom's articular processes sit beside the canal), foramina
    18-23 mm (upper body height + disc height - 14 mm, a little less at the back of the lordotic curve)."""
    for level in LUMBAR_LEVELS:
        assert 11.0 < _true_recess(level, 1) < 16.0, level
        assert 16.0 < _true_foramen(level, 1) < 23.0, level


@pytest.mark.parametrize("orientation", ["axial", "oblique-lefthanded"])
def test_recess_and_foramen_against_the_analytic_truth(orientation):
    anatomy = _phantom_anatomy(orientation)
    for level in DISC_LEVELS:
        result = measure_lateral(anatomy, level)
        assert result is not None
        for side, sign in (("left", -1), ("right", 1)):
            recess, foramen = result.recess[side], result.foramen[side]
            assert recess.measured, (level, side, recess.reason)
            truth = _true_recess(level, sign)
            assert abs(recess.value_mm - truth) <= 1.0, (orientation, level, side, recess.value_mm, truth)
            # left stays the patient's left (RAS x < 0) whatever the grid's handedness
            assert np.all(sign * recess.points_ras[:, 0] > 0), (orientation, level, side, recess.points_ras)
            assert "superior articular process " + side in recess.structures[0], recess.structures
            if level == "L5-S1":  # the phantom's sacrum has no pedicle sub-region
                assert not foramen.measured and "pedicle" in foramen.reason
                continue
            assert foramen.measured, (level, side, foramen.reason)
            truth = _true_foramen(level, sign)
            assert abs(foramen.value_mm - truth) <= 1.0, (orientation, level, side, foramen.value_mm, truth)
            assert np.all(sign * foramen.points_ras[:, 0] > 0)
            # the gap runs along the canal, roughly: its end points are the foramen's roof and floor
            gap = foramen.points_ras[1] - foramen.points_ras[0]
            assert np.linalg.norm(gap) == pytest.approx(foramen.value_mm, abs=1e-6)
            assert abs(gap[2]) > 0.8 * np.linalg.norm(gap)


def test_left_right_symmetric_on_the_symmetric_phantom():
    anatomy = _phantom_anatomy("axial")
    for level in LUMBAR_LEVELS:
        r = measure_lateral(anatomy, level)
        assert r.recess["left"].value_mm == pytest.approx(r.recess["right"].value_mm, abs=1.0), level
        assert r.foramen["left"].value_mm == pytest.approx(r.foramen["right"].value_mm, abs=1.0), level


def test_spineps_style_without_pedicles_measures_the_recess_only():
    anatomy = _phantom_anatomy("axial", with_pedicles=False)
    result = grade_anatomy(anatomy)
    for lv in result.levels:
        entry = lv.to_dict()
        for side in ("left", "right"):
            assert entry["lateral_recess"][side]["width_mm"] > 5.0, (lv.level, side)
            reason = entry["neural_foramina"][side]["not_measured"]
            assert "no pedicle labels" in reason and "height_mm" not in entry["neural_foramina"][side]
        assert entry["lateral_recess"]["note"].startswith("measured, not graded")


def test_without_subregions_nothing_is_measured(tmp_path):
    anatomy = _phantom_anatomy("axial", subregions=False)
    result = grade_anatomy(anatomy)
    report = build_report(result)
    for entry in report["levels"]:
        assert entry["lateral_recess"] == LATERAL_NOT_MEASURED
        assert entry["neural_foramina"] == LATERAL_NOT_MEASURED
        assert "no sub-regions" in LATERAL_NOT_MEASURED
    path = write_report_csv(report, tmp_path / "report.csv")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5
    for row in rows:
        for col in (
            "lateral_recess_left_mm",
            "lateral_recess_right_mm",
            "foraminal_height_left_mm",
            "foraminal_height_right_mm",
        ):
            assert row[col] == "", (row["level"], col)


def test_report_json_and_csv_carry_the_numbers(tmp_path):
    anatomy = _phantom_anatomy("axial")
    result = grade_anatomy(anatomy)
    report = build_report(result)
    json.dumps(report)  # JSON-ready
    path = write_report_csv(report, tmp_path / "report.csv")
    with open(path, newline="") as fh:
        rows = {row["level"]: row for row in csv.DictReader(fh)}
    for entry in report["levels"]:
        row = rows[entry["level"]]
        for side in ("left", "right"):
            assert float(row[f"lateral_recess_{side}_mm"]) == entry["lateral_recess"][side]["width_mm"]
            foramen = entry["neural_foramina"][side]
            if "height_mm" in foramen:
                assert float(row[f"foraminal_height_{side}_mm"]) == foramen["height_mm"]
                assert len(foramen["points_ras"]) == 2
            else:
                assert row[f"foraminal_height_{side}_mm"] == "" and foramen["not_measured"]
    assert "lateral" in report["method"]
    # the Slicer table's rows (lumbarspine.grading.core.table_rows) carry the same numbers, NaN where not measured
    for table_row, entry in zip(table_rows(result), report["levels"]):
        assert table_row["level"] == entry["level"]
        for side in ("left", "right"):
            assert table_row[f"lateral_recess_{side}_mm"] == entry["lateral_recess"][side]["width_mm"]
            height = entry["neural_foramina"][side].get("height_mm")
            value = table_row[f"foraminal_height_{side}_mm"]
            assert value == height if height is not None else math.isnan(value)


def test_sacrum_without_subregions_is_not_measured_at_l5_s1():
    anatomy = _phantom_anatomy("axial")
    sub = np.asarray(anatomy.subregions.array).copy()
    sub[np.asarray(anatomy.labels.array) == SACRUM] = 0
    stripped = anatomy_from_labels(
        anatomy.labels, modality="ct", numbering="imported", source="x", subregions=anatomy.subregions.with_array(sub)
    )
    result = measure_lateral(stripped, "L5-S1")
    for side in ("left", "right"):
        assert "S1 has no sub-regions" in result.recess[side].reason
        assert "S1 has no sub-regions" in result.foramen[side].reason
    assert measure_lateral(stripped, "L4-L5").recess["left"].measured


def test_structure_cut_by_the_field_of_view_is_not_measured():
    anatomy = _phantom_anatomy("axial")
    labels, sub = np.asarray(anatomy.labels.array), np.asarray(anatomy.subregions.array)
    # cut the image through the right side (RAS x > 15 mm): the right articular processes are cut
    ras_x = anatomy.labels.ijk_to_ras_points(np.array([[i, 0, 0] for i in range(labels.shape[2])], float))[:, 0]
    keep = np.flatnonzero(ras_x < 15.0)
    i0, i1 = int(keep.min()), int(keep.max()) + 1
    origin = anatomy.labels.ijk_to_ras_points(np.array([[i0, 0, 0]], float))[0]

    def crop(a):
        return Volume(
            np.ascontiguousarray(a[:, :, i0:i1]), anatomy.labels.spacing, tuple(origin), anatomy.labels.direction, True
        )

    cut = anatomy_from_labels(crop(labels), modality="ct", numbering="imported", source="x", subregions=crop(sub))
    result = measure_lateral(cut, "L3-L4")
    assert result.recess["left"].measured
    assert "cut by the field of view" in result.recess["right"].reason


def test_automatic_ct_subregions_are_not_trusted():
    """The automatic CT segmentation's position-rule sub-regions: not measured by default; with
    ``trust_position_rules`` the 1 mm phantom's foraminal heights are within 1.5 mm of the truth."""
    from lumbarspine.anatomy.ct import segment_ct

    phantom = _phantom("axial")
    anatomy = segment_ct(phantom.image)
    result = grade_anatomy(anatomy)
    for lv in result.levels:
        entry = lv.to_dict()
        for side in ("left", "right"):
            assert entry["lateral_recess"][side] == {"not_measured": POSITION_RULE_REASON}
            assert entry["neural_foramina"][side] == {"not_measured": POSITION_RULE_REASON}
    for level in LUMBAR_LEVELS:
        r = measure_lateral(anatomy, level, trust_position_rules=True)
        for side, sign in (("left", -1), ("right", 1)):
            assert abs(r.foramen[side].value_mm - _true_foramen(level, sign)) <= 1.5, (level, side)


def test_speed_per_level():
    import time

    anatomy = _phantom_anatomy("axial")
    started = time.perf_counter()
    for level in DISC_LEVELS:
        measure_lateral(anatomy, level)
    assert time.perf_counter() - started < 5.0


@pytest.mark.skipif(not (DATA / "totalseg_example_ct.nii.gz").is_file(), reason="../shared/data is absent")
def test_real_ct_automatic_segmentation_says_why():
    """On the 3 mm example CT the automatic segmentation's pedicle bands touch (measured with
    trust_position_rules: foraminal heights 0-8 mm, recess 1.2-17.8 mm, not plausible), so the report says why."""
    from lumbarspine.anatomy.segment import segment_image
    from lumbarspine.io import read_volume

    image = read_volume(DATA / "totalseg_example_ct.nii.gz")
    anatomy = segment_image(image, modality="ct")
    result = grade_anatomy(anatomy)
    assert result.levels
    for lv in result.levels:
        if lv.lateral is None:
            continue
        for side in ("left", "right"):
            assert lv.to_dict()["neural_foramina"][side] == {"not_measured": POSITION_RULE_REASON}
