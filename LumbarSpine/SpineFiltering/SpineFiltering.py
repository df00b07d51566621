"""Spine Volume Filtering: denoise / enhance a spine CT or MRI volume on the GPU (CuPy) or the CPU.

Each filter is :data:`FILTER_CALL` of the Qt-free ``lumbarspine`` library and each preset :data:`PRESET_CALL`:
the panel runs them in a worker process, ``SpineFilteringLogic.process()`` in this one. Parameter node,
progress, Cancel, locks and CuPy on first use come from ``SpineModulesLib``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Optional

import qt
import slicer
from slicer import vtkMRMLScalarVolumeNode
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import *  # the four base classes, as in Slicer's module template
from slicer.util import VTKObservationMixin

from SpineModulesLib import Job, phantom_node, run_job
from SpineModulesLib.i18n import _, translate
from SpineModulesLib.nodes import check_output_node, scene_of
from SpineModulesLib.selftest import SelfTestMixin
from SpineModulesLib.widget import SpineModuleWidget, ensureCupy, sayOnce, showVolumeOnce

BACKENDS = ("auto", "cupy", "numpy")
DOCUMENTATION_URL = "https://github.com/lumbarspine/SlicerLumbarSpine#readme"
FILTER_CALL = "lumbarspine.filters:apply_filter"
"""One filter: ``apply_filter(volume, name, backend=..., progress=, cancel=, **parameters) -> FilterResult``."""
PRESET_CALL = "lumbarspine.filters:apply_preset"
"""One preset pipeline: ``apply_preset(volume, name, backend=..., progress=, cancel=) -> FilterResult``."""


#
# SpineFiltering
#


class SpineFiltering(ScriptedLoadableModule):
    """Module description shown in Slicer's module panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Spine Volume Filtering")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Spine")]
        self.parent.dependencies = []
        self.parent.contributors = ["LumbarSpine contributors"]
        self.parent.helpText = _("""
Denoise and enhance spine CT / MRI volumes with single filters or preset pipelines. Filters run on an
NVIDIA GPU through CuPy when one works (backend "auto" or "cupy") and on the CPU with NumPy/SciPy
otherwise. The input volume is never modified unless it is explicitly picked as the output.
See the <a href="{url}">LumbarSpine documentation</a>.
""").format(url=DOCUMENTATION_URL)
        self.parent.acknowledgementText = _("""
Developed as part of the LumbarSpine extension. Module structure after the 3D Slicer scripted module
template by Jean-Christophe Fillion-Robin (Kitware), Andras Lasso (PerkLab) and Steve Pieper (Isomics).
""")


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


