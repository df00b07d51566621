"""Jobs: one library call, its inputs as files in a folder, its result read back (Qt-free, Python 3.9-safe).

A module describes an action as a :class:`Job`: the library function as ``"package.module:function"``
and its arguments. :func:`run_job` runs it in this process (the Logic's ``process()``, scripts, tests);
:func:`write_job` / :func:`read_result` hand it to the worker process (``SpineModulesLib.worker``), so
the GUI thread never runs library code. Re-pointing an action to another library call is a change of
``Job.call`` only.

Job folder::

    job.json      {"call": "...", "args": [...], "kwargs": {...}, "title": "..."}
    result.json   the return value, same encoding
    *.npz         every Volume of the arguments or the result

Encoding: a :class:`lumbarspine.volume.Volume` becomes ``{"__volume__": "<file>.npz"}`` (array, spacing,
RAS origin, direction, label flag, name: exact), a dataclass ``{"__object__": "<class>", "module": "<module>",
"fields": {...}}`` (read back as that class when it is a dataclass of the ``lumbarspine`` library, so results
such as a ``GradingResult`` keep their methods; any other as ``types.SimpleNamespace``), a NumPy array ``{"__ndarray__": [...], "dtype": "..."}``, a
non-finite float ``{"__float__": "nan" | "inf" | "-inf"}``; dicts, lists, str, int, float, bool, None as JSON.

Worker messages (one JSON object a line on stdout): ``{"event": "progress", "fraction": f, "message": m}``,
``{"event": "done"}``, ``{"event": "failed", "error": "<exception type>", "message": m}``,
``{"event": "cancelled", "message": m}``.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect
import json
import math
import types
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

JOB_FILE = "job.json"
RESULT_FILE = "result.json"

__all__ = [
    "JOB_FILE",
    "RESULT_FILE",
    "Job",
    "decode",
    "encode",
    "message_line",
    "parse_message",
    "read_job",
    "read_result",
    "resolve_call",
    "run_job",
    "write_job",
    "write_result",
]


@dataclasses.dataclass(frozen=True)
class Job:
    """One library call: ``call`` is ``"package.module:function"``; ``args``/``kwargs`` may hold Volumes."""

    call: str
    args: Tuple[Any, ...] = ()
    kwargs: Dict[str, Any] = dataclasses.field(default_factory=dict)
    title: str = ""


def resolve_call(call: str) -> Callable[..., Any]:
    """The function named ``"package.module:function"`` (only inside the ``lumbarspine`` library)."""
    module_name, _, function_name = str(call).partition(":")
    if not function_name or not (module_name == "lumbarspine" or module_name.startswith("lumbarspine.")):
        raise ValueError(f"A job calls a lumbarspine library function as 'lumbarspine.module:function'; got {call!r}.")
    function = getattr(importlib.import_module(module_name), function_name, None)
    if not callable(function):
        raise ValueError(f"{module_name} has no function {function_name!r} (job call {call!r}).")
    return function


def run_job(
    job: Job,
    progress: Optional[Callable[[float, str], None]] = None,
    cancel: Optional[Callable[[], bool]] = None,
) -> Any:
    """Run ``job`` in this process; ``progress``/``cancel`` are passed where the function takes them."""
    function = resolve_call(job.call)
    kwargs = dict(job.kwargs)
    parameters = inspect.signature(function).parameters
    if progress is not None and "progress" in parameters:
        kwargs["progress"] = progress
    if cancel is not None and "cancel" in parameters:
        kwargs["cancel"] = cancel
    return function(*job.args, **kwargs)


# ------------------------------------------------------------------------------------ encoding
def encode(value: Any, folder: Path, prefix: str = "volume") -> Any:
    """``value`` as JSON-able data; Volumes are written into ``folder`` as ``<prefix>_<n>.npz``."""
    return _encode(value, Path(folder), prefix, [0])


def _encode(value: Any, folder: Path, prefix: str, counter: list) -> Any:
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, enum.Enum):
        return _encode(value.value, folder, prefix, counter)
    if isinstance(value, dict):
        return {str(key): _encode(item, folder, prefix, counter) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(item, folder, prefix, counter) for item in value]
    if type(value).__module__.startswith("numpy"):
        if getattr(value, "ndim", 0) > 0:
            return {"__ndarray__": _encode(value.tolist(), folder, prefix, counter), "dtype": str(value.dtype)}
        return _encode(value.item(), folder, prefix, counter)
    from lumbarspine.volume import Volume

    if isinstance(value, Volume):
        counter[0] += 1
        return {"__volume__": _write_volume(value, folder / f"{prefix}_{counter[0]}.npz")}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _encode(getattr(value, f.name), folder, prefix, counter) for f in dataclasses.fields(value)}
        return {"__object__": type(value).__qualname__, "module": type(value).__module__, "fields": fields}
    raise TypeError(f"Cannot pass a {type(value).__name__} between Slicer and the worker process.")


def decode(data: Any, folder: Path) -> Any:
    """The inverse of :func:`encode` (library dataclasses come back as themselves, others as ``SimpleNamespace``)."""
    if isinstance(data, list):
        return [decode(item, folder) for item in data]
    if not isinstance(data, dict):
        return data
    if "__volume__" in data:
        return _read_volume(Path(folder) / data["__volume__"])
    if "__float__" in data:
        return float(data["__float__"])
    if "__ndarray__" in data:
        import numpy as np

        return np.asarray(decode(data["__ndarray__"], folder), dtype=data["dtype"])
    if "__object__" in data:
        fields = {key: decode(item, folder) for key, item in data["fields"].items()}
        cls = _library_dataclass(data.get("module"), data["__object__"])
        if cls is None:
            return types.SimpleNamespace(**fields)
        init = {f.name for f in dataclasses.fields(cls) if f.init}
        instance = cls(**{key: value for key, value in fields.items() if key in init})
        for key, value in fields.items():
            if key not in init:
                object.__setattr__(instance, key, value)
        return instance
    return {key: decode(item, folder) for key, item in data.items()}


def _library_dataclass(module_name: Any, qualname: str) -> Optional[type]:
    """The dataclass ``qualname`` of ``module_name`` when that module is part of ``lumbarspine``, else None."""
    if not isinstance(module_name, str) or not (module_name == "lumbarspine" or module_name.startswith("lumbarspine.")):
        return None
    try:
        cls: Any = importlib.import_module(module_name)
        for part in str(qualname).split("."):
            cls = getattr(cls, part)
    except (ImportError, AttributeError):
        return None
    return cls if isinstance(cls, type) and dataclasses.is_dataclass(cls) else None


def _write_volume(volume: Any, path: Path) -> str:
    import numpy as np

    from lumbarspine.safe_write import atomic_output

    with atomic_output(path) as temp, open(temp, "wb") as handle:
        np.savez(
            handle,
            array=np.asarray(volume.array),
            spacing=np.asarray(volume.spacing, dtype=np.float64),
            origin=np.asarray(volume.origin, dtype=np.float64),
            direction=np.asarray(volume.direction, dtype=np.float64),
            is_label=np.asarray(bool(volume.is_label)),
            name=np.asarray(str(volume.name)),
        )
    return path.name


def _read_volume(path: Path) -> Any:
    import numpy as np

    from lumbarspine.volume import Volume

    with np.load(path, allow_pickle=False) as data:
        return Volume(
            array=data["array"],
            spacing=tuple(float(v) for v in data["spacing"]),
            origin=tuple(float(v) for v in data["origin"]),
            direction=data["direction"],
            is_label=bool(data["is_label"]),
            name=str(data["name"]),
        )


# ---------------------------------------------------------------------------------- job folder
def write_job(job: Job, folder: Path) -> Path:
    """Write ``job`` into ``folder`` (created if needed); returns the job file."""
    from lumbarspine.safe_write import write_json

    data = {
        "call": job.call,
        "args": encode(list(job.args), Path(folder), "argument"),
        "kwargs": encode(dict(job.kwargs), Path(folder), "keyword"),
        "title": job.title,
    }
    return write_json(Path(folder) / JOB_FILE, data)


def read_job(folder: Path) -> Job:
    data = json.loads((Path(folder) / JOB_FILE).read_text(encoding="utf-8"))
    return Job(
        call=data["call"],
        args=tuple(decode(data["args"], folder)),
        kwargs=decode(data["kwargs"], folder),
        title=data.get("title", ""),
    )


def write_result(result: Any, folder: Path) -> Path:
    from lumbarspine.safe_write import write_json

    return write_json(Path(folder) / RESULT_FILE, encode(result, Path(folder), "result"))


def read_result(folder: Path) -> Any:
    return decode(json.loads((Path(folder) / RESULT_FILE).read_text(encoding="utf-8")), folder)


# ------------------------------------------------------------------------------------ messages
def message_line(event: str, **fields: Any) -> str:
    """One worker message as a JSON line (no newline)."""
    return json.dumps({"event": event, **fields})


def parse_message(line: str) -> Dict[str, Any]:
    """A worker output line as a message; a line that is not a message is ``{"event": "log", ...}``."""
    text = line.strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("event"), str):
        return data
    return {"event": "log", "message": text}
