"""The three scripted modules' Logic classes, run for real in a headless Slicer scene.

The modules' own ``ScriptedLoadableModuleTest`` self-tests need the full Slicer application; this
file checks the module wiring to the library in CI instead. Only the GUI-only pieces that the
Qt-free ``slicer-core`` wheel lacks are stood in for, and only while a module file is imported:
``qt``, ``ctk``, ``slicer.ScriptedLoadableModule``, ``slicer.parameterNodeWrapper`` (and
``slicer.util.VTKObservationMixin`` where missing). The MRML scene, the nodes, the library, the
phantom and the filters are real. Every Logic call gets the scene explicitly (as the Widgets pass
``scene=slicer.mrmlScene``) while ``slicer.mrmlScene`` raises, so a Logic that reaches for the
global scene fails here.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
import types
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("slicer", reason="slicer-core is not installed: pip install slicer-core==5.13.31053.0")

from lumbarspine.filters import FilterCancelled, apply_filter, apply_preset  # noqa: E402
from lumbarspine.phantom import PhantomSpec, generate_phantom  # noqa: E402
from lumbarspine.planning import no_go_zone  # noqa: E402
from lumbarspine.slicer_nodes import (  # noqa: E402
    rows_from_table_node,
    segmentation_node_to_labels,
    volume_from_node,
    volume_to_node,
)

MODULES_DIR = Path(__file__).resolve().parents[2] / "LumbarSpine"
_counter = itertools.count()


# ------------------------------------------------------------------------------ stand-ins


class _Parent:
    """What Slicer hands a ScriptedLoadableModule: a bag of attributes."""

    isEntered = False


class _ScriptedLoadableModule:
    def __init__(self, parent=None):
        self.parent = parent if parent is not None else _Parent()


class _ScriptedLoadableModuleWidget:
    def __init__(self, parent=None):
        self.parent = parent

    def setup(self):
        raise AssertionError("ScriptedLoadableModuleWidget.setup needs the Slicer GUI")


class _ScriptedLoadableModuleLogic:
    def __init__(self, parent=None):
        self.parent = parent

    def getParameterNode(self):
        raise AssertionError("getParameterNode uses slicer.mrmlScene: the Logic must not call it when given a scene")


class _ScriptedLoadableModuleTest:
    pass


class _Annotation:
    """A no-op stand-in for parameterNodeWrapper's annotations (Choice, WithinRange, Default, ...)."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def _parameter_node_wrapper(cls=None, **_kwargs):
    if cls is None:  # used as @parameterNodeWrapper(...)
        return lambda c: c
    return cls


def _make_module(name: str, **attributes) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    return module


class _NoGlobalSceneSlicer(types.ModuleType):
    """The class given to the ``slicer`` module during the Logic calls: ``slicer.mrmlScene`` and
    ``slicer.app`` raise (an AssertionError, which ``getattr(..., default)`` does not swallow)."""

    @property
    def mrmlScene(self):
        raise AssertionError("a module Logic touched slicer.mrmlScene although a scene was passed")

    @property
    def app(self):
        raise AssertionError("a module Logic touched slicer.app")


@pytest.fixture
def gui_standins(monkeypatch):
    """Install the GUI-only stand-ins for the duration of one test."""
    import slicer
    import slicer.util

    monkeypatch.setitem(sys.modules, "qt", _make_module("qt"))
    monkeypatch.setitem(sys.modules, "ctk", _make_module("ctk"))
    slm = _make_module(
        "slicer.ScriptedLoadableModule",
        ScriptedLoadableModule=_ScriptedLoadableModule,
        ScriptedLoadableModuleWidget=_ScriptedLoadableModuleWidget,
        ScriptedLoadableModuleLogic=_ScriptedLoadableModuleLogic,
        ScriptedLoadableModuleTest=_ScriptedLoadableModuleTest,
    )
    annotations = {
        name: type(name, (_Annotation,), {})
        for name in ("Choice", "WithinRange", "Default", "Minimum", "Maximum", "Decimals", "SingleStep", "Label")
    }
    pnw = _make_module("slicer.parameterNodeWrapper", parameterNodeWrapper=_parameter_node_wrapper, **annotations)
    monkeypatch.setitem(sys.modules, "slicer.ScriptedLoadableModule", slm)
    monkeypatch.setitem(sys.modules, "slicer.parameterNodeWrapper", pnw)
    monkeypatch.setattr(slicer, "ScriptedLoadableModule", slm, raising=False)
    monkeypatch.setattr(slicer, "parameterNodeWrapper", pnw, raising=False)
    if not hasattr(slicer.util, "VTKObservationMixin"):

        class VTKObservationMixin:
            def __init__(self):
                self.Observations = []

        monkeypatch.setattr(slicer.util, "VTKObservationMixin", VTKObservationMixin, raising=False)
    return monkeypatch


@pytest.fixture
def load_module(gui_standins):
    """``load_module("SpineFiltering")`` imports LumbarSpine/SpineFiltering/SpineFiltering.py under a unique name."""

    def load(name: str) -> types.ModuleType:
        path = MODULES_DIR / name / f"{name}.py"
        unique = f"_lumbarspine_module_under_test_{name}_{next(_counter)}"
        spec = importlib.util.spec_from_file_location(unique, path)
        module = importlib.util.module_from_spec(spec)
        gui_standins.setitem(sys.modules, unique, module)  # dataclasses look the module up while it executes
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def no_global_scene(monkeypatch):
    """A context manager: inside it ``slicer.mrmlScene`` / ``slicer.app`` raise."""
    import contextlib

    import slicer

    @contextlib.contextmanager
    def guard():
        with monkeypatch.context() as patch:
            patch.setattr(slicer, "__class__", _NoGlobalSceneSlicer)
            yield

    return guard


class _Recorder:
    """Progress and cancel callbacks with the Widget's signatures (``_onProgress``, ``_isCancelRequested``)."""

    def __init__(self, cancel_after: int | None = None):
        self.fractions: list[float] = []
        self.messages: list[str] = []
        self.cancel_after = cancel_after

    def progress(self, fraction: float, message: str = "") -> None:
        self.fractions.append(float(fraction))
        self.messages.append(message)

    def cancel(self) -> bool:
        return self.cancel_after is not None and len(self.fractions) >= self.cancel_after


@pytest.fixture(scope="module")
def phantom():
    return generate_phantom(PhantomSpec(stenosis={"L4-L5": 60.0}, spacing=(2.0, 2.0, 2.0), noise=20.0))


def _count(scene, class_name: str) -> int:
    return scene.GetNumberOfNodesByClass(class_name)


# ------------------------------------------------------------------------------ imports


@pytest.mark.parametrize("name", ["SpineFiltering", "SpineStenosis", "SpinePlanning"])
def test_module_imports_and_describes_itself(load_module, name):
    module = load_module(name)
    for suffix in ("", "Widget", "Logic", "Test"):
        assert isinstance(getattr(module, name + suffix), type), f"{name}{suffix} is missing"
    description = getattr(module, name)(None).parent
    assert description.categories == ["Spine"]
    assert description.title and description.helpText and description.contributors


def test_no_global_scene_guard_works(no_global_scene):
    import slicer

    with no_global_scene():
        with pytest.raises(AssertionError, match="mrmlScene"):
            getattr(slicer, "mrmlScene", None)
        with pytest.raises(AssertionError, match="slicer.app"):
            slicer.app  # noqa: B018
        assert slicer.vtkMRMLScene is not None  # everything else is the real slicer module
    assert not hasattr(slicer, "mrmlScene")