class SpineFilteringWidget(SpineModuleWidget, ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: input, filter/preset, parameters, backend, output, Apply/Cancel."""

    uiFile = "UI/SpineFiltering.ui"
    runFields = ("inputVolume", "outputVolume")
    lockedWidgets = ("inputSelector", "outputSelector")
    defaultInput = ("inputVolume", "vtkMRMLScalarVolumeNode", "vtkMRMLLabelMapVolumeNode")

    def __init__(self, parent=None) -> None:
        SpineModuleWidget.__init__(self, parent)
        self._parameterWidgets = {}
        self._runOperation = ""

    def createLogic(self):
        return SpineFilteringLogic()

    def setupModule(self) -> None:
        self._populateOperations()
        self.connectSignal(self.ui.operationComboBox, "currentIndexChanged(int)", self.onOperationChanged)
        self.connectSignal(self.ui.backendComboBox, "activated(int)", self.onBackendPicked)

    def setParameterNode(self, parameterNode) -> None:
        SpineModuleWidget.setParameterNode(self, parameterNode)
        if parameterNode:  # show the stored operation and rebuild the form with the stored values
            self._selectOperation(parameterNode.operation)
            self.onOperationChanged(self.ui.operationComboBox.currentIndex)

    def notReadyReason(self) -> str:
        if not self._parameterNode.inputVolume:
            return _("Select an input volume.")
        return "" if self._currentOperation() else _("Select a filter or preset.")

    def onBackendPicked(self, index: int) -> None:
        """The first pick of the GPU backend offers to install CuPy (never at import time)."""
        if self._parameterNode and self._parameterNode.backend == "cupy" and not ensureCupy():
            self._parameterNode.backend = "auto"

    # ------------------------------------------------------------------ filter / preset choice
    def _populateOperations(self) -> None:
        combo = self.ui.operationComboBox
        combo.blockSignals(True)
        combo.clear()
        operations = self.logic.availableOperations()
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
        self.checkCanApply()

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
            formLayout.addRow(qt.QLabel(_("A preset runs its steps with their own parameters.")))
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
    def makeJob(self) -> Job:
        self._storeValues()
        self._runOperation = self._currentOperation()
        kind, _name = self.logic.resolveOperation(self._runOperation)
        parameters = self._currentParameterValues() if kind == "filter" else {}
        return self.logic.makeJob(
            self._parameterNode.inputVolume, self._runOperation, parameters, self._parameterNode.backend
        )

    def applyResult(self, filterResult) -> str:
        parameters = self._parameterNode
        newOutput = parameters.outputVolume is None
        result = self.logic.applyResult(
            filterResult, parameters.inputVolume, parameters.outputVolume, self._runOperation, slicer.mrmlScene
        )
        if newOutput:  # show a new volume once; later runs refill it where the user put it
            showVolumeOnce(result.outputVolume, parameters.inputVolume)
        if not result.outputVolume.IsA("vtkMRMLLabelMapVolumeNode"):
            parameters.outputVolume = result.outputVolume  # later runs refill it until "Create new volume"
        if result.backend != "cupy" and parameters.backend != "numpy":
            sayOnce("cpu", _("Filters run on the CPU here: {message}").format(message=filterResult.message))
        return _("{name}: backend {backend}, {seconds:.2f} s -> {output}").format(
            name=result.name, backend=result.backend, seconds=result.seconds, output=result.outputVolume.GetName()
        )


#
# SpineFilteringLogic
#


class SpineFilteringLogic(ScriptedLoadableModuleLogic):
    """Filtering without any GUI: usable from the Python console or batch scripts.

    Example::

        logic = SpineFilteringLogic()
        result = logic.process(inputNode, operation="filter:gaussian", parameters={"sigma": 1.0})
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

    def makeJob(self, inputVolume, operation: str, parameters: Optional[dict] = None, backend: str = "auto") -> Job:
        """The filter or preset ``operation`` on ``inputVolume`` as a job (:data:`FILTER_CALL` / :data:`PRESET_CALL`).

        :raises ValueError: missing input, unknown filter/preset/parameter/backend, input without image.
        """
        from lumbarspine.slicer_nodes import volume_from_node

        if inputVolume is None:
            raise ValueError("No input volume: select the volume to filter.")
        if not inputVolume.IsA("vtkMRMLScalarVolumeNode"):
            raise ValueError(f"{inputVolume.GetName()!r} is not a scalar volume.")
        if backend not in BACKENDS:
            raise ValueError(f"Unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}.")
        kind, name = self.resolveOperation(operation)
        parameters = dict(parameters or {})
        if kind == "filter":
            known = {_parameterInfo(p)["name"] for p in self.filterParameters(name)}
            unknown = sorted(set(parameters) - known)
            if unknown:
                raise ValueError(
                    f"Filter {name!r} has no parameter(s) {', '.join(unknown)}; it takes: {', '.join(sorted(known))}."
                )
            return Job(FILTER_CALL, (volume_from_node(inputVolume), name), {"backend": backend, **parameters}, name)
        if parameters:
            raise ValueError(f"Preset {name!r} takes no parameters (got {', '.join(sorted(parameters))}).")
        return Job(PRESET_CALL, (volume_from_node(inputVolume), name), {"backend": backend}, name)

    def applyResult(self, filterResult, inputVolume, outputVolume, operation: str, scene) -> FilteringResult:
        """Write the library's result into ``outputVolume`` (a new node in ``scene`` when None)."""
        from lumbarspine.slicer_nodes import volume_to_node

        kind, name = self.resolveOperation(operation)
        outputName = None if outputVolume is not None else scene.GenerateUniqueName(f"{inputVolume.GetName()}_{name}")
        outputNode = volume_to_node(filterResult.volume, scene, node=outputVolume, name=outputName)
        backendName = getattr(filterResult.backend, "name", None) or str(filterResult.backend)
        return FilteringResult(outputNode, backendName, float(filterResult.seconds or 0.0), kind, name)

    def process(
        self,
        inputVolume,
        outputVolume=None,
        operation: str = "",
        parameters: Optional[dict] = None,
        backend: str = "auto",
        progress: Optional[Callable[[float, str], None]] = None,
        cancel: Optional[Callable[[], bool]] = None,
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
        check_output_node(outputVolume, "vtkMRMLScalarVolumeNode", "scalar volume")
        job = self.makeJob(inputVolume, operation, parameters, backend)
        scene = scene_of(inputVolume, scene, "input volume")
        logging.info(f"SpineFiltering: {job.call} {job.title} on {inputVolume.GetName()} (backend {backend})")
        result = run_job(job, progress, cancel)
        filtered = self.applyResult(result, inputVolume, outputVolume, operation, scene)
        logging.info(f"SpineFiltering: {filtered.name} done on {filtered.backend} in {filtered.seconds:.2f} s")
        return filtered


#
# SpineFilteringTest
#


class SpineFilteringTest(SelfTestMixin, ScriptedLoadableModuleTest):
    """Self-test: filters a small synthetic phantom with the logic."""

    def _inputNode(self):
        return phantom_node(slicer.mrmlScene, "image", "SpineFilteringPhantom", spacing=(2.0, 2.0, 2.0), noise=20.0)

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
