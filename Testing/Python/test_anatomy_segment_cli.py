"""segment_image (modality rule, dispatch, deep-learning plug-ins) and the 'lumbarspine segment' command end to end.

The automatic T2 and CT segmenters are written elsewhere (lumbarspine.anatomy.t2 / .ct); here small
stand-ins (monkeypatched modules that return the phantom's own anatomy) check the dispatch and the outputs.
"""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from lumbarspine.anatomy.build import anatomy_from_labels
from lumbarspine.anatomy.segment import detect_modality, segment_image, tool_command
from lumbarspine.io import read_volume, write_volume
from lumbarspine.phantom import PhantomSpec, generate_phantom


@pytest.fixture(scope="module")
def phantoms():
    return {m: generate_phantom(PhantomSpec(seed=1, modality=m, spacing=(2.0, 2.0, 2.0))) for m in ("ct", "t2")}


@pytest.fixture
def stand_ins(monkeypatch, phantoms):
    """Stand-in segmenters: record the call, return the phantom's labels as the anatomy."""
    calls: list[tuple[str, dict]] = []

    def fake_t2(volume, *, seed_ras=None, backend="auto", progress=None, cancel=None):
        calls.append(("t2", {"seed_ras": seed_ras, "backend": backend, "shape": volume.shape}))
        labels = volume.with_array(phantoms["t2"].labels.array, is_label=True)
        return anatomy_from_labels(labels, modality="t2", numbering="sacrum", source="stand-in t2")

    def fake_ct(volume, *, backend="auto", progress=None, cancel=None):
        calls.append(("ct", {"backend": backend, "shape": volume.shape}))
        labels = volume.with_array(phantoms["ct"].labels.array, is_label=True)
        return anatomy_from_labels(labels, modality="ct", numbering="sacrum", source="stand-in ct")

    monkeypatch.setitem(sys.modules, "lumbarspine.anatomy.t2", types.SimpleNamespace(segment_t2=fake_t2))
    monkeypatch.setitem(sys.modules, "lumbarspine.anatomy.ct", types.SimpleNamespace(segment_ct=fake_ct))
    return calls


def test_modality_rule_on_the_phantoms(phantoms):
    assert detect_modality(phantoms["ct"].image) == "ct"
    assert detect_modality(phantoms["t2"].image) == "t2"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("totalseg_example_ct.nii.gz", "ct"),
        ("totalseg_example_ct_sm.nii.gz", "ct"),
        ("sct_t2_lumbar.nii.gz", "t2"),
        ("totalseg_example_mr_sm.nii.gz", "t2"),
    ],
)
def test_modality_rule_on_the_real_scans(shared_data, name, expected):
    assert detect_modality(read_volume(shared_data / name)) == expected


def test_dispatch_to_the_segmenters(stand_ins, phantoms):
    ct = segment_image(phantoms["ct"].image)
    t2 = segment_image(phantoms["t2"].image, seed_ras=(0, 10, 20), backend="numpy")
    assert [c[0] for c in stand_ins] == ["ct", "t2"]
    assert stand_ins[1][1]["seed_ras"] == (0.0, 10.0, 20.0) and stand_ins[1][1]["backend"].name == "numpy"
    assert ct.modality == "ct" and t2.modality == "t2"
    forced = segment_image(phantoms["t2"].image, modality="ct")  # the user's choice wins over the rule
    assert forced.modality == "ct" and stand_ins[-1][0] == "ct"
    with pytest.raises(ValueError, match="seed point"):
        segment_image(phantoms["ct"].image, seed_ras=(0, 0, 0))
    with pytest.raises(ValueError, match="modality"):
        segment_image(phantoms["ct"].image, modality="pet")
    with pytest.raises(ValueError, match="method"):
        segment_image(phantoms["ct"].image, method="magic")


def test_progress_and_cancel(stand_ins, phantoms):
    from lumbarspine.progress import OperationCancelled

    seen = []
    segment_image(phantoms["ct"].image, progress=lambda f, m: seen.append((f, m)))
    assert seen and "modality: ct (detected)" in seen[0][1]
    with pytest.raises(OperationCancelled):
        segment_image(phantoms["ct"].image, cancel=lambda: True)


def test_deep_learning_commands():
    cmd, out, convention = tool_command("totalsegmentator", "/d/ct.nii.gz", "/d/out", modality="ct")
    assert cmd == ["TotalSegmentator", "-i", "/d/ct.nii.gz", "-o", "/d/out/totalsegmentator.nii.gz", "--ml"] + [
        "--task",
        "total",
    ]
    assert out == Path("/d/out/totalsegmentator.nii.gz") and convention == "totalsegmentator"
    cmd, _, convention = tool_command("totalsegmentator", "/d/t2.nii.gz", "/d/out", modality="t2")
    assert cmd[-2:] == ["--task", "vertebrae_mr"] and convention == "totalsegmentator_vertebrae_mr"
    cmd, out, convention = tool_command("totalspineseg", "/d/t2.nii.gz", "/d/out", modality="t2")
    assert cmd == ["totalspineseg", "/d/t2.nii.gz", "/d/out"]
    assert out == Path("/d/out/step2_output/t2.nii.gz") and convention == "totalspineseg"


