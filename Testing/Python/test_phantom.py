"""Tests of the synthetic lumbar phantom (lumbarspine.phantom) and the plane cross-section measurement.

Tolerances (see the module docs of lumbarspine.measure.cross_section for the noise study):
* dural sac area at the truth planes, 1 mm grids: 2 % on axial, left-handed axial and sagittal grids; 3 % on
  the 1 mm oblique grid, where the aliasing of the crisp 1 mm raster gives errors of sd ~2 % for a 60 mm2 section
  (measured over random sub-voxel grid shifts); AP diameter within 0.5 mm.
* 0.6 x 0.6 x 4 mm axial stacks: 6 % and 1 mm, because a 4 mm slice spans up to 1.7 mm of canal drift
  (the canal is tilted up to ~25 deg to the slice axis) and the stenotic section changes along the canal.
* pedicle isthmus width: 1 voxel (1 mm) at 1 mm spacing.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from scipy import ndimage

from lumbarspine.labels import DISC_LEVELS
from lumbarspine.measure import cross_section_area_mm2
from lumbarspine.phantom import (
    FIELDS,
    NORMAL_SAC_AREA_MM2,
    ORIENTATIONS,
    Phantom,
    PhantomSpec,
    generate_phantom,
    parse_stenosis,
    write_phantom,
)
from lumbarspine.phantom.anatomy import Centreline, build_layout
from lumbarspine.phantom.rasterize import rasterize
from lumbarspine.volume import Volume

STENOSIS = {"L4-L5": 60.0}
EXPECTED_LABELS = {2, 41, 42, 43, 44, 45, 50, 92, 93, 94, 95, 100, 201}

_CACHE: dict[tuple, Phantom] = {}
_TIMES: dict[tuple, float] = {}


def _phantom(**kwargs) -> Phantom:
    key = tuple(sorted((k, str(v)) for k, v in kwargs.items()))
    if key not in _CACHE:
        t0 = time.perf_counter()
        _CACHE[key] = generate_phantom(PhantomSpec(**kwargs))
        _TIMES[key] = time.perf_counter() - t0
    return _CACHE[key]


# (spec kwargs, area tolerance (fraction), AP diameter tolerance mm)
AREA_CASES = {
    "axial-1mm": (dict(), 0.02, 0.5),
    "axial-1mm-stenosis": (dict(stenosis=STENOSIS), 0.02, 0.5),
    "axial-lefthanded-1mm-stenosis": (dict(stenosis=STENOSIS, orientation="axial-lps-lefthanded"), 0.02, 0.5),
    "sagittal-1mm-stenosis": (dict(stenosis=STENOSIS, orientation="sagittal"), 0.02, 0.5),
    # On oblique 1 mm grids the voxelisation alone spreads a 60 mm2 section by about +-2 % (measured over
    # sub-voxel grid shifts), so 1 mm oblique grids are held to 3 % and the 2 % promise is checked at 0.7 mm.
    "oblique-1mm-stenosis": (dict(stenosis=STENOSIS, orientation="oblique"), 0.03, 0.5),
    "oblique-lefthanded-1mm": (dict(orientation="oblique-lefthanded"), 0.03, 0.5),
    "oblique-0.7mm-stenosis": (dict(stenosis=STENOSIS, orientation="oblique", spacing=(0.7, 0.7, 0.7)), 0.02, 0.5),
    "oblique-lefthanded-0.7mm-stenosis": (
        dict(stenosis=STENOSIS, orientation="oblique-lefthanded", spacing=(0.7, 0.7, 0.7)),
        0.02,
        0.5,
    ),
    "axial-0.6x0.6x4-stenosis": (dict(stenosis=STENOSIS, spacing=(0.6, 0.6, 4.0)), 0.06, 1.0),
}


# ------------------------------------------------------------------------------------------- stenosis parsing
def test_parse_stenosis_ok():
    assert parse_stenosis("L4-L5=60,L3-L4=90") == {"L4-L5": 60.0, "L3-L4": 90.0}
    assert parse_stenosis(" l5_s1 = 75.5 ; ") == {"L5-S1": 75.5}
    assert parse_stenosis("") == {}


@pytest.mark.parametrize(
    "text, message",
    [
        ("L6-S1=60", "Unknown disc level"),
        ("T12-L1=60", "Unknown disc level"),
        ("L4-L5=abc", "must be a number"),
        ("L4-L5=nan", "must be finite"),
        ("L4-L5=5", "outside the plausible range"),
        ("L4-L5=400", "outside the plausible range"),
        ("L4-L5", "Malformed"),
        ("L4-L5=60,L4-L5=70", "given twice"),
    ],
)
def test_parse_stenosis_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_stenosis(text)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(modality="pet"), "Unknown modality"),
        (dict(orientation="diagonal"), "Unknown orientation"),
        (dict(spacing=(1.0, 0.0, 1.0)), "spacing"),
        (dict(spacing=(1.0, 1.0)), "spacing"),
        (dict(seed=-1), "seed"),
        (dict(seed=1.5), "seed"),
        (dict(stenosis={"L4-L5": 200.0}), "plausible range"),
        (dict(stenosis={"L9-L10": 50.0}), "Unknown disc level"),
        (dict(stenosis=[("L4-L5", 60)]), "mapping"),
        (dict(noise=-1.0), "noise"),
    ],
)
def test_spec_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PhantomSpec(**kwargs)


def test_spec_accepts_stenosis_string_and_too_fine_grid_is_refused():
    assert PhantomSpec(stenosis="L4-L5=60").stenosis == {"L4-L5": 60.0}
    assert hash(PhantomSpec(stenosis="L4-L5=60")) == hash(PhantomSpec(stenosis={"l4_l5": 60}))
    with pytest.raises(ValueError, match="voxels"):
        generate_phantom(PhantomSpec(spacing=(0.1, 0.1, 0.1)))
    with pytest.raises(ValueError, match="PhantomSpec"):
        generate_phantom("ct")  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------------- basic content
def test_default_phantom_labels_geometry_and_time():
    ph = _phantom()
    key = tuple()
    assert _TIMES[key] < 20.0, f"default phantom took {_TIMES[key]:.1f} s"
    assert isinstance(ph.image, Volume) and isinstance(ph.labels, Volume)
    assert ph.labels.is_label and not ph.image.is_label
    assert ph.image.array.dtype == np.int16
    assert ph.labels.array.dtype == np.uint8
    assert ph.image.same_geometry(ph.labels)
    assert set(np.unique(ph.labels.array).tolist()) - {0} == EXPECTED_LABELS
    # every structure lies inside the grid, with background all round
    arr = ph.labels.array
    for face in (arr[0], arr[-1], arr[:, 0], arr[:, -1], arr[:, :, 0], arr[:, :, -1]):
        assert not face.any()


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_orientations_handedness(orientation):
    ph = _phantom(orientation=orientation, spacing=(2.0, 2.0, 2.0))
    det = np.linalg.det(ph.labels.direction)
    assert abs(abs(det) - 1) < 1e-9
    assert ph.labels.is_right_handed == ("lefthanded" not in orientation)
    assert ph.truth["geometry"]["right_handed"] == ph.labels.is_right_handed
    assert set(np.unique(ph.labels.array).tolist()) - {0} == EXPECTED_LABELS


def test_sagittal_slices_across_x():
    ph = _phantom(orientation="sagittal", stenosis=STENOSIS)
    assert np.allclose(np.abs(ph.labels.direction[:, 2]), [1, 0, 0])


def test_ct_intensities_plausible():
    ph = _phantom()
    img, lab = ph.image.array.astype(float), ph.labels.array
    sac = np.median(img[lab == 2])
    fat = np.median(img[lab == 201])
    bone = img[lab == 43]
    disc = np.median(img[lab == 94])
    assert -20 < sac < 40
    assert fat < -50
    assert 50 < disc < 120
    assert 150 < np.median(bone) < 800
    assert np.percentile(bone, 95) > 800  # cortical shell
    assert img.max() < 1600
    assert np.median(img[0, :5, :5]) < -900  # air in the grid corner


def test_t2_contrast_and_bias():
    ph = _phantom(modality="t2", stenosis=STENOSIS)
    img, lab = ph.image.array, ph.labels.array
    assert img.dtype == np.float32
    csf = np.median(img[lab == 2])
    bone = np.median(img[lab == 43])
    assert csf > 1.5 * bone
    assert np.median(img[lab == 201]) > bone
    assert np.all(img >= 0)  # Rician magnitude


def test_seeds_reproducible():
    a = generate_phantom(PhantomSpec(seed=3, spacing=(2.0, 2.0, 2.0)))
    b = generate_phantom(PhantomSpec(seed=3, spacing=(2.0, 2.0, 2.0)))
    c = generate_phantom(PhantomSpec(seed=4, spacing=(2.0, 2.0, 2.0)))
    assert np.array_equal(a.image.array, b.image.array)
    assert np.array_equal(a.labels.array, c.labels.array)
    assert not np.array_equal(a.image.array, c.image.array)
    assert a.truth == b.truth
    t2a = generate_phantom(PhantomSpec(seed=3, modality="t2", spacing=(2.0, 2.0, 2.0)))
    t2b = generate_phantom(PhantomSpec(seed=3, modality="t2", spacing=(2.0, 2.0, 2.0)))
    assert np.array_equal(t2a.image.array, t2b.image.array)


# --------------------------------------------------------------------------------------------------- truth
def test_truth_structure():
    ph = _phantom(stenosis=STENOSIS)
    truth = ph.truth
    json.dumps(truth)  # JSON-ready
    assert truth["fields"] is FIELDS or truth["fields"] == FIELDS
    assert truth["spec"]["stenosis"] == STENOSIS
    assert set(truth["levels"]) == set(DISC_LEVELS)
    for level, t in truth["levels"].items():
        n = np.array(t["plane_normal_ras"])
        assert abs(np.linalg.norm(n) - 1) < 1e-5 and n[2] > 0.8
        assert abs(np.dot(n, t["ap_direction_ras"])) < 1e-5
        assert t["stenosis_requested"] == (level == "L4-L5")
        expected = 60.0 if level == "L4-L5" else NORMAL_SAC_AREA_MM2
        assert t["dural_sac_area_mm2"] == pytest.approx(expected, rel=1e-9)
        assert t["ap_diameter_mm"] < t["lateral_diameter_mm"]
    assert 40 <= truth["canal"]["lordosis_deg"] <= 50
    for name in ("L1", "L2", "L3", "L4", "L5"):
        v = truth["vertebrae"][name]
        assert 30 <= v["body_depth_mm"] <= 35 and 40 <= v["body_width_mm"] <= 50
        for side, sign in (("left", -1), ("right", 1)):
            p = v["pedicles"][side]
            d = np.array(p["axis_direction_ras"])
            assert abs(np.linalg.norm(d) - 1) < 1e-5
            assert np.dot(d, v["anterior_direction_ras"]) > 0.85  # points anteriorly
            assert sign * d[0] < 0  # converges toward the midline
            assert sign * p["isthmus_center_ras"][0] > 0
            assert p["medial_angle_deg"] == pytest.approx(5.0 * int(name[1]))
            assert 7.0 <= p["isthmus_width_mm"] <= 11.0


def test_truth_points_carry_the_right_labels():
    ph = _phantom(orientation="oblique", stenosis=STENOSIS)
    for t in ph.truth["levels"].values():
        assert ph.labels.sample_nearest_ras(np.array(t["plane_center_ras"]))[0] == 2
        assert ph.labels.sample_nearest_ras(np.array(t["disc_center_ras"]))[0] == t["disc_label"]
    for v in ph.truth["vertebrae"].values():
        assert ph.labels.sample_nearest_ras(np.array(v["body_center_ras"]))[0] == v["label"]
        for p in v.get("pedicles", {}).values():
            assert ph.labels.sample_nearest_ras(np.array(p["isthmus_center_ras"]))[0] == v["label"]


def test_write_phantom(tmp_path):
    import SimpleITK as sitk

    spec = PhantomSpec(seed=1, stenosis=STENOSIS, spacing=(2.0, 2.0, 2.0), orientation="oblique-lefthanded")
    paths = write_phantom(tmp_path / "new" / "dir", spec)
    assert set(paths) == {"image", "labels", "truth"}
    image = Volume.from_sitk(sitk.ReadImage(paths["image"]))
    labels = Volume.from_sitk(sitk.ReadImage(paths["labels"]), is_label=True)
    ph = generate_phantom(spec)
    assert labels.same_geometry(ph.labels, atol=1e-4)
    assert np.array_equal(labels.array, ph.labels.array)
    assert np.array_equal(image.array, ph.image.array)
    assert not labels.is_right_handed
    with open(paths["truth"], encoding="utf-8") as fh:
        truth = json.load(fh)
    assert "fields" in truth and "levels.*.dural_sac_area_mm2" in truth["fields"]
    assert truth["levels"]["L4-L5"]["dural_sac_area_mm2"] == pytest.approx(60.0)
    assert truth["spec"]["orientation"] == "oblique-lefthanded"


# ------------------------------------------------------------------------------------------ measured truth
@pytest.mark.parametrize("case", list(AREA_CASES))
def test_dural_sac_area_matches_truth(case):
    kwargs, tol, ap_tol = AREA_CASES[case]
    ph = _phantom(**kwargs)
    for level, t in ph.truth["levels"].items():
        cs = cross_section_area_mm2(
            ph.labels, 2, t["plane_center_ras"], t["plane_normal_ras"], ap_direction_ras=t["ap_direction_ras"]
        )
        rel = cs.area_mm2 / t["dural_sac_area_mm2"] - 1
        assert abs(rel) <= tol, f"{case} {level}: {cs.area_mm2:.1f} vs {t['dural_sac_area_mm2']:.1f} mm2"
        assert abs(cs.ap_diameter_mm - t["ap_diameter_mm"]) <= ap_tol, f"{case} {level} AP"
        assert abs(cs.lateral_diameter_mm - t["lateral_diameter_mm"]) <= ap_tol + 0.5, f"{case} {level} lateral"


def _pedicle_width(labels: Volume, label: int, centre, direction, step: float = 0.05) -> float:
    """Width (mm) of the run of ``label`` through ``centre`` along ``direction`` (trilinear mask, 0.5 level)."""
    offsets = np.arange(-20.0, 20.0 + step / 2, step)
    pts = np.asarray(centre)[None, :] + offsets[:, None] * np.asarray(direction)[None, :]
    ijk = labels.ras_to_ijk_points(pts)
    mask = (labels.array == label).astype(np.float32)
    inside = ndimage.map_coordinates(mask, ijk[:, ::-1].T, order=1, mode="constant") >= 0.5
    runs, _ = ndimage.label(inside)
    mid = len(offsets) // 2
    assert runs[mid] > 0
    return float((runs == runs[mid]).sum() * step)


@pytest.mark.parametrize("orientation", ["axial", "oblique-lefthanded"])
def test_pedicle_isthmus_width(orientation):
    ph = _phantom(orientation=orientation, stenosis=STENOSIS)
    for name in ("L1", "L2", "L3", "L4", "L5"):
        v = ph.truth["vertebrae"][name]
        for side, p in v["pedicles"].items():
            c, d, a = (np.array(p[k]) for k in ("isthmus_center_ras", "transverse_direction_ras", "axis_direction_ras"))
            assert abs(np.dot(d, a)) < 1e-6
            width = _pedicle_width(ph.labels, v["label"], c, d)
            assert abs(width - p["isthmus_width_mm"]) <= 1.0, f"{name} {side}: {width:.2f} mm"
            # the isthmus is the narrowest section along the axis
            for t in (-4.0, 4.0):
                assert _pedicle_width(ph.labels, v["label"], c + t * a, d) > width - 0.3


def test_same_labels_at_same_ras_points_on_all_grids():
    grids = ["axial", "oblique", "axial-lps-lefthanded", "oblique-lefthanded", "sagittal"]
    phantoms = {g: _phantom(orientation=g, stenosis=STENOSIS) for g in grids}
    rng = np.random.default_rng(7)
    lo, hi = phantoms["axial"].labels.bounds_ras()
    pts = rng.uniform(lo, hi, size=(150_000, 3))
    centreline, layout = Centreline(), build_layout()
    analytic, _ = rasterize(*centreline.ras_to_suw(pts), layout, dict(STENOSIS))
    spine = analytic != 0
    # "interior" points: the analytic label is the same 1 mm around (a voxel half-diagonal is 0.87 mm)
    interior = spine.copy()
    for dvec in np.vstack([np.eye(3), -np.eye(3), np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).reshape(3, -1).T]):
        shifted = pts + dvec / np.linalg.norm(dvec)
        lab, _ = rasterize(*centreline.ras_to_suw(shifted), layout, dict(STENOSIS))
        interior &= lab == analytic
    assert spine.sum() > 10_000 and interior.sum() > 5_000
    for g, ph in phantoms.items():
        lab = ph.labels.sample_nearest_ras(pts)
        agree_interior = np.mean(lab[interior] == analytic[interior])
        agree_spine = np.mean(lab[spine] == analytic[spine])
        assert agree_interior > 0.995, f"{g}: {agree_interior:.4f}"
        assert agree_spine > 0.93, f"{g}: {agree_spine:.4f}"  # boundary voxels differ by voxelisation
        if g != "axial":
            ref = phantoms["axial"].labels.sample_nearest_ras(pts[interior])
            assert np.mean(lab[interior] == ref) > 0.99


def test_stenosis_narrows_smoothly():
    ph = _phantom(stenosis=STENOSIS)
    t = ph.truth["levels"]["L4-L5"]
    centre, normal = np.array(t["plane_center_ras"]), np.array(t["plane_normal_ras"])
    far = cross_section_area_mm2(ph.labels, 2, ph.truth["levels"]["L3-L4"]["plane_center_ras"], normal)
    assert far.area_mm2 > 150
    # 6 mm above the level (along the canal) the sac is between stenotic and normal
    mid = cross_section_area_mm2(ph.labels, 2, centre + 6.0 * normal, normal)
    assert 70 < mid.area_mm2 < 150


# ---------------------------------------------------------------------------------- cross-section errors
def test_cross_section_bad_inputs():
    ph = _phantom()
    t = ph.truth["levels"]["L3-L4"]
    c, n = t["plane_center_ras"], t["plane_normal_ras"]
    with pytest.raises(ValueError, match="zero length"):
        cross_section_area_mm2(ph.labels, 2, c, [0, 0, 0])
    with pytest.raises(ValueError, match="finite"):
        cross_section_area_mm2(ph.labels, 2, [np.nan, 0, 0], n)
    with pytest.raises(ValueError, match="three numbers"):
        cross_section_area_mm2(ph.labels, 2, [0, 0], n)
    with pytest.raises(ValueError, match="misses"):
        cross_section_area_mm2(ph.labels, 2, [500.0, 500.0, 500.0], n)
    with pytest.raises(ValueError, match="not inside"):
        cross_section_area_mm2(ph.labels, 2, np.array(c) + [0, 0, 0.0] + 30 * np.array([1.0, 0, 0]), n)
    with pytest.raises(ValueError, match="integer label"):
        cross_section_area_mm2(ph.labels, 2.5, c, n)
    with pytest.raises(ValueError, match="integer labels"):
        cross_section_area_mm2(ph.image.with_array(ph.image.array.astype(np.float32)), 2, c, n)
    with pytest.raises(ValueError, match="edge"):
        cross_section_area_mm2(ph.labels, 2, c, n, radius_mm=5.0)
    with pytest.raises(ValueError, match="Unknown method"):
        cross_section_area_mm2(ph.labels, 2, c, n, method="cubic")
    with pytest.raises(ValueError, match="step_mm"):
        cross_section_area_mm2(ph.labels, 2, c, n, step_mm=0)
    with pytest.raises(ValueError, match="parallel"):
        cross_section_area_mm2(ph.labels, 2, c, n, ap_direction_ras=n)


def test_cross_section_methods_and_label_union():
    ph = _phantom()
    t = ph.truth["levels"]["L3-L4"]
    lin = cross_section_area_mm2(ph.labels, 2, t["plane_center_ras"], t["plane_normal_ras"])
    near = cross_section_area_mm2(ph.labels, [2], t["plane_center_ras"], t["plane_normal_ras"], method="nearest")
    assert lin.method == "linear" and near.method == "nearest"
    assert abs(near.area_mm2 / t["dural_sac_area_mm2"] - 1) < 0.03
    canal = cross_section_area_mm2(ph.labels, [2, 201], t["plane_center_ras"], t["plane_normal_ras"])
    assert canal.area_mm2 > lin.area_mm2 + 50
    assert math.isclose(np.linalg.norm(lin.normal_ras), 1.0)
