"""Spine Volume Filtering: denoise / enhance a spine CT or MRI volume on the GPU (CuPy) or the CPU.

All computation lives in the Qt-free ``lumbarspine`` library (``lumbarspine.filters``); this module
wires it to the Slicer GUI and MRML scene.
"""

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

# Make the "lumbarspine" library importable when the module is loaded from the source tree
# (LumbarSpine/SpineFiltering/SpineFiltering.py -> LumbarSpine/lumbarspine). In an installed
# extension the package sits next to the module files and is importable already.
try:
    import lumbarspine  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BACKENDS = ("auto", "cupy", "numpy")
DOCUMENTATION_URL = "https://github.com/lumbarspine/SlicerLumbarSpine#readme"


#
# SpineFiltering
#


class SpineFiltering(ScriptedLoadableModule):
    """Module description shown in Slicer's module panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Spine Volume Filtering"
        self.parent.categories = ["Spine"]
        self.parent.dependencies = []
        self.parent.contributors = ["LumbarSpine contributors"]
        self.parent.helpText = f"""
Denoise and enhance spine CT / MRI volumes with single filters or preset pipelines. Filters run on an
NVIDIA GPU through CuPy when one works (backend "auto" or "cupy") and on the CPU with NumPy/SciPy
otherwise. The input volume is never modified unless it is explicitly picked as the output.
See the <a href="{DOCUMENTATION_URL}">LumbarSpine documentation</a>.
"""
        self.parent.acknowledgementText = """
Developed as part of the LumbarSpine extension. Module structure after the 3D Slicer scripted module
template by Jean-Christophe Fillion-Robin (Kitware), Andras Lasso (PerkLab) and Steve Pieper (Isomics).
"""


#
# SpineFilteringParameterNode
#


@parameterNodeWrapper
class SpineFilteringParameterNode:
    """Parameters of the module, saved with the scene.

    inputVolume - the volume to filter.
    outputVolume - where the result goes (None: a new volume is created).
    operation - "filter:<name>" or "preset:<name>".
    backend - "auto", "cupy" or "numpy".
    filterParameters - JSON object {filter name: {parameter: value}} of the values the user set.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    outputVolume: vtkMRMLScalarVolumeNode
    operation: str = ""
    backend: Annotated[str, Choice(list(BACKENDS))] = "auto"
    filterParameters: str = "{}"


#
# Helpers
#


def _parameterInfo(parameter: Any) -> dict:
    """Read a library parameter description defensively (attribute names may vary)."""

    def get(*names, default=None):
        for name in names:
            value = getattr(parameter, name, None)
            if value is not None:
                return value
        if isinstance(parameter, dict):
            for name in names:
                if parameter.get(name) is not None:
                    return parameter[name]
        return default

    return {
        "name": str(get("name", default="")),
        "title": str(get("title", "label", "name", default="")),
        "default": get("default", "value", default=0.0),
        "units": str(get("units", "unit", default="") or ""),
        "minimum": get("minimum", "min"),
        "maximum": get("maximum", "max"),
        "help": str(get("help", "description", "doc", default="") or ""),
        "choices": get("choices"),
        "kind": str(get("kind", "type", default="") or ""),
    }


def _ensureScipy() -> bool:
    """SciPy is needed by the CPU backend; Slicer may not ship it. Offer to install it (never at import time)."""
    import importlib.util

    if importlib.util.find_spec("scipy") is not None:
        return True
    if not slicer.util.confirmOkCancelDisplay(
        "Spine filtering needs the Python package 'scipy', which is not installed. Install it now?",
        "Missing Python package",
    ):
        return False
    slicer.util.pip_install("scipy")
    return importlib.util.find_spec("scipy") is not None


@dataclass
class FilteringResult:
    """What :meth:`SpineFilteringLogic.process` produced."""

    outputVolume: Any
    backend: str
    seconds: float
    kind: str
    name: str


#
# SpineFilteringWidget
#


class SpineFilteringWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: input, filter/preset, parameters, backend, output, Apply/Cancel."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._parameterWidgets = {}
        self._cancelRequested = False
        self._running = False

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)

        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SpineFiltering.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        # The .ui connects the top-level qMRMLWidget's mrmlSceneChanged(vtkMRMLScene*) to each selector.
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = SpineFilteringLogic()

        self.ui.progressBar.setVisible(False)
        self.ui.cancelButton.enabled = False
        self._populateOperations()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.operationComboBox.connect("currentIndexChanged(int)", self.onOperationChanged)
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
        if not self._parameterNode.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode and not firstVolumeNode.IsA("vtkMRMLLabelMapVolumeNode"):
                self._parameterNode.inputVolume = firstVolumeNode

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # Widgets with the "SlicerParameterName" dynamic property in the .ui are connected here.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._selectOperation(self._parameterNode.operation)
            # Sync the parameter node with the combo and rebuild the form with the stored values.
            self.onOperationChanged(self.ui.operationComboBox.currentIndex)

    def _checkCanApply(self, caller=None, event=None) -> None:
        ready = bool(self._parameterNode and self._parameterNode.inputVolume and self._currentOperation())
        self.ui.applyButton.enabled = ready and not self._running
        self.ui.applyButton.toolTip = "Run the selected filter or preset." if ready else "Select an input volume."

    # ------------------------------------------------------------------ filter / preset choice
    def _populateOperations(self) -> None:
        combo = self.ui.operationComboBox
        combo.blockSignals(True)
        combo.clear()
        try:
            operations = self.logic.availableOperations()
        except Exception as exc:  # the library could not be imported: say so instead of an empty panel
            logging.error(f"SpineFiltering: cannot list filters: {exc}")
            self.ui.statusLabel.text = f"The lumbarspine library is not available: {exc}"
            operations = []
        for key, title in operations:
            combo.addItem(title, key)
        combo.blockSignals(False)
        if operations:
            self.onOperationChanged(combo.currentIndex)

    def _currentOperation(self) -> str:
        index = self.ui.operationComboBox.currentIndex
        if index < 0:
            return ""
        return self.ui.operationComboBox.itemData(index) or ""

    def _selectOperation(self, key: str) -> None:
        if not key:
            return
        index = self.ui.operationComboBox.findData(key)
        if index >= 0 and index != self.ui.operationComboBox.currentIndex:
            self.ui.operationComboBox.currentIndex = index

    def onOperationChanged(self, index: int) -> None:
        key = self._currentOperation()
        if self._parameterNode and key and self._parameterNode.operation != key:
            self._parameterNode.operation = key
        self._buildParameterForm(key)
        self._checkCanApply()

    def _storedValues(self, name: str) -> dict:
        if not self._parameterNode:
            return {}
        try:
            return dict(json.loads(self._parameterNode.filterParameters or "{}").get(name, {}))
        except (ValueError, AttributeError):
            return {}

    def _storeValues(self) -> None:
        key = self._currentOperation()
        if not self._parameterNode or not key.startswith("filter:"):
            return
        try:
            stored = json.loads(self._parameterNode.filterParameters or "{}")
        except ValueError:
            stored = {}
        stored[key.split(":", 1)[1]] = self._currentParameterValues()
        self._parameterNode.filterParameters = json.dumps(stored)

    def _buildParameterForm(self, key: str) -> None:
        formLayout = self.ui.parametersFrame.layout()
        while formLayout.rowCount() > 0:
            formLayout.removeRow(0)  # deletes the row's widgets
        self._parameterWidgets = {}
        if not key:
            self.ui.operationHelpLabel.text = ""
            return
        kind, name = key.split(":", 1)
        self.ui.operationHelpLabel.text = self.logic.operationDescription(key)
        if kind != "filter":
            formLayout.addRow(qt.QLabel("A preset runs its steps with their own parameters."))
            return
        stored = self._storedValues(name)
        for parameter in self.logic.filterParameters(name):
            info = _parameterInfo(parameter)
            pname = info["name"]
            if info["kind"] == "volume":
                continue  # optional companion volumes (masks) are not set from this panel
            value = stored.get(pname, info["default"])
            isInteger = info["kind"] == "int" or (
                isinstance(info["default"], int) and not isinstance(info["default"], bool)
            )
            if info["choices"]:
                widget = qt.QComboBox()
                for choice in info["choices"]:
                    widget.addItem(str(choice), choice)
                widget.currentIndex = max(0, widget.findText(str(value)))
                widget.connect("currentIndexChanged(int)", lambda *_: self._storeValues())
            elif info["kind"] == "bool" or isinstance(info["default"], bool):
                widget = qt.QCheckBox()
                widget.checked = bool(value)
                widget.connect("toggled(bool)", lambda *_: self._storeValues())
            else:
                widget = qt.QDoubleSpinBox()
                widget.decimals = 0 if isInteger else 3
                widget.minimum = float(info["minimum"]) if info["minimum"] is not None else -1.0e9
                widget.maximum = float(info["maximum"]) if info["maximum"] is not None else 1.0e9
                span = widget.maximum - widget.minimum
                widget.singleStep = 1.0 if isInteger or span > 100 else max(span / 100.0, 0.001)
                if info["units"]:
                    widget.suffix = f" {info['units']}"
                widget.value = float(value) if value is not None else max(widget.minimum, 0.0)
                widget.connect("valueChanged(double)", lambda *_: self._storeValues())
            widget.setProperty("lumbarspineInteger", isInteger)
            tooltip = info["help"]
            low, high = info["minimum"], info["maximum"]
            if low is not None and high is not None:
                tooltip += f" (range {low:g} to {high:g} {info['units']})"
            elif low is not None:
                tooltip += f" (at least {low:g} {info['units']})"
            elif high is not None:
                tooltip += f" (at most {high:g} {info['units']})"
            tooltip = tooltip.replace(" )", ")")
            widget.toolTip = tooltip.strip()
            title = info["title"].replace("_", " ")
            formLayout.addRow(f"{title[:1].upper()}{title[1:]}:", widget)
            self._parameterWidgets[pname] = widget

    def _currentParameterValues(self) -> dict:
        values = {}
        for pname, widget in self._parameterWidgets.items():
            className = widget.className()
            if className == "QComboBox":
                values[pname] = widget.currentData if widget.currentData is not None else widget.currentText
            elif className == "QCheckBox":
                values[pname] = bool(widget.checked)
            elif widget.property("lumbarspineInteger"):
                values[pname] = int(round(widget.value))
            else:
                value = float(widget.value)
                # The spin box range stands in for unbounded parameters (e.g. an upper threshold of +inf).
                if value >= 1.0e9:
                    value = float("inf")
                elif value <= -1.0e9:
                    value = float("-inf")
                values[pname] = value
        return values

    # ------------------------------------------------------------------ running
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
        """Run the selected filter or preset on the input volume."""
        if not _ensureScipy():
            self.ui.statusLabel.text = "SciPy is needed: not run."
            return
        self._storeValues()
        self._cancelRequested = False
        self._setRunning(True)
        started = time.perf_counter()
        try:
            with slicer.util.tryWithErrorDisplay("Filtering failed.", waitCursor=True):
                from lumbarspine.filters import FilterCancelled

                try:
                    result = self.logic.process(
                        self._parameterNode.inputVolume,
                        outputVolume=self._parameterNode.outputVolume,
                        operation=self._currentOperation(),
                        parameters=self._currentParameterValues(),
                        backend=self._parameterNode.backend,
                        progress=self._onProgress,
                        cancel=self._isCancelRequested,
                        scene=slicer.mrmlScene,
                    )
                except FilterCancelled:
                    self.ui.statusLabel.text = f"Cancelled after {time.perf_counter() - started:.2f} s."
                    return
                # Later runs write into the same node until the user picks "Create new volume" again.
                if not result.outputVolume.IsA("vtkMRMLLabelMapVolumeNode"):
                    self._parameterNode.outputVolume = result.outputVolume
                if result.outputVolume.IsA("vtkMRMLLabelMapVolumeNode"):  # masks / labels from threshold etc.
                    slicer.util.setSliceViewerLayers(
                        background=self._parameterNode.inputVolume, label=result.outputVolume, fit=True
                    )
                else:
                    slicer.util.setSliceViewerLayers(background=result.outputVolume, fit=True)
                self.ui.statusLabel.text = (
                    f"{result.name}: backend {result.backend}, {result.seconds:.2f} s "
                    f"(total {time.perf_counter() - started:.2f} s) -> {result.outputVolume.GetName()}"
                )
        finally:
            self._setRunning(False)