@pytest.mark.parametrize("name", ["SpineFiltering", "SpineStenosis", "SpinePlanning"])
def test_widget_and_process_share_the_logics_job_and_apply(load_module, name):
    """The panel runs ``Logic.makeJob`` in a worker and hands the result to ``Logic.applyResult``;
    ``Logic.process`` runs the same job in-process and applies it the same way (one code path, one library call)."""
    import ast

    load_module(name)
    tree = ast.parse((MODULES_DIR / name / f"{name}.py").read_text(encoding="utf-8"))
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    widget_calls = {ast.unparse(n.func) for n in ast.walk(classes[f"{name}Widget"]) if isinstance(n, ast.Call)}
    assert {"self.logic.makeJob", "self.logic.applyResult"} <= widget_calls
    process = next(n for n in classes[f"{name}Logic"].body if isinstance(n, ast.FunctionDef) and n.name == "process")
    process_calls = {ast.unparse(n.func) for n in ast.walk(process) if isinstance(n, ast.Call)}
    assert {"self.makeJob", "self.applyResult", "run_job"} <= process_calls
    job_calls = [
        n for n in ast.walk(classes[f"{name}Logic"]) if isinstance(n, ast.Call) and ast.unparse(n.func) == "Job"
    ]
    assert job_calls and all(isinstance(c.args[0], ast.Name) and c.args[0].id.endswith("_CALL") for c in job_calls)


# ------------------------------------------------------------------------------ SpineFiltering


def _widget_parameter_values(module, name: str) -> dict:
    """The values the Widget's parameter form sends for filter ``name`` when the user changed nothing
    (``_buildParameterForm`` + ``_currentParameterValues``: volumes skipped, ints as int, +-1e9 as +-inf)."""
    values = {}
    for parameter in module.SpineFilteringLogic.filterParameters(name):
        info = module._parameterInfo(parameter)
        if info["kind"] == "volume":
            continue
        value = info["default"]
        isInteger = info["kind"] == "int" or (isinstance(value, int) and not isinstance(value, bool))
        if info["choices"]:
            values[info["name"]] = value
        elif info["kind"] == "bool" or isinstance(value, bool):
            values[info["name"]] = bool(value)
        elif isInteger:
            values[info["name"]] = int(round(value))
        else:
            spin = min(max(float(value), -1.0e9), 1.0e9)  # the spin box range
            values[info["name"]] = float("inf") if spin >= 1.0e9 else float("-inf") if spin <= -1.0e9 else spin
    return values


def test_filtering_logic_filter_and_preset(load_module, slicer_scene, no_global_scene, phantom):
    module = load_module("SpineFiltering")
    scene = slicer_scene.scene
    logic = module.SpineFilteringLogic()
    input_node = volume_to_node(phantom.image, scene, name="FilteringInput")
    before = volume_from_node(input_node)
    keys = [key for key, _ in logic.availableOperations()]
    assert "filter:gaussian" in keys and "preset:ct-bone" in keys

    parameters = _widget_parameter_values(module, "gaussian")
    assert parameters == {"sigma": 1.0}
    recorder = _Recorder()
    volumes_before = _count(scene, "vtkMRMLScalarVolumeNode")
    with no_global_scene():
        result = logic.process(
            input_node,
            outputVolume=None,
            operation="filter:gaussian",
            parameters=parameters,
            backend="numpy",
            progress=recorder.progress,
            cancel=recorder.cancel,
            scene=scene,
        )
    output = result.outputVolume
    assert (result.kind, result.name, result.backend) == ("filter", "gaussian", "numpy")
    assert output.GetID() != input_node.GetID()
    assert output.GetScene() is scene
    assert _count(scene, "vtkMRMLScalarVolumeNode") == volumes_before + 1
    assert output.GetName().startswith("FilteringInput_gaussian")
    assert recorder.fractions and all(0.0 <= f <= 1.0 for f in recorder.fractions)
    # the input is untouched
    after = volume_from_node(input_node)
    np.testing.assert_array_equal(after.array, before.array)
    assert after.same_geometry(before)
    # the output: same grid, the library's values
    filtered = volume_from_node(output)
    assert filtered.same_geometry(before)
    expected = apply_filter(before, "gaussian", backend="numpy", **parameters).volume
    assert filtered.array.dtype == expected.array.dtype
    np.testing.assert_array_equal(filtered.array, expected.array)

    # a second run into the given output node reuses it (other sigma, other values)
    with no_global_scene():
        again = logic.process(
            input_node,
            outputVolume=output,
            operation="filter:gaussian",
            parameters={"sigma": 2.0},
            backend="numpy",
            progress=recorder.progress,
            cancel=recorder.cancel,
            scene=scene,
        )
    assert again.outputVolume.GetID() == output.GetID()
    assert _count(scene, "vtkMRMLScalarVolumeNode") == volumes_before + 1
    refiltered = volume_from_node(output)
    assert refiltered.same_geometry(before)
    np.testing.assert_array_equal(
        refiltered.array, apply_filter(before, "gaussian", backend="numpy", sigma=2.0).volume.array
    )

    # a preset (the Widget sends the form's empty parameters for presets)
    with no_global_scene():
        preset = logic.process(
            input_node,
            outputVolume=None,
            operation="preset:ct-bone",
            parameters={},
            backend="numpy",
            progress=recorder.progress,
            cancel=recorder.cancel,
            scene=scene,
        )
    assert (preset.kind, preset.name) == ("preset", "ct-bone")
    assert preset.outputVolume.GetID() not in (input_node.GetID(), output.GetID())
    presetVolume = volume_from_node(preset.outputVolume)
    assert presetVolume.same_geometry(before)
    np.testing.assert_array_equal(presetVolume.array, apply_preset(before, "ct-bone", backend="numpy").volume.array)
    np.testing.assert_array_equal(volume_from_node(input_node).array, before.array)


def test_filtering_logic_every_filter_with_the_forms_defaults(load_module, slicer_scene, no_global_scene):
    """Every registry filter accepts what the Widget's untouched form sends (small volume: wiring only)."""
    module = load_module("SpineFiltering")
    scene = slicer_scene.scene
    logic = module.SpineFilteringLogic()
    rng = np.random.default_rng(0)
    small = generate_phantom(PhantomSpec(spacing=(4.0, 4.0, 4.0), noise=20.0)).image
    small = small.with_array((small.array + rng.integers(-5, 5, small.shape)).astype(small.array.dtype))
    input_node = volume_to_node(small, scene, name="Small")
    source = volume_from_node(input_node)
    for key, _title in logic.availableOperations():
        kind, name = logic.resolveOperation(key)
        if kind != "filter" or name == "n4":
            continue  # N4 is slow and has no wiring of its own
        parameters = _widget_parameter_values(module, name)
        assert logic.operationDescription(key)
        with no_global_scene():
            result = logic.process(
                input_node,
                operation=key,
                parameters=parameters,
                backend="numpy",
                progress=None,
                cancel=None,
                scene=scene,
            )
        out = volume_from_node(result.outputVolume)
        expected = apply_filter(source, name, backend="numpy", **parameters).volume
        assert out.same_geometry(expected), name
        assert result.outputVolume.IsA("vtkMRMLLabelMapVolumeNode") == expected.is_label, name
        np.testing.assert_array_equal(out.array, expected.array, err_msg=name)
    np.testing.assert_array_equal(volume_from_node(input_node).array, source.array)


