"""Spine Surgical Planning: what ``lumbarspine plan`` does, on the loaded scene.

A run is :data:`PLAN_CALL` of the Qt-free ``lumbarspine`` library: a CT or MRI with its label map or the
automatic segmentation, the grades (the stenosis table of *Lumbar Stenosis Grading*, a ``report.json``) or
ticked levels -> pedicle screws, decompression volumes and the no-go zone. The panel runs it in a worker
process (``SpineModulesLib``), ``SpinePlanningLogic.process()`` in this one; the result goes into the scene
through ``lumbarspine.planning.scene`` (``SpineModulesLib.plan_scene``). Resizing, re-planning (``REPLAN_CALL``),
hiding and moving a screw are evaluated by the library; the plan exports as STL / OBJ in RAS or LPS.
"""

from __future__ import annotations

import logging
import math
import pathlib
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Optional

import slicer
from slicer import vtkMRMLLabelMapVolumeNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import *  # the four base classes, as in Slicer's module template
from slicer.util import VTKObservationMixin

from SpineModulesLib import Job, OperationCancelled, phantom_node, run_job
from SpineModulesLib.i18n import _, translate
from SpineModulesLib.nodes import check_output_node, report, scaled_progress, scene_of
from SpineModulesLib.plan_scene import DECOMPRESSION_COLUMNS, PlanSceneMixin
from SpineModulesLib.screws import ScrewEditingMixin, screw_rows
from SpineModulesLib.selftest import SelfTestMixin
from SpineModulesLib.widget import SpineModuleWidget, fillTableWidget, showSegmentationOnce

DOCUMENTATION_URL = "https://github.com/lumbarspine/SlicerLumbarSpine#readme"
MAX_MARGIN_MM = 20.0
PLAN_CALL = "lumbarspine.planning.panel_support:plan_image"
"""The run: ``plan_image(image, segmentation, grades=, levels=, margin_mm=, screws=) -> {"anatomy", "screws",
"refused", "decompressions", "masks", ...}``."""
SCREW_COLUMNS = (
    ("vertebra", "Vertebra", "{}"),
    ("side", "Side", "{}"),
    ("diameter_mm", "Ø (mm)", "{:g}"),
    ("length_mm", "Length (mm)", "{:.0f}"),
    ("grade", "Grade", "{}"),
    ("breach_mm", "Breach (mm)", "{:.1f}"),
)
"""The panel's screw table: (row key, title, format)."""
LEVEL_FIELDS = {
    "decompressL1L2": "L1-L2",
    "decompressL2L3": "L2-L3",
    "decompressL3L4": "L3-L4",
    "decompressL4L5": "L4-L5",
    "decompressL5S1": "L5-S1",
}
"""Parameter node check box -> the disc level it decompresses."""
VIEW_BUTTONS = {"posteriorViewButton": "posterior", "leftViewButton": "left", "superiorViewButton": "superior"}
"""3D camera preset buttons -> ``SpineModulesLib.plan_scene.CAMERA_PRESETS``."""


def levelsOf(parameters: Any) -> list:
    """The levels ticked in a parameter node, cranial to caudal."""
    return [level for name, level in LEVEL_FIELDS.items() if getattr(parameters, name)]


#
# SpinePlanning
#


class SpinePlanning(ScriptedLoadableModule):
    """Module description shown in Slicer's module panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Spine Surgical Planning")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Spine")]
        self.parent.dependencies = ["Segmentations"]
        self.parent.contributors = ["LumbarSpine contributors"]
        self.parent.helpText = _("""
Plans a CT or MRI as <code>lumbarspine plan</code> does: with its TotalSpineSeg label map or the automatic
segmentation, pedicle screws (L1-L5, S1) sized to the patient's pedicles, decompression volumes at the
levels graded moderate or severe (the table of Lumbar Stenosis Grading or a report.json) or at the levels
ticked, and a "no-go" zone: the neural elements grown by a safety margin in millimetres. Each screw is
graded by its breach outside the bone (Gertzbein-Robbins); in the screw table a screw can be resized,
re-planned, hidden, and moving its end points in a view evaluates it again. The decompression table gives
the bone removed, the share of each facet and the canal area before and after. Screws and volumes export
as STL / OBJ in RAS or LPS. A planning aid only: check every plan on the images.
See the <a href="{url}">LumbarSpine documentation</a>.
""").format(url=DOCUMENTATION_URL)
        self.parent.acknowledgementText = _("""
