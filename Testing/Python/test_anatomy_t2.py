"""Automatic T2 segmentation (lumbarspine.anatomy.t2) on confounded phantoms and on real T2 scans."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from lumbarspine.anatomy.t2 import segment_t2
from lumbarspine.labels import DISC_LEVELS
from lumbarspine.phantom import PhantomSpec, generate_phantom
from lumbarspine.progress import OperationCancelled
from lumbarspine.volume import Volume

STENOSIS = {"L4-L5": 60.0}


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum()))


def _phantom(orientation: str, spacing=(1.2, 1.2, 1.2)):  # type: ignore[no-untyped-def]
    return generate_phantom(PhantomSpec(modality="t2", spacing=spacing, orientation=orientation, stenosis=STENOSIS))


def _ap_diameters(anatomy) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Sac AP diameter (mm) at each centreline point, measured perpendicular to the centreline."""
    line = anatomy.centreline_ras
    vol = anatomy.labels
    sac = vol.with_array(np.isin(vol.array, (1, 2)).astype(np.uint8))  # the dural sac: cord (1) and CSF (2)
    out = []
    for i in range(2, len(line) - 2):
        t = line[i - 2] - line[i + 2]
        t /= np.linalg.norm(t)
        a = np.array([0.0, 1.0, 0.0]) - t[1] * t
        a /= np.linalg.norm(a)
        steps = np.arange(-30.0, 30.0, 0.25)
        on = sac.sample_nearest_ras(line[i][None, :] + steps[:, None] * a[None, :]) > 0
        out.append(on.sum() * 0.25)
    return np.asarray(out)


# ----------------------------------------------------------------------------------------- phantom
def test_confounders_change_intensities_not_labels():
    on = generate_phantom(PhantomSpec(modality="t2", spacing=(2.0, 2.0, 2.0), stenosis=STENOSIS))
    off = generate_phantom(PhantomSpec(modality="t2", spacing=(2.0, 2.0, 2.0), stenosis=STENOSIS, confounders=False))
    assert np.array_equal(on.labels.array, off.labels.array)
    assert on.truth["levels"] == off.truth["levels"]
    img, lab = on.image.array, on.labels.array
    sac = np.median(img[lab == 2])
    assert np.percentile(img[lab == 0], 99.5) > sac  # subcutaneous fat next to the coil outshines the CSF
    # degenerated L5-S1: its nucleus is dark where L2-L3's is bright
    assert np.percentile(img[lab == 100], 95) < 0.5 * np.percentile(img[lab == 93], 95)
    assert PhantomSpec(modality="t2") != PhantomSpec(modality="t2", confounders=False)
    assert hash(PhantomSpec(modality="t2")) != hash(PhantomSpec(modality="t2", confounders=False))
    with pytest.raises(ValueError, match="confounders"):
        PhantomSpec(confounders="yes")


@pytest.mark.parametrize(
    ("orientation", "spacing"),
    [
        ("axial", (1.2, 1.2, 1.2)),
        ("sagittal", (1.5, 1.5, 1.5)),
        ("oblique", (1.5, 1.5, 1.5)),
        ("oblique-lefthanded", (1.2, 1.2, 1.2)),
        ("axial", (0.8, 0.8, 4.0)),
    ],
)
def test_phantom_sac_and_levels(orientation, spacing):
    ph = _phantom(orientation, spacing)
    anatomy = segment_t2(ph.image, backend="numpy")
    labels = ph.labels.array
    assert anatomy.labels.same_geometry(ph.labels)
    assert _dice(anatomy.labels.array == 2, labels == 2) >= 0.90
    # the stenosis of 60 mm2 at L4-L5 keeps the sac one connected tube
    _, n = ndimage.label(anatomy.labels.array == 2)
    assert n == 1
    assert anatomy.numbering == "sacrum"
    assert [d.name for d in anatomy.discs] == list(DISC_LEVELS)
    # each named disc sits at its true level: within 10 mm of the true disc centre (levels are 32-36 mm apart)
    for disc in anatomy.discs:
        true_centre = np.asarray(ph.truth["levels"][disc.name]["disc_center_ras"])
        assert np.linalg.norm(np.asarray(disc.centroid_ras) - true_centre) < 10.0, disc.name
    assert anatomy.vertebra("S1") is not None and anatomy.vertebra("L5") is not None
    assert not np.any(anatomy.labels.array == 1)  # the phantom has no spinal cord (L1-S1, rootlets only)


def test_seed_progress_cancel_and_bad_input():
    ph = _phantom("axial", (1.5, 1.5, 1.5))
    seed = ph.truth["levels"]["L3-L4"]["plane_center_ras"]
    calls = []
    before = ph.image.array.copy()
    anatomy = segment_t2(ph.image, seed_ras=seed, backend="numpy", progress=lambda f, m: calls.append(f))
    assert np.array_equal(ph.image.array, before)  # input untouched
    assert anatomy.labels.sample_nearest_ras(np.asarray(seed)[None, :])[0] == 2
    assert calls[0] == 0.0 and calls[-1] == 1.0 and calls == sorted(calls)
    with pytest.raises(OperationCancelled):
        segment_t2(ph.image, backend="numpy", cancel=lambda: True)
    with pytest.raises(ValueError, match="outside the image"):
        segment_t2(ph.image, seed_ras=(0.0, 0.0, 900.0), backend="numpy")
    with pytest.raises(ValueError, match="label map"):
        segment_t2(ph.labels)
    with pytest.raises(ValueError, match="covers only"):
        segment_t2(Volume(np.random.default_rng(0).random((10, 10, 10)).astype(np.float32)))
    flat = ph.image.with_array(np.full(ph.image.shape, 5.0, dtype=np.float32))
    with pytest.raises(ValueError, match="flat"):
        segment_t2(flat)