def test_filtering_logic_cancel_and_bad_input(load_module, slicer_scene, no_global_scene, phantom):
    module = load_module("SpineFiltering")
    scene = slicer_scene.scene
    logic = module.SpineFilteringLogic()
    input_node = volume_to_node(phantom.image, scene, name="FilteringInput")
    volumes = _count(scene, "vtkMRMLVolumeNode")

    def run(node, cancel=None, **kwargs):
        arguments = dict(operation="filter:gaussian", parameters={"sigma": 1.0}, backend="numpy")
        arguments.update(kwargs)
        recorder = _Recorder()
        with no_global_scene():
            return logic.process(
                node, progress=recorder.progress, cancel=cancel or recorder.cancel, scene=scene, **arguments
            )

    with pytest.raises(FilterCancelled):
        run(input_node, cancel=lambda: True)
    # a cancel that comes during the run (after the first progress report) stops it too
    mid = _Recorder(cancel_after=1)
    with no_global_scene(), pytest.raises(FilterCancelled):
        logic.process(
            input_node,
            operation="preset:ct-bone",
            parameters={},
            backend="numpy",
            progress=mid.progress,
            cancel=mid.cancel,
            scene=scene,
        )
    assert len(mid.fractions) >= 1
    assert _count(scene, "vtkMRMLVolumeNode") == volumes  # nothing was written

    with pytest.raises(ValueError, match="No input volume"):
        run(None)
    empty = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "Empty")
    with pytest.raises(ValueError, match="no image data"):
        run(empty)
    with pytest.raises(ValueError, match="Unknown filter or preset"):
        run(input_node, operation="filter:no_such_filter")
    with pytest.raises(ValueError, match="No filter or preset"):
        run(input_node, operation="")
    with pytest.raises(ValueError, match="no parameter"):
        run(input_node, parameters={"radius": 2})
    with pytest.raises(ValueError, match="takes no parameters"):
        run(input_node, operation="preset:ct-bone", parameters={"sigma": 1.0})
    with pytest.raises(ValueError, match="backend"):
        run(input_node, backend="opencl")
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", "NotAVolume")
    with pytest.raises(ValueError, match="not a scalar volume"):
        run(table)
    with pytest.raises(ValueError, match="not a scalar volume"):
        run(input_node, outputVolume=table)
    assert _count(scene, "vtkMRMLVolumeNode") == volumes + 1  # only the empty node added above


# ------------------------------------------------------------------------------ SpineStenosis


def _slice_views(scene):
    """The Red, Yellow and Green slice nodes, as Slicer's layout logic makes them (their presets included)."""
    import slicer

    layout = slicer.vtkMRMLLayoutLogic()
    layout.SetMRMLScene(scene)
    layout.SetMRMLScene(None)  # the nodes stay; a logic still observing the scene would outlive its Clear()
    nodes = [scene.GetNthNodeByClass(i, "vtkMRMLSliceNode") for i in range(_count(scene, "vtkMRMLSliceNode"))]
    return {node.GetLayoutName(): node for node in nodes}


def _matrix(slice_node) -> np.ndarray:
    m = slice_node.GetSliceToRAS()
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


def test_stenosis_logic_grades_the_image_and_jumps_to_a_level(load_module, slicer_scene, no_global_scene, phantom):
    from lumbarspine.grading.scene import slice_to_ras
    from lumbarspine.grading.study import grade_image

    module = load_module("SpineStenosis")
    scene = slicer_scene.scene
    logic = module.SpineStenosisLogic()
    image = volume_to_node(phantom.image, scene, name="StenosisImage")
    labelmap = volume_to_node(phantom.labels, scene, name="StenosisLabels")
    assert labelmap.IsA("vtkMRMLLabelMapVolumeNode")
    before = volume_from_node(labelmap).array.copy()
    recorder = _Recorder()
    with no_global_scene():
        result = logic.process(
            image, labelmap, outputTable=None, progress=recorder.progress, cancel=recorder.cancel, scene=scene
        )
    table = result.outputTable
    assert table.IsA("vtkMRMLTableNode") and table.GetScene() is scene
    assert table.GetName().startswith("StenosisImage_stenosis")
    levels = list(phantom.truth["levels"])
    assert [row["level"] for row in result.rows] == levels
    rows = {row["level"]: row for row in rows_from_table_node(table)}
    assert list(rows) == levels and table.GetNumberOfRows() == 5
    assert rows["L4-L5"]["grade"] == "Severe"
    truth = phantom.truth["levels"]["L4-L5"]["dural_sac_area_mm2"]
    assert truth == pytest.approx(60.0)
    assert rows["L4-L5"]["dural_sac_area_mm2"] == pytest.approx(truth, rel=0.10)
    assert all(rows[level]["grade"] == "Normal/Mild" for level in levels if level != "L4-L5")
    assert recorder.fractions[-1] == 1.0 and all(0.0 <= f <= 1.0 for f in recorder.fractions)
    np.testing.assert_array_equal(volume_from_node(labelmap).array, before)
    assert "L4-L5" in logic.summaryHtml(result.rows) and "Severe" in logic.summaryHtml(result.rows)
    # the library's scene content: outline and AP markups per level, the area chart, the sac coloured by grade
    names = {scene.GetNthNode(i).GetName() for i in range(scene.GetNumberOfNodes())}
    for level in levels:
        assert {f"StenosisImage {level} dural sac outline", f"StenosisImage {level} AP diameter"} <= names
    assert result.nodes["chart"].IsA("vtkMRMLPlotChartNode") and len(result.nodes["series"]) == 3
    sac = result.nodes["segmentation"].GetSegmentation()
    assert (
        sac.GetNumberOfSegments() == 5
        and "Severe" in sac.GetSegment(sac.GetSegmentIdBySegmentName("L4-L5 dural sac (Severe)")).GetName()
    )
    assert "labelmap" not in result.nodes  # a segmentation was given: no automatic one added

    # selecting a row moves the slice views onto that level's plane (Red: the plane, as Slicer's axial view)
    views = _slice_views(scene)
    assert set(views) == {"Red", "Yellow", "Green"}
    presets = {name: _matrix(node)[:3, :3] for name, node in views.items()}
    expected = grade_image(phantom.image, phantom.labels)["result"].level("L4-L5")
    plane = slice_to_ras(expected)
    with no_global_scene():
        assert logic.jumpToLevel(table, levels.index("L4-L5"), scene) == "L4-L5"
    for name, node in views.items():
        placed = _matrix(node)
        np.testing.assert_allclose(placed[:3, 3], expected.minimum.center_ras, atol=1e-6)  # through the centre
        np.testing.assert_allclose(placed[:3, :3], plane[:3, :3] @ presets[name], atol=1e-6)
        np.testing.assert_allclose(placed[:3, :3].T @ placed[:3, :3], np.eye(3), atol=1e-9)
    red = _matrix(views["Red"])
    np.testing.assert_allclose(red[:3, 2], expected.minimum.normal_ras, atol=1e-6)  # shows the measured plane
    assert np.linalg.det(red[:3, :3]) == pytest.approx(np.linalg.det(presets["Red"]))  # radiological, as Slicer
    assert red[0, 0] < -0.9  # screen right = patient left, as in Slicer's axial view
    assert abs(_matrix(views["Yellow"])[:3, 2] @ expected.minimum.normal_ras) < 1e-6  # contains the normal
    with no_global_scene():
        assert logic.jumpToLevel(table, 0, scene) == "L1-L2"
    assert not np.allclose(_matrix(views["Red"])[:3, 3], red[:3, 3])
    for bad_row in (-1, 5):
        with pytest.raises(ValueError, match="not in"):
            logic.jumpToLevel(table, bad_row, scene)
    with pytest.raises(ValueError, match="No grading table"):
        logic.jumpToLevel(None, 0, scene)

    # the Widget then passes the table back with other thresholds: refilled, the old markups replaced
    nodes = scene.GetNumberOfNodes()
    thresholds = {"area_moderate_mm2": 111.0, "area_severe_mm2": 50.0, "ap_moderate_mm": 12.0, "ap_severe_mm": 9.0}
    with no_global_scene():
        again = logic.process(image, labelmap, thresholds=thresholds, outputTable=table, scene=scene)
    assert again.outputTable.GetID() == table.GetID()
    assert scene.GetNumberOfNodes() == nodes
    regraded = {row["level"]: row for row in rows_from_table_node(table)}
    assert regraded["L4-L5"]["grade"] == "Moderate"  # about 60 mm2: between 50 and 111
    assert regraded["L4-L5"]["dural_sac_area_mm2"] == pytest.approx(rows["L4-L5"]["dural_sac_area_mm2"])
    assert again.nodes["series"][1].GetName().endswith("moderate < 111 mm2")
    with no_global_scene():
        assert logic.jumpToLevel(table, levels.index("L4-L5"), scene) == "L4-L5"


