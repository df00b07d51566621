"""Lumbar Stenosis Grading: dural sac area and AP diameter per disc level, graded, in a table.

All computation lives in the Qt-free ``lumbarspine`` library (``lumbarspine.stenosis``); this module
wires it to the Slicer GUI and MRML scene.
"""

import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import slicer
import vtk
from slicer import vtkMRMLLabelMapVolumeNode, vtkMRMLTableNode
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

# Make the "lumbarspine" library importable when the module is loaded from the source tree
# (LumbarSpine/SpineStenosis/SpineStenosis.py -> LumbarSpine/lumbarspine). In an installed
# extension the package sits next to the module files and is importable already.
try:
    import lumbarspine  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DOCUMENTATION_URL = "https://github.com/lumbarspine/SlicerLumbarSpine#readme"


#
# SpineStenosis
#


class SpineStenosis(ScriptedLoadableModule):
    """Module description shown in Slicer's module panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Lumbar Stenosis Grading"
        self.parent.categories = ["Spine"]
        self.parent.dependencies = []
        self.parent.contributors = ["LumbarSpine contributors"]
        self.parent.helpText = f"""
Measures the dural sac cross-sectional area (perpendicular to the canal) and the antero-posterior
canal diameter at each lumbar disc level of a label map in the TotalSpineSeg convention (2 spinal
canal / dural sac, 41-45 L1-L5, 50 sacrum, 91-100 discs), and estimates a central canal stenosis grade
from published cut-offs (dural sac area &lt; 100 mm2 relative, &lt; 75 mm2 absolute stenosis).
The grades are estimates from measurements, not a radiologist's reading.
See the <a href="{DOCUMENTATION_URL}">LumbarSpine documentation</a>.
"""
        self.parent.acknowledgementText = """
