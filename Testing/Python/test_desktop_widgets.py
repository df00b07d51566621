"""The three module Widgets, built as far as the headless slicer-core harness allows.

slicer-core has no Qt, no ``slicer.app`` and no ``parameterNodeWrapper``: the GUI base classes are the
stand-ins of ``test_module_logic.py`` (fixtures imported from there), the ``.ui`` widgets are plain
attribute holders (``_Ui``) and the parameter node is a namespace with the same fields holding real
nodes. Everything else is real: the Widget classes and the helper's panel base, the Logic, the worker
process, the run state machine, the MRML scene and its nodes.
"""

from __future__ import annotations

import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("slicer", reason="slicer-core is not installed: pip install slicer-core==5.13.31053.0")

import test_module_logic  # noqa: E402

from lumbarspine.filters import apply_filter  # noqa: E402
from lumbarspine.phantom import PhantomSpec, generate_phantom  # noqa: E402
from lumbarspine.slicer_nodes import rows_from_table_node, volume_from_node, volume_to_node  # noqa: E402
from SpineModulesLib.controller import RunState  # noqa: E402

gui_standins = test_module_logic.gui_standins  # the GUI stand-ins (fixtures) of test_module_logic.py
load_module = test_module_logic.load_module


class _Control:
    """What a panel reads and writes on a Qt widget: ``enabled``, ``text``, ``toolTip``, ``value``, visibility."""

    def __init__(self, **values):
        self.enabled, self.text, self.toolTip, self.value, self.visible = True, "", "", 0, True
        self.__dict__.update(values)

    def setVisible(self, visible):
        self.visible = bool(visible)


class _Combo(_Control):
    """A QComboBox holding (title, data) items."""

    def __init__(self, items, currentIndex=0):
        super().__init__(currentIndex=currentIndex)
        self.items = list(items)

    def itemData(self, index):
        return self.items[index][1]

    def findData(self, data):
        return next((i for i, (_, d) in enumerate(self.items) if d == data), -1)


class _Check(_Control):
    """A QCheckBox: ``checked`` and ``blockSignals``."""

    def __init__(self, checked=True):
        super().__init__(checked=checked)

    def blockSignals(self, blocked):
        return False


class _Item:
    """A QTableWidgetItem: its text and flags."""

    def __init__(self, text):
        self.text = text

    def setFlags(self, flags):
        self.flags = flags


class _Table(_Control):
    """A QTableWidget as ``fillTableWidget`` fills it: headers and cell texts."""

    def __init__(self):
        super().__init__()
        self.headers, self.cells, self.rowCount = [], {}, 0

    def clear(self):
        self.cells = {}

    def setColumnCount(self, count):
        self.columnCount = count

    def setHorizontalHeaderLabels(self, labels):
        self.headers = list(labels)

    def setRowCount(self, count):
        self.rowCount = count

    def setItem(self, row, column, item):
        self.cells[(row, column)] = item.text

    def resizeColumnsToContents(self):
        pass

    def column(self, title):
        index = self.headers.index(title)
        return [self.cells[(row, index)] for row in range(self.rowCount)]


@pytest.fixture
def qt_table_items(gui_standins):
    """The two Qt names ``fillTableWidget`` uses, on the ``qt`` stand-in."""
    qt = sys.modules["qt"]
    gui_standins.setattr(qt, "QTableWidgetItem", _Item, raising=False)
    gui_standins.setattr(qt, "Qt", types.SimpleNamespace(ItemIsSelectable=1, ItemIsEnabled=32), raising=False)


def _ui(*names, **special):
    return types.SimpleNamespace(**{name: _Control() for name in names}, **special)


COMMON = ("applyButton", "cancelButton", "progressBar", "statusLabel")


@pytest.fixture
def app_scene(slicer_scene, monkeypatch):
    """The scene the panels see as ``slicer.mrmlScene`` (in Slicer: the application's scene)."""
    import slicer

    monkeypatch.setattr(slicer, "mrmlScene", slicer_scene.scene, raising=False)
    return slicer_scene.scene


@pytest.fixture(scope="module")
def phantom():
    return generate_phantom(PhantomSpec(stenosis={"L4-L5": 60.0}, spacing=(2.0, 2.0, 2.0), noise=20.0))


def _build(module, name, ui, parameters):
    widget = getattr(module, f"{name}Widget")(None)
    assert isinstance(widget, sys.modules["SpineModulesLib.widget"].SpineModuleWidget)
    assert widget.controller.state == RunState.IDLE
    widget.ui = ui
    widget.logic = widget.createLogic()
    widget._parameterNode = parameters
    return widget


