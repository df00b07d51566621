"""Automatic CT segmentation (lumbarspine.anatomy.ct.segment_ct) against the phantom's labels and real CT.

What is reached when these tests were written: on 1.5 mm phantoms (axial with osteophytes and a stenosis,
oblique, oblique left-handed, sagittal) every lumbar vertebra Dice 0.86-0.98 and the sacrum 0.96-0.98;
on 0.8 x 0.8 x 2.5 mm slices 0.83-0.96 (the inferior articular tips sit 4 mm above the lamina below,
less than two slices); canal Dice against the bony canal content (dural sac + epidural fat) 0.82-0.84
(the phantom's canal runs on 12 mm above L1 where no bony ring encloses it). On the real
TotalSegmentator crop (3 mm voxels, osteoporotic marrow near soft-tissue HU) the three vertebrae found
reach Dice 0.81 (T12) / 0.81 (L1) / 0.85 (L2, cut by the field of view) against TotalSegmentator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from lumbarspine.anatomy.ct import segment_ct
from lumbarspine.anatomy.model import UNNUMBERED_VERTEBRA_BASE
from lumbarspine.io import read_volume
from lumbarspine.phantom import PhantomSpec, generate_phantom
from lumbarspine.progress import OperationCancelled
from lumbarspine.volume import Volume

LUMBAR = ["L1", "L2", "L3", "L4", "L5", "S1"]
DISCS = ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]

# name: (spec kwargs, minimum vertebra Dice)
PHANTOM_CASES = {
    "axial-1.5mm-osteophytes-stenosis": (
        dict(spacing=(1.5, 1.5, 1.5), osteophytes=("L3-L4", "L4-L5"), stenosis={"L4-L5": 60.0}),
        0.85,
    ),
    "oblique-1.5mm": (dict(spacing=(1.5, 1.5, 1.5), orientation="oblique"), 0.85),
    "oblique-lefthanded-1.5mm": (dict(spacing=(1.5, 1.5, 1.5), orientation="oblique-lefthanded"), 0.85),
    # 2.5 mm slices: the inferior articular tips and the lamina below blur together along the slice axis
    "axial-anisotropic-0.8x0.8x2.5": (dict(spacing=(0.8, 0.8, 2.5)), 0.80),
}

_CACHE: dict[str, tuple] = {}


def _segmented(case: str):
    if case not in _CACHE:
        kwargs, _ = PHANTOM_CASES[case]
        phantom = generate_phantom(PhantomSpec(modality="ct", **kwargs))
        _CACHE[case] = (phantom, segment_ct(phantom.image))
    return _CACHE[case]


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2.0 * np.count_nonzero(a & b) / max(1, np.count_nonzero(a) + np.count_nonzero(b)))


@pytest.mark.parametrize("case", list(PHANTOM_CASES))
def test_phantom_vertebrae_named_and_separated(case):
    phantom, anatomy = _segmented(case)
    _, min_dice = PHANTOM_CASES[case]
    assert anatomy.modality == "ct" and anatomy.source == "automatic ct"
    assert anatomy.numbering == "sacrum"
    assert [v.name for v in anatomy.vertebrae] == LUMBAR
    assert [d.name for d in anatomy.discs] == DISCS
    labels, truth = anatomy.labels.array, phantom.labels.array
    assert anatomy.labels.same_geometry(phantom.image)
    for v in anatomy.vertebrae:
        dice = _dice(labels == v.label, truth == v.label)
        assert dice >= min_dice, f"{case} {v.name}: Dice {dice:.3f}"
    # each disc lies at its level: its centroid within 6 mm of the truth disc centre
    for d in anatomy.discs:
        centre = np.array(phantom.truth["levels"][d.name]["disc_center_ras"])
        assert np.linalg.norm(np.array(d.centroid_ras) - centre) < 6.0, d.name


@pytest.mark.parametrize("case", list(PHANTOM_CASES))
def test_phantom_canal_is_one_tube_through_the_levels(case):
    phantom, anatomy = _segmented(case)
    canal = anatomy.labels.array == 2
    truth = np.isin(phantom.labels.array, [2, 201])
    assert _dice(canal, truth) >= 0.78
    _, n = ndimage.label(canal, structure=np.ones((3, 3, 3)))
    assert n == 1
    # the tube passes through the canal at every disc level, and the centreline runs cranial to caudal
    for level in DISCS:
        centre = np.array(phantom.truth["levels"][level]["plane_center_ras"])
        assert anatomy.labels.sample_nearest_ras(centre)[0] == 2, level
    line = anatomy.centreline_ras
    assert line is not None and line[0][2] > line[-1][2]
    dist = [np.min(np.linalg.norm(line - phantom.truth["levels"][lv]["plane_center_ras"], axis=1)) for lv in DISCS]
    assert max(dist) < 3.0


@pytest.mark.parametrize("case", ["oblique-lefthanded-1.5mm", "axial-anisotropic-0.8x0.8x2.5"])
def test_phantom_subregions_body_and_pedicles(case):
    phantom, anatomy = _segmented(case)
    sub = anatomy.subregions
    assert sub is not None and sub.same_geometry(anatomy.labels)
    # every sub-region voxel belongs to a vertebra, and every vertebra voxel has a sub-region
    vertebra = np.isin(anatomy.labels.array, [v.label for v in anatomy.vertebrae])
    np.testing.assert_array_equal(sub.array > 0, vertebra)
    for name in LUMBAR[:-1]:
        truth = phantom.truth["vertebrae"][name]
        assert sub.sample_nearest_ras(np.array(truth["body_center_ras"]))[0] == 50, name
        for side, code in (("left", 51), ("right", 52)):
            centre = np.array(truth["pedicles"][side]["isthmus_center_ras"])
            assert sub.sample_nearest_ras(centre)[0] == code, (name, side)


def test_without_sacrum_nothing_is_numbered():
    phantom = generate_phantom(PhantomSpec(modality="ct", spacing=(1.5, 1.5, 1.5)))
    image = phantom.image
    # cut the field of view above the L5-S1 disc (axial grid: k runs inferior -> superior)
    cut_ras = np.array(phantom.truth["levels"]["L4-L5"]["plane_center_ras"]) - np.array([0.0, 0.0, 30.0])
    k0 = int(np.ceil(image.ras_to_ijk_points(cut_ras)[0][2]))
    cropped = Volume(
        np.ascontiguousarray(image.array[k0:]),
        image.spacing,
        tuple(image.ijk_to_ras_points(np.array([[0.0, 0.0, k0]]))[0]),
        image.direction,
    )
    anatomy = segment_ct(cropped)
    assert anatomy.numbering is None
    assert all(v.label > UNNUMBERED_VERTEBRA_BASE for v in anatomy.vertebrae)
    assert [v.name for v in anatomy.vertebrae][:4] == ["vertebra 1", "vertebra 2", "vertebra 3", "vertebra 4"]
    assert any("sacrum is not in the field of view" in w for w in anatomy.warnings)


def test_input_untouched_progress_and_cancel():
    phantom = generate_phantom(PhantomSpec(modality="ct", spacing=(2.0, 2.0, 2.0)))
    before = phantom.image.array.copy()
    seen: list[float] = []
    anatomy = segment_ct(phantom.image, progress=lambda f, m: seen.append(f))
    np.testing.assert_array_equal(phantom.image.array, before)
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)
    assert anatomy.vertebra("L3") is not None
    with pytest.raises(OperationCancelled):
        segment_ct(phantom.image, cancel=lambda: True)


def test_bad_inputs_say_what_is_wrong():
    phantom = generate_phantom(PhantomSpec(modality="ct", spacing=(2.0, 2.0, 2.0)))
    with pytest.raises(ValueError, match="label map"):
        segment_ct(phantom.labels)
    t2 = generate_phantom(PhantomSpec(modality="t2", spacing=(2.0, 2.0, 2.0)))
    with pytest.raises(ValueError, match="Hounsfield"):
        segment_ct(t2.image)
    water = phantom.image.with_array(np.where(phantom.image.array > 150, 40, phantom.image.array).astype(np.int16))
    with pytest.raises(ValueError, match="bone|canal"):
        segment_ct(water)
    with pytest.raises(ValueError, match="backend"):
        segment_ct(phantom.image, backend="quantum")


def test_real_ct_crop_matches_totalsegmentator(shared_data):
    image = read_volume(shared_data / "totalseg_example_ct_sm.nii.gz")
    reference = read_volume(shared_data / "totalseg_example_ct_sm_seg.nii.gz").array
    anatomy = segment_ct(image)
    # T11 (a 70-voxel sliver), T12, L1, L2 in view, no sacrum: unnumbered, with the warning
    assert anatomy.numbering is None
    assert any("sacrum is not in the field of view" in w for w in anatomy.warnings)
    labels = anatomy.labels.array
    matched = []
    for v in anatomy.vertebrae:
        mask = labels == v.label
        overlaps = {ref: np.count_nonzero(mask & (reference == ref)) for ref in (30, 31, 32, 33)}
        best = max(overlaps, key=overlaps.get)
        matched.append((v.name, best, _dice(mask, reference == best)))
    # T12 (32), L1 (31), L2 (30) found, top to bottom, each once
    assert [m[1] for m in matched] == [32, 31, 30], matched
    for name, ref, dice in matched:
        assert dice >= 0.75, f"{name} vs TotalSegmentator {ref}: Dice {dice:.2f}"
    # the canal holds the spinal cord TotalSegmentator found
    cord = reference == 79
    assert np.count_nonzero(cord & (labels == 2)) / np.count_nonzero(cord) > 0.5


def test_real_ct_full_numbered_from_the_sacrum(shared_data):
    image = read_volume(shared_data / "totalseg_example_ct.nii.gz")
    anatomy = segment_ct(image)
    assert anatomy.numbering == "sacrum"
    names = [v.name for v in anatomy.vertebrae]
    assert names[-6:] == LUMBAR
    assert [d.name for d in anatomy.discs][-5:] == DISCS
    centroids = np.array([v.centroid_ras for v in anatomy.vertebrae])
    assert np.all(np.diff(centroids[:, 2]) < 0)  # cranial to caudal
    canal = anatomy.labels.array == 2
    _, n = ndimage.label(canal, structure=np.ones((3, 3, 3)))
    assert n == 1
    line = anatomy.centreline_ras
    assert line is not None and np.ptp(line[:, 2]) > 150.0  # from T12 into the sacrum


# ------------------------------------------------------------------------------ posterior-arch sub-regions
SUBREGION_CASES = ["axial-1.5mm-osteophytes-stenosis", "oblique-1.5mm", "oblique-lefthanded-1.5mm"]
ARCH_PARTS = ("spinous_process", "transverse_process", "superior_articular", "inferior_articular")
KNOWN_SPLIT_ERRORS = {("oblique-lefthanded-1.5mm", "L5", "spinous_process")}
"""Sub-regions missing because the vertebra split (watershed), not the sub-region rules, gives the part to a
neighbour: on the oblique left-handed 1.5 mm grid the L5 spinous process goes to the sacrum (checked below)."""


def _codes(part: str) -> dict[str, int]:
    """{side: sub-region code} of a part (the spinous process has one code, on the mid-line)."""
    from lumbarspine.anatomy.model import SUBREGIONS

    if part == "spinous_process":
        return {"mid": SUBREGIONS[part]}
    return {side: SUBREGIONS[f"{part}_{side}"] for side in ("left", "right")}


def _phantom_parts(phantom, name: str) -> dict[str, np.ndarray]:
    """Voxels of the phantom's posterior-arch parts of vertebra ``name`` (truth label and the part's box in the
    phantom's own (s, u, w) frame, as lumbarspine.phantom.rasterize draws them), keyed like :func:`_codes`."""
    from lumbarspine.phantom.anatomy import CANAL_SEMI_AP_MM, FACET_GAP_MM, Centreline, build_layout
    from lumbarspine.phantom.rasterize import SAP_INNER_U_MM

    v = next(x for x in build_layout().vertebrae if x.name == name)
    mine = phantom.labels.array == v.label
    kji = np.argwhere(mine)
    s, u, w = Centreline().ras_to_suw(phantom.labels.ijk_to_ras_points(kji[:, ::-1].astype(float)))
    ss, au, h2, sp = s - v.s_center, np.abs(u), v.height / 2, v.pedicle_s - v.s_center

    def inside(x, lo, hi):
        return (x > lo) & (x < hi)

    boxes = {
        "spinous_process": inside(ss, -h2 - 4, h2 - 8)
        & (au < 3)
        & inside(w, -(CANAL_SEMI_AP_MM + v.spinous_length), -(CANAL_SEMI_AP_MM + 3)),
        "transverse_process": inside(ss, sp - 4, sp + 4)
        & inside(au, v.pedicle_u + 2, v.pedicle_u + v.pedicle_width / 2 + v.transverse_length)
        & inside(w, -8, -2),
        "superior_articular": inside(ss, h2 - 6, h2 + 9) & inside(au, SAP_INNER_U_MM, 19.5) & inside(w, -13, -4),
        "inferior_articular": inside(ss, -h2 - 9, -h2 + 5)
        & inside(au, 8, SAP_INNER_U_MM - FACET_GAP_MM)
        & inside(w, -15, -6),
    }
    out = {}
    for part, in_box in boxes.items():
        for side in _codes(part):
            keep = in_box & ((u < 0) if side == "left" else (u > 0) if side == "right" else True)
            mask = np.zeros(mine.shape, dtype=bool)
            mask[tuple(kji[keep].T)] = True
            out[f"{part} {side}"] = mask
    return out


