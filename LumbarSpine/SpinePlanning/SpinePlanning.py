"""Spine Surgical Planning: pedicle screws sized to the patient and a no-go zone, with per-screw editing.

A run is :data:`PLAN_CALL` of the Qt-free ``lumbarspine`` library (the no-go zone as a segmentation, and a
screw per side of L1-L5 and S1 as line markups with models), re-planning one screw ``REPLAN_CALL``;
the panel runs both in a worker process through ``SpineModulesLib``, ``SpinePlanningLogic.process()`` in
this one. Resizing, hiding and moving a screw (its line's end points) are evaluated here, by the library.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Optional

import numpy as np
import slicer
from slicer import vtkMRMLLabelMapVolumeNode, vtkMRMLSegmentationNode
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import *  # the four base classes, as in Slicer's module template
from slicer.util import VTKObservationMixin

from SpineModulesLib import Job, OperationCancelled, phantom_node, run_job
from SpineModulesLib.i18n import _, translate
from SpineModulesLib.nodes import check_output_node, label_volume_from_node, report, scaled_progress, scene_of
from SpineModulesLib.screws import ScrewEditingMixin, put_screws_in_scene, screw_rows
from SpineModulesLib.selftest import SelfTestMixin
from SpineModulesLib.widget import SpineModuleWidget, fillTableWidget, showSegmentationOnce

DOCUMENTATION_URL = "https://github.com/lumbarspine/SlicerLumbarSpine#readme"
MAX_MARGIN_MM = 20.0
PLAN_CALL = "lumbarspine.planning.screw_edit:plan_label_map"
"""The run: ``plan_label_map(labels, margin_mm=, screws=) -> {"zone": label Volume, "screws", "refused", ...}``."""
SCREW_COLUMNS = (
    ("vertebra", "Vertebra", "{}"),
    ("side", "Side", "{}"),
    ("diameter_mm", "Ø (mm)", "{:g}"),
    ("length_mm", "Length (mm)", "{:.0f}"),
    ("grade", "Grade", "{}"),
    ("breach_mm", "Breach (mm)", "{:.1f}"),
)
"""The panel's screw table: (row key, title, format)."""


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
Plans pedicle screws (L1-L5, S1) sized to the patient's pedicles of a TotalSpineSeg label map and builds a
"no-go" zone: the neural elements (spinal cord, dural sac / spinal canal) grown by a safety margin in
millimetres. Each screw is graded by its breach outside the bone (Gertzbein-Robbins); in the screw table a
screw can be resized, re-planned, hidden, and moving its end points in a view evaluates it again. A
planning aid only: check every plan on the images.
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

    inputLabelmap - spine label map (TotalSpineSeg convention).
    marginMm - safety margin around the neural elements, mm.
    planScrews - plan the pedicle screws too.
    outputSegmentation - segmentation receiving the no-go zone (None: a new one is created); it owns the screws.
    show3D - build the closed surface and show it in the 3D view.
    screwDiameterMm, screwLengthMm - size (mm) for the selected screw (Apply size, Re-plan with this size).
    replanWithSize - re-plan with that size instead of the planner's own sizing.
    """

    inputLabelmap: vtkMRMLLabelMapVolumeNode
    marginMm: Annotated[float, WithinRange(0.0, MAX_MARGIN_MM)] = 2.0
    planScrews: bool = True
    outputSegmentation: vtkMRMLSegmentationNode
    show3D: bool = True
    screwDiameterMm: Annotated[float, WithinRange(3.0, 10.0)] = 6.0
    screwLengthMm: Annotated[float, WithinRange(20.0, 70.0)] = 45.0
    replanWithSize: bool = False


@dataclass
class PlanningResult:
    """What :meth:`SpinePlanningLogic.process` produced."""

    outputSegmentation: Any
    zoneVolumeMm3: float
    seconds: float
    backend: str = ""
    screws: list = field(default_factory=list)
    refused: list = field(default_factory=list)


#
# SpinePlanningWidget
#


class SpinePlanningWidget(SpineModuleWidget, ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: label map, margin, output, Apply/Cancel, 3D display and the screw table."""

    uiFile = "UI/SpinePlanning.ui"
    runFields = ("inputLabelmap", "outputSegmentation")
    lockedWidgets = ("inputSelector", "outputSegmentationSelector")
    defaultInput = ("inputLabelmap", "vtkMRMLLabelMapVolumeNode", "")

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

    def cleanup(self) -> None:
        self.logic.stopObserving()
        SpineModuleWidget.cleanup(self)

    def onSceneStartClose(self, caller=None, event=None) -> None:
        self.logic.stopObserving()
        self._observedOutput, self._selectedScrewId = None, None
        SpineModuleWidget.onSceneStartClose(self, caller, event)

    def notReadyReason(self) -> str:
        return "" if self._parameterNode.inputLabelmap else _("Select an input label map.")

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
        parameters = self._parameterNode
        return self.logic.makeJob(parameters.inputLabelmap, parameters.marginMm, parameters.planScrews)

    def applyResult(self, planned) -> str:
        parameters = self._parameterNode
        newSegmentation = parameters.outputSegmentation is None
        result = self.logic.applyResult(
            planned,
            parameters.inputLabelmap,
            parameters.marginMm,
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
        return _("No-go zone {volume:.1f} mL ({margin:.1f} mm margin), {screws} screw(s) -> {name}").format(
            volume=result.zoneVolumeMm3 / 1000.0,
            margin=parameters.marginMm,
            screws=len(result.screws),
            name=result.outputSegmentation.GetName(),
        )

    # ------------------------------------------------------------------ the screw table
    def _observeScrews(self) -> None:
        parameters = self._parameterNode
        self.logic.stopObserving()
        if parameters and parameters.outputSegmentation is not None and parameters.inputLabelmap is not None:
            try:
                self.logic.observeScrews(
                    parameters.outputSegmentation, parameters.inputLabelmap, parameters.marginMm, self.onScrewMoved
                )
            except ValueError as exc:  # e.g. a label map without voxels yet: the screws are shown, not followed
                self.ui.statusLabel.text = str(exc)

    def refreshScrews(self) -> None:
        output = self._parameterNode.outputSegmentation if self._parameterNode else None
        rows = self.logic.screwRows(output)
        self._screwIds = [row["id"] for row in rows]
        fillTableWidget(self.ui.screwTable, SCREW_COLUMNS, rows)
        self.ui.refusedLabel.text = self.logic.refusedHtml(output)
        selected = next((row for row in rows if row["id"] == self._selectedScrewId), None)
        self._selectedScrewId = selected["id"] if selected else None
        editable = selected is not None and not self.controller.running
        self.ui.resizeScrewButton.enabled = editable
        self.ui.replanScrewButton.enabled = editable
        self.ui.screwVisibleCheckBox.enabled = selected is not None
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
        parameters = self._parameterNode
        self._screwAction(
            lambda line: self.logic.resizeScrew(
                line,
                parameters.inputLabelmap,
                parameters.screwDiameterMm,
                parameters.screwLengthMm,
                parameters.marginMm,
            )
        )

    def onReplanScrew(self) -> None:
        """Re-plan the selected screw in a worker; the result moves it when the run succeeds."""
        parameters = self._parameterNode
        withSize = parameters.replanWithSize

        def start(line):
            job = self.logic.replanJob(
                line,
                parameters.inputLabelmap,
                parameters.screwDiameterMm if withSize else None,
                parameters.screwLengthMm if withSize else None,
                parameters.marginMm,
            )
            lineId = line.GetID()
            self.startJob(job, lambda row: self._applyReplan(lineId, row))
            return _("Re-planning {name}...").format(name=line.GetName())

        self._screwAction(start)

    def _applyReplan(self, lineId, row) -> str:
        line = slicer.mrmlScene.GetNodeByID(lineId)
        if line is None:
            raise ValueError(_("The screw was removed during the run."))
        message = self.logic.applyReplan(line, row, self._parameterNode.inputLabelmap, self._parameterNode.marginMm)
        self.refreshScrews()
        return message

    def onScrewVisibility(self, visible: bool) -> None:
        self._screwAction(lambda line: self.logic.setScrewVisible(line, visible))


#
# SpinePlanningLogic
#


class SpinePlanningLogic(ScrewEditingMixin, ScriptedLoadableModuleLogic):
    """Screw planning and the no-go zone without any GUI: usable from the Python console or batch scripts;
    the per-screw edits (resize, re-plan, hide, follow moved end points) come from ``ScrewEditingMixin``.

    Example::

        result = SpinePlanningLogic().process(labelmapNode, marginMm=3.0)
        print(result.outputSegmentation.GetName(), result.zoneVolumeMm3, len(result.screws))
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

    def makeJob(self, inputLabelmap, marginMm: float = 2.0, planScrews: bool = True) -> Job:
        """The plan of ``inputLabelmap`` as a job (:data:`PLAN_CALL` with ``margin_mm`` and ``screws``)."""
        margin = self.checkMargin(marginMm)
        labels = label_volume_from_node(inputLabelmap)
        return Job(PLAN_CALL, (labels,), {"margin_mm": margin, "screws": bool(planScrews)}, title=_("Planning"))

    def applyResult(self, planned, inputLabelmap, marginMm, outputSegmentation, createSurface, scene) -> PlanningResult:
        """Store the zone in ``outputSegmentation`` (a new one in ``scene`` when None) and replace its screws."""
        from lumbarspine.slicer_nodes import labels_to_segmentation_node

        zone = planned["zone"]
        zoneVoxels = int(np.count_nonzero(np.asarray(zone.array)))
        if zoneVoxels == 0:
            raise ValueError(
                "The no-go zone is empty: the label map has no neural elements "
                "(spinal cord label 1 or spinal canal label 2 in the TotalSpineSeg convention)."
            )
        name = None
        if outputSegmentation is None:
            name = scene.GenerateUniqueName(f"{inputLabelmap.GetName()}_nogo_{float(marginMm):g}mm")
        segmentation = labels_to_segmentation_node(zone, scene, node=outputSegmentation, name=name)
        # The zone's label value (1) is "spinal_cord" in TotalSpineSeg: name and colour the segment as the no-go zone.
        segment = segmentation.GetSegmentation().GetNthSegment(0)
        segment.SetName("no_go_zone")
        segment.SetColor(1.0, 0.0, 0.0)
        if createSurface:
            segmentation.CreateClosedSurfaceRepresentation()
        lines = put_screws_in_scene(planned["screws"], planned["refused"], segmentation, scene)
        volume = zoneVoxels * float(np.prod(zone.spacing))
        return PlanningResult(segmentation, volume, 0.0, screws=lines, refused=list(planned["refused"]))

    def process(
        self,
        inputLabelmap,
        marginMm: float = 2.0,
        outputSegmentation=None,
        createSurface: bool = True,
        progress: Optional[Callable[[float, str], None]] = None,
        cancel: Optional[Callable[[], bool]] = None,
        scene=None,
        planScrews: bool = True,
    ) -> PlanningResult:
        """Plan the screws of ``inputLabelmap`` and grow its neural elements by ``marginMm`` (the no-go zone).

        :param inputLabelmap: label map volume node in the TotalSpineSeg convention (an integer scalar
            volume is accepted and read as labels).
        :param marginMm: safety margin, 0 to ``MAX_MARGIN_MM`` mm.
        :param outputSegmentation: segmentation node to fill (a new one is created when None).
        :param createSurface: also build the closed-surface representation (for 3D display).
        :param progress: ``progress(fraction, message)``.
        :param cancel: ``cancel() -> bool``; True stops the run with :class:`OperationCancelled`.
        :param scene: MRML scene for new nodes (default: the input node's scene).
        :param planScrews: plan the pedicle screws (line markups and models owned by the segmentation).
        :raises ValueError: missing or non-integer input, margin out of range, no neural elements.
        """
        what = "Planning"
        check_output_node(outputSegmentation, "vtkMRMLSegmentationNode", "segmentation")
        started = time.perf_counter()
        report(progress, cancel, 0.05, "Reading the label map", what)
        job = self.makeJob(inputLabelmap, marginMm, planScrews)
        scene = scene_of(inputLabelmap, scene, "input label map")
        margin = job.kwargs["margin_mm"]
        report(progress, cancel, 0.15, f"No-go zone ({margin:g} mm) and screws", what)
        planned = run_job(job, scaled_progress(progress, 0.15, 0.7), cancel)
        report(progress, cancel, 0.7, "Writing the segmentation and the screws", what)
        result = self.applyResult(planned, inputLabelmap, margin, outputSegmentation, createSurface, scene)
        result.seconds = time.perf_counter() - started
        report(progress, None, 1.0, "Done", what)
        logging.info(
            f"SpinePlanning: no-go zone {result.zoneVolumeMm3:.0f} mm3 ({margin:g} mm), "
            f"{len(result.screws)} screw(s) in {result.seconds:.2f} s"
        )
        return result


#
# SpinePlanningTest
#


class SpinePlanningTest(SelfTestMixin, ScriptedLoadableModuleTest):
    """Self-test: no-go zones of a synthetic phantom grow with the margin."""

    def _labelmap(self):
        return phantom_node(slicer.mrmlScene, "labels", "SpinePlanningPhantom", spacing=(1.5, 1.5, 1.5), noise=0.0)

    def test_NoGoZone(self):
        self.delayDisplay("No-go zone of a synthetic phantom")
        labelmap = self._labelmap()
        before = slicer.util.arrayFromVolume(labelmap).copy()
        logic = SpinePlanningLogic()

        fractions = []
        small = logic.process(labelmap, marginMm=2.0, progress=lambda fraction, message="": fractions.append(fraction))
        segmentation = small.outputSegmentation
        self.assertTrue(segmentation.IsA("vtkMRMLSegmentationNode"))
        self.assertGreater(segmentation.GetSegmentation().GetNumberOfSegments(), 0)
        surfaceName = slicer.vtkSegmentationConverter.GetSegmentationClosedSurfaceRepresentationName()
        self.assertTrue(segmentation.GetSegmentation().ContainsRepresentation(surfaceName))
        self.assertGreater(small.zoneVolumeMm3, 0.0)
        self.assertEqual(fractions[-1], 1.0)

        # A wider margin gives a larger zone; re-running into the same node adds no segmentation.
        count = slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")
        large = logic.process(labelmap, marginMm=5.0, outputSegmentation=segmentation, createSurface=False)
        self.assertEqual(large.outputSegmentation.GetID(), segmentation.GetID())
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode"), count)
        self.assertGreater(large.zoneVolumeMm3, small.zoneVolumeMm3)

        self.assertTrue(np.array_equal(slicer.util.arrayFromVolume(labelmap), before))

        # The screws: one row each; a resized screw is evaluated again, a hidden one is hidden.
        rows = logic.screwRows(segmentation)
        self.assertGreaterEqual(len(rows), 8)
        line = large.screws[0]
        logic.resizeScrew(line, labelmap, 4.5, 30.0)
        row = logic.screwRows(segmentation)[0]
        self.assertEqual((row["diameter_mm"], row["length_mm"]), (4.5, 30.0))
        logic.setScrewVisible(line, False)
        self.assertFalse(logic.screwRows(segmentation)[0]["visible"])
        self.delayDisplay("No-go zone and screw test passed")

    def test_Errors(self):
        logic = SpinePlanningLogic()
        with self.assertRaises(ValueError):
            logic.process(None)
        labelmap = self._labelmap()
        with self.assertRaises(ValueError):
            logic.process(labelmap, marginMm=-1.0)
        with self.assertRaises(ValueError):
            logic.process(labelmap, marginMm=MAX_MARGIN_MM + 1.0)
        with self.assertRaises(OperationCancelled):
            logic.process(labelmap, cancel=lambda: True)
        self.delayDisplay("Planning error tests passed")
