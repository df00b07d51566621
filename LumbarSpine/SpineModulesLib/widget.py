"""The Qt side shared by the module panels: :class:`SpineModuleWidget` and CuPy on first use.

A module widget derives from ``SpineModuleWidget`` first, then Slicer's ``ScriptedLoadableModuleWidget``
and ``VTKObservationMixin``, and provides only what is its own: ``uiFile``, ``runFields`` (parameter node
fields whose nodes a run reads or writes), ``lockedWidgets`` (selectors disabled while running),
``defaultInput``, and the hooks ``createLogic()``, ``notReadyReason()``, ``makeJob()`` and
``applyResult(result)``. This class does the rest: load the ``.ui``, connect the parameter node, pick a
default input, run ``makeJob()`` in a worker process (:class:`~SpineModulesLib.controller.RunController`,
polled by a ``QTimer`` so the GUI never blocks), show progress, Cancel (kills the worker at once), lock
the selectors while running, cancel when the scene closes, apply the result only after a successful run
on the same nodes, disconnect everything in ``cleanup()`` and reload the library on the developer Reload.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, Optional, Tuple

from SpineModulesLib.controller import RunController, RunState, WorkerProcess
from SpineModulesLib.devtools import reload_packages
from SpineModulesLib.i18n import _

POLL_INTERVAL_MS = 100
"""How often the GUI reads the worker's progress (ms)."""

_saidOnce: set = set()


def sayOnce(key: str, message: str) -> bool:
    """Show ``message`` in the status bar and the log the first time ``key`` is seen in this session."""
    if key in _saidOnce:
        return False
    _saidOnce.add(key)
    logging.info(message)
    import slicer

    slicer.util.showStatusMessage(message, 10000)
    return True


def pythonSlicerExecutable() -> str:
    """Slicer's ``PythonSlicer`` (the Python of this Slicer with its environment), else this interpreter
    (a Slicer-free Python such as the headless slicer-core)."""
    import slicer

    app = getattr(slicer, "app", None)
    if app is None:
        return sys.executable
    name = "PythonSlicer.exe" if os.name == "nt" else "PythonSlicer"
    for folder in (os.path.join(app.slicerHome, "bin"), app.slicerHome):
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate):
            return candidate
    return sys.executable


def firstInputNode(scene: Any, className: str, excludedClass: str = "") -> Any:
    """The first node of ``className`` in ``scene`` that holds an image (and is not ``excludedClass``)."""
    for index in range(scene.GetNumberOfNodesByClass(className)):
        node = scene.GetNthNodeByClass(index, className)
        if excludedClass and node.IsA(excludedClass):
            continue
        if node.GetImageData() is not None:
            return node
    return None


def showTableOnce(tableNode: Any) -> None:
    """Show a newly created table: select it in the table views (switching to a layout with a table
    view only when the current one has none). Nothing happens without the Slicer application."""
    import slicer

    app = getattr(slicer, "app", None)
    if app is None:
        return
    layoutManager = app.layoutManager()
    if layoutManager is not None and layoutManager.tableViewCount == 0:
        layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
    app.applicationLogic().GetSelectionNode().SetActiveTableID(tableNode.GetID())
    app.applicationLogic().PropagateTableSelection()


def showVolumeOnce(volumeNode: Any, backgroundNode: Any = None) -> None:
    """Show a new output volume in the slice views (a label map over ``backgroundNode``), fitted; later runs
    into the same node keep the user's views. Nothing happens without the Slicer application."""
    import slicer

    if getattr(slicer, "app", None) is None:
        return
    if volumeNode.IsA("vtkMRMLLabelMapVolumeNode"):
        slicer.util.setSliceViewerLayers(background=backgroundNode, label=volumeNode, fit=True)
    else:
        slicer.util.setSliceViewerLayers(background=volumeNode, fit=True)