@pytest.mark.parametrize("case", SUBREGION_CASES)
def test_phantom_arch_subregions_present_on_their_side_and_in_order(case):
    """Every sub-region of L1-L5 is there, left in RAS on the patient's left, the superior articular process
    above the inferior one, the spinous process behind the lamina, the transverse process lateral of the pedicle."""
    from lumbarspine.anatomy.model import SUBREGIONS

    phantom, anatomy = _segmented(case)
    labels, sub = anatomy.labels.array, anatomy.subregions.array
    grid = anatomy.labels
    for name in LUMBAR[:-1]:
        info = phantom.truth["vertebrae"][name]
        canal = np.array(info["canal_center_ras"])
        superior, anterior = np.array(info["body_axis_ras"]), np.array(info["anterior_direction_ras"])
        right = np.cross(anterior, superior)  # RAS +x for this phantom
        mine = labels == anatomy.vertebra(name).label

        def centroid(code, mine=mine, canal=canal):
            pts = np.argwhere(mine & (sub == code))
            return grid.ijk_to_ras_points(pts[:, ::-1].astype(float)).mean(axis=0) - canal if len(pts) else None

        c = {}
        for part in (
            "body",
            "pedicle_left",
            "pedicle_right",
            "arch",
            *[f"{p} {s}" for p in ARCH_PARTS for s in _codes(p)],
        ):
            code = SUBREGIONS[part] if " " not in part else _codes(part.split()[0])[part.split()[1]]
            c[part] = centroid(code)
            if (case, name, part.split()[0]) in KNOWN_SPLIT_ERRORS:
                continue
            assert c[part] is not None and np.count_nonzero(mine & (sub == code)) >= 10, (case, name, part)
        for part, at in c.items():
            if at is None or part.endswith(" mid") or part in ("body", "arch"):
                continue
            assert (at @ right < 0) == part.endswith("left"), (case, name, part, at @ right)
        for side in ("left", "right"):
            sap, iap = c[f"superior_articular {side}"], c[f"inferior_articular {side}"]
            assert sap @ superior > iap @ superior + 10.0, (case, name, side)
            assert abs(c[f"transverse_process {side}"] @ right) > abs(c[f"pedicle_{side}"] @ right) + 8.0, (name, side)
        if c["spinous_process mid"] is not None:
            assert c["spinous_process mid"] @ anterior < c["arch"] @ anterior - 5.0, (case, name)
    # S1: the superior articular processes (facing L5) and the median crest
    s1 = labels == anatomy.vertebra("S1").label
    for code in (SUBREGIONS["superior_articular_left"], SUBREGIONS["superior_articular_right"], 42):
        assert np.count_nonzero(s1 & (sub == code)) >= 10, (case, code)
    for code in (43, 44, 47, 48):
        assert not np.any(s1 & (sub == code)), (case, code)