Developed as part of the LumbarSpine extension. Module structure after the 3D Slicer scripted module
template by Jean-Christophe Fillion-Robin (Kitware), Andras Lasso (PerkLab) and Steve Pieper (Isomics).
Label convention after the TotalSpineSeg project.
"""


#
# SpineStenosisParameterNode
#


@parameterNodeWrapper
class SpineStenosisParameterNode:
    """Parameters of the module, saved with the scene.

    inputLabelmap - spine label map (TotalSpineSeg convention).
    outputTable - table receiving one row per disc level (None: a new table is created).
    """

    inputLabelmap: vtkMRMLLabelMapVolumeNode
    outputTable: vtkMRMLTableNode


class OperationCancelled(RuntimeError):
    """Raised by the logic when its ``cancel()`` callback returns True."""


@dataclass
class StenosisResult:
    """What :meth:`SpineStenosisLogic.process` produced."""

    outputTable: Any
    rows: list
    seconds: float


#
# SpineStenosisWidget
#


class SpineStenosisWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: input label map, output table, Apply/Cancel, summary of the grades."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._cancelRequested = False
        self._running = False

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)

        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SpineStenosis.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        # The .ui connects the top-level qMRMLWidget's mrmlSceneChanged(vtkMRMLScene*) to each selector.
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = SpineStenosisLogic()

        self.ui.progressBar.setVisible(False)
        self.ui.cancelButton.enabled = False

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputLabelmap:
            firstLabelmap = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLLabelMapVolumeNode")
            if firstLabelmap:
                self._parameterNode.inputLabelmap = firstLabelmap

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        ready = bool(self._parameterNode and self._parameterNode.inputLabelmap)
        self.ui.applyButton.enabled = ready and not self._running
        self.ui.applyButton.toolTip = "Measure and grade every disc level." if ready else "Select an input label map."

    def _setRunning(self, running: bool) -> None:
        self._running = running
        self.ui.cancelButton.enabled = running
        self.ui.progressBar.setVisible(running)
        self.ui.progressBar.value = 0
        self._checkCanApply()

    def _onProgress(self, fraction: float, message: str = "") -> None:
        self.ui.progressBar.value = int(round(100.0 * min(max(float(fraction), 0.0), 1.0)))
        if message:
            self.ui.statusLabel.text = message
        slicer.app.processEvents()  # keep the GUI (and the Cancel button) responsive

    def _isCancelRequested(self) -> bool:
        return self._cancelRequested

    def onCancelButton(self) -> None:
        self._cancelRequested = True
        self.ui.statusLabel.text = "Cancelling..."

    def onApplyButton(self) -> None:
        """Grade the input label map and show the table."""
        self._cancelRequested = False
        self._setRunning(True)
        self.ui.resultsLabel.text = ""
        try:
            with slicer.util.tryWithErrorDisplay("Stenosis grading failed.", waitCursor=True):
                try:
                    result = self.logic.process(
                        self._parameterNode.inputLabelmap,
                        outputTable=self._parameterNode.outputTable,
                        progress=self._onProgress,
                        cancel=self._isCancelRequested,
                        scene=slicer.mrmlScene,
                    )
                except OperationCancelled:
                    self.ui.statusLabel.text = "Cancelled."
                    return
                self._parameterNode.outputTable = result.outputTable
                self.ui.resultsLabel.text = self.logic.summaryHtml(result.rows)
                self.ui.statusLabel.text = (
                    f"{len(result.rows)} level(s) graded in {result.seconds:.2f} s -> {result.outputTable.GetName()}"
                )
                self._showResults(self._parameterNode.inputLabelmap, result.outputTable)
        finally:
            self._setRunning(False)

    def _showResults(self, labelmapNode, tableNode) -> None:
        slicer.util.setSliceViewerLayers(label=labelmapNode)
        layoutManager = slicer.app.layoutManager()
        if layoutManager is not None:
            layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
        selectionNode = slicer.app.applicationLogic().GetSelectionNode()
        selectionNode.SetActiveTableID(tableNode.GetID())
        slicer.app.applicationLogic().PropagateTableSelection()


#
# SpineStenosisLogic
#


class SpineStenosisLogic(ScriptedLoadableModuleLogic):
    """Stenosis grading without any GUI: usable from the Python console or batch scripts.

    Example::

        result = SpineStenosisLogic().process(labelmapNode)
        for row in result.rows:
            print(row["level"], row["dural_sac_area_mm2"], row["grade"])
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return SpineStenosisParameterNode(super().getParameterNode())

    @staticmethod
    def _report(progress, cancel, fraction: float, message: str) -> None:
        if cancel is not None and cancel():
            raise OperationCancelled("Stenosis grading was cancelled by the user.")
        if progress is not None:
            progress(fraction, message)

    def process(
        self,
        inputLabelmap,
        outputTable=None,
        progress: Callable[[float, str], None] | None = None,
        cancel: Callable[[], bool] | None = None,
        scene=None,
    ) -> StenosisResult:
        """Grade every disc level of ``inputLabelmap`` and write the rows into ``outputTable``.

        :param inputLabelmap: label map volume node in the TotalSpineSeg convention (an integer scalar
            volume is accepted and read as labels).
        :param outputTable: table node to fill (a new one is created when None).
        :param progress: ``progress(fraction, message)``.
        :param cancel: ``cancel() -> bool``; True stops the run with :class:`OperationCancelled`.
        :param scene: MRML scene for a new table (default: the input node's scene).
        :raises ValueError: missing or non-integer input, or no measurable disc level.
        """
        from lumbarspine.grading import grade_levels
        from lumbarspine.slicer_nodes import table_node_from_rows, volume_from_node

        if inputLabelmap is None:
            raise ValueError("No input label map: select a spine label map (TotalSpineSeg convention).")
        if not inputLabelmap.IsA("vtkMRMLScalarVolumeNode"):
            raise ValueError(f"{inputLabelmap.GetName()!r} is not a label map volume.")
        if outputTable is not None and not outputTable.IsA("vtkMRMLTableNode"):
            raise ValueError(f"Output {outputTable.GetName()!r} is not a table node.")
        scene = scene if scene is not None else inputLabelmap.GetScene()
        if scene is None:
            raise ValueError("The input label map is not in an MRML scene: pass scene=...")

        started = time.perf_counter()
        self._report(progress, cancel, 0.05, "Reading the label map")
        labels = volume_from_node(inputLabelmap)
        if not labels.is_label:
            if not np.issubdtype(np.asarray(labels.array).dtype, np.integer):
                raise ValueError(
                    f"{inputLabelmap.GetName()!r} holds non-integer values: a label map (integer labels) is needed."
                )
            labels = replace(labels, is_label=True)
        self._report(progress, cancel, 0.2, "Measuring the dural sac at each disc level")
        rows = list(grade_levels(labels))
        if not rows:
            raise ValueError(
                "No disc level could be measured: the label map needs the spinal canal (label 2) and the "
                "lumbar discs (labels 91-100) in the TotalSpineSeg convention."
            )
        self._report(progress, cancel, 0.9, "Writing the table")
        name = None if outputTable is not None else scene.GenerateUniqueName(f"{inputLabelmap.GetName()}_stenosis")
        table = table_node_from_rows(rows, scene, node=outputTable, name=name)
        seconds = time.perf_counter() - started
        self._report(progress, None, 1.0, "Done")
        logging.info(f"SpineStenosis: {len(rows)} level(s) graded in {seconds:.2f} s")
        return StenosisResult(table, rows, seconds)

    @staticmethod
    def summaryHtml(rows: list) -> str:
        """A short HTML summary: one line per level with area, AP diameter and grade."""

        def number(value, unit):
            try:
                return f"{float(value):.0f} {unit}" if unit == "mm²" else f"{float(value):.1f} {unit}"
            except (TypeError, ValueError):
                return "n/a"

        lines = []
        for row in rows:
            grade = str(row.get("grade", "?"))
            colour = {"severe": "#c00000", "moderate": "#d07000"}.get(grade.lower().split()[0] if grade else "", "")
            gradeText = f'<b style="color:{colour}">{grade}</b>' if colour else f"<b>{grade}</b>"
            lines.append(
                f"{row.get('level', '?')}: {number(row.get('dural_sac_area_mm2'), 'mm²')}, "
                f"AP {number(row.get('ap_diameter_mm'), 'mm')} - {gradeText}"
            )
        return "<br>".join(lines) + "<br><i>Grades are estimated from measurements.</i>"


