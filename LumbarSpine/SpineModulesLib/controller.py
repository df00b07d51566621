"""Running a job off the GUI thread: the worker process and the run state machine (Qt-free, Python 3.9-safe).

:class:`WorkerProcess` starts ``<python> -m SpineModulesLib.worker <folder>`` and collects its message lines
on a reader thread; :meth:`WorkerProcess.messages` hands them over on the caller's thread.

:class:`RunController` is the state machine a module widget drives::

    idle --start--> running --done, inputs unchanged, result applied--> succeeded
                        |----worker failed / apply raised-------------> failed
                        |----cancel() / scene_closing() / inputs changed--> cancelled

While running it locks the widget's input selectors (``lock_inputs(True)``); it unlocks them on every way
out. The result is put into the scene (``apply(result)``) only after a successful run whose input node IDs
are still the ones it started with; a cancelled or failed run changes nothing. Everything happens on the
thread that calls :meth:`RunController.poll` (in Slicer a ``QTimer`` on the GUI thread), so ``apply`` and
the callbacks run where MRML may be touched.
"""

from __future__ import annotations

import enum
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from SpineModulesLib.protocol import Job, parse_message, read_result, write_job

KILL_TIMEOUT_S = 1.0
"""Cancel waits at most this long for the killed worker to go."""

__all__ = ["KILL_TIMEOUT_S", "RunController", "RunState", "WorkerProcess", "library_folders"]


class RunState(str, enum.Enum):
    IDLE = "idle"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


def library_folders() -> List[str]:
    """The folders that hold ``SpineModulesLib`` and ``lumbarspine`` (what the worker needs on its path)."""
    import lumbarspine

    folders = []
    for package_file in (__file__, lumbarspine.__file__):
        folder = str(Path(package_file).resolve().parent.parent)
        if folder not in folders:
            folders.append(folder)
    return folders


