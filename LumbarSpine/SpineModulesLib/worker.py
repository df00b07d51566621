"""The worker process: runs one job folder's library call and streams progress as JSON lines (Qt-free).

Started by :class:`SpineModulesLib.controller.WorkerProcess` as
``<python> -m SpineModulesLib.worker <job folder>`` (Slicer's ``PythonSlicer`` inside Slicer), with the
folder holding ``lumbarspine`` and ``SpineModulesLib`` on ``PYTHONPATH``. It reads ``job.json``, runs the
call, writes ``result.json`` and prints one message a line (see :mod:`SpineModulesLib.protocol`).
Exit status: 0 done, 2 bad input (``ValueError``), 3 cancelled, 1 any other error.

Cancel from Slicer kills the process (it stops at once; Slicer then throws the folder away). If Slicer
itself goes away, the library's ``cancel()`` callback sees the parent change and stops at the next slab.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import List, Optional

from SpineModulesLib.protocol import message_line, read_job, run_job, write_result

PROGRESS_INTERVAL_S = 0.05
"""At most one progress line per this many seconds (the last one of a burst is sent at the end)."""


class _Emitter:
    """Thread-safe writer of message lines; progress is throttled to ``PROGRESS_INTERVAL_S``."""

    def __init__(self, stream) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._last = 0.0

    def send(self, event: str, **fields) -> None:
        with self._lock:
            self._stream.write(message_line(event, **fields) + "\n")
            self._stream.flush()

    def progress(self, fraction: float, message: str = "") -> None:
        now = time.monotonic()
        if now - self._last < PROGRESS_INTERVAL_S and 0.0 < float(fraction) < 1.0:
            return
        self._last = now
        self.send("progress", fraction=min(max(float(fraction), 0.0), 1.0), message=str(message))


def main(argv: Optional[List[str]] = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if len(arguments) != 1:
        sys.stderr.write("usage: python -m SpineModulesLib.worker JOB_FOLDER\n")
        return 64
    folder = Path(arguments[0])
    emitter = _Emitter(sys.stdout)
    parent = os.getppid()

    def orphaned() -> bool:
        return os.getppid() != parent

    from lumbarspine.progress import OperationCancelled

    try:
        job = read_job(folder)
        emitter.send("progress", fraction=0.0, message=f"{job.title or job.call}: started")
        result = run_job(job, emitter.progress, orphaned)
        write_result(result, folder)
    except OperationCancelled as exc:
        emitter.send("cancelled", message=str(exc))
        return 3
    except ValueError as exc:
        emitter.send("failed", error=type(exc).__name__, message=str(exc))
        return 2
    except Exception as exc:  # report every other failure with its traceback, never a silent exit
        emitter.send("failed", error=type(exc).__name__, message=str(exc), detail=traceback.format_exc())
        return 1
    emitter.send("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
