"""The panels' run machinery without Qt: the job protocol, the worker process and the run state machine.

The worker runs for real as a subprocess of this Python (as ``PythonSlicer`` runs it inside Slicer), on a
small phantom; the scene is a real headless Slicer scene. Also the library's slab-wise progress and Cancel.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lumbarspine.filters import FilterCancelled, apply_filter
from lumbarspine.phantom import PhantomSpec, generate_phantom
from lumbarspine.volume import Volume
from SpineModulesLib import Job
from SpineModulesLib.controller import KILL_TIMEOUT_S, RunController, RunState, WorkerProcess, library_folders
from SpineModulesLib.protocol import decode, encode, parse_message, read_result, write_job

LONG_DIFFUSION = {"backend": "numpy", "iterations": 200, "time_step": 0.01}
"""A filter run that takes seconds on the phantom (200 explicit diffusion steps), with progress per slab."""


@pytest.fixture(scope="module")
def image():
    return generate_phantom(PhantomSpec(spacing=(2.0, 2.0, 2.0), noise=20.0)).image


@pytest.fixture(scope="module")
def narrow(image):
    """A central column of the phantom (136 x 30 x 30 voxels): long along k (many slabs), quick to denoise."""
    return Volume(np.ascontiguousarray(image.array[:, 20:50, 15:45]), spacing=image.spacing)


class Recorder:
    """The controller's callbacks, recorded."""

    def __init__(self):
        self.locks, self.progress, self.states, self.applied = [], [], [], []

    def controller(self) -> RunController:
        return RunController(
            lock_inputs=self.locks.append,
            on_progress=lambda fraction, message: self.progress.append((fraction, message)),
            on_state=lambda state, message: self.states.append((state, message)),
        )

    def apply(self, result):
        self.applied.append(result)
        return "applied"


def _wait_for_progress(controller: RunController, fraction: float, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while controller.poll() and controller.fraction <= fraction:
        assert time.monotonic() < deadline, "no progress from the worker"
        time.sleep(0.02)
    assert controller.running, f"the run ended before reaching {fraction}: {controller.message}"


def _scene_snapshot(scene) -> list[str]:
    return sorted(scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes()))


# ------------------------------------------------------------------------------------ protocol
def test_job_files_round_trip_exactly(tmp_path):
    """Volumes (oblique, anisotropic, left-handed, int16), dataclasses, arrays and NaN survive the folder."""
    rng = np.random.default_rng(3)
    direction = np.array([[0.0, 1.0, 0.0], [math.cos(0.3), 0.0, math.sin(0.3)], [-math.sin(0.3), 0.0, math.cos(0.3)]])
    assert np.linalg.det(direction) < 0  # left-handed
    volume = Volume(
        rng.integers(-1000, 2000, (5, 6, 7)).astype(np.int16),
        spacing=(0.7, 1.1, 3.0),
        origin=(10.0, -20.5, 33.25),
        direction=direction,
        name="oblique",
    )
    labels = volume.with_array((volume.array > 0).astype(np.uint8), is_label=True)
    result = apply_filter(volume, "gaussian", backend="numpy", sigma=1.0)
    data = {"v": volume, "rows": [{"area": float("nan"), "n": np.int64(3)}], "labels": labels, "r": result}
    encoded = encode(data, tmp_path)
    json.dumps(encoded, allow_nan=False)  # plain JSON, no NaN literals
    back = decode(json.loads(json.dumps(encoded)), tmp_path)
    for original, copy in ((volume, back["v"]), (labels, back["labels"]), (result.volume, back["r"].volume)):
        assert copy.array.dtype == original.array.dtype
        np.testing.assert_array_equal(copy.array, original.array)
        assert copy.same_geometry(original, atol=0.0) and copy.is_label == original.is_label
        np.testing.assert_array_equal(copy.direction, original.direction)
    assert back["v"].name == "oblique"
    assert math.isnan(back["rows"][0]["area"]) and back["rows"][0]["n"] == 3
    assert (back["r"].backend, back["r"].message) == (result.backend, result.message)
    with pytest.raises(TypeError, match="set"):
        encode({1, 2}, tmp_path)


