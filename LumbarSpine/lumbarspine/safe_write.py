"""The one writer path for every file LumbarSpine writes: temporary file, verify, atomic rename.

Use :func:`atomic_output` for writers that want a path (SimpleITK, VTK, Slicer storage nodes,
PNG writers) and :func:`write_text` / :func:`write_json` / :func:`write_bytes` for text and bytes.
The temporary file sits in the target folder (so the final ``os.replace`` is atomic on the same
file system) and keeps the final name's suffix (so writers that pick a format from the extension
pick the right one). On any failure the temporary file is removed and :class:`OutputError` names
the path and the cause; nothing partial is ever left under the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["OutputError", "atomic_output", "write_text", "write_json", "write_bytes"]


class OutputError(ValueError):
    """A file could not be written (disk full, permission, missing folder, ...); nothing was left behind."""


def _temporary_name(final: Path) -> Path:
    name = final.name
    lower = name.lower()
    for suffix in (".nii.gz", ".seg.nrrd", ".mrk.json"):
        if lower.endswith(suffix):
            ext = name[-len(suffix) :]
            break
    else:
        ext = final.suffix
    return final.with_name(f".{name}.{uuid.uuid4().hex[:8]}.tmp{ext}")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], verify: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """Yield a temporary path to write to; on success verify it and rename it to ``path``.

    Args:
        path: the final file.
        verify: optional check of the written temporary file (raise to reject it); by default the
            file must exist and be non-empty.

    Raises:
        OutputError: the folder cannot be made or written, the writer failed, the file is missing or
            empty, or ``verify`` rejected it. The message names the path and the cause.
    """
    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"Cannot create the folder {final.parent} for {final.name}: {exc.strerror or exc}.") from exc
    temp = _temporary_name(final)
    try:
        yield temp
        if not temp.is_file() or temp.stat().st_size == 0:
            raise OutputError(f"Writing {final} produced no data (disk full or the writer failed silently).")
        if verify is not None:
            verify(temp)
        with open(temp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(temp, final)
    except OutputError:
        _remove(temp)
        raise
    except OSError as exc:
        _remove(temp)
        raise OutputError(f"Cannot write {final}: {exc.strerror or exc}. Check free space and permissions.") from exc
    except BaseException:
        _remove(temp)
        raise


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and check the size on disk; returns the path."""
    final = Path(path)

    def verify(temp: Path) -> None:
        if temp.stat().st_size != len(data):
            raise OutputError(f"Writing {final} stored {temp.stat().st_size} of {len(data)} bytes (disk full?).")

    with atomic_output(final, verify=verify) as temp:
        with open(temp, "wb") as fh:
            fh.write(data)
            fh.flush()
    return final


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; returns the path."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any, *, indent: int = 2) -> Path:
    """Write ``obj`` as JSON (UTF-8, NaN refused) to ``path`` atomically; returns the path."""
    try:
        text = json.dumps(obj, indent=indent, allow_nan=False) + "\n"
    except ValueError as exc:
        raise OutputError(f"Cannot write {path}: the data holds NaN or infinite numbers ({exc}).") from exc
    return write_text(path, text)