Developed as part of the LumbarSpine extension. Module structure after the 3D Slicer scripted module
template by Jean-Christophe Fillion-Robin (Kitware), Andras Lasso (PerkLab) and Steve Pieper (Isomics).
""")


#
# SpinePlanningParameterNode
#


@parameterNodeWrapper
class SpinePlanningParameterNode:
    """Parameters of the module, saved with the scene.

    inputVolume - the CT or MRI to plan (optional when a label map is given).
    inputLabelmap - its label map (TotalSpineSeg convention); None: the automatic segmentation.
    gradesTable - a stenosis grading table (Lumbar Stenosis Grading's output): moderate / severe levels are
        decompressed and the dural sac is coloured by grade.
    gradesReport - or a grading report.json (``lumbarspine grade``); empty: none.
    decompressL1L2 .. decompressL5S1 - decompress these levels instead of the graded ones.
    marginMm - safety margin around the neural elements, mm.
    planScrews - plan the pedicle screws too.
    outputSegmentation - segmentation receiving the decompressions and the no-go zone (None: a new one); it
        owns the screws and the other nodes of the plan.
    show3D - build the closed surfaces and show them in the 3D view.
    screwDiameterMm, screwLengthMm - size (mm) for the selected screw (Apply size, Re-plan with this size).
    replanWithSize - re-plan with that size instead of the planner's own sizing.
    exportCoordinates, exportDirectory - coordinate system and folder of the STL / OBJ export.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    inputLabelmap: vtkMRMLLabelMapVolumeNode
    gradesTable: vtkMRMLTableNode
    gradesReport: pathlib.Path
    decompressL1L2: bool = False
    decompressL2L3: bool = False
    decompressL3L4: bool = False
    decompressL4L5: bool = False
    decompressL5S1: bool = False
    marginMm: Annotated[float, WithinRange(0.0, MAX_MARGIN_MM)] = 2.0
    planScrews: bool = True
    outputSegmentation: vtkMRMLSegmentationNode
    show3D: bool = True
    screwDiameterMm: Annotated[float, WithinRange(3.0, 10.0)] = 6.0
    screwLengthMm: Annotated[float, WithinRange(20.0, 70.0)] = 45.0
    replanWithSize: bool = False
    exportCoordinates: Annotated[str, Choice(["RAS", "LPS"])] = "RAS"
    exportDirectory: pathlib.Path


@dataclass
class PlanningResult:
    """What :meth:`SpinePlanningLogic.process` produced (``nodes``: the other nodes of the plan, by role)."""

    outputSegmentation: Any
    zoneVolumeMm3: float
    seconds: float
    backend: str = ""
    screws: list = field(default_factory=list)
    refused: list = field(default_factory=list)
    decompressions: list = field(default_factory=list)
    nodes: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)


#
# SpinePlanningWidget
#