def showSegmentationOnce(segmentationNode: Any, show3D: bool) -> None:
    """First display of a new segmentation: visible, 3D surface as asked, 60 % opacity in 3D, camera reset.
    Later runs into the same node keep whatever display the user chose."""
    import slicer

    displayNode = segmentationNode.GetDisplayNode()
    if displayNode is not None:
        displayNode.SetVisibility(True)
        displayNode.SetVisibility3D(show3D)
        displayNode.SetOpacity3D(0.6)
    app = getattr(slicer, "app", None)
    layoutManager = app.layoutManager() if app is not None else None
    if show3D and layoutManager is not None and layoutManager.threeDViewCount > 0:
        threeDView = layoutManager.threeDWidget(0).threeDView()
        threeDView.resetFocalPoint()
        threeDView.resetCamera()


def formatCell(value: Any, pattern: str = "{}") -> str:
    """A table cell's text: ``pattern`` filled with ``value``; "" for None and NaN, the plain text when the
    pattern does not fit the value."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    try:
        return pattern.format(value)
    except (TypeError, ValueError):
        return str(value)


def fillTableWidget(tableWidget: Any, columns: Any, rows: Any) -> None:
    """Fill a ``QTableWidget`` with ``rows`` (dicts); ``columns``: ``(key, title, format)`` triples. Read only."""
    import qt

    rows = list(rows)
    tableWidget.clear()
    tableWidget.setColumnCount(len(columns))
    tableWidget.setHorizontalHeaderLabels([title for _key, title, _pattern in columns])
    tableWidget.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, (key, _title, pattern) in enumerate(columns):
            item = qt.QTableWidgetItem(formatCell(row.get(key), pattern))
            item.setFlags(qt.Qt.ItemIsSelectable | qt.Qt.ItemIsEnabled)
            tableWidget.setItem(r, c, item)
    tableWidget.resizeColumnsToContents()


class SpineModuleWidget:
    """Base of the module widgets (see the module docstring). Put it first among the bases."""

    uiFile = ""
    runFields: Tuple[str, ...] = ()
    lockedWidgets: Tuple[str, ...] = ()
    defaultInput: Optional[Tuple[str, str, str]] = None  # (field, node class, excluded class)

    def __init__(self, parent=None) -> None:
        from slicer.ScriptedLoadableModule import ScriptedLoadableModuleWidget
        from slicer.util import VTKObservationMixin

        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._timer = None
        self._connections: list = []
        self.controller = RunController(
            lock_inputs=self._lockInputs,
            on_progress=self._onProgress,
            on_state=self._onRunState,
            runner_factory=lambda: WorkerProcess(python=pythonSlicerExecutable()),
        )

    # ------------------------------------------------------------------ hooks of each module
    def createLogic(self) -> Any:
        raise NotImplementedError

    def setupModule(self) -> None:
        """Module-specific GUI set-up, after the .ui is loaded and before the parameter node is connected."""

    def notReadyReason(self) -> str:
        """Why Apply is disabled ("" when ready)."""
        return ""

    def makeJob(self) -> Any:
        """The :class:`~SpineModulesLib.protocol.Job` for the current parameters (raise ValueError if bad)."""
        raise NotImplementedError

    def applyResult(self, result: Any) -> str:
        """Put ``result`` into the scene; return the status message."""
        raise NotImplementedError

    def parameterNodeChanged(self) -> None:
        """Called after every change of the parameter node."""

    # ------------------------------------------------------------------ Slicer widget life cycle
    def setup(self) -> None:
        import qt
        import slicer
        from slicer.ScriptedLoadableModule import ScriptedLoadableModuleWidget

        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath(self.uiFile))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        # The .ui connects the top-level qMRMLWidget's mrmlSceneChanged(vtkMRMLScene*) to each selector.
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = self.createLogic()
        self.ui.progressBar.setVisible(False)
        self.ui.cancelButton.enabled = False
        self._timer = qt.QTimer()
        self._timer.setInterval(POLL_INTERVAL_MS)
        self.connectSignal(self._timer, "timeout()", self.pollRun)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.connectSignal(self.ui.applyButton, "clicked(bool)", self.onApplyButton)
        self.connectSignal(self.ui.cancelButton, "clicked(bool)", self.onCancelButton)
        self.setupModule()
        self.initializeParameterNode()

    def connectSignal(self, sender: Any, signal: str, slot: Any) -> None:
        """``sender.connect(signal, slot)``, remembered so that ``cleanup()`` disconnects it."""
        sender.connect(signal, slot)
        self._connections.append((sender, signal, slot))

    def cleanup(self) -> None:
        self.controller.cancel(_("The module was closed during the run: nothing was changed."))
        if self._timer is not None:
            self._timer.stop()
        self._disconnectParameterNode()
        self._parameterNode = None
        for sender, signal, slot in self._connections:
            sender.disconnect(signal, slot)
        self._connections = []
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        self._disconnectParameterNode()

    def onReload(self) -> None:
        """Developer Reload: cancel a run, drop the loaded library and helper modules, reload the module."""
        from slicer.ScriptedLoadableModule import ScriptedLoadableModuleWidget

        self.controller.cancel(_("Reloading: the run was cancelled."))
        reload_packages()
        ScriptedLoadableModuleWidget.onReload(self)

    def onSceneStartClose(self, caller=None, event=None) -> None:
        self.controller.scene_closing()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller=None, event=None) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    # ------------------------------------------------------------------ parameter node
    def initializeParameterNode(self) -> None:
        import slicer

        self.setParameterNode(self.logic.getParameterNode())
        if self.defaultInput is not None:
            field, className, excludedClass = self.defaultInput
            if not getattr(self._parameterNode, field):
                node = firstInputNode(slicer.mrmlScene, className, excludedClass)
                if node is not None:
                    setattr(self._parameterNode, field, node)

    def setParameterNode(self, parameterNode) -> None:
        self._disconnectParameterNode()
        self._parameterNode = parameterNode
        if self._parameterNode:
            # Widgets with the "SlicerParameterName" dynamic property in the .ui are connected here.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, self._modifiedEvent(), self._onParameterNodeModified)
            self._onParameterNodeModified()

    def _disconnectParameterNode(self) -> None:
        if self._parameterNode and self._parameterNodeGuiTag is not None:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, self._modifiedEvent(), self._onParameterNodeModified)
        self._parameterNodeGuiTag = None

    @staticmethod
    def _modifiedEvent() -> int:
        import vtk

        return vtk.vtkCommand.ModifiedEvent

    def _onParameterNodeModified(self, caller=None, event=None) -> None:
        self.parameterNodeChanged()
        self.checkCanApply()

    def checkCanApply(self) -> None:
        reason = self.notReadyReason() if self._parameterNode else _("No parameter node.")
        self.ui.applyButton.enabled = not reason and not self.controller.running
        self.ui.applyButton.toolTip = reason or _("Run on the selected input.")

    def runNodeIds(self) -> dict:
        """The IDs of the nodes of ``runFields`` now (what the result will be applied to)."""
        if not self._parameterNode:
            return {}
        nodes = {field: getattr(self._parameterNode, field) for field in self.runFields}
        return {field: (node.GetID() if node is not None else None) for field, node in nodes.items()}

    # ------------------------------------------------------------------ running
    def onApplyButton(self) -> None:
        import slicer

        with slicer.util.tryWithErrorDisplay(_("Could not start the run."), waitCursor=True):
            self.startRun()

    def startRun(self) -> None:
        """Make the job from the current parameters (on the GUI thread: reads the input nodes) and start it."""
        self.startJob(self.makeJob(), self.applyResult)

    def startJob(self, job: Any, apply: Any) -> None:
        """Run ``job`` in a worker and hand its result to ``apply(result) -> status message`` (on the GUI
        thread, only if the nodes of ``runFields`` are still the ones it started with). Apply uses it for
        ``makeJob()``; a module starts its other long actions (e.g. re-planning one screw) the same way."""
        self.controller.start(job, self.runNodeIds(), self.runNodeIds, apply)
        if self._timer is not None:
            self._timer.start()

    def onCancelButton(self) -> None:
        self.controller.cancel()

    def pollRun(self) -> bool:
        """Read the worker's progress; finish the run when it ends (the timer's slot). True while running."""
        running = self.controller.poll()
        if not running and self._timer is not None:
            self._timer.stop()
        return running

    def _lockInputs(self, locked: bool) -> None:
        for name in self.lockedWidgets:
            getattr(self.ui, name).enabled = not locked
        self.ui.cancelButton.enabled = locked
        self.ui.progressBar.setVisible(locked)
        self.ui.progressBar.value = 0
        self.checkCanApply()

    def _onProgress(self, fraction: float, message: str) -> None:
        self.ui.progressBar.value = int(round(100.0 * min(max(float(fraction), 0.0), 1.0)))
        if message:
            self.ui.statusLabel.text = message

    def _onRunState(self, state: RunState, message: str) -> None:
        self.ui.statusLabel.text = message
        if state == RunState.FAILED:
            import slicer

            logging.error(message)
            slicer.util.errorDisplay(message, windowTitle=_("LumbarSpine"))


# ---------------------------------------------------------------------------------- CuPy on first use
def ensureCupy() -> bool:
    """True when CuPy can be imported, after installing the wheel that fits the CUDA driver if the user agrees.

    Called when the user first picks the GPU backend, never at import time. Slicer's own packages (NumPy)
    stay as they are: ``slicer.packaging.pip_ensure`` (Slicer 5.12+) skips them; older Slicer installs with a
    constraints file that pins them to their installed versions.
    """
    import importlib

    import slicer

    from SpineModulesLib import gpu

    if gpu.cupy_importable():
        return True
    version = gpu.cuda_driver_version()
    wheel = gpu.cupy_wheel_for_driver(version)
    if wheel is None:
        found = (
            _("no NVIDIA driver")
            if version is None
            else _("an NVIDIA driver for CUDA {v}").format(v="{}.{}".format(*version))
        )
        sayOnce(
            "cpu",
            _("No usable GPU ({found}; CuPy needs CUDA 12 or newer): filters run on the CPU.").format(found=found),
        )
        return False
    question = _(
        "The GPU backend needs CuPy ({wheel}, for this computer's CUDA {v} driver), a download of about 100 MB. "
        "Install it into Slicer's Python now? Slicer's own packages are kept as they are."
    ).format(wheel=wheel, v="{}.{}".format(*version))
    if not slicer.util.confirmOkCancelDisplay(question, windowTitle=_("Install CuPy")):
        return False
    with slicer.util.tryWithErrorDisplay(_("CuPy could not be installed."), waitCursor=True):
        installCupy(wheel)
    importlib.invalidate_caches()
    return gpu.cupy_importable()


def installCupy(wheel: str) -> None:
    """Install ``wheel`` without changing the packages Slicer ships (see :func:`ensureCupy`)."""
    import inspect
    import tempfile

    import slicer

    from SpineModulesLib import gpu

    pipEnsure = None
    for moduleName in ("slicer.packaging", "slicer.pydeps"):
        try:
            pipEnsure = getattr(__import__(moduleName, fromlist=["pip_ensure"]), "pip_ensure", None)
        except ImportError:
            continue
        if pipEnsure is not None:
            break
    if pipEnsure is not None and "skip_packages" in inspect.signature(pipEnsure).parameters:
        from packaging.requirements import Requirement

        pipEnsure([Requirement(wheel)], skip_packages=list(gpu.SLICER_SHIPPED), requester="LumbarSpine")
        return
    pins = gpu.pip_constraints(gpu.installed_versions())
    if not pins:
        slicer.util.pip_install(wheel)
        return
    with tempfile.TemporaryDirectory() as folder:
        from lumbarspine.safe_write import write_text

        constraints = write_text(os.path.join(folder, "constraints.txt"), pins)
        slicer.util.pip_install(f"{wheel} -c {constraints}")