def test_library_dataclasses_come_back_as_themselves(tmp_path):
    """A grading result crosses the folder with its classes (methods such as ``to_dict`` and the spline work);
    a dataclass from outside the library comes back as a namespace, never imported."""
    import dataclasses
    import types

    from lumbarspine.anatomy.build import anatomy_from_labels
    from lumbarspine.grading import GradingThresholds, grade_anatomy, table_rows
    from lumbarspine.grading.core import GradingResult

    phantom = generate_phantom(PhantomSpec(stenosis={"L4-L5": 60.0}, spacing=(2.0, 2.0, 2.0), noise=0.0))
    anatomy = anatomy_from_labels(phantom.labels, numbering="imported", source="phantom")
    result = grade_anatomy(anatomy, thresholds=GradingThresholds(area_moderate_mm2=111.0))
    back = decode(json.loads(json.dumps(encode({"result": result, "anatomy": anatomy}, tmp_path))), tmp_path)
    assert isinstance(back["result"], GradingResult) and type(back["anatomy"]) is type(anatomy)
    assert back["result"].thresholds == result.thresholds
    rows, copied = table_rows(result), table_rows(back["result"])
    assert [r["level"] for r in copied] == [r["level"] for r in rows]
    for row, copy in zip(rows, copied):
        assert row.keys() == copy.keys()
        for key in row:
            assert copy[key] == row[key] or (copy[key] != copy[key] and row[key] != row[key]), key  # NaN == NaN
    assert back["result"].level("L4-L5").to_dict() == result.level("L4-L5").to_dict()
    np.testing.assert_array_equal(back["result"].centreline.points(12.5), result.centreline.points(12.5))
    np.testing.assert_array_equal(back["anatomy"].labels.array, anatomy.labels.array)
    assert [v.name for v in back["anatomy"].vertebrae] == [v.name for v in anatomy.vertebrae]

    @dataclasses.dataclass
    class Outside:
        value: int = 1

    foreign = encode(Outside(), tmp_path)
    assert foreign["module"] == __name__
    assert isinstance(decode(foreign, tmp_path), types.SimpleNamespace)
    forged = {"__object__": "Popen", "module": "subprocess", "fields": {}}
    assert isinstance(decode(forged, tmp_path), types.SimpleNamespace)  # only lumbarspine classes are rebuilt


def test_parse_message_keeps_stray_output_as_log():
    assert parse_message('{"event": "done"}\n') == {"event": "done"}
    assert parse_message("a warning printed by a library\n") == {
        "event": "log",
        "message": "a warning printed by a library",
    }