def test_stenosis_parameter_defaults_are_the_librarys_thresholds(load_module):
    from dataclasses import asdict

    from lumbarspine.grading import GradingThresholds

    module = load_module("SpineStenosis")
    defaults = {name: getattr(module.SpineStenosisParameterNode, name) for name in module.THRESHOLD_FIELDS}
    assert module.thresholdsOf(types.SimpleNamespace(**defaults)) == asdict(GradingThresholds())


def test_stenosis_logic_segments_automatically_and_reads_an_axial_series(load_module, slicer_scene, no_global_scene):
    """No segmentation: the image is segmented (its label map is added); an axial series adds the acquired-slice area."""
    module = load_module("SpineStenosis")
    scene = slicer_scene.scene
    t2 = generate_phantom(PhantomSpec(modality="t2", stenosis={"L4-L5": 60.0}, spacing=(2.0, 2.0, 2.0), noise=10.0))
    image = volume_to_node(t2.image, scene, name="T2")
    axial = volume_to_node(t2.image, scene, name="T2 axial")
    with no_global_scene():
        result = module.SpineStenosisLogic().process(image, None, axial, scene=scene)
    rows = {row["level"]: row for row in result.rows}
    assert rows["L4-L5"]["grade"] == "Severe"
    assert all(np.isfinite(row["axial_slice_area_mm2"]) for row in rows.values())
    segmentation = result.nodes["labelmap"]
    assert segmentation.IsA("vtkMRMLLabelMapVolumeNode") and segmentation.GetName().startswith("T2_segmentation")
    labels = volume_from_node(segmentation)
    assert labels.same_geometry(t2.image) and {2, 95} <= set(np.unique(labels.array).tolist())


def test_stenosis_logic_cancel_and_bad_input(load_module, slicer_scene, no_global_scene, phantom):
    module = load_module("SpineStenosis")
    scene = slicer_scene.scene
    logic = module.SpineStenosisLogic()
    image = volume_to_node(phantom.image, scene, name="StenosisImage")
    labelmap = volume_to_node(phantom.labels, scene, name="StenosisLabels")
    tables = _count(scene, "vtkMRMLTableNode")

    def run(node, segmentation=labelmap, cancel=None, **kwargs):
        recorder = _Recorder()
        with no_global_scene():
            return logic.process(
                node, segmentation, progress=recorder.progress, cancel=cancel or recorder.cancel, scene=scene, **kwargs
            )

    with pytest.raises(module.OperationCancelled):
        run(image, cancel=lambda: True)
    mid = _Recorder(cancel_after=1)
    with no_global_scene(), pytest.raises(module.OperationCancelled):
        logic.process(image, labelmap, progress=mid.progress, cancel=mid.cancel, scene=scene)
    assert mid.fractions == [0.05]
    assert _count(scene, "vtkMRMLTableNode") == tables

    with pytest.raises(ValueError, match="No input image"):
        run(None)
    with pytest.raises(ValueError, match="no image data"):
        run(scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "Empty"))
    with pytest.raises(ValueError, match="non-integer"):
        run(
            image,
            volume_to_node(
                phantom.labels.with_array(phantom.labels.array.astype(np.float32) + 0.5, is_label=False), scene
            ),
        )
    no_canal = phantom.labels.with_array(np.where(phantom.labels.array == 2, 0, phantom.labels.array).astype(np.uint8))
    with pytest.raises(ValueError, match="No canal found"):
        run(image, volume_to_node(no_canal, scene, name="NoCanal"))
    with pytest.raises(ValueError, match="not a table"):
        run(image, outputTable=labelmap)
    with pytest.raises(ValueError, match="area_severe_mm2 < area_moderate_mm2"):
        run(image, thresholds={"area_moderate_mm2": 60.0, "area_severe_mm2": 75.0})
    with pytest.raises(ValueError, match="axial series is the input image itself"):
        run(image, axialVolume=image)
    with pytest.raises(ValueError, match="axial series"):
        run(image, axialVolume=scene.AddNewNodeByClass("vtkMRMLTableNode", "NotAVolume"))
    with pytest.raises(ValueError, match="sac probability map is the input image itself"):
        run(image, sacProbabilityVolume=image)
    with pytest.raises(ValueError, match="fractions in \\[0, 1\\]"):
        run(image, sacProbabilityVolume=labelmap)
    assert _count(scene, "vtkMRMLTableNode") == tables + 1  # only the node made above


def test_stenosis_logic_measures_on_a_sac_probability_map(load_module, slicer_scene, no_global_scene, phantom):
    """The phantom's partial-volume sac as a scalar volume node: the table's areas come from it (2 mm voxels:
    within 3 % of the truth), and the map node is not changed."""
    from lumbarspine.phantom import sac_fraction

    module = load_module("SpineStenosis")
    scene = slicer_scene.scene
    image = volume_to_node(phantom.image, scene, name="StenosisImage")
    labelmap = volume_to_node(phantom.labels, scene, name="StenosisLabels")
    probability = volume_to_node(sac_fraction(phantom), scene, name="SacProbability")
    assert not probability.IsA("vtkMRMLLabelMapVolumeNode")
    before = volume_from_node(probability).array.copy()
    with no_global_scene():
        result = module.SpineStenosisLogic().process(image, labelmap, scene=scene, sacProbabilityVolume=probability)
    rows = {row["level"]: row for row in result.rows}
    for level, entry in phantom.truth["levels"].items():
        truth = entry["dural_sac_area_mm2"]
        assert abs(float(rows[level]["dural_sac_area_mm2"]) - truth) <= 0.03 * truth, (level, rows[level])
    assert rows["L4-L5"]["grade"] == "Severe"
    assert np.array_equal(volume_from_node(probability).array, before)


# ------------------------------------------------------------------------------ SpinePlanning


def test_planning_logic_no_go_zone(load_module, slicer_scene, no_global_scene, phantom):
    """A label map alone (the old console call): the plan's no-go zone is the library's, bone and sac are added."""
    from lumbarspine.planning.panel_support import NO_GO_SEGMENT, plan_image, unpack_masks
    from lumbarspine.planning.scene import NO_GO_COLOR

    module = load_module("SpinePlanning")
    scene = slicer_scene.scene
    logic = module.SpinePlanningLogic()
    labelmap = volume_to_node(phantom.labels, scene, name="PlanningLabels")
    labels = volume_from_node(labelmap)
    recorder = _Recorder()
    segmentations = _count(scene, "vtkMRMLSegmentationNode")
    with no_global_scene():
        result = logic.process(
            labelmap,
            marginMm=2.0,
            outputSegmentation=None,
            createSurface=True,
            progress=recorder.progress,
            cancel=recorder.cancel,
            scene=scene,
        )
    node = result.outputSegmentation
    assert node.IsA("vtkMRMLSegmentationNode") and node.GetScene() is scene
    assert _count(scene, "vtkMRMLSegmentationNode") == segmentations + 3  # plan, vertebrae, dural sac
    assert node.GetName().startswith("PlanningLabels_plan")
    assert result.nodes["vertebrae"].GetName().startswith("PlanningLabels vertebrae")
    assert result.nodes["dural_sac"].GetName().startswith("PlanningLabels dural sac")
    assert result.nodes["labels"] is labelmap and logic.planLabelmap(node) is labelmap  # its voxels were planned
    assert result.decompressions == [] and result.nodes["decompression_table"] is None
    segmentation = node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 1
    assert segmentation.GetNthSegment(0).GetName() == NO_GO_SEGMENT
    assert segmentation.GetNthSegment(0).GetColor() == pytest.approx(NO_GO_COLOR)
    import slicer

    surface = slicer.vtkSegmentationConverter.GetSegmentationClosedSurfaceRepresentationName()
    assert segmentation.ContainsRepresentation(surface)
    assert recorder.fractions[-1] == 1.0 and all(0.0 <= f <= 1.0 for f in recorder.fractions)

    planned = plan_image(None, labels, margin_mm=2.0)
    expected = unpack_masks(planned["masks"], planned["mask_names"])[NO_GO_SEGMENT]
    assert expected.sum() >= np.count_nonzero(no_go_zone(labels, margin_mm=2.0).array) * 0.95
    exported = segmentation_node_to_labels(node, scene, reference=labels)
    assert exported.same_geometry(labels)
    np.testing.assert_array_equal(exported.array != 0, expected)
    assert result.zoneVolumeMm3 == pytest.approx(expected.sum() * float(np.prod(labels.spacing)))
    np.testing.assert_array_equal(volume_from_node(labelmap).array, labels.array)

    # a wider margin into the same node (the Widget passes its output back): reused, larger, nothing piles up
    nodes = scene.GetNumberOfNodes()
    with no_global_scene():
        wider = logic.process(
            labelmap,
            marginMm=5.0,
            outputSegmentation=node,
            createSurface=False,
            progress=recorder.progress,
            cancel=recorder.cancel,
            scene=scene,
        )
    assert wider.outputSegmentation.GetID() == node.GetID()
    assert _count(scene, "vtkMRMLSegmentationNode") == segmentations + 3 and scene.GetNumberOfNodes() == nodes
    assert node.GetSegmentation().GetNumberOfSegments() == 1
    assert not node.GetSegmentation().ContainsRepresentation(surface)
    assert wider.zoneVolumeMm3 > result.zoneVolumeMm3