def _run(widget, timeout=120.0):
    """Apply as the button does (without the wait cursor, which needs slicer.app) and poll as the timer does;
    returns what the panel looked like while running."""
    widget.checkCanApply()
    assert widget.ui.applyButton.enabled, widget.ui.applyButton.toolTip
    widget.startRun()
    during = {name: control.enabled for name, control in vars(widget.ui).items() if isinstance(control, _Control)}
    deadline = time.monotonic() + timeout
    while widget.pollRun():
        assert time.monotonic() < deadline, "the run did not end"
        time.sleep(0.02)
    return during


STENOSIS_UI = (
    "inputSelector",
    "segmentationSelector",
    "axialSelector",
    "sacProbabilitySelector",
    "outputTableSelector",
    "resultsLabel",
)


def _stenosis_parameters(**values):
    fields = dict(
        inputVolume=None,
        inputSegmentation=None,
        axialVolume=None,
        sacProbabilityVolume=None,
        areaModerateMm2=100.0,
        areaSevereMm2=75.0,
        apModerateMm=13.0,
        apSevereMm=10.0,
        outputTable=None,
    )
    fields.update(values)
    return types.SimpleNamespace(**fields)


def test_stenosis_widget_runs_in_a_worker_fills_the_tables_and_follows_a_click(
    load_module, app_scene, phantom, qt_table_items
):
    import slicer

    module = load_module("SpineStenosis")
    image = volume_to_node(phantom.image, app_scene, name="Image")
    labelmap = volume_to_node(phantom.labels, app_scene, name="Labels")
    parameters = _stenosis_parameters(inputVolume=image, inputSegmentation=labelmap)
    ui = _ui(*COMMON, *STENOSIS_UI, levelsTable=_Table())
    widget = _build(module, "SpineStenosis", ui, parameters)

    during = _run(widget)
    assert not any(during[name] for name in ("inputSelector", "segmentationSelector", "axialSelector", "applyButton"))
    assert during["cancelButton"] and not during["outputTableSelector"]
    assert widget.controller.state == RunState.SUCCEEDED, widget.controller.message
    table = parameters.outputTable
    assert table is not None and table.GetScene() is app_scene
    rows = {row["level"]: row for row in rows_from_table_node(table)}
    assert rows["L4-L5"]["grade"] == "Severe" and len(rows) == 5
    assert "L4-L5" in ui.resultsLabel.text and "5 level(s) graded" in ui.statusLabel.text
    assert ui.inputSelector.enabled and ui.applyButton.enabled and not ui.cancelButton.enabled
    assert not ui.progressBar.visible
    # the panel's level table shows the same rows
    assert ui.levelsTable.column("Level") == list(rows) and ui.levelsTable.column("Grade")[3] == "Severe"
    assert ui.levelsTable.column("Area (mm²)")[3] == f"{rows['L4-L5']['dural_sac_area_mm2']:.0f}"

    # a click on L4-L5 puts the slice views on its plane
    layout = slicer.vtkMRMLLayoutLogic()
    layout.SetMRMLScene(app_scene)
    layout.SetMRMLScene(None)
    red = next(
        n for n in (app_scene.GetNthNodeByClass(i, "vtkMRMLSliceNode") for i in range(3)) if n.GetLayoutName() == "Red"
    )
    widget.onLevelClicked(3, 0)
    assert "L4-L5" in ui.statusLabel.text
    matrix = red.GetSliceToRAS()
    centre = [matrix.GetElement(r, 3) for r in range(3)]
    expected = next(n for n in _named(app_scene, "vtkMRMLMarkupsClosedCurveNode") if "L4-L5" in n.GetName())
    points = np.array([expected.GetNthControlPointPositionWorld(i) for i in range(expected.GetNumberOfControlPoints())])
    normal = np.array([matrix.GetElement(r, 2) for r in range(3)])
    assert np.abs((points - centre) @ normal).max() < 1e-3  # the measured outline lies in the Red view's plane
    widget.onLevelClicked(9, 0)
    assert "not in" in ui.statusLabel.text  # a row that is not there: said in the status, nothing moves

    # a second run with another severe threshold refills the same table; the panel's table follows
    tables = app_scene.GetNumberOfNodesByClass("vtkMRMLTableNode")
    parameters.areaSevereMm2 = 50.0
    _run(widget)
    assert parameters.outputTable is table and app_scene.GetNumberOfNodesByClass("vtkMRMLTableNode") == tables
    assert ui.levelsTable.column("Grade")[3] == "Moderate"


def _named(scene, class_name):
    return [scene.GetNthNodeByClass(i, class_name) for i in range(scene.GetNumberOfNodesByClass(class_name))]


PLANNING_UI = (
    "inputSelector",
    "segmentationSelector",
    "gradesTableSelector",
    "outputSegmentationSelector",
    "resizeScrewButton",
    "replanScrewButton",
    "refusedLabel",
    "exportButton",
)