@pytest.mark.parametrize("case", SUBREGION_CASES)
def test_phantom_arch_subregions_overlap_the_phantom_parts(case):
    """Where the phantom has the part (its boxes, rasterize.py), our sub-region covers it and lies mostly in it.

    Recall counts the part's voxels our split gave to the same vertebra (the watershed's errors are the
    vertebra tests' business). Measured (1.5 mm grids): spinous / transverse / superior articular precision
    0.58-0.99, recall 0.58-1.0; the inferior articular sub-region also takes the lateral lower lamina (the
    phantom's lamina ring reaches under it), precision 0.19-0.40, recall within the vertebra 0.5-1.0. A part
    the split gave mostly to another vertebra is counted instead: the split's cut runs through the facet joints
    (1.5 mm joint space on 1.5 mm voxels) and gives 4-8 of the 35 parts of a grid, all articular processes
    but the left-handed grid's L5 spinous process (to the sacrum), mostly to the neighbour.
    """
    phantom, anatomy = _segmented(case)
    labels, sub = anatomy.labels.array, anatomy.subregions.array
    given_away = []
    for name in LUMBAR[:-1]:
        label = anatomy.vertebra(name).label
        parts = _phantom_parts(phantom, name)
        for part in ARCH_PARTS:
            for side, code in _codes(part).items():
                whole = parts[f"{part} {side}"]
                if np.count_nonzero(whole & (labels == label)) < 0.5 * np.count_nonzero(whole):
                    # the split gave most of the part to a neighbour (or none): the vertebra's error, counted
                    given_away.append((name, part, side))
                    continue
                truth = whole & (labels == label)
                ours = (sub == code) & (labels == label)
                recall = np.count_nonzero(ours & truth) / max(1, np.count_nonzero(truth))
                precision = np.count_nonzero(ours & parts[f"{part} {side}"]) / max(1, np.count_nonzero(ours))
                min_precision = 0.15 if part == "inferior_articular" else 0.5
                assert recall >= 0.4 and precision >= min_precision, (case, name, part, side, recall, precision)
    # only facets (the split's cut runs through the facet joints) and the one known spinous process go astray
    assert len(given_away) <= 10, given_away
    assert all(part.endswith("articular") or (name, part) == ("L5", "spinous_process") for name, part, _ in given_away)


