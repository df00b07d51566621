"""Lumbar Stenosis Grading: dural sac area and AP diameter per disc level, graded, in the scene.

Grading is one call of the Qt-free ``lumbarspine`` library, :data:`GRADE_CALL` (what ``lumbarspine grade``
does, without the files): an image, its segmentation or the automatic one, an optional axial series and the
thresholds. The panel runs it in a worker process (``SpineModulesLib``: parameter node, progress, Cancel,
locks), ``process()`` in this one; the result goes into the scene through ``lumbarspine.grading.scene``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Optional

import slicer
from slicer import vtkMRMLLabelMapVolumeNode, vtkMRMLScalarVolumeNode, vtkMRMLTableNode
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import *  # the four base classes, as in Slicer's module template
from slicer.util import VTKObservationMixin

from SpineModulesLib import Job, OperationCancelled, phantom_node, run_job
from SpineModulesLib.grading_scene import jump_to_level, put_grading_in_scene
from SpineModulesLib.i18n import _, translate
from SpineModulesLib.nodes import (
    check_output_node,
    image_volume_from_node,
    label_volume_from_node,
    report,
    scaled_progress,
    scene_of,
)
from SpineModulesLib.selftest import SelfTestMixin
from SpineModulesLib.widget import SpineModuleWidget, fillTableWidget, showTableOnce

DOCUMENTATION_URL = "https://github.com/lumbarspine/SlicerLumbarSpine#readme"
GRADE_CALL = "lumbarspine.grading.study:grade_image"
"""The library call: ``grade_image(image, segmentation, axial=, thresholds=) -> {"anatomy", "result", "axial"}``."""
LEVEL_COLUMNS = (
    ("level", "Level", "{}"),
    ("dural_sac_area_mm2", "Area (mm²)", "{:.0f}"),
    ("ap_diameter_mm", "AP (mm)", "{:.1f}"),
    ("grade", "Grade", "{}"),
    ("confidence", "Confidence", "{:.2f}"),
)
"""The panel's level table: (row key, title, format)."""
THRESHOLD_FIELDS = {
    "areaModerateMm2": "area_moderate_mm2",
    "areaSevereMm2": "area_severe_mm2",
    "apModerateMm": "ap_moderate_mm",
    "apSevereMm": "ap_severe_mm",
}
"""Parameter node field -> :class:`lumbarspine.grading.GradingThresholds` field."""

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
canal diameter at each lumbar disc level of a T2 image, with its segmentation (TotalSpineSeg convention:
2 spinal canal / dural sac, 41-45 L1-L5, 50 sacrum, 91-100 discs) or the automatic one, and an optional
axial series for the area on the acquired axial slice. Grades follow published cut-offs (dural sac area
&lt; 100 mm2 relative, &lt; 75 mm2 absolute stenosis; AP diameter 13 / 10 mm), all adjustable. Click a
level in the table to show its measurement plane in the slice views.
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
    """Parameters of the module, saved with the scene (defaults: ``lumbarspine.grading.GradingThresholds``,
    sources in ``shared/docs/clinical-reference.md``).

    inputVolume - the image to grade (T2, usually sagittal).
    inputSegmentation - its label map (TotalSpineSeg convention); None: automatic segmentation.
    axialVolume - an axial series of the same session (optional), for the area on the acquired slice.
    sacProbabilityVolume - a partial-volume / probability map of the dural sac (optional, values 0-1): the
        planes are measured on it instead of the crisp labels (``lumbarspine.grading.core.grade_anatomy``).
    areaModerateMm2, areaSevereMm2 - dural sac area below these is moderate / severe (mm2; Bolender 1985 /
        Hamanishi 1994: 100, Schonstrom & Hansson 1988: 75).
    apModerateMm, apSevereMm - AP diameter below these is moderate / severe (mm; Verbiest: 13 / 10).
    outputTable - table receiving one row per disc level (None: a new table is created).
    """

    inputVolume: vtkMRMLScalarVolumeNode
    inputSegmentation: vtkMRMLLabelMapVolumeNode
    axialVolume: vtkMRMLScalarVolumeNode
    sacProbabilityVolume: vtkMRMLScalarVolumeNode
    areaModerateMm2: Annotated[float, WithinRange(1.0, 500.0)] = 100.0
    areaSevereMm2: Annotated[float, WithinRange(1.0, 500.0)] = 75.0
    apModerateMm: Annotated[float, WithinRange(1.0, 40.0)] = 13.0
    apSevereMm: Annotated[float, WithinRange(1.0, 40.0)] = 10.0
    outputTable: vtkMRMLTableNode


