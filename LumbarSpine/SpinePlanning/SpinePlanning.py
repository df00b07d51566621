"""Spine Surgical Planning: a no-go zone (safety margin around the neural elements) as a segmentation.

All computation lives in the Qt-free ``lumbarspine`` library (``lumbarspine.planning``); this module
wires it to the Slicer GUI and MRML scene.
"""

import logging
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Annotated, Any

import numpy as np
import slicer
import vtk
from slicer import vtkMRMLLabelMapVolumeNode, vtkMRMLSegmentationNode
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

# Make the "lumbarspine" library importable when the module is loaded from the source tree
# (LumbarSpine/SpinePlanning/SpinePlanning.py -> LumbarSpine/lumbarspine). In an installed
# extension the package sits next to the module files and is importable already.
try:
    import lumbarspine  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DOCUMENTATION_URL = "https://github.com/lumbarspine/SlicerLumbarSpine#readme"
MAX_MARGIN_MM = 20.0


#
# SpinePlanning
#


class SpinePlanning(ScriptedLoadableModule):
    """Module description shown in Slicer's module panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Spine Surgical Planning"
        self.parent.categories = ["Spine"]
        self.parent.dependencies = []
        self.parent.contributors = ["LumbarSpine contributors"]
        self.parent.helpText = f"""
Builds a "no-go" zone for instrument planning: the neural elements (spinal cord, dural sac / spinal
canal) of a TotalSpineSeg label map grown by a safety margin in millimetres, as a segmentation that
can be shown in 3D next to planned screws or trajectories. A planning aid only: check every plan on
the images.
See the <a href="{DOCUMENTATION_URL}">LumbarSpine documentation</a>.
"""
        self.parent.acknowledgementText = """