@pytest.mark.xfail(strict=True, reason="the vertebra split gives the L5 spinous process to the sacrum on this grid")
def test_phantom_known_split_error_l5_spinous_oblique_lefthanded():
    from lumbarspine.anatomy.model import SUBREGIONS

    _, anatomy = _segmented("oblique-lefthanded-1.5mm")
    l5 = anatomy.labels.array == anatomy.vertebra("L5").label
    assert np.count_nonzero(l5 & (anatomy.subregions.array == SUBREGIONS["spinous_process"])) >= 10


CLASSIC_CASES = ("axial-1.5mm-osteophytes-stenosis", "oblique-1.5mm", "axial-anisotropic-0.8x0.8x2.5")
# fewest lumbar sides planned per (case, trajectory) out of 10; measured: 10/10 except Roy-Camille 7 (oblique) and
# 9 (anisotropic), Magerl 8 (oblique), Weinstein 9 (axial), 7 (oblique), 9 (anisotropic); the others are refused
# with their reason (too little bone along the line from that entry point on the automatic segmentation)
CLASSIC_MIN_PLANNED = 7


def _independent_entry_breach(labels: Volume, label: int, entry: np.ndarray, tip: np.ndarray, diameter: float):
    """On the voxels, independent of the planner: (axis' distance to the bone at the entry, largest distance of the
    screw's surface to the bone counted after the entry). Surface points every 0.3 mm, 40 around
    (geometry_cases.screw_surface_ijk) -> nearest voxel -> its Euclidean distance (mm) to the vertebra's voxels.
    Each of the 40 surface lines counts from its first bone voxel within 1.75 radii past the axis' first bone voxel
    (the screw crossing the dorsal cortex at its entry point), else from there on."""
    from geometry_cases import screw_surface_ijk

    mask = np.asarray(labels.array) == label
    outside = ndimage.distance_transform_edt(~mask, sampling=labels.spacing[::-1])
    idx = np.rint(screw_surface_ijk(labels, entry, tip, diameter)).astype(int)
    dist = outside[idx[:, 2], idx[:, 1], idx[:, 0]].reshape(-1, 40)
    length = float(np.linalg.norm(tip - entry))
    t = np.arange(0.0, length + 1e-9, 0.3)
    axis = entry + t[:, None] * (tip - entry) / length
    aijk = np.rint((np.linalg.inv(labels.ijk_to_ras) @ np.c_[axis, np.ones(len(axis))].T)[:3].T).astype(int)
    axis_out = outside[aijk[:, 2], aijk[:, 1], aijk[:, 0]]
    first = int(np.flatnonzero(axis_out == 0)[0])
    zone_end = int(np.searchsorted(t, t[first] + 1.75 * diameter / 2, side="right"))
    worst = 0.0
    for j in range(dist.shape[1]):
        in_bone = np.flatnonzero(dist[first:zone_end, j] == 0)
        start = first + int(in_bone[0]) if in_bone.size else zone_end
        worst = max(worst, float(dist[start:, j].max()))
    return float(axis_out[0]), worst