# ------------------------------------------------------------------------------------------ real
def test_real_sagittal_t2(shared_data):
    from lumbarspine.io import read_volume

    vol = read_volume(shared_data / "sct_t2_lumbar.nii.gz")
    anatomy = segment_t2(vol, backend="numpy")
    lab = anatomy.labels.array
    sac = np.isin(lab, (1, 2))  # the dural sac: the cord (1) and the CSF around it (2)
    _, n = ndimage.label(sac)
    assert n == 1
    # a tube that runs through most of the image's height (lower thoracic to lumbar)
    zs = anatomy.centreline_ras[:, 2]
    assert zs[0] - zs[-1] > 150.0
    ap = _ap_diameters(anatomy)
    assert 8.0 <= np.median(ap) <= 25.0
    assert ap.max() <= 25.0 and ap.min() >= 3.0
    # Known weakness: just below the conus tip (about z -415..-440 mm) the dorsal layer of cauda equina
    # roots (grey on T2) is left out of the sac where no CSF lies behind it, so the sac is 7-9 mm deep
    # there; elsewhere it is 10-17 mm. (Before the cord was found the conus region came out 4-7 mm deep
    # and only half of the track was plausible.)
    assert np.mean((ap >= 8.0) & (ap <= 25.0)) >= 0.85
    assert ap.min() >= 5.0
    # the lower end of the sac leaves the image: no sacrum, so no level may be named
    assert anatomy.numbering is None
    assert any("sacrum" in w for w in anatomy.warnings)
    assert all(d.name.startswith("disc ") for d in anatomy.discs)
    assert len(anatomy.discs) >= 4
    # cranio-caudal order; discs in front of the sac
    disc_z = [d.centroid_ras[2] for d in anatomy.discs]
    assert disc_z == sorted(disc_z, reverse=True)
    inner = disc_z[1:-1]  # the top and bottom discs may be cut by the image's edge (centroid off-centre)
    assert len(inner) >= 3 and np.all(np.diff(inner) < -18.0)


def test_real_abdominal_mr_is_refused(shared_data):
    """A 60 mm abdominal MR crop (20 axial slices): the brightest tube there is not the dural sac
    (it lay outside the body before the disc check), so the segmentation must refuse it clearly."""
    from lumbarspine.io import read_volume

    vol = read_volume(shared_data / "totalseg_example_mr_sm.nii.gz")
    with pytest.raises(ValueError, match="lumbar canal"):
        segment_t2(vol, backend="numpy")


def test_real_t2_cord_inside_the_sac(shared_data):
    """The real sagittal T2 shows the lower thoracic cord and the conus as a dark tube inside the CSF
    (from the top of the image down to about z -415 mm RAS): it is labelled 1, inside the sac, dark,
    of a cord's size, and the sac around it holds it (no sac section there is a bare CSF crescent)."""
    from lumbarspine.io import read_volume

    vol = read_volume(shared_data / "sct_t2_lumbar.nii.gz")
    anatomy = segment_t2(vol, backend="numpy")
    lab = anatomy.labels.array
    img = vol.array.astype(float)
    cord, csf = lab == 1, lab == 2
    assert cord.any()
    _, n = ndimage.label(cord)
    assert n == 1  # one tube
    # inside the sac: the voxels next to the cord in its slice are cord or CSF (bar a few where the CSF rim
    # is thinner than a voxel)
    ring = ndimage.binary_dilation(cord, structure=np.ones((1, 3, 3), bool)) & ~cord
    assert np.mean(np.isin(lab[ring], (1, 2))) > 0.9
    # dark in the CSF: the cord's median signal is well under the CSF's
    assert np.median(img[cord]) < 0.6 * np.median(img[csf])
    # from the top of the image (lower thoracic cord) down to the conus (sagittal 1 mm grid: axis 0 is S)
    ks = np.nonzero(cord.any(axis=(1, 2)))[0]
    z_mm = vol.ijk_to_ras_points(np.array([[0.0, 0.0, float(ks[0])], [0.0, 0.0, float(ks[-1])]]))[:, 2]
    assert z_mm.max() > vol.bounds_ras()[1][2] - 10.0
    assert -440.0 < z_mm.min() < -380.0, z_mm
    # a cord's size: 15-110 mm2 per 1 mm slice (lower thoracic cord about 8 x 6 mm, conus up to about 10 x 8 mm)
    areas = cord[ks[0] : ks[-1] + 1].sum(axis=(1, 2))
    assert np.all((areas >= 8) & (areas <= 110)) and 20 <= np.median(areas) <= 80
    # the sac around the cord holds it: at least twice the cord's section at every cord slice
    sac_areas = np.isin(lab[ks[0] : ks[-1] + 1], (1, 2)).sum(axis=(1, 2))
    assert np.all(sac_areas >= 2 * areas)