@dataclass
class StenosisResult:
    """What :meth:`SpineStenosisLogic.process` produced (``nodes``: the other nodes added, by role)."""

    outputTable: Any
    rows: list
    seconds: float
    nodes: dict = field(default_factory=dict)


def thresholdsOf(parameters: Any) -> dict:
    """The grading thresholds of a parameter node as ``GradingThresholds`` keyword arguments."""
    return {key: float(getattr(parameters, name)) for name, key in THRESHOLD_FIELDS.items()}


#
# SpineStenosisWidget
#


class SpineStenosisWidget(SpineModuleWidget, ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: image, segmentation, axial series, thresholds, output table, level table."""

    uiFile = "UI/SpineStenosis.ui"
    runFields = ("inputVolume", "inputSegmentation", "axialVolume", "sacProbabilityVolume", "outputTable")
    lockedWidgets = (
        "inputSelector",
        "segmentationSelector",
        "axialSelector",
        "sacProbabilitySelector",
        "outputTableSelector",
    )
    defaultInput = ("inputVolume", "vtkMRMLScalarVolumeNode", "vtkMRMLLabelMapVolumeNode")

    def createLogic(self):
        return SpineStenosisLogic()

    def setupModule(self) -> None:
        self.connectSignal(self.ui.levelsTable, "cellClicked(int,int)", self.onLevelClicked)

    def notReadyReason(self) -> str:
        return "" if self._parameterNode.inputVolume else _("Select an input image.")

    def parameterNodeChanged(self) -> None:
        table = self._parameterNode.outputTable if self._parameterNode else None
        if table is not getattr(self, "_shownTable", None):  # another table picked or loaded: show its levels
            self._shownTable = table
            fillTableWidget(self.ui.levelsTable, LEVEL_COLUMNS, self.logic.levelRows(table))

    def makeJob(self) -> Job:
        parameters = self._parameterNode
        self.ui.resultsLabel.text = ""
        return self.logic.makeJob(
            parameters.inputVolume,
            parameters.inputSegmentation,
            parameters.axialVolume,
            thresholdsOf(parameters),
            sacProbabilityVolume=parameters.sacProbabilityVolume,
        )

    def applyResult(self, graded) -> str:
        parameters = self._parameterNode
        newTable = parameters.outputTable is None
        result = self.logic.applyResult(
            graded,
            parameters.inputVolume,
            parameters.outputTable,
            slicer.mrmlScene,
            addSegmentation=parameters.inputSegmentation is None,
        )
        self._shownTable = result.outputTable
        parameters.outputTable = result.outputTable
        fillTableWidget(self.ui.levelsTable, LEVEL_COLUMNS, result.rows)
        self.ui.resultsLabel.text = self.logic.summaryHtml(result.rows)
        if newTable:  # show a new table once; later runs refill it where the user put it
            showTableOnce(result.outputTable)
        return _("{count} level(s) graded -> {table}").format(
            count=len(result.rows), table=result.outputTable.GetName()
        )

    def onLevelClicked(self, row: int, column: int = 0) -> None:
        """A click on a level: the slice views go to its measurement plane (or the status says why not)."""
        try:
            level = self.logic.jumpToLevel(self._parameterNode.outputTable, row, slicer.mrmlScene)
        except ValueError as exc:
            self.ui.statusLabel.text = str(exc)
            return
        self.ui.statusLabel.text = _("Slice views on the {level} measurement plane.").format(level=level)


#
# SpineStenosisLogic
#


class SpineStenosisLogic(ScriptedLoadableModuleLogic):
    """Stenosis grading without any GUI: usable from the Python console or batch scripts.

    Example::

        result = SpineStenosisLogic().process(t2Node, segmentationNode)
        for row in result.rows:
            print(row["level"], row["dural_sac_area_mm2"], row["grade"])
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return SpineStenosisParameterNode(super().getParameterNode())

    def makeJob(
        self, inputVolume, inputSegmentation=None, axialVolume=None, thresholds=None, sacProbabilityVolume=None
    ) -> Job:
        """The grading as a job (:data:`GRADE_CALL`); ``thresholds``: ``GradingThresholds`` or its fields;
        ``sacProbabilityVolume``: an optional partial-volume map of the dural sac (values 0-1)."""
        from lumbarspine.grading import GradingThresholds

        if not isinstance(thresholds, GradingThresholds):
            thresholds = GradingThresholds(**dict(thresholds or {}))  # ValueError on bad cut-offs
        kwargs = {"thresholds": thresholds}
        image = image_volume_from_node(inputVolume, "input image")
        if axialVolume is not None and axialVolume.GetID() == inputVolume.GetID():
            raise ValueError("The axial series is the input image itself: pick the axial series, or None.")
        if inputSegmentation is not None:
            kwargs["segmentation"] = label_volume_from_node(inputSegmentation)
        if axialVolume is not None:
            kwargs["axial"] = image_volume_from_node(axialVolume, "axial series")
        if sacProbabilityVolume is not None:
            if sacProbabilityVolume.GetID() == inputVolume.GetID():
                raise ValueError(
                    "The sac probability map is the input image itself: pick the dural sac's probability map, or None."
                )
            kwargs["sac_probability"] = image_volume_from_node(sacProbabilityVolume, "sac probability map")
        return Job(GRADE_CALL, (image,), kwargs, title=_("Stenosis grading"))

    def applyResult(self, graded, inputVolume, outputTable, scene, addSegmentation: bool = False) -> StenosisResult:
        """Put the grading into ``scene`` (``SpineModulesLib.grading_scene``): ``outputTable`` (a new table when
        None), the outline and AP markups, area chart and sac coloured by grade; with ``addSegmentation`` also
        the label map graded. The previous run's nodes of the same table are replaced."""
        base = inputVolume.GetName() if inputVolume is not None else "Stenosis"
        table, rows, nodes = put_grading_in_scene(graded, base, outputTable, scene, addSegmentation)
        return StenosisResult(table, rows, 0.0, nodes)

    @staticmethod
    def levelRows(table) -> list:
        """The rows of a grading table (empty for None)."""
        from lumbarspine.slicer_nodes import rows_from_table_node

        return rows_from_table_node(table) if table is not None else []

    def jumpToLevel(self, table, row: int, scene) -> str:
        """Move the Red, Yellow and Green slice views of ``scene`` to the measurement plane of the level in
        ``row`` of ``table`` (Red shows the plane itself); returns the level. ValueError when it cannot."""
        return jump_to_level(table, row, scene)

    def process(
        self,
        inputVolume,
        inputSegmentation=None,
        axialVolume=None,
        thresholds=None,
        outputTable=None,
        progress: Optional[Callable[[float, str], None]] = None,
        cancel: Optional[Callable[[], bool]] = None,
        scene=None,
        sacProbabilityVolume=None,
    ) -> StenosisResult:
        """Grade every disc level of ``inputVolume`` and put the result into the scene.

        :param inputVolume: the image (T2, usually sagittal).
        :param inputSegmentation: its label map (TotalSpineSeg convention; an integer scalar volume is read
            as labels); None runs the automatic segmentation (its label map is added to the scene).
        :param axialVolume: an axial series of the same session (optional).
        :param thresholds: ``GradingThresholds`` or a dict of its fields (mm2, mm); None: the defaults.
        :param outputTable: table node to fill (a new one is created when None).
        :param progress: ``progress(fraction, message)``.
        :param cancel: ``cancel() -> bool``; True stops the run with :class:`OperationCancelled`.
        :param scene: MRML scene for the new nodes (default: the input node's scene).
        :param sacProbabilityVolume: a partial-volume / probability map of the dural sac (values 0-1; optional):
            the planes are measured on it instead of the crisp labels.
        :raises ValueError: missing or bad input, a sac probability map that is not a 0-1 map of this sac, bad thresholds, no canal, no measurable disc level.
        """
        what = "Stenosis grading"
        check_output_node(outputTable, "vtkMRMLTableNode", "table")
        started = time.perf_counter()
        report(progress, cancel, 0.05, "Reading the inputs", what)
        job = self.makeJob(inputVolume, inputSegmentation, axialVolume, thresholds, sacProbabilityVolume)
        scene = scene_of(inputVolume, scene, "input image")
        report(progress, cancel, 0.1, "Segmenting and measuring the dural sac at each disc level", what)
        graded = run_job(job, scaled_progress(progress, 0.1, 0.9), cancel)
        report(progress, cancel, 0.9, "Adding the results to the scene", what)
        result = self.applyResult(graded, inputVolume, outputTable, scene, addSegmentation=inputSegmentation is None)
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
    """Self-test: grades a synthetic T2 phantom with a known stenosis at L4-L5."""

    def _phantom(self, **spec):
        scene = slicer.mrmlScene
        image = phantom_node(scene, "image", "SpineStenosisT2", modality="t2", noise=0.0, **spec)
        labels = phantom_node(scene, "labels", "SpineStenosisLabels", modality="t2", noise=0.0, **spec)
        return image, labels

    def test_GradePhantom(self):
        self.delayDisplay("Grading a phantom with a 55 mm2 dural sac at L4-L5")
        image, labelmap = self._phantom(stenosis={"L4-L5": 55.0})
        self.assertTrue(labelmap.IsA("vtkMRMLLabelMapVolumeNode"))

        logic = SpineStenosisLogic()
        fractions = []
        result = logic.process(image, labelmap, progress=lambda fraction, message="": fractions.append(fraction))
        table = result.outputTable
        self.assertTrue(table.IsA("vtkMRMLTableNode"))
        self.assertEqual(table.GetNumberOfRows(), len(result.rows))
        self.assertEqual(fractions[-1], 1.0)

        byLevel = {row["level"]: row for row in result.rows}
        areas = {level: float(row["dural_sac_area_mm2"]) for level, row in byLevel.items()}
        # The narrowed level is the smallest and below the absolute stenosis cut-off (75 mm2).
        self.assertEqual(min(areas, key=areas.get), "L4-L5")
        self.assertLess(areas["L4-L5"], 75.0)
        self.assertEqual(byLevel["L4-L5"]["grade"], "Severe")

        # The slice views follow a selected row; a rerun into the same table replaces its nodes.
        self.assertEqual(logic.jumpToLevel(table, list(byLevel).index("L4-L5"), slicer.mrmlScene), "L4-L5")
        count = slicer.mrmlScene.GetNumberOfNodes()
        again = logic.process(image, labelmap, outputTable=table)
        self.assertEqual(again.outputTable.GetID(), table.GetID())
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), count)
        self.assertIn("L4-L5", logic.summaryHtml(again.rows))
        self.delayDisplay("Stenosis grading test passed")

    def test_Errors(self):
        logic = SpineStenosisLogic()
        with self.assertRaises(ValueError):
            logic.process(None)
        image, labelmap = self._phantom(spacing=(2.0, 2.0, 2.0))
        with self.assertRaises(ValueError):
            logic.process(image, labelmap, thresholds={"area_moderate_mm2": 60.0, "area_severe_mm2": 75.0})
        with self.assertRaises(OperationCancelled):
            logic.process(image, labelmap, cancel=lambda: True)
        self.delayDisplay("Stenosis error tests passed")