#
# SpineStenosisTest
#


def _phantomVolumes(**specArguments):
    """(image, labels) Volumes of a synthetic lumbar phantom (see lumbarspine.phantom.PhantomSpec)."""
    from lumbarspine.phantom import PhantomSpec, generate_phantom

    phantom = generate_phantom(PhantomSpec(**specArguments))
    return phantom.image, phantom.labels


class SpineStenosisTest(ScriptedLoadableModuleTest):
    """Self-test: grades a synthetic phantom with a known stenosis at L4-L5."""

    def setUp(self):
        slicer.mrmlScene.Clear(0)

    def runTest(self):
        self.setUp()
        self.test_GradePhantom()
        self.setUp()
        self.test_Errors()

    def test_GradePhantom(self):
        from lumbarspine.slicer_nodes import volume_to_node

        self.delayDisplay("Grading a phantom with a 55 mm2 dural sac at L4-L5")
        _, labels = _phantomVolumes(stenosis={"L4-L5": 55.0}, noise=0.0)
        labelmap = volume_to_node(labels, slicer.mrmlScene, name="SpineStenosisPhantom")
        self.assertTrue(labelmap.IsA("vtkMRMLLabelMapVolumeNode"))

        logic = SpineStenosisLogic()
        fractions = []
        result = logic.process(labelmap, progress=lambda fraction, message="": fractions.append(fraction))
        table = result.outputTable
        self.assertTrue(table.IsA("vtkMRMLTableNode"))
        self.assertEqual(table.GetNumberOfRows(), len(result.rows))
        self.assertGreater(len(result.rows), 0)
        self.assertEqual(fractions[-1], 1.0)

        byLevel = {row["level"]: row for row in result.rows}
        self.assertIn("L4-L5", byLevel)
        areas = {level: float(row["dural_sac_area_mm2"]) for level, row in byLevel.items()}
        # The narrowed level is the smallest and below the absolute stenosis cut-off (75 mm2).
        self.assertEqual(min(areas, key=areas.get), "L4-L5")
        self.assertLess(areas["L4-L5"], 75.0)
        healthy = [level for level in areas if level != "L4-L5"]
        if healthy:
            self.assertNotEqual(str(byLevel["L4-L5"]["grade"]), str(byLevel[healthy[0]]["grade"]))

        # Re-running into the same table replaces its rows instead of adding a table.
        count = slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLTableNode")
        again = logic.process(labelmap, outputTable=table)
        self.assertEqual(again.outputTable.GetID(), table.GetID())
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLTableNode"), count)
        self.assertEqual(table.GetNumberOfRows(), len(again.rows))
        self.assertIn("L4-L5", logic.summaryHtml(again.rows))
        self.delayDisplay("Stenosis grading test passed")

    def test_Errors(self):
        from lumbarspine.slicer_nodes import volume_to_node

        logic = SpineStenosisLogic()
        with self.assertRaises(ValueError):
            logic.process(None)
        _, labels = _phantomVolumes(spacing=(2.0, 2.0, 2.0), noise=0.0)
        labelmap = volume_to_node(labels, slicer.mrmlScene, name="SpineStenosisPhantom")
        with self.assertRaises(OperationCancelled):
            logic.process(labelmap, cancel=lambda: True)
        self.delayDisplay("Stenosis error tests passed")
