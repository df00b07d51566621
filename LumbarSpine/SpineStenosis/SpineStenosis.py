"""Lumbar Stenosis Grading: dural sac area and AP diameter per disc level, graded, in a table.

Grading is one call of the Qt-free ``lumbarspine`` library, :data:`GRADE_CALL`: the panel runs it in a
worker process (``SpineModulesLib``: parameter node, progress, Cancel, locks), ``process()`` in this one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import slicer
from slicer import vtkMRMLLabelMapVolumeNode, vtkMRMLTableNode
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import *  # the four base classes, as in Slicer's module template
from slicer.util import VTKObservationMixin

from SpineModulesLib import Job, OperationCancelled, phantom_node, run_job
from SpineModulesLib.i18n import _, translate
from SpineModulesLib.nodes import check_output_node, label_volume_from_node, report, scaled_progress, scene_of
from SpineModulesLib.selftest import SelfTestMixin
from SpineModulesLib.widget import SpineModuleWidget, showTableOnce

DOCUMENTATION_URL = "https://github.com/lumbarspine/SlicerLumbarSpine#readme"
GRADE_CALL = "lumbarspine.grading:grade_levels"
"""The library call that measures and grades every level: ``grade_levels(labels) -> list of row dicts``."""

#
# SpineStenosis
#


class SpineStenosis(ScriptedLoadableModule):
    """Module description shown in Slicer's module panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Lumbar Stenosis Grading")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Spine")]
        self.parent.dependencies = []
        self.parent.contributors = ["LumbarSpine contributors"]
        self.parent.helpText = _("""
Measures the dural sac cross-sectional area (perpendicular to the canal) and the antero-posterior
canal diameter at each lumbar disc level of a label map in the TotalSpineSeg convention (2 spinal
canal / dural sac, 41-45 L1-L5, 50 sacrum, 91-100 discs), and estimates a central canal stenosis grade
from published cut-offs (dural sac area &lt; 100 mm2 relative, &lt; 75 mm2 absolute stenosis).
The grades are estimates from measurements, not a radiologist's reading.
See the <a href="{url}">LumbarSpine documentation</a>.
""").format(url=DOCUMENTATION_URL)
        self.parent.acknowledgementText = _("""
Developed as part of the LumbarSpine extension. Module structure after the 3D Slicer scripted module
template by Jean-Christophe Fillion-Robin (Kitware), Andras Lasso (PerkLab) and Steve Pieper (Isomics).
Label convention after the TotalSpineSeg project.
""")


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


@dataclass
class StenosisResult:
    """What :meth:`SpineStenosisLogic.process` produced."""

    outputTable: Any
    rows: list
    seconds: float


#
# SpineStenosisWidget
#


class SpineStenosisWidget(SpineModuleWidget, ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: input label map, output table, Apply/Cancel, summary of the grades."""

    uiFile = "UI/SpineStenosis.ui"
    runFields = ("inputLabelmap", "outputTable")
    lockedWidgets = ("inputSelector", "outputTableSelector")
    defaultInput = ("inputLabelmap", "vtkMRMLLabelMapVolumeNode", "")

    def createLogic(self):
        return SpineStenosisLogic()

    def notReadyReason(self) -> str:
        return "" if self._parameterNode.inputLabelmap else _("Select an input label map.")

    def makeJob(self) -> Job:
        self.ui.resultsLabel.text = ""
        return self.logic.makeJob(self._parameterNode.inputLabelmap)

    def applyResult(self, rows) -> str:
        newTable = self._parameterNode.outputTable is None
        result = self.logic.applyResult(
            rows, self._parameterNode.inputLabelmap, self._parameterNode.outputTable, slicer.mrmlScene
        )
        self._parameterNode.outputTable = result.outputTable
        self.ui.resultsLabel.text = self.logic.summaryHtml(result.rows)
        if newTable:  # show a new table once; later runs refill it where the user put it
            showTableOnce(result.outputTable)
        return _("{count} level(s) graded -> {table}").format(
            count=len(result.rows), table=result.outputTable.GetName()
        )


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

    def makeJob(self, inputLabelmap) -> Job:
        """The grading of ``inputLabelmap`` as a job (:data:`GRADE_CALL` on its label map)."""
        return Job(GRADE_CALL, (label_volume_from_node(inputLabelmap),), {}, title=_("Stenosis grading"))

    def applyResult(self, rows, inputLabelmap, outputTable, scene) -> StenosisResult:
        """Write the graded ``rows`` into ``outputTable`` (a new table in ``scene`` when None)."""
        from lumbarspine.slicer_nodes import table_node_from_rows

        rows = list(rows)
        if not rows:
            raise ValueError(
                "No disc level could be measured: the label map needs the spinal canal (label 2) and the "
                "lumbar discs (labels 91-100) in the TotalSpineSeg convention."
            )
        name = None if outputTable is not None else scene.GenerateUniqueName(f"{inputLabelmap.GetName()}_stenosis")
        table = table_node_from_rows(rows, scene, node=outputTable, name=name)
        return StenosisResult(table, rows, 0.0)

    def process(
        self,
        inputLabelmap,
        outputTable=None,
        progress: Optional[Callable[[float, str], None]] = None,
        cancel: Optional[Callable[[], bool]] = None,
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
        what = "Stenosis grading"
        check_output_node(outputTable, "vtkMRMLTableNode", "table")
        started = time.perf_counter()
        report(progress, cancel, 0.05, "Reading the label map", what)
        job = self.makeJob(inputLabelmap)
        scene = scene_of(inputLabelmap, scene, "input label map")
        report(progress, cancel, 0.2, "Measuring the dural sac at each disc level", what)
        rows = run_job(job, scaled_progress(progress, 0.2, 0.9), cancel)
        report(progress, cancel, 0.9, "Writing the table", what)
        result = self.applyResult(rows, inputLabelmap, outputTable, scene)
        result.seconds = time.perf_counter() - started
        report(progress, None, 1.0, "Done", what)
        logging.info(f"SpineStenosis: {len(result.rows)} level(s) graded in {result.seconds:.2f} s")
        return result

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


class SpineStenosisTest(SelfTestMixin, ScriptedLoadableModuleTest):
    """Self-test: grades a synthetic phantom with a known stenosis at L4-L5."""

    def test_GradePhantom(self):
        self.delayDisplay("Grading a phantom with a 55 mm2 dural sac at L4-L5")
        labelmap = phantom_node(slicer.mrmlScene, "labels", "SpineStenosisPhantom", stenosis={"L4-L5": 55.0}, noise=0.0)
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
        logic = SpineStenosisLogic()
        with self.assertRaises(ValueError):
            logic.process(None)
        labelmap = phantom_node(slicer.mrmlScene, "labels", "SpineStenosisPhantom", spacing=(2.0, 2.0, 2.0), noise=0.0)
        with self.assertRaises(OperationCancelled):
            logic.process(labelmap, cancel=lambda: True)
        self.delayDisplay("Stenosis error tests passed")