@pytest.mark.parametrize("case", CLASSIC_CASES)
@pytest.mark.parametrize("trajectory", ["roy-camille", "magerl", "weinstein"])
def test_classic_entry_points_grade_a_on_the_automatic_ct_segmentation(case, trajectory, monkeypatch):
    """The classic entry points need the articular and transverse processes: on the automatic CT segmentation of
    the phantom (axial, oblique, anisotropic grids) every side is planned or refused with its reason, and every
    planned screw is Gertzbein-Robbins A. The screw's entry through the dorsal cortex (the first 0.5-2.5 mm of
    surface past the entry point, which graded B/C before) is not a breach (planning.evaluate.counted_surface);
    checked independently on the voxels: the entry lies on the bone surface and nothing after it leaves the bone
    beyond the voxel quantisation. A screw moved 4 mm laterally (entry and tip) breaches, C or worse for at least
    80 % of them, with the same breach as without the entry rule."""
    from lumbarspine.planning import evaluate
    from lumbarspine.planning.evaluate import PlanningMaps, evaluate_screw
    from lumbarspine.planning.screws import PlanningParameters, plan_screws

    phantom, anatomy = _segmented(case)
    graded: list[str] = []
    maps = PlanningMaps(anatomy)
    result = plan_screws(anatomy, PlanningParameters(trajectory=trajectory), maps=maps)
    sides = {(s.vertebra, s.side) for s in result["screws"]} | {(r.vertebra, r.side) for r in result["refused"]}
    assert sides == {(v, side) for v in LUMBAR for side in ("left", "right")}
    lumbar = [s for s in result["screws"] if s.vertebra != "S1"]
    assert all(s.trajectory == trajectory for s in lumbar)
    assert len(lumbar) >= CLASSIC_MIN_PLANNED, [(r.vertebra, r.side, r.reason) for r in result["refused"]]
    voxel = max(anatomy.labels.spacing)
    for screw in result["screws"]:
        assert screw.evaluation["gertzbein_robbins"] == "A", (screw.name, screw.evaluation)
        if screw.vertebra == "S1":  # S1 keeps its own convergent trajectory
            continue
        label = anatomy.vertebra(screw.vertebra).label
        entry_gap, breach = _independent_entry_breach(
            anatomy.labels, label, screw.entry_ras, screw.tip_ras, screw.diameter_mm
        )
        assert entry_gap <= voxel + 1e-6, (screw.name, entry_gap)  # the entry point is on the bone surface
        assert breach <= voxel + 1e-6, (screw.name, breach)
        assert screw.evaluation["bone_entry_mm"] <= 0.5, (screw.name, screw.evaluation["bone_entry_mm"])
        # a lateral move of the whole screw, across the pedicle (transverse plane, perpendicular to the screw)
        frame = result["frames"][screw.vertebra]
        lateral = (1.0 if screw.side == "right" else -1.0) * frame.right
        lateral = lateral - np.dot(lateral, screw.direction) * screw.direction
        lateral /= np.linalg.norm(lateral)
        moved = evaluate_screw(
            anatomy,
            screw.entry_ras + 4.0 * lateral,
            screw.tip_ras + 4.0 * lateral,
            screw.diameter_mm,
            vertebra=screw.vertebra,
            maps=maps,
        )
        assert moved["gertzbein_robbins"] != "A", (screw.name, moved["breach_mm"])
        graded.append(moved["gertzbein_robbins"])
        # the entry rule hides none of that breach: the same as counting every point after the axis' bone entry
        monkeypatch.setattr(evaluate, "ENTRY_ZONE_RADII", 0.0)
        plain = evaluate_screw(
            anatomy, moved["entry_ras"], moved["tip_ras"], screw.diameter_mm, vertebra=screw.vertebra
        )
        monkeypatch.undo()
        assert moved["breach_mm"] == pytest.approx(plain["breach_mm"], abs=0.05), (screw.name, moved, plain)
    # C or worse for (nearly) all; measured B only where a thin screw sits in a wide pedicle (L3 4.5 mm in 8.2 mm)
    assert sum(g in ("C", "D", "E") for g in graded) >= 0.8 * len(graded), graded
    for refused in result["refused"]:
        assert refused.reason and "sub-regions" not in refused.reason and "needs the" not in refused.reason