def test_planning_logic_plans_an_image_with_grades_exports_and_turns_the_cameras(
    load_module, slicer_scene, no_global_scene, phantom, tmp_path
):
    """The CT with its label map and the stenosis table of SpineStenosis: decompressions at the moderate /
    severe levels as segments and a table, the sac coloured by grade, the export in LPS, the camera presets."""
    import json

    from lumbarspine.planning.panel_support import decompression_rows, plan_image, unpack_masks
    from lumbarspine.slicer_nodes import table_node_from_rows

    module = load_module("SpinePlanning")
    scene = slicer_scene.scene
    logic = module.SpinePlanningLogic()
    image = volume_to_node(phantom.image, scene, name="PlanCT")
    labelmap = volume_to_node(phantom.labels, scene, name="PlanLabels")
    grading = [  # the columns of SpineStenosis' table (lumbarspine.grading.core.table_rows)
        {"level": "L3-L4", "dural_sac_area_mm2": 140.0, "grade": "Normal/Mild"},
        {"level": "L4-L5", "dural_sac_area_mm2": 60.0, "grade": "Severe"},
    ]
    table = table_node_from_rows(grading, scene, name="PlanCT_stenosis")
    with no_global_scene():
        result = logic.process(image, labelmap, gradesTable=table, createSurface=False, scene=scene)
    output = result.outputSegmentation
    assert output.GetName().startswith("PlanCT_plan")
    names = [output.GetSegmentation().GetNthSegment(i).GetName() for i in range(2)]
    assert sorted(names) == ["Decompression L4-L5", "No-go zone"]
    planned = plan_image(phantom.image, phantom.labels, grades={"L3-L4": "normal/mild", "L4-L5": "severe"})
    expected = decompression_rows(planned["decompressions"])
    assert [row["level"] for row in expected] == ["L4-L5"]
    assert result.decompressions == logic.decompressionRows(output) == json.loads(json.dumps(expected))
    row = result.decompressions[0]
    assert row["bone_volume_cm3"] > 0 and 0 < row["facet_left_removed_pct"] <= 50.0
    assert 0 < row["facet_right_removed_pct"] <= 50.0  # at most half of each facet (clinical-reference.md)
    assert row["canal_area_after_mm2"] > row["canal_area_before_mm2"] > 0
    assert rows_from_table_node(result.nodes["decompression_table"])[0]["level"] == "L4-L5"
    mask = unpack_masks(planned["masks"], planned["mask_names"])["Decompression L4-L5"]
    exported = segmentation_node_to_labels(output, scene, reference=phantom.labels)
    segment_value = sorted(int(v) for v in np.unique(exported.array[mask]) if v)
    assert len(segment_value) >= 1  # the decompression segment covers the library's mask
    sac = result.nodes["dural_sac"].GetSegmentation()
    sac_names = {sac.GetNthSegment(i).GetName() for i in range(sac.GetNumberOfSegments())}
    assert "Dural sac L4-L5 (severe)" in sac_names and "Dural sac L3-L4 (normal/mild)" in sac_names
    assert len(result.screws) == len(planned["screws"]) == 12

    # levels ticked instead: those are decompressed, the grades still colour the sac
    with no_global_scene():
        picked = logic.process(
            image,
            labelmap,
            gradesTable=table,
            levels="L3-L4, l4-l5",
            outputSegmentation=output,
            scene=scene,
            createSurface=False,
        )
    assert [r["level"] for r in picked.decompressions] == ["L3-L4", "L4-L5"]
    assert output.GetSegmentation().GetNumberOfSegments() == 3

    # export: screws as they are now (one resized) and the volumes, in LPS, never a dialog
    line = picked.screws[0]
    logic.resizeScrew(line, logic.planLabelmap(output), 5.0, 35.0)
    with no_global_scene():
        message = logic.exportPlan(output, tmp_path, "LPS", scene)
    sidecar = json.loads((tmp_path / "exports.json").read_text())
    assert sidecar["coordinate_system"] == "LPS" and "LPS" in message
    kinds = [o["kind"] for o in sidecar["objects"]]
    assert kinds.count("screw") == 12 and kinds.count("decompression") == 2 and kinds.count("no-go zone") == 1
    first = next(o for o in sidecar["objects"] if o["name"] == f"screw {line.GetName()}")
    assert (first["diameter_mm"], first["length_mm"]) == (5.0, 35.0)
    decompressed = {o["level"]: o["volume_cm3"] for o in sidecar["objects"] if o["kind"] == "decompression"}
    assert decompressed == pytest.approx({r["level"]: r["bone_volume_cm3"] for r in picked.decompressions}, abs=1e-3)
    stl = (tmp_path / first["files"]["stl"]).read_bytes()
    assert b"LPS" in stl[:80]
    obj = (tmp_path / first["files"]["obj"]).read_text().splitlines()
    entry = np.array(line.GetNthControlPointPositionWorld(0))
    vertices = np.array([[float(v) for v in text.split()[1:]] for text in obj if text.startswith("v ")])
    assert np.min(np.linalg.norm(vertices - entry * [-1.0, -1.0, 1.0], axis=1)) < 3.0  # LPS = RAS with x, y negated
    for bad in ({"coordinates": "XYZ"}, {"folder": ""}):
        with pytest.raises(ValueError, match="coordinate system|export folder"):
            logic.exportPlan(output, bad.get("folder", tmp_path), bad.get("coordinates", "RAS"), scene)

    # the camera presets: posterior, left, from above, around the planned spine
    camera = scene.AddNewNodeByClass("vtkMRMLCameraNode")
    kji = np.argwhere(phantom.labels.array > 0)
    centre = phantom.labels.ijk_to_ras_points(kji[:, ::-1].astype(float))
    centre = (centre.min(axis=0) + centre.max(axis=0)) / 2
    for view, direction in (("posterior", [0, -1, 0]), ("left", [-1, 0, 0]), ("superior", [0, 0, 1])):
        with no_global_scene():
            assert logic.showView(output, view, scene) == 1
        focal, position = np.array(camera.GetFocalPoint()), np.array(camera.GetPosition())
        np.testing.assert_allclose(focal, centre, atol=1e-6)
        np.testing.assert_allclose((position - focal) / np.linalg.norm(position - focal), direction, atol=1e-9)
    with pytest.raises(ValueError, match="Unknown view"):
        logic.showView(output, "oblique", scene)

    # bad grades and levels
    with pytest.raises(ValueError, match="not both"):
        logic.makeJob(image, labelmap, gradesTable=table, gradesReport=tmp_path / "report.json")
    with pytest.raises(ValueError, match="does not exist"):
        logic.makeJob(image, labelmap, gradesReport=tmp_path / "missing.json")
    with pytest.raises(ValueError, match="not a disc level"):
        logic.makeJob(image, labelmap, levels="L4-L5, L9")
    assert logic.makeJob(image, labelmap, gradesReport=Path(".")).kwargs["grades"] is None  # an empty path widget


