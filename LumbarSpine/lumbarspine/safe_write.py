"""The one writer path for every file LumbarSpine writes: temporary file, verify, atomic rename.

Use :func:`atomic_output` for writers that want a path (SimpleITK, VTK, Slicer storage nodes,
PNG writers) and :func:`write_text` / :func:`write_json` / :func:`write_bytes` for text and bytes.
The temporary file sits in the target folder (so the final ``os.replace`` is atomic on the same
file system) and keeps the final name's suffix (so writers that pick a format from the extension
pick the right one); with ``keep_name=True`` it is the final name inside a temporary sub-folder
(for writers that record their own file name, such as Slicer's ``.mrb`` bundles). After the writer
returns, the file must exist and be non-empty, the optional ``verify`` callback must accept it
(volumes: header re-read and data size checked, see :func:`lumbarspine.io.write_volume`), it is
flushed to disk (``fsync``) and only then renamed. On any failure -- including a writer that only
*prints* an error, as ITK's NIfTI writer does on a full disk -- the temporary file is removed and
:class:`OutputError` names the path and the cause (disk full, permission denied, read-only file
system, a parent that is a file, ...). Nothing partial is ever left under the final name, and an
existing file under the final name stays as it was until the new one is complete.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "OutputError",
    "atomic_output",
    "write_text",
    "write_json",
    "write_bytes",
    "describe_os_error",
    "check_output_path",
]


class OutputError(ValueError):
    """A file could not be written (disk full, permission, missing folder, ...); nothing was left behind."""


_CAUSES: dict[int, str] = {
    errno.ENOSPC: "the disk is full (no space left on device); free some space or write elsewhere",
    errno.EDQUOT: "the disk quota is exceeded; free some space or write elsewhere",
    errno.EACCES: "permission denied; choose a folder you may write to",
    errno.EPERM: "permission denied; choose a folder you may write to",
    errno.EROFS: "the file system is read-only; write elsewhere",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another output path",
    errno.EISDIR: "the path is a folder, not a file; give a file name",
    errno.ENAMETOOLONG: "the file name is too long",
    errno.EIO: "an input/output error from the disk",
}


def describe_os_error(exc: BaseException) -> str:
    """A short cause for an ``OSError`` ("the disk is full ...", "permission denied ..."), else its text."""
    code = getattr(exc, "errno", None)
    if code in _CAUSES:
        return _CAUSES[code]
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _file_ancestor(path: Path) -> Path | None:
    """The first existing ancestor of ``path`` that is not a folder (a file in the way), if any."""
    for parent in [path, *path.parents]:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """Refuse an output path that cannot be a file (an existing folder, or a parent that is a file)."""
    final = Path(path)
    if final.is_dir():
        raise OutputError(f"Cannot write {final}: it is a folder; give a file name.")
    blocker = _file_ancestor(final.parent)
    if blocker is not None:
        raise OutputError(f"Cannot write {final}: {blocker} is a file, not a folder; choose another output path.")
    return final


def _temporary_name(final: Path) -> Path:
    name = final.name
    lower = name.lower()
    for suffix in (".nii.gz", ".seg.nrrd", ".mrk.json"):
        if lower.endswith(suffix):
            ext = suffix
            break
    else:
        ext = final.suffix.lower()
    # lower-case suffix: writers pick the format (and compression) from it, and ITK refuses ".NII.GZ"
    return final.with_name(f".{name}.{uuid.uuid4().hex[:8]}.tmp{ext}")


def _make_parent(final: Path) -> None:
    blocker = _file_ancestor(final.parent)
    if blocker is not None:
        raise OutputError(f"Cannot write {final}: {blocker} is a file, not a folder; choose another output path.")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"Cannot create the folder {final.parent} for {final.name}: {describe_os_error(exc)}."
        ) from exc


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike[str],
    verify: Callable[[Path], None] | None = None,
    *,
    keep_name: bool = False,
    probe: bool = True,
) -> Iterator[Path]:
    """Yield a temporary path to write to; on success verify it and rename it to ``path``.

    Args:
        path: the final file.
        verify: optional check of the written temporary file (raise to reject it; an exception
            other than :class:`OutputError` is reported as "failed verification"); the file must
            exist and be non-empty in any case.
        keep_name: the temporary file has the final file name, inside a temporary sub-folder of
            the target folder (for writers that store their own name in the file).
        probe: create the (empty) temporary file before yielding, so that a folder that refuses
            new files fails with a clear cause before the writer runs; off for writers that
            complain about an existing file.

    Raises:
        OutputError: the folder cannot be made or written, the writer failed, the file is missing or
            empty, or ``verify`` rejected it. The message names the path and the cause.
    """
    final = Path(path)
    if final.is_dir():
        raise OutputError(f"Cannot write {final}: it is a folder; give a file name.")
    _make_parent(final)
    temp_dir: Path | None = None
    if keep_name:
        temp_dir = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmpdir")
        temp = temp_dir / final.name
    else:
        temp = _temporary_name(final)
    try:
        if temp_dir is not None:
            temp_dir.mkdir()
        elif probe:  # can we create a file here at all? (clear message before any work by the writer)
            with open(temp, "wb"):
                pass
        yield temp
        if not temp.is_file() or temp.stat().st_size == 0:
            raise OutputError(
                f"Cannot write {final}: the writer produced no data (disk full, or the writer failed silently)."
            )
        if verify is not None:
            try:
                verify(temp)
            except OutputError:
                raise
            except (OSError, ValueError, RuntimeError, EOFError) as exc:
                raise OutputError(
                    f"Cannot write {final}: the written file failed verification ({exc}); the disk may be full."
                ) from exc
        _fsync(temp)
        os.replace(temp, final)
    except OutputError:
        _cleanup(temp, temp_dir)
        raise
    except OSError as exc:
        _cleanup(temp, temp_dir)
        raise OutputError(f"Cannot write {final}: {describe_os_error(exc)}.") from exc
    except BaseException:
        _cleanup(temp, temp_dir)
        raise
    _cleanup(None, temp_dir)


def _cleanup(temp: Path | None, temp_dir: Path | None) -> None:
    if temp is not None:
        with contextlib.suppress(OSError):
            temp.unlink()
    if temp_dir is not None:
        shutil.rmtree(temp_dir, ignore_errors=True)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and check the size on disk; returns the path."""
    final = Path(path)
    data = bytes(data)

    def verify(temp: Path) -> None:
        size = temp.stat().st_size
        if size != len(data):
            raise OutputError(f"Cannot write {final}: stored {size} of {len(data)} bytes (disk full?).")

    if not data:
        raise OutputError(f"Cannot write {final}: there is nothing to write (0 bytes).")
    with atomic_output(final, verify=verify) as temp:
        with open(temp, "wb") as fh:
            fh.write(data)
            fh.flush()
    return final


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; returns the path."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any, *, indent: int = 2, default: Any = None) -> Path:
    """Write ``obj`` as JSON (UTF-8, NaN refused) to ``path`` atomically; returns the path.

    ``default`` is passed to :func:`json.dumps` (e.g. ``str`` for paths).
    """
    try:
        text = json.dumps(obj, indent=indent, allow_nan=False, default=default) + "\n"
    except (ValueError, TypeError) as exc:
        raise OutputError(f"Cannot write {path}: the data cannot be stored as JSON ({exc}).") from exc
    return write_text(path, text)