# ------------------------------------------------------------------------------ worker process
def test_worker_streams_slab_progress_and_writes_the_result(tmp_path, image):
    write_job(Job("lumbarspine.filters:apply_filter", (image, "median"), {"backend": "numpy", "radius": 1}), tmp_path)
    env = {"PYTHONPATH": ":".join(library_folders()), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "SpineModulesLib.worker", str(tmp_path)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    messages = [json.loads(line) for line in done.stdout.splitlines()]
    assert messages[-1] == {"event": "done"}
    fractions = [m["fraction"] for m in messages if m["event"] == "progress"]
    assert len(fractions) >= 3 and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("median slab" in m.get("message", "") for m in messages), "no slab-wise progress"
    result = read_result(tmp_path)
    np.testing.assert_array_equal(result.volume.array, apply_filter(image, "median", backend="numpy").volume.array)


def test_worker_reports_bad_input_and_unknown_calls(tmp_path, image):
    for call, kwargs, expected in (
        ("lumbarspine.filters:apply_filter", {"sigma": -1.0}, "sigma"),
        ("os:system", {}, "lumbarspine.module:function"),
    ):
        folder = tmp_path / call.replace(":", "_")
        write_job(Job(call, (image, "gaussian"), kwargs), folder)
        process = WorkerProcess()
        process.start(folder)
        deadline = time.monotonic() + 60
        while not process.finished():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        events = process.messages()
        assert process.returncode == 2
        assert events[-1]["event"] == "failed" and events[-1]["error"] == "ValueError"
        assert expected in events[-1]["message"]


# ------------------------------------------------------------------------------ state machine
def test_successful_run_applies_once_and_unlocks(image):
    recorder = Recorder()
    controller = recorder.controller()
    ids = {"inputVolume": "vtkMRMLScalarVolumeNode1", "outputVolume": None}
    job = Job("lumbarspine.filters:apply_filter", (image, "gaussian"), {"backend": "numpy", "sigma": 1.0}, "gaussian")
    controller.start(job, ids, lambda: dict(ids), recorder.apply)
    assert controller.state == RunState.RUNNING and recorder.locks == [True]
    with pytest.raises(RuntimeError, match="in progress"):
        controller.start(job, ids, lambda: ids, recorder.apply)
    assert controller.wait(60) == RunState.SUCCEEDED
    assert recorder.locks == [True, False] and len(recorder.applied) == 1
    assert controller.message == "applied" and recorder.states[-1] == (RunState.SUCCEEDED, "applied")
    np.testing.assert_array_equal(
        recorder.applied[0].volume.array, apply_filter(image, "gaussian", backend="numpy", sigma=1.0).volume.array
    )
    assert [s for s, _ in recorder.states] == [RunState.RUNNING, RunState.SUCCEEDED]
    assert not controller.poll() and not controller.cancel()  # idle: nothing to do


def test_result_is_discarded_when_the_inputs_changed(image):
    recorder = Recorder()
    controller = recorder.controller()
    current = {"inputVolume": "vtkMRMLScalarVolumeNode1"}
    job = Job("lumbarspine.filters:apply_filter", (image, "gaussian"), {"backend": "numpy"}, "gaussian")
    controller.start(job, dict(current), lambda: dict(current), recorder.apply)
    current["inputVolume"] = "vtkMRMLScalarVolumeNode2"  # e.g. set from the Python console during the run
    assert controller.wait(60) == RunState.CANCELLED
    assert "inputs changed" in controller.message and recorder.applied == [] and recorder.locks == [True, False]


def test_failed_worker_and_failed_apply_end_as_failed(image):
    recorder = Recorder()
    controller = recorder.controller()
    bad = Job("lumbarspine.filters:apply_filter", (image, "no_such_filter"), {"backend": "numpy"}, "bad filter")
    controller.start(bad, {}, dict, recorder.apply)
    assert controller.wait(60) == RunState.FAILED
    assert controller.message.startswith("bad filter failed:") and "no_such_filter" in controller.message

    def broken_apply(result):
        raise ValueError("the output node was deleted")

    good = Job("lumbarspine.filters:apply_filter", (image, "gaussian"), {"backend": "numpy"}, "gaussian")
    controller.start(good, {}, dict, broken_apply)
    assert controller.wait(60) == RunState.FAILED and "the output node was deleted" in controller.message
    assert recorder.locks == [True, False, True, False]


def test_cancel_stops_a_long_filter_within_a_second_and_leaves_the_scene_unchanged(slicer_scene, image):
    from lumbarspine.slicer_nodes import volume_from_node, volume_to_node

    scene = slicer_scene.scene
    node = volume_to_node(image, scene, name="Input")
    before_nodes, before_array = _scene_snapshot(scene), volume_from_node(node).array.copy()
    recorder = Recorder()
    controller = recorder.controller()
    job = Job("lumbarspine.filters:apply_filter", (volume_from_node(node), "curvature_diffusion"), LONG_DIFFUSION)
    controller.start(job, {"input": node.GetID()}, lambda: {"input": node.GetID()}, recorder.apply)
    folder, runner = controller._folder, controller._runner
    _wait_for_progress(controller, 0.02)  # the worker is inside the filter, streaming slab progress

    started = time.perf_counter()
    assert controller.cancel()
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"Cancel took {elapsed:.2f} s"
    assert KILL_TIMEOUT_S <= 1.0
    assert runner.returncode is not None, "the worker process is still alive"
    assert controller.state == RunState.CANCELLED and recorder.applied == []
    assert recorder.locks == [True, False] and not folder.exists()
    assert _scene_snapshot(scene) == before_nodes
    np.testing.assert_array_equal(volume_from_node(node).array, before_array)
    assert 0.0 < recorder.progress[-1][0] < 1.0


def test_closing_the_scene_mid_run_cancels_and_applies_nothing(slicer_scene, image):
    """Wired as the panels wire it: the scene's StartCloseEvent calls ``controller.scene_closing()``."""
    from lumbarspine.slicer_nodes import volume_from_node, volume_to_node

    scene = slicer_scene.scene
    node = volume_to_node(image, scene, name="Input")
    recorder = Recorder()
    controller = recorder.controller()
    tag = scene.AddObserver(scene.StartCloseEvent, lambda caller, event: controller.scene_closing())
    try:
        job = Job("lumbarspine.filters:apply_filter", (volume_from_node(node), "curvature_diffusion"), LONG_DIFFUSION)
        controller.start(job, {"input": node.GetID()}, lambda: {"input": node.GetID()}, recorder.apply)
        _wait_for_progress(controller, 0.01)
        started = time.perf_counter()
        scene.Clear(0)
        assert time.perf_counter() - started < 2.0
    finally:
        scene.RemoveObserver(tag)
    assert controller.state == RunState.CANCELLED and "scene was closed" in controller.message
    assert recorder.applied == [] and recorder.locks == [True, False]
    assert scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == 0
    assert not controller.poll()


# ----------------------------------------------------------------------- library slab progress
@pytest.mark.parametrize(
    "name,params", [("gaussian", {"sigma": 1.0}), ("median", {"radius": 1}), ("nlmeans", {"patch_distance": 2})]
)
def test_filters_report_progress_and_honour_cancel_per_slab(narrow, name, params):
    image = narrow
    seen = []
    apply_filter(image, name, backend="numpy", progress=lambda f, m="": seen.append((f, m)), **params)
    slabs = [m for _, m in seen if "slab" in m]
    assert len(slabs) >= 3, seen
    seen.clear()

    def cancel_after_two_slabs():
        return sum("slab" in m for _, m in seen) >= 2

    with pytest.raises(FilterCancelled):
        apply_filter(
            image,
            name,
            backend="numpy",
            progress=lambda f, m="": seen.append((f, m)),
            cancel=cancel_after_two_slabs,
            **params,
        )
    assert sum("slab" in m for _, m in seen) == 2  # stopped at the next slab boundary


def test_slab_wise_nlmeans_equals_one_skimage_call(narrow):
    image = narrow
    skimage_restoration = pytest.importorskip("skimage.restoration")
    from lumbarspine.filters.denoise import estimate_noise_sigma

    a = np.ascontiguousarray(image.array, dtype=np.float32)
    assert a.shape[0] > 2 * 48 and a.size > 1 << 16  # several slabs
    sigma = estimate_noise_sigma(a)
    out = apply_filter(image, "nlmeans", backend="numpy", patch_size=5, patch_distance=3, h=0.8).volume.array
    ref = skimage_restoration.denoise_nl_means(
        a, patch_size=5, patch_distance=3, h=0.8 * sigma, fast_mode=True, sigma=sigma, preserve_range=True
    )
    np.testing.assert_allclose(out, ref.astype(np.float32), rtol=1e-6, atol=1e-6 * float(np.abs(ref).max()))


def test_worker_folders_hold_the_library_and_the_helper():
    folders = [Path(f) for f in library_folders()]
    assert any((f / "lumbarspine" / "__init__.py").is_file() for f in folders)
    assert any((f / "SpineModulesLib" / "worker.py").is_file() for f in folders)