def test_planning_logic_segments_automatically_and_reads_a_report(
    load_module, slicer_scene, no_global_scene, phantom, tmp_path
):
    """No label map: the CT is segmented (its label map added to the scene and used by the screw edits);
    the grades come from a report.json as 'lumbarspine grade' writes it."""
    import json

    module = load_module("SpinePlanning")
    scene = slicer_scene.scene
    image = volume_to_node(phantom.image, scene, name="AutoCT")
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"levels": [{"level": "L4-L5", "central_canal_grade": "severe"}]}))
    logic = module.SpinePlanningLogic()
    with no_global_scene():
        result = logic.process(image, None, gradesReport=str(report), createSurface=False, scene=scene)
    labels_node = result.nodes["labels"]
    assert labels_node.IsA("vtkMRMLLabelMapVolumeNode") and labels_node.GetName().startswith("AutoCT_segmentation")
    assert logic.planLabelmap(result.outputSegmentation) is labels_node
    labels = volume_from_node(labels_node)
    assert labels.same_geometry(phantom.image) and {2, 45, 50} <= set(np.unique(labels.array).tolist())
    assert [row["level"] for row in result.decompressions] == ["L4-L5"]
    assert len(result.screws) >= 8
    line = result.screws[0]
    assert "grade" in logic.resizeScrew(line, labels_node, 5.0, 35.0)
    # a rerun replaces the automatic label map with the new one
    nodes = scene.GetNumberOfNodes()
    with no_global_scene():
        logic.process(
            image,
            None,
            gradesReport=report,
            outputSegmentation=result.outputSegmentation,
            createSurface=False,
            scene=scene,
        )
    assert scene.GetNumberOfNodes() == nodes and labels_node.GetScene() is None


def test_planning_logic_plans_screws_and_a_rerun_replaces_them(load_module, slicer_scene, no_global_scene, phantom):
    from lumbarspine.planning import plan_screws
    from lumbarspine.planning.screw_edit import anatomy_from_label_map

    module = load_module("SpinePlanning")
    scene = slicer_scene.scene
    logic = module.SpinePlanningLogic()
    labelmap = volume_to_node(phantom.labels, scene, name="PlanningLabels")
    with no_global_scene():
        result = logic.process(labelmap, marginMm=2.0, createSurface=False, scene=scene)
    expected = plan_screws(anatomy_from_label_map(phantom.labels))
    assert len(result.screws) == len(expected["screws"]) == 12  # L1-L5 and S1, both sides
    rows = logic.screwRows(result.outputSegmentation)
    assert [(r["vertebra"], r["side"]) for r in rows] == [(s.vertebra, s.side) for s in expected["screws"]]
    for row, screw in zip(rows, expected["screws"]):
        assert row["diameter_mm"] == screw.diameter_mm and row["length_mm"] == pytest.approx(screw.length_mm, abs=0.05)
        assert row["grade"] == screw.evaluation["gertzbein_robbins"]
        assert row["breach_mm"] == pytest.approx(screw.evaluation["breach_mm"], abs=0.005) and row["visible"]
    assert expected["refused"] == [] and "L1 left" not in logic.refusedHtml(result.outputSegmentation)
    line = result.screws[0]
    model = line.GetNodeReference("LumbarSpine.ScrewModel")
    assert line.IsA("vtkMRMLMarkupsLineNode") and model.IsA("vtkMRMLModelNode") and line.GetName() == "L1 left"

    nodes = scene.GetNumberOfNodes()
    with no_global_scene():
        again = logic.process(
            labelmap, marginMm=3.0, outputSegmentation=result.outputSegmentation, scene=scene, createSurface=False
        )
    assert scene.GetNumberOfNodes() == nodes and line.GetScene() is None and model.GetScene() is None
    assert len(again.screws) == 12
    with no_global_scene():
        zone_only = logic.process(
            labelmap, outputSegmentation=result.outputSegmentation, scene=scene, createSurface=False, planScrews=False
        )
    assert zone_only.screws == [] and logic.screwRows(result.outputSegmentation) == []
    assert _count(scene, "vtkMRMLMarkupsLineNode") == 0
    # a vertebra without its right half: that side is refused, and the panel lists it with the reason
    array = np.array(phantom.labels.array, copy=True)
    kji = np.argwhere(array == 41)
    ras = phantom.labels.ijk_to_ras_points(kji[:, ::-1].astype(float))
    cut = kji[ras[:, 0] > np.median(ras[:, 0]) + 4.0]
    array[tuple(cut.T)] = 0
    damaged = phantom.labels.with_array(array)
    with no_global_scene():
        partial = logic.process(
            volume_to_node(damaged, scene, name="DamagedLabels"), marginMm=2.0, createSurface=False, scene=scene
        )
    refused = plan_screws(anatomy_from_label_map(damaged))["refused"]
    assert ("L1", "right") in {(r.vertebra, r.side) for r in refused}
    html = logic.refusedHtml(partial.outputSegmentation)
    reason = next(r.reason for r in refused if (r.vertebra, r.side) == ("L1", "right"))
    assert "L1 right" in html and reason in html