class WorkerProcess:
    """One worker process. ``python``: the interpreter (default: this one; in Slicer ``PythonSlicer``)."""

    def __init__(self, python: Optional[str] = None, paths: Optional[Sequence[str]] = None) -> None:
        self.python = python or sys.executable
        self.paths = list(paths) if paths is not None else library_folders()
        self._process: Optional[subprocess.Popen] = None
        self._lines: queue.Queue = queue.Queue()
        self._reader: Optional[threading.Thread] = None
        self._stderr_path: Optional[Path] = None

    def start(self, folder: Path) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([*self.paths, *filter(None, [env.get("PYTHONPATH")])])
        env["PYTHONUNBUFFERED"] = "1"
        self._stderr_path = Path(folder) / "worker_stderr.txt"
        with open(self._stderr_path, "wb") as stderr:
            self._process = subprocess.Popen(
                [self.python, "-m", "SpineModulesLib.worker", str(folder)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
                cwd=str(folder),
            )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for raw in self._process.stdout:
            self._lines.put(raw.decode("utf-8", errors="replace"))
        self._process.stdout.close()

    def messages(self) -> List[Dict[str, Any]]:
        """The messages received since the last call."""
        out = []
        while True:
            try:
                out.append(parse_message(self._lines.get_nowait()))
            except queue.Empty:
                return out

    def finished(self) -> bool:
        """The process has exited and all its output has been read."""
        if self._process is None or self._process.poll() is None:
            return False
        return self._reader is None or not self._reader.is_alive()

    @property
    def returncode(self) -> Optional[int]:
        return None if self._process is None else self._process.poll()

    def kill(self, timeout: float = KILL_TIMEOUT_S) -> None:
        """Stop the process now (SIGKILL / TerminateProcess) and wait up to ``timeout`` s for it."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:  # pragma: no cover - a process that survives SIGKILL
                pass

    def stderr_tail(self, characters: int = 2000) -> str:
        if self._stderr_path is None or not self._stderr_path.is_file():
            return ""
        return self._stderr_path.read_text(encoding="utf-8", errors="replace")[-characters:]


class RunController:
    """The run/lock/cancel state machine of one module panel (see the module docstring).

    Callbacks (all optional, all called on the thread that calls :meth:`poll` / :meth:`cancel`):
    ``lock_inputs(locked: bool)``, ``on_progress(fraction, message)``, ``on_state(state, message)``.
    ``runner_factory()`` makes the runner (default :class:`WorkerProcess`).
    """

    def __init__(
        self,
        lock_inputs: Optional[Callable[[bool], None]] = None,
        on_progress: Optional[Callable[[float, str], None]] = None,
        on_state: Optional[Callable[[RunState, str], None]] = None,
        runner_factory: Callable[[], Any] = WorkerProcess,
    ) -> None:
        self.lock_inputs = lock_inputs
        self.on_progress = on_progress
        self.on_state = on_state
        self.runner_factory = runner_factory
        self.state = RunState.IDLE
        self.message = ""
        self.fraction = 0.0
        self.result: Any = None
        self._runner: Any = None
        self._folder: Optional[Path] = None
        self._job: Optional[Job] = None
        self._input_ids: Dict[str, Optional[str]] = {}
        self._current_input_ids: Optional[Callable[[], Mapping[str, Optional[str]]]] = None
        self._apply: Optional[Callable[[Any], Optional[str]]] = None
        self._outcome: Optional[Dict[str, Any]] = None

    @property
    def running(self) -> bool:
        return self.state == RunState.RUNNING

    def start(
        self,
        job: Job,
        input_ids: Mapping[str, Optional[str]],
        current_input_ids: Callable[[], Mapping[str, Optional[str]]],
        apply: Callable[[Any], Optional[str]],
    ) -> None:
        """Start ``job`` in a worker. ``input_ids``: the node IDs it reads (and writes); before ``apply(result)``
        (which returns a status message) ``current_input_ids()`` must still give the same IDs."""
        if self.running:
            raise RuntimeError("A run is in progress: cancel it or wait for it before starting another.")
        folder = Path(tempfile.mkdtemp(prefix="lumbarspine-job-"))
        try:
            write_job(job, folder)
            runner = self.runner_factory()
            runner.start(folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self._runner, self._folder, self._job = runner, folder, job
        self._input_ids = dict(input_ids)
        self._current_input_ids, self._apply = current_input_ids, apply
        self._outcome, self.result, self.fraction = None, None, 0.0
        self._set(RunState.RUNNING, f"{job.title or job.call}: running")
        self._lock(True)

    def poll(self) -> bool:
        """Handle the worker's messages; finish the run when the worker has exited. True while running."""
        if not self.running:
            return False
        for message in self._runner.messages():
            event = message.get("event")
            if event == "progress":
                self.fraction = float(message.get("fraction", 0.0))
                if self.on_progress is not None:
                    self.on_progress(self.fraction, str(message.get("message", "")))
            elif event in ("done", "failed", "cancelled"):
                self._outcome = message
        if self._runner.finished():
            self._finish()
        return self.running

    def wait(self, timeout: float, interval: float = 0.02) -> RunState:
        """Poll until the run ends or ``timeout`` s pass (scripts and tests; the GUI uses a timer)."""
        deadline = time.monotonic() + timeout
        while self.poll() and time.monotonic() < deadline:
            time.sleep(interval)
        return self.state

    def cancel(self, reason: str = "Cancelled by the user: nothing was changed.") -> bool:
        """Kill the worker (within :data:`KILL_TIMEOUT_S`) and end the run as cancelled. False if idle."""
        if not self.running:
            return False
        self._runner.kill()
        self._end(RunState.CANCELLED, reason)
        return True

    def scene_closing(self) -> bool:
        """Call when the scene starts closing: a run in progress is cancelled and applies nothing."""
        return self.cancel("The scene was closed during the run: it was cancelled and nothing was added.")

    # ------------------------------------------------------------------------------ internals
    def _finish(self) -> None:
        outcome = self._outcome or {}
        event = outcome.get("event")
        title = self._job.title or self._job.call if self._job else "run"
        if event == "cancelled":
            self._end(RunState.CANCELLED, str(outcome.get("message", "Cancelled.")))
            return
        if event != "done" or self._runner.returncode != 0:
            detail = str(outcome.get("message") or "").strip()
            if not detail:
                tail = self._runner.stderr_tail().strip()
                detail = f"the worker stopped with exit status {self._runner.returncode}" + (
                    f":\n{tail}" if tail else ""
                )
            self._end(RunState.FAILED, f"{title} failed: {detail}")
            return
        current = dict(self._current_input_ids()) if self._current_input_ids is not None else {}
        if current != self._input_ids:
            self._end(RunState.CANCELLED, f"{title}: the inputs changed during the run, so its result was discarded.")
            return
        try:
            self.result = read_result(self._folder)
            message = self._apply(self.result) if self._apply is not None else None
        except Exception as exc:  # the result could not be read or put into the scene: say why
            self._end(RunState.FAILED, f"{title}: the result could not be shown: {exc}")
            return
        self._end(RunState.SUCCEEDED, message or f"{title}: done.")

    def _end(self, state: RunState, message: str) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
        self._runner, self._folder, self._apply, self._current_input_ids = None, None, None, None
        self._set(state, message)
        self._lock(False)

    def _set(self, state: RunState, message: str) -> None:
        self.state, self.message = state, message
        if self.on_state is not None:
            self.on_state(state, message)

    def _lock(self, locked: bool) -> None:
        if self.lock_inputs is not None:
            self.lock_inputs(locked)