class SpinePlanningWidget(SpineModuleWidget, ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: image, label map, grades or levels, margin, output, Apply/Cancel, the screw and
    decompression tables, export and the 3D views."""

    uiFile = "UI/SpinePlanning.ui"
    runFields = ("inputVolume", "inputLabelmap", "gradesTable", "outputSegmentation")
    lockedWidgets = ("inputSelector", "segmentationSelector", "gradesTableSelector", "outputSegmentationSelector")
    defaultInput = ("inputVolume", "vtkMRMLScalarVolumeNode", "vtkMRMLLabelMapVolumeNode")

    def __init__(self, parent=None) -> None:
        SpineModuleWidget.__init__(self, parent)
        self._screwIds: list = []
        self._selectedScrewId = None
        self._observedOutput = None

    def createLogic(self):
        return SpinePlanningLogic()

    def setupModule(self) -> None:
        self.connectSignal(self.ui.screwTable, "cellClicked(int,int)", self.onScrewClicked)
        self.connectSignal(self.ui.resizeScrewButton, "clicked(bool)", self.onResizeScrew)
        self.connectSignal(self.ui.replanScrewButton, "clicked(bool)", self.onReplanScrew)
        self.connectSignal(self.ui.screwVisibleCheckBox, "toggled(bool)", self.onScrewVisibility)
        self.connectSignal(self.ui.exportButton, "clicked(bool)", self.onExport)
        for name, view in VIEW_BUTTONS.items():
            self.connectSignal(getattr(self.ui, name), "clicked(bool)", lambda checked=False, v=view: self.onView(v))

    def cleanup(self) -> None:
        self.logic.stopObserving()
        SpineModuleWidget.cleanup(self)

    def onSceneStartClose(self, caller=None, event=None) -> None:
        self.logic.stopObserving()
        self._observedOutput, self._selectedScrewId = None, None
        SpineModuleWidget.onSceneStartClose(self, caller, event)

    def notReadyReason(self) -> str:
        parameters = self._parameterNode
        ready = parameters.inputVolume or parameters.inputLabelmap
        return "" if ready else _("Select an input image (or a label map).")

    def _onRunState(self, state, message: str) -> None:
        SpineModuleWidget._onRunState(self, state, message)
        self.refreshScrews()  # the screw buttons wait while a run is going

    def parameterNodeChanged(self) -> None:
        output = self._parameterNode.outputSegmentation if self._parameterNode else None
        if output is not self._observedOutput:  # another output picked or loaded: show and follow its screws
            self._observedOutput = output
            self._observeScrews()
            self.refreshScrews()

    def makeJob(self) -> Job:
        p = self._parameterNode
        return self.logic.makeJob(
            p.inputVolume, p.inputLabelmap, p.marginMm, p.planScrews, p.gradesTable, p.gradesReport, levelsOf(p)
        )

    def applyResult(self, planned) -> str:
        parameters = self._parameterNode
        newSegmentation = parameters.outputSegmentation is None
        result = self.logic.applyResult(
            planned,
            parameters.inputVolume,
            parameters.inputLabelmap,
            parameters.outputSegmentation,
            parameters.show3D,
            slicer.mrmlScene,
        )
        self._observedOutput = result.outputSegmentation
        parameters.outputSegmentation = result.outputSegmentation
        if newSegmentation:  # first display only; later runs keep the user's display settings
            showSegmentationOnce(result.outputSegmentation, parameters.show3D)
        self._observeScrews()
        self.refreshScrews()
        return _(
            "No-go zone {volume:.1f} mL ({margin:.1f} mm margin), {screws} screw(s), {levels} decompression(s)"
            " -> {name}"
        ).format(
            volume=result.zoneVolumeMm3 / 1000.0,
            margin=parameters.marginMm,
            screws=len(result.screws),
            levels=len(result.decompressions),
            name=result.outputSegmentation.GetName(),
        )

    def _planLabelmap(self):
        """The label map the current plan was made on (its screws are evaluated against it)."""
        output = self._parameterNode.outputSegmentation if self._parameterNode else None
        return self.logic.planLabelmap(output) or (self._parameterNode.inputLabelmap if self._parameterNode else None)

    def _planImage(self):
        """The CT the current plan's bone was refined with (None: the labels alone); the edits grade on that bone."""
        return self.logic.planImage(self._parameterNode.outputSegmentation if self._parameterNode else None)

    # ------------------------------------------------------------------ export and the 3D views
    def onExport(self) -> None:
        p = self._parameterNode
        try:
            self.ui.statusLabel.text = self.logic.exportPlan(
                p.outputSegmentation, p.exportDirectory, p.exportCoordinates, slicer.mrmlScene
            )
        except ValueError as exc:
            self.ui.statusLabel.text = str(exc)

    def onView(self, view: str) -> None:
        try:
            self.logic.showView(self._parameterNode.outputSegmentation, view, slicer.mrmlScene)
        except ValueError as exc:
            self.ui.statusLabel.text = str(exc)

    # ------------------------------------------------------------------ the screw and decompression tables
    def _observeScrews(self) -> None:
        parameters = self._parameterNode
        self.logic.stopObserving()
        labelmap = self._planLabelmap()
        if parameters and parameters.outputSegmentation is not None and labelmap is not None:
            try:
                self.logic.observeScrews(
                    parameters.outputSegmentation, labelmap, parameters.marginMm, self.onScrewMoved, self._planImage()
                )
            except ValueError as exc:  # e.g. a label map without voxels yet: the screws are shown, not followed
                self.ui.statusLabel.text = str(exc)

    def refreshScrews(self) -> None:
        output = self._parameterNode.outputSegmentation if self._parameterNode else None
        rows = self.logic.screwRows(output)
        self._screwIds = [row["id"] for row in rows]
        fillTableWidget(self.ui.screwTable, SCREW_COLUMNS, rows)
        fillTableWidget(self.ui.decompressionTable, DECOMPRESSION_COLUMNS, self.logic.decompressionRows(output))
        self.ui.refusedLabel.text = self.logic.refusedHtml(output)
        selected = next((row for row in rows if row["id"] == self._selectedScrewId), None)
        self._selectedScrewId = selected["id"] if selected else None
        editable = selected is not None and not self.controller.running
        self.ui.resizeScrewButton.enabled = editable
        self.ui.replanScrewButton.enabled = editable
        self.ui.screwVisibleCheckBox.enabled = selected is not None
        self.ui.exportButton.enabled = output is not None and not self.controller.running
        if selected is not None:
            self.ui.screwVisibleCheckBox.blockSignals(True)
            self.ui.screwVisibleCheckBox.checked = selected["visible"]
            self.ui.screwVisibleCheckBox.blockSignals(False)

    def selectedScrew(self):
        return slicer.mrmlScene.GetNodeByID(self._selectedScrewId) if self._selectedScrewId else None

    def onScrewClicked(self, row: int, column: int = 0) -> None:
        """A click on a screw selects it; its size goes into the diameter and length boxes."""
        self._selectedScrewId = self._screwIds[row] if 0 <= row < len(self._screwIds) else None
        line = self.selectedScrew()
        if line is not None:
            info = screw_rows([line])[0]
            if not math.isnan(info["diameter_mm"]):  # within the boxes' ranges (a dragged screw may be longer)
                self._parameterNode.screwDiameterMm = min(max(info["diameter_mm"], 3.0), 10.0)
            self._parameterNode.screwLengthMm = min(max(info["length_mm"], 20.0), 70.0)
            self.ui.statusLabel.text = _("Screw {name} selected.").format(name=line.GetName())
        self.refreshScrews()

    def onScrewMoved(self, line, evaluation) -> None:
        self.refreshScrews()
        self.ui.statusLabel.text = _("{name}: breach {breach:.1f} mm, grade {grade}.").format(
            name=line.GetName(), breach=evaluation["breach_mm"], grade=evaluation["gertzbein_robbins"]
        )

    def _screwAction(self, action) -> None:
        line = self.selectedScrew()
        if line is None:
            return
        try:
            self.ui.statusLabel.text = action(line)
        except ValueError as exc:
            self.ui.statusLabel.text = str(exc)
        self.refreshScrews()

    def onResizeScrew(self) -> None:
        p = self._parameterNode
        self._screwAction(
            lambda line: self.logic.resizeScrew(
                line, self._planLabelmap(), p.screwDiameterMm, p.screwLengthMm, p.marginMm, self._planImage()
            )
        )

    def onReplanScrew(self) -> None:
        """Re-plan the selected screw in a worker; the result moves it when the run succeeds."""
        parameters = self._parameterNode
        withSize = parameters.replanWithSize

        def start(line):
            job = self.logic.replanJob(
                line,
                self._planLabelmap(),
                parameters.screwDiameterMm if withSize else None,
                parameters.screwLengthMm if withSize else None,
                parameters.marginMm,
                self._planImage(),
            )
            lineId = line.GetID()
            self.startJob(job, lambda row: self._applyReplan(lineId, row))
            return _("Re-planning {name}...").format(name=line.GetName())

        self._screwAction(start)

    def _applyReplan(self, lineId, row) -> str:
        line = slicer.mrmlScene.GetNodeByID(lineId)
        if line is None:
            raise ValueError(_("The screw was removed during the run."))
        message = self.logic.applyReplan(
            line, row, self._planLabelmap(), self._parameterNode.marginMm, self._planImage()
        )
        self.refreshScrews()
        return message

    def onScrewVisibility(self, visible: bool) -> None:
        self._screwAction(lambda line: self.logic.setScrewVisible(line, visible))


#
# SpinePlanningLogic
#


class SpinePlanningLogic(PlanSceneMixin, ScrewEditingMixin, ScriptedLoadableModuleLogic):
    """The surgical plan without any GUI: usable from the Python console or batch scripts. The per-screw edits
    (resize, re-plan, hide, follow moved end points) come from ``ScrewEditingMixin``; grades, export and the 3D
    views from ``PlanSceneMixin``.

    Example::

        logic = SpinePlanningLogic()
        result = logic.process(ctNode, labelmapNode, marginMm=3.0, levels=["L4-L5"])
        print(result.outputSegmentation.GetName(), len(result.screws), result.decompressions)
        logic.exportPlan(result.outputSegmentation, "/tmp/plan_models", "LPS", ctNode.GetScene())
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        ScrewEditingMixin.__init__(self)

    def getParameterNode(self):
        return SpinePlanningParameterNode(super().getParameterNode())

    @staticmethod
    def checkMargin(marginMm) -> float:
        try:
            marginMm = float(marginMm)
        except (TypeError, ValueError):
            raise ValueError(f"The margin must be a number of millimetres; got {marginMm!r}.") from None
        if not math.isfinite(marginMm) or not 0.0 <= marginMm <= MAX_MARGIN_MM:
            raise ValueError(f"The margin must be between 0 and {MAX_MARGIN_MM:g} mm; got {marginMm:g} mm.")
        return marginMm

    def makeJob(
        self,
        inputVolume,
        inputLabelmap=None,
        marginMm: float = 2.0,
        planScrews: bool = True,
        gradesTable=None,
        gradesReport=None,
        levels=None,
    ) -> Job:
        """The plan as a job (:data:`PLAN_CALL`): the image and / or label map, the grades (a table node or a
        report.json path; not both) and the levels to decompress (a list or comma separated text)."""
        margin = self.checkMargin(marginMm)
        image, labels = self.planInputs(inputVolume, inputLabelmap)
        kwargs = {
            "segmentation": labels,
            "grades": self.gradesOf(gradesTable, gradesReport),
            "levels": self.levelsOf(levels),
            "margin_mm": margin,
            "screws": bool(planScrews),
        }
        return Job(PLAN_CALL, (image,), kwargs, title=_("Planning"))

    def applyResult(
        self, planned, inputVolume, inputLabelmap, outputSegmentation, createSurface, scene
    ) -> PlanningResult:
        """Put the plan into ``scene`` (``SpineModulesLib.plan_scene``): ``outputSegmentation`` (a new one when None)
        gets the decompressions and the no-go zone and owns the screws, bone, sac and decompression table."""
        inputVolume, inputLabelmap = self.inputNodes(inputVolume, inputLabelmap)
        base = self.baseName(inputVolume, inputLabelmap)
        output, lines, nodes = self.putPlan(
            planned, base, outputSegmentation, scene, inputLabelmap, createSurface, inputVolume
        )
        return PlanningResult(
            output,
            nodes["no_go_volume_mm3"],
            0.0,
            screws=lines,
            refused=list(planned["refused"]),
            decompressions=self.decompressionRows(output),
            nodes=nodes,
            warnings=list(planned["warnings"]),
        )

    def process(
        self,
        inputVolume,
        inputLabelmap=None,
        marginMm: float = 2.0,
        outputSegmentation=None,
        createSurface: bool = True,
        progress: Optional[Callable[[float, str], None]] = None,
        cancel: Optional[Callable[[], bool]] = None,
        scene=None,
        planScrews: bool = True,
        gradesTable=None,
        gradesReport=None,
        levels=None,
    ) -> PlanningResult:
        """Plan ``inputVolume`` as ``lumbarspine plan`` does and put the plan into the scene.

        :param inputVolume: the CT or MRI (a label map node here, with no ``inputLabelmap``, is planned as
            the label map alone).
        :param inputLabelmap: its label map (TotalSpineSeg convention; an integer scalar volume is read as
            labels); None: the automatic segmentation (added to the scene).
        :param marginMm: no-go zone safety margin, 0 to ``MAX_MARGIN_MM`` mm.
        :param outputSegmentation: segmentation node to fill (a new one is created when None).
        :param createSurface: also build the closed-surface representations (for 3D display).
        :param progress: ``progress(fraction, message)``.
        :param cancel: ``cancel() -> bool``; True stops the run with :class:`OperationCancelled`.
        :param scene: MRML scene for new nodes (default: the input node's scene).
        :param planScrews: plan the pedicle screws (line markups and models owned by the output).
        :param gradesTable: a stenosis grading table node (moderate / severe levels are decompressed).
        :param gradesReport: or the path of a grading ``report.json``.
        :param levels: decompress these levels instead (list or comma separated text, e.g. ``"L4-L5"``).
        :raises ValueError: missing or non-integer input, margin out of range, bad grades or levels, no neural
            elements.
        """
        what = "Planning"
        check_output_node(outputSegmentation, "vtkMRMLSegmentationNode", "segmentation")
        started = time.perf_counter()
        report(progress, cancel, 0.05, "Reading the inputs", what)
        job = self.makeJob(inputVolume, inputLabelmap, marginMm, planScrews, gradesTable, gradesReport, levels)
        scene = scene_of(inputVolume if inputVolume is not None else inputLabelmap, scene, "input image")
        report(progress, cancel, 0.15, "Segmentation, screws, decompressions and the no-go zone", what)
        planned = run_job(job, scaled_progress(progress, 0.15, 0.8), cancel)
        report(progress, cancel, 0.8, "Adding the plan to the scene", what)
        result = self.applyResult(planned, inputVolume, inputLabelmap, outputSegmentation, createSurface, scene)
        result.seconds = time.perf_counter() - started
        report(progress, None, 1.0, "Done", what)
        logging.info(
            f"SpinePlanning: {len(result.screws)} screw(s), {len(result.decompressions)} decompression(s), "
            f"no-go zone {result.zoneVolumeMm3:.0f} mm3 in {result.seconds:.2f} s"
        )
        return result


#
# SpinePlanningTest
#


class SpinePlanningTest(SelfTestMixin, ScriptedLoadableModuleTest):
    """Self-test: plans a synthetic CT phantom (its label map and the automatic segmentation)."""

    def _phantom(self):
        scene = slicer.mrmlScene
        spec = {"spacing": (1.5, 1.5, 1.5), "noise": 0.0, "stenosis": {"L4-L5": 60.0}}
        image = phantom_node(scene, "image", "SpinePlanningCT", **spec)
        labels = phantom_node(scene, "labels", "SpinePlanningLabels", **spec)
        return image, labels

    def test_Plan(self):
        self.delayDisplay("Plan of a synthetic CT phantom with a decompression at L4-L5")
        image, labelmap = self._phantom()
        before = slicer.util.arrayFromVolume(labelmap).copy()
        logic = SpinePlanningLogic()
        fractions = []
        result = logic.process(
            image, labelmap, levels=["L4-L5"], progress=lambda fraction, message="": fractions.append(fraction)
        )
        segmentation = result.outputSegmentation
        names = [segmentation.GetSegmentation().GetNthSegment(i).GetName() for i in range(2)]
        self.assertEqual(names, ["Decompression L4-L5", "No-go zone"])
        self.assertEqual([row["level"] for row in result.decompressions], ["L4-L5"])
        self.assertGreater(result.decompressions[0]["bone_volume_cm3"], 0.0)
        self.assertGreaterEqual(len(result.screws), 8)
        self.assertEqual(fractions[-1], 1.0)
        self.assertTrue((slicer.util.arrayFromVolume(labelmap) == before).all())

        # a rerun into the same output replaces the plan; a resized screw is evaluated again
        count = slicer.mrmlScene.GetNumberOfNodes()
        again = logic.process(image, labelmap, levels="L4-L5", outputSegmentation=segmentation, createSurface=False)
        self.assertEqual(again.outputSegmentation.GetID(), segmentation.GetID())
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), count)
        line = again.screws[0]
        logic.resizeScrew(line, logic.planLabelmap(segmentation), 4.5, 30.0, 2.0, logic.planImage(segmentation))
        row = logic.screwRows(segmentation)[0]
        self.assertEqual((row["diameter_mm"], row["length_mm"]), (4.5, 30.0))
        self.delayDisplay("Planning test passed")

    def test_Errors(self):
        logic = SpinePlanningLogic()
        with self.assertRaises(ValueError):
            logic.process(None)
        image, labelmap = self._phantom()
        with self.assertRaises(ValueError):
            logic.process(image, labelmap, marginMm=-1.0)
        with self.assertRaises(ValueError):
            logic.process(image, labelmap, levels="L9-L7")
        with self.assertRaises(OperationCancelled):
            logic.process(image, labelmap, cancel=lambda: True)
        self.delayDisplay("Planning error tests passed")