Developed as part of the LumbarSpine extension. Module structure after the 3D Slicer scripted module
template by Jean-Christophe Fillion-Robin (Kitware), Andras Lasso (PerkLab) and Steve Pieper (Isomics).
"""


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


class OperationCancelled(RuntimeError):
    """Raised by the logic when its ``cancel()`` callback returns True."""


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


class SpinePlanningWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: input label map, margin, output segmentation, Apply/Cancel, 3D display."""

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

        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SpinePlanning.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        # The .ui connects the top-level qMRMLWidget's mrmlSceneChanged(vtkMRMLScene*) to each selector.
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = SpinePlanningLogic()

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
        self.ui.applyButton.toolTip = "Compute the no-go zone." if ready else "Select an input label map."

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
        """Compute the no-go zone and show it."""
        self._cancelRequested = False
        self._setRunning(True)
        try:
            with slicer.util.tryWithErrorDisplay("No-go zone computation failed.", waitCursor=True):
                show3D = self._parameterNode.show3D
                try:
                    result = self.logic.process(
                        self._parameterNode.inputLabelmap,
                        marginMm=self._parameterNode.marginMm,
                        outputSegmentation=self._parameterNode.outputSegmentation,
                        createSurface=show3D,
                        progress=self._onProgress,
                        cancel=self._isCancelRequested,
                        scene=slicer.mrmlScene,
                    )
                except OperationCancelled:
                    self.ui.statusLabel.text = "Cancelled."
                    return
                self._parameterNode.outputSegmentation = result.outputSegmentation
                backend = f"backend {result.backend}, " if result.backend else ""
                self.ui.statusLabel.text = (
                    f"No-go zone {result.zoneVolumeMm3 / 1000.0:.1f} mL "
                    f"({self._parameterNode.marginMm:.1f} mm margin): {backend}{result.seconds:.2f} s "
                    f"-> {result.outputSegmentation.GetName()}"
                )
                self._showResults(self._parameterNode.inputLabelmap, result.outputSegmentation, show3D)
        finally:
            self._setRunning(False)

    def _showResults(self, labelmapNode, segmentationNode, show3D: bool) -> None:
        slicer.util.setSliceViewerLayers(label=labelmapNode, labelOpacity=0.5)
        displayNode = segmentationNode.GetDisplayNode()
        if displayNode is not None:
            displayNode.SetVisibility(True)
            displayNode.SetVisibility3D(show3D)
            displayNode.SetOpacity3D(0.6)
        layoutManager = slicer.app.layoutManager()
        if show3D and layoutManager is not None and layoutManager.threeDViewCount > 0:
            threeDView = layoutManager.threeDWidget(0).threeDView()
            threeDView.resetFocalPoint()
            threeDView.resetCamera()


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
    def _report(progress, cancel, fraction: float, message: str) -> None:
        if cancel is not None and cancel():
            raise OperationCancelled("No-go zone computation was cancelled by the user.")
        if progress is not None:
            progress(fraction, message)

    def process(
        self,
        inputLabelmap,
        marginMm: float = 2.0,
        outputSegmentation=None,
        createSurface: bool = True,
        progress: Callable[[float, str], None] | None = None,
        cancel: Callable[[], bool] | None = None,
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
        from lumbarspine.planning import no_go_zone
        from lumbarspine.slicer_nodes import labels_to_segmentation_node, volume_from_node

        if inputLabelmap is None:
            raise ValueError("No input label map: select a spine label map (TotalSpineSeg convention).")
        if not inputLabelmap.IsA("vtkMRMLScalarVolumeNode"):
            raise ValueError(f"{inputLabelmap.GetName()!r} is not a label map volume.")
        if outputSegmentation is not None and not outputSegmentation.IsA("vtkMRMLSegmentationNode"):
            raise ValueError(f"Output {outputSegmentation.GetName()!r} is not a segmentation node.")
        try:
            marginMm = float(marginMm)
        except (TypeError, ValueError):
            raise ValueError(f"The margin must be a number of millimetres; got {marginMm!r}.") from None
        if not math.isfinite(marginMm) or not 0.0 <= marginMm <= MAX_MARGIN_MM:
            raise ValueError(f"The margin must be between 0 and {MAX_MARGIN_MM:g} mm; got {marginMm:g} mm.")
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
        self._report(progress, cancel, 0.15, f"Growing the neural elements by {marginMm:g} mm")
        zone = no_go_zone(labels, margin_mm=marginMm)
        zoneArray = zone.array
        if not isinstance(zoneArray, np.ndarray) and hasattr(zoneArray, "get"):
            zoneArray = zoneArray.get()  # a CuPy array
        zoneVoxels = int(np.count_nonzero(zoneArray))
        if zoneVoxels == 0:
            raise ValueError(
                "The no-go zone is empty: the label map has no neural elements "
                "(spinal cord label 1 or spinal canal label 2 in the TotalSpineSeg convention)."
            )
        self._report(progress, cancel, 0.7, "Writing the segmentation")
        name = (
            None
            if outputSegmentation is not None
            else scene.GenerateUniqueName(f"{inputLabelmap.GetName()}_nogo_{marginMm:g}mm")
        )
        segmentation = labels_to_segmentation_node(zone, scene, node=outputSegmentation, name=name)
        # The zone's label value (1) is "spinal_cord" in TotalSpineSeg: name and colour the segment as the no-go zone.
        segment = segmentation.GetSegmentation().GetNthSegment(0)
        segment.SetName("no_go_zone")
        segment.SetColor(1.0, 0.0, 0.0)
        if createSurface:
            self._report(progress, cancel, 0.8, "Building the 3D surface")
            segmentation.CreateClosedSurfaceRepresentation()
        seconds = time.perf_counter() - started
        backend = getattr(getattr(zone, "backend", None), "name", "") or ""
        self._report(progress, None, 1.0, "Done")
        zoneVolumeMm3 = zoneVoxels * float(np.prod(zone.spacing))
        logging.info(f"SpinePlanning: no-go zone {zoneVolumeMm3:.0f} mm3 ({marginMm:g} mm margin) in {seconds:.2f} s")
        return PlanningResult(segmentation, zoneVolumeMm3, seconds, backend)


#
# SpinePlanningTest
#


def _phantomVolumes(**specArguments):
    """(image, labels) Volumes of a synthetic lumbar phantom (see lumbarspine.phantom.PhantomSpec)."""
    from lumbarspine.phantom import PhantomSpec, generate_phantom

    phantom = generate_phantom(PhantomSpec(**specArguments))
    return phantom.image, phantom.labels


class SpinePlanningTest(ScriptedLoadableModuleTest):
    """Self-test: no-go zones of a synthetic phantom grow with the margin."""

    def setUp(self):
        slicer.mrmlScene.Clear(0)

    def runTest(self):
        self.setUp()
        self.test_NoGoZone()
        self.setUp()
        self.test_Errors()

    def _labelmap(self):
        from lumbarspine.slicer_nodes import volume_to_node

        _, labels = _phantomVolumes(spacing=(1.5, 1.5, 1.5), noise=0.0)
        return volume_to_node(labels, slicer.mrmlScene, name="SpinePlanningPhantom")

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
