"""The command line and the end-to-end demo (phantom -> filter -> .mrb, label map, 3D PNG)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lumbarspine.cli import main
from lumbarspine.filters import apply_filter
from lumbarspine.io import read_volume


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom")
    assert main(["phantom", "--out", str(out), "--stenosis", "L4-L5=60", "--spacing", "1.5", "--seed", "3"]) == 0
    return out


def test_phantom_command_writes_image_labels_and_truth(phantom_dir):
    truth = json.loads((phantom_dir / "truth.json").read_text())
    assert truth["levels"]["L4-L5"]["dural_sac_area_mm2"] == pytest.approx(60.0)
    assert truth["spec"]["spacing"] == [1.5, 1.5, 1.5] and truth["spec"]["seed"] == 3
    image = read_volume(phantom_dir / "image.nii.gz")
    labels = read_volume(phantom_dir / "labels.nii.gz")
    assert labels.is_label and not image.is_label
    assert image.same_geometry(labels, atol=1e-4)


@pytest.mark.parametrize(
    ("name", "args", "params"),
    [("gaussian", ["--sigma", "1.5"], {"sigma": 1.5}), ("median", ["--radius", "1"], {"radius": 1})],
)
def test_filter_command_matches_the_library(phantom_dir, tmp_path, name, args, params):
    out = tmp_path / f"{name}.nii.gz"
    source = phantom_dir / "image.nii.gz"
    assert main(["filter", str(source), str(out), "--filter", name, "--backend", "numpy", "--quiet", *args]) == 0
    written = read_volume(out)
    expected = apply_filter(read_volume(source), name, backend="numpy", **params).volume
    assert written.same_geometry(expected, atol=1e-4)
    np.testing.assert_allclose(written.array, expected.array, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["filter", "IN", "OUT", "--filter", "nosuch"], "Unknown filter"),
        (["filter", "IN", "OUT", "--filter", "gaussian", "--radius", "2"], "Unknown parameter --radius"),
        (["filter", "IN", "OUT", "--filter", "gaussian", "--sigma", "abc"], "needs a number"),
        (["filter", "IN", "OUT"], "Choose --filter"),
        (["phantom", "--out", "X", "--stenosis", "L9-L10=50"], "Unknown disc level"),
        (["phantom", "--out", "X", "--stenosis", "L4-L5=500"], "plausible range"),
        (["phantom", "--out", "X", "--orientation", "sideways"], "Unknown orientation"),
    ],
)
def test_cli_errors_are_one_clear_line(phantom_dir, tmp_path, capsys, argv, message):
    argv = [a.replace("IN", str(phantom_dir / "image.nii.gz")).replace("OUT", str(tmp_path / "o.nii.gz")) for a in argv]
    argv = [str(tmp_path / "x") if a == "X" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_input_file(tmp_path, capsys):
    assert main(["filter", str(tmp_path / "none.nii.gz"), str(tmp_path / "o.nii.gz"), "--filter", "gaussian"]) == 2
    assert "No such file" in capsys.readouterr().err


def test_filter_list_and_backend_report(capsys):
    assert main(["filter", "--list"]) == 0
    listed = capsys.readouterr().out
    assert "gaussian" in listed and "--sigma" in listed and "t2-canal" in listed and "ct-bone" in listed
    assert main(["backend"]) == 0
    assert capsys.readouterr().out.startswith(("numpy", "cupy"))


def test_console_entry_point_runs():
    done = subprocess.run([sys.executable, "-m", "lumbarspine.cli", "backend"], capture_output=True, text=True)
    assert done.returncode == 0 and ("numpy" in done.stdout or "cupy" in done.stdout)


@pytest.mark.slicer
def test_demo_end_to_end(tmp_path):
    pytest.importorskip("slicer", reason="slicer-core is not installed")
    import vtk

    from lumbarspine.pipeline import run_demo
    from lumbarspine.scene import load_scene
    from lumbarspine.slicer_nodes import volume_from_node

    messages = []
    summary = run_demo(tmp_path / "demo", progress=lambda f, m: messages.append((f, m)))
    paths = {key: tmp_path / "demo" / value.split("/")[-1] for key, value in summary["paths"].items()}
    for key in ("image", "filtered", "labels", "truth", "scene", "screenshot", "summary"):
        assert paths[key].exists(), key
    assert messages[0][0] == 0.0 and messages[-1] == (1.0, "done")

    # the demo segments its T2 and CT twins itself (no labels used) and grades and plans on that
    seg = summary["segmentation"]
    assert seg["t2"]["canal_dice"] >= 0.90 and seg["ct"]["canal_dice"] >= 0.75
    assert seg["ct"]["levels"] == ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"] and seg["ct"]["numbering"] == "sacrum"
    assert min(seg["ct"]["vertebra_dice"].values()) >= 0.8
    assert seg["t2"]["levels"] == seg["ct"]["levels"] and seg["t2"]["numbering"] == "sacrum"
    levels = summary["grading"]["levels"]
    # the phantom's only stenosis (60 mm2 at L4-L5, the fourth disc from the top) is the only severe level
    severe = [lv["level"] for lv in levels if lv["central_canal_grade"] == "severe"]
    assert severe == [seg["t2"]["levels"][3]]
    assert abs(levels[3]["dural_sac_area_mm2"] - 60.0) < 0.07 * 60.0
    plan = json.loads(Path(summary["plan"]["paths"]["plan"]).read_text())
    # L1-L5 and S1, both sides, on the CT segmentation (test_planning.py checks them against the true pedicles)
    assert len(plan["screws"]) == 12 and not plan["refused_screws"], plan["refused_screws"]
    assert all(s["gertzbein_robbins"] == "A" for s in plan["screws"])
    # the severe level graded on the T2 gets a decompression on the CT that frees the canal
    assert [d["level"] for d in plan["decompressions"]] == ["L4-L5"]
    assert plan["decompressions"][0]["canal_area_after_mm2"] >= 100.0

    # the PNG shows the spine: many foreground pixels, bone-coloured among them
    reader = vtk.vtkPNGReader()
    reader.SetFileName(str(paths["screenshot"]))
    reader.Update()
    from vtk.util.numpy_support import vtk_to_numpy

    pixels = vtk_to_numpy(reader.GetOutput().GetPointData().GetScalars())[:, :3].astype(int)
    bone = (pixels[:, 0] > 150) & (pixels[:, 1] > 110) & (pixels[:, 2] < pixels[:, 0] - 40)
    canal = (pixels[:, 2] > 150) & (pixels[:, 0] < 120)
    assert summary["screenshot_foreground_pixels"] > 0.08 * len(pixels)
    assert bone.sum() > 0.03 * len(pixels) and canal.sum() > 0.001 * len(pixels)

    # the .mrb reloads with the same nodes, and the volumes carry the files' voxels
    ctx = load_scene(paths["scene"])
    names = {node.GetName(): node for node in ctx.data_nodes()}
    assert set(summary["nodes"]) <= set(names)
    assert "Phantom truth per level" in names
    labels = read_volume(paths["labels"])
    reloaded = volume_from_node(names["Phantom labels"])
    np.testing.assert_array_equal(reloaded.array, labels.to_right_handed().array)
    segmentation = names["Phantom segmentation"].GetSegmentation()
    assert segmentation.GetNumberOfSegments() == len(np.unique(labels.array)) - 1
    # segments carry the surgeon's names; the epidural fat is hidden so the dural sac shows in 3D
    fat_id = segmentation.GetSegmentIdBySegmentName("epidural fat")
    assert fat_id and segmentation.GetSegmentIdBySegmentName("dural sac")
    assert not names["Phantom segmentation"].GetDisplayNode().GetSegmentVisibility(fat_id)


def test_demo_can_be_cancelled_between_steps(tmp_path):
    from lumbarspine.filters import FilterCancelled
    from lumbarspine.pipeline import run_demo
    from lumbarspine.progress import OperationCancelled

    assert issubclass(FilterCancelled, OperationCancelled)
    seen = []

    def progress(fraction, message):
        seen.append(message)

    with pytest.raises(OperationCancelled, match="cancelled"):
        run_demo(tmp_path / "demo", spacing=(2.0, 2.0, 2.0), progress=progress, cancel=lambda: len(seen) >= 1)
    assert seen == ["generating the lumbar phantom"]
    assert not (tmp_path / "demo" / "lumbarspine_demo.mrb").exists()


def test_demo_options_are_checked_before_any_output(tmp_path):
    from lumbarspine.pipeline import DemoOptions, check_demo_arguments, run_demo

    with pytest.raises(ValueError, match="Unknown demo option.*sede.*use .*seed"):
        run_demo(tmp_path / "demo", sede=3)
    with pytest.raises(ValueError, match="sigma"):
        run_demo(tmp_path / "demo", filter_name="gaussian", filter_params={"sigma": -1.0})
    assert not (tmp_path / "demo").exists()
    checked = check_demo_arguments(tmp_path / "demo", seed=4, filter_name="median", filter_params={"radius": 1})
    assert checked == DemoOptions(seed=4, filter_name="median", filter_params={"radius": 1})
    assert checked.filter_choice() == ("median", {"radius": 1})
    assert DemoOptions().filter_choice() == ("gaussian", {"sigma": 1.0})
    assert DemoOptions(stenosis={}).phantom_spec().stenosis == {}