def test_planning_logic_edits_one_screw(load_module, slicer_scene, no_global_scene, phantom):
    """Resize, re-plan (the worker's job, run here), hide, and move an end point: each re-evaluates the screw."""
    from lumbarspine.planning import evaluate_screw, replan_screw
    from lumbarspine.planning.screw_edit import anatomy_from_label_map

    module = load_module("SpinePlanning")
    scene = slicer_scene.scene
    logic = module.SpinePlanningLogic()
    labelmap = volume_to_node(phantom.labels, scene, name="PlanningLabels")
    anatomy = anatomy_from_label_map(phantom.labels)
    with no_global_scene():
        result = logic.process(labelmap, createSurface=False, scene=scene)
    output = result.outputSegmentation
    line = next(node for node in result.screws if node.GetName() == "L4 left")
    model = line.GetNodeReference("LumbarSpine.ScrewModel")
    entry, tip = (np.array(line.GetNthControlPointPositionWorld(i)) for i in range(2))
    direction = (tip - entry) / np.linalg.norm(tip - entry)

    # a wider, longer screw along the same trajectory: graded by the library, the model follows
    with no_global_scene():
        message = logic.resizeScrew(line, labelmap, 7.5, 55.0)
    row = next(r for r in logic.screwRows(output) if r["name"] == "L4 left")
    truth = evaluate_screw(anatomy, entry, entry + 55.0 * direction, 7.5, vertebra="L4")
    assert (row["diameter_mm"], row["length_mm"]) == (7.5, 55.0)
    assert row["breach_mm"] == pytest.approx(truth["breach_mm"]) and row["grade"] == truth["gertzbein_robbins"]
    assert truth["breach_mm"] > 0 and truth["gertzbein_robbins"] in message
    np.testing.assert_allclose(line.GetNthControlPointPositionWorld(0), entry, atol=1e-6)
    bounds = np.zeros(6)
    model.GetPolyData().GetBounds(bounds)
    assert np.linalg.norm(bounds[1::2] - bounds[::2]) > 55.0  # the model is the longer screw
    with pytest.raises(ValueError, match="diameter"):
        logic.resizeScrew(line, labelmap, 40.0, 45.0)

    # re-plan: the planner's own screw again, then one with a chosen size, then a size it refuses
    with no_global_scene():
        job = logic.replanJob(line, labelmap)
        planned = module.run_job(job)
        logic.applyReplan(line, planned, labelmap)
    again = replan_screw(anatomy, "L4", "left")
    np.testing.assert_allclose(line.GetNthControlPointPositionWorld(1), again.tip_ras, atol=1e-3)
    row = next(r for r in logic.screwRows(output) if r["name"] == "L4 left")
    assert (row["diameter_mm"], row["grade"]) == (again.diameter_mm, again.evaluation["gertzbein_robbins"])
    with no_global_scene():
        sized = module.run_job(logic.replanJob(line, labelmap, 5.0, 30.0))
        logic.applyReplan(line, sized, labelmap)
    row = next(r for r in logic.screwRows(output) if r["name"] == "L4 left")
    assert (row["diameter_mm"], row["length_mm"]) == (5.0, 30.0)
    before = np.array(line.GetNthControlPointPositionWorld(1))
    refused = module.run_job(logic.replanJob(line, labelmap, None, 70.0))
    with pytest.raises(ValueError, match="not re-planned: only .* chosen screw"):
        logic.applyReplan(line, refused, labelmap)
    np.testing.assert_allclose(line.GetNthControlPointPositionWorld(1), before)  # a refusal changes nothing

    # hide / show: line and model
    logic.setScrewVisible(line, False)
    assert not line.GetDisplayNode().GetVisibility() and not model.GetDisplayNode().GetVisibility()
    assert not next(r for r in logic.screwRows(output) if r["name"] == "L4 left")["visible"]
    logic.setScrewVisible(line, True)
    assert line.GetDisplayNode().GetVisibility() and model.GetDisplayNode().GetVisibility()

    # moving the tip (as a drag in a view does) re-evaluates the screw through the observers
    seen = []
    with no_global_scene():
        assert logic.observeScrews(output, labelmap, 2.0, lambda node, ev: seen.append((node.GetName(), ev))) == 12
        start = np.array(line.GetNthControlPointPositionWorld(0))
        moved = start + 40.0 * np.array([0.0, 0.0, 1.0])  # straight up: out of the pedicle
        line.SetNthControlPointPositionWorld(1, *moved)
    assert seen and seen[-1][0] == "L4 left"
    truth = evaluate_screw(anatomy, start, moved, 5.0, vertebra="L4")
    row = next(r for r in logic.screwRows(output) if r["name"] == "L4 left")
    assert row["breach_mm"] == pytest.approx(truth["breach_mm"]) and row["grade"] == truth["gertzbein_robbins"] != "A"
    logic.stopObserving()
    count = len(seen)
    line.SetNthControlPointPositionWorld(1, *start + 30.0 * np.array([0.0, 1.0, 0.0]))
    assert len(seen) == count  # no observer left


def _points(line):
    return tuple(np.array(line.GetNthControlPointPositionWorld(i)) for i in range(2))


def _re_evaluated_in_place(line, seen):
    """Move the tip 1 mm along the screw and back, as a drag does: the observers grade it where it was."""
    entry, tip = _points(line)
    line.SetNthControlPointPositionWorld(1, *(tip + (tip - entry) / np.linalg.norm(tip - entry)))
    line.SetNthControlPointPositionWorld(1, *tip)
    np.testing.assert_allclose(_points(line)[1], tip, atol=1e-9)
    return seen[-1][1]


@pytest.fixture(scope="module")
def coarse_ct_phantom():
    """The phantom on a 3 mm grid with its CT: the plan's bone is the label refined by the HU (issue #9)."""
    return generate_phantom(PhantomSpec(spacing=(3.0, 3.0, 3.0)))


def test_planning_logic_edits_grade_on_the_plans_refined_bone(
    load_module, slicer_scene, no_global_scene, coarse_ct_phantom
):
    """A 3 mm CT with its label map: the panel's plan is on the bone refined by the HU, and every later evaluation
    (moving an end point, resizing, re-planning one screw) uses that same bone, not the coarse labels alone.

    The 3 mm labels alone grade some of the planned screws B (they graze the blocky label: measured when written,
    L1 left 0.07 mm, L4 right 0.25 mm); the panel must keep them A, as planned. A 4 mm lateral move of the entry
    still breaches (grade C or worse) on the refined bone for L1-L4 (L5's wider pedicle: grade B)."""
    from lumbarspine.planning import PlanningMaps, evaluate_screw
    from lumbarspine.planning.screw_edit import anatomy_from_label_map

    phantom = coarse_ct_phantom
    module = load_module("SpinePlanning")
    scene = slicer_scene.scene
    logic = module.SpinePlanningLogic()
    image = volume_to_node(phantom.image, scene, name="CoarseCT")
    labelmap = volume_to_node(phantom.labels, scene, name="CoarseLabels")
    with no_global_scene():
        result = logic.process(image, labelmap, createSurface=False, scene=scene)
    output = result.outputSegmentation
    assert logic.planLabelmap(output) is labelmap and logic.planImage(output) is image
    assert any("refined by the CT's HU" in w for w in result.warnings)
    anatomy = anatomy_from_label_map(phantom.labels)
    refined, labels_only = PlanningMaps(anatomy, image=phantom.image), PlanningMaps(anatomy)
    assert refined.refined and len(result.screws) == 12
    rows = {r["name"]: r for r in logic.screwRows(output)}
    differing = []
    for line in result.screws:
        entry, tip = _points(line)
        row = rows[line.GetName()]
        vertebra = row["vertebra"]
        on_bone = evaluate_screw(anatomy, entry, tip, row["diameter_mm"], vertebra=vertebra, maps=refined)
        on_labels = evaluate_screw(anatomy, entry, tip, row["diameter_mm"], vertebra=vertebra, maps=labels_only)
        assert row["grade"] == on_bone["gertzbein_robbins"] == "A", row
        assert row["breach_mm"] == pytest.approx(on_bone["breach_mm"], abs=0.005)
        if on_labels["breach_mm"] != on_bone["breach_mm"]:
            differing.append((line, on_bone, on_labels))
    assert differing, "the 3 mm labels alone grade every planned screw as the refined bone does: no proof here"

    # moved in place through the observers (the panel's drag), then resized to its own size: as planned
    seen = []
    with no_global_scene():
        assert logic.observeScrews(output, labelmap, 2.0, lambda node, ev: seen.append((node, ev)), image) == 12
        for line, on_bone, on_labels in differing:
            evaluation = _re_evaluated_in_place(line, seen)
            assert evaluation["breach_mm"] == on_bone["breach_mm"] != on_labels["breach_mm"], line.GetName()
            assert evaluation["gertzbein_robbins"] == "A" and line.GetAttribute("LumbarSpine.GertzbeinRobbins") == "A"
            assert evaluation["bone"] == "label refined by the CT's HU"
    logic.stopObserving()
    line, on_bone, on_labels = differing[0]
    row = next(r for r in logic.screwRows(output) if r["name"] == line.GetName())
    size = (row["diameter_mm"], row["length_mm"])
    with no_global_scene():
        message = logic.resizeScrew(line, labelmap, *size, 2.0, logic.planImage(output))
    assert f"grade {on_bone['gertzbein_robbins']}" in message
    # the same call without the image grades on the labels alone: the image is what keeps the plan's grade
    with no_global_scene():
        message = logic.resizeScrew(line, labelmap, *size, 2.0)
    assert f"grade {on_labels['gertzbein_robbins']}" in message and on_labels["gertzbein_robbins"] != "A"
    with no_global_scene():
        logic.resizeScrew(line, labelmap, *size, 2.0, image)

    # re-plan one screw (the worker's job, run here): the plan's own screw again, graded as planned
    with no_global_scene():
        job = logic.replanJob(line, labelmap, None, None, 2.0, logic.planImage(output))
    assert job.kwargs["image"].same_geometry(phantom.image)
    planned_entry, planned_tip = _points(line)
    again = module.run_job(job)
    assert "reason" not in again, again
    np.testing.assert_allclose(again["entry_ras"], planned_entry, atol=1e-3)
    np.testing.assert_allclose(again["tip_ras"], planned_tip, atol=1e-3)
    assert (again["diameter_mm"], again["gertzbein_robbins"]) == (row["diameter_mm"], "A")
    with no_global_scene():
        logic.applyReplan(line, again, labelmap, 2.0, image)
    assert line.GetAttribute("LumbarSpine.GertzbeinRobbins") == "A"

    # a 4 mm lateral move of the entry (the phantom's true transverse direction) breaches the refined bone
    seen = []
    with no_global_scene():
        logic.observeScrews(output, labelmap, 2.0, lambda node, ev: seen.append((node, ev)), image)
        for line in result.screws:
            vertebra, side = line.GetAttribute("LumbarSpine.Vertebra"), line.GetAttribute("LumbarSpine.Side")
            if vertebra not in ("L1", "L2", "L3", "L4"):
                continue
            assert line.GetAttribute("LumbarSpine.GertzbeinRobbins") == "A"
            pedicle = phantom.truth["vertebrae"][vertebra]["pedicles"][side]
            entry, _tip = _points(line)
            line.SetNthControlPointPositionWorld(0, *(entry + 4.0 * np.asarray(pedicle["transverse_direction_ras"])))
            assert seen[-1][0] is line and seen[-1][1]["gertzbein_robbins"] in ("C", "D", "E"), seen[-1][1]
    logic.stopObserving()

    # planned from the label map alone: no image is kept, the edits grade on the labels
    with no_global_scene():
        alone = logic.process(labelmap, createSurface=False, scene=scene)
    assert logic.planImage(alone.outputSegmentation) is None