def test_planning_widget_cancel_on_scene_close_and_a_successful_run(
    load_module, app_scene, phantom, qt_table_items, tmp_path
):
    module = load_module("SpinePlanning")
    image = volume_to_node(phantom.image, app_scene, name="CT")
    labelmap = volume_to_node(phantom.labels, app_scene, name="Labels")
    parameters = types.SimpleNamespace(
        inputVolume=image,
        inputLabelmap=labelmap,
        gradesTable=None,
        gradesReport=Path("."),  # an empty path widget
        decompressL1L2=False,
        decompressL2L3=False,
        decompressL3L4=False,
        decompressL4L5=True,
        decompressL5S1=False,
        marginMm=3.0,
        planScrews=True,
        outputSegmentation=None,
        show3D=False,
        screwDiameterMm=6.0,
        screwLengthMm=45.0,
        replanWithSize=False,
        exportCoordinates="LPS",
        exportDirectory=Path("."),
    )
    ui = _ui(*COMMON, *PLANNING_UI, screwTable=_Table(), decompressionTable=_Table(), screwVisibleCheckBox=_Check())
    widget = _build(module, "SpinePlanning", ui, parameters)

    widget.startRun()
    assert widget.controller.running and not ui.inputSelector.enabled
    widget.onSceneStartClose()  # what the StartCloseEvent observer calls
    assert widget.controller.state == RunState.CANCELLED and widget._parameterNode is None
    assert app_scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 0
    assert ui.inputSelector.enabled and "scene was closed" in ui.statusLabel.text

    widget._parameterNode = parameters
    _run(widget)
    assert widget.controller.state == RunState.SUCCEEDED, widget.controller.message
    segmentation = parameters.outputSegmentation
    names = {segmentation.GetSegmentation().GetNthSegment(i).GetName() for i in range(2)}
    assert names == {"No-go zone", "Decompression L4-L5"}
    assert "3.0 mm margin" in ui.statusLabel.text and "12 screw(s)" in ui.statusLabel.text
    assert "1 decompression(s)" in ui.statusLabel.text
    assert ui.decompressionTable.column("Level") == ["L4-L5"] and ui.exportButton.enabled
    assert float(ui.decompressionTable.column("Bone (cm³)")[0]) > 0
    table = ui.screwTable
    assert (
        table.rowCount == 12 and table.column("Vertebra")[:2] == ["L1", "L1"] and table.column("Vertebra")[-1] == "S1"
    )
    assert ui.refusedLabel.text == ""  # every side of L1-S1 takes a screw on the phantom
    assert not ui.resizeScrewButton.enabled  # nothing selected yet
    assert widget._planImage() is image  # the 2 mm CT refined the plan's bone: every screw edit grades on it

    # select L4 left: its size goes into the boxes, the buttons wake up
    row = table.column("Vertebra").index("L4")
    assert table.column("Side")[row] == "left"
    widget.onScrewClicked(row, 0)
    line = widget.selectedScrew()
    assert line.GetName() == "L4 left" and ui.resizeScrewButton.enabled and ui.replanScrewButton.enabled
    planned = (parameters.screwDiameterMm, parameters.screwLengthMm)
    planned_grade = table.column("Grade")[row]
    assert f"{planned[0]:g}" == table.column("Ø (mm)")[row] and f"{planned[1]:.0f}" == table.column("Length (mm)")[row]

    # resize in place, hide, then re-plan in the worker: the planner's screw comes back
    parameters.screwDiameterMm, parameters.screwLengthMm = 5.0, 30.0
    widget.onResizeScrew()
    assert (table.column("Ø (mm)")[row], table.column("Length (mm)")[row]) == ("5", "30")
    widget.onScrewVisibility(False)
    assert not line.GetDisplayNode().GetVisibility() and "hidden" in ui.statusLabel.text
    widget.onReplanScrew()
    assert widget.controller.running and not ui.replanScrewButton.enabled
    deadline = time.monotonic() + 120.0
    while widget.pollRun():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert widget.controller.state == RunState.SUCCEEDED, widget.controller.message
    assert (table.column("Ø (mm)")[row], table.column("Length (mm)")[row]) == (f"{planned[0]:g}", f"{planned[1]:.0f}")
    assert table.column("Grade")[row] == planned_grade  # re-planned and re-graded on the plan's bone
    assert ui.replanScrewButton.enabled

    # dragging the tip re-evaluates it and refreshes the table (the observers the run installed)
    entry = np.array(line.GetNthControlPointPositionWorld(0))
    line.SetNthControlPointPositionWorld(1, *(entry + [0.0, 0.0, 40.0]))
    assert table.column("Length (mm)")[row] == "40" and table.column("Grade")[row] != "A"
    assert "L4 left: breach" in ui.statusLabel.text

    # export: without a folder the status says so (no dialog); with one, the files in LPS
    widget.onExport()
    assert "No export folder" in ui.statusLabel.text
    parameters.exportDirectory = tmp_path
    widget.onExport()
    assert "exported" in ui.statusLabel.text and (tmp_path / "exports.json").is_file()
    assert "LPS" in (tmp_path / "screw_L4_left.stl").read_bytes()[:80].decode("ascii")
    widget.onView("posterior")  # no 3D view camera in this scene: said in the status
    assert "no 3D view camera" in ui.statusLabel.text
    camera = app_scene.AddNewNodeByClass("vtkMRMLCameraNode")
    widget.onView("superior")
    assert np.array(camera.GetPosition())[2] > np.array(camera.GetFocalPoint())[2]
    widget.cleanup()
    assert widget.logic._observations == []


