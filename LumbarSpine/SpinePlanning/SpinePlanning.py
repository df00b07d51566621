"""Spine Surgical Planning: a no-go zone (safety margin around the neural elements) as a segmentation.

The zone comes from :data:`NO_GO_CALL` in the Qt-free ``lumbarspine`` library, run by the panel in a worker
process through ``SpineModulesLib`` and by ``SpinePlanningLogic.process()`` directly.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
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
from SpineModulesLib.selftest import SelfTestMixin
from SpineModulesLib.widget import SpineModuleWidget, showSegmentationOnce

DOCUMENTATION_URL = "https://github.com/lumbarspine/SlicerLumbarSpine#readme"
MAX_MARGIN_MM = 20.0
NO_GO_CALL = "lumbarspine.planning:no_go_zone"
"""The library call that builds the zone: ``no_go_zone(labels, margin_mm=...) -> label Volume``."""


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
Builds a "no-go" zone for instrument planning: the neural elements (spinal cord, dural sac / spinal
canal) of a TotalSpineSeg label map grown by a safety margin in millimetres, as a segmentation that
can be shown in 3D next to planned screws or trajectories. A planning aid only: check every plan on
the images.
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
    outputSegmentation - segmentation receiving the no-go zone (None: a new one is created).
    show3D - build the closed surface and show it in the 3D view.
    """

    inputLabelmap: vtkMRMLLabelMapVolumeNode
    marginMm: Annotated[float, WithinRange(0.0, MAX_MARGIN_MM)] = 2.0
    outputSegmentation: vtkMRMLSegmentationNode
    show3D: bool = True


@dataclass
class PlanningResult:
    """What :meth:`SpinePlanningLogic.process` produced."""

    outputSegmentation: Any
    zoneVolumeMm3: float
    seconds: float
    backend: str = ""


#
# SpinePlanningWidget
#


class SpinePlanningWidget(SpineModuleWidget, ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: input label map, margin, output segmentation, Apply/Cancel, 3D display."""

    uiFile = "UI/SpinePlanning.ui"
    runFields = ("inputLabelmap", "outputSegmentation")
    lockedWidgets = ("inputSelector", "outputSegmentationSelector")
    defaultInput = ("inputLabelmap", "vtkMRMLLabelMapVolumeNode", "")

    def createLogic(self):
        return SpinePlanningLogic()

    def notReadyReason(self) -> str:
        return "" if self._parameterNode.inputLabelmap else _("Select an input label map.")

    def makeJob(self) -> Job:
        return self.logic.makeJob(self._parameterNode.inputLabelmap, self._parameterNode.marginMm)

    def applyResult(self, zone) -> str:
        parameters = self._parameterNode
        newSegmentation = parameters.outputSegmentation is None
        result = self.logic.applyResult(
            zone,
            parameters.inputLabelmap,
            parameters.marginMm,
            parameters.outputSegmentation,
            parameters.show3D,
            slicer.mrmlScene,
        )
        parameters.outputSegmentation = result.outputSegmentation
        if newSegmentation:  # first display only; later runs keep the user's display settings
            showSegmentationOnce(result.outputSegmentation, parameters.show3D)
        return _("No-go zone {volume:.1f} mL ({margin:.1f} mm margin) -> {name}").format(
            volume=result.zoneVolumeMm3 / 1000.0, margin=parameters.marginMm, name=result.outputSegmentation.GetName()
        )


#
# SpinePlanningLogic
#


class SpinePlanningLogic(ScriptedLoadableModuleLogic):
    """No-go zone computation without any GUI: usable from the Python console or batch scripts.

    Example::

        result = SpinePlanningLogic().process(labelmapNode, marginMm=3.0)
        print(result.outputSegmentation.GetName(), result.zoneVolumeMm3)
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

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

    def makeJob(self, inputLabelmap, marginMm: float = 2.0) -> Job:
        """The no-go zone of ``inputLabelmap`` as a job (:data:`NO_GO_CALL` with ``margin_mm``)."""
        margin = self.checkMargin(marginMm)
        labels = label_volume_from_node(inputLabelmap)
        return Job(NO_GO_CALL, (labels,), {"margin_mm": margin}, title=_("No-go zone"))

    def applyResult(self, zone, inputLabelmap, marginMm, outputSegmentation, createSurface, scene) -> PlanningResult:
        """Store the zone label map in ``outputSegmentation`` (a new one in ``scene`` when None)."""
        from lumbarspine.slicer_nodes import labels_to_segmentation_node

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
        return PlanningResult(segmentation, zoneVoxels * float(np.prod(zone.spacing)), 0.0)

    def process(
        self,
        inputLabelmap,
        marginMm: float = 2.0,
        outputSegmentation=None,
        createSurface: bool = True,
        progress: Optional[Callable[[float, str], None]] = None,
        cancel: Optional[Callable[[], bool]] = None,
        scene=None,
    ) -> PlanningResult:
        """Grow the neural elements of ``inputLabelmap`` by ``marginMm`` and store it as a segmentation.

        :param inputLabelmap: label map volume node in the TotalSpineSeg convention (an integer scalar
            volume is accepted and read as labels).
        :param marginMm: safety margin, 0 to ``MAX_MARGIN_MM`` mm.
        :param outputSegmentation: segmentation node to fill (a new one is created when None).
        :param createSurface: also build the closed-surface representation (for 3D display).
        :param progress: ``progress(fraction, message)``.
        :param cancel: ``cancel() -> bool``; True stops the run with :class:`OperationCancelled`.
        :param scene: MRML scene for a new segmentation (default: the input node's scene).
        :raises ValueError: missing or non-integer input, margin out of range, no neural elements.
        """
        what = "No-go zone computation"
        check_output_node(outputSegmentation, "vtkMRMLSegmentationNode", "segmentation")
        started = time.perf_counter()
        report(progress, cancel, 0.05, "Reading the label map", what)
        job = self.makeJob(inputLabelmap, marginMm)
        scene = scene_of(inputLabelmap, scene, "input label map")
        margin = job.kwargs["margin_mm"]
        report(progress, cancel, 0.15, f"Growing the neural elements by {margin:g} mm", what)
        zone = run_job(job, scaled_progress(progress, 0.15, 0.7), cancel)
        report(progress, cancel, 0.7, "Writing the segmentation", what)
        result = self.applyResult(zone, inputLabelmap, margin, outputSegmentation, createSurface, scene)
        result.seconds = time.perf_counter() - started
        report(progress, None, 1.0, "Done", what)
        logging.info(
            f"SpinePlanning: no-go zone {result.zoneVolumeMm3:.0f} mm3 ({margin:g} mm) in {result.seconds:.2f} s"
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
        self.delayDisplay("No-go zone test passed")

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