def test_subregions_exported_with_names(tmp_path):
    """subregions.seg.nrrd holds one named segment per sub-region (the map itself), anatomy.json their names and
    voxels per vertebra."""
    import json

    import slicerio

    from lumbarspine.anatomy.model import SUBREGION_NAMES
    from lumbarspine.anatomy.outputs import write_anatomy_outputs

    phantom, anatomy = _segmented("axial-1.5mm-osteophytes-stenosis")
    paths = write_anatomy_outputs(tmp_path, phantom.image, anatomy)
    assert Path(paths["subregions"]).name == "subregions.seg.nrrd"
    seg = slicerio.read_segmentation(paths["subregions"])
    sub = anatomy.subregions.array
    present = sorted(int(v) for v in np.unique(sub) if v)
    assert sorted(s["labelValue"] for s in seg["segments"]) == present
    assert {s["name"] for s in seg["segments"]} >= {
        "superior articular process left", "inferior articular process right", "transverse process left",
        "spinous process", "arch (laminae and pars)", "pedicle right", "vertebral body",
    }  # fmt: skip
    for code in (42, 45, 48):
        mask = slicerio.segment_mask(seg, SUBREGION_NAMES[code]).transpose(2, 1, 0)
        np.testing.assert_array_equal(mask, sub == code)
    summary = json.loads(Path(paths["anatomy"]).read_text())
    assert summary["has_subregions"] and summary["files"]["subregions"] == "subregions.seg.nrrd"
    assert summary["subregions"]["codes"]["45"] == "superior articular process left"
    l3 = summary["subregions"]["voxels_per_vertebra"]["L3"]
    label = anatomy.vertebra("L3").label
    assert l3["transverse process right"] == np.count_nonzero((anatomy.labels.array == label) & (sub == 44))
    assert set(summary["subregions"]["voxels_per_vertebra"]["S1"]) == {
        SUBREGION_NAMES[c] for c in (41, 42, 45, 46, 50, 51, 52)
    }