def test_filtering_widget_runs_the_chosen_filter_and_cleanup_cancels(load_module, app_scene, phantom):
    module = load_module("SpineFiltering")
    image = volume_to_node(phantom.image, app_scene, name="Image")
    before = volume_from_node(image).array.copy()
    parameters = types.SimpleNamespace(
        inputVolume=image, outputVolume=None, operation="", backend="numpy", filterParameters="{}"
    )
    operations = module.SpineFilteringLogic.availableOperations()
    combo = _Combo([(title, key) for key, title in operations])
    combo.currentIndex = combo.findData("filter:gaussian")
    ui = _ui(*COMMON, "inputSelector", "outputSelector", operationComboBox=combo)
    widget = _build(module, "SpineFiltering", ui, parameters)
    assert widget.notReadyReason() == ""

    during = _run(widget)
    assert not during["inputSelector"] and not during["outputSelector"]
    assert widget.controller.state == RunState.SUCCEEDED, widget.controller.message
    output = parameters.outputVolume
    assert output is not None and output.GetID() != image.GetID()
    expected = apply_filter(volume_from_node(image), "gaussian", backend="numpy").volume.array
    np.testing.assert_array_equal(volume_from_node(output).array, expected)
    assert "backend numpy" in ui.statusLabel.text
    np.testing.assert_array_equal(volume_from_node(image).array, before)

    # closing the module mid-run (cleanup) cancels: the output keeps its values, no node is added
    combo.currentIndex = combo.findData("filter:curvature_diffusion")
    widget._parameterWidgets = {}
    nodes = app_scene.GetNumberOfNodes()
    widget.addObserver(app_scene, app_scene.StartCloseEvent, widget.onSceneStartClose)
    widget.startRun()
    assert widget.controller.running
    widget.cleanup()
    assert widget.controller.state == RunState.CANCELLED and widget.Observations == []
    assert app_scene.GetNumberOfNodes() == nodes
    np.testing.assert_array_equal(volume_from_node(output).array, expected)


def test_default_input_is_the_first_scalar_volume_with_an_image(load_module, app_scene, phantom):
    from SpineModulesLib.widget import firstInputNode

    load_module("SpineFiltering")
    volume_to_node(phantom.labels, app_scene, name="Labels")  # a label map: skipped for filtering
    app_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "Empty")  # no image: skipped
    image = volume_to_node(phantom.image, app_scene, name="Image")
    assert firstInputNode(app_scene, "vtkMRMLScalarVolumeNode", "vtkMRMLLabelMapVolumeNode") is image
    labels = firstInputNode(app_scene, "vtkMRMLLabelMapVolumeNode")
    assert labels is not None and labels.GetName() == "Labels"


def test_apply_is_disabled_without_an_input(load_module, app_scene):
    module = load_module("SpineStenosis")
    parameters = _stenosis_parameters()
    ui = _ui(*COMMON, *STENOSIS_UI, levelsTable=_Table())
    widget = _build(module, "SpineStenosis", ui, parameters)
    widget.checkCanApply()
    assert not widget.ui.applyButton.enabled and "input image" in widget.ui.applyButton.toolTip
    with pytest.raises(ValueError, match="No input image"):
        widget.startRun()
    assert widget.controller.state == RunState.IDLE


def test_developer_reload_picks_up_library_edits(tmp_path):
    """``reload_packages`` (called by the widgets' Reload) drops the loaded library so an edited file is used."""
    import shutil

    source = Path(__file__).resolve().parents[2] / "LumbarSpine"
    copy = tmp_path / "src"
    for package in ("lumbarspine", "SpineModulesLib"):
        shutil.copytree(source / package, copy / package, ignore=shutil.ignore_patterns("__pycache__"))
    script = f"""
import sys
sys.path.insert(0, {str(copy)!r})
import lumbarspine.progress as before
from SpineModulesLib.devtools import reload_packages
path = before.__file__
with open(path, "a") as f:
    f.write("\\nRELOADED_MARKER = 42\\n")
dropped = reload_packages()
import lumbarspine.progress as after
assert "lumbarspine.progress" in dropped and after is not before
print(after.RELOADED_MARKER)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42"