def test_missing_tool_says_how_to_get_it(monkeypatch, phantoms):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ValueError, match=r"pip install TotalSegmentator"):
        segment_image(phantoms["ct"].image, method="totalsegmentator")
    with pytest.raises(ValueError, match=r"pip install totalspineseg"):
        segment_image(phantoms["t2"].image, method="totalspineseg")


def test_totalsegmentator_plugin_imports_its_real_output(shared_data, tmp_path, monkeypatch):
    """A stand-in 'TotalSegmentator' program (the weights cannot be downloaded here) writes the real output
    TotalSegmentator made for this CT; the plug-in runs it in a subprocess and imports the file it wrote."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "TotalSegmentator"
    script.write_text(
        f"#!{sys.executable}\n"
        "import shutil, sys\n"
        "args = sys.argv[1:]\n"
        "assert args[args.index('--task') + 1] == 'total' and '--ml' in args\n"
        f"shutil.copy({str(shared_data / 'totalseg_example_ct_sm_seg.nii.gz')!r}, args[args.index('-o') + 1])\n"
        "print('stand-in TotalSegmentator done')\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    ct = read_volume(shared_data / "totalseg_example_ct_sm.nii.gz")
    anatomy = segment_image(ct, method="totalsegmentator")
    assert [v.name for v in anatomy.vertebrae] == ["T11", "T12", "L1", "L2"]
    assert anatomy.labels.same_geometry(ct) and anatomy.modality == "ct"
    assert anatomy.source.startswith("totalsegmentator")


def _run_cli(argv):
    from lumbarspine.cli import main

    return main(argv)


def test_segment_command_end_to_end(stand_ins, phantoms, tmp_path):
    import matplotlib.image
    import slicerio

    image_path = write_volume(phantoms["t2"].image, tmp_path / "t2.nii.gz")
    out = tmp_path / "out"
    assert _run_cli(["segment", str(image_path), "--out", str(out), "--seed-point", "0,5,10", "--quiet"]) == 0
    assert stand_ins[-1][0] == "t2" and stand_ins[-1][1]["seed_ras"] == (0.0, 5.0, 10.0)
    labels = read_volume(out / "labels.nii.gz")
    image = read_volume(image_path)
    assert labels.same_geometry(image, atol=1e-4)
    np.testing.assert_array_equal(labels.array, phantoms["t2"].labels.array)
    seg = slicerio.read_segmentation(str(out / "segmentation.seg.nrrd"))
    names = {s["name"] for s in seg["segments"]}
    assert {"L1", "L5", "S1", "L1-L2", "L5-S1", "dural sac", "epidural fat"} <= names
    l4 = slicerio.segment_from_name(seg, "L4")
    assert l4["terminology"]["type"][1] == "11994002"  # SNOMED CT L4 vertebra
    np.testing.assert_array_equal(
        slicerio.segment_mask(seg, "L4").transpose(2, 1, 0), phantoms["t2"].labels.array == 44
    )
    summary = json.loads((out / "anatomy.json").read_text())
    assert summary["modality"] == "t2" and summary["numbering"] == "sacrum"
    assert [v["name"] for v in summary["vertebrae"]] == ["L1", "L2", "L3", "L4", "L5", "S1"]
    assert "sacrum" in summary["numbering_explanation"] and summary["input"]["seed_point_ras"] == [0.0, 5.0, 10.0]
    assert summary["files"] == {
        "labels": "labels.nii.gz",
        "segmentation": "segmentation.seg.nrrd",
        "picture": "segmentation.png",
    }
    picture = matplotlib.image.imread(out / "segmentation.png")
    assert picture.ndim == 3 and picture.shape[0] > 200 and picture.shape[1] > 200
    assert not list(out.glob(".*tmp*"))  # no temporary files left


def test_segment_command_imports_a_segmentation(shared_data, tmp_path, capsys):
    out = tmp_path / "imp"
    seg = shared_data / "totalseg_example_ct_sm_seg.nii.gz"
    image = shared_data / "totalseg_example_ct_sm.nii.gz"
    assert _run_cli(["segment", str(image), "--out", str(out), "--segmentation", str(seg), "--quiet"]) == 0
    assert "T11, T12, L1, L2" in capsys.readouterr().out
    summary = json.loads((out / "anatomy.json").read_text())
    assert summary["numbering"] == "imported" and summary["input"]["convention_requested"] == "auto"
    assert "import totalsegmentator" in summary["source"]


def test_segment_command_errors(tmp_path, phantoms, capsys):
    from lumbarspine.anatomy.importers import encode_in_convention

    image_path = write_volume(phantoms["ct"].image, tmp_path / "ct.nii.gz")
    verse = write_volume(encode_in_convention(phantoms["ct"].labels, "verse"), tmp_path / "verse_seg.nii.gz")
    assert _run_cli(["segment", str(image_path), "--out", str(tmp_path / "o"), "--segmentation", str(verse)]) == 2
    assert "--convention" in capsys.readouterr().err
    assert _run_cli(["segment", str(image_path), "--out", str(tmp_path / "o"), "--seed-point", "1,2"]) == 2
    assert "R,A,S" in capsys.readouterr().err
    code = _run_cli(
        [
            "segment",
            str(image_path),
            "--out",
            str(tmp_path / "o"),
            "--segmentation",
            str(verse),
            "--convention",
            "verse",
        ]
    )
    assert code == 0