def test_real_ct_subregions_present_on_their_side(shared_data):
    """The 3 mm TotalSegmentator example CT: for L1-L5 and S1 (all fully in view) the body, both pedicles, both
    transverse processes (not S1), both superior articular processes and the spinous process are there, on the
    patient's side (RAS) of the vertebra's body, the superior articular processes above the pedicles and the
    spinous process behind the laminae. Not checked: the inferior articular processes (0-24 voxels per vertebra):
    on 3 mm voxels the facet joint space is invisible and the vertebra split cuts through the pars, so each
    inferior articular process goes to the vertebra below (see Resources/Examples/ct_subregions.png)."""
    from lumbarspine.anatomy.model import SUBREGIONS

    image = read_volume(shared_data / "totalseg_example_ct.nii.gz")
    anatomy = segment_ct(image)
    labels, sub = anatomy.labels.array, anatomy.subregions.array
    for name in LUMBAR:
        info = anatomy.vertebra(name)
        assert info is not None and not info.truncated, name
        mine = labels == info.label

        def centre(part, mine=mine, name=name):
            pts = np.argwhere(mine & (sub == SUBREGIONS[part]))
            assert len(pts) > 0, (name, part)
            return anatomy.labels.ijk_to_ras_points(pts[:, ::-1].astype(float)).mean(axis=0)

        body = centre("body")
        for side, sign in (("left", -1.0), ("right", 1.0)):
            parts = [f"pedicle_{side}", f"superior_articular_{side}"]
            parts += [] if name == "S1" else [f"transverse_process_{side}"]
            for part in parts:
                assert sign * (centre(part)[0] - body[0]) > 5.0, (name, part)  # RAS x: + is the patient's right
            assert centre(f"superior_articular_{side}")[2] > centre(f"pedicle_{side}")[2] + 2.0, (name, side)
        spinous = centre("spinous_process")
        assert abs(spinous[0] - body[0]) < 8.0, name
        assert spinous[1] < centre("arch")[1] - 5.0, name  # posterior (smaller A) to the laminae