#
# SpineFilteringLogic
#


class SpineFilteringLogic(ScriptedLoadableModuleLogic):
    """Filtering without any GUI: usable from the Python console or batch scripts.

    Example::

        logic = SpineFilteringLogic()
        result = logic.process(inputNode, operation="filter:gaussian", parameters={"sigma_mm": 1.0})
        print(result.outputVolume.GetName(), result.backend, result.seconds)
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return SpineFilteringParameterNode(super().getParameterNode())

    @staticmethod
    def availableOperations() -> list:
        """``[(key, title)]`` for every filter ("filter:<name>") and preset ("preset:<name>")."""
        from lumbarspine.filters import FILTERS, PRESETS

        operations = []
        for name, info in FILTERS.items():
            operations.append((f"filter:{name}", f"Filter: {getattr(info, 'title', None) or name}"))
        for name, preset in PRESETS.items():
            operations.append((f"preset:{name}", f"Preset: {getattr(preset, 'title', None) or name}"))
        return operations

    @staticmethod
    def resolveOperation(operation: str) -> tuple:
        """Return ``(kind, name)`` for "filter:<name>", "preset:<name>" or a bare filter/preset name."""
        from lumbarspine.filters import FILTERS, PRESETS

        if not operation:
            raise ValueError("No filter or preset was chosen.")
        kind, _, name = str(operation).rpartition(":")
        if kind == "filter" and name in FILTERS:
            return "filter", name
        if kind == "preset" and name in PRESETS:
            return "preset", name
        if not kind and name in FILTERS:
            return "filter", name
        if not kind and name in PRESETS:
            return "preset", name
        raise ValueError(
            f"Unknown filter or preset {operation!r}. Filters: {', '.join(FILTERS)}; presets: {', '.join(PRESETS)}."
        )

    @staticmethod
    def filterParameters(name: str) -> list:
        """The parameter descriptions of filter ``name`` (each with name, default, units, minimum, maximum, help)."""
        from lumbarspine.filters import FILTERS

        if name not in FILTERS:
            raise ValueError(f"Unknown filter {name!r}: choose one of {', '.join(FILTERS)}.")
        info = FILTERS[name]
        return list(getattr(info, "parameters", None) or getattr(info, "params", None) or [])

    def operationDescription(self, operation: str) -> str:
        """One line of help for a filter or preset."""
        from lumbarspine.filters import FILTERS, PRESETS

        kind, name = self.resolveOperation(operation)
        info = FILTERS[name] if kind == "filter" else PRESETS[name]
        for attribute in ("help", "description", "doc"):
            text = getattr(info, attribute, None)
            if text:
                return str(text)
        steps = getattr(info, "steps", None)
        if steps:
            return "Steps: " + ", ".join(str(getattr(step, "name", step)) for step in steps)
        return ""

    def process(
        self,
        inputVolume,
        outputVolume=None,
        operation: str = "",
        parameters: dict | None = None,
        backend: str = "auto",
        progress: Callable[[float, str], None] | None = None,
        cancel: Callable[[], bool] | None = None,
        scene=None,
    ) -> FilteringResult:
        """Filter ``inputVolume`` and write the result into ``outputVolume`` (a new node when None).

        :param operation: "filter:<name>", "preset:<name>" or a bare filter/preset name.
        :param parameters: filter parameters (ignored keys raise ValueError; presets take none).
        :param backend: "auto", "cupy" or "numpy".
        :param progress: ``progress(fraction, message)`` called during the run.
        :param cancel: ``cancel() -> bool``; when it returns True the run stops with ``FilterCancelled``.
        :param scene: MRML scene for a new output node (default: the input node's scene).
        :raises ValueError: missing input, unknown filter/preset/parameter/backend, input without image.
        """
        from lumbarspine.filters import FilterCancelled, apply_filter, apply_preset
        from lumbarspine.slicer_nodes import volume_from_node, volume_to_node

        if inputVolume is None:
            raise ValueError("No input volume: select the volume to filter.")
        if not inputVolume.IsA("vtkMRMLScalarVolumeNode"):
            raise ValueError(f"{inputVolume.GetName()!r} is not a scalar volume.")
        if outputVolume is not None and not outputVolume.IsA("vtkMRMLScalarVolumeNode"):
            raise ValueError(f"Output {outputVolume.GetName()!r} is not a scalar volume node.")
        if backend not in BACKENDS:
            raise ValueError(f"Unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}.")
        scene = scene if scene is not None else inputVolume.GetScene()
        if scene is None:
            raise ValueError("The input volume is not in an MRML scene: pass scene=...")
        kind, name = self.resolveOperation(operation)
        parameters = dict(parameters or {})
        if kind == "filter":
            known = {_parameterInfo(p)["name"] for p in self.filterParameters(name)}
            unknown = sorted(set(parameters) - known)
            if unknown:
                raise ValueError(
                    f"Filter {name!r} has no parameter(s) {', '.join(unknown)}; it takes: {', '.join(sorted(known))}."
                )
        elif parameters:
            raise ValueError(f"Preset {name!r} takes no parameters (got {', '.join(sorted(parameters))}).")

        volume = volume_from_node(inputVolume)
        if cancel is not None and cancel():
            raise FilterCancelled("Filtering was cancelled by the user.")
        logging.info(f"SpineFiltering: {kind} {name} on {inputVolume.GetName()} (backend {backend})")
        if kind == "filter":
            result = apply_filter(volume, name, backend=backend, progress=progress, cancel=cancel, **parameters)
        else:
            result = apply_preset(volume, name, backend=backend, progress=progress, cancel=cancel)

        outputName = None if outputVolume is not None else scene.GenerateUniqueName(f"{inputVolume.GetName()}_{name}")
        outputNode = volume_to_node(result.volume, scene, node=outputVolume, name=outputName)
        backendName = getattr(result.backend, "name", None) or str(result.backend)
        seconds = float(getattr(result, "seconds", 0.0) or 0.0)
        logging.info(f"SpineFiltering: {name} done on {backendName} in {seconds:.2f} s")
        return FilteringResult(outputNode, backendName, seconds, kind, name)


#
# SpineFilteringTest
#


def _phantomVolumes(**specArguments):
    """(image, labels) Volumes of a synthetic lumbar phantom (see lumbarspine.phantom.PhantomSpec)."""
    from lumbarspine.phantom import PhantomSpec, generate_phantom

    phantom = generate_phantom(PhantomSpec(**specArguments))
    return phantom.image, phantom.labels


class SpineFilteringTest(ScriptedLoadableModuleTest):
    """Self-test: filters a small synthetic phantom with the logic."""

    def setUp(self):
        slicer.mrmlScene.Clear(0)

    def runTest(self):
        self.setUp()
        self.test_FilterPhantom()
        self.setUp()
        self.test_PresetCancelAndErrors()

    def _inputNode(self):
        from lumbarspine.slicer_nodes import volume_to_node

        image, _ = _phantomVolumes(spacing=(2.0, 2.0, 2.0), noise=20.0)
        return volume_to_node(image, slicer.mrmlScene, name="SpineFilteringPhantom")

    def test_FilterPhantom(self):
        from lumbarspine.filters import FILTERS

        self.delayDisplay("Filtering a synthetic phantom")
        inputNode = self._inputNode()
        before = slicer.util.arrayFromVolume(inputNode).copy()
        logic = SpineFilteringLogic()
        name = "gaussian" if "gaussian" in FILTERS else next(iter(FILTERS))
        fractions = []
        result = logic.process(
            inputNode,
            operation=f"filter:{name}",
            backend="numpy",
            progress=lambda fraction, message="": fractions.append(fraction),
        )
        output = result.outputVolume
        self.assertIsNotNone(output)
        self.assertNotEqual(output.GetID(), inputNode.GetID())
        self.assertEqual(result.backend, "numpy")
        self.assertGreaterEqual(result.seconds, 0.0)
        outArray = slicer.util.arrayFromVolume(output)
        self.assertEqual(outArray.shape, before.shape)
        import numpy as np

        self.assertTrue(np.all(np.isfinite(outArray)))
        if name == "gaussian":  # smoothing a noisy phantom lowers the voxel-to-voxel differences
            self.assertLess(np.abs(np.diff(outArray, axis=2)).mean(), np.abs(np.diff(before, axis=2)).mean())
        # The input is untouched when a new output is created.
        self.assertTrue(np.array_equal(slicer.util.arrayFromVolume(inputNode), before))
        self.assertTrue(all(0.0 <= f <= 1.0 for f in fractions))

        # A second run into the same output node updates it instead of adding a node.
        count = slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
        again = logic.process(inputNode, outputVolume=output, operation=name, backend="numpy")
        self.assertEqual(again.outputVolume.GetID(), output.GetID())
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"), count)
        self.delayDisplay("Filter test passed")

    def test_PresetCancelAndErrors(self):
        from lumbarspine.filters import PRESETS, FilterCancelled

        inputNode = self._inputNode()
        logic = SpineFilteringLogic()
        if PRESETS:
            preset = next(iter(PRESETS))
            result = logic.process(inputNode, operation=f"preset:{preset}", backend="numpy")
            self.assertEqual(result.kind, "preset")
            self.assertEqual(
                slicer.util.arrayFromVolume(result.outputVolume).shape, inputNode.GetImageData().GetDimensions()[::-1]
            )
        operation = logic.availableOperations()[0][0]
        with self.assertRaises(FilterCancelled):
            logic.process(inputNode, operation=operation, backend="numpy", cancel=lambda: True)
        with self.assertRaises(ValueError):
            logic.process(None, operation=operation)
        with self.assertRaises(ValueError):
            logic.process(inputNode, operation="filter:no_such_filter")
        with self.assertRaises(ValueError):
            logic.process(inputNode, operation=operation, backend="opencl")
        self.delayDisplay("Preset, cancel and error tests passed")