@pytest.mark.data
def test_planning_logic_real_3mm_ct_edits_keep_the_plans_grades(
    load_module, slicer_scene, no_global_scene, shared_data
):
    """The real 3 mm CT, segmented automatically and planned in the panel's Logic (bone refined by the HU): each
    planned screw (grade A) keeps its breach and grade when the observers re-evaluate it in place and when it is
    resized to its own size, and re-planning one screw gives the plan's screw again."""
    from lumbarspine.io import read_volume

    module = load_module("SpinePlanning")
    scene = slicer_scene.scene
    logic = module.SpinePlanningLogic()
    image = volume_to_node(read_volume(shared_data / "totalseg_example_ct.nii.gz"), scene, name="RealCT")
    with no_global_scene():
        result = logic.process(image, None, createSurface=False, scene=scene)
    output = result.outputSegmentation
    labels_node, plan_image = logic.planLabelmap(output), logic.planImage(output)
    assert plan_image is image and labels_node is not None
    assert len(result.screws) >= 11, result.refused  # as test_planning_study (L1 left refused)
    planned = {r["name"]: r for r in logic.screwRows(output)}
    assert all(r["grade"] == "A" for r in planned.values()), planned
    seen = []
    with no_global_scene():
        logic.observeScrews(output, labels_node, 2.0, lambda node, ev: seen.append((node, ev)), plan_image)
        for line in result.screws:
            evaluation = _re_evaluated_in_place(line, seen)
            row = planned[line.GetName()]
            assert (evaluation["breach_mm"], evaluation["gertzbein_robbins"]) == (row["breach_mm"], "A"), row
    logic.stopObserving()
    for line in result.screws:
        row = planned[line.GetName()]
        with no_global_scene():
            logic.resizeScrew(line, labels_node, row["diameter_mm"], row["length_mm"], 2.0, plan_image)
        after = next(r for r in logic.screwRows(output) if r["name"] == line.GetName())
        assert (after["breach_mm"], after["grade"]) == (row["breach_mm"], "A"), (row, after)
    line = result.screws[0]
    entry, tip = _points(line)
    with no_global_scene():
        again = module.run_job(logic.replanJob(line, labels_node, None, None, 2.0, plan_image))
    assert "reason" not in again, again
    np.testing.assert_allclose(again["entry_ras"], entry, atol=1e-3)
    np.testing.assert_allclose(again["tip_ras"], tip, atol=1e-3)
    row = planned[line.GetName()]
    assert (again["diameter_mm"], again["breach_mm"], again["gertzbein_robbins"]) == (
        row["diameter_mm"],
        row["breach_mm"],
        "A",
    )


def test_planning_logic_cancel_and_bad_input(load_module, slicer_scene, no_global_scene, phantom):
    module = load_module("SpinePlanning")
    scene = slicer_scene.scene
    logic = module.SpinePlanningLogic()
    labelmap = volume_to_node(phantom.labels, scene, name="PlanningLabels")
    segmentations = _count(scene, "vtkMRMLSegmentationNode")

    def run(node, cancel=None, **kwargs):
        recorder = _Recorder()
        with no_global_scene():
            return logic.process(
                node, progress=recorder.progress, cancel=cancel or recorder.cancel, scene=scene, **kwargs
            )

    with pytest.raises(module.OperationCancelled):
        run(labelmap, cancel=lambda: True)
    mid = _Recorder(cancel_after=2)
    with no_global_scene(), pytest.raises(module.OperationCancelled):
        logic.process(labelmap, progress=mid.progress, cancel=mid.cancel, scene=scene)
    assert mid.fractions == [0.05, 0.15]
    assert _count(scene, "vtkMRMLSegmentationNode") == segmentations

    with pytest.raises(ValueError, match="No input image"):
        run(None)
    with pytest.raises(ValueError, match="no image data"):
        run(scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "Empty"))
    for margin in (-1.0, module.MAX_MARGIN_MM + 1.0, float("nan"), "wide"):
        with pytest.raises(ValueError, match="margin"):
            run(labelmap, marginMm=margin)
    bones = phantom.labels.with_array(np.where(np.isin(phantom.labels.array, [1, 2]), 0, phantom.labels.array))
    with pytest.raises(ValueError, match="No neural elements"):
        run(volume_to_node(bones.with_array(bones.array.astype(np.uint8)), scene, name="Bones"))
    with pytest.raises(ValueError, match="not a segmentation"):
        run(labelmap, outputSegmentation=labelmap)
    assert _count(scene, "vtkMRMLSegmentationNode") == segmentations


def test_logic_without_a_scene_argument_uses_the_input_nodes_scene(load_module, slicer_scene, no_global_scene, phantom):
    """The console examples in the Logic docstrings call process(node) without scene=: that must not need
    slicer.mrmlScene either."""
    scene = slicer_scene.scene
    labelmap = volume_to_node(phantom.labels, scene, name="Labels")
    image = volume_to_node(phantom.image, scene, name="Image")
    filtering = load_module("SpineFiltering").SpineFilteringLogic()
    stenosis = load_module("SpineStenosis").SpineStenosisLogic()
    planning = load_module("SpinePlanning").SpinePlanningLogic()
    with no_global_scene():
        assert filtering.process(image, operation="gaussian", backend="numpy").outputVolume.GetScene() is scene
        assert stenosis.process(image, labelmap).outputTable.GetScene() is scene
        assert planning.process(labelmap, createSurface=False).outputSegmentation.GetScene() is scene


def test_standins_do_not_leak():
    """Runs last: the stand-ins and the guarded slicer class are gone after the tests above."""
    import slicer

    for name in ("qt", "ctk", "slicer.ScriptedLoadableModule", "slicer.parameterNodeWrapper"):
        assert getattr(sys.modules.get(name), "__file__", "real") is not None, f"the {name} stand-in leaked"
    assert not any(name.startswith("_lumbarspine_module_under_test_") for name in sys.modules)
    assert not hasattr(slicer, "mrmlScene")
    assert type(slicer) is types.ModuleType
